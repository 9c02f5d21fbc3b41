//! # banter-server
//!
//! The library behind `banterd`, the reference server: QUIC endpoint, sessions, rooms,
//! fan-out, presence, voice relay and sled storage.
//!
//! **Status:** not implemented yet (issue 3). There is deliberately no `banterd` binary
//! until it can serve a real connection.

#![forbid(unsafe_code)]

pub use banter_protocol as protocol;
