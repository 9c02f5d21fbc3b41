//! # banter-protocol
//!
//! The Banter v1 wire protocol as a library: frame types, message bodies, SETTINGS, the voice
//! datagram header, and the per-connection state machines. It is the executable half of
//! `spec/PROTOCOL.md`; the golden vectors in `spec/vectors/` are checked against it.
//!
//! This crate contains no networking code, spawns no tasks and never reads the clock: `now`
//! is always passed in. The server (`banter-server`) and the client SDK (`banter-client`) are
//! drivers that move bytes between QUIC streams and these types, the way quinn drives
//! quinn-proto.
//!
//! ```text
//!   stream bytes ──► FrameDecoder ──► Message ──► session::{Server,Client}Connection
//!                                                   │ handle_* in, poll_* out
//!   stream bytes ◄── Message::encode ◄──────────────┘
//!   datagram     ◄─► datagram::VoiceHeader (+ Opus payload, borrowed)
//! ```
//!
//! Every decoder treats its input as hostile: it never panics, it checks lengths against
//! declared limits before allocating, and it tells "need more bytes"
//! ([`DecodeError::Incomplete`]) from "malformed" (every other [`DecodeError`]).
//!
//! # Layout
//! - [`varint`]: QUIC variable-length integers.
//! - [`frame`]: `type | length | body` framing and the incremental [`FrameDecoder`].
//! - [`message`]: every message and the frame-type [`REGISTRY`](message::REGISTRY).
//! - [`settings`]: SETTINGS and the [`Limits`](settings::Limits) they declare.
//! - [`stream`]: unidirectional stream types.
//! - [`datagram`]: the voice datagram header.
//! - [`session`]: connection state machines and the events replay buffer.
//! - [`bounded`], [`ids`], [`error`], [`grease`]: the vocabulary the rest is written in.

#![warn(missing_docs)]

pub mod bounded;
pub mod datagram;
pub mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod grease;
pub mod ids;
pub mod message;
pub mod session;
pub mod settings;
pub mod stream;
pub mod varint;

pub use error::{ClientAction, DecodeError, ErrorCode};
pub use frame::{FrameDecoder, FrameType};
pub use message::{Frame, Message};

/// The ALPN protocol id of Banter v1 (spec §2.1). The major version lives here; everything
/// else is negotiated in SETTINGS.
pub const ALPN: &[u8] = b"banter/1";
