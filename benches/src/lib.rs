//! # banter-benches
//!
//! Benchmarks. `benches/codec.rs` measures the frame codec and the voice header with
//! criterion; the `banter-bench` load generator arrives with issue 8. Results and the commands
//! that produced them are in `benches/README.md`.
