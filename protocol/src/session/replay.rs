//! Numbering of the events stream and the replay buffer behind RESUME (spec §7.3).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::message::EventFrame;

/// The requested replay point is no longer (or never was) in the buffer: the client must start
/// a fresh session and catch up per room (RESUME_UNAVAILABLE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("events after {requested} are no longer buffered")]
pub struct ReplayGone {
    /// The client's `last_event_seq`.
    pub requested: u64,
}

/// Server side: assigns event_seq (from 1, +1 per frame) and keeps encoded frames until the
/// client acknowledges them, they age past the resume window, or the byte budget is spent.
///
/// The budget counts each frame's bytes and its entry's bookkeeping ([`Self::ENTRY_BYTES`]):
/// a frame's bytes are mostly shared with every other session that got the event, so the
/// entry is what a small frame really costs, and a flood of tiny frames (LIVE_PAUSED,
/// reactions) must not hold many times the budget.
///
/// Replay for a given `last_event_seq` is deterministic (the same frames, byte for byte), so a
/// client that resumes twice from the same point sees the same stream.
///
/// A server that writes the frames from this buffer says how far it has written
/// ([`Self::keep_after`]): frames after that point are never dropped, by the budget or the
/// window, since a frame lost before it was sent would end the session
/// (RESUME_UNAVAILABLE) where its owner meant to pause it (LIVE_PAUSED); the owner's backlog
/// limit bounds them. The budget then bounds the frames written and not yet acknowledged.
#[derive(Debug)]
pub struct ReplayBuffer {
    entries: VecDeque<Entry>,
    next_seq: u64,
    /// Frames after this one are kept whatever the budget and window.
    keep_after: u64,
    bytes: usize,
    max_bytes: usize,
    window: Duration,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    at: Instant,
    frame: EventFrame,
}

impl ReplayBuffer {
    /// What one buffered frame costs beyond its bytes (its sequence number, time and the
    /// frame's handle), as the budget counts it.
    pub const ENTRY_BYTES: usize = size_of::<Entry>();

    /// A buffer keeping at most `max_bytes` of frames (with [`Self::ENTRY_BYTES`] each) for
    /// at most `window`.
    pub fn new(window: Duration, max_bytes: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            next_seq: 1,
            keep_after: u64::MAX,
            bytes: 0,
            max_bytes,
            window,
        }
    }

    /// The event_seq the next frame gets.
    pub fn next_event_seq(&self) -> u64 {
        self.next_seq
    }

    /// Numbers one frame: `build` encodes it with the event_seq it is given. Returns what it
    /// counts against the budget: its length and [`Self::ENTRY_BYTES`].
    pub fn push(&mut self, now: Instant, build: impl FnOnce(u64) -> EventFrame) -> usize {
        let seq = self.next_seq;
        self.next_seq += 1;
        let frame = build(seq);
        let counted = frame.len() + Self::ENTRY_BYTES;
        self.bytes += counted;
        self.entries.push_back(Entry { seq, at: now, frame });
        self.trim(now);
        counted
    }

    /// The client processed everything up to `seq` (from its PING); those frames go.
    pub fn ack(&mut self, seq: u64) {
        while self.entries.front().is_some_and(|e| e.seq <= seq) {
            self.pop();
        }
    }

    /// Keeps every frame after `seq` from now on, whatever the budget and window (the frames
    /// not written yet); by default none is kept that way.
    pub fn keep_after(&mut self, seq: u64) {
        self.keep_after = seq;
    }

    /// Drops frames older than the window or beyond the byte budget, except those after
    /// [`Self::keep_after`]'s point.
    pub fn trim(&mut self, now: Instant) {
        while let Some(front) = self.entries.front() {
            if front.seq > self.keep_after {
                break;
            }
            let expired = now.saturating_duration_since(front.at) > self.window;
            if !expired && self.bytes <= self.max_bytes {
                break;
            }
            self.pop();
        }
    }

    fn pop(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.bytes -= entry.frame.len() + Self::ENTRY_BYTES;
        }
    }

    /// The frames after `last_event_seq`, in order (for the new events stream of a resumed
    /// session, or what its writer has not taken yet); fails when any of them is gone.
    pub fn replay_after(
        &self,
        last_event_seq: u64,
    ) -> Result<impl ExactSizeIterator<Item = &EventFrame> + Clone, ReplayGone> {
        let gone = ReplayGone { requested: last_event_seq };
        if last_event_seq >= self.next_seq {
            return Err(gone); // the client claims events that were never sent
        }
        let first_kept = self.entries.front().map_or(self.next_seq, |e| e.seq);
        if last_event_seq + 1 < first_kept {
            return Err(gone);
        }
        // Sequence numbers in the buffer are contiguous, so the first frame wanted is at a known
        // index: no scan over what was already sent (this runs on every events-stream wake).
        let skip = usize::try_from(last_event_seq + 1 - first_kept).unwrap_or(usize::MAX);
        Ok(self.entries.iter().skip(skip).map(|e| &e.frame))
    }

    /// Bytes held, as the budget counts them.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }
}

/// Client side: checks that event_seq on the events stream advances by exactly one, and
/// remembers the last one processed for PING and RESUME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    last: u64,
}

impl EventCursor {
    /// A cursor for a fresh session (the first event is 1) or, after RESUMED, for
    /// `replay_from - 1`.
    pub fn starting_after(last: u64) -> Self {
        Self { last }
    }

    /// The last event_seq processed.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Accepts the next event_seq; any other value is a protocol violation by the server.
    pub fn advance(&mut self, event_seq: u64) -> Result<(), crate::session::Close> {
        if Some(event_seq) != self.last.checked_add(1) {
            return Err(crate::session::Close::new(
                crate::error::ErrorCode::PROTOCOL_VIOLATION,
                format!("event_seq {event_seq} after {}", self.last),
            ));
        }
        self.last = event_seq;
        Ok(())
    }
}
