//! Group commit: threads that each have items to write hand them in, and
//! one transaction writes what all of them brought. Whoever finds no
//! commit under way leads: it takes everything queued, commits it, and
//! hands each caller its share of the answer; callers that came meanwhile
//! wait, and the next of them leads the next batch. No thread of its own,
//! and a caller alone commits at once, as before.
//!
//! A relay stores every delivery it passes on before acknowledging it.
//! One synced commit each made its store a queue that thousands of agents'
//! reports waited in, one disk sync at a time (redb runs one write
//! transaction at a time).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

pub struct GroupCommit<T> {
    state: Mutex<State<T>>,
    committed: Condvar,
}

struct State<T> {
    /// Each waiting caller's ticket and items, in arrival order.
    queue: Vec<(u64, Vec<T>)>,
    /// Answers not yet collected, by ticket.
    answers: HashMap<u64, Result<Vec<u64>, String>>,
    leading: bool,
    next_ticket: u64,
    batches: u64,
}

impl<T> Default for GroupCommit<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                queue: Vec::new(),
                answers: HashMap::new(),
                leading: false,
                next_ticket: 0,
                batches: 0,
            }),
            committed: Condvar::new(),
        }
    }
}

impl<T> GroupCommit<T> {
    /// Writes `items` with whatever other callers bring meanwhile, through
    /// `commit`, which gets every item of a batch and answers one number
    /// per item (in order) or fails the whole batch. Returns this caller's
    /// numbers. Blocks until its batch is committed. The leader's `commit`
    /// writes everyone's items, so every caller of one `GroupCommit` must
    /// pass the same kind of commit (`Store` keeps one per purpose).
    pub fn submit(
        &self,
        items: Vec<T>,
        commit: impl Fn(&[T]) -> Result<Vec<u64>, String>,
    ) -> Result<Vec<u64>, String> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push((ticket, items));
        loop {
            if let Some(answer) = state.answers.remove(&ticket) {
                return answer;
            }
            if state.leading {
                state = self
                    .committed
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            state.leading = true;
            state.batches += 1;
            let batch = std::mem::take(&mut state.queue);
            drop(state);
            let answers = commit_batch(batch, &commit);
            state = self.lock();
            state.answers.extend(answers);
            state.leading = false;
            self.committed.notify_all();
        }
    }

    /// Callers waiting for the next batch.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Transactions committed so far.
    pub fn batches(&self) -> u64 {
        self.lock().batches
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // The state stays consistent across a panic in `commit` (it runs
        // unlocked), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Commits one batch and splits the answer by caller.
fn commit_batch<T>(
    batch: Vec<(u64, Vec<T>)>,
    commit: &impl Fn(&[T]) -> Result<Vec<u64>, String>,
) -> Vec<(u64, Result<Vec<u64>, String>)> {
    let counts: Vec<(u64, usize)> = batch
        .iter()
        .map(|(ticket, items)| (*ticket, items.len()))
        .collect();
    let items: Vec<T> = batch.into_iter().flat_map(|(_, items)| items).collect();
    // A commit that panics fails its batch, and no caller waits forever.
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(&items)))
        .unwrap_or_else(|_| Err("the commit panicked".into()))
        .and_then(|numbers| {
            if numbers.len() == items.len() {
                Ok(numbers)
            } else {
                Err(format!(
                    "the commit answered {} numbers for {} items",
                    numbers.len(),
                    items.len()
                ))
            }
        });
    match answer {
        Ok(numbers) => {
            let mut numbers = numbers.into_iter();
            counts
                .into_iter()
                .map(|(ticket, count)| (ticket, Ok(numbers.by_ref().take(count).collect())))
                .collect()
        }
        Err(error) => counts
            .into_iter()
            .map(|(ticket, _)| (ticket, Err(error.clone())))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::GroupCommit;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A commit that numbers items from a shared counter, as the outbox's
    /// sequence does.
    fn numbering(counter: &AtomicU64, items: &[u32]) -> Result<Vec<u64>, String> {
        Ok(items
            .iter()
            .map(|_| counter.fetch_add(1, Ordering::SeqCst))
            .collect())
    }

    #[test]
    fn callers_that_come_during_a_commit_share_the_next_one() {
        let group = Arc::new(GroupCommit::<u32>::default());
        let counter = Arc::new(AtomicU64::new(0));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(hold));
        // The first caller leads, and its commit waits until told.
        let first = {
            let (group, counter, hold) = (group.clone(), counter.clone(), hold.clone());
            std::thread::spawn(move || {
                group.submit(vec![0], |items| {
                    if items == [0] {
                        hold.lock().unwrap().recv().unwrap();
                    }
                    numbering(&counter, items)
                })
            })
        };
        while group.batches() == 0 {
            std::thread::yield_now();
        }
        let others: Vec<_> = (1..=9u32)
            .map(|caller| {
                let (group, counter) = (group.clone(), counter.clone());
                std::thread::spawn(move || {
                    group.submit(vec![caller; caller as usize], |items| {
                        numbering(&counter, items)
                    })
                })
            })
            .collect();
        while group.queued() < 9 {
            std::thread::yield_now();
        }
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap().unwrap(), vec![0]);
        let mut numbers: Vec<u64> = Vec::new();
        for (caller, other) in (1..=9usize).zip(others) {
            let mine = other.join().unwrap().unwrap();
            // Each caller gets as many numbers as it brought items.
            assert_eq!(mine.len(), caller);
            numbers.extend(mine);
        }
        // All nine waited through the first commit and went in one more.
        assert_eq!(group.batches(), 2);
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=45).collect::<Vec<u64>>());
    }

    #[test]
    fn a_failed_or_panicking_commit_fails_its_callers_and_the_next_one_works() {
        let group = GroupCommit::<u32>::default();
        assert_eq!(
            group.submit(vec![1, 2], |_| Err("disk full".into())),
            Err("disk full".into())
        );
        assert!(
            group
                .submit(vec![1], |_| -> Result<Vec<u64>, String> {
                    panic!("bug in a commit")
                })
                .is_err()
        );
        assert!(group.submit(vec![1, 2], |_| Ok(vec![7])).is_err());
        assert_eq!(group.submit(vec![1, 2], |_| Ok(vec![7, 8])), Ok(vec![7, 8]));
        assert_eq!(group.submit(Vec::new(), |_| Ok(Vec::new())), Ok(Vec::new()));
    }
}
