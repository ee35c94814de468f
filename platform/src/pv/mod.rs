//! The PV back end: Xen's domain builder starts us in long mode on its
//! own page tables with `start_info` (ELF notes and entry in `boot.rs`);
//! we see pseudo-physical frames through the P2M list, change page tables
//! only through `mmu_update`, and take exceptions and events through Xen's
//! virtual IDT and event callback (`entry.rs`).

pub mod bench;
pub(crate) mod boot;
pub(crate) mod entry;
pub mod grants;
pub mod held;
pub mod mm;
pub mod p2m;
mod panic;
pub mod suspend;
pub mod vmap;

use crate::hooks::emergency_print;
use crate::memory::balloon::Holes;
use crate::memory::layout::VirtAddr;
use crate::memory::pagetable::MmuError;
use crate::shutdown;
use core::fmt;
use core::sync::atomic::{compiler_fence, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use hypercall::abi::console::XenconsInterface;
use hypercall::abi::sched::ShutdownReason;
use hypercall::abi::shared_info::SharedInfo;
use hypercall::abi::start_info::StartInfo;
use hypercall::abi::xen::{pte, Uvmf, MACH2PHYS_NR_ENTRIES, MACH2PHYS_VIRT_START};
use hypercall::abi::xenstore::XenstoreDomainInterface;
use hypercall::ops::mmu;
use hypercall::ops::multicall::{send_and_block, TimerChange};
use hypercall::{EvtchnPort, Mfn, Pfn, XenError, PAGE_SIZE};
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

/// A copy of start_info (PV: Xen's, copied at entry; PVH: synthesized by
/// `pvh`).
pub(crate) static START_INFO: Once<StartInfo> = Once::new();
/// The address of the start-info page itself (PV only; 0 under PVH).
static START_INFO_PAGE: AtomicUsize = AtomicUsize::new(0);
pub(crate) static UPCALL_MASK_AT_ENTRY: AtomicU8 = AtomicU8::new(0);

fn virt_base() -> usize {
    // Under PVH the direct map is the identity map: pfn 0 at address 0.
    if crate::pvh::active() {
        return 0;
    }
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
    // reference to it is kept. A plain read, not `read_volatile`: nothing
    // writes the page while we boot, and a volatile read of the 1.2 KiB
    // struct compiled to a byte-at-a-time copy (25 KiB of code, issue 17).
    let si: &'static StartInfo = START_INFO.call_once(|| unsafe { core::ptr::read(si) });

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
        emergency_print(format_args!("cannot map shared_info: {e}\n"));
        shutdown(ShutdownReason::Crash);
    }
    // SAFETY: the page now holds `struct shared_info`, whose fields are all
    // atomics (Xen writes them concurrently), mapped for the guest's life.
    let shared: &'static SharedInfo = unsafe { &*(page as *const SharedInfo) };
    UPCALL_MASK_AT_ENTRY
        .store(shared.vcpu_info[0].evtchn_upcall_mask.load(Ordering::Relaxed), Ordering::Relaxed);
    crate::interface::start(&Pv, shared);
}

/// The PV back end of [`crate::Backend`].
pub struct Pv;

impl crate::Backend for Pv {
    fn name(&self) -> &'static str {
        "pv"
    }

    fn cmdline(&self) -> &'static str {
        start_info().cmdline()
    }

    fn nr_pages(&self) -> u64 {
        start_info().nr_pages
    }

    fn console_page(&self) -> Option<(&'static XenconsInterface, EvtchnPort)> {
        let si = start_info();
        if si.is_initial_domain() {
            return None;
        }
        console_ring(si)
    }

    fn store_page(&self) -> Option<(&'static XenstoreDomainInterface, EvtchnPort)> {
        store_page()
    }

    fn init_memory(&self) -> &'static (dyn fmt::Display + Sync) {
        mm::init(start_info())
    }

    fn grow_pfn_limit(&self, pfns: u64) -> Result<u64, &'static str> {
        mm::extend_p2m(pfns)
    }

    fn unpopulated_holes(&self) -> Option<Holes> {
        mm::unpopulated_holes()
    }

    fn balloon_out(&self, pages: u64) -> Result<Holes, MmuError> {
        mm::balloon_out(pages)
    }

    fn balloon_in(&self, holes: Holes) -> Result<(), (MmuError, Holes)> {
        mm::balloon_in(holes)
    }

    fn install_entry_points(&self) -> Result<(), XenError> {
        entry::install()
    }

    fn xen_frame(&self, va: VirtAddr) -> Option<Mfn> {
        let (start, end) = image_range();
        let pfn = if (start as u64..end as u64).contains(&va.0) {
            Pfn((va.0 - virt_base() as u64) / PAGE_SIZE as u64)
        } else {
            mm::direct_map().pfn(va)?
        };
        pfn_to_mfn(pfn)
    }

    fn mask_upcalls(&self) -> bool {
        let was = crate::vcpu_info().evtchn_upcall_mask.swap(1, Ordering::SeqCst) != 0;
        compiler_fence(Ordering::SeqCst);
        was
    }

    fn unmask_upcalls(&self) {
        // If Xen marked an upcall pending while they were masked, a
        // hypercall makes Xen deliver it now (Xen checks on every return
        // to the guest).
        let v = crate::vcpu_info();
        compiler_fence(Ordering::SeqCst);
        v.evtchn_upcall_mask.store(0, Ordering::SeqCst);
        if v.evtchn_upcall_pending.load(Ordering::SeqCst) != 0 {
            let _ = hypercall::ops::version::version();
        }
    }

    fn upcalls_masked(&self) -> bool {
        crate::vcpu_info().evtchn_upcall_mask.load(Ordering::Relaxed) != 0
    }

    fn stack_word(&self, addr: u64) -> Option<u64> {
        stack_word(addr)
    }

    fn fault_address(&self) -> u64 {
        crate::vcpu_info().arch.cr2.load(Ordering::Relaxed)
    }

    fn block(&self) {
        // Xen unmasks, blocks if nothing is pending, and delivers the
        // upcall before this returns.
        let _ = hypercall::ops::sched_op::block();
    }

    fn block_carrying(&self, sends: &[EvtchnPort], timer: TimerChange) -> u64 {
        let calls = sends.len() as u64 + u64::from(timer != TimerChange::Keep);
        if calls == 0 {
            self.block();
            return 0;
        }
        // One trap: the sends, the timer, and the block last (Xen unmasks
        // and blocks as the plain block does). A failed send or a refused
        // timer is ignored, as it was as a lone call.
        let vcpu = crate::smp::current();
        if send_and_block(vcpu, sends, timer, true).is_ok() {
            return calls;
        }
        // Xen ran none of it (it refused the batch itself): one by one.
        calls_alone(vcpu, sends, timer);
        self.block();
        0
    }
}

/// What a block carries, one call each: an event on each of `sends`,
/// then `timer`'s change to `vcpu`'s one-shot timer. Failures are
/// ignored, as the callers ignored them before the calls were batched.
pub(crate) fn calls_alone(vcpu: u32, sends: &[EvtchnPort], timer: TimerChange) {
    for &p in sends {
        let _ = hypercall::ops::event_channel::send(p);
    }
    let _ = match timer {
        TimerChange::Keep => Ok(()),
        TimerChange::Set(ns) => hypercall::ops::vcpu::set_singleshot_timer(vcpu, ns),
        TimerChange::Stop => hypercall::ops::vcpu::stop_singleshot_timer(vcpu),
    };
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
    if crate::pvh::active() {
        return crate::pvh::store_page();
    }
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

/// `vcpu_info.evtchn_upcall_mask` as Xen started the guest (it must be 1).
pub fn upcall_mask_at_entry() -> u8 {
    UPCALL_MASK_AT_ENTRY.load(Ordering::Relaxed)
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
    if crate::pvh::active() {
        // GFN = PFN: a frame of ours is its own pseudo-physical frame.
        return (pfn_to_mfn(Pfn(mfn.0)) == Some(mfn)).then_some(Pfn(mfn.0));
    }
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

/// A word of the current vCPU's stack, for walking frame pointers in a fault report;
/// `None` for any address outside the stack or misaligned.
pub(crate) fn stack_word(addr: u64) -> Option<u64> {
    extern "C" {
        static __boot_stack_bottom: u8;
    }
    // The lowest page of the stack is the unmapped guard page; a secondary
    // vCPU's stack has its guard page below its range.
    let (bottom, top) = match crate::smp::stack_range(crate::smp::current()) {
        Some(range) => range,
        None => (
            core::ptr::addr_of!(__boot_stack_bottom) as u64 + PAGE_SIZE as u64,
            core::ptr::addr_of!(__boot_stack_bottom) as u64 + boot::BOOT_STACK_SIZE as u64,
        ),
    };
    if addr < bottom || addr + 8 > top || !addr.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the address is an aligned word inside the boot stack, which
    // is mapped and readable for the guest's life.
    Some(unsafe { (addr as *const u64).read_volatile() })
}
