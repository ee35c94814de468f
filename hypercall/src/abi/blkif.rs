//! Xen's block device protocol (`xen/include/public/io/blkif.h`): the
//! request and response entries of the shared ring, segments, indirect
//! and discard requests, and the constants both ends agree on.
//!
//! These are plain values: a frontend builds one, then copies it into a
//! ring slot word by word (the slot itself is only ever seen as atomics),
//! and copies a response out of its slot once before looking at it.

use super::assert_layout;
use super::grant_table::GrantRef;

/// `BLKIF_OP_READ`: read sectors into the segments' pages.
pub const OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`: write the segments' pages to the sectors.
pub const OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER` (`feature-barrier`): earlier writes complete
/// and are durable before this one; this one is durable when answered.
pub const OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE` (`feature-flush-cache`): everything
/// completed so far is durable when answered; may carry a write.
pub const OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_DISCARD` (`feature-discard`), a [`RequestDiscard`].
pub const OP_DISCARD: u8 = 5;
/// `BLKIF_OP_INDIRECT` (`feature-max-indirect-segments`), a
/// [`RequestIndirect`] whose segments sit in granted pages.
pub const OP_INDIRECT: u8 = 6;

/// A blkif operation, typed: what a request asks and what its response
/// echoes. The `operation` bytes of the ring structs stay `u8` (the ABI);
/// frontends build them from this and read them back with
/// [`Operation::from_u8`], so an unknown byte is an error, not a guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Operation {
    Read = OP_READ,
    Write = OP_WRITE,
    WriteBarrier = OP_WRITE_BARRIER,
    FlushDiskcache = OP_FLUSH_DISKCACHE,
    Discard = OP_DISCARD,
    Indirect = OP_INDIRECT,
}

impl Operation {
    /// The operation byte of `blkif.h`.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The operation a byte names; `None` for a byte `blkif.h` does not
    /// define (or one this frontend never sends: 4 is the retired
    /// `BLKIF_OP_RESERVED_1`).
    pub const fn from_u8(op: u8) -> Option<Operation> {
        Some(match op {
            OP_READ => Operation::Read,
            OP_WRITE => Operation::Write,
            OP_WRITE_BARRIER => Operation::WriteBarrier,
            OP_FLUSH_DISKCACHE => Operation::FlushDiskcache,
            OP_DISCARD => Operation::Discard,
            OP_INDIRECT => Operation::Indirect,
            _ => return None,
        })
    }
}

impl From<Operation> for u8 {
    fn from(op: Operation) -> u8 {
        op.as_u8()
    }
}

impl core::fmt::Display for Operation {
    /// The operation as the backend's feature keys name it.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::WriteBarrier => "barrier",
            Operation::FlushDiskcache => "flush-cache",
            Operation::Discard => "discard",
            Operation::Indirect => "indirect",
        })
    }
}

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`: segments inline in a [`Request`].
pub const MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`.
pub const MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Segments one indirect page holds (`PAGE_SIZE / sizeof(segment)`).
pub const SEGMENTS_PER_INDIRECT_PAGE: usize = 4096 / core::mem::size_of::<Segment>();
bitflags::bitflags! {
    /// The `flag` byte of a [`RequestDiscard`].
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct DiscardFlags: u8 {
        /// `BLKIF_DISCARD_SECURE` (`discard-secure`): the discarded
        /// sectors must read back as zeros.
        const SECURE = 1;
    }
}

/// `BLKIF_RSP_OKAY`.
pub const RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR` (the backend's `-EIO`).
pub const RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`: the backend does not do this operation.
pub const RSP_EOPNOTSUPP: i16 = -2;

bitflags::bitflags! {
    /// The backend's `info` node: `VDISK_*` of `blkif.h`. Bits it does
    /// not define are kept (`from_bits_retain`): a newer backend may set
    /// them, and this frontend ignores them.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct VdiskInfo: u32 {
        /// `VDISK_CDROM`.
        const CDROM = 0x1;
        /// `VDISK_REMOVABLE`.
        const REMOVABLE = 0x2;
        /// `VDISK_READONLY`.
        const READONLY = 0x4;
    }
}

/// The unit of `sector_number`, `first_sect` and `last_sect`: always 512
/// bytes, whatever the disk's `sector-size` (no `feature-large-sector-size`).
pub const SECTOR_BYTES: u64 = 512;

/// `struct blkif_request_segment`: one page of a request and the 512-byte
/// sectors of it that move (`first_sect..=last_sect`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Segment {
    pub gref: GrantRef,
    pub first_sect: u8,
    pub last_sect: u8,
}
assert_layout!(Segment, size = 8, gref = 0, first_sect = 4, last_sect = 5);

/// `struct blkif_request`: a read, write, barrier or flush with up to
/// [`MAX_SEGMENTS_PER_REQUEST`] inline segments. The request structs are
/// built by the frontend, so their operation is typed (one byte,
/// `repr(u8)`); a backend's view decodes the byte with
/// [`Operation::from_u8`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Request {
    pub operation: Operation,
    pub nr_segments: u8,
    /// `blkif_vdev_t`.
    pub handle: u16,
    /// Echoed in the response.
    pub id: u64,
    /// `blkif_sector_t`, 512-byte units.
    pub sector_number: u64,
    pub seg: [Segment; MAX_SEGMENTS_PER_REQUEST],
}
assert_layout!(
    Request,
    size = 112,
    operation = 0,
    nr_segments = 1,
    handle = 2,
    id = 8,
    sector_number = 16,
    seg = 24
);

/// `struct blkif_request_discard` (`operation` is always
/// [`Operation::Discard`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct RequestDiscard {
    pub operation: Operation,
    pub flag: DiscardFlags,
    pub handle: u16,
    pub id: u64,
    pub sector_number: u64,
    pub nr_sectors: u64,
}
assert_layout!(
    RequestDiscard,
    size = 32,
    operation = 0,
    flag = 1,
    handle = 2,
    id = 8,
    sector_number = 16,
    nr_sectors = 24
);

/// `struct blkif_request_indirect` (x86_64 layout: no `pad`;
/// `operation` is always [`Operation::Indirect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct RequestIndirect {
    pub operation: Operation,
    /// [`Operation::Read`] or [`Operation::Write`].
    pub indirect_op: Operation,
    pub nr_segments: u16,
    pub id: u64,
    pub sector_number: u64,
    pub handle: u16,
    pub indirect_grefs: [GrantRef; MAX_INDIRECT_PAGES_PER_REQUEST],
}
assert_layout!(
    RequestIndirect,
    size = 64,
    operation = 0,
    indirect_op = 1,
    nr_segments = 2,
    id = 8,
    sector_number = 16,
    handle = 24,
    indirect_grefs = 28
);

/// `struct blkif_response`. The backend writes it, so `operation` stays
/// the raw byte: [`Response::op`] says which operation it names, if any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Response {
    pub id: u64,
    pub operation: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
}
assert_layout!(Response, size = 16, id = 0, operation = 8, status = 10);

impl Response {
    /// The operation the response echoes; `None` for a byte `blkif.h`
    /// does not define.
    pub const fn op(&self) -> Option<Operation> {
        Operation::from_u8(self.operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip_through_their_byte() {
        for op in [
            Operation::Read,
            Operation::Write,
            Operation::WriteBarrier,
            Operation::FlushDiskcache,
            Operation::Discard,
            Operation::Indirect,
        ] {
            assert_eq!(Operation::from_u8(op.as_u8()), Some(op));
        }
        assert_eq!(Operation::from_u8(4), None);
        assert_eq!(Operation::from_u8(0xff), None);
    }
}
