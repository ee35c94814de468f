//! The guest's network service layer as pure code, so that all of its
//! decisions run under `cargo test` (and the fuzz tests in `tests/`):
//!
//! - [`http`]: the HTTP/1.1 request parser (outside input: every byte
//!   sequence gets an answer, never a panic) and the response writer;
//! - [`conn`]: one HTTP connection's phases (new, reading a head, reading
//!   a body, sending, keep-alive) and the timeout of each;
//! - [`config`]: the listener's sizes and timeouts, derived from the
//!   guest's memory and overridden on the command line (bad values are
//!   errors that say what is wrong);
//! - [`counters`]: what the status page shows (accepted, refused, timed
//!   out, active, peak);
//! - [`frame`]: recognising, in an outgoing frame, the reset that refuses
//!   a connection no listening socket took.
//!
//! The kernel's `net::listener` drives smoltcp sockets with these.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod config;
pub mod conn;
pub mod counters;
pub mod frame;
pub mod http;
