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

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`: segments inline in a [`Request`].
pub const MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`.
pub const MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Segments one indirect page holds (`PAGE_SIZE / sizeof(segment)`).
pub const SEGMENTS_PER_INDIRECT_PAGE: usize = 4096 / core::mem::size_of::<Segment>();
/// `BLKIF_DISCARD_SECURE`.
pub const DISCARD_SECURE: u8 = 1;

/// `BLKIF_RSP_OKAY`.
pub const RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR` (the backend's `-EIO`).
pub const RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`: the backend does not do this operation.
pub const RSP_EOPNOTSUPP: i16 = -2;

/// `VDISK_CDROM` in the backend's `info`.
pub const VDISK_CDROM: u32 = 0x1;
/// `VDISK_REMOVABLE`.
pub const VDISK_REMOVABLE: u32 = 0x2;
/// `VDISK_READONLY`.
pub const VDISK_READONLY: u32 = 0x4;

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
/// [`MAX_SEGMENTS_PER_REQUEST`] inline segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Request {
    pub operation: u8,
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

/// `struct blkif_request_discard`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RequestDiscard {
    pub operation: u8,
    /// [`DISCARD_SECURE`] or zero.
    pub flag: u8,
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

/// `struct blkif_request_indirect` (x86_64 layout: no `pad`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RequestIndirect {
    pub operation: u8,
    /// [`OP_READ`] or [`OP_WRITE`].
    pub indirect_op: u8,
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

/// `struct blkif_response`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Response {
    pub id: u64,
    pub operation: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
}
assert_layout!(Response, size = 16, id = 0, operation = 8, status = 10);

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
