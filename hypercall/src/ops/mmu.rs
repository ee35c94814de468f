//! Page-table operations of a PV guest: `update_va_mapping`, `mmu_update`
//! and `mmuext_op`.
//!
//! Soundness: every request here can change what a virtual address of
//! this guest maps (or whether a frame may be written), and `mmu_update`
//! names page-table entries by caller-chosen machine address. Xen checks
//! that the entries and frames are this domain's and that no page table
//! becomes writable, but it cannot know which of the guest's pages Rust
//! still refers to: so `update_va_mapping`, `mmu_update` and `mmuext_op`
//! are `unsafe`. The two flushes are safe: they change no mapping, only
//! drop cached translations. Request arrays are read only during the call.

use crate::abi::mmu::{MmuUpdate, MmuextOp};
use crate::abi::xen::{Uvmf, DOMID_SELF};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};
use core::fmt;

/// Replaces the page-table entry that maps `va` with `pte` (a machine
/// frame with `abi::xen::pte` bits), flushing as `flags` says.
///
/// # Safety
/// Whatever `va` mapped before is gone (or changes) after the call: no
/// live Rust reference may point into that page, and the new frame must be
/// one the guest may map with those rights.
pub unsafe fn update_va_mapping(va: usize, pte: u64, flags: Uvmf) -> XenResult<()> {
    // SAFETY: the caller guarantees the remap keeps the guest's memory sound.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::UPDATE_VA_MAPPING }>(va as u64, pte, flags.bits(), 0, 0)
    })
    .map(drop)
}

/// A batch Xen stopped part-way: the first `done` requests took effect,
/// request `done` failed with `error`, the rest were not tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchError {
    pub error: XenError,
    pub done: usize,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} after {} requests", self.error, self.done)
    }
}

/// `HYPERVISOR_mmu_update(reqs, count, &done, DOMID_SELF)`: applies the
/// requests in order. Xen validates each one (an entry may only map frames
/// of this domain; a page-table frame may not be mapped writable) and
/// preempts itself on long batches, continuing transparently.
///
/// # Safety
/// The requests change this guest's page tables or machine-to-phys
/// entries: no live Rust reference may point into memory they unmap or
/// make read-only, and frames they map must not alias memory Rust owns.
pub unsafe fn mmu_update(reqs: &[MmuUpdate]) -> Result<(), BatchError> {
    let mut done: u32 = 0;
    // SAFETY: `reqs` is a live array of `struct mmu_update` of the length
    // given and `done` a writable `unsigned int`; the caller guarantees the
    // requests keep the guest's memory sound.
    let ret = unsafe {
        hypercall::<{ nr::MMU_UPDATE }>(
            reqs.as_ptr() as u64,
            reqs.len() as u64,
            &mut done as *mut u32 as u64,
            DOMID_SELF.into(),
            0,
        )
    };
    XenError::from_ret(ret).map(drop).map_err(|error| BatchError { error, done: done as usize })
}

/// `HYPERVISOR_mmuext_op(ops, count, &done, DOMID_SELF)`: pins, unpins,
/// flushes, in order.
///
/// # Safety
/// Pinning and unpinning change which frames may be written; a new base
/// pointer switches address spaces; the caller keeps Rust's view of memory
/// true across them.
pub unsafe fn mmuext_op(ops: &[MmuextOp]) -> Result<(), BatchError> {
    let mut done: u32 = 0;
    // SAFETY: `ops` is a live array of `struct mmuext_op` of the length
    // given and `done` a writable `unsigned int`; the caller guarantees the
    // operations keep the guest's memory sound.
    let ret = unsafe {
        hypercall::<{ nr::MMUEXT_OP }>(
            ops.as_ptr() as u64,
            ops.len() as u64,
            &mut done as *mut u32 as u64,
            DOMID_SELF.into(),
            0,
        )
    };
    XenError::from_ret(ret).map(drop).map_err(|error| BatchError { error, done: done as usize })
}

/// Flushes this vCPU's whole TLB (`MMUEXT_TLB_FLUSH_LOCAL`).
pub fn tlb_flush_local() -> XenResult<()> {
    let op = [MmuextOp::plain(crate::abi::mmu::ext::TLB_FLUSH_LOCAL)];
    // SAFETY: a TLB flush changes no mapping.
    unsafe { mmuext_op(&op) }.map_err(|e| e.error)
}

/// Flushes the TLB of every vCPU of the domain (`MMUEXT_TLB_FLUSH_ALL`).
pub fn tlb_flush_all() -> XenResult<()> {
    let op = [MmuextOp::plain(crate::abi::mmu::ext::TLB_FLUSH_ALL)];
    // SAFETY: a TLB flush changes no mapping.
    unsafe { mmuext_op(&op) }.map_err(|e| e.error)
}

/// Flushes one page's translation on this vCPU (`MMUEXT_INVLPG_LOCAL`).
pub fn invlpg_local(va: usize) -> XenResult<()> {
    let op = [MmuextOp::on_va(crate::abi::mmu::ext::INVLPG_LOCAL, va as u64)];
    // SAFETY: a TLB flush changes no mapping.
    unsafe { mmuext_op(&op) }.map_err(|e| e.error)
}

/// Flushes the whole TLB of every vCPU in `vcpus` (a bitmap: bit `n` of
/// word `n / 64` is vCPU `n`), `MMUEXT_TLB_FLUSH_MULTI`. Xen reads the
/// bitmap during the call and returns once every named vCPU has flushed.
pub fn tlb_flush_multi(vcpus: &[u64]) -> XenResult<()> {
    let op = [MmuextOp {
        cmd: crate::abi::mmu::ext::TLB_FLUSH_MULTI,
        arg1: 0,
        arg2: vcpus.as_ptr() as u64,
    }];
    // SAFETY: a TLB flush changes no mapping; the bitmap is borrowed for
    // the call.
    unsafe { mmuext_op(&op) }.map_err(|e| e.error)
}

/// Flushes the translation of the page at `va` on every vCPU in `vcpus`
/// (as for [`tlb_flush_multi`]), `MMUEXT_INVLPG_MULTI`.
pub fn invlpg_multi(va: usize, vcpus: &[u64]) -> XenResult<()> {
    let op = [MmuextOp {
        cmd: crate::abi::mmu::ext::INVLPG_MULTI,
        arg1: va as u64,
        arg2: vcpus.as_ptr() as u64,
    }];
    // SAFETY: as for `tlb_flush_multi`.
    unsafe { mmuext_op(&op) }.map_err(|e| e.error)
}
