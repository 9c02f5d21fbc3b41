//! Voice relay (spec §8): who is in which room's voice, with which source id and state, and
//! the relay of datagrams by rewriting only their header. Policy (mute, deafen, suppression,
//! bitrate) is enforced here by dropping packets; clients are never trusted with it.

mod link;
mod remote;

pub(crate) use link::{Path, VoiceLink};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use banter_protocol::datagram::{Context, Kind, MAX_DATAGRAM_LEN, MAX_HEADER_LEN, VoiceHeader};
use banter_protocol::ids::{RoomId, SourceId, Timestamp, UserId};
use banter_protocol::message::{VoiceAction, VoiceParticipant, VoiceState};
use bytes::{BufMut, Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Notify;

use self::remote::RemoteRosters;
use crate::metrics::Label;

/// What the bitrate cap charges a packet at least, in payload bytes: at the default 64 kbit/s
/// a source sends at most 200 packets a second (Opus sends 50).
const MIN_PACKET_COST: usize = 40;

/// Talk state ends this long after a source's last packet (spec §8.3).
pub(crate) const SPEAKING_HANGOVER: Duration = Duration::from_millis(250);

#[derive(Debug)]
struct Participant {
    user: UserId,
    source: SourceId,
    state: VoiceState,
    link: Arc<VoiceLink>,
    /// Until when the source counts as speaking.
    speaking_until: Option<Instant>,
    /// The bitrate cap's bucket of payload bytes.
    budget: Budget,
}

/// VOICE_MAX_BITRATE as the relay enforces it (spec §8.3): Opus payload bytes (the header is
/// not counted) refill at `max_bitrate / 8` per second into a bucket that holds a quarter
/// second's worth (at least one largest datagram), so Opus VBR may burst briefly but the
/// sustained rate never exceeds what SETTINGS advertises.
#[derive(Debug, Clone, Copy)]
struct BitrateCap {
    bytes_per_second: f64,
    capacity: f64,
}

impl BitrateCap {
    fn new(max_bitrate: u64) -> Self {
        let bytes_per_second = max_bitrate as f64 / 8.0;
        Self { bytes_per_second, capacity: (bytes_per_second / 4.0).max(MAX_DATAGRAM_LEN as f64) }
    }
}

/// One source's bucket of payload bytes under a [`BitrateCap`].
#[derive(Debug)]
struct Budget {
    bytes: f64,
    last: Instant,
}

impl Budget {
    fn full(cap: BitrateCap, now: Instant) -> Self {
        Self { bytes: cap.capacity, last: now }
    }

    /// Takes `len` bytes if the bucket holds them.
    fn take(&mut self, cap: BitrateCap, len: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.bytes = (self.bytes + elapsed * cap.bytes_per_second).min(cap.capacity);
        self.last = now;
        let len = len as f64;
        if self.bytes < len {
            return false;
        }
        self.bytes -= len;
        true
    }
}

/// A change others must hear about (on the ephemeral stream, and on the bus).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum VoiceNotice {
    /// A participant joined, changed or left.
    State { room: RoomId, participant: VoiceParticipant, present: bool, actor: UserId },
    /// A source started or stopped talking.
    Speaking { room: RoomId, source: SourceId, on: bool },
}

/// What one incoming voice packet leads to.
#[derive(Debug, Default)]
pub(crate) struct Relayed {
    /// The packet with its new header, for each listener.
    pub(crate) to: Vec<(Arc<VoiceLink>, Bytes)>,
    /// A VOICE_PING to send back on the path it came by.
    pub(crate) echo: Option<Bytes>,
    /// A talk-state change.
    pub(crate) notice: Option<VoiceNotice>,
    /// The packet for the room's participants on other nodes (if there is a bus: a node
    /// never knows for sure that nobody just joined elsewhere).
    pub(crate) to_other_nodes: Option<(RoomId, Bytes)>,
}

/// Why a voice request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VoiceError {
    NotInVoice,
    NoSuchParticipant,
}

/// Every voice room of the server.
#[derive(Debug)]
pub(crate) struct Voice {
    rooms: Mutex<Rooms>,
    /// The node's share of source ids (cluster mode), in the top [`SLOT_BITS`] bits of each.
    node_slot: AtomicU32,
    next_source: AtomicU32,
    bitrate: BitrateCap,
    /// Signalled when the set of rooms with participants here changes (the bus follows it).
    pub(crate) rooms_changed: Notify,
    /// The rooms whose packets from other nodes reach this node (cluster mode).
    subscribed: Mutex<HashSet<RoomId>>,
    pub(crate) metrics: VoiceMetrics,
}

/// Source ids are `slot << (32 - SLOT_BITS) | n`: each node of a cluster takes a slot from the
/// database when it starts (one node alone uses slot 0), so sources stay unique in a room
/// whose participants are spread over nodes. `n` wraps after about a million joins per node.
pub(crate) const SLOT_BITS: u32 = 12;

/// A moderator's act on a user's voice in a room, and the decision it leaves (what VOICE_MODERATE
/// stores, applies here, and tells the other nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Decided {
    pub(crate) room: RoomId,
    pub(crate) target: UserId,
    pub(crate) actor: UserId,
    pub(crate) action: VoiceAction,
    /// The stored decision after `action`.
    pub(crate) decision: Moderation,
}

/// What a VOICE_MODERATE decided.
#[derive(Debug, Default)]
pub(crate) struct Moderated {
    /// The new state of the target's participants on this node.
    pub(crate) notices: Vec<VoiceNotice>,
    /// The target is in the room's voice on another node too: the decision goes on the bus.
    pub(crate) elsewhere: bool,
}

/// Relay counters (registered by the server's metrics).
#[derive(Debug, Default)]
pub(crate) struct VoiceMetrics {
    /// Packets handed to QUIC for a listener.
    pub(crate) relayed: Counter,
    /// Packets not relayed, by `reason`.
    pub(crate) dropped: Family<Label, Counter>,
}

impl VoiceMetrics {
    /// Counts one packet dropped for `reason` (a short snake_case word).
    pub(crate) fn drop(&self, reason: &'static str) {
        self.dropped.get_or_create(&[("reason", reason)]).inc();
    }
}

#[derive(Debug, Default)]
struct Rooms {
    /// Participants by room, then by connection.
    members: HashMap<RoomId, HashMap<usize, Participant>>,
    /// The voice room of each connection in one, so a datagram finds its room in O(1).
    room_of: HashMap<usize, RoomId>,
    /// The participants of other nodes.
    remote: RemoteRosters,
}

/// What moderators decided about one user's voice in one room (spec §6.6), kept in the
/// database (`keys::voice_decision`): it holds for every participant of that user, on any
/// connection and any node, and across leaving and joining again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Moderation {
    server_mute: bool,
    /// Some(true): granted speech (on a stage); Some(false): speech revoked.
    speech: Option<bool>,
}

impl Moderation {
    /// The decision after `action`.
    pub(crate) fn after(mut self, action: VoiceAction) -> Self {
        match action {
            VoiceAction::GrantSpeak => self.speech = Some(true),
            VoiceAction::RevokeSpeak => self.speech = Some(false),
            VoiceAction::ServerMute => self.server_mute = true,
            VoiceAction::ServerUnmute => self.server_mute = false,
        }
        self
    }

    /// Whether `state` shows the decision.
    fn shown_in(self, state: &VoiceState) -> bool {
        state.server_mute == self.server_mute
            && self.speech.is_none_or(|granted| state.suppressed != granted)
    }

    /// Applies the decision to a participant's state (suppression stays as it is where no
    /// decision about speech was made).
    fn apply(self, state: &mut VoiceState) {
        state.server_mute = self.server_mute;
        if let Some(granted) = self.speech {
            state.suppressed = !granted;
        }
    }
}

/// Why a connection could not join voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionEnded;

fn participant_view(p: &Participant) -> VoiceParticipant {
    VoiceParticipant { user: p.user, source: p.source, state: p.state.clone() }
}

impl Rooms {
    /// Whether `target` is in `room`'s voice, here or on another node (what a moderator can
    /// act on).
    fn moderation_target(&self, room: RoomId, target: UserId) -> Result<(), VoiceError> {
        let here = self.members.get(&room);
        if here.is_none() && self.remote.participants(room).next().is_none() {
            return Err(VoiceError::NotInVoice);
        }
        let here = here.is_some_and(|members| members.values().any(|p| p.user == target));
        if here || self.remote.has_user(room, target) {
            Ok(())
        } else {
            Err(VoiceError::NoSuchParticipant)
        }
    }

    /// Applies a moderator's decision to the target's participants here; their new states.
    fn decide(&mut self, decided: Decided) -> Vec<VoiceNotice> {
        let Decided { room, target, actor, action, decision } = decided;
        let Some(members) = self.members.get_mut(&room) else { return Vec::new() };
        let mut notices = Vec::new();
        for participant in members.values_mut().filter(|p| p.user == target) {
            decision.apply(&mut participant.state);
            if action == VoiceAction::GrantSpeak {
                participant.state.requested_to_speak = None;
            }
            notices.push(VoiceNotice::State {
                room,
                participant: participant_view(participant),
                present: true,
                actor,
            });
        }
        notices
    }

    /// Takes a connection out of its voice room; the notices say so.
    fn leave(&mut self, conn_id: usize, changed: &Notify) -> Option<(RoomId, Vec<VoiceNotice>)> {
        let room = self.room_of.remove(&conn_id)?;
        let members = self.members.get_mut(&room)?;
        let gone = members.remove(&conn_id)?;
        if members.is_empty() {
            self.members.remove(&room);
            changed.notify_one();
        }
        let mut notices = Vec::new();
        if gone.speaking_until.is_some() {
            notices.push(VoiceNotice::Speaking { room, source: gone.source, on: false });
        }
        notices.push(VoiceNotice::State {
            room,
            participant: participant_view(&gone),
            present: false,
            actor: gone.user,
        });
        Some((room, notices))
    }
}

impl Voice {
    pub(crate) fn new(max_bitrate: u64) -> Self {
        Self {
            rooms: Mutex::new(Rooms::default()),
            node_slot: AtomicU32::new(0),
            next_source: AtomicU32::new(0),
            bitrate: BitrateCap::new(max_bitrate),
            rooms_changed: Notify::new(),
            subscribed: Mutex::default(),
            metrics: VoiceMetrics::default(),
        }
    }

    /// Sets the node's slot of source ids (below `1 << SLOT_BITS`), before anyone joins.
    pub(crate) fn set_node_slot(&self, slot: u32) {
        self.node_slot.store(slot % (1 << SLOT_BITS), Ordering::Relaxed);
    }

    /// A source id no participant of `room`, here or on another node, has now (the counter
    /// wraps after about a million joins).
    fn new_source(&self, rooms: &Rooms, room: RoomId) -> SourceId {
        const PER_SLOT: u32 = 1 << (32 - SLOT_BITS);
        let in_use = |source: SourceId| {
            let local = rooms.members.get(&room).into_iter().flat_map(HashMap::values);
            local
                .map(|p| p.source)
                .chain(rooms.remote.participants(room).map(|p| p.source))
                .any(|s| s == source)
        };
        loop {
            let n = self.next_source.fetch_add(1, Ordering::Relaxed) % (PER_SLOT - 1) + 1;
            let source = SourceId(self.node_slot.load(Ordering::Relaxed) << (32 - SLOT_BITS) | n);
            if !in_use(source) {
                return source;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Rooms> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins `room`'s voice, leaving any other voice room of the connection in the same
    /// critical section (two joins at once leave it in one room). `stage` says whether the
    /// user joins suppressed unless a moderator decided otherwise. A connection whose link
    /// has ended cannot join: a join racing the connection's end leaves no ghost. Returns the
    /// new source, the roster and the notices to send.
    pub(crate) fn join(
        &self,
        room: RoomId,
        conn_id: usize,
        user: UserId,
        link: Arc<VoiceLink>,
        stage: bool,
        decision: Moderation,
    ) -> Result<(SourceId, Vec<VoiceParticipant>, Vec<VoiceNotice>), ConnectionEnded> {
        let mut rooms = self.lock();
        if link.has_ended() {
            return Err(ConnectionEnded);
        }
        let mut notices =
            rooms.leave(conn_id, &self.rooms_changed).map(|(_, n)| n).unwrap_or_default();
        let source = self.new_source(&rooms, room);
        let mut state = VoiceState {
            self_mute: false,
            self_deaf: false,
            server_mute: false,
            suppressed: stage,
            requested_to_speak: None,
        };
        decision.apply(&mut state);
        let participant = Participant {
            user,
            source,
            state,
            link,
            speaking_until: None,
            budget: Budget::full(self.bitrate, Instant::now()),
        };
        notices.push(VoiceNotice::State {
            room,
            participant: participant_view(&participant),
            present: true,
            actor: user,
        });
        rooms.room_of.insert(conn_id, room);
        let members = rooms.members.entry(room).or_default();
        if members.is_empty() {
            self.rooms_changed.notify_one();
        }
        members.insert(conn_id, participant);
        let mut roster: Vec<_> = members.values().map(participant_view).collect();
        roster.extend(rooms.remote.participants(room).cloned());
        Ok((source, roster, notices))
    }

    /// Leaves voice (VOICE_LEAVE or the connection ended).
    pub(crate) fn leave(&self, conn_id: usize) -> Option<(RoomId, Vec<VoiceNotice>)> {
        self.lock().leave(conn_id, &self.rooms_changed)
    }

    /// Leaves `room`'s voice only if the connection is in that room (VOICE_LEAVE names it:
    /// a late leave of a room the client moved from must not end its call in the next one).
    pub(crate) fn leave_room(&self, room: RoomId, conn_id: usize) -> Option<Vec<VoiceNotice>> {
        let mut rooms = self.lock();
        if rooms.room_of.get(&conn_id) != Some(&room) {
            return None;
        }
        rooms.leave(conn_id, &self.rooms_changed).map(|(_, notices)| notices)
    }

    /// Removes every participant of `user` from `room`'s voice: they were removed from the
    /// room (left, kicked, banned), so they neither hear nor speak there any more.
    pub(crate) fn remove_user(&self, room: RoomId, user: UserId) -> Vec<VoiceNotice> {
        let mut rooms = self.lock();
        let conns: Vec<usize> = rooms
            .members
            .get(&room)
            .map(|members| {
                members.iter().filter(|(_, p)| p.user == user).map(|(c, _)| *c).collect()
            })
            .unwrap_or_default();
        let left = conns.into_iter().filter_map(|conn| rooms.leave(conn, &self.rooms_changed));
        left.flat_map(|(_, n)| n).collect()
    }

    fn change(
        &self,
        room: RoomId,
        find: impl Fn(usize, &Participant) -> bool,
        actor: UserId,
        apply: impl FnOnce(&mut VoiceState),
    ) -> Result<VoiceNotice, VoiceError> {
        let mut rooms = self.lock();
        let members = rooms.members.get_mut(&room).ok_or(VoiceError::NotInVoice)?;
        let participant = members
            .iter_mut()
            .find(|(c, p)| find(**c, p))
            .map(|(_, p)| p)
            .ok_or(VoiceError::NoSuchParticipant)?;
        apply(&mut participant.state);
        Ok(VoiceNotice::State {
            room,
            participant: participant_view(participant),
            present: true,
            actor,
        })
    }

    /// VOICE_SELF.
    pub(crate) fn set_self(
        &self,
        room: RoomId,
        conn_id: usize,
        user: UserId,
        mute: bool,
        deaf: bool,
    ) -> Result<VoiceNotice, VoiceError> {
        self.change(
            room,
            |c, _| c == conn_id,
            user,
            |state| {
                state.self_mute = mute;
                state.self_deaf = deaf;
            },
        )
    }

    /// VOICE_REQUEST_SPEAK.
    pub(crate) fn request_speak(
        &self,
        room: RoomId,
        conn_id: usize,
        user: UserId,
        raise: bool,
        now: Timestamp,
    ) -> Result<VoiceNotice, VoiceError> {
        self.change(
            room,
            |c, _| c == conn_id,
            user,
            |state| {
                state.requested_to_speak = raise.then_some(now);
            },
        )
    }

    /// A moderator's decision, once committed (on this node or another): applied to every
    /// participant of the user in the room here; the target is in the room's voice on
    /// another node too when [`Moderated::elsewhere`] says so.
    pub(crate) fn moderate(&self, decided: Decided) -> Moderated {
        let mut rooms = self.lock();
        let elsewhere = rooms.remote.has_user(decided.room, decided.target);
        Moderated { notices: rooms.decide(decided), elsewhere }
    }

    /// Whether every participant of the target in the room on other nodes shows the decision:
    /// their nodes applied it and said so.
    pub(crate) fn decided_everywhere(&self, decided: &Decided) -> bool {
        let rooms = self.lock();
        let mut theirs =
            rooms.remote.participants(decided.room).filter(|p| p.user == decided.target);
        theirs.all(|p| decided.decision.shown_in(&p.state))
    }

    /// Whether a moderator can act on `target` in `room` now (checked before the decision is
    /// stored and audited; it is applied once they are committed).
    pub(crate) fn check_moderation_target(
        &self,
        room: RoomId,
        target: UserId,
    ) -> Result<(), VoiceError> {
        self.lock().moderation_target(room, target)
    }

    /// Relays one datagram (or tunnel record) from `conn_id`: returns where to send what, and
    /// any talk-state change. Everything malformed, unknown or not allowed is dropped (spec
    /// §8.2-8.3).
    pub(crate) fn relay(&self, conn_id: usize, datagram: &[u8], now: Instant) -> Relayed {
        let dropped = |reason| {
            self.metrics.drop(reason);
            Relayed::default()
        };
        let Ok((header, payload)) = VoiceHeader::parse(datagram) else {
            return dropped("malformed");
        };
        let mut rooms = self.lock();
        let Some(&room) = rooms.room_of.get(&conn_id) else { return dropped("not_in_voice") };
        let Some(members) = rooms.members.get_mut(&room) else { return dropped("not_in_voice") };
        let Some(sender) = members.get_mut(&conn_id) else { return dropped("not_in_voice") };
        if header.kind == Kind::VOICE_PING {
            // Echoed to the sender unchanged, for round-trip measurement.
            return Relayed { echo: Some(Bytes::copy_from_slice(datagram)), ..Relayed::default() };
        }
        let state = &sender.state;
        if header.kind != Kind::OPUS_FRAME {
            return dropped("unknown_kind");
        }
        if state.self_mute || state.server_mute || state.suppressed {
            return dropped("muted");
        }
        if payload.is_empty() {
            // No Opus packet is empty (silence is a 1-byte frame).
            return dropped("malformed");
        }
        // Each packet costs at least MIN_PACKET_COST, so tiny packets cannot be sent at an
        // unbounded rate (each one is relayed, and in a cluster published).
        if !sender.budget.take(self.bitrate, payload.len().max(MIN_PACKET_COST), now) {
            return dropped("over_bitrate");
        }
        let started = sender.speaking_until.is_none();
        let source = sender.source;
        // The end of a talk spurt is announced by the expiry timer (within 50 ms), like
        // silence: a source that flips its end flag on every packet gets one notice per
        // spurt, not one per packet, here and on every other node.
        let notice = if header.end {
            if !started {
                sender.speaking_until = Some(now);
            }
            None
        } else {
            sender.speaking_until = Some(now + SPEAKING_HANGOVER);
            started.then_some(VoiceNotice::Speaking { room, source, on: true })
        };
        // The server stamps the source; the client's source field is only a target.
        let relayed =
            VoiceHeader { context: Context::Normal, source: u64::from(source.0), ..header };
        let mut packet = BytesMut::with_capacity(MAX_HEADER_LEN + payload.len());
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = relayed.write(&mut head).unwrap_or(0);
        packet.put_slice(&head[..n]);
        packet.put_slice(payload);
        if packet.len() > MAX_DATAGRAM_LEN {
            self.metrics.drop("too_large");
            return Relayed { notice, ..Relayed::default() };
        }
        let packet = packet.freeze();
        let to = members
            .iter()
            .filter(|(c, p)| **c != conn_id && !p.state.self_deaf)
            .map(|(_, p)| (p.link.clone(), packet.clone()))
            .collect();
        Relayed { to, echo: None, notice, to_other_nodes: Some((room, packet)) }
    }

    /// Where a packet another node relayed for `room` goes here: to every participant here
    /// who is not deafened. (Its header was stamped by that node, which enforced the
    /// speaker's mute and bitrate.)
    pub(crate) fn relay_from_other_node(
        &self,
        room: RoomId,
        packet: Bytes,
    ) -> Vec<(Arc<VoiceLink>, Bytes)> {
        let valid = packet.len() <= MAX_DATAGRAM_LEN
            && VoiceHeader::parse(&packet).is_ok_and(|(h, _)| h.kind == Kind::OPUS_FRAME);
        if !valid {
            self.metrics.drop("malformed");
            return Vec::new();
        }
        let rooms = self.lock();
        let Some(members) = rooms.members.get(&room) else { return Vec::new() };
        members
            .values()
            .filter(|p| !p.state.self_deaf)
            .map(|p| (p.link.clone(), packet.clone()))
            .collect()
    }

    /// The rooms with participants on this node (whose packets from other nodes it takes).
    pub(crate) fn local_rooms(&self) -> HashSet<RoomId> {
        self.lock().members.keys().copied().collect()
    }

    /// The rooms whose packets from other nodes now reach this node.
    pub(crate) fn set_subscribed(&self, rooms: HashSet<RoomId>) {
        *self.subscribed.lock().unwrap_or_else(|e| e.into_inner()) = rooms;
    }

    /// Whether `room`'s packets from other nodes reach this node.
    pub(crate) fn is_subscribed(&self, room: RoomId) -> bool {
        self.subscribed.lock().unwrap_or_else(|e| e.into_inner()).contains(&room)
    }

    /// Hands every participant on this node, by room, to `announce`, under the voice lock. A
    /// change's notice is sent after its own lock is released, so a notice sent after this
    /// roster is never older than it: the other nodes never take an older roster for newer
    /// state. (A notice of a change already in the roster may still follow it; notices are
    /// idempotent.)
    pub(crate) fn announce_local_rosters(
        &self,
        announce: impl FnOnce(Vec<(RoomId, Vec<VoiceParticipant>)>),
    ) {
        let rooms = self.lock();
        let rosters = rooms.members.iter();
        announce(
            rosters
                .map(|(room, members)| (*room, members.values().map(participant_view).collect()))
                .collect(),
        );
    }

    /// Another node's participant joined, changed or left (the notice, for sessions here).
    pub(crate) fn changed_elsewhere(&self, node: u64, notice: &VoiceNotice, expires: Instant) {
        if let VoiceNotice::State { room, participant, present, .. } = notice {
            let remote = &mut self.lock().remote;
            remote.apply(node, *room, participant.clone(), *present, expires);
        }
    }

    /// Another node's whole roster (announced periodically); what changed here.
    pub(crate) fn roster_elsewhere(
        &self,
        node: u64,
        rosters: Vec<(RoomId, Vec<VoiceParticipant>)>,
        expires: Instant,
    ) -> Vec<VoiceNotice> {
        self.lock().remote.replace(node, rosters, expires)
    }

    /// Forgets the participants of nodes that stopped announcing: they left.
    pub(crate) fn expire_other_nodes(&self, now: Instant) -> Vec<VoiceNotice> {
        self.lock().remote.expire(now)
    }

    /// Sources whose hangover passed: they stopped talking.
    pub(crate) fn expire_speaking(&self, now: Instant) -> Vec<VoiceNotice> {
        let mut notices = Vec::new();
        for (room, members) in self.lock().members.iter_mut() {
            for participant in members.values_mut() {
                if participant.speaking_until.is_some_and(|until| until <= now) {
                    participant.speaking_until = None;
                    notices.push(VoiceNotice::Speaking {
                        room: *room,
                        source: participant.source,
                        on: false,
                    });
                }
            }
        }
        notices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn participants(voice: &Voice, conn: usize) -> Vec<RoomId> {
        let rooms = voice.lock();
        rooms.members.iter().filter(|(_, m)| m.contains_key(&conn)).map(|(r, _)| *r).collect()
    }

    #[test]
    fn security_concurrent_joins_leave_a_connection_in_exactly_one_voice_room() {
        let voice = Voice::new(64_000);
        let link = Arc::new(VoiceLink::detached());
        for _ in 0..200 {
            std::thread::scope(|scope| {
                for room in [RoomId(1), RoomId(2)] {
                    let (voice, link) = (&voice, &link);
                    scope.spawn(move || {
                        for _ in 0..20 {
                            voice
                                .join(
                                    room,
                                    7,
                                    UserId(3),
                                    link.clone(),
                                    false,
                                    Moderation::default(),
                                )
                                .unwrap();
                        }
                    });
                }
            });
            let found = participants(&voice, 7);
            assert_eq!(found.len(), 1, "in several voice rooms at once: {found:?}");
            assert_eq!(voice.lock().room_of.get(&7), found.first());
        }
        voice.leave(7);
        assert!(voice.lock().members.is_empty(), "a ghost stayed in a roster");
    }

    #[test]
    fn a_decision_builds_on_the_one_before_and_shows_in_a_joiners_state() {
        let muted = Moderation::default().after(VoiceAction::ServerMute);
        let granted = muted.after(VoiceAction::GrantSpeak);
        assert_eq!(granted, Moderation { server_mute: true, speech: Some(true) });
        let voice = Voice::new(64_000);
        let (_, roster, _) = voice
            .join(RoomId(1), 2, UserId(2), Arc::new(VoiceLink::detached()), true, granted)
            .unwrap();
        let state = &roster[0].state;
        assert!(state.server_mute && !state.suppressed, "{state:?}");
        assert!(granted.shown_in(state) && !Moderation::default().shown_in(state));
    }

    #[test]
    fn security_a_connection_that_ended_cannot_join_voice() {
        let voice = Voice::new(64_000);
        let link = Arc::new(VoiceLink::detached());
        voice.join(RoomId(1), 7, UserId(3), link.clone(), false, Moderation::default()).unwrap();
        link.end();
        voice.leave(7);
        assert!(voice.join(RoomId(1), 7, UserId(3), link, false, Moderation::default()).is_err());
        assert!(participants(&voice, 7).is_empty());
    }

    #[test]
    fn security_the_relay_holds_a_speaker_to_the_advertised_bitrate() {
        let voice = Voice::new(64_000);
        let start = Instant::now();
        for (conn, user) in [(1, UserId(1)), (2, UserId(2))] {
            let link = Arc::new(VoiceLink::detached());
            voice.join(RoomId(1), conn, user, link, false, Moderation::default()).unwrap();
        }
        // Twice the allowed rate for 10 s: 400-byte packets every 25 ms (128 kbit/s).
        let mut relayed = 0usize;
        for i in 0..400u32 {
            let now = start + Duration::from_millis(25 * u64::from(i));
            let mut packet = vec![0u8; MAX_HEADER_LEN];
            let n = VoiceHeader::opus(0, i as u16, false).write(&mut packet).unwrap();
            packet.truncate(n);
            packet.extend_from_slice(&[7; 400]);
            let out = voice.relay(1, &packet, now);
            relayed += out.to.iter().map(|(_, p)| p.len() - n).sum::<usize>();
        }
        // 10 s at 8000 bytes/s, plus at most the bucket's quarter second.
        let allowed = 10 * 8000 + 2000;
        assert!(relayed <= allowed, "relayed {relayed} payload bytes, allowed {allowed}");
        assert!(relayed >= 10 * 8000 - 400, "the cap starved the speaker: {relayed}");
    }
}
