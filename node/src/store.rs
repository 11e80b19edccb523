//! The agent's embedded store (`redb`, one file in the data directory).
//!
//! It holds the file-hash cache, the actions seen (replays refused), the
//! journal of runs and what they found, cancels, the reports outbox, and a
//! console's history. redb calls block, so callers run them on module or
//! blocking threads, never on an async task.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use zeroize::Zeroizing;

use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};

use crate::group_commit::GroupCommit;

/// File digests by (device, inode, size, mtime, ctime, decompressed): a
/// file whose identity and times are unchanged has unchanged contents for
/// every purpose short of a deliberate timestamp forgery, which needs root
/// and leaves ctime changed anyway.
const FILE_HASHES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("file_hashes");

/// Actions seen: id -> (expiry in Unix seconds, big-endian i64). Replays of
/// an action are refused for as long as it could be valid.
const ACTIONS: TableDefinition<'_, &[u8], i64> = TableDefinition::new("actions");
/// The wire message of each action in `ACTIONS`, so peers that were away
/// can fetch what is still valid.
const WIRES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("wires");
/// A console's history: actions it sent (id -> the signed action, JSON).
const SENT: TableDefinition<'_, &[u8], &str> = TableDefinition::new("sent");
/// A console's seal secrets: action id -> the X25519 secret the action's
/// reports are sealed to (32 bytes). Kept as long as the history, so
/// reports that come home after a restart still open.
const SEALS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("seals");
/// A console's history: reports it received, keyed by action id, agent and
/// kind (0 ack, 1 refusal, 2 result), so a report seen twice counts once.
const RECEIVED: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("received");
/// Cancelled actions: id -> until when to remember the cancel.
const CANCELLED: TableDefinition<'_, &[u8], i64> = TableDefinition::new("cancelled");
/// Actions being run: id -> (wire bytes, previous hop). Written before a
/// run starts, removed once its result is in the outbox; what is left at
/// start-up was interrupted.
const RUNS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("runs");
/// What this agent found in the actions it ran: id -> (remember until,
/// Unix seconds; found something, 0 or 1), nine bytes. Targets such as
/// `found('<id>')` are answered from here, so they work without the
/// console's history.
const OUTCOMES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("outcomes");
/// Reports waiting to go home: sequence number -> parcel (CBOR).
const OUTBOX: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("outbox");

/// Entries buffered before they are written in one transaction.
const WRITE_BATCH: usize = 4096;

/// What the transaction that stores reports does to the action journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Journal {
    /// Nothing (reports passed on for other agents).
    Unchanged,
    /// The action is about to run: its record (wire message, previous hop),
    /// so it is verified and run again after a crash. The action is
    /// remembered as seen in the same commit (see `remember_action`).
    Started {
        id: Vec<u8>,
        record: Vec<u8>,
        seen: Seen,
    },
    /// Its run is over; with what it found, remembered until a Unix time
    /// (`None`: it could not run or did not finish, so `found(...)` and
    /// `notfound(...)` say nothing about it).
    Ended {
        id: Vec<u8>,
        outcome: Option<(bool, i64)>,
        /// The outbox sequence of the run's ack: the result stored in this
        /// commit says all it says, so it goes if it is still waiting.
        ack: Option<u64>,
    },
}

/// An action as the replay guard and anti-entropy keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Unix seconds; kept until then.
    pub expire_after: i64,
    /// The signed message, for peers catching up.
    pub wire: Vec<u8>,
}

#[cfg(test)]
impl Journal {
    pub fn started(id: &[u8], record: &[u8]) -> Self {
        Self::Started {
            id: id.to_vec(),
            record: record.to_vec(),
            seen: Seen {
                expire_after: i64::MAX,
                wire: record.to_vec(),
            },
        }
    }

    pub fn ended(id: &[u8], outcome: Option<(bool, i64)>) -> Self {
        Self::Ended {
            id: id.to_vec(),
            outcome,
            ack: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("store: {0}")]
    Operation(String),
}

/// An action's seal secret, read in `transaction` (an entry that is not
/// 32 bytes reads as none).
fn read_seal(
    transaction: &redb::ReadTransaction,
    id: &[u8],
) -> Result<Option<Zeroizing<[u8; 32]>>, StoreError> {
    let seals = transaction.open_table(SEALS).map_err(operation)?;
    Ok(seals
        .get(id)
        .map_err(operation)?
        .and_then(|value| <[u8; 32]>::try_from(value.value()).ok().map(Zeroizing::new)))
}

fn operation<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::Operation(error.to_string())
}

/// Until when an outcome is remembered (its first eight bytes).
fn outcome_until(value: &[u8]) -> i64 {
    value
        .get(..8)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(i64::MIN, i64::from_be_bytes)
}

/// A key and its value, as stored.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A report a console received, kept under (action, agent, kind).
pub struct Received {
    pub action: [u8; 32],
    pub agent: String,
    /// 0 ack, 1 rejected, 2 result.
    pub kind: u8,
    /// The report, CBOR.
    pub bytes: Vec<u8>,
}

/// A read-only view of the hash cache.
pub struct HashReader {
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl HashReader {
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.table
            .get(key)
            .ok()
            .flatten()
            .map(|value| value.value().to_vec())
    }
}

/// The agent's store.
pub struct Store {
    database: Database,
    pending_hashes: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    /// Parcels passed on for others, stored a batch per commit.
    passing_on: GroupCommit<Vec<u8>>,
}

impl Store {
    /// Opens (or creates) `data_dir/agent.redb`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("agent.redb");
        let open_error = |message: String| StoreError::Open {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(data_dir).map_err(|error| open_error(error.to_string()))?;
        let database = Database::builder()
            .set_cache_size(16 * 1024 * 1024)
            .create(&path)
            .map_err(|error| open_error(error.to_string()))?;
        let transaction = database.begin_write().map_err(operation)?;
        transaction.open_table(FILE_HASHES).map_err(operation)?;
        transaction.open_table(ACTIONS).map_err(operation)?;
        transaction.open_table(OUTBOX).map_err(operation)?;
        transaction.open_table(RUNS).map_err(operation)?;
        transaction.open_table(WIRES).map_err(operation)?;
        transaction.open_table(CANCELLED).map_err(operation)?;
        transaction.open_table(SENT).map_err(operation)?;
        transaction.open_table(SEALS).map_err(operation)?;
        transaction.open_table(RECEIVED).map_err(operation)?;
        transaction.open_table(OUTCOMES).map_err(operation)?;
        transaction.commit().map_err(operation)?;
        Ok(Self {
            database,
            pending_hashes: Mutex::new(Vec::new()),
            passing_on: GroupCommit::default(),
        })
    }

    /// Records an action as seen; false if it was seen before (a replay).
    pub fn remember_action(
        &self,
        id: &[u8],
        expire_after: i64,
        wire: &[u8],
    ) -> Result<bool, StoreError> {
        let transaction = self.database.begin_write().map_err(operation)?;
        let known = transaction
            .open_table(ACTIONS)
            .map_err(operation)?
            .get(id)
            .map_err(operation)?
            .is_some();
        if !known {
            insert_seen(&transaction, id, expire_after, wire)?;
        }
        transaction.commit().map_err(operation)?;
        Ok(!known)
    }

    /// Forgets actions that expired before `before` (Unix seconds).
    pub fn collect_expired_actions(&self, before: i64) -> Result<usize, StoreError> {
        let transaction = self.database.begin_write().map_err(operation)?;
        let removed = {
            let mut table = transaction.open_table(ACTIONS).map_err(operation)?;
            let expired: Vec<Vec<u8>> = table
                .extract_if(|_, expiry| expiry < before)
                .map_err(operation)?
                .filter_map(|entry| entry.ok().map(|(key, _)| key.value().to_vec()))
                .collect();
            let mut wires = transaction.open_table(WIRES).map_err(operation)?;
            for id in &expired {
                wires.remove(id.as_slice()).map_err(operation)?;
            }
            let mut cancelled = transaction.open_table(CANCELLED).map_err(operation)?;
            cancelled
                .extract_if(|_, until| until < before)
                .map_err(operation)?
                .for_each(drop);
            let mut outcomes = transaction.open_table(OUTCOMES).map_err(operation)?;
            outcomes
                .extract_if(|_, value| outcome_until(value) < before)
                .map_err(operation)?
                .for_each(drop);
            expired.len()
        };
        transaction.commit().map_err(operation)?;
        Ok(removed)
    }

    /// Records an action this console sent.
    pub fn record_sent(&self, id: &[u8], action_json: &str) -> Result<(), StoreError> {
        let transaction = self.database.begin_write().map_err(operation)?;
        transaction
            .open_table(SENT)
            .map_err(operation)?
            .insert(id, action_json)
            .map_err(operation)?;
        transaction.commit().map_err(operation)
    }

    /// Keeps the secret that reports for action `id` are sealed to (before
    /// the action is signed, so it is never out without it).
    pub fn keep_seal(&self, id: &[u8], secret: &[u8; 32]) -> Result<(), StoreError> {
        let transaction = self.database.begin_write().map_err(operation)?;
        transaction
            .open_table(SEALS)
            .map_err(operation)?
            .insert(id, secret.as_slice())
            .map_err(operation)?;
        transaction.commit().map_err(operation)
    }

    /// The secret reports for action `id` are sealed to, if this console
    /// made one.
    pub fn seal(&self, id: &[u8]) -> Result<Option<Zeroizing<[u8; 32]>>, StoreError> {
        read_seal(&self.database.begin_read().map_err(operation)?, id)
    }

    /// For an action this console sent, the secret its reports are sealed
    /// to (`Some(None)`: it named no seal key); `None` when this console
    /// did not send it.
    pub fn sent_seal(&self, id: &[u8]) -> Result<Option<Option<Zeroizing<[u8; 32]>>>, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        if transaction
            .open_table(SENT)
            .map_err(operation)?
            .get(id)
            .map_err(operation)?
            .is_none()
        {
            return Ok(None);
        }
        read_seal(&transaction, id).map(Some)
    }

    /// The action this console sent under `id`, as JSON.
    pub fn sent(&self, id: &[u8]) -> Result<Option<String>, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        let table = transaction.open_table(SENT).map_err(operation)?;
        Ok(table
            .get(id)
            .map_err(operation)?
            .map(|value| value.value().to_owned()))
    }

    /// The ids of every action this console sent (the actions stay on
    /// disk).
    pub fn sent_ids(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        let table = transaction.open_table(SENT).map_err(operation)?;
        let mut ids = Vec::new();
        for entry in table.iter().map_err(operation)? {
            let (key, _) = entry.map_err(operation)?;
            ids.push(key.value().to_vec());
        }
        Ok(ids)
    }

    /// Every action this console sent: (id, the signed action as JSON).
    pub fn sent_all(&self) -> Result<Vec<(Vec<u8>, String)>, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        let table = transaction.open_table(SENT).map_err(operation)?;
        let mut sent = Vec::new();
        for entry in table.iter().map_err(operation)? {
            let (key, value) = entry.map_err(operation)?;
            sent.push((key.value().to_vec(), value.value().to_owned()));
        }
        Ok(sent)
    }

    /// Records reports this console received, in one transaction (one
    /// sync to disk for the lot, not one per report).
    pub fn record_received(&self, reports: &[Received]) -> Result<(), StoreError> {
        let transaction = self.database.begin_write().map_err(operation)?;
        {
            let mut table = transaction.open_table(RECEIVED).map_err(operation)?;
            for report in reports {
                let mut key = report.action.to_vec();
                key.extend_from_slice(report.agent.as_bytes());
                key.push(report.kind);
                table
                    .insert(key.as_slice(), report.bytes.as_slice())
                    .map_err(operation)?;
            }
        }
        transaction.commit().map_err(operation)
    }

    /// Every report received for an action.
    pub fn received(&self, action: &[u8; 32]) -> Result<Vec<Vec<u8>>, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        let table = transaction.open_table(RECEIVED).map_err(operation)?;
        let mut reports = Vec::new();
        for entry in table.range(action.as_slice()..).map_err(operation)? {
            let (key, value) = entry.map_err(operation)?;
            if !key.value().starts_with(action) {
                break;
            }
            reports.push(value.value().to_vec());
        }
        Ok(reports)
    }

    /// Remembers that an action is cancelled, until `until`.
    pub fn remember_cancel(&self, id: &[u8], until: i64) -> Result<(), StoreError> {
        let transaction = self.database.begin_write().map_err(operation)?;
        transaction
            .open_table(CANCELLED)
            .map_err(operation)?
            .insert(id, until)
            .map_err(operation)?;
        transaction.commit().map_err(operation)
    }

    /// Whether an action was cancelled.
    pub fn is_cancelled(&self, id: &[u8]) -> Result<bool, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        Ok(transaction
            .open_table(CANCELLED)
            .map_err(operation)?
            .get(id)
            .map_err(operation)?
            .is_some())
    }

    /// Whether this node has seen the action.
    pub fn knows_action(&self, id: &[u8]) -> Result<bool, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        Ok(transaction
            .open_table(ACTIONS)
            .map_err(operation)?
            .get(id)
            .map_err(operation)?
            .is_some())
    }

    /// Ids of actions still valid at `now` (Unix seconds), at most `limit`.
    pub fn valid_action_ids(&self, now: i64, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        let table = transaction.open_table(ACTIONS).map_err(operation)?;
        let mut ids = Vec::new();
        for entry in table.iter().map_err(operation)? {
            let (key, expiry) = entry.map_err(operation)?;
            if expiry.value() >= now {
                ids.push(key.value().to_vec());
                if ids.len() >= limit {
                    break;
                }
            }
        }
        Ok(ids)
    }

    /// The wire messages of the given actions (those this node has).
    pub fn action_wires(&self, ids: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        let table = transaction.open_table(WIRES).map_err(operation)?;
        let mut wires = Vec::new();
        for id in ids {
            if let Some(wire) = table.get(id.as_slice()).map_err(operation)? {
                wires.push(wire.value().to_vec());
            }
        }
        Ok(wires)
    }

    /// Changes the journal alone (a run that cannot resume is forgotten).
    pub fn journal(&self, change: Journal) -> Result<(), StoreError> {
        self.outbox_put(&[], change).map(drop)
    }

    /// What this agent found in each action it remembers running.
    pub fn outcomes(&self) -> Result<Vec<(Vec<u8>, bool)>, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        let table = transaction.open_table(OUTCOMES).map_err(operation)?;
        let mut outcomes = Vec::new();
        for entry in table.iter().map_err(operation)? {
            let (key, value) = entry.map_err(operation)?;
            outcomes.push((key.value().to_vec(), value.value().get(8) == Some(&1)));
        }
        Ok(outcomes)
    }

    /// Runs that were interrupted (started, never finished).
    pub fn interrupted_runs(&self) -> Result<Vec<KeyValue>, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        let table = transaction.open_table(RUNS).map_err(operation)?;
        let mut runs = Vec::new();
        for entry in table.iter().map_err(operation)? {
            let (key, value) = entry.map_err(operation)?;
            runs.push((key.value().to_vec(), value.value().to_vec()));
        }
        Ok(runs)
    }

    /// Stores parcels that change no journal (passed on for others, or a
    /// run's ack), durably, in one commit with those other threads bring
    /// meanwhile
    /// (`group_commit`); returns their sequence numbers.
    pub fn outbox_put_passing_on(&self, parcels: Vec<Vec<u8>>) -> Result<Vec<u64>, StoreError> {
        self.passing_on
            .submit(parcels, |batch| {
                self.outbox_put(batch, Journal::Unchanged)
                    .map_err(|error| match error {
                        StoreError::Operation(message) => message,
                        other => other.to_string(),
                    })
            })
            .map_err(StoreError::Operation)
    }

    /// Stores parcels durably, and changes the journal in the same
    /// transaction (so what an agent owes its console and what it knows it
    /// ran never disagree after a crash, and a step costs one commit);
    /// returns the parcels' sequence numbers.
    pub fn outbox_put(
        &self,
        parcels: &[Vec<u8>],
        journal: Journal,
    ) -> Result<Vec<u64>, StoreError> {
        let transaction = self.database.begin_write().map_err(operation)?;
        let mut sequences = Vec::with_capacity(parcels.len());
        if !parcels.is_empty() {
            let mut table = transaction.open_table(OUTBOX).map_err(operation)?;
            let first = table
                .last()
                .map_err(operation)?
                .map_or(0, |(key, _)| key.value() + 1);
            for (sequence, parcel) in (first..).zip(parcels) {
                table
                    .insert(sequence, parcel.as_slice())
                    .map_err(operation)?;
                sequences.push(sequence);
            }
        }
        match journal {
            Journal::Unchanged => {}
            Journal::Started { id, record, seen } => {
                transaction
                    .open_table(RUNS)
                    .map_err(operation)?
                    .insert(id.as_slice(), record.as_slice())
                    .map_err(operation)?;
                insert_seen(&transaction, &id, seen.expire_after, &seen.wire)?;
            }
            Journal::Ended { id, outcome, ack } => {
                transaction
                    .open_table(RUNS)
                    .map_err(operation)?
                    .remove(id.as_slice())
                    .map_err(operation)?;
                if let Some(ack) = ack {
                    transaction
                        .open_table(OUTBOX)
                        .map_err(operation)?
                        .remove(ack)
                        .map_err(operation)?;
                }
                if let Some((found, until)) = outcome {
                    let mut value = until.to_be_bytes().to_vec();
                    value.push(u8::from(found));
                    transaction
                        .open_table(OUTCOMES)
                        .map_err(operation)?
                        .insert(id.as_slice(), value.as_slice())
                        .map_err(operation)?;
                }
            }
        }
        transaction.commit().map_err(operation)?;
        Ok(sequences)
    }

    /// Removes delivered parcels. Not durable by itself (the next durable
    /// commit carries it): a removal lost in a crash only sends those
    /// parcels again, and the console keeps one report per agent, so the
    /// disk sync per delivery that every agent and hop paid bought nothing.
    pub fn outbox_remove(&self, sequences: &[u64]) -> Result<(), StoreError> {
        let mut transaction = self.database.begin_write().map_err(operation)?;
        transaction
            .set_durability(Durability::None)
            .map_err(operation)?;
        {
            let mut table = transaction.open_table(OUTBOX).map_err(operation)?;
            for sequence in sequences {
                table.remove(sequence).map_err(operation)?;
            }
        }
        transaction.commit().map_err(operation)
    }

    /// Everything still waiting in the outbox, oldest first.
    pub fn outbox_all(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        let table = transaction.open_table(OUTBOX).map_err(operation)?;
        let mut all = Vec::new();
        for entry in table.iter().map_err(operation)? {
            let (key, value) = entry.map_err(operation)?;
            all.push((key.value(), value.value().to_vec()));
        }
        Ok(all)
    }

    /// A view of the hash cache as of now, for many lookups (one sweep):
    /// cheaper than a transaction per lookup.
    pub fn hash_reader(&self) -> Result<HashReader, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        Ok(HashReader {
            table: transaction.open_table(FILE_HASHES).map_err(operation)?,
        })
    }

    /// The cached digests for a file key, if any.
    pub fn cached_hashes(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let transaction = self.database.begin_read().map_err(operation)?;
        let table = transaction.open_table(FILE_HASHES).map_err(operation)?;
        Ok(table
            .get(key)
            .map_err(operation)?
            .map(|value| value.value().to_vec()))
    }

    /// Queues digests for a file key; written in batches.
    pub fn cache_hashes(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        let batch = {
            let mut pending = self.pending_hashes.lock().map_err(operation)?;
            pending.push((key, value));
            if pending.len() < WRITE_BATCH {
                return Ok(());
            }
            std::mem::take(&mut *pending)
        };
        self.write_hashes(batch)
    }

    /// Writes whatever is queued. No commit of the hash cache is durable
    /// by itself: it is only a cache (a crash costs some hashing again),
    /// and the commit that ends the run, right after the sweep, takes it
    /// to disk with the result.
    pub fn flush_hashes(&self) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut *self.pending_hashes.lock().map_err(operation)?);
        if batch.is_empty() {
            // A sweep answered from the cache writes nothing: no commit.
            return Ok(());
        }
        self.write_hashes(batch)
    }

    fn write_hashes(&self, batch: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
        let mut transaction = self.database.begin_write().map_err(operation)?;
        transaction
            .set_durability(Durability::None)
            .map_err(operation)?;
        {
            let mut table = transaction.open_table(FILE_HASHES).map_err(operation)?;
            for (key, value) in &batch {
                table
                    .insert(key.as_slice(), value.as_slice())
                    .map_err(operation)?;
            }
        }
        transaction.commit().map_err(operation)
    }
}

/// Records an action as seen: its expiry, and its wire message for peers
/// catching up.
fn insert_seen(
    transaction: &redb::WriteTransaction,
    id: &[u8],
    expire_after: i64,
    wire: &[u8],
) -> Result<(), StoreError> {
    transaction
        .open_table(ACTIONS)
        .map_err(operation)?
        .insert(id, expire_after)
        .map_err(operation)?;
    transaction
        .open_table(WIRES)
        .map_err(operation)?
        .insert(id, wire)
        .map_err(operation)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_until_collected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.remember_action(b"a1", 100, b"wire1").unwrap());
        assert!(!store.remember_action(b"a1", 100, b"wire1").unwrap());
        assert!(store.remember_action(b"a2", 40, b"wire2").unwrap());
        assert_eq!(
            store.valid_action_ids(50, 10).unwrap(),
            vec![b"a1".to_vec()]
        );
        assert_eq!(
            store
                .action_wires(&[b"a1".to_vec(), b"zz".to_vec()])
                .unwrap(),
            vec![b"wire1".to_vec()]
        );
        assert_eq!(store.collect_expired_actions(50).unwrap(), 1);
        assert_eq!(store.collect_expired_actions(101).unwrap(), 1);
        assert!(store.action_wires(&[b"a1".to_vec()]).unwrap().is_empty());
        assert!(store.remember_action(b"a1", 100, b"wire1").unwrap());
    }

    #[test]
    fn interrupted_runs_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            for (id, record) in [
                (b"a1", b"record1"),
                (b"a2", b"record2"),
                (b"a3", b"record3"),
            ] {
                store.journal(Journal::started(id, record)).unwrap();
            }
            store
                .journal(Journal::ended(b"a1", Some((true, 2000))))
                .unwrap();
            store.journal(Journal::ended(b"a3", None)).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.interrupted_runs().unwrap(),
            vec![(b"a2".to_vec(), b"record2".to_vec())]
        );
        // Only a finished run leaves an outcome, kept until its time.
        assert_eq!(store.outcomes().unwrap(), vec![(b"a1".to_vec(), true)]);
        store.collect_expired_actions(1999).unwrap();
        assert_eq!(store.outcomes().unwrap().len(), 1);
        store.collect_expired_actions(2001).unwrap();
        assert!(store.outcomes().unwrap().is_empty());
    }

    #[test]
    fn reports_and_the_journal_change_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let started = Journal::started(b"a1", b"record");
        assert_eq!(
            store.outbox_put(&[b"ack".to_vec()], started).unwrap(),
            vec![0]
        );
        assert_eq!(
            store.interrupted_runs().unwrap(),
            vec![(b"a1".to_vec(), b"record".to_vec())]
        );
        let ended = Journal::ended(b"a1", Some((true, 2000)));
        assert_eq!(
            store.outbox_put(&[b"result".to_vec()], ended).unwrap(),
            vec![1]
        );
        assert!(store.interrupted_runs().unwrap().is_empty());
        assert_eq!(store.outcomes().unwrap(), vec![(b"a1".to_vec(), true)]);
        // Starting a run remembered the action: a replay is refused.
        assert!(store.knows_action(b"a1").unwrap());
        assert!(!store.remember_action(b"a1", 100, b"wire1").unwrap());
        assert_eq!(
            store.outbox_all().unwrap(),
            vec![(0, b"ack".to_vec()), (1, b"result".to_vec())]
        );

        // A result that supersedes its run's ack takes it out in its commit.
        store
            .outbox_put(&[b"ack2".to_vec()], Journal::started(b"a2", b"record"))
            .unwrap();
        let ended = Journal::Ended {
            id: b"a2".to_vec(),
            outcome: None,
            ack: Some(2),
        };
        assert_eq!(
            store.outbox_put(&[b"result2".to_vec()], ended).unwrap(),
            vec![3]
        );
        assert_eq!(
            store.outbox_all().unwrap(),
            vec![
                (0, b"ack".to_vec()),
                (1, b"result".to_vec()),
                (3, b"result2".to_vec())
            ]
        );
    }

    #[test]
    fn the_outbox_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let sequences = store
                .outbox_put(&[b"p1".to_vec(), b"p2".to_vec()], Journal::Unchanged)
                .unwrap();
            store.outbox_remove(&sequences[..1]).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.outbox_all().unwrap(), vec![(1, b"p2".to_vec())]);
        assert_eq!(
            store
                .outbox_put(&[b"p3".to_vec()], Journal::Unchanged)
                .unwrap(),
            vec![2]
        );
    }

    #[test]
    fn parcels_passed_on_from_many_threads_each_get_their_own_sequences() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..8u8)
            .map(|thread| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let parcels: Vec<Vec<u8>> = (0..5u8).map(|index| vec![thread, index]).collect();
                    let sequences = store.outbox_put_passing_on(parcels.clone()).unwrap();
                    (sequences, parcels)
                })
            })
            .collect();
        let mut expected = Vec::new();
        for thread in threads {
            let (sequences, parcels) = thread.join().unwrap();
            assert_eq!(sequences.len(), parcels.len());
            expected.extend(sequences.into_iter().zip(parcels));
        }
        expected.sort();
        // Every parcel is in the outbox under the sequence its caller was told.
        assert_eq!(store.outbox_all().unwrap(), expected);
        assert_eq!(expected.len(), 40);
    }

    #[test]
    fn hashes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .cache_hashes(b"key".to_vec(), b"value".to_vec())
                .unwrap();
            assert_eq!(
                store.cached_hashes(b"key").unwrap(),
                None,
                "queued, not yet written"
            );
            store.flush_hashes().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.cached_hashes(b"key").unwrap(),
            Some(b"value".to_vec())
        );
    }
}
