//! `HYPERVISOR_multicall`: several hypercalls in one trap into Xen.
//!
//! Each [`MulticallEntry`] names a hypercall and its arguments; Xen runs
//! them in order and writes each one's return value into its `result`. The
//! constructors here only build entries (safe: an entry is plain data and
//! does nothing until it runs, even one that holds the address of a slice
//! that has since gone); [`multicall`] runs them (unsafe, since the
//! entries carry raw pointers the caller keeps alive, and change page
//! tables).

use crate::abi::memory::{cmd, XenMemoryReservation};
use crate::abi::mmu::{MmuUpdate, MmuextOp, MulticallEntry};
use crate::abi::xen::{Uvmf, DOMID_SELF};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};

/// An `update_va_mapping(va, pte, flags)` entry.
pub fn update_va_mapping(va: usize, pte: u64, flags: Uvmf) -> MulticallEntry {
    MulticallEntry {
        op: nr::UPDATE_VA_MAPPING.into(),
        result: 0,
        args: [va as u64, pte, flags.bits(), 0, 0, 0],
    }
}

/// An `mmu_update(reqs, len, NULL, DOMID_SELF)` entry. `reqs` must outlive
/// the [`multicall`] that runs it.
pub fn mmu_update(reqs: &[MmuUpdate]) -> MulticallEntry {
    MulticallEntry {
        op: nr::MMU_UPDATE.into(),
        result: 0,
        args: [reqs.as_ptr() as u64, reqs.len() as u64, 0, DOMID_SELF.into(), 0, 0],
    }
}

/// An `mmuext_op(ops, len, NULL, DOMID_SELF)` entry. `ops` must outlive
/// the [`multicall`] that runs it.
pub fn mmuext_op(ops: &[MmuextOp]) -> MulticallEntry {
    MulticallEntry {
        op: nr::MMUEXT_OP.into(),
        result: 0,
        args: [ops.as_ptr() as u64, ops.len() as u64, 0, DOMID_SELF.into(), 0, 0],
    }
}

/// A `memory_op(XENMEM_decrease_reservation, arg)` entry. `arg`, and the
/// extent list it names, must outlive the [`multicall`] that runs it;
/// its `result` is the number of extents Xen took (it stops at the first
/// it cannot free).
pub fn decrease_reservation(arg: &XenMemoryReservation) -> MulticallEntry {
    MulticallEntry {
        op: nr::MEMORY_OP.into(),
        result: 0,
        args: [cmd::DECREASE_RESERVATION.into(), arg as *const _ as u64, 0, 0, 0, 0],
    }
}

/// The index and error of the first entry whose call failed.
pub fn first_failure(entries: &[MulticallEntry]) -> Option<(usize, XenError)> {
    entries
        .iter()
        .enumerate()
        .find_map(|(i, e)| XenError::from_ret(e.result as i64).err().map(|err| (i, err)))
}

/// Runs `entries` in one hypercall. `Err` means Xen rejected the batch
/// itself; each entry's own outcome is in its `result` (see
/// [`first_failure`]). Xen runs every entry even after one fails.
///
/// # Safety
/// Every entry must be a call the caller could make directly with the same
/// arguments (pointers in them live for the duration of this call), and
/// together they must keep the guest's memory sound.
pub unsafe fn multicall(entries: &mut [MulticallEntry]) -> XenResult<()> {
    // SAFETY: `entries` is a live, writable array of `multicall_entry_t` of
    // the length given; the caller vouches for each entry.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::MULTICALL }>(entries.as_mut_ptr() as u64, entries.len() as u64, 0, 0, 0)
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_found_by_index() {
        let mut entries =
            [update_va_mapping(0x1000, 0, Uvmf::NONE), update_va_mapping(0x2000, 0, Uvmf::NONE)];
        assert_eq!(first_failure(&entries), None);
        entries[1].result = (-22i64) as u64;
        assert_eq!(first_failure(&entries), Some((1, XenError::EINVAL)));
    }

    #[test]
    fn update_va_mapping_entries_keep_the_argument_order() {
        let e = update_va_mapping(0x1000, 0x5067, Uvmf::INVLPG.all_vcpus());
        assert_eq!(e.op, u64::from(nr::UPDATE_VA_MAPPING));
        assert_eq!(e.args, [0x1000, 0x5067, 2 | 4, 0, 0, 0]);
    }
}
