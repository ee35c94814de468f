//! What a PVH guest gets instead of `start_info` and the PV MMU:
//! the start-of-day structure (`xen/include/public/arch-x86/hvm/start_info.h`),
//! HVM parameters (`xen/include/public/hvm/params.h`, `hvm/hvm_op.h`) and
//! `XENMEM_add_to_physmap` (`xen/include/public/memory.h`).

use super::assert_layout;

/// `XEN_HVM_START_MAGIC_VALUE`: "xEn3" with the 0x80 bit of the "E" set.
pub const START_MAGIC_VALUE: u32 = 0x336e_c578;

/// `struct hvm_start_info`: Xen leaves its physical address in `ebx` at the
/// `XEN_ELFNOTE_PHYS32_ENTRY` entry point. All addresses are guest-physical.
/// The fields after `rsdp_paddr` exist from version 1 on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmStartInfo {
    /// [`START_MAGIC_VALUE`].
    pub magic: u32,
    pub version: u32,
    /// `SIF_*` flags, as in the PV `start_info`.
    pub flags: u32,
    pub nr_modules: u32,
    /// Physical address of `nr_modules` [`HvmModlistEntry`]s.
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line (0: none).
    pub cmdline_paddr: u64,
    pub rsdp_paddr: u64,
    /// Physical address of `memmap_entries` [`HvmMemmapTableEntry`]s (v1).
    pub memmap_paddr: u64,
    pub memmap_entries: u32,
    pub reserved: u32,
}
assert_layout!(
    HvmStartInfo,
    size = 56,
    magic = 0,
    version = 4,
    flags = 8,
    nr_modules = 12,
    modlist_paddr = 16,
    cmdline_paddr = 24,
    rsdp_paddr = 32,
    memmap_paddr = 40,
    memmap_entries = 48,
    reserved = 52,
);

/// `struct hvm_modlist_entry`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmModlistEntry {
    pub paddr: u64,
    pub size: u64,
    pub cmdline_paddr: u64,
    pub reserved: u64,
}
assert_layout!(HvmModlistEntry, size = 32, paddr = 0, size = 8, cmdline_paddr = 16, reserved = 24);

/// `struct hvm_memmap_table_entry`: one range of the guest-physical map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmMemmapTableEntry {
    pub addr: u64,
    pub size: u64,
    /// `XEN_HVM_MEMMAP_TYPE_*` ([`memmap_type`]).
    pub type_: u32,
    pub reserved: u32,
}
assert_layout!(HvmMemmapTableEntry, size = 24, addr = 0, size = 8, type_ = 16, reserved = 20);

/// `XEN_HVM_MEMMAP_TYPE_*` (the ACPI address range types).
pub mod memmap_type {
    pub const RAM: u32 = 1;
    pub const RESERVED: u32 = 2;
    pub const ACPI: u32 = 3;
    pub const NVS: u32 = 4;
    pub const UNUSABLE: u32 = 5;
    pub const DISABLED: u32 = 6;
    pub const PMEM: u32 = 7;
}

/// `HVMOP_*` sub-operations of `hvm_op` (`hvm/hvm_op.h`).
pub mod hvmop {
    pub const SET_PARAM: u32 = 0;
    pub const GET_PARAM: u32 = 1;
}

/// `struct xen_hvm_param`: the argument of `HVMOP_{set,get}_param`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenHvmParam {
    /// `domid_t`: `DOMID_SELF` for our own parameters.
    pub domid: u16,
    pub pad: u16,
    /// `HVM_PARAM_*` ([`param`]).
    pub index: u32,
    pub value: u64,
}
assert_layout!(XenHvmParam, size = 16, domid = 0, pad = 2, index = 4, value = 8);

/// `HVM_PARAM_*` indices (`hvm/params.h`).
pub mod param {
    /// How Xen raises the event upcall; see [`callback_vector`](super::callback_vector).
    pub const CALLBACK_IRQ: u32 = 0;
    /// The XenStore ring's guest frame number.
    pub const STORE_PFN: u32 = 1;
    pub const STORE_EVTCHN: u32 = 2;
    /// The console ring's guest frame number.
    pub const CONSOLE_PFN: u32 = 17;
    pub const CONSOLE_EVTCHN: u32 = 18;
}

/// `HVM_PARAM_CALLBACK_TYPE_VECTOR`, in the top byte of the parameter.
pub const CALLBACK_TYPE_VECTOR: u64 = 2;
/// `HVM_PARAM_CALLBACK_IRQ_TYPE_MASK`.
pub const CALLBACK_IRQ_TYPE_MASK: u64 = 0xFF00_0000_0000_0000;

/// The `HVM_PARAM_CALLBACK_IRQ` value asking Xen to inject `vector` on the
/// vCPU whenever `evtchn_upcall_pending` is set (no LAPIC EOI needed).
pub const fn callback_vector(vector: u8) -> u64 {
    (CALLBACK_TYPE_VECTOR << 56) | vector as u64
}

/// `XENMAPSPACE_*`: what `XENMEM_add_to_physmap` puts at a guest frame.
pub mod mapspace {
    pub const SHARED_INFO: u32 = 0;
    pub const GRANT_TABLE: u32 = 1;
}

/// `XENMAPIDX_grant_table_status`: with `GRANT_TABLE`, the status frames (v2).
pub const MAPIDX_GRANT_TABLE_STATUS: u64 = 0x8000_0000;

/// `struct xen_add_to_physmap` (`XENMEM_add_to_physmap`, memory op 7).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XenAddToPhysmap {
    pub domid: u16,
    /// Pages for `XENMAPSPACE_gmfn_range` only.
    pub size: u16,
    /// `XENMAPSPACE_*` ([`mapspace`]).
    pub space: u32,
    /// Index into the space (grant frame number; 0 for shared info).
    pub idx: u64,
    /// The guest frame where the page appears.
    pub gpfn: u64,
}
assert_layout!(XenAddToPhysmap, size = 24, domid = 0, size = 2, space = 4, idx = 8, gpfn = 16);

/// `XENMEM_add_to_physmap`.
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;

/// CPUID leaves of the hypervisor range (`arch-x86/cpuid.h`): Xen's base
/// leaf answers "XenVMMXenVMM"; `base + 2` gives the hypercall-page MSR.
pub mod cpuid {
    pub const FIRST_BASE: u32 = 0x4000_0000;
    pub const LAST_BASE: u32 = 0x4001_0000;
    pub const BASE_STEP: u32 = 0x100;
    /// ebx, ecx, edx of the base leaf.
    pub const SIGNATURE: [u32; 3] = [0x566e_6558, 0x6558_4d4d, 0x4d4d_566e];
}
