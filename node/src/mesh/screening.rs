//! Sorting a delivery of report parcels: which are for this console,
//! which go further, and which are refused, with the penalty the sender
//! earned. Pure (the node passes in what it knows), so it runs off the
//! swarm task, where signatures are checked.

use mig_proto::ActionId;
use mig_proto::messages::{MAX_DELIVERY_BYTES, with_inflation_budget};

use super::penalties;
use super::reports::{self, Parcel, Report};

/// What a delivery turned out to hold.
#[derive(Default)]
pub struct Screened {
    /// Refuse the whole batch: nothing stored, nothing acknowledged.
    pub refuse: bool,
    /// Verified reports for actions this console sent.
    pub mine: Vec<Report>,
    /// Verified parcels to pass on.
    pub others: Vec<Parcel>,
    /// Parcels dropped or refused, by reason.
    pub dropped: Vec<(&'static str, u64)>,
    /// Penalty points the sender earned.
    pub penalty: f64,
}

impl Screened {
    /// A batch refused before it was read.
    pub fn refused(reason: &'static str, parcels: usize, penalty: f64) -> Self {
        Self {
            refuse: true,
            dropped: vec![(reason, parcels as u64)],
            penalty,
            ..Self::default()
        }
    }
}

/// What the node knows about one parcel when it screens it.
pub struct Known {
    /// Addressed to this node.
    pub for_me: bool,
    /// This node passed the action on (it has a reverse path for it).
    pub has_path: bool,
}

/// Screens `parcels` (with what the node knows about each, in the same
/// order). `was_sent` tells whether this node is a console that sent the
/// action; it is asked only about verified reports addressed here. The
/// results of one delivery inflate to no more than a delivery may carry.
pub fn screen(
    parcels: Vec<Parcel>,
    known: &[Known],
    was_sent: impl Fn(&ActionId) -> bool,
) -> Screened {
    with_inflation_budget(MAX_DELIVERY_BYTES, || {
        screen_within_budget(parcels, known, was_sent)
    })
}

fn screen_within_budget(
    parcels: Vec<Parcel>,
    known: &[Known],
    was_sent: impl Fn(&ActionId) -> bool,
) -> Screened {
    let mut screened = Screened::default();
    let (mut forged, mut unknown_path, mut unsolicited) = (0u64, 0u64, 0u64);
    for (parcel, known) in parcels.into_iter().zip(known) {
        let Ok(action_id) = <[u8; 32]>::try_from(parcel.action_id.as_slice()).map(ActionId) else {
            forged += 1;
            continue;
        };
        // Only reports for actions this node passed on go further: a peer
        // cannot make hops carry junk.
        if !known.for_me && !known.has_path {
            unknown_path += 1;
            continue;
        }
        // Only genuine ones, about the action they are routed by. A hop
        // reads only the header: the rest is for the console.
        if !known.for_me {
            match reports::verify_header(&parcel.report) {
                Ok(header) if header.action_id == action_id => screened.others.push(parcel),
                _ => forged += 1,
            }
            continue;
        }
        let report = match reports::verify(&parcel.report) {
            Ok(report) if report.action_id == action_id => report,
            _ => {
                forged += 1;
                continue;
            }
        };
        if was_sent(&action_id) {
            screened.mine.push(report);
        } else {
            // Dropped, and acknowledged: nobody needs it again.
            unsolicited += 1;
        }
    }
    screened.penalty =
        penalties::FORGED * forged as f64 + penalties::UNSOLICITED * unsolicited as f64;
    for (reason, count) in [
        ("forged", forged),
        ("unknown_path", unknown_path),
        ("unsolicited", unsolicited),
    ] {
        if count > 0 {
            screened.dropped.push((reason, count));
        }
    }
    // An honest hop that forgot a path (after a restart) is refused without
    // a penalty: it tries again and then dials the console itself.
    if forged > 0 || unknown_path > 0 {
        screened.refuse = true;
        screened.mine.clear();
        screened.others.clear();
    }
    screened
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;
    use libp2p::identity::Keypair;
    use mig_proto::AgentAttributes;
    use mig_proto::messages::ReportBody;

    fn parcel(signer: &Keypair, claimed: &Keypair, action: u8, routed_as: u8) -> Parcel {
        let report = Report {
            action_id: ActionId([action; 32]),
            agent: PeerId::from_public_key(&claimed.public()).to_string(),
            attributes: AgentAttributes::default(),
            body: ReportBody::Ack,
        };
        Parcel {
            console: Vec::new(),
            console_addresses: Vec::new(),
            action_id: vec![routed_as; 32],
            expire_after: 0,
            report: reports::sign(&report, signer).unwrap(),
        }
    }

    const HERE: Known = Known {
        for_me: true,
        has_path: false,
    };
    const ONWARD: Known = Known {
        for_me: false,
        has_path: true,
    };
    const NO_PATH: Known = Known {
        for_me: false,
        has_path: false,
    };

    #[test]
    fn genuine_parcels_are_sorted_and_nothing_else_passes() {
        let agent = Keypair::generate_ed25519();
        let sent = |id: &ActionId| id.0[0] == 1;

        let screened = screen(
            vec![
                parcel(&agent, &agent, 1, 1),
                parcel(&agent, &agent, 2, 2),
                parcel(&agent, &agent, 3, 3),
            ],
            &[HERE, ONWARD, HERE],
            sent,
        );
        assert!(!screened.refuse);
        assert_eq!(screened.mine.len(), 1);
        assert_eq!(screened.others.len(), 1);
        assert_eq!(screened.dropped, vec![("unsolicited", 1)]);
        assert_eq!(screened.penalty, penalties::UNSOLICITED);

        // Signed by someone else than the agent it names; or routed as
        // another action than it is about: forged, the batch refused.
        let forger = Keypair::generate_ed25519();
        for forgery in [parcel(&forger, &agent, 1, 1), parcel(&agent, &agent, 2, 1)] {
            let screened = screen(
                vec![parcel(&agent, &agent, 1, 1), forgery],
                &[HERE, HERE],
                sent,
            );
            assert!(screened.refuse);
            assert!(screened.mine.is_empty() && screened.others.is_empty());
            assert_eq!(screened.dropped, vec![("forged", 1)]);
            assert_eq!(screened.penalty, penalties::FORGED);
        }

        // A path this hop does not know: refused, without a penalty.
        let screened = screen(vec![parcel(&agent, &agent, 2, 2)], &[NO_PATH], sent);
        assert!(screened.refuse);
        assert_eq!(screened.dropped, vec![("unknown_path", 1)]);
        assert_eq!(screened.penalty, 0.0);
    }
}
