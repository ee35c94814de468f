//! The guest's unsafe boundary: everything that turns an address from Xen
//! into a reference, writes a page table, installs an entry point or hands
//! Xen a frame it keeps writing. With `hypercall` (the ABI and the
//! hypercall instructions), this is the only guest crate with `unsafe`;
//! the kernel above it says `#![forbid(unsafe_code)]`.
//!
//! # One interface, one back end per way Xen runs the guest
//!
//! What the kernel may use is this module's API: the [`Backend`] trait
//! (what differs between PV and PVH: where boot facts come from, how
//! memory is mapped, which frame number Xen knows a page by, how events
//! and traps are delivered), the free functions below (what both modes
//! share: `shared_info`, the PV clock, shutdown), the [`Hooks`] the kernel
//! registers, and the [`entry!`] macro that names the kernel's main.
//! [`pv`] is the classic PV back end (`start_info`, P2M, `mmu_update`,
//! Xen's virtual IDT); its PV-only extras (the P2M, `start_info`, the
//! page-table benchmark's scratch pages) are reached as `platform::pv::…`,
//! so kernel code that depends on PV says so. [`pvh`] is the PVH back end
//! (issue 15: `hvm_start_info`, native page tables, GFN = PFN, the native
//! IDT and a callback vector), chosen by its own entry point
//! (`XEN_ELFNOTE_PHYS32_ENTRY`); it keeps the PV extras' contract (a P2M,
//! a `start_info`, the frame allocator and heap of `pv::mm`, the grant
//! table of `pv::grants`) so that the kernel's `platform::pv::…` calls
//! work in both modes. See docs/platform.md and docs/pvh.md.
//!
//! The platform never imports the kernel: the kernel's console, fault
//! report and event dispatch reach it as [`Hooks`], its main as the symbol
//! [`entry!`] defines.
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

pub mod fmtbuf;
pub mod memory;
pub mod time;
pub mod trap;

#[cfg(target_os = "none")]
mod fifo;
#[cfg(target_os = "none")]
pub mod grants;
#[cfg(target_os = "none")]
mod hooks;
#[cfg(target_os = "none")]
mod interface;
#[cfg(target_os = "none")]
pub mod log_dirty;
#[cfg(target_os = "none")]
pub mod paging_bench;
#[cfg(target_os = "none")]
pub mod probe;
#[cfg(target_os = "none")]
pub mod pv;
#[cfg(target_os = "none")]
pub mod pvh;
#[cfg(target_os = "none")]
pub mod shared_pages;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
pub mod stack_depth;
#[cfg(target_os = "none")]
pub mod suspend;
#[cfg(target_os = "none")]
mod x86;

#[cfg(target_os = "none")]
pub use hooks::{set_hooks, Hooks};
#[cfg(target_os = "none")]
pub use interface::*;
#[cfg(target_os = "none")]
pub use x86::{cpu_brand, rdtsc, trigger_fault, tsc_begin, tsc_end};

/// Names the image's main: `platform::entry!(kmain)` with `fn kmain() -> !`.
/// The platform's entry stub sets up the stack, the boot facts and the
/// shared info page, then calls it with upcalls masked; the first thing it
/// should do is [`set_hooks`].
///
/// This is the guest's one exception to "no `unsafe` above the platform":
/// the macro defines an unmangled symbol (`#[unsafe(no_mangle)]`, an unsafe
/// attribute) in the crate that invokes it, so that the platform can call
/// the kernel without depending on it. Written here, in the crate that owns
/// the unsafe boundary; `forbid(unsafe_code)` in the invoking crate does not
/// see it because it comes from this crate's macro. It is sound because the
/// symbol name is reserved for this (the platform only declares it), and a
/// second definition is a link error, not undefined behaviour.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The kernel's main, called once by the platform's entry stub.
        #[unsafe(no_mangle)]
        extern "Rust" fn __platform_image_main() -> ! {
            let main: fn() -> ! = $main;
            main()
        }
    };
}
