//! The cluster's index: PostgreSQL's own full-text search, in tables beside the store's.
//!
//! - Terms are not PostgreSQL's: each document's `tsvector` is written from the terms of
//!   [`words`] with their positions, and each query's `tsquery` from the same terms (a phrase
//!   as terms `<->` in a row), so folding, CJK pairs and phrases behave exactly as in the
//!   tantivy index and no text search configuration or extension is needed.
//! - Every node runs an indexer (each node's fan-out sees the entries of the rooms it
//!   serves, and each sweeps every room's head), so the same document may be written more
//!   than once and in any order: a row keeps the seq of the entry that set it (`version`)
//!   and only a higher one replaces it; a delete leaves a row without text, so a late copy
//!   of the post cannot bring it back. Progress only grows (`GREATEST`).
//! - One transaction per commit: the documents and the progress they reach.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use banter_protocol::ids::RoomId;

use super::{Doc, Found, Opened, Plan, Progress, Reader, SearchError, Writer, words};
use crate::store::StoreError;
use crate::store::postgres::Connections;

/// The layout of the tables and of the terms in them; tables of another format are
/// emptied and rebuilt from the logs.
const FORMAT: i32 = 1;
/// Query connections: searches run side by side on these.
const READERS: usize = 2;
/// What the query connections run with: a plan made for each search's own values (a
/// generic plan cannot tell that `$2` is NULL, nor use the GIN index for it), and a bound
/// on how long one search may take.
const READER_OPTIONS: &str = "-c plan_cache_mode=force_custom_plan -c statement_timeout=5000";
/// PostgreSQL keeps positions up to this one (later words share it).
const MAX_POSITION: usize = 16_383;
/// Positions PostgreSQL keeps per lexeme.
const MAX_POSITIONS: usize = 256;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS banter_search (
    room bigint NOT NULL,
    seq bigint NOT NULL,
    version bigint NOT NULL,
    ts bigint NOT NULL,
    sender bigint NOT NULL,
    author bigint NOT NULL,
    file boolean NOT NULL,
    body text,
    words tsvector,
    PRIMARY KEY (room, seq)
);
CREATE INDEX IF NOT EXISTS banter_search_words ON banter_search USING GIN (words);
CREATE INDEX IF NOT EXISTS banter_search_newest ON banter_search (ts DESC, room DESC, seq DESC);
CREATE INDEX IF NOT EXISTS banter_search_room ON banter_search (room, ts DESC, seq DESC);
CREATE TABLE IF NOT EXISTS banter_search_progress (room bigint PRIMARY KEY, seq bigint NOT NULL);
CREATE TABLE IF NOT EXISTS banter_search_format (format integer NOT NULL);
";
const CLEAR: &str = "TRUNCATE banter_search, banter_search_progress, banter_search_format";
const FORMAT_OF: &str = "SELECT format FROM banter_search_format";
const SET_FORMAT: &str = "INSERT INTO banter_search_format (format) VALUES ($1)";
const PROGRESS: &str = "SELECT room, seq FROM banter_search_progress";
const EXISTS: &str = "SELECT to_regclass('banter_search_format') IS NOT NULL";
const DOCUMENTS: &str = "SELECT count(*) FROM banter_search WHERE body IS NOT NULL";

/// Documents (`body` NULL for a delete), each replacing only an older version.
const PUT: &str = "
INSERT INTO banter_search (room, seq, version, ts, sender, author, file, body, words)
SELECT room, seq, version, ts, sender, author, file, body, words::tsvector
FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
            $6::bigint[], $7::boolean[], $8::text[], $9::text[])
    AS d(room, seq, version, ts, sender, author, file, body, words)
ON CONFLICT (room, seq) DO UPDATE SET
    version = EXCLUDED.version, ts = EXCLUDED.ts, sender = EXCLUDED.sender,
    author = EXCLUDED.author, file = EXCLUDED.file, body = EXCLUDED.body, words = EXCLUDED.words
WHERE banter_search.version < EXCLUDED.version";
const ADVANCE: &str = "
INSERT INTO banter_search_progress (room, seq)
SELECT * FROM UNNEST($1::bigint[], $2::bigint[])
ON CONFLICT (room) DO UPDATE SET seq = GREATEST(banter_search_progress.seq, EXCLUDED.seq)";

/// One page: $1 rooms, $2 tsquery (NULL: no words), $3 senders (NULL: anyone), $4 rooms
/// where senders also find anonymous posts by their author, $5 files only, $6..$7 times,
/// $8..$10 the cursor (exclusive), $11 rows.
const FIND: &str = "
SELECT room, seq, ts, sender, author, file, body FROM banter_search
WHERE body IS NOT NULL AND room = ANY($1)
  AND ($2::text IS NULL OR words @@ $2::text::tsquery)
  AND ($3::bigint[] IS NULL OR sender = ANY($3) OR (author = ANY($3) AND room = ANY($4)))
  AND (NOT $5 OR file)
  AND ts >= $6 AND ts < $7
  AND (ts, room, seq) < ($8, $9, $10)
ORDER BY ts DESC, room DESC, seq DESC
LIMIT $11";

fn connect(url: &str, threads: usize, name: &str) -> Result<Connections, SearchError> {
    connect_with(url, threads, name, "")
}

/// [`connect`], the connections run with server `options` added to the URL's.
fn connect_with(
    url: &str,
    threads: usize,
    name: &str,
    options: &str,
) -> Result<Connections, SearchError> {
    let mut config: postgres::Config =
        url.parse().map_err(|e| StoreError::Engine(format!("database URL: {e}")))?;
    if !options.is_empty() {
        let given = config.get_options().unwrap_or_default();
        config.options(format!("{given} {options}").trim());
    }
    Ok(Connections::spawn(&config, threads, name)?)
}

/// A u64 as PostgreSQL's bigint (ids and times stay far below 2^63).
fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Opens the tables (creating them, or emptying those of another format) and reads the
/// progress committed by any node.
pub(super) fn open(url: &str) -> Result<Opened, SearchError> {
    let writer = connect(url, 1, "banter-search-write")?;
    let progress = writer.run(|db| {
        db.client.batch_execute(SCHEMA)?;
        let mut transaction = db.client.transaction()?;
        let format: Option<i32> = transaction.query_opt(FORMAT_OF, &[])?.map(|row| row.get(0));
        if format != Some(FORMAT) {
            if format.is_some() {
                tracing::warn!("rebuilding the search tables from the logs (another format)");
            }
            transaction.batch_execute(CLEAR)?;
            transaction.execute(SET_FORMAT, &[&FORMAT])?;
        }
        let rows = transaction.query(PROGRESS, &[])?;
        transaction.commit()?;
        Ok(progress_of(&rows))
    })?;
    let reader = connect_with(url, READERS, "banter-search-read", READER_OPTIONS)?;
    let committed = progress.clone();
    Ok(Opened {
        reader: Box::new(PgReader { connections: reader }),
        writer: Box::new(PgWriter { connections: writer, pending: BTreeMap::new(), committed }),
        progress,
    })
}

fn progress_of(rows: &[postgres::Row]) -> Progress {
    rows.iter()
        .map(|row| {
            let (room, seq): (i64, i64) = (row.get(0), row.get(1));
            (RoomId(room as u64), seq as u64)
        })
        .collect()
}

/// The committed documents and progress, without creating anything (for `banterd check`);
/// `None` when the tables are not there or of another format.
pub(super) fn committed(url: &str) -> Result<Option<(u64, Progress)>, SearchError> {
    let connections = connect(url, 1, "banter-search-check")?;
    Ok(connections.run(|db| {
        if !db.client.query_one(EXISTS, &[])?.get::<_, bool>(0) {
            return Ok(None);
        }
        let format: Option<i32> = db.client.query_opt(FORMAT_OF, &[])?.map(|row| row.get(0));
        if format != Some(FORMAT) {
            return Ok(None);
        }
        let documents: i64 = db.client.query_one(DOCUMENTS, &[])?.get(0);
        let progress = progress_of(&db.client.query(PROGRESS, &[])?);
        Ok(Some((documents as u64, progress)))
    })?)
}

/// Empties the tables (`banterd reindex`).
pub(super) fn clear(url: &str) -> Result<(), SearchError> {
    let connections = connect(url, 1, "banter-search-clear")?;
    Ok(connections.run(|db| {
        db.client.batch_execute(SCHEMA)?;
        db.client.batch_execute(CLEAR)
    })?)
}

/// A document's terms as a `tsvector` literal: `'term':1,4 'other':2`.
fn tsvector(text: &str) -> String {
    let mut positions: HashMap<String, Vec<usize>> = HashMap::new();
    let mut order = Vec::new();
    for (at, term) in words::positioned(text) {
        let list = positions.entry(term.clone()).or_insert_with(|| {
            order.push(term);
            Vec::new()
        });
        if list.len() < MAX_POSITIONS {
            list.push((at + 1).min(MAX_POSITION));
        }
    }
    let mut out = String::new();
    for term in order {
        let list = &positions[&term];
        let list: Vec<String> = list.iter().map(ToString::to_string).collect();
        let _ = write!(out, "{}:{} ", lexeme(&term), list.join(","));
    }
    out
}

/// A term quoted for `tsvector` and `tsquery` input.
fn lexeme(term: &str) -> String {
    format!("'{}'", term.replace('\\', "\\\\").replace('\'', "''"))
}

/// A word's or phrase's terms as a `tsquery`: in a row; `None` if there are none.
fn phrase(terms: &[String]) -> Option<String> {
    (!terms.is_empty())
        .then(|| format!("({})", terms.iter().map(|t| lexeme(t)).collect::<Vec<_>>().join(" <-> ")))
}

/// The plan's words as a `tsquery`: every required phrase, none of the excluded; `None`
/// when it names no terms.
fn tsquery(plan: &Plan) -> Option<String> {
    let required = plan.required.iter().filter_map(|terms| phrase(terms));
    let excluded = plan.excluded.iter().filter_map(|terms| phrase(terms)).map(|p| format!("!{p}"));
    let all: Vec<String> = required.chain(excluded).collect();
    (!all.is_empty()).then(|| all.join(" & "))
}

struct PgWriter {
    connections: Connections,
    /// What the next commit writes: each (room, seq)'s newest document, `None` text for a
    /// delete. In key order, as the progress rows: nodes writing the same rows lock them in
    /// the same order, so their commits cannot deadlock.
    pending: BTreeMap<(RoomId, u64), (u64, Option<Doc>)>,
    /// The progress as this node last committed it.
    committed: Progress,
}

impl Writer for PgWriter {
    fn put(&mut self, doc: Doc) -> Result<(), SearchError> {
        let version = doc.version;
        let slot = self.pending.entry((doc.room, doc.seq)).or_insert((0, None));
        if slot.0 < version {
            *slot = (version, Some(doc));
        }
        Ok(())
    }

    fn remove(&mut self, room: RoomId, seq: u64, version: u64) -> Result<(), SearchError> {
        let slot = self.pending.entry((room, seq)).or_insert((0, None));
        if slot.0 < version {
            *slot = (version, None);
        }
        Ok(())
    }

    fn commit(&mut self, progress: &Progress) -> Result<(), SearchError> {
        let mut columns = Columns::default();
        for (&(room, seq), (version, doc)) in &self.pending {
            columns.push(room, seq, *version, doc.as_ref());
        }
        let mut advanced: Vec<(i64, i64)> = progress
            .iter()
            .filter(|(room, seq)| self.committed.get(room) != Some(seq))
            .map(|(room, seq)| (big(room.0), big(*seq)))
            .collect();
        advanced.sort_unstable();
        let (rooms, seqs): (Vec<i64>, Vec<i64>) = advanced.into_iter().unzip();
        self.connections.run(move |db| {
            let (put, advance) = (db.statement(PUT)?, db.statement(ADVANCE)?);
            let mut transaction = db.client.transaction()?;
            let c = &columns;
            transaction.execute(
                &put,
                &[
                    &c.room, &c.seq, &c.version, &c.ts, &c.sender, &c.author, &c.file, &c.body,
                    &c.words,
                ],
            )?;
            transaction.execute(&advance, &[&rooms, &seqs])?;
            transaction.commit()
        })?;
        self.pending.clear();
        self.committed.clone_from(progress);
        Ok(())
    }
}

/// Pending documents as the columns [`PUT`] takes.
#[derive(Default)]
struct Columns {
    room: Vec<i64>,
    seq: Vec<i64>,
    version: Vec<i64>,
    ts: Vec<i64>,
    sender: Vec<i64>,
    author: Vec<i64>,
    file: Vec<bool>,
    body: Vec<Option<String>>,
    words: Vec<Option<String>>,
}

impl Columns {
    fn push(&mut self, room: RoomId, seq: u64, version: u64, doc: Option<&Doc>) {
        self.room.push(big(room.0));
        self.seq.push(big(seq));
        self.version.push(big(version));
        self.ts.push(doc.map_or(0, |d| big(d.ts)));
        self.sender.push(doc.map_or(0, |d| big(d.sender)));
        self.author.push(doc.map_or(0, |d| big(d.author)));
        self.file.push(doc.is_some_and(|d| d.file));
        self.body.push(doc.map(|d| d.text.clone()));
        self.words.push(doc.map(|d| tsvector(&d.text)));
    }
}

struct PgReader {
    connections: Connections,
}

impl Reader for PgReader {
    fn find(&self, plan: &Plan) -> Result<(Vec<Found>, bool), SearchError> {
        let ids = |rooms: &[RoomId]| rooms.iter().map(|r| big(r.0)).collect::<Vec<i64>>();
        let rooms = ids(&plan.rooms);
        let revealing = ids(&plan.revealing);
        let query = tsquery(plan);
        let senders: Option<Vec<i64>> = plan
            .senders
            .as_ref()
            .map(|users| users.iter().map(|u| big(u.0)).filter(|&u| u != 0).collect());
        let files_only = plan.files_only;
        let after = big(plan.after.unwrap_or(0));
        let before = big(plan.before.unwrap_or(u64::MAX));
        let (ts, room, seq) =
            plan.cursor.map_or((i64::MAX, i64::MAX, i64::MAX), |(ts, room, seq)| {
                (big(ts), big(room.0), big(seq))
            });
        let limit = plan.limit.max(1);
        let rows = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let mut found = self.connections.run(move |db| {
            let find = db.statement(FIND)?;
            let rows = db.client.query(
                &find,
                &[
                    &rooms,
                    &query,
                    &senders,
                    &revealing,
                    &files_only,
                    &after,
                    &before,
                    &ts,
                    &room,
                    &seq,
                    &rows,
                ],
            )?;
            Ok(rows
                .iter()
                .map(|row| Found {
                    room: RoomId(row.get::<_, i64>(0) as u64),
                    seq: row.get::<_, i64>(1) as u64,
                    ts: row.get::<_, i64>(2) as u64,
                    sender: row.get::<_, i64>(3) as u64,
                    author: row.get::<_, i64>(4) as u64,
                    file: row.get(5),
                    text: row.get(6),
                })
                .collect::<Vec<_>>())
        })?;
        let more = found.len() > limit;
        found.truncate(limit);
        Ok((found, more))
    }

    fn documents(&self) -> Result<u64, SearchError> {
        let count: i64 =
            self.connections.run(|db| Ok(db.client.query_one(DOCUMENTS, &[])?.get(0)))?;
        Ok(count as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_becomes_the_analyzers_terms_with_positions() {
        assert_eq!(tsvector("Café au lait, café!"), "'cafe':1,4 'au':2 'lait':3 ");
        assert_eq!(tsvector("it's"), "'it':1 's':2 ");
        assert_eq!(lexeme("o'k\\"), "'o''k\\\\'");
    }

    #[test]
    fn a_query_is_its_phrases_and_exclusions() {
        let plan = Plan {
            rooms: vec![RoomId(1)],
            revealing: Vec::new(),
            senders: None,
            after: None,
            before: None,
            files_only: false,
            required: ["Café", "red fox"].map(words::terms).to_vec(),
            excluded: ["dog", "!!"].map(words::terms).to_vec(),
            cursor: None,
            limit: 10,
            caller: banter_protocol::ids::UserId(1),
        };
        assert_eq!(tsquery(&plan).unwrap(), "('cafe') & ('red' <-> 'fox') & !('dog')");
        let nothing = Plan { required: Vec::new(), excluded: vec![words::terms("...")], ..plan };
        assert_eq!(tsquery(&nothing), None);
    }
}
