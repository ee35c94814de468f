//! What can go wrong with a block device, in words a caller can act on.

use crate::env::EnvError;
use crate::xenbus::device::XenbusError;
use alloc::string::String;
use core::fmt;
use hypercall::abi::blkif::Operation;

#[derive(Debug, PartialEq)]
pub enum BlkError {
    /// A write, flush or discard on a disk the backend marked read-only.
    ReadOnly,
    /// Bytes `offset..offset + len` are not all on the disk (`size` bytes).
    OutOfRange {
        offset: u64,
        len: u64,
        size: u64,
    },
    /// A sector-level call with an offset or length that is not a whole
    /// number of the disk's sectors.
    Unaligned {
        offset: u64,
        len: u64,
        sector_size: u32,
    },
    /// The backend answered the request with an error status.
    Io {
        op: Operation,
        sector: u64,
        status: i16,
    },
    /// The backend does not offer this operation.
    NotSupported(&'static str),
    /// The backend broke the protocol (bad ring index, bad node value...).
    Protocol(String),
    /// No answer within the time limit.
    Timeout {
        op: Operation,
        waited_ms: u64,
    },
    /// The device was closed (detached) or broken earlier.
    Gone,
    Xenbus(XenbusError),
    /// Grant table, event channel or memory trouble in this domain.
    Env(EnvError),
    /// Too few bounce pages are usable for the request: pages lost to a
    /// misbehaving backend (never reused) leave `usable` of `capacity`.
    PoolExhausted {
        usable: usize,
        capacity: usize,
    },
}

impl From<EnvError> for BlkError {
    fn from(e: EnvError) -> Self {
        BlkError::Env(e)
    }
}

impl From<XenbusError> for BlkError {
    fn from(e: XenbusError) -> Self {
        BlkError::Xenbus(e)
    }
}

impl From<xenstore_client::Error> for BlkError {
    fn from(e: xenstore_client::Error) -> Self {
        BlkError::Xenbus(XenbusError::Store(e))
    }
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlkError::ReadOnly => f.write_str("the disk is read-only: writes are refused"),
            BlkError::OutOfRange { offset, len, size } => {
                write!(f, "bytes {offset}..{} are beyond the disk's {size} bytes", offset + len)
            }
            BlkError::Unaligned { offset, len, sector_size } => write!(
                f,
                "offset {offset} / length {len} are not multiples of the {sector_size}-byte sector"
            ),
            BlkError::Io { op, sector, status } => {
                write!(f, "backend failed {op} at sector {sector} (status {status})")
            }
            BlkError::NotSupported(what) => write!(f, "the backend does not offer {what}"),
            BlkError::Protocol(what) => write!(f, "backend protocol violation: {what}"),
            BlkError::Timeout { op, waited_ms } => {
                write!(f, "{op} unanswered after {waited_ms} ms")
            }
            BlkError::Gone => f.write_str("the device is closed"),
            BlkError::Xenbus(e) => write!(f, "{e}"),
            BlkError::Env(e) => e.fmt(f),
            BlkError::PoolExhausted { usable, capacity } => {
                write!(f, "bounce pool exhausted ({usable} of {capacity} pages usable)")
            }
        }
    }
}
