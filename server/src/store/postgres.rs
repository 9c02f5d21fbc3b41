//! The PostgreSQL engine (issue 17): the same ordered key-value store as sled, in one table
//! of a PostgreSQL-compatible database, so that several banterd nodes can share one truth.
//!
//! - Every group commit is one `SERIALIZABLE` transaction that its reads go through too: two
//!   nodes that read the same room head and both append are caught at COMMIT, and the loser's
//!   group is answered [`StoreError::Conflict`] (retryable; nothing of it was applied). An ack
//!   is sent only after COMMIT returns, and PostgreSQL's COMMIT is durable
//!   (`synchronous_commit` on, its default), so [`Engine::sync`] has nothing left to do.
//! - The client library blocks, and must not block inside the async runtime that serves
//!   connections (it runs a runtime of its own), so every database call runs on a thread of
//!   this engine's: a few readers sharing a queue, and one writer connection that a group's
//!   transaction holds from BEGIN to COMMIT.
//! - Keys and values are `bytea`, compared byte by byte as sled compares them, so range
//!   scans (a room's log, a user's rooms) come back in the same order.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use postgres::error::SqlState;
use postgres::{Client, GenericClient, NoTls, Statement};

use super::engine::{Engine, KeyValues, StoreError, Transaction, Write};

/// Reader connections: reads of concurrent requests run side by side on these.
const READERS: usize = 4;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS banter_kv (k bytea PRIMARY KEY, v bytea NOT NULL)";
const GET: &str = "SELECT v FROM banter_kv WHERE k = $1";
const GET_MANY: &str = "SELECT k, v FROM banter_kv WHERE k = ANY($1)";
const RANGE: &str = "SELECT k, v FROM banter_kv WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3";
const RANGE_DESC: &str =
    "SELECT k, v FROM banter_kv WHERE k >= $1 AND k < $2 ORDER BY k DESC LIMIT $3";
const UPSERT: &str = "INSERT INTO banter_kv (k, v) SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) \
     ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v";
const DELETE: &str = "DELETE FROM banter_kv WHERE k = ANY($1::bytea[])";

/// One thread's connection, with the statements it has prepared: a query by its text alone
/// would be prepared again each time, one more round trip per read.
pub(crate) struct Db {
    pub(crate) client: Client,
    prepared: HashMap<&'static str, Statement>,
    /// Counts this thread's connections: a transaction begun on one connection must not
    /// go on, in autocommit, on the next one after a reconnect.
    generation: u64,
}

impl Db {
    /// `sql`, prepared on this connection once.
    pub(crate) fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// Work for a connection thread: runs with the thread's connection (made on first use, and
/// again after it broke), or why there is none.
type Job = Box<dyn FnOnce(Result<&mut Db, &StoreError>) + Send>;

/// Threads that each own one database connection and take jobs from one queue (the search
/// index's PostgreSQL backend has its own).
pub(crate) struct Connections {
    jobs: mpsc::Sender<Job>,
}

impl Connections {
    pub(crate) fn spawn(
        config: &postgres::Config,
        threads: usize,
        name: &str,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let (config, queue) = (config.clone(), queue.clone());
            std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
                let mut db: Result<Db, StoreError> =
                    Err(StoreError::Unavailable("not connected yet".into()));
                let mut generation = 0;
                loop {
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(job) = job else { return };
                    if db.as_ref().is_ok_and(|db| db.client.is_closed()) || db.is_err() {
                        generation += 1;
                        db = config
                            .connect(NoTls)
                            .map(|client| Db { client, prepared: HashMap::new(), generation })
                            .map_err(|e| store_error(&e));
                    }
                    job(db.as_mut().map_err(|e| &*e));
                }
            })?;
        }
        Ok(Self { jobs })
    }

    /// Runs `f` on one of the threads and waits for its result.
    pub(crate) fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.run_checked(None, f)
    }

    /// [`run`](Self::run) inside the transaction begun on connection `generation`: fails
    /// without running `f` if that connection broke since.
    fn run_checked<R: Send + 'static>(
        &self,
        generation: Option<u64>,
        f: impl FnOnce(&mut Db) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |db| {
            let result = match db {
                Ok(db) if generation.is_some_and(|g| g != db.generation) => {
                    Err(StoreError::Unavailable("the connection broke in a transaction".into()))
                }
                Ok(db) => f(db).map_err(|e| store_error(&e)),
                Err(why) => Err(match why {
                    StoreError::Unavailable(why) => {
                        StoreError::Unavailable(format!("cannot connect: {why}"))
                    }
                    other => StoreError::Engine(format!("cannot connect: {other}")),
                }),
            };
            let _ = tx.send(result);
        });
        self.jobs.send(job).map_err(|_| StoreError::Engine("database threads stopped".into()))?;
        rx.recv().map_err(|_| StoreError::Engine("database thread failed".into()))?
    }
}

/// A serialization failure or deadlock means another writer got in the way; a connection
/// that broke (or a server shutting down) means the database is away: both retryable.
fn store_error(error: &postgres::Error) -> StoreError {
    let io = std::error::Error::source(error).is_some_and(|e| e.is::<std::io::Error>());
    match error.code() {
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE => StoreError::Conflict,
        Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED => StoreError::Conflict,
        // The transaction was aborted by an earlier statement of the group (a serialization
        // failure, mostly): nothing of it applies.
        Some(code) if *code == SqlState::IN_FAILED_SQL_TRANSACTION => StoreError::Conflict,
        Some(code) if code.code().starts_with("57P") || code.code().starts_with("08") => {
            StoreError::Unavailable(error.to_string())
        }
        None if error.is_closed() || io => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Engine(format!("database: {error}")),
    }
}

/// Banter's key-value store in PostgreSQL.
pub struct PgEngine {
    readers: Connections,
    /// The connection group commits (and plain batches) write through; a transaction holds
    /// it from BEGIN to COMMIT.
    writer: Mutex<Connections>,
}

impl std::fmt::Debug for PgEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEngine").finish_non_exhaustive()
    }
}

impl PgEngine {
    /// Connects to the database at `url` (a `postgres://` URL or `key=value` settings) and
    /// creates the table if it is not there.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let config: postgres::Config =
            url.parse().map_err(|e| StoreError::Engine(format!("database URL: {e}")))?;
        let readers = Connections::spawn(&config, READERS, "banter-db-read")?;
        let writer = Connections::spawn(&config, 1, "banter-db-write")?;
        writer.run(|db| db.client.batch_execute(SCHEMA))?;
        Ok(Self { readers, writer: Mutex::new(writer) })
    }

    fn writer(&self) -> MutexGuard<'_, Connections> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn range_on(
    db: &mut Db,
    start: &[u8],
    end: &[u8],
    reverse: bool,
    limit: usize,
) -> Result<KeyValues, postgres::Error> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement = db.statement(if reverse { RANGE_DESC } else { RANGE })?;
    let rows = db.client.query(&statement, &[&start, &end, &limit])?;
    Ok(rows.into_iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Applies `writes` through `client` (the connection, or a transaction on it), with the
/// statements prepared on that connection.
fn apply_on(
    client: &mut impl GenericClient,
    (upsert, delete): (&Statement, &Statement),
    writes: &[Write],
) -> Result<(), postgres::Error> {
    let (mut keys, mut values, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
    for (key, value) in writes {
        match value {
            Some(value) => {
                keys.push(key.as_slice());
                values.push(value.as_slice());
            }
            None => deleted.push(key.as_slice()),
        }
    }
    if !keys.is_empty() {
        client.execute(upsert, &[&keys, &values])?;
    }
    if !deleted.is_empty() {
        client.execute(delete, &[&deleted])?;
    }
    Ok(())
}

/// The write statements, prepared.
fn write_statements(db: &mut Db) -> Result<(Statement, Statement), postgres::Error> {
    Ok((db.statement(UPSERT)?, db.statement(DELETE)?))
}

/// A read on one of `connections`' threads (the readers', or a transaction's writer, begun
/// on connection `generation`).
fn get_via(
    connections: &Connections,
    generation: Option<u64>,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let key = key.to_vec();
    connections.run_checked(generation, move |db| {
        let statement = db.statement(GET)?;
        Ok(db.client.query_opt(&statement, &[&key])?.map(|row| row.get(0)))
    })
}

/// A range scan on one of `connections`' threads.
fn range_via(
    connections: &Connections,
    generation: Option<u64>,
    start: &[u8],
    end: &[u8],
    reverse: bool,
    limit: usize,
) -> Result<KeyValues, StoreError> {
    let (start, end) = (start.to_vec(), end.to_vec());
    connections.run_checked(generation, move |db| range_on(db, &start, &end, reverse, limit))
}

impl Engine for PgEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        get_via(&self.readers, None, key)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let asked = keys.to_vec();
        let found: HashMap<Vec<u8>, Vec<u8>> = self.readers.run(move |db| {
            let statement = db.statement(GET_MANY)?;
            let rows = db.client.query(&statement, &[&asked])?;
            Ok(rows.into_iter().map(|row| (row.get(0), row.get(1))).collect())
        })?;
        Ok(keys.iter().map(|key| found.get(key).cloned()).collect())
    }

    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<KeyValues, StoreError> {
        range_via(&self.readers, None, start, end, reverse, limit)
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.writer().run(move |db| {
            let (upsert, delete) = write_statements(db)?;
            let mut transaction = db.client.transaction()?;
            apply_on(&mut transaction, (&upsert, &delete), &writes)?;
            transaction.commit()
        })
    }

    fn sync(&self) -> Result<(), StoreError> {
        // COMMIT returned: the writes are durable.
        Ok(())
    }

    fn begin(&self) -> Result<Box<dyn Transaction + '_>, StoreError> {
        let writer = self.writer();
        let generation = writer.run(|db| {
            db.client.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE")?;
            Ok(db.generation)
        })?;
        Ok(Box::new(PgTransaction { writer: Some(writer), generation }))
    }
}

/// One group commit: a serializable transaction on the writer connection.
struct PgTransaction<'a> {
    /// Taken by COMMIT; still here on drop means the group is abandoned (rolled back).
    writer: Option<MutexGuard<'a, Connections>>,
    /// The writer connection BEGIN ran on.
    generation: u64,
}

impl PgTransaction<'_> {
    fn connection(&self) -> Result<&Connections, StoreError> {
        self.writer.as_deref().ok_or_else(|| StoreError::Engine("transaction finished".into()))
    }
}

impl Transaction for PgTransaction<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        get_via(self.connection()?, Some(self.generation), key)
    }

    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<KeyValues, StoreError> {
        range_via(self.connection()?, Some(self.generation), start, end, reverse, limit)
    }

    fn commit(mut self: Box<Self>, writes: Vec<Write>) -> Result<(), StoreError> {
        let writer = self.writer.take().ok_or(StoreError::Conflict)?;
        let committed = writer.run_checked(Some(self.generation), move |db| {
            let (upsert, delete) = write_statements(db)?;
            apply_on(&mut db.client, (&upsert, &delete), &writes)?;
            db.client.batch_execute("COMMIT")
        });
        if committed.is_err() {
            // Whatever failed, the connection must not stay inside the transaction.
            let _ = writer.run(|db| db.client.batch_execute("ROLLBACK"));
        }
        committed
    }
}

impl Drop for PgTransaction<'_> {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            let _ = writer.run(|db| db.client.batch_execute("ROLLBACK"));
        }
    }
}
