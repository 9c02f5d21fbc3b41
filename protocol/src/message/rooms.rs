//! Room requests and their answers (spec §6.3): create, list, join, leave, topic, direct
//! messages, members.

use serde::{Deserialize, Serialize};

use crate::bounded::{List, Text};
use crate::ids::{RoomId, Timestamp, UserId};
use crate::message::{max, wire};

/// Who may see and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Visibility {
    /// Listed to everyone; anyone may join.
    Public,
    /// Listed only to members; joined by invitation or by a moderator adding the user.
    Private,
}

/// What a room is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum RoomKind {
    /// A named channel.
    Channel,
    /// A direct-message room between two users.
    Direct,
}

/// A role, server-wide or in one room (spec §6.7). Open: unknown roles decode and rank as
/// [`Role::MEMBER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Role(pub u8);

impl Role {
    /// A member: may read and post.
    pub const MEMBER: Self = Self(0);
    /// May delete others' messages, kick, ban members, mute in voice, grant speech.
    pub const MODERATOR: Self = Self(1);
    /// Server-wide: everything a moderator may, in every room, and manage roles.
    pub const ADMIN: Self = Self(2);
    /// The owner of the room or server; may transfer ownership.
    pub const OWNER: Self = Self(3);

    /// The registered name in lower case (`member`, `moderator`, `admin`, `owner`), or `None`
    /// for a value this build does not know.
    pub fn name(self) -> Option<&'static str> {
        ["member", "moderator", "admin", "owner"].get(usize::from(self.0)).copied()
    }
}

/// How the caller stands with a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ListScope {
    /// Rooms the caller is a member of, with read positions.
    Joined,
    /// Public rooms (joined or not), for discovery.
    Public,
}

wire! {
    /// A room as listed (spec §6.3.2).
    pub struct RoomSummary {
        /// Its id.
        pub room: RoomId,
        /// Channel or direct.
        pub kind: RoomKind,
        /// Display name (for a direct room, the other user's name).
        pub name: Text<{ max::ROOM_NAME }>,
        /// Topic.
        pub topic: Text<{ max::TOPIC }>,
        /// Category for grouping in room lists; empty for none.
        pub category: Text<{ max::CATEGORY }>,
        /// Public or private.
        pub visibility: Visibility,
        /// Whether the room carries voice.
        pub voice: bool,
        /// Member count.
        pub members: u32,
        /// The room's latest room_seq (0 for an empty log).
        pub last_seq: u64,
        /// Whether the caller is a member.
        pub joined: bool,
        /// The caller's read marker in the room (0 when none or not joined).
        pub read_seq: u64,
        /// The caller's role in the room.
        pub role: Role,
        /// Slow mode: seconds a member must wait between posts (0: off). Moderators are
        /// exempt.
        pub slow_mode_s: u32,
        /// Locked: only moderators may post, react or change the topic.
        pub locked: bool,
        /// Members may post anonymously.
        pub anonymous: bool,
        /// A stage: members join its voice suppressed until a moderator lets them speak.
        pub stage: bool,
    }

    /// ROOM_CREATE: create a channel; the creator becomes its owner and first member.
    pub struct RoomCreate {
        /// 1–64 bytes, unique among channels.
        pub name: Text<{ max::ROOM_NAME }>,
        /// Initial topic.
        pub topic: Text<{ max::TOPIC }>,
        /// Category; empty for none.
        pub category: Text<{ max::CATEGORY }>,
        /// Public or private.
        pub visibility: Visibility,
        /// Whether the room carries voice.
        pub voice: bool,
    }

    /// ROOM_INFO: one room; the answer to ROOM_CREATE, ROOM_JOIN and DM_OPEN.
    pub struct RoomInfo {
        /// The room.
        pub room: RoomSummary,
    }

    /// ROOM_LIST: a page of rooms, ordered by id.
    pub struct RoomList {
        /// Which rooms.
        pub scope: ListScope,
        /// Start after this room (exclusive); `None` from the start.
        pub after: Option<RoomId>,
        /// At most this many (the server caps it at 100).
        pub limit: u16,
    }

    /// ROOM_LIST_PAGE: the answer to ROOM_LIST.
    pub struct RoomListPage {
        /// The rooms.
        pub rooms: List<RoomSummary, { max::PAGE }>,
        /// Whether more rooms follow the last one.
        pub more: bool,
    }

    /// ROOM_JOIN: become a member; answered with ROOM_INFO.
    pub struct RoomJoin {
        /// The room.
        pub room: RoomId,
    }

    /// ROOM_LEAVE: stop being a member; answered with EVENT_ACK of the membership event.
    pub struct RoomLeave {
        /// The room.
        pub room: RoomId,
    }

    /// ROOM_SET_TOPIC: change the topic; answered with EVENT_ACK.
    pub struct RoomSetTopic {
        /// The room.
        pub room: RoomId,
        /// The new topic.
        pub topic: Text<{ max::TOPIC }>,
    }

    /// ROOM_CONFIGURE: change a room's slow mode or lock (moderators); answered with
    /// EVENT_ACK of the ROOM_CONFIGURED entry.
    pub struct RoomConfigure {
        /// The room.
        pub room: RoomId,
        /// New slow mode in seconds (0 turns it off); `None` keeps it.
        pub slow_mode_s: Option<u32>,
        /// Lock or unlock; `None` keeps it.
        pub locked: Option<bool>,
        /// Allow or forbid anonymous posts; `None` keeps it.
        pub anonymous: Option<bool>,
        /// Make the room's voice a stage, or not; `None` keeps it.
        pub stage: Option<bool>,
    }

    /// INVITE_CREATE: make an invite code for a room; answered with INVITE.
    pub struct InviteCreate {
        /// The room.
        pub room: RoomId,
        /// How many joins it admits; `None`: any number.
        pub max_uses: Option<u32>,
        /// Seconds until it expires; `None`: never.
        pub expires_in_s: Option<u64>,
    }

    /// INVITE: an invite code and its limits.
    pub struct Invite {
        /// The code to share (letters and digits).
        pub code: Text<{ max::INVITE_CODE }>,
        /// The room it admits to.
        pub room: RoomId,
        /// How many joins it admits in all; `None`: any number.
        pub max_uses: Option<u32>,
        /// When it expires; `None`: never.
        pub expires: Option<Timestamp>,
    }

    /// INVITE_USE: join the room of an invite code; answered with ROOM_INFO.
    pub struct InviteUse {
        /// The code.
        pub code: Text<{ max::INVITE_CODE }>,
    }

    /// ROOM_INVITE: add a user to a room; answered with EVENT_ACK of their MEMBERSHIP entry.
    pub struct RoomInvite {
        /// The room.
        pub room: RoomId,
        /// Who to add, by name.
        pub username: Text<{ max::USERNAME }>,
    }

    /// DM_OPEN: find or create the direct room with a user; answered with ROOM_INFO.
    pub struct DmOpen {
        /// The other user's name.
        pub username: Text<{ max::USERNAME }>,
    }

    /// MEMBERS: a page of a room's members, ordered by user id.
    pub struct Members {
        /// The room (the caller must be a member, or it must be public).
        pub room: RoomId,
        /// Start after this user (exclusive).
        pub after: Option<UserId>,
        /// At most this many (the server caps it at 100).
        pub limit: u16,
    }

    /// One member as listed.
    pub struct Member {
        /// The user.
        pub user: UserId,
        /// Their name.
        pub username: Text<{ max::USERNAME }>,
        /// Their role in the room.
        pub role: Role,
    }

    /// MEMBERS_PAGE: the answer to MEMBERS.
    pub struct MembersPage {
        /// The members.
        pub members: List<Member, { max::PAGE }>,
        /// Whether more follow.
        pub more: bool,
    }
}
