//! `banterd check`: verifies a database in one pass over its keys (in key order, so each table
//! is read after the ones it refers to): every record decodes, every room log is gap-free from
//! 1 to the room's `last_seq`, and every index agrees with what it indexes.

use banter_protocol::ids::RoomId;
use serde::de::DeserializeOwned;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use super::AdminError;
use crate::files::FileStore;
use crate::store::keys::{self, tag};
use crate::store::records::{
    AuditRecord, BanRecord, CONTACT_BLOCKED, DedupRecord, EntryKind, InviteRecord, LogEntry,
    LoginKeyRecord, MarkerRecord, MemberRecord, MessageState, RoomRecord, RoomSettings,
    SessionRecord, UserRecord,
};
use crate::store::{Engine, SCHEMA_VERSION, StoreError, decode, scan_range};

/// How many problems a report lists (it counts them all).
const LISTED: usize = 100;

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Records read.
    pub records: u64,
    /// Accounts.
    pub users: u64,
    /// Rooms.
    pub rooms: u64,
    /// Room log entries.
    pub entries: u64,
    /// Shared files referred to by the logs.
    pub files: u64,
    /// Problems found (all of them).
    pub problem_count: u64,
    /// The first problems, described.
    pub problems: Vec<String>,
}

impl Report {
    /// Whether the database is sound.
    pub fn ok(&self) -> bool {
        self.problem_count == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} records: {} users, {} rooms, {} log entries, {} shared files",
            self.records, self.users, self.rooms, self.entries, self.files
        )?;
        for problem in &self.problems {
            writeln!(f, "problem: {problem}")?;
        }
        if self.problem_count > self.problems.len() as u64 {
            writeln!(f, "... and {} more", self.problem_count - self.problems.len() as u64)?;
        }
        if self.ok() {
            write!(f, "ok: every room log is gap-free and every index is consistent")
        } else {
            write!(f, "FAILED: {} problems", self.problem_count)
        }
    }
}

/// The running state of one pass.
struct Checker {
    report: Report,
    /// Where shared files are (every FILE_SHARED entry's content must be there).
    files: FileStore,
    counters: HashMap<String, u64>,
    /// user id → username
    users: HashMap<u64, String>,
    /// session id → user id
    sessions: HashMap<u64, u64>,
    user_sessions: BTreeSet<(u64, u64)>,
    rooms: HashMap<u64, RoomRecord>,
    /// (room, user) memberships not yet matched by a USER_ROOM entry.
    unmatched_members: BTreeSet<(u64, u64)>,
    members_per_room: HashMap<u64, u32>,
    /// The room whose log is being walked and the last seq seen in it.
    log_cursor: Option<(u64, u64)>,
    /// Rooms with at least one log entry.
    logged: BTreeSet<u64>,
}

impl Checker {
    fn problem(&mut self, description: String) {
        self.report.problem_count += 1;
        if self.report.problems.len() < LISTED {
            self.report.problems.push(description);
        }
    }

    fn decode<T: DeserializeOwned>(&mut self, key: &[u8], value: &[u8]) -> Option<T> {
        match decode(key, value) {
            Ok(record) => Some(record),
            Err(error) => {
                self.problem(error.to_string());
                None
            }
        }
    }

    fn counter_covers(&mut self, counter: &str, id: u64, what: &str) {
        if self.counters.get(counter).copied().unwrap_or(0) < id {
            self.problem(format!("{what} {id} is above the `{counter}` counter"));
        }
    }

    fn visit(&mut self, engine: &dyn Engine, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.report.records += 1;
        let id = |offset| keys::id_at(key, offset);
        match key.first().copied() {
            Some(tag::META) => {
                let name = String::from_utf8_lossy(&key[1..]).into_owned();
                if let Some(value) = self.decode::<u64>(key, value) {
                    self.counters.insert(name, value);
                }
            }
            Some(tag::USER) => {
                if let Some(user) = self.decode::<UserRecord>(key, value) {
                    self.report.users += 1;
                    self.counter_covers("user", id(1), "user");
                    self.users.insert(id(1), user.username);
                }
            }
            Some(tag::USERNAME) => {
                let name = String::from_utf8_lossy(&key[1..]).into_owned();
                if let Some(user) = self.decode::<u64>(key, value) {
                    if self.users.get(&user) != Some(&name) {
                        self.problem(format!(
                            "username {name:?} points to user {user}, who is not named so"
                        ));
                    }
                }
            }
            Some(tag::LOGIN_KEY) => {
                self.decode::<LoginKeyRecord>(key, value);
                if !self.users.contains_key(&id(1)) {
                    self.problem(format!("a login key belongs to missing user {}", id(1)));
                }
            }
            Some(tag::SESSION) => {
                if let Some(session) = self.decode::<SessionRecord>(key, value) {
                    if !self.users.contains_key(&session.user) {
                        self.problem(format!("session {} of missing user {}", id(1), session.user));
                    }
                    self.counter_covers("session", id(1), "session");
                    self.sessions.insert(id(1), session.user);
                }
            }
            Some(tag::USER_SESSION) => {
                self.decode::<()>(key, value);
                let (user, session) = (id(1), id(9));
                if self.sessions.get(&session) != Some(&user) {
                    self.problem(format!(
                        "user {user} lists session {session}, which is not theirs"
                    ));
                }
                self.user_sessions.insert((user, session));
            }
            Some(tag::CONTACT) => {
                if let Some(state) = self.decode::<u8>(key, value) {
                    let known = self.users.contains_key(&id(1)) && self.users.contains_key(&id(9));
                    if state > CONTACT_BLOCKED || !known {
                        self.problem(format!("contact {} → {}: bad state or user", id(1), id(9)));
                    }
                }
            }
            Some(tag::ROOM) => {
                if let Some(room) = self.decode::<RoomRecord>(key, value) {
                    self.report.rooms += 1;
                    self.counter_covers("room", id(1), "room");
                    self.check_room_refs(engine, id(1), &room)?;
                    self.rooms.insert(id(1), room);
                }
            }
            Some(tag::ROOM_NAME) => {
                let name = String::from_utf8_lossy(&key[1..]).into_owned();
                if let Some(room) = self.decode::<u64>(key, value) {
                    let matches = self
                        .rooms
                        .get(&room)
                        .is_some_and(|r| !r.direct && r.name.to_lowercase() == name);
                    if !matches {
                        self.problem(format!(
                            "room name {name:?} points to room {room}, which is not named so"
                        ));
                    }
                }
            }
            Some(tag::DIRECT) => {
                if let Some(room) = self.decode::<u64>(key, value) {
                    let pair = (id(1), id(9));
                    if self.rooms.get(&room).and_then(|r| r.direct_pair) != Some(pair) {
                        self.problem(format!(
                            "direct pair {pair:?} points to room {room}, which is not theirs"
                        ));
                    }
                }
            }
            Some(tag::MEMBER) => {
                self.decode::<MemberRecord>(key, value);
                let (room, user) = (id(1), id(9));
                if !self.rooms.contains_key(&room) || !self.users.contains_key(&user) {
                    self.problem(format!(
                        "membership of user {user} in room {room}: one of them is missing"
                    ));
                }
                *self.members_per_room.entry(room).or_default() += 1;
                self.unmatched_members.insert((room, user));
            }
            Some(tag::USER_ROOM) => {
                self.decode::<()>(key, value);
                let (user, room) = (id(1), id(9));
                if !self.unmatched_members.remove(&(room, user)) {
                    self.problem(format!("user {user} lists room {room} without being a member"));
                }
            }
            Some(tag::BAN) => {
                self.decode::<BanRecord>(key, value);
                if !self.rooms.contains_key(&id(1)) {
                    self.problem(format!("a ban in missing room {}", id(1)));
                }
            }
            Some(tag::ROOM_SETTINGS) => {
                self.decode::<RoomSettings>(key, value);
                if !self.rooms.contains_key(&id(1)) {
                    self.problem(format!("settings of missing room {}", id(1)));
                }
            }
            Some(tag::INVITE) => {
                if let Some(invite) = self.decode::<InviteRecord>(key, value) {
                    if !self.rooms.contains_key(&invite.room) {
                        self.problem(format!("an invite to missing room {}", invite.room));
                    }
                }
            }
            Some(tag::LOG) => {
                let entry = self.decode::<LogEntry>(key, value);
                self.report.entries += 1;
                self.log_entry(id(1), id(9));
                let shared = match entry.map(|e| e.kind) {
                    Some(EntryKind::FileShared { size, sha256, .. }) => Some((size, sha256)),
                    _ => None,
                };
                // A share without its reference was deleted (its content may be gone).
                let live = match &shared {
                    Some((_, sha256)) => {
                        engine.get(&keys::content_ref(sha256, RoomId(id(1)), id(9)))?.is_some()
                    }
                    None => false,
                };
                if let Some((size, sha256)) = shared.filter(|_| live) {
                    self.report.files += 1;
                    let stored = std::fs::metadata(self.files.content(&sha256)).map(|m| m.len());
                    if stored.as_ref().ok() != Some(&size) {
                        self.problem(format!(
                            "room {} seq {}: its shared file ({size} bytes) is missing or of \
                             another size",
                            id(1),
                            id(9)
                        ));
                    }
                }
            }
            Some(tag::MESSAGE) => {
                if let Some(state) = self.decode::<MessageState>(key, value) {
                    let posted = log_entry(engine, id(1), id(9))?;
                    if !matches!(&posted, Some(e) if matches!(e.kind, EntryKind::Posted { .. }) && e.sender == state.author)
                    {
                        self.problem(format!(
                            "message state of room {} seq {} has no matching post",
                            id(1),
                            id(9)
                        ));
                    }
                }
            }
            Some(tag::REACTION) => {
                self.decode::<()>(key, value);
                if self.rooms.get(&id(1)).is_none_or(|r| id(9) > r.last_seq) {
                    self.problem(format!(
                        "a reaction on room {} seq {} beyond its log",
                        id(1),
                        id(9)
                    ));
                }
            }
            Some(tag::ANONYMOUS) => {
                self.decode::<()>(key, value);
                if log_entry(engine, id(1), id(9))?.is_none() {
                    self.problem(format!(
                        "anonymous mark on room {} seq {} without an entry",
                        id(1),
                        id(9)
                    ));
                }
            }
            Some(tag::DEDUP) => {
                if let Some(dedup) = self.decode::<DedupRecord>(key, value) {
                    let client_msg_id =
                        key.get(9..25).and_then(|b| b.try_into().ok()).map(u128::from_be_bytes);
                    let posted = log_entry(engine, dedup.room, dedup.seq)?;
                    let matches = matches!(&posted, Some(LogEntry { sender, kind: EntryKind::Posted { client_msg_id: logged, .. }, .. })
                        if *sender == id(1) && Some(*logged) == client_msg_id);
                    if !matches {
                        self.problem(format!("the idempotency record of user {} names room {} seq {}, which is not that post", id(1), dedup.room, dedup.seq));
                    }
                }
            }
            Some(tag::MARKER) => {
                if let Some(marker) = self.decode::<MarkerRecord>(key, value) {
                    let last_seq = self.rooms.get(&id(1)).map(|r| r.last_seq);
                    if last_seq.is_none_or(|last| marker.read > last || marker.delivered > last) {
                        self.problem(format!(
                            "markers of user {} in room {} point beyond its log",
                            id(9),
                            id(1)
                        ));
                    }
                }
            }
            Some(tag::AUDIT) => {
                self.decode::<AuditRecord>(key, value);
                self.counter_covers("audit", id(1), "audit entry");
            }
            Some(tag::PUBLIC_ROOM) => {
                self.decode::<()>(key, value);
                let listed = self.rooms.get(&id(1)).is_some_and(|r| !r.private && !r.direct);
                if !listed {
                    self.problem(format!(
                        "room {} is listed as public but is not a public channel",
                        id(1)
                    ));
                }
            }
            Some(tag::ROOM_AUDIT) => {
                self.decode::<()>(key, value);
                let record = engine.get(&keys::audit(id(9)))?;
                let about_room = record
                    .and_then(|bytes| decode::<AuditRecord>(key, &bytes).ok())
                    .is_some_and(|r| r.room == Some(id(1)));
                if !about_room {
                    self.problem(format!(
                        "room {}'s audit index names entry {}, not about it",
                        id(1),
                        id(9)
                    ));
                }
            }
            Some(tag::CONTENT_REF) => {
                self.decode::<()>(key, value);
                let (room, seq) = (id(33), id(41));
                let shares_it = matches!(
                    log_entry(engine, room, seq)?,
                    Some(LogEntry { kind: EntryKind::FileShared { sha256, .. }, .. })
                        if key.get(1..33) == Some(&sha256[..])
                );
                if !shares_it {
                    self.problem(format!(
                        "a file reference names room {room} seq {seq}, which does not share it"
                    ));
                }
            }
            Some(tag::VOICE_DECISION) => {
                self.decode::<crate::voice::Moderation>(key, value);
            }
            Some(tag::CONTENT_REMOVING) => {
                // A removal in progress, or one whose remover died (a share clears it).
                self.decode::<u64>(key, value);
            }
            Some(tag::FILE_USAGE) => {
                self.decode::<u64>(key, value);
                if !self.users.contains_key(&id(1)) {
                    self.problem(format!("file usage of missing user {}", id(1)));
                }
            }
            _ => self.problem(format!("a key in no known table: {key:02x?}")),
        }
        Ok(())
    }

    /// The DIRECT and ROOM_NAME index entries of a room exist.
    fn check_room_refs(
        &mut self,
        engine: &dyn Engine,
        room: u64,
        record: &RoomRecord,
    ) -> Result<(), StoreError> {
        let (index, what) = match record.direct_pair {
            Some((a, b)) => (keys::ids(tag::DIRECT, &[a, b]), "direct pair"),
            None => (keys::room_name(&record.name), "name"),
        };
        let indexed = engine.get(&index)?.and_then(|v| decode::<u64>(&index, &v).ok());
        if indexed != Some(room) {
            self.problem(format!("room {room}: its {what} is not indexed to it"));
        }
        Ok(())
    }

    /// Log keys arrive in (room, seq) order: each room's must run 1, 2, ... last_seq.
    fn log_entry(&mut self, room: u64, seq: u64) {
        let expected = match self.log_cursor {
            Some((current, last)) if current == room => last + 1,
            _ => {
                self.close_log();
                1
            }
        };
        if seq != expected {
            self.problem(format!("room {room}: log jumps to seq {seq} where {expected} was due"));
        }
        self.log_cursor = Some((room, seq));
        self.logged.insert(room);
    }

    /// Ends the walk of one room's log: it must have reached the room's last_seq.
    fn close_log(&mut self) {
        if let Some((room, last)) = self.log_cursor.take() {
            match self.rooms.get(&room) {
                None => self.problem(format!("a log for missing room {room}")),
                Some(record) if record.last_seq != last => self.problem(format!(
                    "room {room}: log ends at seq {last}, the room says {}",
                    record.last_seq
                )),
                Some(_) => {}
            }
        }
    }

    fn finish(mut self) -> Report {
        self.close_log();
        match self.counters.get("schema") {
            Some(&schema) if schema as u32 <= SCHEMA_VERSION => {}
            other => {
                self.problem(format!("schema version {other:?} is not one this banterd knows"))
            }
        }
        let rooms: Vec<(u64, RoomRecord)> = self.rooms.drain().collect();
        for (room, record) in rooms {
            if record.last_seq > 0 && !self.logged.contains(&room) {
                self.problem(format!("room {room}: last_seq {} but no log", record.last_seq));
            }
            let members = self.members_per_room.get(&room).copied().unwrap_or(0);
            if members != record.members {
                self.problem(format!(
                    "room {room}: {members} memberships, the room counts {}",
                    record.members
                ));
            }
        }
        for (room, user) in std::mem::take(&mut self.unmatched_members) {
            self.problem(format!("user {user} is a member of room {room} but does not list it"));
        }
        let sessions: Vec<(u64, u64)> = self.sessions.drain().collect();
        for (session, user) in sessions {
            if !self.user_sessions.contains(&(user, session)) {
                self.problem(format!("session {session} is missing from user {user}'s list"));
            }
        }
        self.report
    }
}

fn log_entry(engine: &dyn Engine, room: u64, seq: u64) -> Result<Option<LogEntry>, StoreError> {
    let key = keys::log(RoomId(room), seq);
    engine.get(&key)?.map(|v| decode(&key, &v)).transpose()
}

/// Checks the whole database. Run it inside [`Store::exclusive`] on a live server, so that no
/// write lands halfway through.
///
/// [`Store::exclusive`]: crate::store::Store::exclusive
pub(crate) fn check(engine: &dyn Engine, files: FileStore) -> Result<Report, AdminError> {
    let mut checker = Checker {
        report: Report::default(),
        files,
        counters: HashMap::new(),
        users: HashMap::new(),
        sessions: HashMap::new(),
        user_sessions: BTreeSet::new(),
        rooms: HashMap::new(),
        unmatched_members: BTreeSet::new(),
        members_per_room: HashMap::new(),
        log_cursor: None,
        logged: BTreeSet::new(),
    };
    scan_range(engine, &[], &[0xff; 9], |key, value| {
        checker.visit(engine, &key, &value).map_err(AdminError::from)
    })?;
    Ok(checker.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::EntryKind;
    use crate::store::{SledEngine, encode};
    use banter_protocol::ids::{RoomId, UserId};

    /// A small sound database: one user in one room with three log entries.
    fn sound() -> (tempfile::TempDir, SledEngine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(dir.path()).unwrap();
        let (room, user) = (RoomId(1), UserId(1));
        let entry = |n: u64| LogEntry {
            ts: n,
            sender: 1,
            kind: EntryKind::Posted {
                client_msg_id: u128::from(n),
                reply_to: None,
                text: "hi".into(),
            },
        };
        let mut writes = vec![
            (keys::meta("schema"), Some(encode(&SCHEMA_VERSION))),
            (keys::meta("user"), Some(encode(&1u64))),
            (keys::meta("room"), Some(encode(&1u64))),
            (
                keys::user(user),
                Some(encode(&UserRecord {
                    username: "ada".into(),
                    password_hash: String::new(),
                    created: 0,
                    disabled: false,
                    role: 3,
                })),
            ),
            (keys::username("ada"), Some(encode(&1u64))),
            (
                keys::room(room),
                Some(encode(&RoomRecord {
                    direct: false,
                    name: "General".into(),
                    topic: String::new(),
                    category: String::new(),
                    private: false,
                    voice: false,
                    created: 0,
                    last_seq: 3,
                    members: 1,
                    direct_pair: None,
                    last_ts: 0,
                })),
            ),
            (keys::room_name("General"), Some(encode(&1u64))),
            (keys::member(room, user), Some(encode(&MemberRecord { role: 3 }))),
            (keys::user_room(user, room), Some(encode(&()))),
            (keys::marker(room, user), Some(encode(&MarkerRecord { read: 3, delivered: 3 }))),
        ];
        for n in 1..=3 {
            writes.push((keys::log(room, n), Some(encode(&entry(n)))));
        }
        engine.apply(writes).unwrap();
        (dir, engine)
    }

    /// Checks with shared files in `dir`.
    fn checked(engine: &SledEngine) -> Report {
        check(engine, FileStore::new(&engine.path().join(crate::files::DIR))).unwrap()
    }

    fn problems(engine: &SledEngine) -> Vec<String> {
        let report = checked(engine);
        assert_eq!(report.problem_count as usize, report.problems.len());
        report.problems
    }

    #[test]
    fn a_sound_database_passes() {
        let (_dir, engine) = sound();
        let report = checked(&engine);
        assert!(report.ok(), "{report}");
        assert_eq!((report.users, report.rooms, report.entries), (1, 1, 3));
    }

    #[test]
    fn a_gap_in_a_room_log_is_found() {
        let (_dir, engine) = sound();
        engine.apply(vec![(keys::log(RoomId(1), 2), None)]).unwrap();
        assert_eq!(problems(&engine), ["room 1: log jumps to seq 3 where 2 was due"]);
    }

    #[test]
    fn a_log_shorter_than_the_room_says_is_found() {
        let (_dir, engine) = sound();
        engine.apply(vec![(keys::log(RoomId(1), 3), None)]).unwrap();
        assert_eq!(problems(&engine), ["room 1: log ends at seq 2, the room says 3"]);
    }

    #[test]
    fn broken_indexes_are_found() {
        let (_dir, engine) = sound();
        engine
            .apply(vec![
                (keys::username("ada"), Some(encode(&7u64))),
                (keys::user_room(UserId(1), RoomId(1)), None),
                (keys::room_name("General"), None),
            ])
            .unwrap();
        let found = problems(&engine);
        assert_eq!(
            found,
            [
                "username \"ada\" points to user 7, who is not named so",
                "room 1: its name is not indexed to it",
                "user 1 is a member of room 1 but does not list it",
            ]
        );
    }

    #[test]
    fn a_shared_file_must_be_there_with_its_size() {
        let (_dir, engine) = sound();
        let sha256 = [7; 32];
        let shared = LogEntry {
            ts: 3,
            sender: 1,
            kind: EntryKind::FileShared { name: "a.txt".into(), size: 5, sha256 },
        };
        engine.apply(vec![(keys::log(RoomId(1), 3), Some(encode(&shared)))]).unwrap();
        assert!(checked(&engine).ok(), "a deleted share (no reference) needs no file");
        engine.apply(vec![(keys::content_ref(&sha256, RoomId(1), 3), Some(encode(&())))]).unwrap();
        assert_eq!(
            problems(&engine),
            ["room 1 seq 3: its shared file (5 bytes) is missing or of another size"]
        );
        let path = FileStore::new(&engine.path().join(crate::files::DIR)).content(&sha256);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"hello").unwrap();
        let report = checked(&engine);
        assert!(report.ok(), "{report}");
        assert_eq!(report.files, 1);
    }

    #[test]
    fn an_undecodable_record_is_found() {
        let (_dir, engine) = sound();
        engine.apply(vec![(keys::room(RoomId(1)), Some(vec![0xff]))]).unwrap();
        let found = problems(&engine);
        assert!(found[0].starts_with("corrupt record under key"), "{found:?}");
    }
}
