//! XenStore for a PV guest: the wire protocol (`xen/include/public/io/xs_wire.h`),
//! the shared-ring transport, and a client with watches and transactions.
//! `no_std` + `alloc`, and free of `unsafe`: the kernel maps the store page
//! and implements [`RingEvents`] with its event channel; everything else is
//! here and tested on the host against [`fake::FakeXenstored`].
//!
//! Layers, bottom up:
//! - [`wire`]: message framing; [`request`] and [`reply`]: payloads;
//!   [`path`], [`perms`]: what paths and permissions look like.
//! - [`ring`]: one ring of the store page, with Xen's ordering rules;
//!   [`RingTransport`]: whole messages over both rings, waiting through
//!   [`RingEvents`] rather than spinning.
//! - [`Transport`]: what the client needs from a connection.
//! - [`Client`] + [`Store`]: requests and replies matched by id, watch
//!   events queued apart ([`watch`]), [`Transaction`]s with retry on `EAGAIN`.
//!
//! ```ignore
//! let ring = RingTransport::new(store_page, StoreEvents { port, .. });
//! let mut xs = Client::new(ring);
//! let domid = xs.read_u64("domid")?;
//! xs.watch("control/shutdown", "shutdown")?;
//! xs.transaction(|tx| tx.write("device/vif/0/state", b"4"))?;
//! let ev = xs.next_event(None)?;
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod client;
pub mod errors;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod path;
pub mod perms;
pub mod reply;
pub mod request;
pub mod ring;
pub mod ring_transport;
#[cfg(any(test, feature = "fake"))]
pub mod testutil;
pub mod transaction;
pub mod transport;
pub mod types;
pub mod watch;
pub mod wire;

pub use client::{Client, Store};
pub use errors::{Error, Malformed, PathError, RingError, XsErrno};
pub use perms::{Access, Perm};
pub use ring_transport::{RingEvents, RingTransport, TimedOut};
pub use transaction::Transaction;
pub use transport::Transport;
pub use types::{Instant, ReqId, TxId};
pub use watch::{EventQueue, WatchEvent};
pub use wire::{Message, MsgType};
