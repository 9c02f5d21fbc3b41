//! The single-node index: tantivy, in `search/` in the data dir. Each commit carries the
//! rooms' progress in the index's own commit payload, so documents and progress are durable
//! together; an index of another format (or schema) is rebuilt.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use banter_protocol::ids::RoomId;
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

use super::{Doc, Found, Opened, Plan, Progress, Reader, SearchError, Writer, words};

/// The layout of documents and payload; an index of another format is rebuilt.
/// 2: `author` is indexed (moderators' `from:` on anonymous posts).
const FORMAT: u32 = 2;
/// The indexer's memory for documents not yet written to a segment.
const WRITER_BYTES: usize = 20_000_000;
/// Hits sharing one commit time that one page looks at, at most.
const TIES: usize = 1_000;

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
        sender: builder.add_u64_field("sender", INDEXED | STORED),
        author: builder.add_u64_field("author", INDEXED | STORED),
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
struct Payload {
    format: u32,
    rooms: BTreeMap<u64, u64>,
}

/// Opens the index in `dir`, creating it (empty) when it is missing, unreadable or of
/// another format.
pub(super) fn open(dir: &Path) -> Result<Opened, SearchError> {
    let (index, progress) = match open_existing(dir) {
        Some(opened) => opened,
        None => {
            if dir.exists() {
                tracing::warn!(dir = %dir.display(), "rebuilding the search index from the logs");
                std::fs::remove_dir_all(dir)?;
            }
            crate::durable::create_dir_all(dir, 0o700)?;
            (Index::create_in_dir(dir, schema().0)?, Progress::new())
        }
    };
    index.tokenizers().register(words::ANALYZER, words::analyzer());
    let fields = schema().1;
    let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
    let writer = index.writer_with_num_threads(1, WRITER_BYTES)?;
    Ok(Opened {
        reader: Box::new(LocalReader { reader: reader.clone(), fields }),
        writer: Box::new(LocalWriter { writer, reader, fields }),
        progress,
    })
}

/// The committed documents and progress of an existing index, without a writer (for
/// `banterd check`); `None` when there is none of this format.
pub(super) fn committed(dir: &Path) -> Result<Option<(u64, Progress)>, SearchError> {
    let Some((index, progress)) = open_existing(dir) else { return Ok(None) };
    Ok(Some((index.reader()?.searcher().num_docs(), progress)))
}

/// An existing index of this format, with its progress.
fn open_existing(dir: &Path) -> Option<(Index, Progress)> {
    let index = Index::open_in_dir(dir).ok()?;
    let payload = index.load_metas().ok()?.payload.unwrap_or_default();
    let payload: Payload = serde_json::from_str(&payload).ok()?;
    if payload.format != FORMAT || index.schema() != schema().0 {
        return None;
    }
    Some((index, payload.rooms.into_iter().map(|(r, s)| (RoomId(r), s)).collect()))
}

struct LocalWriter {
    writer: IndexWriter,
    reader: IndexReader,
    fields: Fields,
}

impl Writer for LocalWriter {
    fn put(&mut self, doc: Doc) -> Result<(), SearchError> {
        let f = self.fields;
        if doc.replaces() {
            self.writer.delete_term(Term::from_field_text(f.key, &key(doc.room, doc.seq)));
        }
        let mut out = TantivyDocument::new();
        out.add_text(f.key, key(doc.room, doc.seq));
        out.add_u64(f.room, doc.room.0);
        out.add_u64(f.seq, doc.seq);
        out.add_u64(f.ts, doc.ts);
        out.add_u64(f.sender, doc.sender);
        out.add_u64(f.author, doc.author);
        out.add_u64(f.file, u64::from(doc.file));
        out.add_text(f.text, &doc.text);
        self.writer.add_document(out)?;
        Ok(())
    }

    fn remove(&mut self, room: RoomId, seq: u64, _version: u64) -> Result<(), SearchError> {
        self.writer.delete_term(Term::from_field_text(self.fields.key, &key(room, seq)));
        Ok(())
    }

    fn commit(&mut self, progress: &Progress) -> Result<(), SearchError> {
        let payload =
            Payload { format: FORMAT, rooms: progress.iter().map(|(r, s)| (r.0, *s)).collect() };
        let payload = serde_json::to_string(&payload).expect("plain data");
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.reader.reload()?;
        Ok(())
    }
}

struct LocalReader {
    reader: IndexReader,
    fields: Fields,
}

fn u64_term(field: Field, value: u64) -> Term {
    Term::from_field_u64(field, value)
}

fn one_of(field: Field, values: impl Iterator<Item = u64>) -> Box<dyn Query> {
    Box::new(TermSetQuery::new(values.map(|v| u64_term(field, v))))
}

/// A word's or phrase's terms as a query: one term, or the terms in a row; `None` if there
/// are none.
fn text_query(field: Field, terms: &[String]) -> Option<Box<dyn Query>> {
    let mut terms: Vec<Term> = terms.iter().map(|t| Term::from_field_text(field, t)).collect();
    match terms.len() {
        0 => None,
        1 => Some(Box::new(TermQuery::new(
            terms.remove(0),
            IndexRecordOption::WithFreqsAndPositions,
        ))),
        _ => Some(Box::new(PhraseQuery::new(terms))),
    }
}

impl LocalReader {
    /// The plan's filters and words as one query.
    fn query(&self, plan: &Plan) -> BooleanQuery {
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        clauses.push((Occur::Must, one_of(f.room, plan.rooms.iter().map(|r| r.0))));
        if let Some(senders) = &plan.senders {
            let named = || senders.iter().map(|u| u.0).filter(|&u| u != 0);
            let mut either: Vec<(Occur, Box<dyn Query>)> =
                vec![(Occur::Should, one_of(f.sender, named()))];
            if !plan.revealing.is_empty() {
                let hidden = BooleanQuery::new(vec![
                    (Occur::Must, one_of(f.author, named())),
                    (Occur::Must, one_of(f.room, plan.revealing.iter().map(|r| r.0))),
                ]);
                either.push((Occur::Should, Box::new(hidden)));
            }
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(either))));
        }
        if plan.files_only {
            let file = TermQuery::new(u64_term(f.file, 1), IndexRecordOption::Basic);
            clauses.push((Occur::Must, Box::new(file)));
        }
        if plan.after.is_some() || plan.before.is_some() {
            let lower = plan.after.map_or(Bound::Unbounded, |a| Bound::Included(u64_term(f.ts, a)));
            let upper =
                plan.before.map_or(Bound::Unbounded, |b| Bound::Excluded(u64_term(f.ts, b)));
            clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
        }
        let mut any_words = false;
        for terms in &plan.required {
            if let Some(query) = text_query(f.text, terms) {
                clauses.push((Occur::Must, query));
                any_words = true;
            }
        }
        for terms in &plan.excluded {
            if let Some(query) = text_query(f.text, terms) {
                clauses.push((Occur::MustNot, query));
            }
        }
        if !any_words {
            // A query of exclusions and filters only still needs something to match.
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        BooleanQuery::new(clauses)
    }
}

impl Reader for LocalReader {
    fn find(&self, plan: &Plan) -> Result<(Vec<Found>, bool), SearchError> {
        let f = self.fields;
        let query = self.query(plan);
        let searcher = self.reader.searcher();
        let limit = plan.limit.max(1);
        // Newest first by commit time, ties by (room, seq): the candidates are the `limit`
        // newest before the cursor's time, plus the hits at the cursor's time after it in
        // that order, plus the hits sharing the last candidate's time (a page must not cut
        // a tie it would then skip).
        let and = |extra: Box<dyn Query>| {
            BooleanQuery::new(vec![(Occur::Must, query.box_clone()), (Occur::Must, extra)])
        };
        let at = |ts: u64| -> Box<dyn Query> {
            let ts = u64_term(f.ts, ts);
            Box::new(RangeQuery::new(Bound::Included(ts.clone()), Bound::Included(ts)))
        };
        let older = match plan.cursor {
            Some((ts, _, _)) => and(Box::new(RangeQuery::new(
                Bound::Unbounded,
                Bound::Excluded(u64_term(f.ts, ts)),
            ))),
            None => and(Box::new(AllQuery)),
        };
        let by_time = |n| TopDocs::with_limit(n).order_by_fast_field::<u64>("ts", Order::Desc);
        let newest = searcher.search(&older, &by_time(limit))?;
        let mut addresses: Vec<DocAddress> = newest.iter().map(|(_, a)| *a).collect();
        let mut tie_times: Vec<u64> = Vec::new();
        if let Some((ts, _, _)) = plan.cursor {
            tie_times.push(ts);
        }
        if newest.len() == limit {
            tie_times.push(newest[limit - 1].0);
        }
        for ts in tie_times {
            let ties = searcher.search(&and(at(ts)), &by_time(TIES))?;
            addresses.extend(ties.into_iter().map(|(_, a)| a));
        }
        let mut found = Vec::new();
        for address in addresses {
            let doc: TantivyDocument = searcher.doc(address)?;
            let number = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
            let hit = Found {
                room: RoomId(number(f.room)),
                seq: number(f.seq),
                ts: number(f.ts),
                sender: number(f.sender),
                author: number(f.author),
                file: number(f.file) == 1,
                text: doc.get_first(f.text).and_then(|v| v.as_str()).unwrap_or("").to_owned(),
            };
            if plan.cursor.is_some_and(|cursor| hit.order() >= cursor) {
                continue;
            }
            found.push(hit);
        }
        found.sort_by_key(|hit| std::cmp::Reverse(hit.order()));
        found.dedup_by_key(|hit| hit.order());
        let more = found.len() > limit || newest.len() == limit;
        found.truncate(limit);
        Ok((found, more))
    }

    fn documents(&self) -> Result<u64, SearchError> {
        Ok(self.reader.searcher().num_docs())
    }
}
