//! Search (spec §6.10): full-text search over the log entries a user may read, newest first,
//! paged by a cursor. The server parses the query language; the answer is one SEARCH_HIT per
//! matching message or shared file, each with a snippet and the byte ranges that matched, then
//! SEARCH_END.

use crate::bounded::{List, Text};
use crate::ids::{RoomId, Timestamp, UserId};
use crate::message::{max, wire};

wire! {
    /// SEARCH: find messages and shared files; answered with SEARCH_HIT frames, then
    /// SEARCH_END.
    pub struct Search {
        /// The query: words (all must match), "exact phrases", -excluded words,
        /// from:USERNAME, in:ROOM, before:YYYY-MM-DD, after:YYYY-MM-DD, has:file.
        pub query: Text<{ max::SEARCH_QUERY }>,
        /// Only this room.
        pub room: Option<RoomId>,
        /// Only entries by this user.
        pub sender: Option<UserId>,
        /// Only entries committed at or after this time.
        pub after: Option<Timestamp>,
        /// Only entries committed before this time.
        pub before: Option<Timestamp>,
        /// At most this many hits (the server caps it; 0 is taken as 1).
        pub limit: u16,
        /// Continue after this hit (SEARCH_END's `next`).
        pub cursor: Option<SearchCursor>,
    }

    /// Where a page of hits ended: the order key of its last hit.
    pub struct SearchCursor {
        /// The hit's commit time.
        pub ts: Timestamp,
        /// Its room.
        pub room: RoomId,
        /// Its room_seq.
        pub seq: u64,
    }

    /// SEARCH_HIT: one matching message (its latest text) or shared file (its name).
    pub struct SearchHit {
        /// The room.
        pub room: RoomId,
        /// The entry: a POSTED message's room_seq, or a FILE_SHARED entry's.
        pub seq: u64,
        /// Who posted it (0 for an anonymous post, as in the log).
        pub sender: UserId,
        /// When it was committed.
        pub ts: Timestamp,
        /// Whether it is a shared file (the snippet is then its name).
        pub file: bool,
        /// The matched part of the text, cut at word boundaries when long.
        pub snippet: Text<{ max::SEARCH_SNIPPET }>,
        /// The parts of `snippet` that matched, in order.
        pub highlights: List<Highlight, { max::SEARCH_HIGHLIGHTS }>,
    }

    /// A matched byte range of a snippet, `[start, end)`, on character boundaries.
    pub struct Highlight {
        /// Its first byte.
        pub start: u32,
        /// The byte after its last.
        pub end: u32,
    }

    /// SEARCH_END: the last frame of a SEARCH answer.
    pub struct SearchEnd {
        /// Where the next page starts; absent when there are no more hits.
        pub next: Option<SearchCursor>,
    }
}

impl Search {
    /// A search for `query` in every room the caller may read, up to `limit` hits from the
    /// newest: no other filter, no cursor (set those fields for more).
    pub fn new(query: Text<{ max::SEARCH_QUERY }>, limit: u16) -> Self {
        Self { query, room: None, sender: None, after: None, before: None, limit, cursor: None }
    }
}
