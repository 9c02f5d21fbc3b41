//! Every v1 message, each a struct with its own registered frame type (spec §10.1).
//!
//! Dispatch is on the frame type, never on one big postcard enum (postcard cannot skip an
//! unknown variant): [`Message`] is a Rust enum for convenience, but on the wire each variant
//! is its own frame type, so a receiver skips types it does not know. A released body is
//! frozen: a new field means a new frame type.
//!
//! [`REGISTRY`] is the table the spec's registry is checked against, and the vector test walks
//! it to prove every registered type has a golden vector.

pub mod auth;
pub mod contacts;
pub mod control;
pub mod ephemeral;
pub mod events;
pub mod files;
pub mod moderation;
pub mod rooms;
pub mod search;
mod stamped;
pub mod voice;

use crate::error::DecodeError;
use crate::frame::FrameType;
use crate::settings::Settings;
use crate::varint;

pub use auth::*;
pub use contacts::*;
pub use control::*;
pub use ephemeral::*;
pub use events::*;
pub use files::*;
pub use moderation::*;
pub use rooms::*;
pub use search::*;
pub use stamped::{EventFrame, StampedEvent};
pub use voice::*;

/// Hard per-field limits, in bytes for text and elements for lists (spec §5.4). Servers may
/// enforce lower limits (and advertise some in SETTINGS); no decoder accepts more.
pub mod max {
    /// Usernames.
    pub const USERNAME: usize = 32;
    /// Passwords.
    pub const PASSWORD: usize = 1024;
    /// Device names of login sessions.
    pub const DEVICE_NAME: usize = 64;
    /// Access and refresh tokens.
    pub const TOKEN: usize = 1024;
    /// Room names.
    pub const ROOM_NAME: usize = 64;
    /// Room topics.
    pub const TOPIC: usize = 512;
    /// Room categories.
    pub const CATEGORY: usize = 64;
    /// Message text (the server's `max_message_bytes` is at most this).
    pub const MESSAGE_TEXT: usize = 16 * 1024;
    /// A reaction.
    pub const EMOJI: usize = 32;
    /// Distinct reactions on one message in a history page.
    pub const REACTIONS: usize = 64;
    /// Moderation reasons.
    pub const REASON: usize = 256;
    /// Presence status text.
    pub const STATUS_TEXT: usize = 128;
    /// ERROR messages.
    pub const ERROR_MESSAGE: usize = 1024;
    /// `host:port` hints.
    pub const ADDRESS: usize = 255;
    /// Entries of a paged list (rooms, members, audit).
    pub const PAGE: usize = 100;
    /// Login sessions listed.
    pub const SESSIONS: usize = 256;
    /// Login keys listed (a server caps keys per account at or below this).
    pub const KEYS: usize = 64;
    /// Voice participants in one VOICE_JOINED.
    pub const VOICE_ROSTER: usize = 256;
    /// Invite codes.
    pub const INVITE_CODE: usize = 32;
    /// Contacts listed (friends, requests, blocks).
    pub const CONTACTS: usize = 1000;
    /// Shared file names.
    pub const FILE_NAME: usize = 255;
    /// Bytes in one FILE_CHUNK (well inside the default 64 KiB frame).
    pub const FILE_CHUNK: usize = 32 * 1024;
    /// SEARCH queries.
    pub const SEARCH_QUERY: usize = 512;
    /// SEARCH_HIT snippets.
    pub const SEARCH_SNIPPET: usize = 512;
    /// Highlighted ranges in one snippet.
    pub const SEARCH_HIGHLIGHTS: usize = 32;
}

/// Defines postcard wire structs with the derives every one of them needs.
macro_rules! wire {
    ($($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* })*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
            #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
            pub struct $name { $($body)* }

            impl $crate::message::Body for $name {
                fn encode_body(&self, out: &mut Vec<u8>) {
                    $crate::message::postcard_encode(self, out)
                }
                fn decode_body(body: &[u8]) -> Result<Self, $crate::error::DecodeError> {
                    $crate::message::postcard_decode(body)
                }
            }
        )*
    };
}
pub(crate) use wire;

/// The body codec of a wire type: postcard for every message but SETTINGS.
pub trait Body: Sized {
    /// Appends the body bytes (no frame header).
    fn encode_body(&self, out: &mut Vec<u8>);
    /// Decodes a complete body; every byte must be used.
    fn decode_body(body: &[u8]) -> Result<Self, DecodeError>;
}

/// A wire type with a registered frame type.
pub trait Frame: Body {
    /// Its frame type.
    const TYPE: FrameType;
    /// Its registered name, as in the spec.
    const NAME: &'static str;

    /// Appends the whole frame: type, length, body.
    fn encode_frame(&self, out: &mut Vec<u8>) {
        varint::encode(Self::TYPE.0, out);
        let start = out.len();
        self.encode_body(out);
        let len = out.len() - start;
        // The length goes before the body; bodies are small, so moving them is cheaper than
        // encoding twice to learn the length.
        let mut prefix = [0u8; 8];
        let n = varint::write(len as u64, &mut prefix).expect("body length fits a varint");
        out.splice(start..start, prefix[..n].iter().copied());
    }
}

pub(crate) fn postcard_encode<T: serde::Serialize>(value: &T, out: &mut Vec<u8>) {
    // Serializing into a Vec cannot fail for these types: no maps, no unsized sequences.
    let encoded = postcard::to_extend(value, std::mem::take(out));
    *out = encoded.expect("postcard serialization of a wire type cannot fail");
}

pub(crate) fn postcard_decode<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes(body)?;
    if rest.is_empty() { Ok(value) } else { Err(DecodeError::TrailingBytes { extra: rest.len() }) }
}

impl Body for Settings {
    fn encode_body(&self, out: &mut Vec<u8>) {
        Self::encode_body(self, out);
    }
    fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_body(body)
    }
}

/// Who sends a frame type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server only.
    ClientToServer,
    /// Server to client only.
    ServerToClient,
    /// Either side.
    Both,
}

/// Where a frame type may appear (spec §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A control stream (type 0x00).
    Control,
    /// A request stream, opened by the client: the request frame, and follow-ups like
    /// KEY_PROOF.
    Request,
    /// A request stream, answered by the server.
    Response,
    /// The events stream (type 0x01).
    Events,
    /// The ephemeral stream (type 0x02).
    Ephemeral,
}

/// One row of the frame-type registry.
#[derive(Debug, Clone, Copy)]
pub struct FrameInfo {
    /// The registered type.
    pub frame_type: FrameType,
    /// The registered name.
    pub name: &'static str,
    /// Who sends it.
    pub direction: Direction,
    /// Where it may appear.
    pub streams: &'static [StreamKind],
}

impl FrameInfo {
    /// True when this frame may open a request stream.
    pub fn is_request(&self) -> bool {
        self.direction == Direction::ClientToServer && self.streams.contains(&StreamKind::Request)
    }
}

/// What [`visit_bodies`] shows a type's body to.
pub trait BodyVisitor {
    /// A postcard body: every type but SETTINGS.
    fn postcard<T: Frame + serde::de::DeserializeOwned>(&mut self);
    /// SETTINGS, whose body is its own list of ids and values (spec §5.1).
    fn settings(&mut self);
}

macro_rules! visit_body {
    ($visitor:ident, Settings) => {
        $visitor.settings()
    };
    ($visitor:ident, $variant:ident) => {
        $visitor.postcard::<$variant>()
    };
}

macro_rules! registry {
    ($($value:literal $name:ident $variant:ident $dir:ident [$($stream:ident),+];)*) => {
        /// Any registered message. Encode with [`Message::encode`], decode with
        /// [`Message::decode`] or a [`FrameDecoder`](crate::frame::FrameDecoder). It
        /// serializes (serde) as its body's fields, for tools that show frames; the wire
        /// format is [`Message::encode`]'s, never this.
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
        #[serde(untagged)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        #[allow(clippy::large_enum_variant)] // messages are built, encoded and dropped
        pub enum Message {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                $variant($variant),
            )*
        }

        /// The frame-type registry, in numeric order (spec §10.1).
        pub const REGISTRY: &[FrameInfo] = &[$(
            FrameInfo {
                frame_type: FrameType($value),
                name: stringify!($name),
                direction: Direction::$dir,
                streams: &[$(StreamKind::$stream),+],
            },
        )*];

        impl Message {
            /// This message's frame type.
            pub fn frame_type(&self) -> FrameType {
                match self { $(Self::$variant(_) => FrameType($value),)* }
            }

            /// Appends the whole frame.
            pub fn encode(&self, out: &mut Vec<u8>) {
                match self { $(Self::$variant(m) => m.encode_frame(out),)* }
            }

            /// Decodes a complete body of the given type. An unregistered type is
            /// [`DecodeError::UnknownFrameType`]; stream readers skip those.
            pub fn decode(frame_type: FrameType, body: &[u8]) -> Result<Self, DecodeError> {
                match frame_type.0 {
                    $($value => $variant::decode_body(body).map(Self::$variant),)*
                    other => Err(DecodeError::UnknownFrameType(other)),
                }
            }
        }

        /// Shows every registered type's body to `visitor`, in registry order: tools that
        /// derive a layout from the types themselves (the Wireshark dissector's generator)
        /// walk the whole protocol without a list of their own.
        pub fn visit_bodies<V: BodyVisitor>(visitor: &mut V) {
            $(visit_body!(visitor, $variant);)*
        }

        $(
            impl Frame for $variant {
                const TYPE: FrameType = FrameType($value);
                const NAME: &'static str = stringify!($name);
            }

            impl From<$variant> for Message {
                fn from(message: $variant) -> Self {
                    Self::$variant(message)
                }
            }
        )*
    };
}

registry! {
    // Control stream.
    0x01 SETTINGS Settings Both [Control];
    0x02 PING Ping Both [Control];
    0x03 PONG Pong Both [Control];
    0x04 GO_AWAY GoAway ServerToClient [Control];
    0x05 HELLO Hello ClientToServer [Control];
    0x06 RESUME Resume ClientToServer [Control];
    0x07 WELCOME Welcome ServerToClient [Control];
    0x08 RESUMED Resumed ServerToClient [Control];
    0x09 ERROR Error ServerToClient [Control, Response];
    // Accounts and login sessions.
    0x10 REGISTER Register ClientToServer [Request];
    0x11 LOGIN Login ClientToServer [Request];
    0x12 KEY_LOGIN KeyLogin ClientToServer [Request];
    0x13 KEY_CHALLENGE KeyChallenge ServerToClient [Response];
    0x14 KEY_PROOF KeyProof ClientToServer [Request];
    0x15 AUTH_OK AuthOk ServerToClient [Response];
    0x16 REFRESH Refresh ClientToServer [Request];
    0x17 LOGOUT Logout ClientToServer [Request];
    0x18 SESSION_LIST SessionList ClientToServer [Request];
    0x19 SESSION_LIST_PAGE SessionListPage ServerToClient [Response];
    0x1a SESSION_REVOKE SessionRevoke ClientToServer [Request];
    0x1b KEY_ADD KeyAdd ClientToServer [Request];
    0x1c DONE Done ServerToClient [Response];
    0x1d KEY_LIST KeyList ClientToServer [Request];
    0x1e KEY_LIST_PAGE KeyListPage ServerToClient [Response];
    0x1f KEY_REMOVE KeyRemove ClientToServer [Request];
    // Rooms. 0x21 is GREASE.
    0x20 ROOM_CREATE RoomCreate ClientToServer [Request];
    0x22 ROOM_INFO RoomInfo ServerToClient [Response];
    0x23 ROOM_LIST RoomList ClientToServer [Request];
    0x24 ROOM_LIST_PAGE RoomListPage ServerToClient [Response];
    0x25 ROOM_JOIN RoomJoin ClientToServer [Request];
    0x26 ROOM_LEAVE RoomLeave ClientToServer [Request];
    0x27 ROOM_SET_TOPIC RoomSetTopic ClientToServer [Request];
    0x28 DM_OPEN DmOpen ClientToServer [Request];
    0x29 MEMBERS Members ClientToServer [Request];
    0x2a MEMBERS_PAGE MembersPage ServerToClient [Response];
    0x2b ROOM_CONFIGURE RoomConfigure ClientToServer [Request];
    0x2c INVITE_CREATE InviteCreate ClientToServer [Request];
    0x2d INVITE Invite ServerToClient [Response];
    0x2e INVITE_USE InviteUse ClientToServer [Request];
    0x2f ROOM_INVITE RoomInvite ClientToServer [Request];
    // Room event requests.
    0x30 POST Post ClientToServer [Request];
    0x31 EVENT_ACK EventAck ServerToClient [Response];
    0x32 EDIT Edit ClientToServer [Request];
    0x33 DELETE Delete ClientToServer [Request];
    0x34 REACT React ClientToServer [Request];
    0x35 HISTORY History ClientToServer [Request];
    0x36 CATCH_UP CatchUp ClientToServer [Request];
    0x37 PAGE_END PageEnd ServerToClient [Response];
    0x38 REVEAL_AUTHOR RevealAuthor ClientToServer [Request];
    0x39 AUTHOR Author ServerToClient [Response];
    // Room log entries. 0x40 is GREASE.
    0x41 POSTED Posted ServerToClient [Events, Response];
    0x42 EDITED Edited ServerToClient [Events, Response];
    0x43 DELETED Deleted ServerToClient [Events, Response];
    0x44 REACTED Reacted ServerToClient [Events, Response];
    0x45 MEMBERSHIP Membership ServerToClient [Events, Response];
    0x46 TOPIC_CHANGED TopicChanged ServerToClient [Events, Response];
    0x47 HISTORY_MESSAGE HistoryMessage ServerToClient [Response];
    0x48 LIVE_PAUSED LivePaused ServerToClient [Events];
    0x49 ROOM_CONFIGURED RoomConfigured ServerToClient [Events, Response];
    0x4a FILE_SHARED FileShared ServerToClient [Events, Response];
    // Markers, typing, presence.
    0x50 MARK_READ MarkRead ClientToServer [Request];
    0x51 MARK_DELIVERED MarkDelivered ClientToServer [Request];
    0x52 MARKER_OK MarkerOk ServerToClient [Response];
    0x53 TYPING_SET TypingSet ClientToServer [Request];
    0x54 PRESENCE_SET PresenceSet ClientToServer [Request];
    0x55 PRESENCE Presence ServerToClient [Ephemeral];
    0x56 TYPING Typing ServerToClient [Ephemeral];
    0x57 READ_UP_TO ReadUpTo ServerToClient [Ephemeral];
    0x58 DELIVERED_UP_TO DeliveredUpTo ServerToClient [Ephemeral];
    // Voice control. 0x5f is GREASE.
    0x60 VOICE_JOIN VoiceJoin ClientToServer [Request];
    0x61 VOICE_JOINED VoiceJoined ServerToClient [Response];
    0x62 VOICE_LEAVE VoiceLeave ClientToServer [Request];
    0x63 VOICE_SELF VoiceSelf ClientToServer [Request];
    0x64 VOICE_REQUEST_SPEAK VoiceRequestSpeak ClientToServer [Request];
    0x65 VOICE_MODERATE VoiceModerate ClientToServer [Request];
    0x66 VOICE_STATE VoiceStateChanged ServerToClient [Ephemeral];
    0x67 SPEAKING Speaking ServerToClient [Ephemeral];
    // Roles and moderation.
    0x70 ROLE_SET RoleSet ClientToServer [Request];
    0x71 KICK Kick ClientToServer [Request];
    0x72 BAN Ban ClientToServer [Request];
    0x73 UNBAN Unban ClientToServer [Request];
    0x74 AUDIT_QUERY AuditQuery ClientToServer [Request];
    0x75 AUDIT_PAGE AuditPage ServerToClient [Response];
    // Contacts: friends and blocks.
    0x80 CONTACT_SET ContactSet ClientToServer [Request];
    0x81 CONTACT_LIST ContactList ClientToServer [Request];
    0x82 CONTACT_LIST_PAGE ContactListPage ServerToClient [Response];
    0x83 CONTACT Contact ServerToClient [Ephemeral];
    // Files.
    0x90 UPLOAD Upload ClientToServer [Request];
    0x91 UPLOAD_READY UploadReady ServerToClient [Response];
    0x92 FILE_CHUNK FileChunk Both [Request, Response];
    0x93 DOWNLOAD Download ClientToServer [Request];
    0x94 FILE_INFO FileInfo ServerToClient [Response];
    // Search.
    0xa0 SEARCH Search ClientToServer [Request];
    0xa1 SEARCH_HIT SearchHit ServerToClient [Response];
    0xa2 SEARCH_END SearchEnd ServerToClient [Response];
}

impl Message {
    /// Where and by whom, for the frames that carry a room log entry.
    pub fn entry_meta(&self) -> Option<&EventMeta> {
        Some(match self {
            Self::Posted(m) => &m.meta,
            Self::Edited(m) => &m.meta,
            Self::Deleted(m) => &m.meta,
            Self::Reacted(m) => &m.meta,
            Self::Membership(m) => &m.meta,
            Self::TopicChanged(m) => &m.meta,
            Self::RoomConfigured(m) => &m.meta,
            Self::FileShared(m) => &m.meta,
            Self::HistoryMessage(m) => &m.meta,
            _ => return None,
        })
    }

    /// The `event_seq` of a frame that carries one (the frames of the events stream).
    pub fn event_seq(&self) -> Option<u64> {
        match self {
            Self::Posted(m) => Some(m.event_seq),
            Self::Edited(m) => Some(m.event_seq),
            Self::Deleted(m) => Some(m.event_seq),
            Self::Reacted(m) => Some(m.event_seq),
            Self::Membership(m) => Some(m.event_seq),
            Self::TopicChanged(m) => Some(m.event_seq),
            Self::RoomConfigured(m) => Some(m.event_seq),
            Self::FileShared(m) => Some(m.event_seq),
            Self::LivePaused(m) => Some(m.event_seq),
            _ => None,
        }
    }
}

/// The registry row of a frame type, if registered.
pub fn registry_entry(frame_type: FrameType) -> Option<&'static FrameInfo> {
    // REGISTRY is sorted by type (tested below); banterd looks up every request's type.
    let index = REGISTRY.binary_search_by_key(&frame_type, |info| info.frame_type).ok()?;
    REGISTRY.get(index)
}

/// Types a client may send on a request stream before its connection is authenticated
/// (spec §7.1).
pub const PRE_AUTH_REQUESTS: &[FrameType] =
    &[Register::TYPE, Login::TYPE, KeyLogin::TYPE, Refresh::TYPE];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_sorted_unique_and_free_of_grease() {
        for pair in REGISTRY.windows(2) {
            assert!(pair[0].frame_type < pair[1].frame_type, "{:?}", pair[1].frame_type);
        }
        for info in REGISTRY {
            assert!(!info.frame_type.is_grease(), "{} is a GREASE value", info.name);
        }
    }

    #[test]
    fn frame_header_uses_the_shortest_length() {
        let mut out = Vec::new();
        Done {}.encode_frame(&mut out);
        assert_eq!(out, [0x1c, 0x00]);
        let post = Post {
            room: crate::ids::RoomId(1),
            client_msg_id: 2,
            text: crate::bounded::Text::new("x".repeat(100)).unwrap(),
            reply_to: None,
            anonymous: false,
        };
        out.clear();
        post.encode_frame(&mut out);
        // type 0x30, then a two-byte length: 1 + 1 + 1 + 100 + 1 + 1 = 105 bytes of body.
        assert_eq!(&out[..3], &[0x30, 0x40, 105]);
        assert_eq!(out.len(), 3 + 105);
    }
}
