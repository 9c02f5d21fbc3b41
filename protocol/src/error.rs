//! Errors: what went wrong while decoding bytes ([`DecodeError`]), and the one table of
//! application error codes shared by CONNECTION_CLOSE, RESET_STREAM, STOP_SENDING and the
//! [`Error`](crate::message::Error) frame ([`ErrorCode`], spec §9).

use std::fmt;

/// Why bytes could not be decoded. Every variant is the peer's fault except
/// [`Incomplete`](Self::Incomplete), which only means "read more".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before the item does; an incremental reader buffers more bytes.
    #[error("need more bytes")]
    Incomplete,
    /// The input ended inside a frame or body that cannot get more bytes (end of stream, or a
    /// body shorter than its fields).
    #[error("truncated")]
    Truncated,
    /// A frame's declared length exceeds the negotiated maximum; nothing was allocated.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The length the frame header declared.
        len: u64,
        /// The maximum in force.
        max: u64,
    },
    /// A body decoded completely but bytes were left over.
    #[error("{extra} trailing bytes after the body")]
    TrailingBytes {
        /// How many bytes were left.
        extra: usize,
    },
    /// A postcard varint inside a body is longer than its integer type allows.
    #[error("bad varint in body")]
    BadVarint,
    /// A string is not valid UTF-8.
    #[error("invalid UTF-8")]
    BadUtf8,
    /// A value is outside its type's range: an unknown enum variant, a bool or option tag
    /// other than 0/1, or a text, list or byte string longer than its limit.
    #[error("value out of range or over its limit")]
    InvalidValue,
    /// A frame type this implementation does not know, where a known one was required.
    /// Stream readers skip unknown frames instead of failing (spec §4.3).
    #[error("unknown frame type {0:#x}")]
    UnknownFrameType(u64),
    /// A SETTINGS frame names the same setting twice.
    #[error("duplicate setting {0:#x}")]
    DuplicateSetting(u64),
    /// A SETTINGS frame has more than 256 entries.
    #[error("more than 256 settings")]
    TooManySettings,
    /// Any other malformation, described.
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

impl DecodeError {
    /// The error code a receiver closes with (or resets the stream with) for this error.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::FrameTooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
            Self::Incomplete => ErrorCode::INTERNAL,
            _ => ErrorCode::FRAME_ERROR,
        }
    }
}

impl From<postcard::Error> for DecodeError {
    fn from(error: postcard::Error) -> Self {
        use postcard::Error as E;
        match error {
            E::DeserializeUnexpectedEnd => Self::Truncated,
            E::DeserializeBadVarint => Self::BadVarint,
            E::DeserializeBadUtf8 | E::DeserializeBadChar => Self::BadUtf8,
            E::DeserializeBadBool | E::DeserializeBadOption | E::DeserializeBadEnum => {
                Self::InvalidValue
            }
            // postcard drops the message of serde's custom errors; ours come from the bounded
            // types' limits and from serde-derived enums seeing an unknown variant index.
            E::SerdeDeCustom => Self::InvalidValue,
            _ => Self::Malformed("postcard"),
        }
    }
}

/// What a client does when it receives an error code (spec §9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAction {
    /// Nothing went wrong.
    None,
    /// Reconnect with exponential backoff and resume the session.
    Reconnect,
    /// Wait for the error's `retry_after_ms`, then retry the same request.
    RetryAfter,
    /// Refresh the access token, then resume.
    RefreshToken,
    /// Start a fresh session (HELLO) and catch up room by room.
    FreshSession,
    /// The request itself is wrong; fix it, do not retry it unchanged.
    FixRequest,
    /// Stop and tell the user; never retry automatically.
    GiveUp,
}

/// An application error code: one table for CONNECTION_CLOSE, RESET_STREAM, STOP_SENDING and
/// ERROR frames. Open: codes this build does not know are kept, not rejected.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ErrorCode(pub u64);

macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $action:ident;)*) => {
        impl ErrorCode {
            $($(#[$doc])* pub const $name: Self = Self($value);)*

            /// Every registered code, in table order.
            pub const ALL: &'static [Self] = &[$(Self::$name),*];

            /// The registered name, or `None` for a code this build does not know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// What a client does on receiving this code. Unknown codes are treated as
            /// [`ClientAction::Reconnect`] (spec §9.2).
            pub fn action(self) -> ClientAction {
                match self.0 {
                    $($value => ClientAction::$action,)*
                    _ => ClientAction::Reconnect,
                }
            }
        }
    };
}

error_codes! {
    /// Success; a graceful close.
    NO_ERROR = 0x00, None;
    /// The peer hit a bug or a storage failure of its own.
    INTERNAL = 0x01, Reconnect;
    /// The peer broke a rule of the protocol (wrong stream, wrong state, wrong direction).
    PROTOCOL_VIOLATION = 0x02, Reconnect;
    /// A frame longer than the negotiated `max_frame_size`.
    FRAME_TOO_LARGE = 0x03, FixRequest;
    /// The first frame on a control stream was not SETTINGS.
    MISSING_SETTINGS = 0x04, Reconnect;
    /// A control, events or ephemeral stream was closed or reset.
    CLOSED_CRITICAL_STREAM = 0x05, Reconnect;
    /// A critical (odd-numbered) extension this side does not support.
    UNSUPPORTED_EXTENSION = 0x06, FixRequest;
    /// A frame body that does not decode (truncated, trailing bytes, bad value).
    FRAME_ERROR = 0x07, Reconnect;
    /// STOP_SENDING on a unidirectional stream of an unknown type.
    UNKNOWN_STREAM = 0x08, None;
    /// The request stream was abandoned by its sender.
    REQUEST_CANCELLED = 0x09, None;
    /// Wrong credentials, an unknown user, a bad token signature or a bad key proof.
    AUTH_FAILED = 0x10, GiveUp;
    /// The access token has expired; refresh it and resume.
    TOKEN_EXPIRED = 0x11, RefreshToken;
    /// Another connection resumed this session.
    SESSION_REPLACED = 0x12, GiveUp;
    /// The resume window is gone; start fresh and catch up per room.
    RESUME_UNAVAILABLE = 0x13, FreshSession;
    /// A request that needs an authenticated connection arrived before HELLO succeeded, or
    /// the authentication deadline passed.
    NOT_AUTHENTICATED = 0x14, Reconnect;
    /// The login session was logged out or revoked.
    SESSION_REVOKED = 0x15, GiveUp;
    /// Registration with a username that exists.
    USERNAME_TAKEN = 0x16, FixRequest;
    /// Too many requests; retry after `retry_after_ms`.
    RATE_LIMITED = 0x20, RetryAfter;
    /// The server is shutting down or moving this connection; reconnect and resume.
    GOING_AWAY = 0x22, Reconnect;
    /// The server is at its connection limit; reconnect later.
    SERVER_BUSY = 0x23, RetryAfter;
    /// Removed from the room by a moderator.
    KICKED = 0x30, GiveUp;
    /// Banned from the room or the server.
    BANNED = 0x31, GiveUp;
    /// The room, message, user or session named does not exist (or is not visible).
    NOT_FOUND = 0x41, FixRequest;
    /// The caller's role does not allow this action.
    FORBIDDEN = 0x42, FixRequest;
    /// A field is invalid: empty, too long, or a control character where none may be.
    INVALID_REQUEST = 0x43, FixRequest;
    /// The request conflicts with existing state (a client message id reused with other
    /// content, a room name taken).
    CONFLICT = 0x44, FixRequest;
    /// A configured limit would be exceeded (rooms per user, members per room).
    LIMIT_EXCEEDED = 0x45, FixRequest;
    /// The room is locked: only moderators may post, react or change the topic.
    ROOM_LOCKED = 0x46, FixRequest;
}

impl ErrorCode {
    /// True for the reserved GREASE values `0x1f * N + 0x21` (spec §10.5).
    pub fn is_grease(self) -> bool {
        crate::grease::is_grease(self.0)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "ErrorCode({:#x})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_registered_code_is_grease_and_none_repeats() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(!code.is_grease(), "{code} collides with GREASE");
            assert!(seen.insert(code.0), "{code} registered twice");
        }
    }

    #[test]
    fn unknown_codes_are_kept_and_mean_reconnect() {
        let code = ErrorCode(0x9999);
        assert_eq!(code.name(), None);
        assert_eq!(code.action(), ClientAction::Reconnect);
        assert_eq!(format!("{code}"), "ErrorCode(0x9999)");
    }
}
