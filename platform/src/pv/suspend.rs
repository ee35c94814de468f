//! The unsafe middle of a suspend (`xl save`, `xl migrate`): what must
//! hold while the toolstack reads the domain, the hypercall, and what the
//! new domain looks like when it returns. Linux does the same in
//! `arch/x86/xen/suspend.c` (`xen_pv_pre_suspend`/`xen_pv_post_suspend`).
//!
//! Before the call:
//! - the store and console frame numbers in the start-info page become
//!   pfns: the toolstack reads them as pfns and writes the new domain's
//!   machine frames back;
//! - the shared info page is unmapped (our page tables may map only our
//!   own frames while the toolstack rewrites them to pfns): its virtual
//!   page maps its own .bss frame meanwhile, upcalls masked there too.
//!
//! After: the suspend was cancelled (return 1: everything is as it was,
//! put back) or this is a new domain (return 0: every machine frame moved;
//! the toolstack rewrote the P2M, our page tables and the start-info page,
//! which now names the new shared info frame, store and console frames
//! and their event channels). Either way shared info is mapped again and
//! the P2M is published again.

use super::{mfn_to_pfn, p2m, pfn_to_mfn, shared_info_va, start_info_page, virt_base};
use crate::shared_info;
use core::mem::offset_of;
use core::sync::atomic::Ordering;
use hypercall::abi::start_info::StartInfo;
use hypercall::abi::xen::{pte, Uvmf};
use hypercall::ops::{mmu, sched_op};
use hypercall::{EvtchnPort, Mfn, Pfn, XenError, PAGE_SIZE};

/// What the suspend came back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The toolstack cancelled it (checkpoint, failed migration): the
    /// same domain, every port and grant as before.
    Cancelled,
    /// A new domain (restore, migration): new ports for these two.
    Resumed { store: EvtchnPort, console: EvtchnPort },
}

const STORE_MFN: usize = offset_of!(StartInfo, store_mfn);
const STORE_EVTCHN: usize = offset_of!(StartInfo, store_evtchn);
const CONSOLE_MFN: usize = offset_of!(StartInfo, console);
const CONSOLE_EVTCHN: usize = offset_of!(StartInfo, console) + 8;
const SHARED_INFO: usize = offset_of!(StartInfo, shared_info);

fn read<T: Copy>(off: usize) -> T {
    // SAFETY: `off` is a field offset inside the start-info page, which
    // stays mapped; nothing holds a reference to the page (platform keeps
    // a copy), and the toolstack only writes it while we are suspended.
    unsafe { core::ptr::read_volatile((start_info_page() + off) as *const T) }
}

fn write<T: Copy>(off: usize, v: T) {
    // SAFETY: as in `read`; the page is ours and writable.
    unsafe { core::ptr::write_volatile((start_info_page() + off) as *mut T, v) }
}

fn page_pfn(va: usize) -> Pfn {
    Pfn(((va - virt_base()) / PAGE_SIZE) as u64)
}

fn map_shared_info(machine: u64) -> Result<(), XenError> {
    let entry =
        machine & pte::ADDR_MASK | pte::PRESENT | pte::RW | pte::USER | pte::ACCESSED | pte::DIRTY;
    // SAFETY: the shared info page of the image is only ever seen as the
    // all-atomics `SharedInfo`; it maps Xen's shared info frame or, while
    // suspended, its own .bss frame. Either is valid for that type.
    unsafe { mmu::update_va_mapping(shared_info_va(), entry, Uvmf::INVLPG) }
}

/// Suspends the domain (under PVH: [`crate::pvh::suspend`]). Call with
/// upcalls masked, the grant table's frames unmapped, no request to
/// xenstored in flight and the console flushed. `Err` when Xen refused
/// the suspend (nothing changed).
pub fn suspend() -> Result<Outcome, XenError> {
    if crate::pvh::active() {
        // No start info or P2M to rewrite: see pvh::suspend.
        return crate::pvh::suspend::suspend();
    }
    let si_mfn = pfn_to_mfn(page_pfn(start_info_page())).ok_or(XenError::EFAULT)?;
    let store_mfn = Mfn(read::<u64>(STORE_MFN));
    let console_mfn = Mfn(read::<u64>(CONSOLE_MFN));
    let store_pfn = mfn_to_pfn(store_mfn).ok_or(XenError::EFAULT)?;
    let console_pfn = mfn_to_pfn(console_mfn).ok_or(XenError::EFAULT)?;
    let shared_machine = read::<u64>(SHARED_INFO);
    let own = pfn_to_mfn(page_pfn(shared_info_va())).ok_or(XenError::EFAULT)?;

    write(STORE_MFN, store_pfn.0);
    write(CONSOLE_MFN, console_pfn.0);
    if let Err(e) = map_shared_info(own.addr().0) {
        write(STORE_MFN, store_mfn.0);
        write(CONSOLE_MFN, console_mfn.0);
        return Err(e);
    }
    // The stand-in page answers "upcalls masked" to whoever looks.
    shared_info().vcpu_info[0].evtchn_upcall_mask.store(1, Ordering::SeqCst);

    // SAFETY: Xen's and other domains' frames are unmapped (shared info
    // above, grant frames by the caller), the frame fields are pfns; after
    // a 0 return the code below rebuilds from the rewritten start info.
    let r = unsafe { sched_op::suspend(si_mfn) };
    let outcome = match r {
        Ok(0) => Outcome::Resumed {
            store: EvtchnPort(read::<u32>(STORE_EVTCHN)),
            console: EvtchnPort(read::<u32>(CONSOLE_EVTCHN)),
        },
        Ok(_) | Err(_) => {
            // Cancelled, or refused: the same frames as before.
            write(STORE_MFN, store_mfn.0);
            write(CONSOLE_MFN, console_mfn.0);
            Outcome::Cancelled
        }
    };
    let machine = match outcome {
        Outcome::Cancelled => shared_machine,
        Outcome::Resumed { .. } => read::<u64>(SHARED_INFO),
    };
    if let Err(e) = map_shared_info(machine) {
        // Without shared info there are no events and no clock.
        crate::hooks::emergency_print(format_args!("suspend: cannot map shared info: {e}\n"));
        crate::shutdown(hypercall::abi::sched::ShutdownReason::Crash);
    }
    p2m::publish(shared_info());
    r.map(|_| outcome)
}
