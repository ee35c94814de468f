//! Address-space and page-table facts of a 64-bit PV guest
//! (`xen/include/public/xen.h`, `xen/include/public/arch-x86/xen-x86_64.h`).

/// Start of the range Xen reserves in every 64-bit PV address space.
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End of Xen's reserved range.
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// Xen's read-only machine-to-phys table (`machine_to_phys_mapping`): one
/// `u64` pfn per machine frame.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End of the machine-to-phys table.
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
/// Number of entries in the machine-to-phys table.
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> 3;

/// `domid_t` of the calling domain in hypercall arguments.
pub const DOMID_SELF: u16 = 0x7FF0;

/// `update_va_mapping` flags (`UVMF_*`).
pub mod uvmf {
    pub const NONE: u64 = 0;
    pub const TLB_FLUSH: u64 = 1;
    pub const INVLPG: u64 = 2;
    pub const LOCAL: u64 = 0;
    pub const ALL: u64 = 4;
}

/// The flags argument of `update_va_mapping` (a [`uvmf`] flush and its
/// scope), typed so that it cannot be swapped with the PTE, which is a
/// `u64` too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Uvmf(u64);

impl Uvmf {
    /// No flush.
    pub const NONE: Uvmf = Uvmf(uvmf::NONE);
    /// Flush the whole TLB of this vCPU.
    pub const TLB_FLUSH: Uvmf = Uvmf(uvmf::TLB_FLUSH);
    /// Flush the one page of this vCPU.
    pub const INVLPG: Uvmf = Uvmf(uvmf::INVLPG);

    /// The same flush on every vCPU of the domain (`UVMF_ALL`).
    pub const fn all_vcpus(self) -> Uvmf {
        Uvmf(self.0 | uvmf::ALL)
    }

    /// The word the hypercall takes.
    pub const fn bits(self) -> u64 {
        self.0
    }
}

/// x86-64 page-table entry bits a PV guest uses.
pub mod pte {
    pub const PRESENT: u64 = 1 << 0;
    pub const RW: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const ACCESSED: u64 = 1 << 5;
    pub const DIRTY: u64 = 1 << 6;
    /// Ignored by the CPU and left to the guest: Xen accepts it in a PV
    /// guest's entries (`_PAGE_AVAIL0`, outside its L1 disallow mask).
    pub const AVAIL0: u64 = 1 << 9;
    pub const NX: u64 = 1 << 63;
    /// Bits 12..52 hold the machine frame number.
    pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
}

/// `console_io` commands (`CONSOLEIO_*`).
pub mod consoleio {
    pub const WRITE: u32 = 0;
    pub const READ: u32 = 1;
}

/// `memory_op` commands used so far (`xen/include/public/memory.h`).
pub mod xenmem {
    pub const CURRENT_RESERVATION: u32 = 3;
    pub const MAXIMUM_RESERVATION: u32 = 4;
}
