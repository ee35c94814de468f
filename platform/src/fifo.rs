//! The pages the FIFO event channel ABI shares with Xen: one control block
//! (vCPU 0) and the first page of the event array.
//!
//! Once registered, Xen writes both pages for the rest of the domain's
//! life (`EVTCHNOP_init_control`/`expand_array` are `unsafe` for that
//! reason). So they are two pages of the image's .bss, reserved for this:
//! the frame allocator never hands out image frames (they lie below
//! `first_free`), the balloon only gives back frames it took from the
//! allocator, nothing grants them, and Rust sees them only as atomics,
//! through [`fifo_pages`].

use crate::memory::layout::VirtAddr;
use core::sync::atomic::AtomicU32;
use hypercall::abi::event_channel::{fifo, EvtchnFifoControlBlock};
use hypercall::ops::event_channel as evtchn;
use hypercall::{Mfn, XenError};
use spin::Once;

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
    crate::xen_frame(VirtAddr(va as u64)).ok_or(XenError::EFAULT)
}

/// The outcome of the one registration.
static REGISTERED: Once<Result<(), XenError>> = Once::new();

/// Hands both pages to Xen and switches the domain to the FIFO ABI. Only
/// the first call talks to Xen; later ones return its outcome, so each
/// page is given to Xen once.
pub fn fifo_init() -> Result<(), XenError> {
    *REGISTERED.call_once(|| {
        let control = core::ptr::addr_of!(fifo_control_page) as usize;
        let array = core::ptr::addr_of!(fifo_array_page) as usize;
        // SAFETY: `fifo_control_page` is a page of the image reserved for
        // vCPU 0's control block (see the module comment): never freed or
        // reused, seen by Rust only as the all-atomics control block
        // through `fifo_pages`; this is the only registration (`Once`), and
        // it is not the array page.
        unsafe { evtchn::init_control(page_mfn(control)?, 0, 0) }?;
        // SAFETY: `fifo_array_page` is a page of the image reserved for the
        // event array on the same terms, seen only as atomic words, and
        // given to Xen once.
        unsafe { evtchn::expand_array(page_mfn(array)?) }?;
        Ok(())
    })
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

/// In a restored domain (new to Xen, back on the 2-level ABI): clears both
/// pages, which hold the old domain's words, and hands them to Xen again.
/// Only after a successful [`fifo_init`] in the old domain.
pub fn fifo_reinit() -> Result<(), XenError> {
    if REGISTERED.get() != Some(&Ok(())) {
        return Err(XenError::EINVAL);
    }
    let (cb, words) = fifo_pages();
    for w in words {
        w.store(0, core::sync::atomic::Ordering::Relaxed);
    }
    // SAFETY: the control block page, seen only as atomics: every u32 of it.
    let cb_words = unsafe {
        core::slice::from_raw_parts(cb as *const _ as *const AtomicU32, hypercall::PAGE_SIZE / 4)
    };
    for w in cb_words {
        w.store(0, core::sync::atomic::Ordering::Relaxed);
    }
    let control = core::ptr::addr_of!(fifo_control_page) as usize;
    let array = core::ptr::addr_of!(fifo_array_page) as usize;
    // SAFETY: the same reserved pages as `fifo_init`, registered with a
    // domain that no longer exists; the new domain has none: each is given
    // to Xen once again, and Rust sees them only as atomics.
    unsafe { evtchn::init_control(page_mfn(control)?, 0, 0) }?;
    // SAFETY: as above, for the event array page.
    unsafe { evtchn::expand_array(page_mfn(array)?) }?;
    Ok(())
}

/// The outcome of vCPU 0's registration (`None`: not tried).
pub(crate) fn registered() -> Option<Result<(), XenError>> {
    REGISTERED.get().copied()
}
