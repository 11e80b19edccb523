//! Misbehaviour on the direct streams, which gossipsub's own scoring never
//! sees: forged reports, oversize batches, floods of reports nobody asked
//! for. Each costs the sending peer points; at `GRAYLIST_POINTS` the peer is
//! graylisted: its deliveries are refused unread, and (through gossipsub's
//! application-specific score) its gossip is ignored too. Points halve at
//! every `decay`, so a peer is forgiven in time; honest peers never earn
//! any, because every hop verifies what it forwards.

use std::collections::HashMap;

use libp2p::PeerId;

/// Points at which a peer is graylisted (gossipsub's default graylist
/// threshold is -80, so a score of minus this is below it).
pub const GRAYLIST_POINTS: f64 = 100.0;
/// A report that does not verify, or an oversize batch: four graylist.
pub const FORGED: f64 = 25.0;
/// A report for an action this console never sent: an honest agent sends
/// two per action (ack and result), a flood of a hundred graylists.
pub const UNSOLICITED: f64 = 1.0;
/// Peers tracked at most; past it, only graylisted ones are kept.
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
pub struct Penalties {
    points: HashMap<PeerId, f64>,
}

impl Penalties {
    /// Adds points to `peer` and returns its total.
    pub fn add(&mut self, peer: PeerId, points: f64) -> f64 {
        if self.points.len() >= MAX_TRACKED && !self.points.contains_key(&peer) {
            self.points.retain(|_, total| *total >= GRAYLIST_POINTS);
            if self.points.len() >= MAX_TRACKED {
                return 0.0;
            }
        }
        let total = self.points.entry(peer).or_default();
        *total += points;
        *total
    }

    pub fn is_graylisted(&self, peer: &PeerId) -> bool {
        self.points
            .get(peer)
            .is_some_and(|total| *total >= GRAYLIST_POINTS)
    }

    pub fn graylisted(&self) -> impl Iterator<Item = &PeerId> {
        self.points
            .iter()
            .filter(|(_, total)| **total >= GRAYLIST_POINTS)
            .map(|(peer, _)| peer)
    }

    #[cfg(test)]
    fn points(&self, peer: &PeerId) -> f64 {
        self.points.get(peer).copied().unwrap_or(0.0)
    }

    /// Halves every peer's points and forgets those near zero. Returns each
    /// peer's new total (zero for the forgotten), to pass on to gossipsub.
    pub fn decay(&mut self) -> Vec<(PeerId, f64)> {
        let mut totals = Vec::with_capacity(self.points.len());
        self.points.retain(|peer, total| {
            *total /= 2.0;
            let keep = *total >= 1.0;
            totals.push((*peer, if keep { *total } else { 0.0 }));
            keep
        });
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgeries_graylist_and_time_forgives() {
        let mut penalties = Penalties::default();
        let rogue = PeerId::random();
        let honest = PeerId::random();
        for _ in 0..3 {
            penalties.add(rogue, FORGED);
        }
        penalties.add(honest, UNSOLICITED * 2.0);
        assert!(!penalties.is_graylisted(&rogue));
        penalties.add(rogue, FORGED);
        assert!(penalties.is_graylisted(&rogue));
        assert!(!penalties.is_graylisted(&honest));
        assert_eq!(penalties.graylisted().collect::<Vec<_>>(), vec![&rogue]);
        penalties.decay();
        assert!(!penalties.is_graylisted(&rogue));
        assert_eq!(penalties.points(&honest), 1.0);
        penalties.decay();
        assert_eq!(penalties.points(&honest), 0.0);
    }

    #[test]
    fn tracking_is_bounded_and_keeps_the_graylisted() {
        let mut penalties = Penalties::default();
        let rogue = PeerId::random();
        penalties.add(rogue, GRAYLIST_POINTS);
        for _ in 0..MAX_TRACKED + 10 {
            penalties.add(PeerId::random(), 1.0);
        }
        assert!(penalties.points.len() <= MAX_TRACKED);
        assert!(penalties.is_graylisted(&rogue));
    }
}
