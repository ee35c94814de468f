//! The XenStore wire protocol and ring page (`xen/include/public/io/xs_wire.h`).
//!
//! `xenstored` in dom0 maps the guest's store page (`start_info.store_mfn`)
//! and both sides write it concurrently, so every field of
//! [`XenstoreDomainInterface`] is an atomic, as in [`super::console`].

use super::assert_layout;
use core::sync::atomic::{AtomicU32, AtomicU8};

/// `XENSTORE_RING_SIZE`: bytes in each of the two rings. A power of two.
pub const RING_SIZE: usize = 1024;
/// `XENSTORE_PAYLOAD_MAX`: the most payload bytes one message may carry.
pub const PAYLOAD_MAX: usize = 4096;
/// `XENSTORE_ABS_PATH_MAX`: longest absolute path (`/local/domain/...`).
pub const ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`: longest path relative to the domain's home.
pub const REL_PATH_MAX: usize = 2048;

/// `XENSTORE_SERVER_FEATURE_RECONNECTION`: the server can reset the ring.
pub const SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`: the server reports in the `error` field.
pub const SERVER_FEATURE_ERROR: u32 = 2;

/// `connection` values.
pub const CONNECTED: u32 = 0;
pub const RECONNECT: u32 = 1;

/// `error` values.
pub const ERROR_NONE: u32 = 0;
pub const ERROR_COMM: u32 = 1;
pub const ERROR_RINGIDX: u32 = 2;
pub const ERROR_PROTO: u32 = 3;

/// `enum xsd_sockmsg_type`.
pub mod msg_type {
    pub const CONTROL: u32 = 0;
    pub const DIRECTORY: u32 = 1;
    pub const READ: u32 = 2;
    pub const GET_PERMS: u32 = 3;
    pub const WATCH: u32 = 4;
    pub const UNWATCH: u32 = 5;
    pub const TRANSACTION_START: u32 = 6;
    pub const TRANSACTION_END: u32 = 7;
    pub const INTRODUCE: u32 = 8;
    pub const RELEASE: u32 = 9;
    pub const GET_DOMAIN_PATH: u32 = 10;
    pub const WRITE: u32 = 11;
    pub const MKDIR: u32 = 12;
    pub const RM: u32 = 13;
    pub const SET_PERMS: u32 = 14;
    pub const WATCH_EVENT: u32 = 15;
    pub const ERROR: u32 = 16;
    pub const IS_DOMAIN_INTRODUCED: u32 = 17;
    pub const RESUME: u32 = 18;
    pub const SET_TARGET: u32 = 19;
    /// `XS_SET_TARGET + 2`: 20 was `XS_RESTRICT`, since removed.
    pub const RESET_WATCHES: u32 = 21;
    pub const DIRECTORY_PART: u32 = 22;
    /// Guaranteed never to be a valid type.
    pub const INVALID: u32 = 0xffff;
}

/// `enum xs_watch_type`: index of the path and the token in an
/// `XS_WATCH_EVENT` payload.
pub const WATCH_PATH: u32 = 0;
pub const WATCH_TOKEN: u32 = 1;

/// `struct xsd_sockmsg`: the header in front of every message, in both
/// directions. Little-endian on x86; the payload of `len` bytes follows.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XsdSockmsg {
    /// `XS_*` ([`msg_type`]).
    pub ty: u32,
    /// Chosen by the client, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside a transaction.
    pub tx_id: u32,
    /// Bytes of payload after the header.
    pub len: u32,
}
assert_layout!(XsdSockmsg, size = 16, ty = 0, req_id = 4, tx_id = 8, len = 12);

/// `struct xenstore_domain_interface`: the store page. Indices are
/// free-running `u32`s masked by [`RING_SIZE`]. The guest produces `req` and
/// consumes `rsp`.
#[repr(C)]
pub struct XenstoreDomainInterface {
    /// Requests to xenstored.
    pub req: [AtomicU8; RING_SIZE],
    /// Replies and watch events.
    pub rsp: [AtomicU8; RING_SIZE],
    pub req_cons: AtomicU32,
    pub req_prod: AtomicU32,
    pub rsp_cons: AtomicU32,
    pub rsp_prod: AtomicU32,
    /// `XENSTORE_SERVER_FEATURE_*` bits.
    pub server_features: AtomicU32,
    /// [`CONNECTED`] or [`RECONNECT`].
    pub connection: AtomicU32,
    /// `ERROR_*`: why the server stopped talking, if it did.
    pub error: AtomicU32,
}
assert_layout!(
    XenstoreDomainInterface,
    size = 2076,
    req = 0,
    rsp = 1024,
    req_cons = 2048,
    req_prod = 2052,
    rsp_cons = 2056,
    rsp_prod = 2060,
    server_features = 2064,
    connection = 2068,
    error = 2072,
);

impl XenstoreDomainInterface {
    /// An empty ring, for host tests that play xenstored.
    pub fn zeroed() -> Self {
        Self {
            req: core::array::from_fn(|_| AtomicU8::new(0)),
            rsp: core::array::from_fn(|_| AtomicU8::new(0)),
            req_cons: AtomicU32::new(0),
            req_prod: AtomicU32::new(0),
            rsp_cons: AtomicU32::new(0),
            rsp_prod: AtomicU32::new(0),
            server_features: AtomicU32::new(0),
            connection: AtomicU32::new(0),
            error: AtomicU32::new(0),
        }
    }
}
