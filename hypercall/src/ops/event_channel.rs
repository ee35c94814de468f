//! `event_channel_op` sub-operations.

use super::{ptr, ptr_mut};
use crate::abi::event_channel::{
    self as evtchn, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnClose, EvtchnSend,
    EvtchnStatus,
};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};
use crate::types::{DomId, EvtchnPort};

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
    let mut arg = EvtchnAllocUnbound {
        dom: DomId::SELF.0,
        remote_dom: remote.0,
        port: 0,
    };
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
    let mut arg = EvtchnBindInterdomain {
        remote_dom: remote.0,
        remote_port: remote_port.0,
        local_port: 0,
    };
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
    let mut arg = EvtchnStatus {
        dom: dom.0,
        port: port.0,
        status: 0,
        vcpu: 0,
        u: [0; 2],
    };
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
