//! The platform layer: the only part of the kernel that turns addresses
//! from Xen into references. Everything above it is safe code.
#![allow(unsafe_code)]

pub mod bench;
pub mod blk;
mod boot;
mod entry;
mod events;
pub mod grants;
pub mod mm;
pub mod p2m;
mod panic;
pub mod suspend;
pub mod vmap;

pub use entry::{
    install as install_entry_points, trigger as trigger_fault, DeliberateFault, TrapFrame,
};
pub use events::{fifo_init, fifo_pages, fifo_reinit};

use crate::console;
use crate::time::PvClock;
use core::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use hypercall::abi::console::XenconsInterface;
use hypercall::abi::sched::ShutdownReason;
use hypercall::abi::shared_info::{SharedInfo, VcpuInfo};
use hypercall::abi::start_info::StartInfo;
use hypercall::abi::xen::{pte, Uvmf, MACH2PHYS_NR_ENTRIES, MACH2PHYS_VIRT_START};
use hypercall::abi::xenstore::XenstoreDomainInterface;
use hypercall::ops::{mmu, sched_op};
use hypercall::{EvtchnPort, Mfn, Pfn, PAGE_SIZE};
use spin::Once;

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __virt_base: u8;
    static hypercall_page: [u8; PAGE_SIZE];
    static shared_info_page: u8;
}

// A page of the image whose mapping is replaced by Xen's shared info frame.
core::arch::global_asm!(
    ".pushsection .bss.shared_info_page, \"aw\", @nobits",
    ".balign 4096",
    ".globl shared_info_page",
    "shared_info_page:",
    ".skip 4096",
    ".popsection",
);

static START_INFO: Once<StartInfo> = Once::new();
/// The address of the start-info page itself.
static START_INFO_PAGE: AtomicUsize = AtomicUsize::new(0);
static SHARED_INFO: Once<&'static SharedInfo> = Once::new();
static BOOT_NS: AtomicU64 = AtomicU64::new(0);
static UPCALL_MASK_AT_ENTRY: AtomicU8 = AtomicU8::new(0);

fn virt_base() -> usize {
    core::ptr::addr_of!(__virt_base) as usize
}

/// The page of the image that maps Xen's shared info frame.
fn shared_info_va() -> usize {
    core::ptr::addr_of!(shared_info_page) as usize
}

/// `[start, end)` of the loaded image.
pub fn image_range() -> (usize, usize) {
    (core::ptr::addr_of!(__image_start) as usize, core::ptr::addr_of!(__image_end) as usize)
}

/// The start of the pseudo-physical direct map Xen built (`pfn 0`).
pub fn pfn_to_virt(pfn: Pfn) -> usize {
    virt_base() + (pfn.0 as usize) * PAGE_SIZE
}

fn init(si: *const StartInfo) {
    START_INFO_PAGE.store(si as usize, Ordering::Relaxed);
    // SAFETY: Xen passes a pointer to start_info inside the bootstrap
    // mapping, which stays mapped. We keep a copy: the page itself is
    // rewritten around a suspend (by us and by the toolstack), so no
    // reference to it is kept.
    let si: &'static StartInfo = START_INFO.call_once(|| unsafe { core::ptr::read_volatile(si) });

    // SAFETY: the domain builder puts the P2M list (nr_pages u64 entries)
    // in the bootstrap mapping at `mfn_list`. AtomicU64 has u64's layout,
    // and atomics let later code (ballooning) update it through `&`.
    let p2m = unsafe {
        core::slice::from_raw_parts(si.mfn_list as *const AtomicU64, si.nr_pages as usize)
    };
    p2m::set(p2m);

    let page = core::ptr::addr_of!(shared_info_page) as usize;
    let entry = si.shared_info_addr().0 & pte::ADDR_MASK
        | pte::PRESENT
        | pte::RW
        | pte::USER
        | pte::ACCESSED
        | pte::DIRTY;
    // SAFETY: `shared_info_page` is a page of our .bss that nothing else
    // references; after the call it maps Xen's shared info frame.
    if let Err(e) = unsafe { mmu::update_va_mapping(page, entry, Uvmf::INVLPG) } {
        console::emergency_print(format_args!("cannot map shared_info: {e}\n"));
        shutdown(ShutdownReason::Crash);
    }
    // SAFETY: the page now holds `struct shared_info`, whose fields are all
    // atomics (Xen writes them concurrently), mapped for the guest's life.
    let shared: &'static SharedInfo = unsafe { &*(page as *const SharedInfo) };
    SHARED_INFO.call_once(|| shared);
    UPCALL_MASK_AT_ENTRY
        .store(shared.vcpu_info[0].evtchn_upcall_mask.load(Ordering::Relaxed), Ordering::Relaxed);
    BOOT_NS.store(now_ns(), Ordering::Relaxed);

    if si.is_initial_domain() {
        console::init_hypervisor();
    } else {
        match console_ring(si) {
            Some((ring, port)) => console::init_ring(ring, port),
            None => console::init_hypervisor(),
        }
    }
    crate::timeline::mark("console");
    mm::init(si);
    crate::timeline::mark("memory");
}

/// Pages Xen hands a domU in `start_info` and shares with a dom0 daemon,
/// whose structs are made only of atomics (so a shared reference to one
/// is sound while the other side writes it).
trait DaemonPage {}
impl DaemonPage for XenconsInterface {}
impl DaemonPage for XenstoreDomainInterface {}

/// One of our frames named by machine frame, found through the M2P.
fn daemon_page<T: DaemonPage>(si: &StartInfo, mfn: Mfn) -> Option<&'static T> {
    let pfn = mfn_to_pfn(mfn)?;
    if pfn.0 >= si.nr_pages || pfn_to_mfn(pfn) != Some(mfn) {
        return None;
    }
    // SAFETY: the frame is ours (P2M and M2P agree) and lies in the
    // bootstrap mapping the builder made (console and store pages are
    // allocated inside it), mapped for the guest's life; `T` is all
    // atomics (DaemonPage), so concurrent writes by the daemon are fine.
    Some(unsafe { &*(pfn_to_virt(pfn) as *const T) })
}

/// The console ring page and its event channel.
fn console_ring(si: &StartInfo) -> Option<(&'static XenconsInterface, EvtchnPort)> {
    let (mfn, port) = si.console.domu();
    Some((daemon_page(si, mfn)?, port))
}

/// The XenStore ring page and its event channel (`None` in dom0, which
/// has no store page).
pub fn store_page() -> Option<(&'static XenstoreDomainInterface, EvtchnPort)> {
    let si = start_info();
    if si.is_initial_domain() {
        return None;
    }
    let (mfn, port) = si.store();
    Some((daemon_page(si, mfn)?, port))
}

/// start_info as Xen gave it at boot (a copy: after a restore the page
/// names other frames and ports, which `suspend` hands out).
pub fn start_info() -> &'static StartInfo {
    START_INFO.get().expect("start_info is set before any other code runs")
}

/// The virtual address of the start-info page.
fn start_info_page() -> usize {
    START_INFO_PAGE.load(Ordering::Relaxed)
}

/// The shared info page.
pub fn shared_info() -> &'static SharedInfo {
    SHARED_INFO.get().expect("shared_info is mapped at entry")
}

/// `vcpu_info.evtchn_upcall_mask` as Xen started the guest (it must be 1).
pub fn upcall_mask_at_entry() -> u8 {
    UPCALL_MASK_AT_ENTRY.load(Ordering::Relaxed)
}

/// `vcpu_info`, or `None` before shared_info is mapped.
pub fn try_vcpu_info() -> Option<&'static VcpuInfo> {
    SHARED_INFO.get().map(|s| &s.vcpu_info[0])
}

/// This vCPU's `vcpu_info` (vCPU 0: the guest runs one vCPU).
pub fn vcpu_info() -> &'static VcpuInfo {
    &shared_info().vcpu_info[0]
}

/// The P2M list: pfn → mfn (Xen's at entry, then one sized for the
/// maximum reservation: see [`p2m`](mod@p2m)).
pub fn p2m() -> &'static [AtomicU64] {
    p2m::get()
}

/// The machine frame behind `pfn`.
pub fn pfn_to_mfn(pfn: Pfn) -> Option<Mfn> {
    p2m().get(pfn.0 as usize).map(|e| Mfn(e.load(Ordering::Relaxed)))
}

/// The pseudo-physical frame of one of our machine frames, from Xen's
/// read-only machine-to-phys table. `None` for frames beyond the table.
pub fn mfn_to_pfn(mfn: Mfn) -> Option<Pfn> {
    if mfn.0 >= MACH2PHYS_NR_ENTRIES {
        return None;
    }
    let entry = (MACH2PHYS_VIRT_START + mfn.0 * 8) as *const u64;
    // SAFETY: Xen maps the M2P table read-only into every PV guest at
    // MACH2PHYS_VIRT_START; entries of frames the guest owns are present.
    // Callers pass frames Xen gave us (start_info, P2M).
    Some(Pfn(unsafe { entry.read_volatile() }))
}

/// The bytes Xen wrote into the hypercall page.
pub fn hypercall_page_bytes() -> &'static [u8; PAGE_SIZE] {
    // SAFETY: the page is part of the image; Xen filled it before entry
    // and nothing writes it afterwards.
    unsafe { &*core::ptr::addr_of!(hypercall_page) }
}

/// A word of the boot stack, for walking frame pointers in a fault report;
/// `None` for any address outside the stack or misaligned.
pub fn stack_word(addr: u64) -> Option<u64> {
    extern "C" {
        static __boot_stack_bottom: u8;
    }
    // The lowest page of the stack is the unmapped guard page.
    let bottom = core::ptr::addr_of!(__boot_stack_bottom) as u64 + PAGE_SIZE as u64;
    let top = core::ptr::addr_of!(__boot_stack_bottom) as u64 + boot::BOOT_STACK_SIZE as u64;
    if addr < bottom || addr + 8 > top || !addr.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the address is an aligned word inside the boot stack, which
    // is mapped and readable for the guest's life.
    Some(unsafe { (addr as *const u64).read_volatile() })
}

/// The TSC at the start of a timed region: `lfence` keeps earlier
/// instructions from drifting past the read.
#[inline(always)]
pub fn tsc_begin() -> u64 {
    rdtsc()
}

/// The TSC at the end of a timed region: `rdtscp` waits for the region's
/// instructions, `lfence` keeps later ones from starting early.
#[inline(always)]
pub fn tsc_end() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtscp and lfence only read the time stamp counter (and
    // TSC_AUX into ecx).
    unsafe {
        core::arch::asm!("rdtscp", "lfence", out("eax") lo, out("edx") hi, out("ecx") _, options(nomem, nostack));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The CPU's brand string (CPUID 0x80000002..4), as the guest sees it.
pub fn cpu_brand() -> crate::fmtbuf::FmtBuf<48> {
    use core::fmt::Write;
    let mut out = crate::fmtbuf::FmtBuf::new();
    for leaf in 0x8000_0002u32..=0x8000_0004 {
        let r = core::arch::x86_64::__cpuid(leaf);
        for word in [r.eax, r.ebx, r.ecx, r.edx] {
            for byte in word.to_le_bytes() {
                if byte != 0 {
                    let _ = out.write_char(byte as char);
                }
            }
        }
    }
    out
}

/// A serialised TSC read.
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: lfence and rdtsc only read the time stamp counter.
    unsafe {
        core::arch::asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Xen system time now, in ns.
pub fn now_ns() -> u64 {
    PvClock::read(&vcpu_info().time).ns_at(rdtsc())
}

/// Nanoseconds since this guest started.
pub fn uptime_ns() -> u64 {
    now_ns().saturating_sub(BOOT_NS.load(Ordering::Relaxed))
}

/// Flushes the console and ends the domain.
pub fn shutdown(reason: ShutdownReason) -> ! {
    let _ = console::flush();
    loop {
        let _ = sched_op::shutdown(reason);
        // Only an invalid reason returns; crash instead of spinning.
        let _ = sched_op::shutdown(ShutdownReason::Crash);
        let _ = sched_op::yield_now();
    }
}
