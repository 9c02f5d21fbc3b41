//! Full-text search through the C ABI (spec §6.10): one SEARCH answered as an opaque page,
//! as history is. Its hits are plain C structs whose strings and ranges point into the page,
//! so C reads them without a call per field and frees them all with the page.

use std::ffi::{CString, c_char};

use banter_protocol::ids::{RoomId, Timestamp};
use banter_protocol::message::{Search, SearchCursor, SearchHit};

use crate::client::{banter_client, client_ref, text};
use crate::status::banter_status::*;
use crate::status::*;

/// Where a page of hits ended (the order key of its last hit): pass it back to
/// banter_client_search() for the page after.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct banter_search_cursor {
    /// The hit's commit time, ms since the Unix epoch.
    pub ts: u64,
    /// Its room.
    pub room: u64,
    /// Its room_seq.
    pub seq: u64,
}

/// A matched part of a snippet: bytes `[start, end)`, on UTF-8 character boundaries.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct banter_highlight {
    /// Its first byte.
    pub start: u32,
    /// The byte after its last.
    pub end: u32,
}

/// One hit, borrowed from its page: valid until banter_search_page_free().
#[repr(C)]
#[derive(Debug)]
pub struct banter_search_hit {
    /// The room.
    pub room: u64,
    /// The entry's room_seq (a message, or a shared file's entry).
    pub seq: u64,
    /// Who posted it (0 for an anonymous post).
    pub sender: u64,
    /// When it was committed, ms since the Unix epoch.
    pub ts: u64,
    /// A shared file (the snippet is its name) rather than a message.
    pub file: bool,
    /// The matched part of the text, NUL-terminated UTF-8 owned by the page. Other users'
    /// text may contain anything: escape it before printing to a terminal.
    pub snippet: *const c_char,
    /// The parts of `snippet` that matched, in order: `highlights_len` of them (NULL when
    /// none), owned by the page.
    pub highlights: *const banter_highlight,
    /// How many `highlights` there are.
    pub highlights_len: usize,
}

/// A page of search hits, newest first; free with banter_search_page_free().
#[derive(Debug)]
pub struct banter_search_page {
    hits: Vec<banter_search_hit>,
    next: Option<banter_search_cursor>,
    /// What the hits' pointers point into: kept alive with the page, never read here.
    _storage: Vec<(CString, Vec<banter_highlight>)>,
}

impl banter_search_page {
    fn new(hits: &[SearchHit], next: Option<SearchCursor>) -> Self {
        let storage: Vec<(CString, Vec<banter_highlight>)> = hits
            .iter()
            .map(|hit| {
                // One byte for one, so that the highlights' offsets still hold.
                let text = hit.snippet.as_str();
                let snippet = CString::new(text.replace('\0', " ")).unwrap_or_default();
                // The header promises ranges within the snippet on character boundaries: a
                // server's word is not enough for C to index with, so others are dropped.
                let within = |at: u32| text.is_char_boundary(at as usize);
                let highlights = hit
                    .highlights
                    .iter()
                    .filter(|h| h.start <= h.end && within(h.start) && within(h.end))
                    .map(|h| banter_highlight { start: h.start, end: h.end })
                    .collect();
                (snippet, highlights)
            })
            .collect();
        // The heap buffers of the strings and lists do not move when the page does.
        let hits = hits
            .iter()
            .zip(&storage)
            .map(|(hit, (snippet, highlights))| banter_search_hit {
                room: hit.room.0,
                seq: hit.seq,
                sender: hit.sender.0,
                ts: hit.ts.0,
                file: hit.file,
                snippet: snippet.as_ptr(),
                highlights: if highlights.is_empty() {
                    std::ptr::null()
                } else {
                    highlights.as_ptr()
                },
                highlights_len: highlights.len(),
            })
            .collect();
        let next = next.map(|c| banter_search_cursor { ts: c.ts.0, room: c.room.0, seq: c.seq });
        Self { hits, next, _storage: storage }
    }
}

/// Searches the messages and shared files the user may read for `query` (words, "exact
/// phrases", -excluded words, from:USER, in:ROOM, before:YYYY-MM-DD, after:YYYY-MM-DD,
/// has:file); `room` keeps to one room (0: all). `cursor` continues after the page it ends
/// (NULL: from the newest). Up to `limit` hits (the server caps it) go to `*page_out`, newest
/// first. A server without search refuses with BANTER_SERVER_ERROR (its code
/// UNSUPPORTED_EXTENSION in banter_last_server_error()), as it does one searched too often
/// (RATE_LIMITED). A message is found about a second after it was sent, once indexed.
///
/// # Safety
/// `client` is a live client; `query` is (pointer, length); `cursor` is NULL or readable;
/// `page_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_client_search(
    client: *const banter_client,
    query: *const c_char,
    query_len: usize,
    room: u64,
    cursor: *const banter_search_cursor,
    limit: u32,
    page_out: *mut *mut banter_search_page,
) -> banter_status {
    guard(|| {
        let client = client_ref(client)?;
        // SAFETY: forwarded caller contract.
        let query = unsafe { str_arg(query, query_len) }?;
        // SAFETY: caller contract: NULL or readable.
        let cursor = unsafe { cursor.as_ref() }.map(|c| SearchCursor {
            ts: Timestamp(c.ts),
            room: RoomId(c.room),
            seq: c.seq,
        });
        if page_out.is_null() {
            return Err(Failure::new(BANTER_NULL_ARGUMENT, "NULL out-parameter"));
        }
        let limit = u16::try_from(limit).unwrap_or(u16::MAX);
        let room = (room != 0).then_some(RoomId(room));
        let request = Search { room, cursor, ..Search::new(text(query)?, limit) };
        let (hits, next) = client.block_on(client.client.search(request))??;
        let page = Box::new(banter_search_page::new(&hits, next));
        // SAFETY: forwarded caller contract.
        unsafe { write_out(page_out, Box::into_raw(page)) }
    })
}

/// The number of hits in a page (0 for NULL).
///
/// # Safety
/// `page` is NULL or a live page.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_search_page_len(page: *const banter_search_page) -> usize {
    // SAFETY: caller contract: NULL or live.
    unsafe { page.as_ref() }.map_or(0, |p| p.hits.len())
}

/// Hit `index` of a page (borrowed from the page; do not free), or NULL out of range.
///
/// # Safety
/// `page` is NULL or a live page.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_search_page_get(
    page: *const banter_search_page,
    index: usize,
) -> *const banter_search_hit {
    // SAFETY: caller contract: NULL or live.
    unsafe { page.as_ref() }
        .and_then(|p| p.hits.get(index))
        .map_or(std::ptr::null(), |hit| hit as *const _)
}

/// Whether more hits may follow this page; if so, the cursor for the next one goes to
/// `*cursor_out` (when not NULL). False for NULL.
///
/// # Safety
/// `page` is NULL or a live page; `cursor_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_search_page_next(
    page: *const banter_search_page,
    cursor_out: *mut banter_search_cursor,
) -> bool {
    // SAFETY: caller contract: NULL or live.
    let Some(next) = unsafe { page.as_ref() }.and_then(|p| p.next) else { return false };
    if !cursor_out.is_null() {
        // SAFETY: non-NULL, and the caller guarantees it is writable.
        unsafe { cursor_out.write(next) };
    }
    true
}

/// Frees a page (and the hits borrowed from it). NULL is ignored.
///
/// # Safety
/// `page` is NULL or a page from banter_client_search(), not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn banter_search_page_free(page: *mut banter_search_page) {
    if !page.is_null() {
        // SAFETY: from Box::into_raw in banter_client_search, freed once.
        drop(unsafe { Box::from_raw(page) });
    }
}
