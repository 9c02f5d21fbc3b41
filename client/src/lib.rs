//! # banter-client
//!
//! The async Rust SDK for Banter.
//!
//! - [`Connection`]: one QUIC connection to a banterd with certificate pinning, requests,
//!   HELLO / RESUME, and the server's pushed [`Event`]s.
//! - [`Client`]: a session over many connections: reconnect with backoff and jitter, resume
//!   or fresh session plus per-room catch-up, token refresh, each room entry delivered once
//!   and in order, and posts sent through an ordered, optionally persistent [`Outbox`].
//!
//! - [`State`]: the local view (rooms, messages with edits and reactions folded in, members,
//!   presence, typing, read markers) that every frontend reads.
//!
//! - [`voice::VoiceSession`]: voice in a room: Opus encode, datagrams, a jitter buffer per
//!   speaker, FEC recovery and mixing, PCM frames in and out.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod connection;
mod files;
pub mod fuzzing;
mod outbox;
mod post_stream;
pub mod state;
pub mod tls;
pub mod voice;

pub use banter_protocol as protocol;
pub use client::{
    Client, ClientConfig, ConnectionState, Credentials, Update, backoff, new_client_msg_id,
    wall_clock,
};
pub use connection::{ConnectError, Connection, Event, Options, RequestError, quic_config};
pub use files::{Progress, safe_file_name};
pub use outbox::{Outbox, Pending};
pub use post_stream::PostStream;
pub use state::{State, room_settings_text};
pub use tls::{TlsSessions, Trust};
