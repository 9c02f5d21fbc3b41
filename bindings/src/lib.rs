//! # banter-ffi
//!
//! `libbanter`: the C ABI over `banter-client`, with a cbindgen-generated `banter.h`.
//!
//! **Status:** not implemented yet (issue 6). No symbols are exported yet.
