//! Voice control (spec §6.6): joining voice binds a source id over the reliable path before
//! any datagram flows; talk state is authored by the server.

use serde::{Deserialize, Serialize};

use crate::bounded::{List, Text};
use crate::ids::{RoomId, SourceId, Timestamp, UserId};
use crate::message::{max, wire};

/// A moderator's voice action (spec §6.6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum VoiceAction {
    /// Let a suppressed participant speak (answers a request to speak).
    GrantSpeak,
    /// Suppress a participant again.
    RevokeSpeak,
    /// Drop everything the participant sends.
    ServerMute,
    /// Lift a server mute.
    ServerUnmute,
}

wire! {
    /// Codec parameters every participant uses.
    pub struct CodecParams {
        /// The codec name, `"opus"`.
        pub codec: Text<16>,
        /// Sample rate in Hz (48000).
        pub sample_rate: u32,
        /// Channels (1).
        pub channels: u8,
        /// Frame duration in ms (20).
        pub frame_ms: u8,
        /// The highest bitrate the server relays, bit/s.
        pub max_bitrate: u32,
    }

    /// A participant's voice state (spec §6.6.4). The server drops the datagrams of a
    /// participant that is `self_mute`, `server_mute` or `suppressed`, and sends none to one
    /// that is `self_deaf`.
    pub struct VoiceState {
        /// Muted by themself.
        pub self_mute: bool,
        /// Deafened by themself.
        pub self_deaf: bool,
        /// Muted by a moderator.
        pub server_mute: bool,
        /// In a stage room, not (yet) allowed to speak.
        pub suppressed: bool,
        /// When they asked to speak, if they have a pending request.
        pub requested_to_speak: Option<Timestamp>,
    }

    /// One participant.
    pub struct VoiceParticipant {
        /// The user.
        pub user: UserId,
        /// The source id stamped on their datagrams.
        pub source: SourceId,
        /// Their state.
        pub state: VoiceState,
    }

    /// VOICE_JOIN: join the voice of a room (one voice room per connection).
    pub struct VoiceJoin {
        /// The room; it must carry voice and the caller must be a member.
        pub room: RoomId,
    }

    /// VOICE_JOINED: the answer to VOICE_JOIN.
    pub struct VoiceJoined {
        /// The room.
        pub room: RoomId,
        /// The caller's own source id.
        pub source: SourceId,
        /// What to encode with.
        pub codec: CodecParams,
        /// Everyone in the voice room, the caller included.
        pub roster: List<VoiceParticipant, { max::VOICE_ROSTER }>,
    }

    /// VOICE_LEAVE: leave voice; answered with DONE.
    pub struct VoiceLeave {
        /// The room.
        pub room: RoomId,
    }

    /// VOICE_SELF: set one's own mute and deafen; answered with DONE.
    pub struct VoiceSelf {
        /// The room.
        pub room: RoomId,
        /// Muted.
        pub mute: bool,
        /// Deafened.
        pub deaf: bool,
    }

    /// VOICE_REQUEST_SPEAK: raise or lower one's hand in a stage room; answered with DONE.
    pub struct VoiceRequestSpeak {
        /// The room.
        pub room: RoomId,
        /// Raise (true) or withdraw (false).
        pub raise: bool,
    }

    /// VOICE_MODERATE: a moderator acts on a participant; answered with DONE.
    pub struct VoiceModerate {
        /// The room.
        pub room: RoomId,
        /// The participant.
        pub user: UserId,
        /// The action.
        pub action: VoiceAction,
    }

    /// VOICE_STATE: a participant joined, changed, or left (ephemeral stream).
    pub struct VoiceStateChanged {
        /// The room.
        pub room: RoomId,
        /// The participant.
        pub participant: VoiceParticipant,
        /// False when they left voice (the source id is then unbound).
        pub present: bool,
        /// Who caused the change (the participant, or a moderator).
        pub actor: UserId,
    }

    /// SPEAKING: server-authored talk state of a source (ephemeral stream).
    pub struct Speaking {
        /// The room.
        pub room: RoomId,
        /// The source.
        pub source: SourceId,
        /// Started (true) or stopped (false) talking.
        pub on: bool,
    }
}
