//! `HYPERVISOR_multicall`: several hypercalls in one trap into Xen.
//!
//! Each [`MulticallEntry`] names a hypercall and its arguments; Xen runs
//! them in order and writes each one's return value into its `result`. The
//! constructors here only build entries (safe: an entry is plain data and
//! does nothing until it runs, even one that holds the address of a slice
//! that has since gone); [`multicall`] runs them (unsafe, since the
//! entries carry raw pointers the caller keeps alive, and change page
//! tables).

use crate::abi::event_channel::{self as evtchn, EvtchnSend};
use crate::abi::memory::{cmd, XenMemoryReservation};
use crate::abi::mmu::{MmuUpdate, MmuextOp, MulticallEntry};
use crate::abi::sched;
use crate::abi::vcpu::{self as vcpu_abi, VcpuSetSingleshotTimer};
use crate::abi::xen::{Uvmf, DOMID_SELF};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};
use crate::types::EvtchnPort;

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

/// What [`send_and_block`] does to the vCPU's one-shot timer on the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerChange {
    /// Leaves it as it is.
    Keep,
    /// `VCPUOP_set_singleshot_timer` for this absolute system time.
    Set(u64),
    /// `VCPUOP_stop_singleshot_timer`.
    Stop,
}

/// The most notifications one [`send_and_block`] carries.
pub const MAX_CARRIED_SENDS: usize = 8;

/// What a vCPU does before it sleeps, in one trap into Xen instead of one
/// each: `EVTCHNOP_send` on every port of `sends`, then `timer` on `vcpu`'s
/// one-shot timer, then, with `block`, `SCHEDOP_block` (Xen unmasks upcalls
/// as it blocks, as [`super::sched_op::block`] does). Xen runs the entries
/// in order, so the block comes after the sends and the timer. More than
/// [`MAX_CARRIED_SENDS`] ports, or nothing to do, is `EINVAL`, and `Err`
/// means nothing ran (Xen rejected the batch). `Ok` carries the first
/// entry that failed, with its index, if one did: the others still ran
/// (a block included).
pub fn send_and_block(
    vcpu: u32,
    sends: &[EvtchnPort],
    timer: TimerChange,
    block: bool,
) -> XenResult<Option<(usize, XenError)>> {
    let mut args = CarriedArgs::new();
    let mut entries = [MulticallEntry::default(); MAX_CARRIED_SENDS + 2];
    let n = carried_entries(vcpu, sends, timer, block, &mut args, &mut entries)?;
    // SAFETY: each entry is a call that is safe on its own (`send`,
    // `set_singleshot_timer`, `stop_singleshot_timer`, `block` in
    // `event_channel`, `vcpu` and `sched_op`): ports and vCPU ids are
    // numbers Xen checks, and the argument structs the entries point at
    // (`args`) stay on this stack frame, unmoved, until the multicall
    // returns.
    unsafe { multicall(&mut entries[..n]) }?;
    Ok(first_failure(&entries[..n]))
}

/// The entries [`send_and_block`] would run with `block` (for the tracer's
/// tests; the argument structs they point at are gone, only `op` and
/// `args[0]` mean anything).
#[cfg(test)]
pub(crate) fn send_and_block_entries_for_test(
    vcpu: u32,
    sends: &[EvtchnPort],
    timer: TimerChange,
) -> std::vec::Vec<MulticallEntry> {
    let mut args = CarriedArgs::new();
    let mut entries = [MulticallEntry::default(); MAX_CARRIED_SENDS + 2];
    let n = carried_entries(vcpu, sends, timer, true, &mut args, &mut entries).unwrap();
    entries[..n].to_vec()
}

/// The argument structs [`send_and_block`]'s entries point at.
struct CarriedArgs {
    sends: [EvtchnSend; MAX_CARRIED_SENDS],
    timer: VcpuSetSingleshotTimer,
}

impl CarriedArgs {
    fn new() -> Self {
        CarriedArgs {
            sends: [EvtchnSend { port: 0 }; MAX_CARRIED_SENDS],
            timer: VcpuSetSingleshotTimer { timeout_abs_ns: 0, flags: 0 },
        }
    }
}

/// Fills `entries` for [`send_and_block`], pointing into `args` (which
/// must not move while they run); how many entries it used.
fn carried_entries(
    vcpu: u32,
    sends: &[EvtchnPort],
    timer: TimerChange,
    block: bool,
    args: &mut CarriedArgs,
    entries: &mut [MulticallEntry; MAX_CARRIED_SENDS + 2],
) -> XenResult<usize> {
    if sends.len() > MAX_CARRIED_SENDS || (sends.is_empty() && timer == TimerChange::Keep && !block)
    {
        return Err(XenError::EINVAL);
    }
    let mut n = 0;
    for (slot, p) in args.sends.iter_mut().zip(sends) {
        slot.port = p.0;
        entries[n] = MulticallEntry {
            op: nr::EVENT_CHANNEL_OP.into(),
            result: 0,
            args: [evtchn::cmd::SEND.into(), slot as *const _ as u64, 0, 0, 0, 0],
        };
        n += 1;
    }
    let vcpu_op = |cmd: u32, arg: u64| MulticallEntry {
        op: nr::VCPU_OP.into(),
        result: 0,
        args: [cmd.into(), vcpu.into(), arg, 0, 0, 0],
    };
    match timer {
        TimerChange::Keep => {}
        TimerChange::Set(deadline_ns) => {
            args.timer.timeout_abs_ns = deadline_ns;
            let arg = &args.timer as *const _ as u64;
            entries[n] = vcpu_op(vcpu_abi::cmd::SET_SINGLESHOT_TIMER, arg);
            n += 1;
        }
        TimerChange::Stop => {
            entries[n] = vcpu_op(vcpu_abi::cmd::STOP_SINGLESHOT_TIMER, 0);
            n += 1;
        }
    }
    if block {
        entries[n] = MulticallEntry {
            op: nr::SCHED_OP.into(),
            result: 0,
            args: [sched::cmd::BLOCK.into(), 0, 0, 0, 0, 0],
        };
        n += 1;
    }
    Ok(n)
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
    fn a_block_carries_its_sends_and_timer_in_order() {
        let mut args = CarriedArgs::new();
        let mut e = [MulticallEntry::default(); MAX_CARRIED_SENDS + 2];
        let ports = [EvtchnPort(5), EvtchnPort(9)];
        let n = carried_entries(3, &ports, TimerChange::Set(77), true, &mut args, &mut e).unwrap();
        assert_eq!(n, 4);
        assert_eq!(e[0].op, u64::from(nr::EVENT_CHANNEL_OP));
        assert_eq!(e[0].args[..2], [4, &args.sends[0] as *const _ as u64]);
        assert_eq!(args.sends[1].port, 9);
        assert_eq!(e[1].args[1], &args.sends[1] as *const _ as u64);
        assert_eq!(e[2].op, u64::from(nr::VCPU_OP));
        assert_eq!(e[2].args[..3], [8, 3, &args.timer as *const _ as u64]);
        assert_eq!(args.timer.timeout_abs_ns, 77);
        assert_eq!(e[3].op, u64::from(nr::SCHED_OP));
        assert_eq!(e[3].args[0], 1, "SCHEDOP_block, last");
    }

    #[test]
    fn a_carry_without_work_or_with_too_many_sends_is_refused() {
        let mut args = CarriedArgs::new();
        let mut e = [MulticallEntry::default(); MAX_CARRIED_SENDS + 2];
        let r = carried_entries(0, &[], TimerChange::Keep, false, &mut args, &mut e);
        assert_eq!(r, Err(XenError::EINVAL));
        let many = [EvtchnPort(1); MAX_CARRIED_SENDS + 1];
        let r = carried_entries(0, &many, TimerChange::Stop, true, &mut args, &mut e);
        assert_eq!(r, Err(XenError::EINVAL));
        let n = carried_entries(0, &[], TimerChange::Stop, false, &mut args, &mut e).unwrap();
        assert_eq!((n, e[0].args[0]), (1, 9), "VCPUOP_stop_singleshot_timer alone");
    }

    #[test]
    fn update_va_mapping_entries_keep_the_argument_order() {
        let e = update_va_mapping(0x1000, 0x5067, Uvmf::INVLPG.all_vcpus());
        assert_eq!(e.op, u64::from(nr::UPDATE_VA_MAPPING));
        assert_eq!(e.args, [0x1000, 0x5067, 2 | 4, 0, 0, 0]);
    }
}
