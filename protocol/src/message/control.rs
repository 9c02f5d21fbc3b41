//! Control stream frames (spec §6.1): liveness, authentication of the connection, resume,
//! shutdown, and the error frame used on every stream.

use crate::bounded::{Blob, Text};
use crate::error::ErrorCode;
use crate::ids::{ResumeId, Timestamp, UserId};
use crate::message::{max, wire};

wire! {
    /// PING: liveness with the client's events acknowledgement (spec §7.4).
    pub struct Ping {
        /// The sender's clock, echoed in PONG (opaque to the receiver).
        pub t: u64,
        /// Client → server: the highest event_seq processed, so the server trims its replay
        /// buffer. Server → client: 0.
        pub ack_event_seq: u64,
    }

    /// PONG: the answer to PING.
    pub struct Pong {
        /// The `t` of the PING answered.
        pub t: u64,
    }

    /// GO_AWAY: the server is shutting down or moving the connection (spec §7.6).
    pub struct GoAway {
        /// Where to reconnect, `host:port`; empty means the same address.
        pub reconnect_hint: Text<{ max::ADDRESS }>,
        /// How long the server lets in-flight requests finish before it closes.
        pub drain_ms: u64,
    }

    /// HELLO: authenticates the connection with an access token and starts a new session.
    pub struct Hello {
        /// The access token from AUTH_OK.
        pub access_token: Blob<{ max::TOKEN }>,
        /// What ephemeral traffic the client wants (`Hello::INTEREST_*` bits).
        pub interests: u64,
    }

    /// RESUME: authenticates the connection and resumes an earlier session's events stream.
    pub struct Resume {
        /// The access token from AUTH_OK (or REFRESH).
        pub access_token: Blob<{ max::TOKEN }>,
        /// The session to resume, from WELCOME.
        pub resume_id: ResumeId,
        /// The last event_seq the client processed; replay starts after it.
        pub last_event_seq: u64,
        /// As in HELLO.
        pub interests: u64,
    }

    /// WELCOME: HELLO succeeded; a new session starts.
    pub struct Welcome {
        /// The session's resume identity.
        pub resume_id: ResumeId,
        /// The authenticated user.
        pub user: UserId,
        /// The user's name.
        pub username: Text<{ max::USERNAME }>,
        /// The server's clock when it accepted the HELLO.
        pub server_time: Timestamp,
    }

    /// RESUMED: RESUME succeeded; the events stream replays from `replay_from`.
    pub struct Resumed {
        /// The first event_seq the new events stream carries (the client's last + 1).
        pub replay_from: u64,
        /// The server's clock.
        pub server_time: Timestamp,
    }

    /// ERROR: a request failed, or (on the control stream) authentication failed. The one
    /// error frame of the protocol (spec §9).
    pub struct Error {
        /// What went wrong, from the error-code registry.
        pub code: ErrorCode,
        /// For RATE_LIMITED and SERVER_BUSY: when to retry.
        pub retry_after_ms: Option<u64>,
        /// A human-readable explanation; never parsed.
        pub message: Text<{ max::ERROR_MESSAGE }>,
    }
}

impl Hello {
    /// Interest bit: presence updates.
    pub const INTEREST_PRESENCE: u64 = 1 << 0;
    /// Interest bit: typing notifications.
    pub const INTEREST_TYPING: u64 = 1 << 1;
    /// Interest bit: other users' read and delivery markers.
    pub const INTEREST_RECEIPTS: u64 = 1 << 2;
    /// Interest bit: voice state and speaking indicators.
    pub const INTEREST_VOICE: u64 = 1 << 3;
    /// All interests.
    pub const INTEREST_ALL: u64 = 0b1111;
}

impl Error {
    /// An error with a message; the message is cut to fit its limit.
    pub fn new(code: ErrorCode, message: &str) -> Self {
        let mut end = message.len().min(max::ERROR_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            code,
            retry_after_ms: None,
            message: Text::new(&message[..end]).expect("cut to the limit"),
        }
    }
}
