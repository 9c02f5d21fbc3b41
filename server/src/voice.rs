//! Voice relay (spec §8): who is in which room's voice, with which source id and state, and
//! the relay of datagrams by rewriting only their header. Policy (mute, deafen, suppression,
//! bitrate) is enforced here by dropping packets; clients are never trusted with it.

mod link;

pub(crate) use link::{Path, VoiceLink};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use banter_protocol::datagram::{Context, Kind, MAX_DATAGRAM_LEN, MAX_HEADER_LEN, VoiceHeader};
use banter_protocol::ids::{RoomId, SourceId, Timestamp, UserId};
use banter_protocol::message::{VoiceAction, VoiceParticipant, VoiceState};
use bytes::{BufMut, Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::Label;

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
    /// Bitrate cap: bytes allowed in the current second, and when it started.
    budget: (usize, Instant),
}

/// A change others must hear about (on the ephemeral stream).
#[derive(Debug, Clone, PartialEq)]
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
    next_source: AtomicU32,
    max_bytes_per_second: usize,
    pub(crate) metrics: VoiceMetrics,
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
}

fn participant_view(p: &Participant) -> VoiceParticipant {
    VoiceParticipant { user: p.user, source: p.source, state: p.state.clone() }
}

impl Voice {
    pub(crate) fn new(max_bitrate: u64) -> Self {
        // Header and QUIC overhead on top of the Opus bitrate: allow 50 % more than nominal.
        let max_bytes_per_second = (max_bitrate as usize / 8) * 3 / 2;
        Self {
            rooms: Mutex::new(Rooms::default()),
            next_source: AtomicU32::new(1),
            max_bytes_per_second,
            metrics: VoiceMetrics::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Rooms> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins `room`'s voice (leaving any other voice room of the connection). Returns the new
    /// source, the roster and the notices to send.
    pub(crate) fn join(
        &self,
        room: RoomId,
        conn_id: usize,
        user: UserId,
        link: Arc<VoiceLink>,
        suppressed: bool,
    ) -> (SourceId, Vec<VoiceParticipant>, Vec<VoiceNotice>) {
        let mut notices = self.leave(conn_id).map(|(_, n)| n).unwrap_or_default();
        let source = SourceId(self.next_source.fetch_add(1, Ordering::Relaxed));
        let participant = Participant {
            user,
            source,
            state: VoiceState {
                self_mute: false,
                self_deaf: false,
                server_mute: false,
                suppressed,
                requested_to_speak: None,
            },
            link,
            speaking_until: None,
            budget: (0, Instant::now()),
        };
        notices.push(VoiceNotice::State {
            room,
            participant: participant_view(&participant),
            present: true,
            actor: user,
        });
        let mut rooms = self.lock();
        rooms.room_of.insert(conn_id, room);
        let members = rooms.members.entry(room).or_default();
        members.insert(conn_id, participant);
        let roster = members.values().map(participant_view).collect();
        (source, roster, notices)
    }

    /// The room whose voice the connection is in.
    pub(crate) fn room_of(&self, conn_id: usize) -> Option<RoomId> {
        self.lock().room_of.get(&conn_id).copied()
    }

    /// Leaves voice (VOICE_LEAVE or the connection ended).
    pub(crate) fn leave(&self, conn_id: usize) -> Option<(RoomId, Vec<VoiceNotice>)> {
        let mut rooms = self.lock();
        let room = rooms.room_of.remove(&conn_id)?;
        let members = rooms.members.get_mut(&room)?;
        let gone = members.remove(&conn_id)?;
        if members.is_empty() {
            rooms.members.remove(&room);
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

    /// VOICE_MODERATE (the caller's authority was checked by the authorization function).
    pub(crate) fn moderate(
        &self,
        room: RoomId,
        target: UserId,
        actor: UserId,
        action: VoiceAction,
    ) -> Result<VoiceNotice, VoiceError> {
        self.change(
            room,
            |_, p| p.user == target,
            actor,
            |state| match action {
                VoiceAction::GrantSpeak => {
                    state.suppressed = false;
                    state.requested_to_speak = None;
                }
                VoiceAction::RevokeSpeak => state.suppressed = true,
                VoiceAction::ServerMute => state.server_mute = true,
                VoiceAction::ServerUnmute => state.server_mute = false,
            },
        )
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
        if now.duration_since(sender.budget.1) >= Duration::from_secs(1) {
            sender.budget = (0, now);
        }
        if sender.budget.0 + datagram.len() > self.max_bytes_per_second {
            return dropped("over_bitrate");
        }
        sender.budget.0 += datagram.len();
        let started = sender.speaking_until.is_none();
        sender.speaking_until = (!header.end).then_some(now + SPEAKING_HANGOVER);
        let source = sender.source;
        let notice = match (started, header.end) {
            (true, false) => Some(VoiceNotice::Speaking { room, source, on: true }),
            (false, true) => Some(VoiceNotice::Speaking { room, source, on: false }),
            _ => None,
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
        Relayed { to, echo: None, notice }
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
