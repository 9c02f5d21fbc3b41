//! The per-connection state machines, as pure code (spec §7).
//!
//! [`ServerConnection`] and [`ClientConnection`] own what one QUIC connection's control stream
//! decides: SETTINGS exchange and limits, authentication of the connection (HELLO / RESUME and
//! its deadline), liveness pings carrying the events acknowledgement, GO_AWAY, and which
//! requests are admissible in which state. [`ReplayBuffer`] numbers the events stream and
//! keeps it for resume; [`EventCursor`] checks the numbering on the client.
//!
//! They read no clock and touch no socket. The driver (banterd's connection task, the client
//! SDK) follows one calling convention, as quinn-proto does:
//!
//! 1. feed inputs with `handle_*` (bytes read from the peer's control stream, decisions of
//!    the application such as "this token is valid", timer expiry), passing `now`;
//! 2. drain `poll_transmit` (bytes for our control stream) and `poll_event` (things the
//!    application must act on) until both return `None`;
//! 3. sleep until `poll_timeout`, then call `handle_timeout`.
//!
//! Once a [`Close`] comes out of `poll_event` the driver closes the QUIC connection with its
//! code and reason; later inputs are ignored.

mod client;
mod replay;
mod server;

pub use client::{ClientConfig, ClientConnection, ClientEvent, Greeting};
pub use replay::{EventCursor, ReplayBuffer, ReplayGone};
pub use server::{AuthRequest, ServerConfig, ServerConnection, ServerEvent};

use crate::error::ErrorCode;
use crate::frame::{FrameDecoder, FrameType};
use crate::message::{Frame, Message};

/// Close the connection with this code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The application error code for CONNECTION_CLOSE.
    pub code: ErrorCode,
    /// The reason phrase (human-readable).
    pub reason: String,
}

impl Close {
    pub(crate) fn new(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }
}

/// The control-stream plumbing both sides share: the reader, the bytes to send, and the
/// SETTINGS-first rule (spec §5.1).
#[derive(Debug)]
struct ControlStream {
    decoder: FrameDecoder,
    outbox: Vec<u8>,
    settings_received: bool,
}

impl ControlStream {
    /// Queues our SETTINGS (and GREASE); our decoder accepts what we advertised.
    fn new(limits: &crate::settings::Limits, grease: Option<u32>) -> Self {
        let mut outbox = Vec::new();
        limits.to_settings().encode_frame(&mut outbox);
        if let Some(n) = grease {
            // spec §10.5: a GREASE frame with a short body keeps the peer's skip path honest.
            crate::frame::encode_raw(
                FrameType(crate::grease::value(n)),
                &n.to_be_bytes(),
                &mut outbox,
            );
        }
        Self { decoder: FrameDecoder::new(limits.max_frame_size), outbox, settings_received: false }
    }

    fn send(&mut self, message: &impl Frame) {
        message.encode_frame(&mut self.outbox);
    }

    fn take_outbox(&mut self) -> Option<Vec<u8>> {
        (!self.outbox.is_empty()).then(|| std::mem::take(&mut self.outbox))
    }

    /// Decodes the next message, enforcing SETTINGS-first and SETTINGS-once.
    fn next(&mut self) -> Result<Option<Message>, Close> {
        let message = match self.decoder.next_message() {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(None),
            Err(e) => return Err(Close::new(e.code(), format!("control stream: {e}"))),
        };
        match (&message, self.settings_received) {
            (Message::Settings(_), false) => self.settings_received = true,
            (Message::Settings(_), true) => {
                return Err(Close::new(ErrorCode::PROTOCOL_VIOLATION, "second SETTINGS"));
            }
            (_, false) => {
                return Err(Close::new(ErrorCode::MISSING_SETTINGS, "first frame not SETTINGS"));
            }
            (_, true) => {}
        }
        Ok(Some(message))
    }
}

fn unexpected(message: &Message) -> Close {
    Close::new(
        ErrorCode::PROTOCOL_VIOLATION,
        format!("{:?} not allowed here", message.frame_type()),
    )
}
