//! Several vCPUs (issue 21): what each secondary vCPU needs before it runs
//! (a stack, its `vcpu_info` and FIFO control block where Xen writes them,
//! a GDT frame in PV), starting it (`VCPUOP_initialise` + `VCPUOP_up`, with
//! a 64-bit PV context or a PVH context in long mode), knowing which vCPU
//! the code runs on, and TLB flushes on other vCPUs.
//!
//! vCPU 0 keeps what it always had: the boot stack, `vcpu_info[0]` in the
//! shared info page, the FIFO pages of `fifo.rs`. Nothing here runs unless
//! the kernel starts a secondary vCPU, so a guest that never does behaves
//! as before (one vCPU, the others never initialised).
//!
//! Which vCPU is running is told by the stack pointer: every vCPU has its
//! own stack, exceptions and upcalls arrive on the current stack in both
//! modes (PV: the guest is always in kernel mode, so Xen bounces onto the
//! stack in use; PVH: ring 0 to ring 0, no IST), so the stack's range names
//! the vCPU. This needs no segment base (PV would need `set_segment_base`
//! on every vCPU, and a restore to put it back) and costs two compares on
//! vCPU 0.
//!
//! The frames of a secondary vCPU are taken from the frame allocator and
//! kept for good (`Frames::keep`): Xen writes its `vcpu_info` and control
//! block for as long as the domain lives (kind 1 of
//! docs/unsafe-boundary.md), and holds the GDT frame as a descriptor page.

mod pv;
mod pvh;
mod tlb;

pub use tlb::TlbProbe;

use crate::memory::layout::VirtAddr;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use hypercall::abi::event_channel::EvtchnFifoControlBlock;
use hypercall::abi::shared_info::{VcpuInfo, LEGACY_MAX_VCPUS};
use hypercall::abi::xen::Uvmf;
use hypercall::ops::{event_channel as evtchn, mmu, vcpu};
use hypercall::{XenError, PAGE_SIZE};
use spin::Once;

/// vCPUs this guest can run (ids 0..8). A domain with more keeps the rest
/// down (said by [`count`]).
pub const MAX_VCPUS: usize = 8;

/// Pages of each secondary vCPU's stack (the boot stack's size), plus an
/// unmapped guard page below it in PV.
pub const STACK_PAGES: u64 = 16;

/// Frames of one secondary vCPU: guard, stack, `vcpu_info` page, FIFO
/// control block page, GDT page (PV).
const FRAMES_PER_VCPU: u64 = 1 + STACK_PAGES + 3;

/// What the platform keeps for each vCPU.
struct Slot {
    /// `[lo, hi)` of the vCPU's stack; 0 until prepared (vCPU 0: unused,
    /// its stack is the boot stack).
    stack_lo: AtomicU64,
    stack_hi: AtomicU64,
    /// Address of the registered `vcpu_info` (0: the shared info slot).
    vcpu_info: AtomicUsize,
    /// Address of the FIFO control block page.
    control: AtomicUsize,
    /// The control block is registered with Xen.
    fifo: AtomicBool,
    /// The GDT page's address (PV; its frame is looked up when used: a
    /// restored domain has other machine frames).
    gdt: AtomicU64,
    /// The first pfn of the vCPU's kept frames (0: none yet).
    frames: AtomicU64,
    /// `VCPUOP_initialise` succeeded: later starts are only `VCPUOP_up`.
    initialised: AtomicBool,
}

#[expect(
    clippy::declare_interior_mutable_const,
    reason = "a template for the array's elements, each its own atomics"
)]
const EMPTY: Slot = Slot {
    stack_lo: AtomicU64::new(0),
    stack_hi: AtomicU64::new(0),
    vcpu_info: AtomicUsize::new(0),
    control: AtomicUsize::new(0),
    fifo: AtomicBool::new(false),
    gdt: AtomicU64::new(0),
    frames: AtomicU64::new(0),
    initialised: AtomicBool::new(false),
};

static SLOTS: [Slot; MAX_VCPUS] = [EMPTY; MAX_VCPUS];
/// Some secondary vCPU has a stack: [`current`] must look.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// What a secondary vCPU runs once its own state is loaded.
static ENTRY: Once<fn(u32) -> !> = Once::new();

/// Why a vCPU could not be prepared or started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmpError {
    /// Not a secondary vCPU id of this domain (or beyond [`MAX_VCPUS`]).
    NoSuchVcpu(u32),
    /// No free frames for its stack and pages.
    NoMemory,
    /// The FIFO control block asked for before vCPU 0's, or before prepare.
    NotReady,
    /// Xen refused the step named.
    Xen(&'static str, XenError),
}

impl fmt::Display for SmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmpError::NoSuchVcpu(n) => write!(f, "vCPU {n} is not a secondary vCPU of this domain"),
            SmpError::NoMemory => write!(f, "no {FRAMES_PER_VCPU} free frames for a vCPU"),
            SmpError::NotReady => write!(f, "vCPU not prepared (or vCPU 0 not on FIFO)"),
            SmpError::Xen(op, e) => write!(f, "{op}: {e}"),
        }
    }
}

/// Whether the page below vCPU `n`'s stack (its guard) is unmapped, as
/// the live page tables say; `None` before [`prepare`].
pub fn guard_unmapped(n: u32) -> Option<bool> {
    let (lo, _) = stack_range(n)?;
    let guard = lo - PAGE_SIZE as u64;
    Some(if crate::is_pvh() {
        crate::pvh::memory::lookup(guard).is_none()
    } else {
        crate::pv::mm::lookup(VirtAddr(guard)).is_none()
    })
}

/// The vCPU the caller runs on.
pub fn current() -> u32 {
    if !ACTIVE.load(Ordering::Relaxed) {
        return 0;
    }
    let marker = 0u8;
    let sp = core::ptr::addr_of!(marker) as u64;
    (1..MAX_VCPUS)
        .find(|&n| {
            let s = &SLOTS[n];
            sp >= s.stack_lo.load(Ordering::Relaxed) && sp < s.stack_hi.load(Ordering::Relaxed)
        })
        .map_or(0, |n| n as u32)
}

/// `[lo, hi)` of vCPU `n`'s stack (`None` for vCPU 0 and unprepared ones).
pub fn stack_range(n: u32) -> Option<(u64, u64)> {
    let s = SLOTS.get(n as usize)?;
    let lo = s.stack_lo.load(Ordering::Relaxed);
    (lo != 0).then(|| (lo, s.stack_hi.load(Ordering::Relaxed)))
}

/// vCPU `n`'s `vcpu_info`: where it was registered, or its slot in the
/// shared info page.
pub fn vcpu_info_of(n: u32) -> &'static VcpuInfo {
    let addr = SLOTS.get(n as usize).map_or(0, |s| s.vcpu_info.load(Ordering::Acquire));
    if addr == 0 {
        return &crate::shared_info().vcpu_info[(n as usize).min(LEGACY_MAX_VCPUS - 1)];
    }
    // SAFETY: `addr` is the start of a page reserved for this vCPU's
    // vcpu_info (kept from the allocator, never freed), registered with
    // Xen, which writes it concurrently; `VcpuInfo` is all atomics.
    unsafe { &*(addr as *const VcpuInfo) }
}

/// vCPUs the domain has (`VCPUOP_is_up` answers `ENOENT` past the last),
/// at most [`MAX_VCPUS`]; and whether it has more than that.
pub fn count() -> (u32, bool) {
    let mut n = 1;
    while (n as usize) < MAX_VCPUS && vcpu::is_up(n).is_ok() {
        n += 1;
    }
    let more = (n as usize) == MAX_VCPUS && vcpu::is_up(n).is_ok();
    (n, more)
}

/// Whether Xen runs vCPU `n` now.
pub fn is_up(n: u32) -> Result<bool, XenError> {
    vcpu::is_up(n)
}

/// Reserves vCPU `n`'s stack and pages (once: they are kept for good)
/// and registers its `vcpu_info` (with upcalls masked in it): everything
/// before events can be bound to it. Later calls return at once, until
/// [`forget_after_restore`].
pub fn prepare(n: u32) -> Result<(), SmpError> {
    let slot = SLOTS.get(n as usize).filter(|_| n != 0).ok_or(SmpError::NoSuchVcpu(n))?;
    if slot.vcpu_info.load(Ordering::Acquire) != 0 {
        return Ok(());
    }
    vcpu::is_up(n).map_err(|_| SmpError::NoSuchVcpu(n))?;
    let map = crate::pv::mm::direct_map();
    let mut first = slot.frames.load(Ordering::Relaxed);
    if first == 0 {
        let run = crate::pv::mm::alloc_frames(FRAMES_PER_VCPU).ok_or(SmpError::NoMemory)?.keep();
        first = run.start.0;
        let page = |k: u64| map.virt(run.start + k).0 as usize;
        let (guard, gdt_page) = (page(0), page(3 + STACK_PAGES));
        // SAFETY: the frames were just taken from the allocator and kept:
        // nothing else refers to them, they are mapped writable in the
        // direct map, and Xen knows none of them yet.
        unsafe { core::ptr::write_bytes(gdt_page as *mut u8, 0, PAGE_SIZE) };
        if !crate::is_pvh() {
            // SAFETY: the guard and GDT pages are kept frames nothing
            // refers to; no other vCPU has run on them. The GDT page is
            // only ever read by Xen from now on (a descriptor page may
            // not be writable).
            unsafe {
                crate::pv::mm::unmap_page(VirtAddr(guard as u64))
                    .map_err(|e| SmpError::Xen("unmapping the stack guard", e.error))?;
                crate::pv::mm::make_read_only(VirtAddr(gdt_page as u64))
                    .map_err(|e| SmpError::Xen("making the GDT frame read-only", e.error))?;
            }
        } else {
            // PVH has no GDT frame to give Xen: that page splits the
            // guard's 2 MiB page of the identity map if it is not split
            // yet (then it is a page table for good).
            // SAFETY: the guard and the GDT page are kept frames of this
            // vCPU that nothing refers to, identity-mapped below 4 GiB.
            unsafe { crate::pvh::memory::unmap_4k(guard as u64, gdt_page as u64) }
                .map_err(|_| SmpError::NotReady)?;
        }
        slot.gdt.store(gdt_page as u64, Ordering::Relaxed);
        slot.frames.store(first, Ordering::Relaxed);
    }
    let page = |k: u64| map.virt(hypercall::Pfn(first + k)).0 as usize;
    let (stack_lo, stack_hi) = (page(1), page(1 + STACK_PAGES));
    let (info_page, control_page) = (stack_hi, page(2 + STACK_PAGES));
    // Nothing of an earlier domain's may be left in them (a restore).
    for p in [info_page, control_page] {
        // SAFETY: kept pages of this vCPU that Xen does not know (first
        // use, or after a restore: a new domain), seen only here.
        unsafe { core::ptr::write_bytes(p as *mut u8, 0, PAGE_SIZE) };
    }
    let info = crate::xen_frame(VirtAddr(info_page as u64)).ok_or(SmpError::NotReady)?;
    // SAFETY: the page is kept for good (never freed, ballooned or
    // granted), seen from now on only as the all-atomics `VcpuInfo`
    // through `vcpu_info_of`; vCPU `n` is down (never initialised in this
    // domain), which is when Xen accepts another vCPU's registration.
    unsafe { vcpu::register_vcpu_info(n, info, 0) }
        .map_err(|e| SmpError::Xen("VCPUOP_register_vcpu_info", e))?;
    slot.control.store(control_page, Ordering::Relaxed);
    slot.stack_lo.store(stack_lo as u64, Ordering::Relaxed);
    slot.stack_hi.store(stack_hi as u64, Ordering::Relaxed);
    slot.vcpu_info.store(info_page, Ordering::Release);
    // Xen copied the shared info slot; the vCPU starts with upcalls masked
    // whatever that held (PV: the mask; PVH: the context's IF = 0).
    vcpu_info_of(n).evtchn_upcall_mask.store(1, Ordering::SeqCst);
    ACTIVE.store(true, Ordering::SeqCst);
    Ok(())
}

/// In a restored domain (a new one, made by the toolstack from the saved
/// state): the secondary vCPUs, down when the domain was saved, are not
/// initialised, and Xen knows none of their `vcpu_info` and control block
/// registrations. Forgets those (the frames stay this vCPU's) so that
/// [`prepare`], [`fifo_init`] and [`start`] do them all again. Call on
/// vCPU 0 with every secondary vCPU down.
pub fn forget_after_restore() {
    for slot in SLOTS.iter().skip(1) {
        slot.vcpu_info.store(0, Ordering::Release);
        slot.fifo.store(false, Ordering::Release);
        slot.initialised.store(false, Ordering::Release);
    }
}

/// Registers vCPU `n`'s FIFO control block (after vCPU 0's: the domain
/// is on the FIFO ABI). Once; later calls return at once.
pub fn fifo_init(n: u32) -> Result<(), SmpError> {
    let slot = SLOTS.get(n as usize).filter(|_| n != 0).ok_or(SmpError::NoSuchVcpu(n))?;
    if slot.fifo.load(Ordering::Acquire) {
        return Ok(());
    }
    let page = slot.control.load(Ordering::Relaxed);
    if page == 0 || crate::fifo::registered() != Some(Ok(())) {
        return Err(SmpError::NotReady);
    }
    let frame = crate::xen_frame(VirtAddr(page as u64)).ok_or(SmpError::NotReady)?;
    // SAFETY: the control page is kept for good, used for nothing else
    // (not the vcpu_info, GDT or any FIFO page), seen only as the
    // all-atomics control block through `fifo_control`; registered once
    // (the `fifo` flag).
    unsafe { evtchn::init_control(frame, 0, n) }
        .map_err(|e| SmpError::Xen("EVTCHNOP_init_control", e))?;
    slot.fifo.store(true, Ordering::Release);
    Ok(())
}

/// vCPU `n`'s FIFO control block, once registered.
pub fn fifo_control(n: u32) -> Option<&'static EvtchnFifoControlBlock> {
    if n == 0 {
        return Some(crate::fifo_pages().0);
    }
    let slot = SLOTS.get(n as usize)?;
    if !slot.fifo.load(Ordering::Acquire) {
        return None;
    }
    let page = slot.control.load(Ordering::Relaxed);
    // SAFETY: a page kept for this vCPU's control block, registered with
    // Xen (which writes it concurrently); the struct is all atomics.
    Some(unsafe { &*(page as *const EvtchnFifoControlBlock) })
}

/// Starts vCPU `n` (prepared) running `entry(n)` with upcalls masked, on
/// its own stack. The first time: `VCPUOP_initialise` with a context
/// for the mode, then `VCPUOP_up`; after it took itself down
/// ([`down_self`]), `VCPUOP_up` only (it goes on where it stopped).
/// Every vCPU runs the same `entry` (the first one given).
pub fn start(n: u32, entry: fn(u32) -> !) -> Result<(), SmpError> {
    let slot = SLOTS.get(n as usize).filter(|_| n != 0).ok_or(SmpError::NoSuchVcpu(n))?;
    let top = slot.stack_hi.load(Ordering::Relaxed);
    if top == 0 {
        return Err(SmpError::NotReady);
    }
    ENTRY.call_once(|| entry);
    if !slot.initialised.load(Ordering::Acquire) {
        let r = if crate::is_pvh() {
            pvh::initialise(n, top)
        } else {
            let gdt = VirtAddr(slot.gdt.load(Ordering::Relaxed));
            let gdt = crate::xen_frame(gdt).ok_or(SmpError::NotReady)?;
            pv::initialise(n, top, gdt)
        };
        r.map_err(|e| SmpError::Xen("VCPUOP_initialise", e))?;
        slot.initialised.store(true, Ordering::Release);
    }
    vcpu::up(n).map_err(|e| SmpError::Xen("VCPUOP_up", e))
}

/// Page-table changes of the kernel's own (PV: the balloon's remaps, a
/// page-table frame made read-only, vmap's unmaps) flushed on every vCPU
/// of the domain, because another vCPU may hold the old translation.
static WIDE_FLUSHES: AtomicU64 = AtomicU64::new(0);

/// How a PV `update_va_mapping` of the kernel's must flush: on this vCPU
/// while no other vCPU ever had a stack (nothing else can have cached the
/// entry), else on every vCPU of the domain (`UVMF_ALL`: Xen flushes the
/// physical CPUs any of them may have left entries on; a vCPU that is
/// down now may have run before).
pub fn invlpg_scope() -> Uvmf {
    if ACTIVE.load(Ordering::Acquire) {
        WIDE_FLUSHES.fetch_add(1, Ordering::Relaxed);
        Uvmf::INVLPG.all_vcpus()
    } else {
        Uvmf::INVLPG
    }
}

/// The `mmuext_op` flush that goes with a batch of the kernel's page-table
/// updates: `TLB_FLUSH_LOCAL`, or `TLB_FLUSH_ALL` once another vCPU
/// may have run (see [`invlpg_scope`]).
pub fn tlb_flush_scope() -> u32 {
    use hypercall::abi::mmu::ext;
    if ACTIVE.load(Ordering::Acquire) {
        WIDE_FLUSHES.fetch_add(1, Ordering::Relaxed);
        ext::TLB_FLUSH_ALL
    } else {
        ext::TLB_FLUSH_LOCAL
    }
}

/// Flushes of the kernel's page-table changes made on every vCPU so far.
pub fn wide_flushes() -> u64 {
    WIDE_FLUSHES.load(Ordering::Relaxed)
}

/// Where both modes' entry stubs land, on the new vCPU's stack.
extern "C" fn secondary_entry(n: u64) -> ! {
    if crate::is_pvh() {
        // The IDT is the same table vCPU 0 loaded; the IDTR is per CPU.
        let _ = crate::pvh::idt::load_here(n as u32);
    }
    match ENTRY.get() {
        Some(f) => f(n as u32),
        None => loop {
            let _ = vcpu::down(n as u32);
        },
    }
}

/// Takes the calling vCPU down (`VCPUOP_down` on itself); returns when it
/// is brought up again with [`start`]. vCPU 0 is never taken down.
pub fn down_self() -> Result<(), XenError> {
    let n = current();
    if n == 0 {
        return Err(XenError::EINVAL);
    }
    vcpu::down(n)
}

/// Flushes this vCPU's TLB: one page (`Some(va)`) or all of it.
pub fn flush_tlb_local(va: Option<usize>) {
    if crate::is_pvh() {
        match va {
            Some(va) => x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va as u64)),
            None => x86_64::instructions::tlb::flush_all(),
        }
    } else {
        let _ = match va {
            Some(va) => mmu::invlpg_local(va),
            None => mmu::tlb_flush_local(),
        };
    }
}

/// PV: flushes one page (`Some(va)`) or whole TLBs on every vCPU of the
/// bitmap `vcpus` (bit n = vCPU n), in one hypercall that returns when all
/// have flushed (`MMUEXT_INVLPG_MULTI` / `MMUEXT_TLB_FLUSH_MULTI`). PVH has
/// no `mmuext_op` (`ENOSYS`): flush with IPIs there.
pub fn flush_tlb_multi(vcpus: u64, va: Option<usize>) -> Result<(), XenError> {
    if crate::is_pvh() {
        return Err(XenError::ENOSYS);
    }
    let mask = [vcpus];
    match va {
        Some(va) => mmu::invlpg_multi(va, &mask),
        None => mmu::tlb_flush_multi(&mask),
    }
}
