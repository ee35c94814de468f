//! `event_channel_op` sub-operations.
//!
//! Soundness: every operation here except two passes Xen only its own
//! argument struct, by reference, for the call's duration, and names
//! ports and domains (numbers Xen validates), never guest memory: those
//! are safe. A port bound to another domain lets that domain send
//! events, nothing more. The two FIFO set-up calls, [`init_control`] and
//! [`expand_array`], hand Xen a frame it keeps writing for the rest of the
//! domain's life, so they are `unsafe` and their callers vouch for the
//! frame.

use super::{ptr, ptr_mut};
use crate::abi::event_channel::{
    self as evtchn, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu,
    EvtchnBindVirq, EvtchnClose, EvtchnExpandArray, EvtchnInitControl, EvtchnSend,
    EvtchnSetPriority, EvtchnStatus, EvtchnUnmask,
};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};
use crate::types::{DomId, EvtchnPort, Mfn};

/// Notifies the other end of `port`.
pub fn send(port: EvtchnPort) -> XenResult<()> {
    let arg = EvtchnSend { port: port.0 };
    // SAFETY: `arg` is a readable `struct evtchn_send`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::EVENT_CHANNEL_OP }>(evtchn::cmd::SEND.into(), ptr(&arg), 0, 0, 0)
    })
    .map(drop)
}

/// A fresh port of this domain that `remote` may bind to.
pub fn alloc_unbound(remote: DomId) -> XenResult<EvtchnPort> {
    let mut arg = EvtchnAllocUnbound { dom: DomId::SELF.0, remote_dom: remote.0, port: 0 };
    // SAFETY: `arg` is a writable `struct evtchn_alloc_unbound`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::EVENT_CHANNEL_OP }>(
            evtchn::cmd::ALLOC_UNBOUND.into(),
            ptr_mut(&mut arg),
            0,
            0,
            0,
        )
    })?;
    Ok(EvtchnPort(arg.port))
}

/// Connects a new local port to `remote_port` of `remote`.
pub fn bind_interdomain(remote: DomId, remote_port: EvtchnPort) -> XenResult<EvtchnPort> {
    let mut arg =
        EvtchnBindInterdomain { remote_dom: remote.0, remote_port: remote_port.0, local_port: 0 };
    // SAFETY: `arg` is a writable `struct evtchn_bind_interdomain`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::EVENT_CHANNEL_OP }>(
            evtchn::cmd::BIND_INTERDOMAIN.into(),
            ptr_mut(&mut arg),
            0,
            0,
            0,
        )
    })?;
    Ok(EvtchnPort(arg.local_port))
}

/// Closes `port` (and unbinds its peer).
pub fn close(port: EvtchnPort) -> XenResult<()> {
    let arg = EvtchnClose { port: port.0 };
    // SAFETY: `arg` is a readable `struct evtchn_close`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::EVENT_CHANNEL_OP }>(evtchn::cmd::CLOSE.into(), ptr(&arg), 0, 0, 0)
    })
    .map(drop)
}

/// What `port` of `dom` is bound to: `(EVTCHNSTAT_*, vcpu)`.
pub fn status(dom: DomId, port: EvtchnPort) -> XenResult<(u32, u32)> {
    let mut arg = EvtchnStatus { dom: dom.0, port: port.0, status: 0, vcpu: 0, u: [0; 2] };
    // SAFETY: `arg` is a writable `struct evtchn_status`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::EVENT_CHANNEL_OP }>(
            evtchn::cmd::STATUS.into(),
            ptr_mut(&mut arg),
            0,
            0,
            0,
        )
    })?;
    Ok((arg.status, arg.vcpu))
}

fn op<T>(cmd: u32, arg: &mut T) -> XenResult<()> {
    // SAFETY: every caller passes the argument struct that `cmd` takes, as
    // a live, writable value; Xen reads and writes only that struct during
    // the call (what it does with the frames `init_control` and
    // `expand_array` name is the business of those functions' callers).
    XenError::from_ret(unsafe {
        hypercall::<{ nr::EVENT_CHANNEL_OP }>(cmd.into(), ptr_mut(arg), 0, 0, 0)
    })
    .map(drop)
}

/// Binds virtual IRQ `virq` of `vcpu` to a new port.
pub fn bind_virq(virq: u32, vcpu: u32) -> XenResult<EvtchnPort> {
    let mut arg = EvtchnBindVirq { virq, vcpu, port: 0 };
    op(evtchn::cmd::BIND_VIRQ, &mut arg)?;
    Ok(EvtchnPort(arg.port))
}

/// A new port through which `vcpu` can notify itself.
pub fn bind_ipi(vcpu: u32) -> XenResult<EvtchnPort> {
    let mut arg = EvtchnBindIpi { vcpu, port: 0 };
    op(evtchn::cmd::BIND_IPI, &mut arg)?;
    Ok(EvtchnPort(arg.port))
}

/// Delivers `port`'s events to `vcpu` from now on (`EVTCHNOP_bind_vcpu`).
pub fn bind_vcpu(port: EvtchnPort, vcpu: u32) -> XenResult<()> {
    op(evtchn::cmd::BIND_VCPU, &mut EvtchnBindVcpu { port: port.0, vcpu })
}

/// Asks Xen to unmask `port` and deliver it if it is pending.
pub fn unmask(port: EvtchnPort) -> XenResult<()> {
    op(evtchn::cmd::UNMASK, &mut EvtchnUnmask { port: port.0 })
}

/// `EVTCHNOP_init_control`: switches this domain to the FIFO ABI with the
/// frame `control` as `vcpu`'s control block (a
/// `struct evtchn_fifo_control_block` at byte `offset`). Returns the link
/// bits.
///
/// Xen keeps the frame mapped and writes the control block (the `ready`
/// bitmap, queue heads) whenever it links an event, from this call until
/// the domain ends: the frame is Xen's to write for the rest of the
/// domain's life, whatever Rust thinks it owns.
///
/// # Safety
/// `control` must be a frame of this domain (Xen refuses others) that is
/// reserved for this control block from the call on, for as long as the
/// domain lives:
/// - it is never freed, handed to an allocator, ballooned out, granted,
///   or reused for anything else;
/// - Rust never holds a `&mut` to any part of it, and reads and writes the
///   control block only through atomics (as
///   [`EvtchnFifoControlBlock`](crate::abi::event_channel::EvtchnFifoControlBlock)
///   is), since Xen writes it concurrently;
/// - no other control block or event array page of this domain is the
///   same frame.
///
/// Xen itself checks that `offset` is 8-byte aligned and leaves room for
/// the block in the page, and refuses a second control block for `vcpu`.
pub unsafe fn init_control(control: Mfn, offset: u32, vcpu: u32) -> XenResult<u8> {
    let mut arg =
        EvtchnInitControl { control_gfn: control.0, offset, vcpu, link_bits: 0, _pad: [0; 7] };
    op(evtchn::cmd::INIT_CONTROL, &mut arg)?;
    Ok(arg.link_bits)
}

/// `EVTCHNOP_expand_array`: adds the frame `page` to the FIFO event array
/// (1024 event words of 32 bits, for the next 1024 ports).
///
/// Xen keeps the frame mapped and reads and writes the event words
/// (setting PENDING and LINKED, following links) from this call until the
/// domain ends.
///
/// # Safety
/// `page` must be a frame of this domain reserved for the event array
/// from the call on, for as long as the domain lives: never freed, handed
/// to an allocator, ballooned out, granted or reused; never reached
/// through a `&mut` and accessed only as atomic 32-bit words; and not a
/// frame already given to Xen as a control block or array page.
pub unsafe fn expand_array(page: Mfn) -> XenResult<()> {
    op(evtchn::cmd::EXPAND_ARRAY, &mut EvtchnExpandArray { array_gfn: page.0 })
}

/// Sets the FIFO priority (0 highest .. 15 lowest) of `port`.
pub fn set_priority(port: EvtchnPort, priority: u32) -> XenResult<()> {
    op(evtchn::cmd::SET_PRIORITY, &mut EvtchnSetPriority { port: port.0, priority })
}
