//! Grant tables (`xen/include/public/grant_table.h`): how a domain lets
//! another map or copy one of its pages.
//!
//! The table itself is memory Xen shares with the guest and reads and
//! writes concurrently (it sets `GTF_reading`/`GTF_writing` while another
//! domain has the page mapped), so its entries are atomics. The operation
//! structs (`gnttab_*`) are ordinary arguments of `grant_table_op`.
//!
//! Interface version 0x00040e00 (Xen 4.17): v2 entries and the
//! `frame_list` handle of `gnttab_setup_table` as `xen_pfn_t` apply.

use super::assert_layout;
use core::fmt;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64};

/// `grant_ref_t`: an index into a domain's grant table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct GrantRef(pub u32);

impl fmt::Debug for GrantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GrantRef({})", self.0)
    }
}

impl fmt::Display for GrantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `grant_handle_t`: what Xen returns for a mapping, to unmap it by.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
#[repr(transparent)]
pub struct GrantHandle(pub u32);

/// `GNTTABOP_*`: the commands of `grant_table_op`.
pub mod op {
    pub const MAP_GRANT_REF: u32 = 0;
    pub const UNMAP_GRANT_REF: u32 = 1;
    pub const SETUP_TABLE: u32 = 2;
    pub const DUMP_TABLE: u32 = 3;
    pub const TRANSFER: u32 = 4;
    pub const COPY: u32 = 5;
    pub const QUERY_SIZE: u32 = 6;
    pub const UNMAP_AND_REPLACE: u32 = 7;
    pub const SET_VERSION: u32 = 8;
    pub const GET_STATUS_FRAMES: u32 = 9;
    pub const GET_VERSION: u32 = 10;
    pub const SWAP_GRANT_REF: u32 = 11;
    pub const CACHE_FLUSH: u32 = 12;
}

/// `GNTTAB_NR_RESERVED_ENTRIES`: entries 0..8 belong to the toolstack
/// (0: console, 1: xenstore), which writes them before the guest runs.
pub const NR_RESERVED_ENTRIES: u32 = 8;
/// `GNTTAB_RESERVED_CONSOLE`.
pub const RESERVED_CONSOLE: u32 = 0;
/// `GNTTAB_RESERVED_XENSTORE`.
pub const RESERVED_XENSTORE: u32 = 1;

/// `GTF_*`: the flags word of an entry. `[GST]` bits are the granting
/// guest's, `[XEN]` bits Xen's.
pub mod gtf {
    pub const INVALID: u16 = 0;
    /// The entry lets `domid` map or copy `frame`.
    pub const PERMIT_ACCESS: u16 = 1;
    pub const ACCEPT_TRANSFER: u16 = 2;
    pub const TRANSITIVE: u16 = 3;
    pub const TYPE_MASK: u16 = 3;
    /// `domid` may only read the frame.
    pub const READONLY: u16 = 1 << 2;
    /// `[XEN]` `domid` has the frame mapped (or is copying from it).
    pub const READING: u16 = 1 << 3;
    /// `[XEN]` `domid` has the frame mapped writable (or is copying to it).
    pub const WRITING: u16 = 1 << 4;
    pub const PWT: u16 = 1 << 5;
    pub const PCD: u16 = 1 << 6;
    pub const PAT: u16 = 1 << 7;
    /// v2 only: the grant covers `[page_off, page_off + length)`.
    pub const SUB_PAGE: u16 = 1 << 8;
    pub const TRANSFER_COMMITTED: u16 = 1 << 2;
    pub const TRANSFER_COMPLETED: u16 = 1 << 3;
}

/// `GNTMAP_*`: flags of `gnttab_map_grant_ref`.
pub mod gntmap {
    pub const DEVICE_MAP: u32 = 1 << 0;
    /// Map at `host_addr`, a virtual address of the caller.
    pub const HOST_MAP: u32 = 1 << 1;
    pub const READONLY: u32 = 1 << 2;
    pub const APPLICATION_MAP: u32 = 1 << 3;
    /// `host_addr` is the machine address of the PTE to write.
    pub const CONTAINS_PTE: u32 = 1 << 4;
}

/// `GNTCOPY_*`: which side of a `gnttab_copy` is a grant reference.
pub mod gntcopy {
    pub const SOURCE_GREF: u16 = 1 << 0;
    pub const DEST_GREF: u16 = 1 << 1;
}

/// `GNTST_*`: the per-operation status Xen writes back.
pub mod gntst {
    pub const OKAY: i16 = 0;
    pub const GENERAL_ERROR: i16 = -1;
    pub const BAD_DOMAIN: i16 = -2;
    pub const BAD_GNTREF: i16 = -3;
    pub const BAD_HANDLE: i16 = -4;
    pub const BAD_VIRT_ADDR: i16 = -5;
    pub const BAD_DEV_ADDR: i16 = -6;
    pub const NO_DEVICE_SPACE: i16 = -7;
    pub const PERMISSION_DENIED: i16 = -8;
    pub const BAD_PAGE: i16 = -9;
    pub const BAD_COPY_ARG: i16 = -10;
    pub const ADDRESS_TOO_BIG: i16 = -11;
    pub const EAGAIN: i16 = -12;
    pub const NO_SPACE: i16 = -13;
}

/// A `GNTST_*` value other than okay, with `GNTTABOP_error_msgs`' words.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct GntStatus(pub i16);

impl GntStatus {
    /// `Ok` for `GNTST_okay`, the status otherwise.
    pub fn check(status: i16) -> Result<(), GntStatus> {
        if status == gntst::OKAY {
            Ok(())
        } else {
            Err(GntStatus(status))
        }
    }

    pub fn description(self) -> &'static str {
        const MSGS: [&str; 14] = [
            "okay",
            "undefined error",
            "unrecognised domain id",
            "invalid grant reference",
            "invalid mapping handle",
            "invalid virtual address",
            "invalid device address",
            "no spare translation slot in the I/O MMU",
            "permission denied",
            "bad page",
            "copy arguments cross page boundary",
            "page address size too large",
            "operation not done; try again",
            "out of space",
        ];
        MSGS.get(self.0.unsigned_abs() as usize).copied().unwrap_or("unknown grant status")
    }
}

impl fmt::Display for GntStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GNTST {} ({})", self.0, self.description())
    }
}

/// `struct grant_entry_v1`. Write order (header comment): `domid`, `frame`,
/// a write barrier, then `flags`; revoke with a compare-and-swap of
/// `flags` to 0 that only succeeds while neither `GTF_reading` nor
/// `GTF_writing` is set.
#[repr(C)]
#[derive(Debug, Default)]
pub struct GrantEntryV1 {
    /// `GTF_*`; Xen sets the reading/writing bits.
    pub flags: AtomicU16,
    /// The domain being granted access.
    pub domid: AtomicU16,
    /// The frame (an MFN for a PV guest).
    pub frame: AtomicU32,
}
assert_layout!(GrantEntryV1, size = 8, flags = 0, domid = 2, frame = 4);

/// `struct grant_entry_header`: the first word of every v2 entry.
#[repr(C)]
#[derive(Debug, Default)]
pub struct GrantEntryHeader {
    pub flags: AtomicU16,
    pub domid: AtomicU16,
}
assert_layout!(GrantEntryHeader, size = 4, flags = 0, domid = 2);

/// `union grant_entry_v2`, seen through its `full_page` member (the only
/// one this guest writes): header, 32 bits of padding, a 64-bit frame. In
/// v2 Xen keeps `GTF_reading`/`GTF_writing` in a separate status array
/// ([`GrantStatus`]), so `hdr.flags` is the guest's alone.
#[repr(C)]
#[derive(Debug, Default)]
pub struct GrantEntryV2 {
    pub hdr: GrantEntryHeader,
    /// `full_page.pad0` (`sub_page.page_off`/`length`, `transitive.trans_domid`).
    pub pad0: AtomicU32,
    /// `full_page.frame` (`transitive.gref` in its low half).
    pub frame: AtomicU64,
}
assert_layout!(GrantEntryV2, size = 16, hdr = 0, pad0 = 4, frame = 8);

/// `grant_status_t`: v2's per-entry `GTF_reading`/`GTF_writing`, written
/// by Xen in the status frames.
pub type GrantStatus = AtomicU16;

/// v1 entries in a 4 KiB frame.
pub const V1_PER_FRAME: u32 = 4096 / 8;
/// v2 entries in a 4 KiB frame.
pub const V2_PER_FRAME: u32 = 4096 / 16;
/// v2 status words in a 4 KiB frame.
pub const STATUS_PER_FRAME: u32 = 4096 / 2;

/// `struct gnttab_setup_table`: grow the table to `nr_frames` and list its
/// frames (for a PV guest, machine frames it maps itself).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabSetupTable {
    pub dom: u16,
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Guest handle: address of `nr_frames` `xen_pfn_t` Xen fills.
    pub frame_list: u64,
}
assert_layout!(GnttabSetupTable, size = 24, dom = 0, nr_frames = 4, status = 8, frame_list = 16);

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabQuerySize {
    pub dom: u16,
    /// OUT: frames the table has now.
    pub nr_frames: u32,
    /// OUT: the most it may grow to.
    pub max_nr_frames: u32,
    pub status: i16,
}
assert_layout!(GnttabQuerySize, size = 16, dom = 0, nr_frames = 4, max_nr_frames = 8, status = 12);

/// `struct gnttab_map_grant_ref`: map `dom`'s grant `ref_` (at `host_addr`
/// with `GNTMAP_host_map`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabMapGrantRef {
    pub host_addr: u64,
    /// `GNTMAP_*`.
    pub flags: u32,
    /// `ref`.
    pub ref_: u32,
    pub dom: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: the handle to unmap with.
    pub handle: u32,
    /// OUT: the bus address, for `GNTMAP_device_map`.
    pub dev_bus_addr: u64,
}
assert_layout!(
    GnttabMapGrantRef,
    size = 32,
    host_addr = 0,
    flags = 8,
    ref_ = 12,
    dom = 16,
    status = 18,
    handle = 20,
    dev_bus_addr = 24
);

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabUnmapGrantRef {
    pub host_addr: u64,
    pub dev_bus_addr: u64,
    pub handle: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
}
assert_layout!(
    GnttabUnmapGrantRef,
    size = 24,
    host_addr = 0,
    dev_bus_addr = 8,
    handle = 16,
    status = 20
);

/// `struct gnttab_copy_ptr`: one side of a copy. `u` is the union
/// `{ grant_ref_t ref; xen_pfn_t gmfn; }` (which, per `flags`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopyPtr {
    pub u: u64,
    pub domid: u16,
    pub offset: u16,
}
assert_layout!(GnttabCopyPtr, size = 16, u = 0, domid = 8, offset = 10);

/// `struct gnttab_copy`: copy `len` bytes; neither side may cross its page.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopy {
    pub source: GnttabCopyPtr,
    pub dest: GnttabCopyPtr,
    pub len: u16,
    /// `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
}
assert_layout!(GnttabCopy, size = 40, source = 0, dest = 16, len = 32, flags = 34, status = 36);

/// The grant table interface version (the entry layout in force):
/// `struct grant_entry_v1` or `union grant_entry_v2` with status frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// The number `gnttab_set_version` and `gnttab_get_version` carry.
    pub const fn number(self) -> u32 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
        }
    }

    /// The version Xen names by `n`, if it is one.
    pub const fn from_number(n: u32) -> Option<Version> {
        match n {
            1 => Some(Version::V1),
            2 => Some(Version::V2),
            _ => None,
        }
    }

    /// Entries of this layout in one 4 KiB frame.
    pub const fn per_frame(self) -> u32 {
        match self {
            Version::V1 => V1_PER_FRAME,
            Version::V2 => V2_PER_FRAME,
        }
    }
}

/// `struct gnttab_set_version`: in, the version wanted; out, the version in force.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabSetVersion {
    pub version: u32,
}
assert_layout!(GnttabSetVersion, size = 4, version = 0);

/// `struct gnttab_get_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabGetVersion {
    pub dom: u16,
    pub pad: u16,
    /// OUT.
    pub version: u32,
}
assert_layout!(GnttabGetVersion, size = 8, dom = 0, pad = 2, version = 4);

/// `struct gnttab_get_status_frames`: the v2 status frames (machine frames
/// for a PV guest).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabGetStatusFrames {
    pub nr_frames: u32,
    pub dom: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Guest handle: address of `nr_frames` `uint64_t` Xen fills.
    pub frame_list: u64,
}
assert_layout!(
    GnttabGetStatusFrames,
    size = 16,
    nr_frames = 0,
    dom = 4,
    status = 6,
    frame_list = 8
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_through_their_numbers() {
        for v in [Version::V1, Version::V2] {
            assert_eq!(Version::from_number(v.number()), Some(v));
        }
        assert_eq!(Version::from_number(0), None);
        assert_eq!(Version::from_number(3), None);
        assert_eq!(Version::V1.per_frame(), 512);
        assert_eq!(Version::V2.per_frame(), 256);
    }
}
