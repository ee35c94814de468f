//! The platform interface: the [`Backend`] trait (what a way of running
//! under Xen must provide) and the functions the kernel calls, which are
//! the same in every mode or go through the back end the entry chose.

use crate::memory::balloon::Holes;
use crate::memory::layout::VirtAddr;
use crate::memory::pagetable::MmuError;
use crate::time::PvClock;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use hypercall::abi::console::XenconsInterface;
use hypercall::abi::sched::ShutdownReason;
use hypercall::abi::shared_info::{SharedInfo, VcpuInfo};
use hypercall::abi::xenstore::XenstoreDomainInterface;
pub use hypercall::ops::multicall::{TimerChange, MAX_CARRIED_SENDS};
use hypercall::ops::sched_op;
use hypercall::{EvtchnPort, Mfn, XenError};
use spin::Once;

/// What differs between the ways Xen can run this guest. PV today
/// ([`crate::pv::Pv`]); PVH (issue 15) implements it beside it: boot facts
/// from `hvm_start_info` and HVM parameters instead of `start_info`,
/// native page tables instead of `mmu_update`, GFNs instead of MFNs, the
/// native IDT and the callback vector instead of Xen's virtual IDT and
/// event callback, `rflags.IF` instead of the upcall mask.
///
/// Every method is safe to call from safe code once the entry stub has
/// chosen the back end (before the kernel's main runs).
pub trait Backend: Sync {
    /// `"pv"` or `"pvh"`, for the banner.
    fn name(&self) -> &'static str;
    /// The command line the toolstack gave (`extra=`).
    fn cmdline(&self) -> &'static str;
    /// Pages of memory the domain was started with.
    fn nr_pages(&self) -> u64;
    /// The console ring shared with xenconsoled, and its event channel;
    /// `None` means output goes through Xen's `console_io` (dom0).
    fn console_page(&self) -> Option<(&'static XenconsInterface, EvtchnPort)>;
    /// The XenStore ring and its event channel; `None` in a domain
    /// without XenStore (dom0).
    fn store_page(&self) -> Option<(&'static XenstoreDomainInterface, EvtchnPort)>;
    /// Start of day for memory: every page mapped, the frame allocator
    /// and the heap ready. Called once, by [`init_memory`]; fatal errors
    /// end the domain. Returns what it did, for the boot log.
    fn init_memory(&self) -> &'static (dyn fmt::Display + Sync);
    /// Makes room for `pfns` pfns of memory, for a balloon growing past
    /// the boot size (PV: a longer P2M, published for the toolstack);
    /// the pfns covered, or why it cannot.
    fn grow_pfn_limit(&self, pfns: u64) -> Result<u64, &'static str>;
    /// The pfns past the boot size up to [`pfn_limit`], never populated:
    /// the balloon's oldest holes, handed out once (`None` after, or when
    /// there are none).
    fn unpopulated_holes(&self) -> Option<Holes>;
    /// Gives `pages` free pages back to Xen; the pfns, now holes.
    fn balloon_out(&self, pages: u64) -> Result<Holes, MmuError>;
    /// Takes `holes` back from Xen and gives the frames to the frame
    /// allocator. On an error the holes come back (the P2M says which
    /// were filled).
    fn balloon_in(&self, holes: Holes) -> Result<(), (MmuError, Holes)>;
    /// Installs the exception handlers and the event upcall entry.
    fn install_entry_points(&self) -> Result<(), XenError>;
    /// The frame number Xen knows the page at `va` by, for hypercalls and
    /// grants: the machine frame (PV) or the guest frame (PVH); `None` for
    /// an address outside the guest's memory.
    fn xen_frame(&self, va: VirtAddr) -> Option<Mfn>;
    /// Masks event upcalls (the guest's `cli`); whether they were masked.
    fn mask_upcalls(&self) -> bool;
    /// Unmasks event upcalls, taking one that arrived while masked.
    fn unmask_upcalls(&self);
    /// Whether upcalls are masked now.
    fn upcalls_masked(&self) -> bool;
    /// A word of the boot stack, for a fault report's backtrace; `None`
    /// outside the stack or misaligned.
    fn stack_word(&self, addr: u64) -> Option<u64>;
    /// The address of the last page fault: Xen's copy in `vcpu_info` (PV)
    /// or the CPU's CR2 (PVH).
    fn fault_address(&self) -> u64;
    /// Called with upcalls masked: unmasks them and blocks the vCPU until
    /// an event is pending, atomically (`SCHEDOP_block` for PV, `sti; hlt`
    /// for PVH). Returns with upcalls unmasked, the event delivered.
    fn block(&self);
    /// [`Backend::block`], after sending an event on each of `sends` and
    /// making `timer`'s change to this vCPU's one-shot timer, in as few
    /// traps into Xen as the mode allows: one multicall that ends in
    /// `SCHEDOP_block` (PV), or one multicall and the `hlt` (PVH). Returns
    /// how many of the calls cost no trap of their own.
    fn block_carrying(&self, sends: &[EvtchnPort], timer: TimerChange) -> u64;
}

static BACKEND: Once<&'static dyn Backend> = Once::new();
static SHARED_INFO: Once<&'static SharedInfo> = Once::new();
static BOOT_NS: AtomicU64 = AtomicU64::new(0);

/// Called by a back end's entry, once shared info is mapped and before
/// the kernel's main.
pub(crate) fn start(backend: &'static dyn Backend, shared: &'static SharedInfo) {
    BACKEND.call_once(|| backend);
    SHARED_INFO.call_once(|| shared);
    BOOT_NS.store(now_ns(), Ordering::Relaxed);
}

/// The back end the entry chose.
pub fn backend() -> &'static dyn Backend {
    *BACKEND.get().expect("the entry chooses the back end before any other code runs")
}

/// The free functions that call the back end the entry chose: each one is
/// `backend().name(args)`, documented at its [`Backend`] method.
macro_rules! through_backend {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {
        $(
            #[doc = concat!("See [`Backend::", stringify!($name), "`].")]
            pub fn $name($($arg: $ty),*) $(-> $ret)? {
                backend().$name($($arg),*)
            }
        )*
    };
}

through_backend! {
    fn cmdline() -> &'static str;
    fn nr_pages() -> u64;
    fn console_page() -> Option<(&'static XenconsInterface, EvtchnPort)>;
    fn store_page() -> Option<(&'static XenstoreDomainInterface, EvtchnPort)>;
    fn grow_pfn_limit(pfns: u64) -> Result<u64, &'static str>;
    fn unpopulated_holes() -> Option<Holes>;
    fn balloon_out(pages: u64) -> Result<Holes, MmuError>;
    fn balloon_in(holes: Holes) -> Result<(), (MmuError, Holes)>;
    fn install_entry_points() -> Result<(), XenError>;
    fn xen_frame(va: VirtAddr) -> Option<Mfn>;
    fn mask_upcalls() -> bool;
    fn unmask_upcalls();
    fn upcalls_masked() -> bool;
    fn stack_word(addr: u64) -> Option<u64>;
    fn fault_address() -> u64;
    fn block_carrying(sends: &[EvtchnPort], timer: TimerChange) -> u64;
}

static MEMORY: Once<&'static (dyn fmt::Display + Sync)> = Once::new();

/// Maps all memory and starts the frame allocator and the heap (once);
/// what it did, for the boot log.
pub fn init_memory() -> &'static (dyn fmt::Display + Sync) {
    *MEMORY.call_once(|| backend().init_memory())
}

/// Pfns the domain's memory spans now, holes included: the P2M's length
/// (PV: sized for the maximum reservation; PVH: the boot size).
pub fn pfn_limit() -> u64 {
    crate::pv::p2m().len() as u64
}

/// Pages Xen says this domain has (`XENMEM_current_reservation`).
pub fn current_reservation() -> Result<u64, XenError> {
    hypercall::ops::memory::current_reservation(hypercall::DomId::SELF)
}

/// Free frames in the frame allocator, and the longest run of them.
pub fn free_frames() -> (u64, u64) {
    crate::pv::mm::free_frames()
}

/// Bytes the heap has claimed from the frame allocator.
pub fn heap_bytes() -> u64 {
    crate::pv::mm::heap_bytes()
}

/// `[start, end)` of the loaded image.
pub fn image_range() -> (usize, usize) {
    crate::pv::image_range()
}

/// The start-of-day facts in `start_info`'s shape: Xen's own under PV (a
/// copy), one gathered from `hvm_start_info` and the HVM parameters under
/// PVH (command line, pages, console and store).
pub fn start_info() -> &'static hypercall::abi::start_info::StartInfo {
    crate::pv::start_info()
}

/// Whether this domain runs as PVH (entered through the PHYS32 entry).
pub fn is_pvh() -> bool {
    crate::pvh::active()
}

/// The shared info page (mapped by the entry in every mode).
pub fn shared_info() -> &'static SharedInfo {
    SHARED_INFO.get().expect("shared_info is mapped at entry")
}

/// The calling vCPU's `vcpu_info` (vCPU 0's is in the shared info page;
/// a secondary vCPU's where `smp::prepare` registered it).
pub fn vcpu_info() -> &'static VcpuInfo {
    crate::smp::vcpu_info_of(crate::smp::current())
}

/// Xen system time now, in ns.
pub fn now_ns() -> u64 {
    // A plain load and store, not a locked add: two vCPUs reading at the
    // same instant may count one read. It is a statistic (reads per pass
    // of a loop), and the read it counts must stay cheap.
    CLOCK_READS.store(CLOCK_READS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    PvClock::read(&vcpu_info().time).ns_at(crate::rdtsc())
}

/// Clock reads ([`now_ns`]) so far. Each reads the TSC, which Xen traps
/// and emulates when the host's TSC is not reliable (`tsc_mode`
/// default without an invariant TSC, as under QEMU's TCG): then a read
/// costs an exit, and a loop that runs often counts its reads.
pub fn clock_reads() -> u64 {
    CLOCK_READS.load(Ordering::Relaxed)
}

static CLOCK_READS: AtomicU64 = AtomicU64::new(0);

/// Nanoseconds since this guest started.
pub fn uptime_ns() -> u64 {
    uptime_at(now_ns())
}

/// The uptime at system time `now_ns` (a reading already taken).
pub fn uptime_at(now_ns: u64) -> u64 {
    now_ns.saturating_sub(BOOT_NS.load(Ordering::Relaxed))
}

/// Runs the kernel's `before_shutdown` hook (flushes the console) and
/// ends the domain.
pub fn shutdown(reason: ShutdownReason) -> ! {
    crate::hooks::before_shutdown();
    loop {
        let _ = sched_op::shutdown(reason);
        // Only an invalid reason returns; crash instead of spinning.
        let _ = sched_op::shutdown(ShutdownReason::Crash);
        let _ = sched_op::yield_now();
    }
}

pub use crate::fifo::{fifo_init, fifo_pages, fifo_reinit};
pub use crate::trap::{DeliberateFault, TrapFrame};
