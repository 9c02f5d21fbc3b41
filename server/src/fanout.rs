//! Committed entries to live sessions: in each room's seq order, exactly once, with what a
//! membership change does to the hub and to voice. One path for every entry, whether this
//! node committed it or (in a cluster) it came over the bus from another node's commit: a
//! room's entries are delivered only after the one before, and a gap (an entry the bus lost,
//! or one another node committed in between) is filled from the database first.

use std::sync::Mutex;

use banter_protocol::ids::{RoomId, UserId};
use banter_protocol::message::MembershipChange;

use crate::Shared;
use crate::requests::{Appended, membership_change, publish};
use crate::store::keys;
use crate::store::records::{EntryKind, LogEntry, RoomRecord};

/// Serializes deliveries: the check of a room's delivered head, any gap filling, and the
/// delivery itself happen as one step (the writer thread and the bus task both deliver).
#[derive(Debug, Default)]
pub(crate) struct Fanout {
    order: Mutex<()>,
}

impl Fanout {
    /// An entry this node just committed (called on the writer thread, in commit order):
    /// delivered here, and announced to the other nodes.
    pub(crate) fn committed(&self, shared: &Shared, appended: &Appended) {
        self.deliver(shared, appended);
        shared.bus.announce(appended);
    }

    /// Delivers whatever of `room` up to `head` (durable in the database) has not been
    /// delivered here: what the bus lost or has not carried yet.
    pub(crate) fn fill(&self, shared: &Shared, room: RoomId, head: u64) {
        // The database reads happen before the lock is taken, so that the writer thread's
        // deliveries never wait on a long fill (after a bus outage, say).
        let from = shared.hub.head(room) + 1;
        let loaded = load_range(shared, room, from, head.min(from.saturating_add(FILL_BATCH)));
        let _order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        for appended in &loaded {
            if appended.seq == shared.hub.head(room) + 1 {
                apply(shared, appended);
            }
        }
        self.fill_locked(shared, room, head);
    }

    /// Another node announced `seq` in `room`: delivered from the database, never from the
    /// announcement (the bus is not trusted with content, and an announced seq beyond the
    /// room's stored head is ignored).
    pub(crate) fn announced(&self, shared: &Shared, room: RoomId, seq: u64) {
        match shared.store.get::<RoomRecord>(&keys::room(room)) {
            Ok(Some(record)) => self.fill(shared, room, seq.min(record.last_seq)),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "an announcement could not be checked; later"),
        }
    }

    fn deliver(&self, shared: &Shared, appended: &Appended) {
        let _order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        if appended.seq <= shared.hub.head(appended.room) {
            return; // delivered already (filled from the database, or a bus duplicate)
        }
        // An entry is never delivered past a gap: skipping one (a kick, say) would skip its
        // effect for good. What cannot be filled now is filled by the next head check.
        if self.fill_locked(shared, appended.room, appended.seq - 1) {
            apply(shared, appended);
        }
    }

    /// Delivers the room's entries up to `head` from the database; whether it got there.
    fn fill_locked(&self, shared: &Shared, room: RoomId, head: u64) -> bool {
        for seq in shared.hub.head(room) + 1..=head {
            match load(shared, room, seq) {
                Ok(Some(appended)) => apply(shared, &appended),
                Ok(None) => {
                    tracing::warn!(room = room.0, seq, "a committed entry is missing");
                    return false;
                }
                Err(error) => {
                    tracing::warn!(%error, room = room.0, seq, "could not fill a gap; later");
                    return false;
                }
            }
        }
        true
    }
}

/// Entries a fill reads ahead of taking the lock, at most (the rest, if any, under it).
const FILL_BATCH: u64 = 1024;

/// The room's entries `from..=to` from the database, up to the first that cannot be read.
fn load_range(shared: &Shared, room: RoomId, from: u64, to: u64) -> Vec<Appended> {
    let mut loaded = Vec::new();
    for seq in from..=to {
        match load(shared, room, seq) {
            Ok(Some(appended)) => loaded.push(appended),
            _ => break,
        }
    }
    loaded
}

/// A committed entry, read back from the database.
fn load(
    shared: &Shared,
    room: RoomId,
    seq: u64,
) -> Result<Option<Appended>, crate::store::StoreError> {
    let Some(entry) = shared.store.get::<LogEntry>(&keys::log(room, seq))? else {
        return Ok(None);
    };
    let anonymous = shared.store.contains(&keys::anonymous(room, seq))?;
    Ok(Some(Appended { room, seq, entry, anonymous }))
}

/// Delivers one entry and carries out its membership change: a member who joins gets it (and
/// what follows); one who leaves or is removed still gets it, then nothing more of the room,
/// and leaves its voice on every connection (spec §6.7).
fn apply(shared: &Shared, appended: &Appended) {
    if let Some(search) = &shared.search {
        search.entry(appended);
    }
    let change = match &appended.entry.kind {
        EntryKind::Membership { user, change, .. } => {
            Some((UserId(*user), membership_change(*change)))
        }
        _ => None,
    };
    match change {
        Some((user, MembershipChange::Joined)) => {
            shared.hub.add_member(appended.room, user);
            publish(&shared.hub, appended, None);
        }
        Some((
            user,
            MembershipChange::Left | MembershipChange::Kicked | MembershipChange::Banned,
        )) => {
            publish(&shared.hub, appended, Some(user));
            shared.hub.remove_member(appended.room, user);
            // Every node applies the entry: each ends the typing it knows of (spec §6.5).
            shared.hub.clear_typing(appended.room, user);
            crate::announce_voice(shared, shared.voice.remove_user(appended.room, user));
        }
        _ => publish(&shared.hub, appended, None),
    }
}
