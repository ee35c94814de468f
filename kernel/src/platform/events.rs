//! The pages the FIFO event channel ABI shares with Xen: one control block
//! (vCPU 0) and the first page of the event array.

use super::{pfn_to_mfn, virt_base};
use core::sync::atomic::AtomicU32;
use hypercall::abi::event_channel::{fifo, EvtchnFifoControlBlock};
use hypercall::ops::event_channel as evtchn;
use hypercall::{Mfn, Pfn, XenError, PAGE_SIZE};

extern "C" {
    static fifo_control_page: u8;
    static fifo_array_page: u8;
}

core::arch::global_asm!(
    ".pushsection .bss.fifo_pages, \"aw\", @nobits",
    ".balign 4096",
    ".globl fifo_control_page",
    "fifo_control_page:",
    ".skip 4096",
    ".globl fifo_array_page",
    "fifo_array_page:",
    ".skip 4096",
    ".popsection",
);

fn page_mfn(va: usize) -> Result<Mfn, XenError> {
    pfn_to_mfn(Pfn(((va - virt_base()) / PAGE_SIZE) as u64)).ok_or(XenError::EFAULT)
}

/// Hands both pages to Xen and switches the domain to the FIFO ABI.
pub fn fifo_init() -> Result<(), XenError> {
    let control = core::ptr::addr_of!(fifo_control_page) as usize;
    let array = core::ptr::addr_of!(fifo_array_page) as usize;
    evtchn::init_control(page_mfn(control)?, 0, 0)?;
    evtchn::expand_array(page_mfn(array)?)?;
    Ok(())
}

/// The control block and the event words.
pub fn fifo_pages() -> (&'static EvtchnFifoControlBlock, &'static [AtomicU32]) {
    let control = core::ptr::addr_of!(fifo_control_page) as *const EvtchnFifoControlBlock;
    let array = core::ptr::addr_of!(fifo_array_page) as *const AtomicU32;
    // SAFETY: both are page-aligned pages of our .bss reserved for this and
    // referenced nowhere else. Xen writes them concurrently once they are
    // registered, so they are only ever seen as atomics: the control block
    // struct is all atomics and the array is WORDS_PER_PAGE AtomicU32s.
    unsafe { (&*control, core::slice::from_raw_parts(array, fifo::WORDS_PER_PAGE)) }
}
