//! Storage: records in an ordered key-value [`Engine`] (sled by default), one writer that
//! batches every connection's writes into group commits, and typed records.
//!
//! Reads go straight to the engine. Every write goes through [`Store::write`]: the closure
//! runs on the writer thread, serialized with all other writes (so sequence numbers are
//! assigned without locks or gaps), its writes join a group that is applied atomically and
//! made durable with one sync, and only then is its result delivered — in commit order, on the
//! writer thread, so fan-out happens in `room_seq` order (see [`commit`]).

mod commit;
mod engine;
pub(crate) mod keys;
pub(crate) mod postgres;
pub(crate) mod records;
mod space;

use std::collections::HashMap;
use std::sync::Arc;

use banter_protocol::ids::{RoomId, UserId};

pub use commit::{CommitMetrics, Txn, WriteError};
pub use engine::{
    Direct, Engine, KeyValues, SledEngine, StoreError, Transaction, Write, scan_range,
};
pub use postgres::PgEngine;
use serde::Serialize;
use serde::de::DeserializeOwned;
pub use space::DiskSpace;

/// The schema this build writes. A data dir with a higher version is refused; an older one
/// is migrated when opened.
pub const SCHEMA_VERSION: u32 = 3;

/// The key of the schema version (for `banterd migrate` to report it).
pub fn schema_key() -> Vec<u8> {
    keys::meta("schema")
}

/// A cheap, cloneable handle to the database.
#[derive(Clone)]
pub struct Store {
    engine: Arc<dyn Engine>,
    writer: commit::Writer,
    metrics: CommitMetrics,
    /// Writes stop while the data dir's disk is below its reserve.
    space: Option<Arc<DiskSpace>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the engine, checks (or writes) the schema version, and starts the writer.
    pub fn open(engine: Arc<dyn Engine>, max_group: usize) -> Result<Self, StoreError> {
        let key = keys::meta("schema");
        match engine.get(&key)? {
            Some(bytes) => {
                let found = decode::<u32>(&key, &bytes)?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { found, supported: SCHEMA_VERSION });
                }
                if found < SCHEMA_VERSION {
                    migrate(engine.as_ref(), found)?;
                }
            }
            None => {
                engine.apply(vec![(key, Some(encode(&SCHEMA_VERSION)))])?;
                engine.sync()?;
            }
        }
        let metrics = CommitMetrics::default();
        let writer = commit::Writer::start(engine.clone(), max_group, metrics.clone());
        Ok(Self { engine, writer, metrics, space: None })
    }

    /// Refuses writes ([`StoreError::DiskFull`]) while the disk falls short of `space`'s
    /// reserve.
    pub fn with_disk_space(mut self, space: DiskSpace) -> Self {
        self.space = Some(Arc::new(space));
        self
    }

    /// Runs `f` on the writer thread inside a group commit. On `Ok`, its writes are applied
    /// atomically with the rest of the group and made durable; `after` then runs on the
    /// writer thread (in commit order) with the value, and its result comes back. On `Err`,
    /// none of its writes happen.
    pub async fn write<T, E, R>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, E> + Send + 'static,
        after: impl FnOnce(T) -> R + Send + 'static,
    ) -> Result<R, WriteError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        R: Send + 'static,
    {
        if let Some(space) = &self.space {
            space.check(0).map_err(|full| WriteError::Store(Arc::new(full)))?;
        }
        self.writer.write(f, after).await
    }

    /// The count of group commits that failed so far, as the writer keeps it (post streams
    /// use it to keep what they take a prefix of what was sent).
    pub(crate) fn commit_failures(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.writer.failures()
    }

    /// What the writer measures.
    pub fn commit_metrics(&self) -> &CommitMetrics {
        &self.metrics
    }

    /// Runs `f` on the writer thread between two groups: every write acknowledged before the
    /// call is durable and visible, and no other write happens until `f` returns. Writers
    /// wait meanwhile, so `f` is for whole-database work that needs one consistent view
    /// (backup, integrity check), not for requests.
    pub async fn exclusive<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Engine) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        self.writer.exclusive(f).await
    }

    /// Stops the writer after its queued jobs are durable and waits for it. The database
    /// closes when the last handle is dropped.
    pub async fn close(&self) {
        self.writer.stop().await;
    }

    /// A record.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.engine.get(key)? {
            Some(bytes) => decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The values under `keys`, read in one batch, as [`Records`].
    pub fn prefetch(&self, keys: Vec<Vec<u8>>) -> Result<Prefetched<'_>, StoreError> {
        let values = self.engine.get_many(&keys)?;
        Ok(Prefetched { store: self, values: keys.into_iter().zip(values).collect() })
    }

    /// Whether a key exists.
    pub fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.engine.get(key)?.is_some())
    }

    /// Up to `limit` records with keys in `[start, end)`.
    pub fn range<T: DeserializeOwned>(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        self.engine
            .range(start, end, reverse, limit)?
            .into_iter()
            .map(|(k, v)| {
                let value = decode(&k, &v)?;
                Ok((k, value))
            })
            .collect()
    }

    /// Calls `f` on every record whose key starts with `prefix`, in key order, reading in
    /// pages so that a large table never sits in memory at once.
    pub fn scan<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], T),
    ) -> Result<(), StoreError> {
        scan_range(&*self.engine, prefix, &keys::prefix_end(prefix), |key, value| {
            f(&key, decode(&key, &value)?);
            Ok::<_, StoreError>(())
        })
    }

    /// Keys (without values) with the given prefix.
    pub fn keys_with_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let end = keys::prefix_end(prefix);
        Ok(self.engine.range(prefix, &end, false, limit)?.into_iter().map(|(k, _)| k).collect())
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("records serialize into a Vec")
}

pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes)
        .map_err(|e| StoreError::Corrupt { key: key.to_vec(), reason: e.to_string() })
}

/// Brings a data dir of schema `from` up to [`SCHEMA_VERSION`], in one atomic, synced write.
///
/// 1 → 2: login keys were registered without proof of possession (anyone could register
/// anyone's public key), under `public key → user`; they are dropped, not carried over, and
/// their owners register them again with KEY_ADD's proof. Shared files, listed channels and
/// each room's audit entries gain the indexes schema 2 keeps.
fn migrate(engine: &dyn Engine, from: u32) -> Result<(), StoreError> {
    let mut writes: Vec<Write> = Vec::new();
    if from < 2 {
        let unproven = [keys::tag::UNPROVEN_LOGIN_KEY];
        let unproven = engine.range(&unproven, &keys::prefix_end(&unproven), false, usize::MAX)?;
        writes.extend(unproven.into_iter().map(|(key, _)| (key, None)));
        index_shared_files(engine, &mut writes)?;
        index_public_rooms(engine, &mut writes)?;
        index_room_audit(engine, &mut writes)?;
    }
    if from < 3 {
        stamp_room_records(engine, &mut writes)?;
    }
    writes.push((keys::meta("schema"), Some(encode(&SCHEMA_VERSION))));
    engine.apply(writes)?;
    engine.sync()
}

/// Schema 3: each room record gains the timestamp of its latest entry.
fn stamp_room_records(engine: &dyn Engine, writes: &mut Vec<Write>) -> Result<(), StoreError> {
    scan_table(engine, keys::tag::ROOM, |key, value| {
        let old: records::RoomRecordV2 = decode(&key, &value)?;
        let room = RoomId(keys::id_at(&key, 1));
        let latest = engine.range(&keys::log(room, 0), &keys::log(room, u64::MAX), true, 1)?;
        let last_ts = match latest.first() {
            Some((log_key, entry)) => decode::<records::LogEntry>(log_key, entry)?.ts,
            None => 0,
        };
        writes.push((key, Some(encode(&old.upgrade(last_ts)))));
        Ok(())
    })
}

/// Visits every record of one table.
fn scan_table(
    engine: &dyn Engine,
    tag: u8,
    f: impl FnMut(Vec<u8>, Vec<u8>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    scan_range(engine, &[tag], &keys::prefix_end(&[tag]), f)
}

/// A reference per FILE_SHARED entry (schema 1 could not delete them: all are live), and each
/// sharer's byte count.
fn index_shared_files(engine: &dyn Engine, writes: &mut Vec<Write>) -> Result<(), StoreError> {
    let mut usage = std::collections::BTreeMap::<u64, u64>::new();
    scan_table(engine, keys::tag::LOG, |key, value| {
        let entry: records::LogEntry = decode(&key, &value)?;
        if let records::EntryKind::FileShared { size, sha256, .. } = entry.kind {
            let (room, seq) = (RoomId(keys::id_at(&key, 1)), keys::id_at(&key, 9));
            writes.push((keys::content_ref(&sha256, room, seq), Some(encode(&()))));
            *usage.entry(entry.sender).or_default() += size;
        }
        Ok(())
    })?;
    writes.extend(
        usage
            .into_iter()
            .map(|(user, bytes)| (keys::file_usage(UserId(user)), Some(encode(&bytes)))),
    );
    Ok(())
}

/// The channels ROOM_LIST Public shows.
fn index_public_rooms(engine: &dyn Engine, writes: &mut Vec<Write>) -> Result<(), StoreError> {
    scan_table(engine, keys::tag::ROOM, |key, value| {
        // Schema 1 wrote the layout schema 2 kept.
        let record: records::RoomRecordV2 = decode(&key, &value)?;
        let room = RoomId(keys::id_at(&key, 1));
        let settings_key = keys::room_settings(room);
        let archived = match engine.get(&settings_key)? {
            Some(bytes) => decode::<records::RoomSettings>(&settings_key, &bytes)?.archived,
            None => false,
        };
        if !record.private && !record.direct && !archived {
            writes.push((keys::public_room(room), Some(encode(&()))));
        }
        Ok(())
    })
}

/// Each room's audit entries.
fn index_room_audit(engine: &dyn Engine, writes: &mut Vec<Write>) -> Result<(), StoreError> {
    scan_table(engine, keys::tag::AUDIT, |key, value| {
        let record: records::AuditRecord = decode(&key, &value)?;
        if let Some(room) = record.room {
            writes.push((keys::room_audit(RoomId(room), keys::id_at(&key, 1)), Some(encode(&()))));
        }
        Ok(())
    })
}

/// Reading records the same way from the store (a request's checks) and from inside a write
/// (the same checks, evaluated where nothing can change between them and the change).
pub trait Records {
    /// A record.
    fn record<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError>;
}

/// Records read ahead in one batch ([`Store::prefetch`]), so that the same checks run over
/// many rooms (a search's) cost one round trip to a remote database rather than one per
/// record; a key not read ahead is read from the store.
#[derive(Debug)]
pub struct Prefetched<'a> {
    store: &'a Store,
    values: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Records for Prefetched<'_> {
    fn record<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.values.get(key) {
            Some(Some(bytes)) => decode(key, bytes).map(Some),
            Some(None) => Ok(None),
            None => self.store.get(key),
        }
    }
}

impl Records for Store {
    fn record<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.get(key)
    }
}

impl Records for Txn<'_> {
    fn record<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A room record as schema 2 and before wrote it.
    fn room(private: bool) -> records::RoomRecordV2 {
        records::RoomRecordV2 {
            direct: false,
            name: "r".into(),
            topic: String::new(),
            category: String::new(),
            private,
            voice: false,
            created: 1,
            last_seq: 5,
            members: 1,
            direct_pair: None,
        }
    }

    fn audited(room: Option<u64>) -> records::AuditRecord {
        records::AuditRecord {
            ts: 1,
            actor: 1,
            action: 1,
            room,
            target: None,
            reason: String::new(),
        }
    }

    fn shared(byte: u8) -> records::LogEntry {
        let kind =
            records::EntryKind::FileShared { name: "a".into(), size: 1000, sha256: [byte; 32] };
        records::LogEntry { ts: u64::from(byte), sender: 1, kind }
    }

    #[tokio::test]
    async fn opening_a_schema_1_data_dir_drops_unproven_login_keys_and_indexes_shared_files() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(SledEngine::open(dir.path()).unwrap());
        let mut unproven = vec![keys::tag::UNPROVEN_LOGIN_KEY];
        unproven.extend_from_slice(&[7; 32]);
        engine
            .apply(vec![
                (keys::meta("schema"), Some(encode(&1u32))),
                (unproven.clone(), Some(encode(&1u64))),
                (keys::username("ada"), Some(encode(&1u64))),
                (keys::log(RoomId(3), 4), Some(encode(&shared(7)))),
                (keys::log(RoomId(3), 5), Some(encode(&shared(8)))),
                (keys::room(RoomId(3)), Some(encode(&room(false)))),
                (keys::room(RoomId(4)), Some(encode(&room(true)))),
                (keys::audit(9), Some(encode(&audited(Some(3))))),
                (keys::audit(10), Some(encode(&audited(None)))),
            ])
            .unwrap();
        let store = Store::open(engine, 16).unwrap();
        assert_eq!(store.get::<u32>(&keys::meta("schema")).unwrap(), Some(SCHEMA_VERSION));
        assert!(!store.contains(&unproven).unwrap(), "an unproven key still grants access");
        assert!(store.contains(&keys::username("ada")).unwrap(), "the migration kept only keys");
        assert!(store.contains(&keys::content_ref(&[7; 32], RoomId(3), 4)).unwrap());
        assert!(store.contains(&keys::content_ref(&[8; 32], RoomId(3), 5)).unwrap());
        assert_eq!(store.get::<u64>(&keys::file_usage(UserId(1))).unwrap(), Some(2 * 1000));
        assert!(store.contains(&keys::public_room(RoomId(3))).unwrap());
        assert!(!store.contains(&keys::public_room(RoomId(4))).unwrap(), "a private room");
        assert!(store.contains(&keys::room_audit(RoomId(3), 9)).unwrap());
        assert_eq!(store.keys_with_prefix(&[keys::tag::ROOM_AUDIT], 10).unwrap().len(), 1);
        // Schema 3: room records carry their latest entry's timestamp (0: no entries).
        let stamped = |room| store.get::<records::RoomRecord>(&keys::room(room)).unwrap().unwrap();
        assert_eq!(stamped(RoomId(3)).last_ts, shared(8).ts);
        assert_eq!(stamped(RoomId(4)).last_ts, 0);
        assert_eq!(stamped(RoomId(3)).last_seq, 5, "the rest of the record unchanged");
        store.close().await;
    }

    #[test]
    fn a_data_dir_from_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(dir.path()).unwrap();
        engine.apply(vec![(keys::meta("schema"), Some(encode(&(SCHEMA_VERSION + 1))))]).unwrap();
        let error = Store::open(Arc::new(engine), 16).unwrap_err();
        assert!(
            matches!(error, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1)
        );
        assert!(error.to_string().contains("use a newer banterd"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_serialized_durable_and_rejections_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Arc::new(SledEngine::open(dir.path()).unwrap()), 64).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .write(
                        move |txn| {
                            let id = txn.next_id("counter")?;
                            txn.put(keys::audit(id), &i);
                            Ok::<_, StoreError>(id)
                        },
                        |id| id,
                    )
                    .await
                    .unwrap()
            }));
        }
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.unwrap());
        }
        ids.sort_unstable();
        assert_eq!(ids, (1..=200).collect::<Vec<_>>(), "gap-free, no duplicates");

        let rejected = store
            .write(
                |txn| {
                    txn.put(keys::audit(999), &1u64);
                    Err::<(), _>("refused")
                },
                |()| (),
            )
            .await;
        assert!(matches!(rejected, Err(WriteError::Rejected("refused"))));
        assert!(!store.contains(&keys::audit(999)).unwrap(), "a rejected job writes nothing");
        store.close().await;
        drop(store);
        // Everything acknowledged is there after reopening.
        let reopened = Store::open(Arc::new(SledEngine::open(dir.path()).unwrap()), 64).unwrap();
        assert_eq!(reopened.get::<u64>(&keys::meta("counter")).unwrap(), Some(200));
    }
}
