//! The agent's embedded store (`redb`, one file in the data directory).
//!
//! Today it holds the file-hash cache; the action journal, replay set and
//! results outbox join it with the mesh. redb calls block, so callers run
//! them on module or blocking threads, never on an async task.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, TableDefinition};

/// File digests by (device, inode, size, mtime, ctime, decompressed): a
/// file whose identity and times are unchanged has unchanged contents for
/// every purpose short of a deliberate timestamp forgery, which needs root
/// and leaves ctime changed anyway.
const FILE_HASHES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("file_hashes");

/// Entries buffered before they are written in one transaction.
const WRITE_BATCH: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("store: {0}")]
    Operation(String),
}

fn operation<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::Operation(error.to_string())
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
        transaction.commit().map_err(operation)?;
        Ok(Self {
            database,
            pending_hashes: Mutex::new(Vec::new()),
        })
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

    /// Writes whatever is queued, durably.
    pub fn flush_hashes(&self) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut *self.pending_hashes.lock().map_err(operation)?);
        self.write_hashes_with(batch, Durability::Immediate)
    }

    /// Batches in the middle of a sweep skip the fsync: the cache is only a
    /// cache, and the sweep's final flush makes everything durable.
    fn write_hashes(&self, batch: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
        self.write_hashes_with(batch, Durability::None)
    }

    fn write_hashes_with(
        &self,
        batch: Vec<(Vec<u8>, Vec<u8>)>,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let mut transaction = self.database.begin_write().map_err(operation)?;
        transaction.set_durability(durability).map_err(operation)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
