//! Group commit: one writer thread applies every write of the server.
//!
//! The writer takes the first job waiting, then every job that queued up meanwhile (up to
//! `max_group`), runs them one after another inside one engine [`Transaction`] against an
//! overlay of their writes, commits the whole group as one atomic, durable batch, and then
//! delivers each job's result in order. While one group syncs, the next one queues, so under load each sync serves
//! many connections and the sync cost is shared; with one client, latency is one sync.
//!
//! Why a thread and not a task: the engine calls block (sled, fdatasync), and keeping them on
//! one dedicated thread keeps them off the async executor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use super::engine::{Engine, KeyValues, StoreError, Transaction, Write};

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    /// The job refused (a request error); nothing was written.
    #[error("rejected")]
    Rejected(E),
    /// Storage failed; nothing of the group is known to be durable.
    #[error(transparent)]
    Store(Arc<StoreError>),
}

/// What the writer measures (registered by the server's metrics).
#[derive(Debug, Clone)]
pub struct CommitMetrics {
    /// Jobs per group.
    pub group_size: Histogram,
    /// Seconds to apply and sync a group.
    pub sync_seconds: Histogram,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        Self {
            group_size: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            sync_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
        }
    }
}

type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;
type Deliver = Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>;
type Job = Box<dyn FnOnce(&mut Txn<'_>) -> (bool, Deliver) + Send>;
type Exclusive = Box<dyn FnOnce(&dyn Engine) + Send>;

/// Reads and writes of one job: reads see the group's engine transaction, then earlier jobs
/// of the group, then this job's own writes.
pub struct Txn<'a> {
    engine: &'a dyn Transaction,
    group: &'a Overlay,
    own: Overlay,
}

impl std::fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn").field("writes", &self.own.len()).finish_non_exhaustive()
    }
}

impl Txn<'_> {
    /// The current value under `key`.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(value) = self.own.get(key).or_else(|| self.group.get(key)) {
            return Ok(value.clone());
        }
        self.engine.get(key)
    }

    /// A record.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.get_raw(key)? {
            Some(bytes) => super::decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `key` exists.
    pub fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.get_raw(key)?.is_some())
    }

    /// Writes a record.
    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.own.insert(key, Some(super::encode(value)));
    }

    /// Deletes a key.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.own.insert(key, None);
    }

    /// Every key in `[start, end)` as this job sees it (the engine, then the group's and this
    /// job's writes), in order. For small index ranges (one user's sessions), not for logs.
    pub fn keys_in(&self, start: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut found: std::collections::BTreeSet<Vec<u8>> =
            self.engine.range(start, end, false, usize::MAX)?.into_iter().map(|(k, _)| k).collect();
        for overlay in [self.group, &self.own] {
            for (key, value) in overlay.range(start.to_vec()..end.to_vec()) {
                match value {
                    Some(_) => found.insert(key.clone()),
                    None => found.remove(key),
                };
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Reads durable, already-delivered state only (not this group's pending writes). For the
    /// few reads that must line up exactly with what fan-out has already sent (catch-up
    /// resuming a paused live push).
    pub fn durable_range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<KeyValues, StoreError> {
        self.engine.range(start, end, false, limit)
    }

    /// Takes the next value of a named counter (from 1).
    pub fn next_id(&mut self, counter: &str) -> Result<u64, StoreError> {
        let key = super::keys::meta(counter);
        let next = self.get::<u64>(&key)?.unwrap_or(0) + 1;
        self.put(key, &next);
        Ok(next)
    }
}

enum Command {
    Job(Job),
    /// Runs between groups, with every earlier write durable and no later one begun: a
    /// consistent view of the whole database (backup, integrity check).
    Exclusive(Exclusive),
    Stop,
}

/// The handle jobs are sent through.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Command>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// Group commits that failed so far.
    failures: Arc<AtomicU64>,
}

impl Writer {
    pub(super) fn start(engine: Arc<dyn Engine>, max_group: usize, metrics: CommitMetrics) -> Self {
        // Bounded: when storage falls behind, writers wait here instead of growing memory.
        let (jobs, rx) = mpsc::channel(max_group.max(1) * 4);
        let failures = Arc::new(AtomicU64::new(0));
        let counted = failures.clone();
        let thread = std::thread::Builder::new()
            .name("banter-writer".into())
            .spawn(move || run(engine, rx, max_group.max(1), &metrics, &counted))
            .expect("spawning the writer thread");
        Self { jobs, thread: Arc::new(std::sync::Mutex::new(Some(thread))), failures }
    }

    /// Counts the group commits that failed: a job that reads it sees every failure of the
    /// groups before its own (they are counted before the next group runs).
    pub(super) fn failures(&self) -> Arc<AtomicU64> {
        self.failures.clone()
    }

    /// Finishes the queued jobs, stops the thread and waits for it. Later writes fail with
    /// [`StoreError::WriterStopped`].
    pub(super) async fn stop(&self) {
        let _ = self.jobs.send(Command::Stop).await;
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    pub(super) async fn write<T, E, R>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, E> + Send + 'static,
        after: impl FnOnce(T) -> R + Send + 'static,
    ) -> Result<R, WriteError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R, WriteError<E>>>();
        let job: Job = Box::new(move |txn: &mut Txn<'_>| match f(txn) {
            Ok(value) => {
                let deliver: Deliver = Box::new(move |synced| {
                    let result = synced.map(|()| after(value)).map_err(WriteError::Store);
                    let _ = tx.send(result);
                });
                (true, deliver)
            }
            Err(error) => {
                let deliver: Deliver = Box::new(move |_| {
                    let _ = tx.send(Err(WriteError::Rejected(error)));
                });
                (false, deliver)
            }
        });
        let stopped = || WriteError::Store(Arc::new(StoreError::WriterStopped));
        self.jobs.send(Command::Job(job)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    pub(super) async fn exclusive<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Engine) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: Exclusive = Box::new(move |engine| {
            let _ = tx.send(f(engine));
        });
        self.jobs.send(Command::Exclusive(job)).await.map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)
    }
}

fn run(
    engine: Arc<dyn Engine>,
    mut jobs: mpsc::Receiver<Command>,
    max_group: usize,
    metrics: &CommitMetrics,
    failures: &AtomicU64,
) {
    let mut stopping = false;
    while !stopping {
        let first = match jobs.blocking_recv() {
            Some(Command::Job(job)) => job,
            Some(Command::Exclusive(f)) => {
                f(&*engine);
                continue;
            }
            Some(Command::Stop) | None => break,
        };
        let transaction = match engine.begin() {
            Ok(transaction) => transaction,
            Err(error) => {
                tracing::error!(%error, "could not begin a group commit");
                let (_, deliver) = first(&mut Txn {
                    engine: &NotBegun(
                        error.to_string(),
                        matches!(error, StoreError::Unavailable(_)),
                    ),
                    group: &Overlay::new(),
                    own: Overlay::new(),
                });
                deliver(Err(Arc::new(error)));
                continue;
            }
        };
        let mut group = Overlay::new();
        let mut delivers = Vec::new();
        let mut after_group = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            let mut txn = Txn { engine: &*transaction, group: &group, own: Overlay::new() };
            let (keep, deliver) = job(&mut txn);
            if keep {
                let own = txn.own;
                group.extend(own);
            }
            delivers.push(deliver);
            if delivers.len() < max_group {
                match jobs.try_recv() {
                    Ok(Command::Job(job)) => next = Some(job),
                    Ok(Command::Exclusive(f)) => after_group = Some(f),
                    Ok(Command::Stop) => stopping = true,
                    Err(_) => {}
                }
            }
        }
        let result = if group.is_empty() {
            drop(transaction);
            Ok(())
        } else {
            metrics.group_size.observe(delivers.len() as f64);
            let started = std::time::Instant::now();
            let result = transaction.commit(group.into_iter().collect());
            metrics.sync_seconds.observe(started.elapsed().as_secs_f64());
            result.map_err(Arc::new)
        };
        if result.is_err() {
            failures.fetch_add(1, Ordering::SeqCst);
        }
        match &result {
            // Another node's transaction won a race (cluster mode): the requests are told to
            // retry, which is routine, not a failure of this node.
            Err(error) if matches!(**error, StoreError::Conflict) => {
                tracing::debug!(%error, "group commit conflicted");
            }
            Err(error) => tracing::error!(%error, "group commit failed"),
            Ok(()) => {}
        }
        // Each session's writer wakes once for the whole group's events.
        crate::hub::wakes_after(|| {
            for deliver in delivers {
                deliver(result.clone());
            }
        });
        if let Some(f) = after_group {
            f(&*engine);
        }
    }
}

/// Stands in for a transaction that could not begin (why, and whether the database was only
/// unavailable): every read fails the same way, so the job that was taken is answered with
/// that error (retryable when it is) instead of being lost.
struct NotBegun(String, bool);

impl NotBegun {
    fn error(&self) -> StoreError {
        if self.1 {
            StoreError::Unavailable(self.0.clone())
        } else {
            StoreError::Engine(format!("no transaction: {}", self.0))
        }
    }
}

impl Transaction for NotBegun {
    fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Err(self.error())
    }

    fn range(&self, _: &[u8], _: &[u8], _: bool, _: usize) -> Result<KeyValues, StoreError> {
        Err(self.error())
    }

    fn commit(self: Box<Self>, _: Vec<Write>) -> Result<(), StoreError> {
        Err(self.error())
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::store::engine::Direct;

    /// An engine whose writes apply (in memory) but never sync.
    #[derive(Debug, Default)]
    struct SyncFails(std::sync::Mutex<Overlay>);

    impl Engine for SyncFails {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.0.lock().unwrap().get(key).cloned().flatten())
        }

        fn range(&self, _: &[u8], _: &[u8], _: bool, _: usize) -> Result<KeyValues, StoreError> {
            Ok(Vec::new())
        }

        fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
            self.0.lock().unwrap().extend(writes);
            Ok(())
        }

        fn sync(&self) -> Result<(), StoreError> {
            Err(StoreError::Engine("injected fdatasync failure".into()))
        }

        fn begin(&self) -> Result<Box<dyn Transaction + '_>, StoreError> {
            Ok(Box::new(Direct(self)))
        }
    }

    const CHILD: &str = "BANTER_TEST_SYNC_FAILS_CHILD";

    /// In a child process (this same test, re-run with CHILD set): a write whose group cannot
    /// be synced must take the process down before anyone is answered.
    #[test]
    fn security_a_failed_sync_stops_the_writer_before_any_answer() {
        if std::env::var_os(CHILD).is_some() {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let writer = Writer::start(Arc::new(SyncFails::default()), 8, CommitMetrics::default());
            let answered = runtime.block_on(writer.write(
                |txn| {
                    txn.put(b"k".to_vec(), &1u8);
                    Ok::<_, ()>(())
                },
                |()| (),
            ));
            println!("ANSWERED {answered:?}");
            return;
        }
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::commit::tests::security_a_failed_sync_stops_the_writer_before_any_answer",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "the writer went on after a failed sync: {stdout}");
        assert!(!stdout.contains("ANSWERED"), "a write was answered: {stdout}");
        assert!(stderr.contains("sync failed after a group was applied"), "{stderr}");
    }
}
