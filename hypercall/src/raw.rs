//! The hypercall instruction sequence.
//!
//! Xen fills the 4 KiB *hypercall page* at domain build time (the ELF note
//! `XEN_ELFNOTE_HYPERCALL_PAGE` names it); entry `N` at offset `N * 32` is the
//! right instruction sequence for this CPU (`syscall` for a 64-bit PV guest).
//! Arguments go in `rdi, rsi, rdx, r10, r8` and the result comes back in `rax`
//! (`xen/include/public/arch-x86/xen-x86_64.h`). `syscall` clobbers `rcx` and
//! `r11`, and debug builds of Xen scribble over argument registers, so every
//! argument register is treated as clobbered.

use core::arch::{asm, global_asm};

// The page itself: page-aligned, inside the loaded image, filled by Xen.
// It lives in `.bss` (the image's memory, not its file: issue 17's size
// goal): a PV domain builder zeroes `.bss` when it loads the ELF and fills
// this page afterwards (`XEN_ELFNOTE_HYPERCALL_PAGE`; libxenguest's
// `xc_dom_boot_image`, after the image is loaded), and a PVH guest asks
// for it at boot (`init_hypercall_page`). The self-test's
// `hypercall.page_filled` checks the stubs are there.
// As `.text` it cost 8 KiB of file: the page's own 4 KiB and the padding
// between the entry stub and the page boundary. Nothing maps `.bss`
// non-executable, neither Xen's PV page tables nor PVH's own.
global_asm!(
    ".pushsection .bss.hypercall_page, \"aw\", @nobits",
    ".balign 4096",
    ".globl hypercall_page",
    "hypercall_page:",
    ".skip 4096",
    ".popsection",
);

/// Hypercall numbers (`xen/include/public/xen.h`, `__HYPERVISOR_*`).
pub mod nr {
    pub const SET_TRAP_TABLE: u32 = 0;
    pub const MMU_UPDATE: u32 = 1;
    pub const SET_GDT: u32 = 2;
    pub const STACK_SWITCH: u32 = 3;
    pub const SET_CALLBACKS: u32 = 4;
    pub const FPU_TASKSWITCH: u32 = 5;
    pub const PLATFORM_OP: u32 = 7;
    pub const MEMORY_OP: u32 = 12;
    pub const MULTICALL: u32 = 13;
    pub const UPDATE_VA_MAPPING: u32 = 14;
    pub const SET_TIMER_OP: u32 = 15;
    pub const XEN_VERSION: u32 = 17;
    pub const CONSOLE_IO: u32 = 18;
    pub const GRANT_TABLE_OP: u32 = 20;
    pub const VM_ASSIST: u32 = 21;
    pub const IRET: u32 = 23;
    pub const VCPU_OP: u32 = 24;
    pub const SET_SEGMENT_BASE: u32 = 25;
    pub const MMUEXT_OP: u32 = 26;
    pub const NMI_OP: u32 = 28;
    pub const SCHED_OP: u32 = 29;
    pub const CALLBACK_OP: u32 = 30;
    pub const EVENT_CHANNEL_OP: u32 = 32;
    pub const PHYSDEV_OP: u32 = 33;
    pub const HVM_OP: u32 = 34;
    /// One past the last entry of the hypercall page (4096 / 32).
    pub const PAGE_ENTRIES: u32 = 128;
}

/// Issues hypercall `NR` with up to five arguments and returns `rax`.
///
/// # Safety
/// The arguments must be valid for hypercall `NR`: pointers must point to
/// live memory of the layout Xen expects for the duration of the call, and
/// the operation must not break the guest's own invariants (a hypercall can
/// unmap memory, end the domain or change page tables).
///
/// With tracing on ([`crate::trace`], the kernel's `trace=hypercalls`) the
/// call is recorded and handed to the trace hook; off, that costs one
/// relaxed load and a branch not taken.
#[inline(always)]
pub unsafe fn hypercall<const NR: u32>(a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    if crate::trace::enabled() {
        // SAFETY: the caller's guarantee, passed on.
        return unsafe { crate::trace::traced::<NR>(a1, a2, a3, a4, a5) };
    }
    // SAFETY: the caller's guarantee, passed on.
    unsafe { hypercall_untraced::<NR>(a1, a2, a3, a4, a5) }
}

/// [`hypercall`] without the trace check: the instruction sequence itself.
///
/// # Safety
/// As for [`hypercall`].
#[inline(always)]
pub(crate) unsafe fn hypercall_untraced<const NR: u32>(
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> i64 {
    const { assert!(NR < nr::PAGE_ENTRIES) };
    let ret: i64;
    // SAFETY: the caller guarantees the arguments are valid for hypercall
    // NR. The call target is inside the hypercall page Xen filled; it returns
    // with `ret`, having clobbered only the registers declared here.
    unsafe {
        asm!(
            "call hypercall_page + {off}",
            off = const NR * 32,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// The address of the hypercall page (for checks and the boot banner).
pub fn hypercall_page_addr() -> usize {
    extern "C" {
        static hypercall_page: [u8; 4096];
    }
    core::ptr::addr_of!(hypercall_page) as usize
}
