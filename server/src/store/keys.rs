//! Key layout. Every key starts with a one-byte table tag; ids are big-endian so that range
//! scans walk a room's log, a room's members or a user's rooms in order.

use banter_protocol::ids::{RoomId, SessionId, UserId};

/// Table tags.
pub(crate) mod tag {
    /// Schema version and counters.
    pub(crate) const META: u8 = 0x00;
    /// user id → UserRecord
    pub(crate) const USER: u8 = 0x10;
    /// lower-case username → user id
    pub(crate) const USERNAME: u8 = 0x11;
    /// Schema 1: ed25519 public key → user id, registered with no proof of possession.
    /// Dropped by the migration to schema 2 (see `store::migrate`); nothing writes it.
    pub(crate) const UNPROVEN_LOGIN_KEY: u8 = 0x12;
    /// login session id → SessionRecord
    pub(crate) const SESSION: u8 = 0x13;
    /// user id ‖ session id → ()
    pub(crate) const USER_SESSION: u8 = 0x14;
    /// user id ‖ other user id → contact state (u8, banter_protocol ContactState order)
    pub(crate) const CONTACT: u8 = 0x15;
    /// user id ‖ ed25519 public key → LoginKeyRecord (proven by KEY_ADD)
    pub(crate) const LOGIN_KEY: u8 = 0x16;
    /// user id → bytes of the files they share in live (undeleted) FILE_SHARED entries (u64)
    pub(crate) const FILE_USAGE: u8 = 0x17;
    /// room id → RoomRecord
    pub(crate) const ROOM: u8 = 0x20;
    /// lower-case channel name → room id
    pub(crate) const ROOM_NAME: u8 = 0x21;
    /// smaller user id ‖ larger user id → room id
    pub(crate) const DIRECT: u8 = 0x22;
    /// room id ‖ user id → MemberRecord
    pub(crate) const MEMBER: u8 = 0x23;
    /// user id ‖ room id → ()
    pub(crate) const USER_ROOM: u8 = 0x24;
    /// room id ‖ user id → BanRecord
    pub(crate) const BAN: u8 = 0x25;
    /// room id → RoomSettings (absent: the defaults)
    pub(crate) const ROOM_SETTINGS: u8 = 0x26;
    /// invite code → InviteRecord
    pub(crate) const INVITE: u8 = 0x27;
    /// room id → ()  (the channels ROOM_LIST Public shows: public, not direct, not archived)
    pub(crate) const PUBLIC_ROOM: u8 = 0x28;
    /// room id ‖ user id → voice::Moderation (moderators' decisions about a user's voice)
    pub(crate) const VOICE_DECISION: u8 = 0x29;
    /// room id ‖ room_seq → LogEntry
    pub(crate) const LOG: u8 = 0x30;
    /// room id ‖ room_seq of a POSTED → MessageState (edits, tombstone, reaction counts);
    /// written by the message's first edit, delete or reaction, absent before
    pub(crate) const MESSAGE: u8 = 0x31;
    /// room id ‖ room_seq ‖ user id ‖ emoji → ()  (who reacted with what)
    pub(crate) const REACTION: u8 = 0x32;
    /// room id ‖ room_seq → ()  (entries whose sender is shown as 0: anonymous posts and
    /// their author's edits and deletes)
    pub(crate) const ANONYMOUS: u8 = 0x33;
    /// SHA-256 ‖ room id ‖ room_seq → ()  (a live FILE_SHARED entry of that content: where
    /// it may be read, and that it is still referenced)
    pub(crate) const CONTENT_REF: u8 = 0x34;
    /// SHA-256 → when its last reference went (ms since the epoch): its file is being
    /// removed, so nothing may take a new reference to it meanwhile (see
    /// `requests::files::delete`).
    pub(crate) const CONTENT_REMOVING: u8 = 0x35;
    /// user id ‖ client_msg_id → DedupRecord
    pub(crate) const DEDUP: u8 = 0x40;
    /// room id ‖ user id → MarkerRecord
    pub(crate) const MARKER: u8 = 0x50;
    /// audit id → AuditRecord
    pub(crate) const AUDIT: u8 = 0x60;
    /// room id ‖ audit id → ()  (a room's audit entries, for its moderators' AUDIT_QUERY)
    pub(crate) const ROOM_AUDIT: u8 = 0x61;
}

pub(crate) fn meta(name: &str) -> Vec<u8> {
    let mut key = vec![tag::META];
    key.extend_from_slice(name.as_bytes());
    key
}

/// `tag ‖ a ‖ b ‖ ...` with each part big-endian.
pub(crate) fn ids(tag: u8, parts: &[u64]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 8 * parts.len());
    key.push(tag);
    for part in parts {
        key.extend_from_slice(&part.to_be_bytes());
    }
    key
}

pub(crate) fn user(user: UserId) -> Vec<u8> {
    ids(tag::USER, &[user.0])
}

pub(crate) fn username(name: &str) -> Vec<u8> {
    let mut key = vec![tag::USERNAME];
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn login_key(user: UserId, public_key: &[u8; 32]) -> Vec<u8> {
    let mut key = login_keys(user);
    key.extend_from_slice(public_key);
    key
}

/// The prefix of a user's login keys.
pub(crate) fn login_keys(user: UserId) -> Vec<u8> {
    ids(tag::LOGIN_KEY, &[user.0])
}

pub(crate) fn file_usage(user: UserId) -> Vec<u8> {
    ids(tag::FILE_USAGE, &[user.0])
}

pub(crate) fn content_ref(sha256: &[u8; 32], room: RoomId, seq: u64) -> Vec<u8> {
    let mut key = content_refs(sha256);
    key.extend_from_slice(&room.0.to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn voice_decision(room: RoomId, user: UserId) -> Vec<u8> {
    ids(tag::VOICE_DECISION, &[room.0, user.0])
}

pub(crate) fn content_removing(sha256: &[u8; 32]) -> Vec<u8> {
    let mut key = vec![tag::CONTENT_REMOVING];
    key.extend_from_slice(sha256);
    key
}

/// The prefix of a content's references.
pub(crate) fn content_refs(sha256: &[u8; 32]) -> Vec<u8> {
    let mut key = vec![tag::CONTENT_REF];
    key.extend_from_slice(sha256);
    key
}

pub(crate) fn session(session: SessionId) -> Vec<u8> {
    ids(tag::SESSION, &[session.0])
}

pub(crate) fn user_session(user: UserId, session: SessionId) -> Vec<u8> {
    ids(tag::USER_SESSION, &[user.0, session.0])
}

pub(crate) fn contact(user: UserId, other: UserId) -> Vec<u8> {
    ids(tag::CONTACT, &[user.0, other.0])
}

pub(crate) fn invite(code: &str) -> Vec<u8> {
    let mut key = vec![tag::INVITE];
    key.extend_from_slice(code.as_bytes());
    key
}

pub(crate) fn room(room: RoomId) -> Vec<u8> {
    ids(tag::ROOM, &[room.0])
}

pub(crate) fn room_name(name: &str) -> Vec<u8> {
    let mut key = vec![tag::ROOM_NAME];
    key.extend_from_slice(name.to_lowercase().as_bytes());
    key
}

pub(crate) fn direct(a: UserId, b: UserId) -> Vec<u8> {
    ids(tag::DIRECT, &[a.0.min(b.0), a.0.max(b.0)])
}

pub(crate) fn member(room: RoomId, user: UserId) -> Vec<u8> {
    ids(tag::MEMBER, &[room.0, user.0])
}

pub(crate) fn user_room(user: UserId, room: RoomId) -> Vec<u8> {
    ids(tag::USER_ROOM, &[user.0, room.0])
}

pub(crate) fn ban(room: RoomId, user: UserId) -> Vec<u8> {
    ids(tag::BAN, &[room.0, user.0])
}

pub(crate) fn room_settings(room: RoomId) -> Vec<u8> {
    ids(tag::ROOM_SETTINGS, &[room.0])
}

pub(crate) fn log(room: RoomId, seq: u64) -> Vec<u8> {
    ids(tag::LOG, &[room.0, seq])
}

pub(crate) fn anonymous(room: RoomId, seq: u64) -> Vec<u8> {
    ids(tag::ANONYMOUS, &[room.0, seq])
}

pub(crate) fn message(room: RoomId, seq: u64) -> Vec<u8> {
    ids(tag::MESSAGE, &[room.0, seq])
}

pub(crate) fn reaction(room: RoomId, seq: u64, user: UserId, emoji: &str) -> Vec<u8> {
    let mut key = ids(tag::REACTION, &[room.0, seq, user.0]);
    key.extend_from_slice(emoji.as_bytes());
    key
}

pub(crate) fn dedup(user: UserId, client_msg_id: u128) -> Vec<u8> {
    let mut key = ids(tag::DEDUP, &[user.0]);
    key.extend_from_slice(&client_msg_id.to_be_bytes());
    key
}

pub(crate) fn marker(room: RoomId, user: UserId) -> Vec<u8> {
    ids(tag::MARKER, &[room.0, user.0])
}

pub(crate) fn audit(id: u64) -> Vec<u8> {
    ids(tag::AUDIT, &[id])
}

pub(crate) fn room_audit(room: RoomId, id: u64) -> Vec<u8> {
    ids(tag::ROOM_AUDIT, &[room.0, id])
}

pub(crate) fn public_room(room: RoomId) -> Vec<u8> {
    ids(tag::PUBLIC_ROOM, &[room.0])
}

/// The exclusive upper bound of every key that starts with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// Reads the big-endian u64 at `offset` of a key (ids in keys we wrote ourselves).
pub(crate) fn id_at(key: &[u8], offset: usize) -> u64 {
    key.get(offset..offset + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_room_then_seq() {
        let mut keys = vec![log(RoomId(2), 1), log(RoomId(1), 300), log(RoomId(1), 2)];
        keys.sort();
        assert_eq!(keys, vec![log(RoomId(1), 2), log(RoomId(1), 300), log(RoomId(2), 1)]);
        assert_eq!(id_at(&keys[1], 9), 300);
    }

    #[test]
    fn prefix_end_bounds_every_extension() {
        let prefix = ids(tag::MEMBER, &[7]);
        let end = prefix_end(&prefix);
        assert!(member(RoomId(7), UserId(u64::MAX)) < end);
        assert!(member(RoomId(8), UserId(0)) >= end);
        assert_eq!(prefix_end(&[0xff]), vec![0xff, 0xff]);
    }
}
