//! Room events (spec §6.4): the requests that append to a room's log, the frames that carry
//! log entries (live on the events stream, or in HISTORY / CATCH_UP answers), and history
//! paging.
//!
//! A message is named by the room_seq of its POSTED event; there is no second id space
//! (spec §7.5).

use serde::{Deserialize, Serialize};

use crate::bounded::{List, Text};
use crate::ids::{RoomId, Timestamp, UserId};
use crate::message::{max, wire};

wire! {
    /// Where an event sits and who caused it; common to every log entry.
    pub struct EventMeta {
        /// The room.
        pub room: RoomId,
        /// The entry's room_seq: dense, gap-free, from 1.
        pub seq: u64,
        /// When the server committed it.
        pub ts: Timestamp,
        /// Who caused it (the author, or the moderator who acted). Always the server's view of
        /// the session, never a client field.
        pub sender: UserId,
    }

    /// POST: append a message. Idempotent on `client_msg_id` (spec §7.2).
    pub struct Post {
        /// The room.
        pub room: RoomId,
        /// Chosen by the client (random or UUIDv7), unique per user; a retry reuses it.
        pub client_msg_id: u128,
        /// The text; at most the server's `max_message_bytes`.
        pub text: Text<{ max::MESSAGE_TEXT }>,
        /// The message replied to (its room_seq), if any.
        pub reply_to: Option<u64>,
        /// Post without a name, in a room that allows it: others see sender 0.
        pub anonymous: bool,
    }

    /// EDIT: replace the text of one's own message.
    pub struct Edit {
        /// The room.
        pub room: RoomId,
        /// The message (room_seq of its POSTED).
        pub target: u64,
        /// The full new text.
        pub text: Text<{ max::MESSAGE_TEXT }>,
    }

    /// DELETE: replace a message with a tombstone (the author, or a moderator).
    pub struct Delete {
        /// The room.
        pub room: RoomId,
        /// The message.
        pub target: u64,
    }

    /// REACT: add or remove one's reaction. Idempotent: a no-op change appends nothing.
    pub struct React {
        /// The room.
        pub room: RoomId,
        /// The message.
        pub target: u64,
        /// The reaction, 1–32 bytes (normally one emoji).
        pub emoji: Text<{ max::EMOJI }>,
        /// Add (true) or remove (false).
        pub on: bool,
    }

    /// EVENT_ACK: the request's event is durable at (room, seq); the answer to POST, EDIT,
    /// DELETE, REACT, ROOM_LEAVE, ROOM_SET_TOPIC, KICK, BAN, UNBAN.
    pub struct EventAck {
        /// The room.
        pub room: RoomId,
        /// The room_seq assigned (for a REACT that changed nothing, the room's last seq).
        pub seq: u64,
        /// Commit time.
        pub ts: Timestamp,
    }

    /// HISTORY: a page of the log going backwards, with edits, deletions and reactions
    /// folded into the messages they change (spec §6.4.6). Answered with HISTORY_MESSAGE, MEMBERSHIP
    /// and TOPIC_CHANGED frames, newest first, then PAGE_END.
    pub struct History {
        /// The room.
        pub room: RoomId,
        /// Entries with room_seq below this; `None` for the newest.
        pub before: Option<u64>,
        /// At most this many log entries (capped by `max_history_page`).
        pub limit: u16,
    }

    /// CATCH_UP: the raw log after a room_seq, oldest first, as the events stream would have
    /// carried it (spec §6.4.7). Answered with event frames (event_seq 0), then PAGE_END.
    pub struct CatchUp {
        /// The room.
        pub room: RoomId,
        /// Entries with room_seq above this.
        pub after: u64,
        /// At most this many entries (capped by `max_history_page`).
        pub limit: u16,
    }

    /// PAGE_END: the last frame of a HISTORY or CATCH_UP answer.
    pub struct PageEnd {
        /// The room.
        pub room: RoomId,
        /// The anchor for the next page (`before` for HISTORY, `after` for CATCH_UP), or
        /// `None` when the log has no more entries in that direction.
        pub next: Option<u64>,
    }

    /// POSTED: a message was appended.
    pub struct Posted {
        /// On the events stream, the session's event_seq; elsewhere 0.
        pub event_seq: u64,
        /// Where and who.
        pub meta: EventMeta,
        /// Only to the author's own sessions: the POST's client_msg_id (spec §7.2).
        pub client_msg_id: Option<u128>,
        /// The message replied to.
        pub reply_to: Option<u64>,
        /// The text.
        pub text: Text<{ max::MESSAGE_TEXT }>,
    }

    /// EDITED: a message's text was replaced.
    pub struct Edited {
        /// As in POSTED.
        pub event_seq: u64,
        /// Where and who.
        pub meta: EventMeta,
        /// The message edited.
        pub target: u64,
        /// Its new full text.
        pub text: Text<{ max::MESSAGE_TEXT }>,
    }

    /// DELETED: a message became a tombstone.
    pub struct Deleted {
        /// As in POSTED.
        pub event_seq: u64,
        /// Where and who (the sender is the author or the moderator who deleted it).
        pub meta: EventMeta,
        /// The message deleted.
        pub target: u64,
    }

    /// REACTED: a user's reaction was added or removed.
    pub struct Reacted {
        /// As in POSTED.
        pub event_seq: u64,
        /// Where and who.
        pub meta: EventMeta,
        /// The message.
        pub target: u64,
        /// The reaction.
        pub emoji: Text<{ max::EMOJI }>,
        /// Added (true) or removed (false).
        pub on: bool,
    }

    /// MEMBERSHIP: someone joined, left, or was removed or restored.
    pub struct Membership {
        /// As in POSTED.
        pub event_seq: u64,
        /// Where and who acted (the user themself, or a moderator).
        pub meta: EventMeta,
        /// Whose membership changed.
        pub user: UserId,
        /// Their name at the time.
        pub username: Text<{ max::USERNAME }>,
        /// What happened.
        pub change: MembershipChange,
        /// The moderator's reason; empty otherwise.
        pub reason: Text<{ max::REASON }>,
    }

    /// TOPIC_CHANGED: the topic changed.
    pub struct TopicChanged {
        /// As in POSTED.
        pub event_seq: u64,
        /// Where and who.
        pub meta: EventMeta,
        /// The new topic.
        pub topic: Text<{ max::TOPIC }>,
    }

    /// ROOM_CONFIGURED: a moderator changed the room's settings; carries all of them.
    pub struct RoomConfigured {
        /// As in POSTED.
        pub event_seq: u64,
        /// Where and who.
        pub meta: EventMeta,
        /// Slow mode in seconds (0: off).
        pub slow_mode_s: u32,
        /// Whether only moderators may post.
        pub locked: bool,
        /// Whether members may post anonymously.
        pub anonymous: bool,
        /// Whether the room's voice is a stage.
        pub stage: bool,
    }

    /// REVEAL_AUTHOR: who wrote an anonymous entry (moderators; audited); answered with
    /// AUTHOR.
    pub struct RevealAuthor {
        /// The room.
        pub room: RoomId,
        /// The entry.
        pub seq: u64,
    }

    /// AUTHOR: the answer to REVEAL_AUTHOR.
    pub struct Author {
        /// The room.
        pub room: RoomId,
        /// The entry.
        pub seq: u64,
        /// Who wrote it.
        pub user: UserId,
    }

    /// HISTORY_MESSAGE: a message as it stands now, in a HISTORY answer.
    pub struct HistoryMessage {
        /// Where and who (the POSTED event's meta).
        pub meta: EventMeta,
        /// The message replied to.
        pub reply_to: Option<u64>,
        /// The latest text; empty when deleted.
        pub text: Text<{ max::MESSAGE_TEXT }>,
        /// The room_seq and time of the latest edit, if edited.
        pub edited: Option<(u64, Timestamp)>,
        /// Who deleted it, if it is a tombstone.
        pub deleted_by: Option<UserId>,
        /// Reactions, in order of first use.
        pub reactions: List<ReactionCount, { max::REACTIONS }>,
    }

    /// One reaction on a HISTORY_MESSAGE.
    pub struct ReactionCount {
        /// The reaction.
        pub emoji: Text<{ max::EMOJI }>,
        /// How many users reacted with it.
        pub count: u32,
        /// Whether the caller is one of them.
        pub me: bool,
    }

    /// LIVE_PAUSED: the server stopped the live push of a room to this session because the
    /// session fell behind (spec §7.7). The client catches up with CATCH_UP; a CATCH_UP
    /// that reaches the room's head resumes the live push.
    pub struct LivePaused {
        /// As in POSTED.
        pub event_seq: u64,
        /// The room.
        pub room: RoomId,
        /// The last room_seq delivered live before the pause.
        pub delivered_seq: u64,
    }
}

/// What a MEMBERSHIP event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum MembershipChange {
    /// Joined (or created the room, or was added to a direct room).
    Joined,
    /// Left on their own.
    Left,
    /// Removed by a moderator; may rejoin.
    Kicked,
    /// Removed and barred by a moderator.
    Banned,
    /// Unbarred (not re-added).
    Unbanned,
}
