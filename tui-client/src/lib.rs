//! # banter-tui
//!
//! The `banter` terminal client (ratatui + crossterm) and its scriptable subcommands.
//!
//! **Status:** not implemented yet (issue 4). There is deliberately no `banter` binary until
//! it can talk to a server.

#![forbid(unsafe_code)]
