//! Full-text search (issue 18, spec §6.10): a tantivy index in `search/` in the data dir, fed
//! from committed entries only, and queried with the rooms the caller may read now.
//!
//! - Feeding: every entry the fan-out delivers (so only durable ones, in each room's order)
//!   is queued to one indexer thread, which commits at most every second. Each commit
//!   records, in the index's own commit payload, how far each room is indexed; at start the
//!   indexer reads the rooms' logs from there, so a crash between commit and indexing loses
//!   nothing, and a missing or unreadable index (or one of another format) is rebuilt from
//!   the logs. Backups do not carry the index.
//! - Documents: one per message (its latest text; an edit replaces it, a delete removes it)
//!   and per shared file (its name). An anonymous post is indexed without its author.
//! - Authorization is the caller's: [`Plan::rooms`] holds the rooms already checked by the
//!   request handler; nothing outside them can match.

pub(crate) mod query;
pub(crate) mod words;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use banter_protocol::ids::{RoomId, UserId};
use tantivy::collector::TopDocs;
use tantivy::query::{
    AllQuery, BooleanQuery, Occur, PhraseQuery, Query, QueryClone as _, RangeQuery, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term,
};

use crate::requests::Appended;
use crate::store::records::{EntryKind, LogEntry, RoomRecord};
use crate::store::{Store, keys};

/// The index's directory in the data dir.
pub(crate) const DIR: &str = "search";
/// The layout of documents and payload; an index of another format is rebuilt.
const FORMAT: u32 = 1;
/// How long an indexed entry may wait for its commit.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// The indexer's memory for documents not yet written to a segment.
const WRITER_BYTES: usize = 20_000_000;
/// Entries queued for the indexer, at most.
const QUEUE: usize = 65_536;
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

#[derive(Debug, Clone, Copy)]
struct Fields {
    key: Field,
    room: Field,
    seq: Field,
    ts: Field,
    sender: Field,
    author: Field,
    file: Field,
    text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text_options = TextOptions::default().set_stored().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(words::ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        key: builder.add_text_field("key", STRING),
        room: builder.add_u64_field("room", INDEXED | FAST | STORED),
        seq: builder.add_u64_field("seq", STORED),
        ts: builder.add_u64_field("ts", INDEXED | FAST | STORED),
        // 0 for an anonymous post: `from:` never finds it.
        sender: builder.add_u64_field("sender", INDEXED | STORED),
        // Who wrote an anonymous post, stored (not searchable) so its author sees their id.
        author: builder.add_u64_field("author", STORED),
        file: builder.add_u64_field("file", INDEXED | STORED),
        text: builder.add_text_field("text", text_options),
    };
    (builder.build(), fields)
}

fn key(room: RoomId, seq: u64) -> String {
    format!("{}:{seq}", room.0)
}

/// What each commit records: the format, and each room's last indexed seq.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Progress {
    format: u32,
    rooms: BTreeMap<u64, u64>,
}

/// The order key of a hit and a page cursor: newest first.
pub(crate) type Cursor = (u64, RoomId, u64);

/// A search, its rooms already authorized.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The rooms to search: the caller may read each.
    pub(crate) rooms: Vec<RoomId>,
    /// Only these senders (`None`: anyone; an empty list matches nothing).
    pub(crate) senders: Option<Vec<UserId>>,
    pub(crate) after: Option<u64>,
    pub(crate) before: Option<u64>,
    pub(crate) files_only: bool,
    pub(crate) required: Vec<String>,
    pub(crate) excluded: Vec<String>,
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
}

enum Job {
    Entry(Appended),
    /// Commit what is pending now, then answer.
    Flush(mpsc::Sender<()>),
    Stop(mpsc::Sender<()>),
}

/// The index: queried from request tasks, fed by its own thread.
pub(crate) struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    jobs: Mutex<Option<mpsc::SyncSender<Job>>>,
    /// Set when an entry found the queue full and was dropped: the indexer then reads the
    /// logs from where it is (the entries are durable there), so a write flood costs the
    /// server at most [`QUEUE`] queued entries, never unbounded memory.
    behind: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl SearchIndex {
    /// Opens the index in `data_dir/search` (rebuilding it when it is missing, unreadable or
    /// of another format) and starts the indexer, which first catches up with the logs.
    pub(crate) fn open(data_dir: &Path, store: Store) -> Result<Self, SearchError> {
        Self::open_with_queue(data_dir, store, QUEUE)
    }

    fn open_with_queue(data_dir: &Path, store: Store, queue: usize) -> Result<Self, SearchError> {
        let dir = data_dir.join(DIR);
        let (schema, fields) = schema();
        let (index, progress) = match open_existing(&dir) {
            Some(opened) => opened,
            None => {
                if dir.exists() {
                    tracing::warn!(dir = %dir.display(), "rebuilding the search index from the logs");
                    std::fs::remove_dir_all(&dir)?;
                }
                crate::durable::create_dir_all(&dir, 0o700)?;
                let index = Index::create_in_dir(&dir, schema)?;
                (index, Progress { format: FORMAT, rooms: BTreeMap::new() })
            }
        };
        index.tokenizers().register(words::ANALYZER, words::analyzer());
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let writer = index.writer_with_num_threads(1, WRITER_BYTES)?;
        let (jobs, queue) = mpsc::sync_channel(queue);
        let behind = Arc::new(AtomicBool::new(false));
        let indexer = Indexer {
            writer,
            reader: reader.clone(),
            fields,
            store,
            indexed: progress.rooms.into_iter().map(|(r, s)| (RoomId(r), s)).collect(),
            pending: false,
            behind: behind.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("search-indexer".into())
            .spawn(move || indexer.run(&queue))?;
        Ok(Self {
            index,
            reader,
            fields,
            jobs: Mutex::new(Some(jobs)),
            behind,
            thread: Mutex::new(Some(thread)),
        })
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
    pub(crate) fn documents(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Runs a search: up to `plan.limit` hits, newest first, and the cursor of the last one
    /// when more may follow.
    pub(crate) fn search(&self, plan: &Plan) -> Result<(Vec<Hit>, Option<Cursor>), SearchError> {
        let f = self.fields;
        if plan.rooms.is_empty() || plan.senders.as_ref().is_some_and(Vec::is_empty) {
            return Ok((Vec::new(), None));
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let terms = |field, values: &mut dyn Iterator<Item = u64>| {
            Box::new(TermSetQuery::new(values.map(|v| Term::from_field_u64(field, v))))
        };
        clauses.push((Occur::Must, terms(f.room, &mut plan.rooms.iter().map(|r| r.0))));
        if let Some(senders) = &plan.senders {
            let mut senders = senders.iter().map(|u| u.0).filter(|&u| u != 0);
            clauses.push((Occur::Must, terms(f.sender, &mut senders)));
        }
        if plan.files_only {
            clauses.push((Occur::Must, Box::new(term_query(f.file, 1))));
        }
        let lower = plan.after.map_or(Bound::Unbounded, |a| Bound::Included(u64_term(f.ts, a)));
        let upper = plan.before.map_or(Bound::Unbounded, |b| Bound::Excluded(u64_term(f.ts, b)));
        if plan.after.is_some() || plan.before.is_some() {
            clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
        }
        let mut matching: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for text in &plan.required {
            if let Some(query) = text_query(f.text, text) {
                matching.push((Occur::Must, query));
            }
        }
        for text in &plan.excluded {
            if let Some(query) = text_query(f.text, text) {
                clauses.push((Occur::MustNot, query));
            }
        }
        let words = (!matching.is_empty()).then(|| BooleanQuery::new(matching));
        if let Some(words) = &words {
            clauses.push((Occur::Must, words.box_clone()));
        } else {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        let query = BooleanQuery::new(clauses);

        let searcher = self.reader.searcher();
        let limit = plan.limit.max(1);
        // Newest first by commit time, ties by (room, seq): the candidates are the `limit`
        // newest before the cursor's time, plus every hit at the cursor's time after it in
        // that order, plus every hit sharing the last candidate's time (a page must not cut
        // a tie it would then skip).
        let at = |ts: u64| -> Box<dyn Query> {
            Box::new(RangeQuery::new(
                Bound::Included(u64_term(f.ts, ts)),
                Bound::Included(u64_term(f.ts, ts)),
            ))
        };
        let and = |extra: Box<dyn Query>| {
            BooleanQuery::new(vec![(Occur::Must, query.box_clone()), (Occur::Must, extra)])
        };
        let older = match plan.cursor {
            Some((ts, _, _)) => and(Box::new(RangeQuery::new(
                Bound::Unbounded,
                Bound::Excluded(u64_term(f.ts, ts)),
            ))),
            None => and(Box::new(AllQuery)),
        };
        let newest = searcher.search(
            &older,
            &TopDocs::with_limit(limit).order_by_fast_field::<u64>("ts", Order::Desc),
        )?;
        let mut addresses: Vec<DocAddress> = newest.iter().map(|(_, a)| *a).collect();
        let mut tie_times: Vec<u64> = Vec::new();
        if let Some((ts, _, _)) = plan.cursor {
            tie_times.push(ts);
        }
        if newest.len() == limit {
            tie_times.push(newest[limit - 1].0);
        }
        for ts in tie_times {
            let ties = searcher.search(
                &and(at(ts)),
                &TopDocs::with_limit(10_000).order_by_fast_field::<u64>("ts", Order::Desc),
            )?;
            addresses.extend(ties.into_iter().map(|(_, a)| a));
        }
        let mut candidates = Vec::new();
        for address in addresses {
            let doc: TantivyDocument = searcher.doc(address)?;
            let number = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
            let order = (number(f.ts), RoomId(number(f.room)), number(f.seq));
            if plan.cursor.is_some_and(|cursor| order >= cursor) {
                continue;
            }
            candidates.push((order, doc));
        }
        candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
        candidates.dedup_by(|a, b| a.0 == b.0);
        let more = candidates.len() > limit || newest.len() == limit;
        candidates.truncate(limit);

        let terms: HashSet<String> = plan.required.iter().flat_map(|t| words::terms(t)).collect();
        let mut hits = Vec::with_capacity(candidates.len());
        for ((ts, room, seq), doc) in &candidates {
            let number = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
            let text = doc.get_first(f.text).and_then(|v| v.as_str()).unwrap_or("");
            let (snippet, highlights) = snippet(text, &terms);
            let sender = match (number(f.sender), number(f.author)) {
                (0, author) if author == plan.caller.0 => plan.caller,
                (sender, _) => UserId(sender),
            };
            hits.push(Hit {
                room: *room,
                seq: *seq,
                sender,
                ts: *ts,
                file: number(f.file) == 1,
                snippet,
                highlights,
            });
        }
        let next = if more { candidates.last().map(|(order, _)| *order) } else { None };
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
pub(crate) fn status(data_dir: &Path, store: &Store) -> Result<Status, SearchError> {
    let Some((index, progress)) = open_existing(&data_dir.join(DIR)) else {
        return Ok(Status::Missing);
    };
    let documents = index.reader()?.searcher().num_docs();
    let (mut rooms_behind, mut entries_behind) = (0, 0);
    store.scan::<RoomRecord>(&[keys::tag::ROOM], |key, record| {
        let indexed = progress.rooms.get(&keys::id_at(key, 1)).copied().unwrap_or(0);
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

/// Rebuilds the index from the logs (`banterd reindex`, banterd stopped); returns its
/// documents.
pub(crate) fn rebuild(data_dir: &Path, store: Store) -> Result<u64, SearchError> {
    let dir = data_dir.join(DIR);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let index = SearchIndex::open(data_dir, store)?;
    index.flush()?;
    let documents = index.documents();
    index.close();
    Ok(documents)
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").field("index", &self.index).finish_non_exhaustive()
    }
}

impl Drop for SearchIndex {
    fn drop(&mut self) {
        self.close();
    }
}

fn u64_term(field: Field, value: u64) -> Term {
    Term::from_field_u64(field, value)
}

fn term_query(field: Field, value: u64) -> TermQuery {
    TermQuery::new(u64_term(field, value), IndexRecordOption::Basic)
}

/// A word or phrase as a query: one term, or its terms in a row; `None` if it has no terms.
fn text_query(field: Field, text: &str) -> Option<Box<dyn Query>> {
    let mut terms: Vec<Term> =
        words::terms(text).iter().map(|t| Term::from_field_text(field, t)).collect();
    match terms.len() {
        0 => None,
        1 => Some(Box::new(TermQuery::new(
            terms.remove(0),
            IndexRecordOption::WithFreqsAndPositions,
        ))),
        _ => Some(Box::new(PhraseQuery::new(terms))),
    }
}

/// The snippet of `text`: all of it when short, else about [`SNIPPET_CHARS`] characters
/// around the first match, cut at spaces; and the byte ranges of it whose terms are among
/// `terms` (merged, within the protocol's bounds).
fn snippet(text: &str, terms: &HashSet<String>) -> (String, Vec<(usize, usize)>) {
    use banter_protocol::message::max;
    let mut matched: Vec<(usize, usize)> = Vec::new();
    let mut analyzer = words::analyzer();
    let mut stream = analyzer.token_stream(text);
    while let Some(token) = stream.next() {
        if terms.contains(&token.text) {
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

/// An existing index of this format, with its progress.
fn open_existing(dir: &Path) -> Option<(Index, Progress)> {
    let index = Index::open_in_dir(dir).ok()?;
    let payload = index.load_metas().ok()?.payload.unwrap_or_default();
    let progress: Progress = serde_json::from_str(&payload).ok()?;
    (progress.format == FORMAT && index.schema() == schema().0).then_some((index, progress))
}

/// The indexer thread's state.
struct Indexer {
    writer: IndexWriter,
    reader: IndexReader,
    fields: Fields,
    store: Store,
    indexed: HashMap<RoomId, u64>,
    pending: bool,
    behind: Arc<AtomicBool>,
}

impl Indexer {
    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        if let Err(error) = self.catch_up() {
            tracing::error!(%error, "search index: catching up with the logs failed");
        }
        let mut last_commit = Instant::now();
        loop {
            let wait = COMMIT_EVERY.saturating_sub(last_commit.elapsed());
            let job = match jobs.recv_timeout(if self.pending {
                wait
            } else {
                Duration::from_secs(3600)
            }) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.commit();
                    return;
                }
            };
            match job {
                Some(Job::Entry(appended)) => {
                    if let Err(error) = self.follow(&appended) {
                        tracing::error!(%error, room = appended.room.0, seq = appended.seq, "search index: an entry was not indexed");
                    }
                }
                Some(Job::Flush(done)) => {
                    self.commit();
                    last_commit = Instant::now();
                    let _ = done.send(());
                }
                Some(Job::Stop(done)) => {
                    self.commit();
                    let _ = done.send(());
                    return;
                }
                None => {}
            }
            if self.behind.swap(false, Ordering::Relaxed) {
                if let Err(error) = self.catch_up() {
                    tracing::error!(%error, "search index: catching up with the logs failed");
                }
            }
            if self.pending && last_commit.elapsed() >= COMMIT_EVERY {
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
        let from = self.indexed.get(&room).copied().unwrap_or(0) + 1;
        let mut start = from;
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
        let f = self.fields;
        match &entry.kind {
            EntryKind::Posted { text, .. } => self.add(*room, *seq, entry, *anonymous, text)?,
            EntryKind::FileShared { name, .. } => self.add(*room, *seq, entry, *anonymous, name)?,
            EntryKind::Edited { target, text } => {
                // The document keeps the message's own time and author; only its text changes.
                if let Some(original) = self.store.get::<LogEntry>(&keys::log(*room, *target))? {
                    let hidden = self.store.contains(&keys::anonymous(*room, *target))?;
                    self.writer.delete_term(Term::from_field_text(f.key, &key(*room, *target)));
                    self.add(*room, *target, &original, hidden, text)?;
                }
            }
            EntryKind::Deleted { target } => {
                self.writer.delete_term(Term::from_field_text(f.key, &key(*room, *target)));
            }
            _ => {}
        }
        self.indexed.insert(*room, *seq);
        self.pending = true;
        Ok(())
    }

    fn add(
        &mut self,
        room: RoomId,
        seq: u64,
        entry: &LogEntry,
        anonymous: bool,
        text: &str,
    ) -> Result<(), SearchError> {
        let f = self.fields;
        let file = matches!(entry.kind, EntryKind::FileShared { .. });
        let mut doc = TantivyDocument::new();
        doc.add_text(f.key, key(room, seq));
        doc.add_u64(f.room, room.0);
        doc.add_u64(f.seq, seq);
        doc.add_u64(f.ts, entry.ts);
        doc.add_u64(f.sender, if anonymous { 0 } else { entry.sender });
        doc.add_u64(f.author, if anonymous { entry.sender } else { 0 });
        doc.add_u64(f.file, u64::from(file));
        doc.add_text(f.text, text);
        self.writer.add_document(doc)?;
        Ok(())
    }

    /// Commits pending documents with the rooms' progress, and makes them searchable.
    fn commit(&mut self) {
        if !self.pending {
            return;
        }
        let progress = Progress {
            format: FORMAT,
            rooms: self.indexed.iter().map(|(r, s)| (r.0, *s)).collect(),
        };
        let payload = serde_json::to_string(&progress).expect("plain data");
        let result = self.writer.prepare_commit().and_then(|mut prepared| {
            prepared.set_payload(&payload);
            prepared.commit()
        });
        match result.and_then(|_| self.reader.reload()) {
            Ok(()) => self.pending = false,
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
        let index = SearchIndex::open_with_queue(dir.path(), store.clone(), 1).unwrap();
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
            if index.documents() == 200 {
                break;
            }
        }
        assert_eq!(index.documents(), 200, "every entry indexed, the dropped ones from the log");
        index.close();
        store.close().await;
    }

    fn terms(words: &[&str]) -> HashSet<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
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
