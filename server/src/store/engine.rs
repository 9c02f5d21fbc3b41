//! The storage engine boundary: an ordered key-value store with atomic batches and an explicit
//! durability point. Everything Banter stores is keys and values above this trait (see
//! [`keys`](super::keys)), so another engine (a PostgreSQL-compatible store for several nodes)
//! can replace sled without touching the domain code.
//!
//! A group commit reads and writes through one [`Transaction`]: for sled, which only this
//! process writes, that is the engine itself and an atomic batch; for a database that other
//! nodes write too, a serializable transaction, so that a read a commit depends on (a room's
//! head seq) cannot have changed under it.

use std::fs::File;
use std::path::{Path, PathBuf};

/// A storage failure. Kept apart from request errors so that a full disk is never reported as
/// the peer's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed (I/O, corruption).
    #[error("storage engine: {0}")]
    Engine(String),
    /// A record did not decode: the data dir is damaged or from another version.
    #[error("corrupt record under key {key:02x?}: {reason}")]
    Corrupt {
        /// The key.
        key: Vec<u8>,
        /// What was wrong.
        reason: String,
    },
    /// The data dir was written by a newer schema than this build knows.
    #[error(
        "the data dir has schema version {found}, this banterd knows up to {supported}; use a newer banterd"
    )]
    NewerSchema {
        /// Found on disk.
        found: u32,
        /// Known to this build.
        supported: u32,
    },
    /// The writer task is gone (the server is shutting down).
    #[error("storage writer stopped")]
    WriterStopped,
    /// Another writer changed what this group read: nothing of the group was applied, and
    /// running its requests again is safe.
    #[error("a concurrent write conflicted; retry")]
    Conflict,
    /// The database server cannot be reached (a shared database restarting or down): the
    /// request may be sent again once it is back. A group whose COMMIT got no answer is
    /// reported so too: its posts are deduplicated when retried.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The data dir's disk has less free than its reserve: nothing was written, and the
    /// write can be sent again once space returns.
    #[error("the disk is full: {free} bytes free, {reserve} kept in reserve")]
    DiskFull {
        /// Bytes free.
        free: u64,
        /// The reserve (`min_free_disk_mb`).
        reserve: u64,
    },
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        Self::Engine(error.to_string())
    }
}

impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> Self {
        Self::Engine(error.to_string())
    }
}

/// Key-value pairs, in key order.
pub type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

/// One write in a batch: a value to put, or `None` to delete.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// An ordered key-value store.
pub trait Engine: Send + Sync + 'static {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// The values under `keys`, in their order: one round trip where the engine is remote.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|key| self.get(key)).collect()
    }
    /// Up to `limit` entries with `start <= key < end`, ascending or (with `reverse`)
    /// descending.
    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<KeyValues, StoreError>;
    /// Applies all writes atomically (all or none become visible, and after a crash all or
    /// none are recovered).
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    /// Makes every applied write durable; returns once it is.
    fn sync(&self) -> Result<(), StoreError>;
    /// Begins the transaction one group commit reads through and commits with.
    fn begin(&self) -> Result<Box<dyn Transaction + '_>, StoreError>;
}

/// One group commit's view of the engine and its way in.
pub trait Transaction {
    /// The value under `key`, as this transaction sees it.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// As [`Engine::range`], as this transaction sees it.
    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<KeyValues, StoreError>;
    /// Applies `writes` atomically and durably, or (on an error) none of them
    /// ([`StoreError::Conflict`] when another writer got in the way). An engine that cannot
    /// tell whether writes it applied became durable does not return: see [`durability_lost`].
    fn commit(self: Box<Self>, writes: Vec<Write>) -> Result<(), StoreError>;
}

/// The transaction of an engine only this process writes: reads go straight to it (the
/// single writer is the isolation), and a commit is one atomic batch and a sync.
pub struct Direct<'a>(pub &'a dyn Engine);

impl std::fmt::Debug for Direct<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Direct")
    }
}

impl Transaction for Direct<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key)
    }

    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<KeyValues, StoreError> {
        self.0.range(start, end, reverse, limit)
    }

    fn commit(self: Box<Self>, writes: Vec<Write>) -> Result<(), StoreError> {
        self.0.apply(writes)?;
        if let Err(error) = self.0.sync() {
            durability_lost(&error);
        }
        Ok(())
    }
}

/// A group was applied but could not be made durable. Its writes are visible: a retried POST
/// would find its dedup record and be acked with nothing synced, and later posts would take
/// the next seqs. No answer is safe, so the process stops at once (abort: no destructor,
/// no flush), and recovery at the next start sees only what reached the disk.
pub(crate) fn durability_lost(error: &StoreError) -> ! {
    tracing::error!(%error, "sync failed after a group was applied; aborting");
    eprintln!(
        "banterd: sync failed after a group was applied ({error}); aborting so that recovery sees only durable state"
    );
    std::process::abort()
}

/// Calls `f` on every pair with `start <= key < end`, in key order, reading in pages so that a
/// large table never sits in memory at once. Stops at the first error.
pub fn scan_range<E: From<StoreError>>(
    engine: &dyn Engine,
    start: &[u8],
    end: &[u8],
    mut f: impl FnMut(Vec<u8>, Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    const PAGE: usize = 4096;
    let mut start = start.to_vec();
    loop {
        let page = engine.range(&start, end, false, PAGE)?;
        let full = page.len() == PAGE;
        let Some((last, _)) = page.last() else { return Ok(()) };
        start = last.clone();
        start.push(0); // the smallest key after `last`
        for (key, value) in page {
            f(key, value)?;
        }
        if !full {
            return Ok(());
        }
    }
}

/// sled 0.34 as the engine: one tree, so that one batch is atomic across every kind of record.
///
/// Durability: sled's `flush` writes its log with `sync_file_range`, which survives a process
/// crash but not a power loss or OS crash on a disk with a volatile cache (sled issues 1351,
/// 1452). [`Engine::sync`] therefore also calls `fdatasync` on sled's log file, which asks the
/// device to persist it. sled 0.34 also writes any log message larger than a quarter segment
/// (512 KiB / 4, about 128 KiB: a big batch or node rewrite, not only a big value) to its own
/// file `blobs/<lsn>`, with no sync at all (`pagecache/blob_io.rs` `write_blob`); `sync`
/// fsyncs every blob file it has not synced before, and then the `blobs` directory. What
/// remains unguarded is sled's own recovery code; see the operations notes in the README.
#[derive(Debug)]
pub struct SledEngine {
    db: sled::Db,
    tree: sled::Tree,
    log_file: File,
    /// Blob files already made durable (sled removes them itself when it no longer needs
    /// them; the set follows).
    synced_blobs: std::sync::Mutex<std::collections::HashSet<std::ffi::OsString>>,
    path: PathBuf,
}

impl SledEngine {
    /// Opens (creating) the database in `dir`, with sled's default cache (1 GiB).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, 1 << 30)
    }

    /// Opens (creating) the database in `dir`; sled caches at most about `cache_bytes` of
    /// pages.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Our writer flushes explicitly after each group; sled's timer flush is redundant.
            .flush_every_ms(None)
            .open()?;
        let tree = db.open_tree("banter")?;
        // Without the log file every sync would silently skip fdatasync: refuse to start.
        let log_file = File::options().read(true).write(true).open(dir.join("db"))?;
        // sled creates its directory, `conf` and `blobs/` without syncing any of them: after a
        // power cut the whole database could be gone, every fdatasync'ed write in it included.
        File::open(dir.join("conf"))?.sync_all()?;
        crate::durable::sync_dir(&dir.join("blobs"))?;
        crate::durable::sync_dir(dir)?;
        crate::durable::sync_parent(dir)?;
        Ok(Self { db, tree, log_file, synced_blobs: Default::default(), path: dir.to_owned() })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes sled's blob files durable (see the type's docs): each new one, then the
    /// directory that names them.
    fn sync_blobs(&self) -> std::io::Result<()> {
        let dir = self.path.join("blobs");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|e| e.into_inner());
        let mut present = std::collections::HashSet::new();
        let mut new = false;
        for entry in entries {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match File::open(dir.join(&name)) {
                    Ok(file) => file.sync_data()?,
                    // Removed by sled's own cleanup meanwhile: nothing to make durable.
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(error),
                }
                new = true;
            }
            present.insert(name);
        }
        if new {
            crate::durable::sync_dir(&dir)?;
        }
        *synced = present;
        Ok(())
    }
}

impl Engine for SledEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<KeyValues, StoreError> {
        let iter = self.tree.range(start..end);
        let to_pair = |r: sled::Result<(sled::IVec, sled::IVec)>| {
            r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(StoreError::from)
        };
        if reverse {
            iter.rev().take(limit).map(to_pair).collect()
        } else {
            iter.take(limit).map(to_pair).collect()
        }
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log_file.sync_data()?;
        self.sync_blobs()?;
        Ok(())
    }

    fn begin(&self) -> Result<Box<dyn Transaction + '_>, StoreError> {
        Ok(Box::new(Direct(self)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_sled_writes_as_a_blob_file_is_synced_with_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(dir.path()).unwrap();
        engine.apply(vec![(b"big".to_vec(), Some(vec![7; 300 * 1024]))]).unwrap();
        engine.sync().unwrap();
        let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs")).unwrap().collect();
        assert!(!blobs.is_empty(), "sled kept a 300 KiB value inline; the blob path is untested");
        let synced = engine.synced_blobs.lock().unwrap();
        for blob in blobs {
            assert!(synced.contains(&blob.unwrap().file_name()), "a blob file was not synced");
        }
    }
}
