//! Unidirectional stream types (spec §3.2): the first bytes of every unidirectional stream are
//! a QUIC varint naming what it carries. Bidirectional streams are always request streams and
//! carry no type.

use std::fmt;

use crate::error::DecodeError;
use crate::varint;

/// A unidirectional stream type. Open: a receiver stops reading a stream of unknown type with
/// STOP_SENDING(UNKNOWN_STREAM) and carries on (spec §3.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamType(pub u64);

impl StreamType {
    /// Each side's control stream: SETTINGS first, then PING/PONG, HELLO, GO_AWAY...
    pub const CONTROL: Self = Self(0x00);
    /// Server → client: room events, numbered by event_seq, replayed on resume.
    pub const EVENTS: Self = Self(0x01);
    /// Server → client: presence, typing, markers, voice state; never replayed.
    pub const EPHEMERAL: Self = Self(0x02);
    /// Either way: voice records when datagrams are unavailable (spec §8.4).
    pub const VOICE_TUNNEL: Self = Self(0x03);

    /// The registered types.
    pub const ALL: &'static [Self] =
        &[Self::CONTROL, Self::EVENTS, Self::EPHEMERAL, Self::VOICE_TUNNEL];

    /// The registered name, if any.
    pub fn name(self) -> Option<&'static str> {
        match self.0 {
            0x00 => Some("CONTROL"),
            0x01 => Some("EVENTS"),
            0x02 => Some("EPHEMERAL"),
            0x03 => Some("VOICE_TUNNEL"),
            _ => None,
        }
    }

    /// True for GREASE values; peers open such streams to keep the unknown-type path in use.
    pub fn is_grease(self) -> bool {
        crate::grease::is_grease(self.0)
    }

    /// Appends the stream-type prefix.
    pub fn encode(self, out: &mut Vec<u8>) {
        varint::encode(self.0, out);
    }

    /// Reads the prefix from the first bytes of a stream: the type and the bytes it used, or
    /// [`DecodeError::Incomplete`].
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), DecodeError> {
        varint::decode(bytes).map(|(value, len)| (Self(value), len))
    }
}

impl fmt::Debug for StreamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "StreamType({:#x})", self.0),
        }
    }
}
