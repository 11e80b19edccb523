//! What this agent found in the actions it ran, so that targets such as
//! `found('<id>')` and `notfound('<id>')` (MIG's `-target-found`) are
//! answered by the agents themselves, with or without the console's
//! history. Kept in the store (until a month after the action expired) and
//! in memory for the swarm task, which evaluates targets and must not
//! wait on the disk.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use mig_proto::{ActionHistory, ActionId};

/// How long after an action expired its outcome is remembered.
pub const RETENTION_SECONDS: i64 = 30 * 24 * 3600;
/// Outcomes held in memory at most; the oldest go first.
const MAX_OUTCOMES: usize = 100_000;

#[derive(Default)]
pub struct Outcomes {
    found: HashMap<ActionId, bool>,
    order: VecDeque<ActionId>,
}

pub type SharedOutcomes = Arc<Mutex<Outcomes>>;

impl Outcomes {
    /// The outcomes the store remembers.
    pub fn load(store: &crate::store::Store) -> Self {
        let mut outcomes = Self::default();
        match store.outcomes() {
            Ok(stored) => {
                for (id, found) in stored {
                    if let Ok(id) = <[u8; 32]>::try_from(id.as_slice()) {
                        outcomes.record(ActionId(id), found);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read what earlier actions found"),
        }
        outcomes
    }

    pub fn record(&mut self, id: ActionId, found: bool) {
        if self.found.insert(id, found).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > MAX_OUTCOMES {
            if let Some(oldest) = self.order.pop_front() {
                self.found.remove(&oldest);
            }
        }
    }
}

impl ActionHistory for Outcomes {
    fn outcome_of(&self, action: &ActionId) -> Option<bool> {
        self.found.get(action).copied()
    }
}

/// Locks the shared outcomes (a poisoned lock still holds good data: every
/// update is one insert).
pub fn lock(outcomes: &SharedOutcomes) -> std::sync::MutexGuard<'_, Outcomes> {
    outcomes
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_come_back_from_the_store_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        use crate::store::Journal;
        store.journal(Journal::started(&[1; 32], b"r")).unwrap();
        store
            .journal(Journal::ended(&[1; 32], Some((true, i64::MAX))))
            .unwrap();
        store
            .journal(Journal::ended(&[2; 32], Some((false, i64::MAX))))
            .unwrap();
        let outcomes = Outcomes::load(&store);
        assert_eq!(outcomes.outcome_of(&ActionId([1; 32])), Some(true));
        assert_eq!(outcomes.outcome_of(&ActionId([2; 32])), Some(false));
        assert_eq!(outcomes.outcome_of(&ActionId([3; 32])), None);

        let mut many = Outcomes::default();
        for index in 0..=MAX_OUTCOMES {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(index as u64).to_be_bytes());
            many.record(ActionId(id), true);
        }
        assert_eq!(many.found.len(), MAX_OUTCOMES);
        assert_eq!(many.outcome_of(&ActionId([0; 32])), None);
    }
}
