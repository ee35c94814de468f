//! `event_channel_op` (`xen/include/public/event_channel.h`).

use super::assert_layout;

/// `EVTCHNOP_*` commands.
pub mod cmd {
    pub const BIND_INTERDOMAIN: u32 = 0;
    pub const BIND_VIRQ: u32 = 1;
    pub const CLOSE: u32 = 3;
    pub const SEND: u32 = 4;
    pub const STATUS: u32 = 5;
    pub const ALLOC_UNBOUND: u32 = 6;
    pub const BIND_IPI: u32 = 7;
    pub const BIND_VCPU: u32 = 8;
    pub const UNMASK: u32 = 9;
    pub const RESET: u32 = 10;
    pub const INIT_CONTROL: u32 = 11;
    pub const EXPAND_ARRAY: u32 = 12;
    pub const SET_PRIORITY: u32 = 13;
}

/// `struct evtchn_send`.
#[repr(C)]
pub struct EvtchnSend {
    pub port: u32,
}
assert_layout!(EvtchnSend, size = 4, port = 0);

/// `struct evtchn_status` (the union is kept as raw words; see [`EvtchnStatus::status`]).
#[repr(C)]
pub struct EvtchnStatus {
    /// IN: `DOMID_SELF` or a domain.
    pub dom: u16,
    /// IN: the port.
    pub port: u32,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: the vCPU it is bound to.
    pub vcpu: u32,
    /// OUT: the status-specific union (unbound: dom; interdomain: dom, port; virq; ...).
    pub u: [u32; 2],
}
assert_layout!(
    EvtchnStatus,
    size = 24,
    dom = 0,
    port = 4,
    status = 8,
    vcpu = 12,
    u = 16
);

/// `EVTCHNSTAT_*`.
pub mod stat {
    pub const CLOSED: u32 = 0;
    pub const UNBOUND: u32 = 1;
    pub const INTERDOMAIN: u32 = 2;
    pub const PIRQ: u32 = 3;
    pub const VIRQ: u32 = 4;
    pub const IPI: u32 = 5;
}

/// `struct evtchn_alloc_unbound`: a port that `remote_dom` may bind to.
#[repr(C)]
pub struct EvtchnAllocUnbound {
    pub dom: u16,
    pub remote_dom: u16,
    /// OUT: the new port.
    pub port: u32,
}
assert_layout!(
    EvtchnAllocUnbound,
    size = 8,
    dom = 0,
    remote_dom = 2,
    port = 4
);

/// `struct evtchn_bind_interdomain`: connect to `remote_port` of `remote_dom`.
#[repr(C)]
pub struct EvtchnBindInterdomain {
    pub remote_dom: u16,
    pub remote_port: u32,
    /// OUT: the local end.
    pub local_port: u32,
}
assert_layout!(
    EvtchnBindInterdomain,
    size = 12,
    remote_dom = 0,
    remote_port = 4,
    local_port = 8
);

/// `struct evtchn_close`.
#[repr(C)]
pub struct EvtchnClose {
    pub port: u32,
}
assert_layout!(EvtchnClose, size = 4, port = 0);
