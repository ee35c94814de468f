//! The PVH back end: the same kernel in an HVM container without a device
//! model. Native page tables (guest frame = pseudo-physical frame), the
//! hypercall page filled through an MSR, shared info and grant frames put
//! into our physical space with `XENMEM_add_to_physmap`, events through an
//! IDT vector, console and XenStore found through HVM parameters.

mod entry32;

use super::{console, shutdown, SHARED_INFO};
use core::sync::atomic::Ordering;
use hypercall::abi::console::XenconsInterface;
use hypercall::abi::hvm::{self, HvmStartInfo};
use hypercall::abi::sched::ShutdownReason;
use hypercall::abi::shared_info::SharedInfo;
use hypercall::ops::hvm as hvm_op;
use hypercall::{EvtchnPort, Pfn, PAGE_SIZE};

extern "C" {
    static hypercall_page: [u8; PAGE_SIZE];
    static shared_info_page: u8;
}

/// Writes to Xen's debug port (0xe9): an HVM guest's bytes land on Xen's
/// console as `(dN) ...` lines (with `guest_loglvl=all`), before anything
/// else works.
pub fn debugcon(bytes: &[u8]) {
    for &b in bytes {
        // SAFETY: port 0xe9 is Xen's debug console for HVM guests; writing
        // it has no other effect.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") 0xe9u16, in("al") b, options(nomem, nostack))
        };
    }
}

fn fatal(what: &str) -> ! {
    debugcon(b"RustPV (PVH): ");
    debugcon(what.as_bytes());
    debugcon(b"\n");
    loop {
        // SAFETY: with interrupts off, hlt stops this vCPU for good: the
        // domain cannot do anything useful without hypercalls.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Xen's CPUID base leaf (0x40000000, or higher when Xen also shows a
/// Viridian interface first).
fn xen_cpuid_base() -> Option<u32> {
    (hvm::cpuid::FIRST_BASE..hvm::cpuid::LAST_BASE).step_by(hvm::cpuid::BASE_STEP as usize).find(
        |&leaf| {
            let r = core::arch::x86_64::__cpuid(leaf);
            [r.ebx, r.ecx, r.edx] == hvm::cpuid::SIGNATURE && r.eax >= leaf + 2
        },
    )
}

/// Asks Xen to fill `hypercall_page` (the page the PV note names, so the
/// hypercall wrappers need no change): leaf `base + 2` names the MSR, and
/// writing the page's physical address to it makes Xen write the
/// `vmcall`/`vmmcall` stubs for this CPU.
fn init_hypercall_page() -> Result<(), &'static str> {
    let base = xen_cpuid_base().ok_or("no Xen CPUID leaves: not running on Xen")?;
    let r = core::arch::x86_64::__cpuid(base + 2);
    if r.eax == 0 {
        return Err("Xen offers no hypercall pages");
    }
    let page = core::ptr::addr_of!(hypercall_page) as u64;
    // SAFETY: the MSR Xen named takes the guest-physical address of a
    // page (identity-mapped: virtual = physical) that is part of the
    // image, reserved for hypercall stubs; Xen writes it during the wrmsr.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") r.ebx, in("eax") page as u32, in("edx") (page >> 32) as u32, options(nostack));
    }
    Ok(())
}

/// `hvm_start_info` as Xen gave it, checked.
fn start_info(paddr: u64) -> &'static HvmStartInfo {
    if paddr == 0 || !paddr.is_multiple_of(8) || paddr >= 1 << 32 {
        fatal("hvm_start_info address is not a 4 GiB-mapped, aligned address");
    }
    // SAFETY: Xen passes the physical address of hvm_start_info, which
    // lies below 4 GiB (pvh.pandoc) and so in the boot identity map; the
    // domain builder wrote it and nobody writes it again.
    let si: &'static HvmStartInfo = unsafe { &*(paddr as *const HvmStartInfo) };
    if si.magic != hvm::START_MAGIC_VALUE {
        fatal("hvm_start_info has the wrong magic value");
    }
    si
}

/// Puts Xen's shared info frame at `shared_info_page` (a page of .bss: the
/// RAM behind it goes back to Xen).
fn map_shared_info() -> Result<&'static SharedInfo, hypercall::XenError> {
    let page = core::ptr::addr_of!(shared_info_page) as usize;
    // SAFETY: `shared_info_page` is a .bss page reserved for this that
    // nothing else refers to; from now on Rust reaches it only as
    // `SharedInfo`, whose fields are atomics.
    unsafe {
        hvm_op::add_to_physmap(hvm::mapspace::SHARED_INFO, 0, Pfn((page / PAGE_SIZE) as u64))?
    };
    // SAFETY: the page now is Xen's shared info, mapped for the guest's
    // life (identity map), all atomics.
    Ok(unsafe { &*(page as *const SharedInfo) })
}

/// The console ring from `HVM_PARAM_CONSOLE_PFN`/`_EVTCHN`.
fn console_ring() -> Option<(&'static XenconsInterface, EvtchnPort)> {
    let pfn = hvm_op::get_param(hvm::param::CONSOLE_PFN).ok().filter(|&p| p != 0)?;
    let port = hvm_op::get_param(hvm::param::CONSOLE_EVTCHN).ok()?;
    if pfn >= (1 << 32) / PAGE_SIZE as u64 {
        return None;
    }
    // SAFETY: the console ring is a special page of the domain below 4 GiB
    // (in the boot identity map), shared with xenconsoled for the guest's
    // life; XenconsInterface is all atomics.
    let ring = unsafe { &*((pfn as usize * PAGE_SIZE) as *const XenconsInterface) };
    Some((ring, EvtchnPort(port as u32)))
}

/// Rust's first code in a PVH domain (called by `entry32` in long mode).
pub(super) extern "C" fn rust_pvh_entry(start_info_paddr: u64) -> ! {
    debugcon(b"RustPV: PVH entry\n");
    let si = start_info(start_info_paddr);
    if let Err(e) = init_hypercall_page() {
        fatal(e);
    }
    let shared = map_shared_info().unwrap_or_else(|_| fatal("cannot map shared info"));
    SHARED_INFO.call_once(|| shared);
    super::BOOT_NS.store(super::now_ns(), Ordering::Relaxed);
    match console_ring() {
        Some((ring, port)) => console::init_ring(ring, port),
        None => debugcon(b"RustPV (PVH): no console ring\n"),
    }
    crate::kprintln!(
        "RustPV: PVH: hvm_start_info v{} at {:#x}, {} memory map entries, {} modules",
        si.version,
        start_info_paddr,
        si.memmap_entries,
        si.nr_modules
    );
    shutdown(ShutdownReason::Poweroff)
}
