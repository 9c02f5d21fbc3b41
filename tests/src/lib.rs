//! # banter-tests
//!
//! End-to-end tests: a real `banterd` on loopback driven by real clients. The harness
//! (`TestServer`) arrives with the server (issue 3); protocol-level tests live in
//! `banter-protocol` until then.
