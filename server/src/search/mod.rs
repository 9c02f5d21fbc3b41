//! Full-text search (issue 18, spec §6.10), fed from committed entries only and queried with
//! the rooms the caller may read now. Two places keep the documents, behind [`Writer`] and
//! [`Reader`]: a tantivy index in the data dir ([`local`], the sled default), or the
//! cluster's PostgreSQL with its own full-text search ([`postgres`]); both take the terms of
//! [`words`], so a query finds the same messages on either.
//!
//! - Feeding: every entry the fan-out delivers (so only durable ones, in each room's order)
//!   is queued to one indexer thread, which commits at most every second, each room's
//!   progress with the documents. At start the indexer reads the rooms' logs from there, so
//!   a crash between commit and indexing loses nothing; a missing index (or one of another
//!   format) is rebuilt from the logs. Backups do not carry the index.
//! - Documents: one per message (its latest text; an edit replaces it, a delete removes it)
//!   and per shared file (its name), each with the seq of the entry that last set it, so
//!   that cluster nodes indexing the same room in any order converge. An anonymous post is
//!   indexed with sender 0, its author kept apart: `from:` finds it only in the rooms listed
//!   in [`Plan::revealing`], where the caller may reveal authors (and the handler audits it).
//! - Authorization is the caller's: [`Plan::rooms`] holds the rooms already checked by the
//!   request handler; nothing outside them can match.

mod local;
mod postgres;
pub(crate) mod query;
pub(crate) mod words;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banter_protocol::ids::{RoomId, UserId};

use crate::config::{Config, StoreKind};
use crate::requests::Appended;
use crate::store::records::{EntryKind, LogEntry, RoomRecord};
use crate::store::{Store, keys};

/// The index's directory in the data dir.
pub(crate) const DIR: &str = "search";
/// How long an indexed entry may wait for its commit.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// How often a cluster node's indexer reads every room's head anyway: the bus may lose the
/// news of an entry in a room this node has no sessions in.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Entries queued for the indexer, at most.
const QUEUE: usize = 65_536;
/// Documents the indexer holds before it commits them early (a catch-up over a big log
/// would otherwise hold all of it, and send it to PostgreSQL in one statement).
const BATCH: usize = 50_000;
/// Longest snippet, in characters, before it is cut around the first match.
const SNIPPET_CHARS: usize = 200;

/// Why the index cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index: {0}")]
    Io(#[from] std::io::Error),
    #[error("search index: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("search index: the indexer stopped")]
    Stopped,
}

/// Where the index lives.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    /// A tantivy index in this directory.
    Dir(PathBuf),
    /// Tables in the cluster's PostgreSQL (its `database_url`).
    Postgres(String),
}

impl Place {
    /// Where a server with `config` keeps its index.
    pub(crate) fn of(config: &Config) -> Self {
        match config.store {
            StoreKind::Sled => Self::Dir(config.data_dir.join(DIR)),
            StoreKind::Postgres => Self::Postgres(config.database_url.clone()),
        }
    }

    fn open(&self) -> Result<Opened, SearchError> {
        match self {
            Self::Dir(dir) => local::open(dir),
            Self::Postgres(url) => postgres::open(url),
        }
    }
}

/// Each room's last indexed seq.
type Progress = HashMap<RoomId, u64>;

/// A document to index: a message's latest text, or a shared file's name.
#[derive(Debug, Clone)]
struct Doc {
    room: RoomId,
    /// The message's (or upload's) seq.
    seq: u64,
    /// The seq of the entry that set this text: `seq`, or an edit's.
    version: u64,
    ts: u64,
    /// 0 for an anonymous post.
    sender: u64,
    /// Who wrote an anonymous post (0 for any other).
    author: u64,
    file: bool,
    text: String,
}

impl Doc {
    /// Whether this text replaces an earlier one (an edit's).
    fn replaces(&self) -> bool {
        self.version != self.seq
    }
}

/// The writing half of an index, owned by the indexer thread.
trait Writer: Send {
    /// Adds a document, or replaces the one of its (room, seq) if that has an older version.
    fn put(&mut self, doc: Doc) -> Result<(), SearchError>;
    /// Removes the document of (room, seq): it was deleted by the entry at `version`.
    fn remove(&mut self, room: RoomId, seq: u64, version: u64) -> Result<(), SearchError>;
    /// Makes what was put and removed durable and searchable, with `progress`.
    fn commit(&mut self, progress: &Progress) -> Result<(), SearchError>;
}

/// The reading half of an index, shared by searches.
trait Reader: Send + Sync {
    /// Up to `plan.limit` documents matching the plan, newest first, after its cursor; and
    /// whether more may follow.
    fn find(&self, plan: &Plan) -> Result<(Vec<Found>, bool), SearchError>;
    /// Documents in the index.
    fn documents(&self) -> Result<u64, SearchError>;
}

/// An opened index: both halves, and its committed progress.
struct Opened {
    reader: Box<dyn Reader>,
    writer: Box<dyn Writer>,
    progress: Progress,
}

/// A document found, as stored.
#[derive(Debug, Clone)]
struct Found {
    room: RoomId,
    seq: u64,
    ts: u64,
    sender: u64,
    author: u64,
    file: bool,
    text: String,
}

impl Found {
    fn order(&self) -> Cursor {
        (self.ts, self.room, self.seq)
    }
}

/// The order key of a hit and a page cursor: newest first.
pub(crate) type Cursor = (u64, RoomId, u64);

/// A search, its rooms already authorized.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The rooms to search: the caller may read each.
    pub(crate) rooms: Vec<RoomId>,
    /// Of those, the rooms where the caller may reveal authors (the handler allows one, in
    /// a search confined to it): there `senders` finds anonymous posts by their author too.
    pub(crate) revealing: Vec<RoomId>,
    /// Only these senders (`None`: anyone; an empty list matches nothing).
    pub(crate) senders: Option<Vec<UserId>>,
    pub(crate) after: Option<u64>,
    pub(crate) before: Option<u64>,
    pub(crate) files_only: bool,
    /// The words and phrases that must all match, each as its terms in order (analysed once,
    /// by the handler; a word without terms is an empty list).
    pub(crate) required: Vec<Vec<String>>,
    /// The words and phrases that must not match, likewise.
    pub(crate) excluded: Vec<Vec<String>>,
    pub(crate) cursor: Option<Cursor>,
    pub(crate) limit: usize,
    /// The caller: their own anonymous posts show them as the sender.
    pub(crate) caller: UserId,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) room: RoomId,
    pub(crate) seq: u64,
    pub(crate) sender: UserId,
    pub(crate) ts: u64,
    pub(crate) file: bool,
    pub(crate) snippet: String,
    pub(crate) highlights: Vec<(usize, usize)>,
    /// An anonymous post shown with its author because `from:` asked for them where the
    /// caller may reveal authors: the handler audits it.
    pub(crate) revealed: bool,
}

enum Job {
    Entry(Appended),
    /// Commit what is pending now, then answer.
    Flush(mpsc::Sender<()>),
    Stop(mpsc::Sender<()>),
}

/// The index: queried from request tasks, fed by its own thread.
pub(crate) struct SearchIndex {
    reader: Box<dyn Reader>,
    jobs: Mutex<Option<mpsc::SyncSender<Job>>>,
    /// Set when an entry found the queue full and was dropped: the indexer then reads the
    /// logs from where it is (the entries are durable there), so a write flood costs the
    /// server at most [`QUEUE`] queued entries, never unbounded memory.
    behind: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl SearchIndex {
    /// Opens the index at `place` (rebuilding it when it is missing, unreadable or of
    /// another format) and starts the indexer, which first catches up with the logs.
    pub(crate) fn open(place: &Place, store: Store) -> Result<Self, SearchError> {
        Self::open_with_queue(place, store, QUEUE)
    }

    fn open_with_queue(place: &Place, store: Store, queue: usize) -> Result<Self, SearchError> {
        let Opened { reader, writer, progress } = place.open()?;
        let (jobs, queue) = mpsc::sync_channel(queue);
        let behind = Arc::new(AtomicBool::new(false));
        let indexer = Indexer {
            writer,
            store,
            indexed: progress,
            pending: 0,
            behind: behind.clone(),
            sweep: matches!(place, Place::Postgres(_)).then_some(SWEEP_EVERY),
        };
        let thread = std::thread::Builder::new()
            .name("search-indexer".into())
            .spawn(move || indexer.run(&queue))?;
        Ok(Self { reader, jobs: Mutex::new(Some(jobs)), behind, thread: Mutex::new(Some(thread)) })
    }

    /// Queues a committed entry (called in each room's order, by the fan-out).
    pub(crate) fn entry(&self, appended: &Appended) {
        if let Some(jobs) = &*self.jobs.lock().unwrap_or_else(|e| e.into_inner()) {
            if let Err(mpsc::TrySendError::Full(_)) = jobs.try_send(Job::Entry(appended.clone())) {
                self.behind.store(true, Ordering::Relaxed);
            }
        }
    }

    fn ask(&self, job: impl FnOnce(mpsc::Sender<()>) -> Job) -> Result<(), SearchError> {
        let (done, wait) = mpsc::channel();
        // A clone, so that waiting for room in a full queue never holds up `entry`.
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        jobs.ok_or(SearchError::Stopped)?.send(job(done)).map_err(|_| SearchError::Stopped)?;
        wait.recv().map_err(|_| SearchError::Stopped)
    }

    /// Waits until everything queued so far (the catch-up included) is committed and
    /// searchable. For `banterd reindex` and tests.
    pub(crate) fn flush(&self) -> Result<(), SearchError> {
        self.ask(Job::Flush)
    }

    /// Commits what is pending and stops the indexer.
    pub(crate) fn close(&self) {
        let _ = self.ask(Job::Stop);
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }

    /// Documents in the index.
    pub(crate) fn documents(&self) -> Result<u64, SearchError> {
        self.reader.documents()
    }

    /// Runs a search: up to `plan.limit` hits, newest first, and the cursor of the last one
    /// when more may follow.
    pub(crate) fn search(&self, plan: &Plan) -> Result<(Vec<Hit>, Option<Cursor>), SearchError> {
        // A word with no terms (only punctuation, or longer than a term may be) can match
        // nothing: dropping it must not leave a query that matches everything.
        let wordless = !plan.required.is_empty() && plan.required.iter().all(Vec::is_empty);
        if plan.rooms.is_empty() || plan.senders.as_ref().is_some_and(Vec::is_empty) || wordless {
            return Ok((Vec::new(), None));
        }
        let (found, more) = self.reader.find(plan)?;
        let next = if more { found.last().map(Found::order) } else { None };
        let terms: HashSet<&str> = plan.required.iter().flatten().map(String::as_str).collect();
        let asked = |author: u64| {
            plan.senders.as_ref().is_some_and(|senders| senders.contains(&UserId(author)))
        };
        let hits = found
            .into_iter()
            .map(|doc| {
                let (snippet, highlights) = snippet(&doc.text, &terms);
                let revealed = doc.sender == 0
                    && doc.author != plan.caller.0
                    && asked(doc.author)
                    && plan.revealing.contains(&doc.room);
                let sender = match doc.sender {
                    0 if doc.author == plan.caller.0 || revealed => UserId(doc.author),
                    sender => UserId(sender),
                };
                Hit {
                    room: doc.room,
                    seq: doc.seq,
                    sender,
                    ts: doc.ts,
                    file: doc.file,
                    snippet,
                    highlights,
                    revealed,
                }
            })
            .collect();
        Ok((hits, next))
    }
}

/// How the committed index stands against the logs (for `banterd check`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// No index yet: built at the next start, or by `banterd reindex`.
    Missing,
    Present {
        documents: u64,
        /// Rooms whose logs are ahead of the index, and by how many entries in all.
        rooms_behind: u64,
        entries_behind: u64,
        /// Messages and files the logs hold that are not deleted.
        expected: u64,
    },
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => write!(
                f,
                "search index: none yet (built at the next start, or by `banterd reindex`)"
            ),
            Self::Present { documents, rooms_behind: 0, expected, .. } if documents == expected => {
                write!(f, "search index: {documents} documents, up to date")
            }
            Self::Present { documents, rooms_behind: 0, expected, .. } => write!(
                f,
                "search index: {documents} documents where the logs hold {expected}: run `banterd reindex`"
            ),
            Self::Present { documents, rooms_behind, entries_behind, .. } => write!(
                f,
                "search index: {documents} documents; {rooms_behind} rooms behind by {entries_behind} entries (banterd indexes them while it runs)"
            ),
        }
    }
}

/// Reads the committed index's progress and compares it with the logs.
pub(crate) fn status(place: &Place, store: &Store) -> Result<Status, SearchError> {
    let committed = match place {
        Place::Dir(dir) => local::committed(dir)?,
        Place::Postgres(url) => postgres::committed(url)?,
    };
    let Some((documents, progress)) = committed else {
        return Ok(Status::Missing);
    };
    let (mut rooms_behind, mut entries_behind) = (0, 0);
    store.scan::<RoomRecord>(&[keys::tag::ROOM], |key, record| {
        let indexed = progress.get(&RoomId(keys::id_at(key, 1))).copied().unwrap_or(0);
        if record.last_seq > indexed {
            rooms_behind += 1;
            entries_behind += record.last_seq - indexed;
        }
    })?;
    let mut expected: i64 = 0;
    store.scan::<LogEntry>(&[keys::tag::LOG], |_, entry| match entry.kind {
        EntryKind::Posted { .. } | EntryKind::FileShared { .. } => expected += 1,
        EntryKind::Deleted { .. } => expected -= 1,
        _ => {}
    })?;
    let expected = u64::try_from(expected).unwrap_or(0);
    Ok(Status::Present { documents, rooms_behind, entries_behind, expected })
}

/// Rebuilds the index from the logs (`banterd reindex`, banterd stopped: on a cluster,
/// every node); returns its documents.
pub(crate) fn rebuild(place: &Place, store: Store) -> Result<u64, SearchError> {
    match place {
        Place::Dir(dir) if dir.exists() => std::fs::remove_dir_all(dir)?,
        Place::Dir(_) => {}
        Place::Postgres(url) => postgres::clear(url)?,
    }
    let index = SearchIndex::open(place, store)?;
    index.flush()?;
    let documents = index.documents();
    index.close();
    documents
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

impl Drop for SearchIndex {
    fn drop(&mut self) {
        self.close();
    }
}

/// The snippet of `text`: all of it when short, else about [`SNIPPET_CHARS`] characters
/// around the first match, cut at spaces; and the byte ranges of it whose terms are among
/// `terms` (merged, within the protocol's bounds).
fn snippet(text: &str, terms: &HashSet<&str>) -> (String, Vec<(usize, usize)>) {
    use banter_protocol::message::max;
    let mut matched: Vec<(usize, usize)> = Vec::new();
    let mut analyzer = words::analyzer();
    let mut stream = analyzer.token_stream(text);
    while let Some(token) = stream.next() {
        if terms.contains(token.text.as_str()) {
            matched.push((token.offset_from, token.offset_to));
        }
    }
    // The window: from a little before the first match, at most SNIPPET_CHARS characters.
    let first = matched.first().map_or(0, |m| m.0);
    let mut start =
        text[..first].char_indices().rev().nth(SNIPPET_CHARS / 4).map_or(0, |(at, _)| at);
    if start > 0 {
        // Begin at a word: after the first space from there (if any before the match).
        if let Some(space) = text[start..first].find(char::is_whitespace) {
            start += space + 1;
        }
    }
    let mut end =
        text[start..].char_indices().nth(SNIPPET_CHARS).map_or(text.len(), |(at, _)| start + at);
    if end < text.len() {
        if let Some(space) = text[start..end].rfind(char::is_whitespace) {
            if start + space > first {
                end = start + space;
            }
        }
    }
    while end - start > max::SEARCH_SNIPPET {
        end -= 1;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
    }
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (from, to) in matched {
        if from < start || to > end {
            continue;
        }
        let (from, to) = (from - start, to - start);
        match ranges.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => ranges.push((from, to)),
        }
    }
    ranges.truncate(max::SEARCH_HIGHLIGHTS);
    (text[start..end].to_owned(), ranges)
}

/// The indexer thread's state.
struct Indexer {
    writer: Box<dyn Writer>,
    store: Store,
    indexed: Progress,
    /// Entries indexed since the last commit.
    pending: usize,
    behind: Arc<AtomicBool>,
    /// How often to read every room's head regardless (cluster nodes).
    sweep: Option<Duration>,
}

impl Indexer {
    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        if let Err(error) = self.catch_up() {
            tracing::error!(%error, "search index: catching up with the logs failed");
        }
        let (mut last_commit, mut last_sweep) = (Instant::now(), Instant::now());
        loop {
            let mut wait = if self.pending > 0 {
                COMMIT_EVERY.saturating_sub(last_commit.elapsed())
            } else {
                Duration::from_secs(3600)
            };
            if let Some(every) = self.sweep {
                wait = wait.min(every.saturating_sub(last_sweep.elapsed()));
            }
            match jobs.recv_timeout(wait) {
                Ok(Job::Entry(appended)) => {
                    if let Err(error) = self.follow(&appended) {
                        tracing::error!(%error, room = appended.room.0, seq = appended.seq, "search index: an entry was not indexed");
                    }
                }
                Ok(Job::Flush(done)) => {
                    self.commit();
                    last_commit = Instant::now();
                    let _ = done.send(());
                }
                Ok(Job::Stop(done)) => {
                    self.commit();
                    let _ = done.send(());
                    return;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.commit();
                    return;
                }
            }
            let sweep_due = self.sweep.is_some_and(|every| last_sweep.elapsed() >= every);
            if self.behind.swap(false, Ordering::Relaxed) || sweep_due {
                last_sweep = Instant::now();
                if let Err(error) = self.catch_up() {
                    tracing::error!(%error, "search index: catching up with the logs failed");
                }
            }
            if self.pending > 0 && last_commit.elapsed() >= COMMIT_EVERY {
                self.commit();
                last_commit = Instant::now();
            }
        }
    }

    /// Indexes every room's entries after what the index last committed.
    fn catch_up(&mut self) -> Result<(), SearchError> {
        let mut heads = Vec::new();
        self.store.scan::<RoomRecord>(&[keys::tag::ROOM], |key, record| {
            heads.push((RoomId(keys::id_at(key, 1)), record.last_seq));
        })?;
        let mut caught_up = 0u64;
        for (room, head) in heads {
            let from = self.indexed.get(&room).copied().unwrap_or(0);
            if head > from {
                self.fill(room, head)?;
                caught_up += head - from;
            }
        }
        if caught_up > 0 {
            tracing::info!(entries = caught_up, "search index caught up with the logs");
            self.commit();
        }
        Ok(())
    }

    /// Indexes `room`'s entries from the log up to `head`.
    fn fill(&mut self, room: RoomId, head: u64) -> Result<(), SearchError> {
        let mut start = self.indexed.get(&room).copied().unwrap_or(0) + 1;
        while start <= head {
            let page = self.store.range::<LogEntry>(
                &keys::log(room, start),
                &keys::log(room, head + 1),
                false,
                1024,
            )?;
            if page.is_empty() {
                break;
            }
            for (key, entry) in page {
                let seq = keys::id_at(&key, 9);
                let anonymous = self.store.contains(&keys::anonymous(room, seq))?;
                self.index(&Appended { room, seq, entry, anonymous })?;
                start = seq + 1;
            }
        }
        Ok(())
    }

    /// A live entry: indexed once, in order, after any gap is filled from the log.
    fn follow(&mut self, appended: &Appended) -> Result<(), SearchError> {
        let done = self.indexed.get(&appended.room).copied().unwrap_or(0);
        if appended.seq <= done {
            return Ok(());
        }
        if appended.seq > done + 1 {
            self.fill(appended.room, appended.seq - 1)?;
        }
        self.index(appended)
    }

    fn index(&mut self, appended: &Appended) -> Result<(), SearchError> {
        let Appended { room, seq, entry, anonymous } = appended;
        let doc = |seq: u64, entry: &LogEntry, anonymous: bool, text: &str, version: u64| Doc {
            room: *room,
            seq,
            version,
            ts: entry.ts,
            sender: if anonymous { 0 } else { entry.sender },
            author: if anonymous { entry.sender } else { 0 },
            file: matches!(entry.kind, EntryKind::FileShared { .. }),
            text: text.to_owned(),
        };
        match &entry.kind {
            EntryKind::Posted { text, .. } | EntryKind::FileShared { name: text, .. } => {
                self.writer.put(doc(*seq, entry, *anonymous, text, *seq))?;
            }
            EntryKind::Edited { target, text } => {
                // The document keeps the message's own time and author; only its text changes.
                if let Some(original) = self.store.get::<LogEntry>(&keys::log(*room, *target))? {
                    let hidden = self.store.contains(&keys::anonymous(*room, *target))?;
                    self.writer.put(doc(*target, &original, hidden, text, *seq))?;
                }
            }
            EntryKind::Deleted { target } => self.writer.remove(*room, *target, *seq)?,
            _ => {}
        }
        self.indexed.insert(*room, *seq);
        self.pending += 1;
        if self.pending >= BATCH {
            self.commit();
        }
        Ok(())
    }

    /// Commits pending documents with the rooms' progress, and makes them searchable.
    fn commit(&mut self) {
        if self.pending == 0 {
            return;
        }
        match self.writer.commit(&self.indexed) {
            Ok(()) => self.pending = 0,
            Err(error) => tracing::error!(%error, "search index: commit failed; retried"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::RoomRecordV2;
    use crate::store::{Engine as _, SledEngine, encode};

    #[tokio::test]
    async fn entries_dropped_from_a_full_queue_are_read_from_the_logs() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(SledEngine::open(&dir.path().join("db")).unwrap());
        let store = Store::open(engine.clone(), 16).unwrap();
        let place = Place::Dir(dir.path().join(DIR));
        let index = SearchIndex::open_with_queue(&place, store.clone(), 1).unwrap();
        index.flush().unwrap();
        let room = RoomId(7);
        let mut appended = Vec::new();
        for seq in 1..=200 {
            let kind = EntryKind::Posted {
                client_msg_id: seq.into(),
                reply_to: None,
                text: format!("flood {seq}"),
            };
            let entry = LogEntry { ts: seq, sender: 1, kind };
            engine.apply(vec![(keys::log(room, seq), Some(encode(&entry)))]).unwrap();
            appended.push(Appended { room, seq, entry, anonymous: false });
        }
        let record = RoomRecordV2 {
            direct: false,
            name: "flood".into(),
            topic: String::new(),
            category: String::new(),
            private: false,
            voice: false,
            created: 1,
            last_seq: 200,
            members: 1,
            direct_pair: None,
        };
        engine.apply(vec![(keys::room(room), Some(encode(&record.upgrade(200))))]).unwrap();
        // A queue of one: most of these find it full and are dropped.
        for entry in &appended {
            index.entry(entry);
        }
        for _ in 0..50 {
            index.flush().unwrap();
            if index.documents().unwrap() == 200 {
                break;
            }
        }
        assert_eq!(
            index.documents().unwrap(),
            200,
            "every entry indexed, the dropped ones from the log"
        );
        index.close();
        store.close().await;
    }

    fn terms<'a>(words: &[&'a str]) -> HashSet<&'a str> {
        words.iter().copied().collect()
    }

    #[test]
    fn a_short_text_is_its_own_snippet_with_every_match_marked() {
        let (snippet, ranges) = snippet("Café? café! CAFE.", &terms(&["cafe"]));
        assert_eq!(snippet, "Café? café! CAFE.");
        let marked: Vec<&str> = ranges.iter().map(|&(a, b)| &snippet[a..b]).collect();
        assert_eq!(marked, ["Café", "café", "CAFE"]);
    }

    #[test]
    fn a_long_text_is_cut_at_spaces_around_the_first_match() {
        let text = format!("{} needle {}", "hay ".repeat(200), "straw ".repeat(200));
        let (cut, ranges) = snippet(&text, &terms(&["needle"]));
        assert!(cut.chars().count() <= SNIPPET_CHARS, "{}", cut.len());
        assert!(cut.starts_with("hay ") && cut.ends_with("straw"), "{cut:?}");
        assert_eq!(ranges.len(), 1);
        assert_eq!(&cut[ranges[0].0..ranges[0].1], "needle");
        // Without a match (a search by filters only), the start of the text.
        let (plain, none) = snippet(&text, &HashSet::new());
        assert!(plain.starts_with("hay hay") && none.is_empty());
    }

    #[test]
    fn snippets_of_wide_characters_stay_within_the_protocol_bound() {
        let text = "𝔘".repeat(400);
        let (cut, _) = snippet(&text, &HashSet::new());
        assert!(cut.len() <= banter_protocol::message::max::SEARCH_SNIPPET);
    }
}
