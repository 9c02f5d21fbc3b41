//! # banter-client
//!
//! The async Rust SDK for Banter. Today: [`Connection`], one QUIC connection to a banterd with
//! certificate pinning, requests, HELLO / RESUME, and the server's pushed [`Event`]s. Reconnect
//! with backoff, the offline outbox, the local state view and voice build on it (issue 4, 5).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connection;
pub mod tls;

pub use banter_protocol as protocol;
pub use connection::{ConnectError, Connection, Event, Options, RequestError};
pub use tls::Trust;
