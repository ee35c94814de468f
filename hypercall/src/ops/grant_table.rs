//! `grant_table_op` sub-operations.
//!
//! Xen reports twice: the hypercall's return value (the batch as a whole)
//! and a `GNTST_*` status in each operation struct. [`GnttabError`] keeps
//! the two apart.
//!
//! Soundness, operation by operation:
//! - `map_grant_ref`, `unmap_grant_ref` and `copy` are `unsafe`: the first
//!   two change this guest's page tables at a caller-chosen address, the
//!   third lets Xen write caller-chosen frames of this guest.
//! - `setup_table` and `get_status_frames` are safe: Xen writes only the
//!   frame list the wrapper borrows, during the call. The frames it lists
//!   are Xen's own (allocated by Xen, shared with the guest), not frames
//!   of ours Xen starts writing; mapping them is the unsafe step, done by
//!   the caller with `update_va_mapping`/`mmu_update`.
//! - `set_version` is safe: it changes the layout Xen reads and writes in
//!   those Xen-owned shared frames (all atomics to Rust, valid for any
//!   bits). Going back to v1 frees the status frames, but a PV guest that
//!   still maps one gets `-EBUSY` and nothing is freed
//!   (`gnttab_unpopulate_status_frames`).
//! - `query_size`, `get_version`, `self_domid` only fill structs the
//!   wrapper owns.
//!
//! Granting itself is no hypercall: the guest writes a grant entry in the
//! shared table, and the other domain may then write the frame it names.
//! That is the `grant-tables` crate's and its callers' business.

use super::ptr_mut;
use crate::abi::event_channel::{self as evtchn, EvtchnStatus};
use crate::abi::grant_table::{
    op, GntStatus, GnttabCopy, GnttabGetStatusFrames, GnttabGetVersion, GnttabMapGrantRef,
    GnttabQuerySize, GnttabSetVersion, GnttabSetupTable, GnttabUnmapGrantRef, GrantHandle,
    GrantRef, Version,
};
use crate::error::XenError;
use crate::raw::{hypercall, nr};
use crate::types::{DomId, EvtchnPort, Mfn};
use core::fmt;

/// Why a grant table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GnttabError {
    /// The hypercall itself failed (bad command, bad count, fault).
    Hypercall(XenError),
    /// Xen ran the operation and refused it.
    Status(GntStatus),
}

impl fmt::Display for GnttabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GnttabError::Hypercall(e) => write!(f, "grant_table_op failed: {e}"),
            GnttabError::Status(s) => write!(f, "{s}"),
        }
    }
}

impl From<XenError> for GnttabError {
    fn from(e: XenError) -> Self {
        GnttabError::Hypercall(e)
    }
}

impl From<GntStatus> for GnttabError {
    fn from(s: GntStatus) -> Self {
        GnttabError::Status(s)
    }
}

/// Runs `cmd` on `count` structs starting at `arg`.
///
/// # Safety
/// `arg` must point at `count` live structs of the type `cmd` takes, and
/// what the operations do must keep this guest's memory sound.
unsafe fn gnttab_op(cmd: u32, arg: u64, count: usize) -> Result<u64, XenError> {
    // SAFETY: passed on from the caller.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::GRANT_TABLE_OP }>(cmd.into(), arg, count as u64, 0, 0)
    })
}

/// `(nr_frames, max_nr_frames)` of this domain's table.
pub fn query_size() -> Result<(u32, u32), GnttabError> {
    let mut arg = GnttabQuerySize { dom: DomId::SELF.0, ..Default::default() };
    // SAFETY: one writable `struct gnttab_query_size`.
    unsafe { gnttab_op(op::QUERY_SIZE, ptr_mut(&mut arg), 1) }?;
    GntStatus::check(arg.status)?;
    Ok((arg.nr_frames, arg.max_nr_frames))
}

/// Grows this domain's table to `frames.len()` frames (never shrinks it)
/// and writes the machine frame of each into `frames`.
///
/// Safe: Xen writes only `frames`, borrowed for the call. The table frames
/// are Xen's memory shared with the guest (for a PV guest Xen allocates
/// them and never moves or frees them while the domain lives); mapping
/// them is an `unsafe` page-table update of the caller's.
pub fn setup_table(frames: &mut [Mfn]) -> Result<(), GnttabError> {
    let mut arg = GnttabSetupTable {
        dom: DomId::SELF.0,
        nr_frames: frames.len() as u32,
        status: 0,
        frame_list: frames.as_mut_ptr() as u64,
    };
    // SAFETY: one writable `struct gnttab_setup_table` whose handle points
    // at `nr_frames` writable `xen_pfn_t` (Mfn is a transparent u64).
    unsafe { gnttab_op(op::SETUP_TABLE, ptr_mut(&mut arg), 1) }?;
    GntStatus::check(arg.status)?;
    Ok(())
}

/// Xen's answer naming a version, or `EINVAL` for a number that is none.
fn version_of(n: u32) -> Result<Version, GnttabError> {
    Version::from_number(n).ok_or(GnttabError::Hypercall(XenError::EINVAL))
}

/// Switches the table to `version`; returns the version in force. Xen
/// refuses while grants other than the reserved ones are active. After a
/// switch to 2 the status frames exist; before a switch back to 1 the
/// guest must unmap them (Xen frees them).
///
/// Safe: the switch changes only how Xen reads and writes its own shared
/// frames, and Xen refuses (`-EBUSY`, nothing freed) to free status frames
/// a PV guest still maps.
pub fn set_version(version: Version) -> Result<Version, GnttabError> {
    let mut arg = GnttabSetVersion { version: version.number() };
    // SAFETY: one writable `struct gnttab_set_version`.
    unsafe { gnttab_op(op::SET_VERSION, ptr_mut(&mut arg), 1) }?;
    version_of(arg.version)
}

/// The version of `dom`'s table.
pub fn get_version(dom: DomId) -> Result<Version, GnttabError> {
    let mut arg = GnttabGetVersion { dom: dom.0, pad: 0, version: 0 };
    // SAFETY: one writable `struct gnttab_get_version`.
    unsafe { gnttab_op(op::GET_VERSION, ptr_mut(&mut arg), 1) }?;
    version_of(arg.version)
}

/// The machine frames of the v2 status array, one per slot of `frames`.
///
/// Safe for the reason [`setup_table`] is: Xen writes only `frames`
/// during the call, and the status frames are Xen's own.
pub fn get_status_frames(frames: &mut [Mfn]) -> Result<(), GnttabError> {
    let mut arg = GnttabGetStatusFrames {
        nr_frames: frames.len() as u32,
        dom: DomId::SELF.0,
        status: 0,
        frame_list: frames.as_mut_ptr() as u64,
    };
    // SAFETY: one writable struct whose handle points at `nr_frames`
    // writable `uint64_t`.
    unsafe { gnttab_op(op::GET_STATUS_FRAMES, ptr_mut(&mut arg), 1) }?;
    GntStatus::check(arg.status)?;
    Ok(())
}

/// Runs a batch of `GNTTABOP_map_grant_ref`; each op's `status` and
/// `handle` say how it went. `Err` only when the hypercall itself failed.
///
/// # Safety
/// For `GNTMAP_host_map` (without `contains_pte`) each `host_addr` is a
/// page of this guest's address space whose mapping Xen replaces with the
/// granted frame: nothing in Rust may refer to what it mapped before, and
/// the page-table pages for it must exist.
pub unsafe fn map_grant_refs(ops: &mut [GnttabMapGrantRef]) -> Result<(), XenError> {
    // SAFETY: `ops` is a live, writable array of the length given; the
    // caller vouches for the addresses.
    unsafe { gnttab_op(op::MAP_GRANT_REF, ops.as_mut_ptr() as u64, ops.len()) }.map(drop)
}

/// Maps `dom`'s grant `gref` at `host_addr` (`GNTMAP_host_map` plus
/// `flags`); returns the handle to unmap it with.
///
/// # Safety
/// As [`map_grant_refs`].
pub unsafe fn map_grant_ref(
    host_addr: u64,
    dom: DomId,
    gref: GrantRef,
    flags: u32,
) -> Result<GrantHandle, GnttabError> {
    let mut ops = [GnttabMapGrantRef {
        host_addr,
        flags: flags | crate::abi::grant_table::gntmap::HOST_MAP,
        ref_: gref.0,
        dom: dom.0,
        ..Default::default()
    }];
    // SAFETY: passed on from the caller.
    unsafe { map_grant_refs(&mut ops) }?;
    GntStatus::check(ops[0].status)?;
    Ok(GrantHandle(ops[0].handle))
}

/// Runs a batch of `GNTTABOP_unmap_grant_ref`; each op's `status` says how
/// it went.
///
/// # Safety
/// Each `host_addr` becomes unmapped: nothing in Rust may refer to it.
pub unsafe fn unmap_grant_refs(ops: &mut [GnttabUnmapGrantRef]) -> Result<(), XenError> {
    // SAFETY: `ops` is a live, writable array of the length given; the
    // caller vouches that the pages are unreferenced.
    unsafe { gnttab_op(op::UNMAP_GRANT_REF, ops.as_mut_ptr() as u64, ops.len()) }.map(drop)
}

/// Unmaps the mapping `handle` at `host_addr`.
///
/// # Safety
/// As [`unmap_grant_refs`].
pub unsafe fn unmap_grant_ref(host_addr: u64, handle: GrantHandle) -> Result<(), GnttabError> {
    let mut ops = [GnttabUnmapGrantRef { host_addr, dev_bus_addr: 0, handle: handle.0, status: 0 }];
    // SAFETY: passed on from the caller.
    unsafe { unmap_grant_refs(&mut ops) }?;
    GntStatus::check(ops[0].status)?;
    Ok(())
}

/// Runs a batch of `GNTTABOP_copy`; each op's `status` says how it went.
///
/// # Safety
/// Xen writes the destinations: a destination that is a frame of this
/// guest must not be memory Rust holds a reference to.
pub unsafe fn copy(ops: &mut [GnttabCopy]) -> Result<(), XenError> {
    // SAFETY: `ops` is a live, writable array of the length given; the
    // caller vouches for the destinations.
    unsafe { gnttab_op(op::COPY, ops.as_mut_ptr() as u64, ops.len()) }.map(drop)
}

/// This domain's own id. Mapping a grant needs the granting domain's real
/// id (Xen's map path does not accept `DOMID_SELF`), and a PV guest has no
/// call that returns it; an unbound event channel offered to `DOMID_SELF`
/// does: Xen records the caller's id as the remote end, and
/// `EVTCHNOP_status` reports it. The port is closed again.
pub fn self_domid() -> Result<DomId, XenError> {
    let port = crate::ops::event_channel::alloc_unbound(DomId::SELF)?;
    let mut arg = EvtchnStatus { dom: DomId::SELF.0, port: port.0, status: 0, vcpu: 0, u: [0; 2] };
    // SAFETY: `arg` is a writable `struct evtchn_status`.
    let r = XenError::from_ret(unsafe {
        hypercall::<{ nr::EVENT_CHANNEL_OP }>(
            evtchn::cmd::STATUS.into(),
            ptr_mut(&mut arg),
            0,
            0,
            0,
        )
    });
    let closed = crate::ops::event_channel::close(EvtchnPort(port.0));
    r?;
    closed?;
    if arg.status != evtchn::stat::UNBOUND {
        return Err(XenError::EINVAL);
    }
    // `u.unbound.dom` is a domid_t at the start of the union.
    Ok(DomId(arg.u[0] as u16))
}
