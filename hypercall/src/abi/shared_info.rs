//! `struct shared_info`, `struct vcpu_info` and `struct vcpu_time_info`
//! (`xen/include/public/xen.h`, `arch-x86/xen.h`).
//!
//! Xen writes these pages at any time, from any physical CPU; every field is
//! an atomic so the guest only ever holds shared references to them.

use super::assert_layout;
use core::sync::atomic::{AtomicI8, AtomicU32, AtomicU64, AtomicU8};

/// `XEN_LEGACY_MAX_VCPUS` on x86.
pub const LEGACY_MAX_VCPUS: usize = 32;
/// Bits in a `xen_ulong_t`: the 2-level event channel word size.
pub const BITS_PER_XEN_ULONG: usize = 64;

/// `struct vcpu_time_info`: the PV clock of one vCPU, guarded by `version`
/// (odd while Xen updates it).
#[repr(C)]
pub struct VcpuTimeInfo {
    pub version: AtomicU32,
    pub pad0: AtomicU32,
    /// TSC at the last update.
    pub tsc_timestamp: AtomicU64,
    /// System time (ns since boot of the host) at the last update.
    pub system_time: AtomicU64,
    /// ns = ((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32.
    pub tsc_to_system_mul: AtomicU32,
    pub tsc_shift: AtomicI8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: AtomicU8,
    pub pad1: [AtomicU8; 2],
}
assert_layout!(
    VcpuTimeInfo,
    size = 32,
    version = 0,
    tsc_timestamp = 8,
    system_time = 16,
    tsc_to_system_mul = 24,
    tsc_shift = 28,
    flags = 29,
);

/// `struct arch_vcpu_info` (x86).
#[repr(C)]
pub struct ArchVcpuInfo {
    /// The faulting address of the last page fault.
    pub cr2: AtomicU64,
    pub pad: AtomicU64,
}
assert_layout!(ArchVcpuInfo, size = 16, cr2 = 0);

/// `struct vcpu_info`: per-vCPU event and time state.
#[repr(C)]
pub struct VcpuInfo {
    /// Set by Xen when an event is pending for this vCPU.
    pub evtchn_upcall_pending: AtomicU8,
    /// The PV "interrupt flag": non-zero masks upcalls.
    pub evtchn_upcall_mask: AtomicU8,
    _pad: [AtomicU8; 6],
    /// 2-level ABI: which words of `evtchn_pending` to scan.
    pub evtchn_pending_sel: AtomicU64,
    pub arch: ArchVcpuInfo,
    pub time: VcpuTimeInfo,
}
assert_layout!(
    VcpuInfo,
    size = 64,
    evtchn_upcall_pending = 0,
    evtchn_upcall_mask = 1,
    evtchn_pending_sel = 8,
    arch = 16,
    time = 32,
);

/// `struct arch_shared_info` (x86-64).
#[repr(C)]
pub struct ArchSharedInfo {
    pub max_pfn: AtomicU64,
    pub pfn_to_mfn_frame_list_list: AtomicU64,
    pub nmi_reason: AtomicU64,
    pub p2m_cr3: AtomicU64,
    pub p2m_vaddr: AtomicU64,
    pub p2m_generation: AtomicU64,
}
assert_layout!(ArchSharedInfo, size = 48, max_pfn = 0, p2m_generation = 40);

/// `struct shared_info`.
#[repr(C)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; LEGACY_MAX_VCPUS],
    /// 2-level ABI pending bitmap, one bit per port.
    pub evtchn_pending: [AtomicU64; BITS_PER_XEN_ULONG],
    /// 2-level ABI mask bitmap, one bit per port.
    pub evtchn_mask: [AtomicU64; BITS_PER_XEN_ULONG],
    /// Wall clock at system time 0, guarded by `wc_version` (odd while updated).
    pub wc_version: AtomicU32,
    pub wc_sec: AtomicU32,
    pub wc_nsec: AtomicU32,
    pub wc_sec_hi: AtomicU32,
    pub arch: ArchSharedInfo,
}
assert_layout!(
    SharedInfo,
    size = 3136,
    vcpu_info = 0,
    evtchn_pending = 2048,
    evtchn_mask = 2560,
    wc_version = 3072,
    wc_sec = 3076,
    wc_nsec = 3080,
    wc_sec_hi = 3084,
    arch = 3088,
);

impl SharedInfo {
    /// A zeroed page, for host tests that play Xen's part.
    pub fn zeroed() -> Self {
        // Every field is an atomic integer, for which all-zero bytes are valid.
        Self {
            vcpu_info: core::array::from_fn(|_| VcpuInfo::zeroed()),
            evtchn_pending: core::array::from_fn(|_| AtomicU64::new(0)),
            evtchn_mask: core::array::from_fn(|_| AtomicU64::new(0)),
            wc_version: AtomicU32::new(0),
            wc_sec: AtomicU32::new(0),
            wc_nsec: AtomicU32::new(0),
            wc_sec_hi: AtomicU32::new(0),
            arch: ArchSharedInfo {
                max_pfn: AtomicU64::new(0),
                pfn_to_mfn_frame_list_list: AtomicU64::new(0),
                nmi_reason: AtomicU64::new(0),
                p2m_cr3: AtomicU64::new(0),
                p2m_vaddr: AtomicU64::new(0),
                p2m_generation: AtomicU64::new(0),
            },
        }
    }
}

impl VcpuInfo {
    /// A zeroed `vcpu_info`, for host tests.
    pub fn zeroed() -> Self {
        Self {
            evtchn_upcall_pending: AtomicU8::new(0),
            evtchn_upcall_mask: AtomicU8::new(0),
            _pad: core::array::from_fn(|_| AtomicU8::new(0)),
            evtchn_pending_sel: AtomicU64::new(0),
            arch: ArchVcpuInfo { cr2: AtomicU64::new(0), pad: AtomicU64::new(0) },
            time: VcpuTimeInfo {
                version: AtomicU32::new(0),
                pad0: AtomicU32::new(0),
                tsc_timestamp: AtomicU64::new(0),
                system_time: AtomicU64::new(0),
                tsc_to_system_mul: AtomicU32::new(0),
                tsc_shift: AtomicI8::new(0),
                flags: AtomicU8::new(0),
                pad1: core::array::from_fn(|_| AtomicU8::new(0)),
            },
        }
    }
}
