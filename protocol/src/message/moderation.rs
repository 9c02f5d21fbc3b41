//! Roles and moderation (spec §6.7). Every act is checked by the server's one authorization
//! function and written to the audit log.

use serde::{Deserialize, Serialize};

use crate::bounded::{List, Text};
use crate::ids::{RoomId, Timestamp, UserId};
use crate::message::rooms::Role;
use crate::message::{max, wire};

/// An audited action. Open: unknown actions decode and display by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AuditAction(pub u16);

impl AuditAction {
    /// A role was set.
    pub const ROLE_SET: Self = Self(1);
    /// A member was kicked.
    pub const KICK: Self = Self(2);
    /// A user was banned.
    pub const BAN: Self = Self(3);
    /// A ban was lifted.
    pub const UNBAN: Self = Self(4);
    /// Someone else's message was deleted.
    pub const DELETE_MESSAGE: Self = Self(5);
    /// A voice moderation act (mute, unmute, grant, revoke).
    pub const VOICE: Self = Self(6);
    /// A login session was revoked by an administrator.
    pub const SESSION_REVOKE: Self = Self(7);
    /// An account was created by an administrator.
    pub const USER_CREATE: Self = Self(8);
    /// An account was disabled (its logins end).
    pub const USER_DISABLE: Self = Self(9);
    /// A disabled account was enabled again.
    pub const USER_ENABLE: Self = Self(10);
    /// An account's password was reset by an administrator (its logins end).
    pub const PASSWORD_RESET: Self = Self(11);
    /// A room was created by an administrator.
    pub const ROOM_CREATE: Self = Self(12);
    /// A room's slow mode or lock was changed.
    pub const ROOM_CONFIGURE: Self = Self(13);
    /// An invite code was made.
    pub const INVITE_CREATE: Self = Self(14);
    /// A user was added to a room by another (ROOM_INVITE).
    pub const MEMBER_ADD: Self = Self(15);
    /// A moderator revealed who wrote an anonymous entry.
    pub const REVEAL_AUTHOR: Self = Self(16);
    /// The operator archived a room, or brought it back.
    pub const ROOM_ARCHIVE: Self = Self(17);

    /// The registered name (spec §10.8), or `None` for a value this build does not know.
    pub fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 17] = [
            "ROLE_SET",
            "KICK",
            "BAN",
            "UNBAN",
            "DELETE_MESSAGE",
            "VOICE",
            "SESSION_REVOKE",
            "USER_CREATE",
            "USER_DISABLE",
            "USER_ENABLE",
            "PASSWORD_RESET",
            "ROOM_CREATE",
            "ROOM_CONFIGURE",
            "INVITE_CREATE",
            "MEMBER_ADD",
            "REVEAL_AUTHOR",
            "ROOM_ARCHIVE",
        ];
        NAMES.get(usize::from(self.0).checked_sub(1)?).copied()
    }
}

wire! {
    /// ROLE_SET: give a user a role in a room, or server-wide; answered with DONE.
    pub struct RoleSet {
        /// The room, or `None` for the server-wide role.
        pub room: Option<RoomId>,
        /// The user.
        pub user: UserId,
        /// The role. Setting `OWNER` transfers ownership (the caller becomes admin/moderator).
        pub role: Role,
    }

    /// KICK: remove a member from a room; answered with EVENT_ACK.
    pub struct Kick {
        /// The room.
        pub room: RoomId,
        /// The member.
        pub user: UserId,
        /// Why (shown to the room and in the audit log).
        pub reason: Text<{ max::REASON }>,
    }

    /// BAN: remove and bar a user from a room; answered with EVENT_ACK.
    pub struct Ban {
        /// The room.
        pub room: RoomId,
        /// The user.
        pub user: UserId,
        /// Why.
        pub reason: Text<{ max::REASON }>,
        /// When the ban ends; `None` for never.
        pub until: Option<Timestamp>,
    }

    /// UNBAN: lift a ban; answered with EVENT_ACK.
    pub struct Unban {
        /// The room.
        pub room: RoomId,
        /// The user.
        pub user: UserId,
    }

    /// AUDIT_QUERY: a page of the audit log, newest first.
    pub struct AuditQuery {
        /// One room's entries, or `None` for all (server admins only).
        pub room: Option<RoomId>,
        /// Entries with id below this; `None` for the newest.
        pub before: Option<u64>,
        /// At most this many (capped at 100).
        pub limit: u16,
    }

    /// One audit entry.
    pub struct AuditEntry {
        /// Its id: dense, increasing.
        pub id: u64,
        /// When.
        pub ts: Timestamp,
        /// Who acted.
        pub actor: UserId,
        /// What they did.
        pub action: AuditAction,
        /// The room, if any.
        pub room: Option<RoomId>,
        /// The user acted on, if any.
        pub target: Option<UserId>,
        /// The reason or detail given.
        pub reason: Text<{ max::REASON }>,
    }

    /// AUDIT_PAGE: the answer to AUDIT_QUERY.
    pub struct AuditPage {
        /// The entries.
        pub entries: List<AuditEntry, { max::PAGE }>,
        /// Whether more follow.
        pub more: bool,
    }
}
