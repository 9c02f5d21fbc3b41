//! What is stored under each key (postcard). These are internal: changing one means a new
//! schema version, never a silent reinterpretation.

use serde::{Deserialize, Serialize};

/// An account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserRecord {
    pub(crate) username: String,
    /// PHC string (`$argon2id$v=19$m=...`).
    pub(crate) password_hash: String,
    pub(crate) created: u64,
    pub(crate) disabled: bool,
    /// Server-wide role (banter_protocol Role value).
    pub(crate) role: u8,
}

/// A login key registered with proof of possession (KEY_ADD).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LoginKeyRecord {
    /// When it was added (ms since the epoch).
    pub(crate) added: u64,
}

/// A login session and the state of its refresh-token chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub(crate) user: u64,
    pub(crate) device_name: String,
    /// When the login began; part of every refresh secret's derivation.
    pub(crate) created: u64,
    /// When the current refresh generation was issued (login or the last REFRESH): the grace
    /// window for a lost REFRESH answer counts from it.
    pub(crate) last_seen: u64,
    /// Generation of the one valid refresh token; genuine older generations are reuse.
    pub(crate) refresh_generation: u32,
    /// SHA-256 of the valid refresh token's secret.
    pub(crate) refresh_hash: [u8; 32],
    /// When the refresh chain expires.
    pub(crate) expires: u64,
}

/// A room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomRecord {
    pub(crate) direct: bool,
    pub(crate) name: String,
    pub(crate) topic: String,
    pub(crate) category: String,
    pub(crate) private: bool,
    pub(crate) voice: bool,
    pub(crate) created: u64,
    /// The room's latest room_seq.
    pub(crate) last_seq: u64,
    pub(crate) members: u32,
    /// For a direct room, its two users.
    pub(crate) direct_pair: Option<(u64, u64)>,
    /// The timestamp of the latest entry: a later entry's is never below it, whatever the
    /// clock did in between (a step, a restart, another node's clock). Schema 3.
    pub(crate) last_ts: u64,
}

/// A room record as schema 2 wrote it (without `last_ts`), read only by the migration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomRecordV2 {
    pub(crate) direct: bool,
    pub(crate) name: String,
    pub(crate) topic: String,
    pub(crate) category: String,
    pub(crate) private: bool,
    pub(crate) voice: bool,
    pub(crate) created: u64,
    pub(crate) last_seq: u64,
    pub(crate) members: u32,
    pub(crate) direct_pair: Option<(u64, u64)>,
}

impl RoomRecordV2 {
    /// The schema-3 record, `last_ts` being its latest entry's.
    pub(crate) fn upgrade(self, last_ts: u64) -> RoomRecord {
        let Self {
            direct,
            name,
            topic,
            category,
            private,
            voice,
            created,
            last_seq,
            members,
            direct_pair,
        } = self;
        RoomRecord {
            direct,
            name,
            topic,
            category,
            private,
            voice,
            created,
            last_seq,
            members,
            direct_pair,
            last_ts,
        }
    }
}

/// A room's moderation settings, in their own table so that rooms without any need no
/// record (and the room record's layout stays as it is).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RoomSettings {
    /// Seconds between a member's posts; 0 is off.
    pub(crate) slow_mode_s: u32,
    /// Only moderators may post.
    pub(crate) locked: bool,
    /// Members may post anonymously.
    pub(crate) anonymous: bool,
    /// Archived by the operator: read-only for everyone, gone from public listings.
    pub(crate) archived: bool,
    /// Members join voice suppressed (a stage).
    pub(crate) stage: bool,
}

/// The stored contact states of a friend and of a block (the CONTACT table holds one byte per
/// side: 0 friend, 1 outgoing request, 2 incoming request, 3 blocked).
pub(crate) const CONTACT_FRIEND: u8 = 0;
pub(crate) const CONTACT_BLOCKED: u8 = 3;

/// An invite code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InviteRecord {
    pub(crate) room: u64,
    pub(crate) creator: u64,
    pub(crate) created: u64,
    pub(crate) uses: u32,
    pub(crate) max_uses: Option<u32>,
    /// ms since the epoch.
    pub(crate) expires: Option<u64>,
}

/// A membership.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct MemberRecord {
    pub(crate) role: u8,
}

/// A ban.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BanRecord {
    pub(crate) until: Option<u64>,
    pub(crate) reason: String,
    pub(crate) by: u64,
}

/// One entry of a room's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogEntry {
    pub(crate) ts: u64,
    pub(crate) sender: u64,
    pub(crate) kind: EntryKind,
}

/// What a log entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EntryKind {
    Posted { client_msg_id: u128, reply_to: Option<u64>, text: String },
    Edited { target: u64, text: String },
    Deleted { target: u64 },
    Reacted { target: u64, emoji: String, on: bool },
    Membership { user: u64, username: String, change: u8, reason: String },
    Topic { topic: String },
    Configured { slow_mode_s: u32, locked: bool, anonymous: bool, stage: bool },
    FileShared { name: String, size: u64, sha256: [u8; 32] },
}

/// The folded state of a posted message, kept current by edits, deletes and reactions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct MessageState {
    pub(crate) author: u64,
    /// The latest edit: its room_seq, time and text.
    pub(crate) edited: Option<(u64, u64, String)>,
    /// Every EDITED entry's seq (their texts are purged on delete).
    pub(crate) edit_seqs: Vec<u64>,
    pub(crate) deleted_by: Option<u64>,
    /// Reaction counts in order of first use.
    pub(crate) reactions: Vec<(String, u32)>,
}

/// The idempotency record of a POST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DedupRecord {
    pub(crate) room: u64,
    pub(crate) seq: u64,
    pub(crate) ts: u64,
    /// SHA-256 of the room id and text, to tell a retry from a reuse.
    pub(crate) digest: [u8; 32],
}

/// A user's markers in a room.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct MarkerRecord {
    pub(crate) read: u64,
    pub(crate) delivered: u64,
}

/// An audit log entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AuditRecord {
    pub(crate) ts: u64,
    pub(crate) actor: u64,
    pub(crate) action: u16,
    pub(crate) room: Option<u64>,
    pub(crate) target: Option<u64>,
    pub(crate) reason: String,
}
