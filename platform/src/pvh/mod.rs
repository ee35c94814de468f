//! The PVH back end: the same kernel in an HVM container without a device
//! model. Native page tables (guest frame = pseudo-physical frame), the
//! hypercall page filled through an MSR, shared info and grant frames put
//! into our physical space with `XENMEM_add_to_physmap`, events through an
//! IDT vector, console and XenStore found through HVM parameters.
//!
//! What the rest of the kernel reads from a PV `start_info` (command line,
//! memory size, console and store rings) is gathered into a `StartInfo` of
//! our own, so the code above the platform needs no second path.

mod balloon;
pub mod bench;
pub use balloon::give_back_again;
mod entry32;
pub mod grants;
pub mod idt;
pub mod memory;
pub mod suspend;
mod tss;

use crate::hooks::emergency_print;
use crate::memory::balloon::Holes;
use crate::memory::layout::VirtAddr;
use crate::memory::pagetable::MmuError;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use hypercall::abi::console::XenconsInterface;
use hypercall::abi::hvm::{self, HvmStartInfo};
use hypercall::abi::shared_info::SharedInfo;
use hypercall::abi::start_info::{ConsoleUnion, StartInfo, MAX_GUEST_CMDLINE};
use hypercall::abi::xenstore::XenstoreDomainInterface;
use hypercall::ops::hvm as hvm_op;
use hypercall::ops::multicall::TimerChange;
use hypercall::{EvtchnPort, Mfn, Pfn, XenError, PAGE_SIZE};
use spin::Once;

extern "C" {
    static hypercall_page: [u8; PAGE_SIZE];
    static shared_info_page: u8;
}

static ACTIVE: AtomicBool = AtomicBool::new(false);
static IF_AT_ENTRY: AtomicBool = AtomicBool::new(true);
static HVM_START_INFO: Once<&'static HvmStartInfo> = Once::new();

/// Whether the guest entered through the PVH entry.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// `hvm_start_info` as Xen gave it (PVH only).
pub fn hvm_start_info() -> Option<&'static HvmStartInfo> {
    HVM_START_INFO.get().copied()
}

/// The memory map Xen passed (PVH only).
pub fn memmap() -> &'static [hvm::HvmMemmapTableEntry] {
    hvm_start_info().map_or(&[], memory::memmap)
}

/// Whether interrupts (the upcall) were off when Rust was entered: the
/// entry stub runs `cli` before anything else and Xen starts PVH vCPUs
/// with IF clear.
pub fn interrupts_off_at_entry() -> bool {
    !IF_AT_ENTRY.load(Ordering::Relaxed)
}

/// CR0, CR4 and EFER: paging, PAE and long mode as the entry set them.
pub fn paging_registers() -> (u64, u64, u64) {
    use x86_64::registers::control::{Cr0, Cr4};
    use x86_64::registers::model_specific::Efer;
    (Cr0::read_raw(), Cr4::read_raw(), Efer::read_raw())
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
    emergency_print(format_args!("PVH start of day: {what}\n"));
    loop {
        // SAFETY: with interrupts off, hlt stops this vCPU for good; Xen
        // reports the domain as idle until the toolstack destroys it.
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
fn checked_start_info(paddr: u64) -> &'static HvmStartInfo {
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
/// RAM behind it goes back to Xen): at start of day, and again in a new
/// domain after a suspend.
pub(crate) fn map_shared_info() -> Result<&'static SharedInfo, hypercall::XenError> {
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

/// Pages shared with a dom0 daemon through an HVM parameter: structs made
/// only of atomics.
trait DaemonPage {}
impl DaemonPage for XenconsInterface {}
impl DaemonPage for XenstoreDomainInterface {}

/// The page and port named by two HVM parameters.
fn daemon_page<T: DaemonPage>(pfn_param: u32, port_param: u32) -> Option<(&'static T, EvtchnPort)> {
    let pfn = hvm_op::get_param(pfn_param).ok().filter(|&p| p != 0)?;
    let port = hvm_op::get_param(port_param).ok()?;
    if pfn >= (1 << 32) / PAGE_SIZE as u64 || port > u64::from(u32::MAX) {
        return None;
    }
    // SAFETY: the console and store rings are special pages of the domain
    // below 4 GiB (in the boot identity map, outside the RAM the frame
    // allocator hands out), shared with the daemon for the guest's life;
    // `T` is all atomics.
    let page = unsafe { &*((pfn as usize * PAGE_SIZE) as *const T) };
    Some((page, EvtchnPort(port as u32)))
}

/// The XenStore ring and its event channel, from HVM parameters.
pub fn store_page() -> Option<(&'static XenstoreDomainInterface, EvtchnPort)> {
    daemon_page(hvm::param::STORE_PFN, hvm::param::STORE_EVTCHN)
}

/// The command line's length (NUL excluded), read from physical memory.
fn cmdline_bytes(paddr: u64) -> &'static [u8] {
    if paddr == 0 || paddr >= 1 << 32 {
        return &[];
    }
    // SAFETY: the builder wrote a NUL-terminated string at `paddr`, below
    // 4 GiB (identity-mapped); it is read up to the NUL or the PV limit.
    let bytes = unsafe { core::slice::from_raw_parts(paddr as *const u8, MAX_GUEST_CMDLINE) };
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(MAX_GUEST_CMDLINE - 1);
    &bytes[..len]
}

/// A PV-style `start_info` describing this PVH domain.
fn synthesize_start_info(
    si: &HvmStartInfo,
    nr_pages: u64,
    cmdline: &[u8],
    console: Option<(Mfn, EvtchnPort)>,
) -> StartInfo {
    let mut magic = [0u8; 32];
    magic[..18].copy_from_slice(b"xen-3.0-x86_64-pvh");
    let mut cmd_line = [0u8; MAX_GUEST_CMDLINE];
    cmd_line[..cmdline.len()].copy_from_slice(cmdline);
    let store = hvm_op::get_param(hvm::param::STORE_PFN).unwrap_or(0);
    let store_evtchn = hvm_op::get_param(hvm::param::STORE_EVTCHN).unwrap_or(0);
    let (cmfn, cport) = console.unwrap_or((Mfn(0), EvtchnPort(0)));
    StartInfo {
        magic,
        nr_pages,
        shared_info: core::ptr::addr_of!(shared_info_page) as u64,
        flags: si.flags,
        store_mfn: store,
        store_evtchn: store_evtchn as u32,
        console: ConsoleUnion::new_domu(cmfn, cport),
        pt_base: 0,
        nr_pt_frames: 0,
        mfn_list: 0,
        mod_start: memory::modules(si).first().map_or(0, |m| m.paddr),
        mod_len: memory::modules(si).first().map_or(0, |m| m.size),
        cmd_line,
        first_p2m_pfn: 0,
        nr_p2m_frames: 0,
    }
}

/// Masks the event upcall (`cli`); returns whether it was masked before.
/// Under PVH `evtchn_upcall_mask` does not stop Xen's vector injection:
/// the interrupt flag does.
pub fn irq_disable() -> bool {
    let was_enabled = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::disable();
    !was_enabled
}

/// Unmasks the event upcall (`sti`): a pending vector is taken at once.
pub fn irq_enable() {
    x86_64::instructions::interrupts::enable();
}

/// Whether the upcall is masked (interrupts off).
pub fn irq_masked() -> bool {
    !x86_64::instructions::interrupts::are_enabled()
}

/// Takes a pending upcall with the direction flag set, as if the event
/// had arrived inside a backward `memmove` (`std; rep movsq`): sets DF,
/// unmasks for one instruction (`sti; nop`: the interrupt is taken after
/// the `nop`), masks again and clears DF. Call with upcalls masked (the
/// self-test's check that handlers run with DF clear).
pub fn take_upcall_with_df_set() {
    // SAFETY: DF is set only around `sti; nop; cli`, which do not use it.
    // An upcall taken there enters through the IDT stub, which clears DF
    // for the handler (`cld`) and restores the flags with `iretq`; `cld`
    // then gives the Rust code after this block the flag the ABI wants.
    // Interrupts end masked, as the caller had them.
    unsafe { core::arch::asm!("std", "sti", "nop", "cli", "cld") };
}

/// Whether the direction flag is set (it must not be, in Rust code).
pub fn direction_flag() -> bool {
    x86_64::registers::rflags::read().contains(x86_64::registers::rflags::RFlags::DIRECTION_FLAG)
}

/// Blocks the vCPU until an event: `sti; hlt`. The `sti` shadow makes the
/// unmask and the halt atomic, so an event pending at the `sti` ends the
/// halt instead of being missed (the PVH form of `SCHEDOP_block`).
pub fn block() {
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// The PVH back end.
pub struct Pvh;

static MEMORY: Once<&'static crate::pv::mm::MemoryInfo> = Once::new();

impl crate::Backend for Pvh {
    fn name(&self) -> &'static str {
        "pvh"
    }

    fn cmdline(&self) -> &'static str {
        crate::pv::start_info().cmdline()
    }

    fn nr_pages(&self) -> u64 {
        crate::pv::start_info().nr_pages
    }

    fn console_page(&self) -> Option<(&'static XenconsInterface, EvtchnPort)> {
        daemon_page(hvm::param::CONSOLE_PFN, hvm::param::CONSOLE_EVTCHN)
    }

    fn store_page(&self) -> Option<(&'static XenstoreDomainInterface, EvtchnPort)> {
        store_page()
    }

    fn init_memory(&self) -> &'static (dyn fmt::Display + Sync) {
        *MEMORY.call_once(|| {
            let si = HVM_START_INFO.get().expect("set at entry");
            let cmdline_len = cmdline_bytes(si.cmdline_paddr).len() as u64;
            let si_paddr = *si as *const HvmStartInfo as u64;
            let (layout, p2m) = memory::init(si, si_paddr, cmdline_len);
            // The guest's own pfn -> pfn table; never published (there is
            // no P2M for the toolstack under PVH).
            crate::pv::p2m::set(p2m);
            crate::pv::mm::init_pvh(
                layout.map,
                layout.first_free,
                layout.free.iter(),
                layout.root,
                layout.guard_page,
            )
        })
    }

    fn grow_pfn_limit(&self, pfns: u64) -> Result<u64, &'static str> {
        let have = crate::pfn_limit();
        if pfns <= have {
            return Ok(have);
        }
        Err("PVH has no P2M for the toolstack; the balloon stays within the boot size")
    }

    fn unpopulated_holes(&self) -> Option<Holes> {
        // No growth past the boot size (grow_pfn_limit).
        None
    }

    fn balloon_out(&self, pages: u64) -> Result<Holes, MmuError> {
        balloon::balloon_out(pages)
    }

    fn balloon_in(&self, holes: Holes) -> Result<(), (MmuError, Holes)> {
        balloon::balloon_in(holes)
    }

    fn install_entry_points(&self) -> Result<(), XenError> {
        idt::install()
    }

    fn xen_frame(&self, va: VirtAddr) -> Option<Mfn> {
        // GFN = PFN = address / 4096 in the identity map, for RAM we have.
        let pfn = Pfn(va.0 / PAGE_SIZE as u64);
        crate::pv::pfn_to_mfn(pfn).filter(|m| m.0 != u64::MAX)
    }

    fn mask_upcalls(&self) -> bool {
        irq_disable()
    }

    fn unmask_upcalls(&self) {
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        irq_enable()
    }

    fn upcalls_masked(&self) -> bool {
        irq_masked()
    }

    fn stack_word(&self, addr: u64) -> Option<u64> {
        crate::pv::stack_word(addr)
    }

    fn fault_address(&self) -> u64 {
        x86_64::registers::control::Cr2::read_raw()
    }

    fn block(&self) {
        block()
    }

    fn block_carrying(&self, sends: &[EvtchnPort], timer: TimerChange) -> u64 {
        // Each call alone, then `hlt` (SCHEDOP_block would return with the
        // interrupt flag still clear). Not one multicall: with PVH guests
        // under this lab's emulator, runs with the multicall saw stalls and
        // a TX stall that runs without it had not (docs/exits.md); the
        // exits saved are the PV guest's.
        crate::pv::calls_alone(crate::smp::current(), sends, timer);
        block();
        0
    }
}

/// Rust's first code in a PVH domain (called by `entry32` in long mode).
pub(crate) extern "C" fn rust_pvh_entry(start_info_paddr: u64) -> ! {
    IF_AT_ENTRY.store(x86_64::instructions::interrupts::are_enabled(), Ordering::Relaxed);
    debugcon(b"RustPV: PVH entry\n");
    ACTIVE.store(true, Ordering::Relaxed);
    let si = checked_start_info(start_info_paddr);
    HVM_START_INFO.call_once(|| si);
    if let Err(e) = init_hypercall_page() {
        fatal(e);
    }
    let shared = map_shared_info().unwrap_or_else(|_| fatal("cannot map shared info"));
    crate::pv::UPCALL_MASK_AT_ENTRY
        .store(shared.vcpu_info[0].evtchn_upcall_mask.load(Ordering::Relaxed), Ordering::Relaxed);

    // nr_pages: the end of RAM below 4 GiB (what the identity map covers).
    let nr_pages = memory::ram_end(si);
    let cmdline = cmdline_bytes(si.cmdline_paddr);
    let console =
        daemon_page::<XenconsInterface>(hvm::param::CONSOLE_PFN, hvm::param::CONSOLE_EVTCHN)
            .map(|(r, port)| (Mfn(r as *const XenconsInterface as u64 / PAGE_SIZE as u64), port));
    crate::pv::START_INFO.call_once(|| synthesize_start_info(si, nr_pages, cmdline, console));
    crate::interface::start(&Pvh, shared);

    extern "Rust" {
        /// The image's main, defined by [`crate::entry!`].
        fn __platform_image_main() -> !;
    }
    // SAFETY: the symbol is defined only by `platform::entry!`, as a safe
    // `fn() -> !` with this signature and the Rust ABI; the back end is set
    // up, as the kernel's main expects.
    unsafe { __platform_image_main() }
}
