//! # banter-client
//!
//! The async Rust SDK for Banter: connecting over QUIC, authentication, requests, the event
//! stream, reconnect with resume, the offline outbox and voice. The TUI (`banter`) and the C
//! library (`libbanter`) are thin layers over it.
//!
//! **Status:** not implemented yet (issue 4). Today this crate only re-exports the protocol,
//! so that dependants can name wire types through it.

#![forbid(unsafe_code)]

pub use banter_protocol as protocol;
