//! `memory_op` arguments (`xen/include/public/memory.h`).

use super::assert_layout;

/// `XENMEM_*` commands.
pub mod cmd {
    pub const INCREASE_RESERVATION: u32 = 0;
    pub const DECREASE_RESERVATION: u32 = 1;
    pub const CURRENT_RESERVATION: u32 = 3;
    pub const MAXIMUM_RESERVATION: u32 = 4;
    pub const POPULATE_PHYSMAP: u32 = 6;
}

/// The P2M value of a pfn with no machine frame behind it (`INVALID_P2M_ENTRY`
/// in guest kernels: all ones).
pub const INVALID_P2M_ENTRY: u64 = !0;

/// `struct xen_memory_reservation` (interface version >= 0x00030209, so the
/// fourth field is `mem_flags`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenMemoryReservation {
    /// Guest handle: virtual address of an array of `xen_pfn_t`. In:
    /// frames to free (decrease) or pfns to fill (populate); out: the
    /// machine frames allocated (populate, increase).
    pub extent_start: u64,
    /// Number of extents.
    pub nr_extents: u64,
    /// Each extent is `2^extent_order` pages.
    pub extent_order: u32,
    /// `XENMEMF_*` flags (address bits, NUMA node).
    pub mem_flags: u32,
    /// `domid_t`: only `DOMID_SELF` for an unprivileged domain.
    pub domid: u16,
}
assert_layout!(
    XenMemoryReservation,
    size = 32,
    extent_start = 0,
    nr_extents = 8,
    extent_order = 16,
    mem_flags = 20,
    domid = 24,
);
