//! Soft state (spec §6.5): read and delivery markers, typing, presence. Requests go on
//! request streams; what the server pushes goes on the ephemeral stream, is never replayed on
//! resume, and may be coalesced.

use serde::{Deserialize, Serialize};

use crate::bounded::Text;
use crate::ids::{RoomId, UserId};
use crate::message::{max, wire};

/// A typing state (spec §6.5.3). Receivers expire `Active` after 6 s and `Paused` after 30 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum TypingState {
    /// Typing now.
    Active,
    /// Text in the input, not typing.
    Paused,
    /// Input cleared or sent.
    Stopped,
}

/// A presence status (spec §6.5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum PresenceStatus {
    /// Connected and active.
    Online,
    /// Connected, idle.
    Away,
    /// Do not disturb.
    Dnd,
    /// Connected but shown to others as offline (only ever sent by a client).
    Invisible,
    /// No connected session (or invisible).
    Offline,
}

wire! {
    /// MARK_READ: the caller has read a room up to `seq`; answered with MARKER_OK.
    pub struct MarkRead {
        /// The room.
        pub room: RoomId,
        /// The highest room_seq displayed to the user.
        pub seq: u64,
        /// When true the marker syncs to the caller's devices only, never to other users.
        pub private: bool,
    }

    /// MARK_DELIVERED: the caller's device has received a room up to `seq`; answered with
    /// MARKER_OK.
    pub struct MarkDelivered {
        /// The room.
        pub room: RoomId,
        /// The highest room_seq received.
        pub seq: u64,
    }

    /// MARKER_OK: the stored marker, which never goes backwards (max of old and new).
    pub struct MarkerOk {
        /// The room.
        pub room: RoomId,
        /// The stored value.
        pub seq: u64,
    }

    /// TYPING_SET: the caller's typing state in a room; answered with DONE.
    pub struct TypingSet {
        /// The room.
        pub room: RoomId,
        /// The state.
        pub state: TypingState,
    }

    /// PRESENCE_SET: the caller's chosen status; answered with DONE.
    pub struct PresenceSet {
        /// The status (`Offline` is not allowed; use `Invisible`).
        pub status: PresenceStatus,
        /// A short status text; empty for none.
        pub text: Text<{ max::STATUS_TEXT }>,
    }

    /// PRESENCE: a user's aggregated presence, sent to users who share a room with them.
    pub struct Presence {
        /// The user.
        pub user: UserId,
        /// The most available status over their sessions (`Invisible` shows as `Offline`).
        pub status: PresenceStatus,
        /// Their status text.
        pub text: Text<{ max::STATUS_TEXT }>,
    }

    /// TYPING: someone's typing state in a room.
    pub struct Typing {
        /// The room.
        pub room: RoomId,
        /// Who.
        pub user: UserId,
        /// Their state.
        pub state: TypingState,
    }

    /// READ_UP_TO: a user's public read marker moved (or, to the user's own devices, any
    /// read marker).
    pub struct ReadUpTo {
        /// The room.
        pub room: RoomId,
        /// Whose marker.
        pub user: UserId,
        /// The new value.
        pub seq: u64,
    }

    /// DELIVERED_UP_TO: a user's delivery marker moved (direct rooms only).
    pub struct DeliveredUpTo {
        /// The room.
        pub room: RoomId,
        /// Whose marker.
        pub user: UserId,
        /// The new value.
        pub seq: u64,
    }
}
