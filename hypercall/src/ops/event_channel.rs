//! `event_channel_op` sub-operations.

use super::{ptr, ptr_mut};
use crate::abi::event_channel::{
    self as evtchn, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVirq,
    EvtchnClose, EvtchnExpandArray, EvtchnInitControl, EvtchnSend, EvtchnSetPriority, EvtchnStatus,
    EvtchnUnmask,
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
    // a live, writable value; Xen reads and writes only that struct.
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

/// Asks Xen to unmask `port` and deliver it if it is pending.
pub fn unmask(port: EvtchnPort) -> XenResult<()> {
    op(evtchn::cmd::UNMASK, &mut EvtchnUnmask { port: port.0 })
}

/// Switches this domain to the FIFO ABI with `control` (a frame of ours)
/// as `vcpu`'s control block. Returns the link bits.
pub fn init_control(control: Mfn, offset: u32, vcpu: u32) -> XenResult<u8> {
    let mut arg =
        EvtchnInitControl { control_gfn: control.0, offset, vcpu, link_bits: 0, _pad: [0; 7] };
    op(evtchn::cmd::INIT_CONTROL, &mut arg)?;
    Ok(arg.link_bits)
}

/// Adds `page` (a frame of ours) to the FIFO event array.
pub fn expand_array(page: Mfn) -> XenResult<()> {
    op(evtchn::cmd::EXPAND_ARRAY, &mut EvtchnExpandArray { array_gfn: page.0 })
}

/// Sets the FIFO priority (0 highest .. 15 lowest) of `port`.
pub fn set_priority(port: EvtchnPort, priority: u32) -> XenResult<()> {
    op(evtchn::cmd::SET_PRIORITY, &mut EvtchnSetPriority { port: port.0, priority })
}
