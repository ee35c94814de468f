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
#[derive(Clone, Copy, Debug)]
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
assert_layout!(EvtchnStatus, size = 24, dom = 0, port = 4, status = 8, vcpu = 12, u = 16);

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
assert_layout!(EvtchnAllocUnbound, size = 8, dom = 0, remote_dom = 2, port = 4);

/// `struct evtchn_bind_interdomain`: connect to `remote_port` of `remote_dom`.
#[repr(C)]
pub struct EvtchnBindInterdomain {
    pub remote_dom: u16,
    pub remote_port: u32,
    /// OUT: the local end.
    pub local_port: u32,
}
assert_layout!(EvtchnBindInterdomain, size = 12, remote_dom = 0, remote_port = 4, local_port = 8);

/// `struct evtchn_close`.
#[repr(C)]
pub struct EvtchnClose {
    pub port: u32,
}
assert_layout!(EvtchnClose, size = 4, port = 0);

/// `struct evtchn_bind_virq`: a virtual IRQ of `vcpu` to a new port.
#[repr(C)]
pub struct EvtchnBindVirq {
    pub virq: u32,
    pub vcpu: u32,
    /// OUT: the port.
    pub port: u32,
}
assert_layout!(EvtchnBindVirq, size = 12, virq = 0, vcpu = 4, port = 8);

/// `struct evtchn_bind_ipi`: a port `vcpu` can notify itself through.
#[repr(C)]
pub struct EvtchnBindIpi {
    pub vcpu: u32,
    /// OUT: the port.
    pub port: u32,
}
assert_layout!(EvtchnBindIpi, size = 8, vcpu = 0, port = 4);

/// `struct evtchn_bind_vcpu`: deliver `port`'s events to `vcpu` from now
/// on (interdomain and unbound ports and global VIRQs; IPIs and per-vCPU
/// VIRQs stay where they were bound).
#[repr(C)]
pub struct EvtchnBindVcpu {
    pub port: u32,
    pub vcpu: u32,
}
assert_layout!(EvtchnBindVcpu, size = 8, port = 0, vcpu = 4);

/// `struct evtchn_unmask`.
#[repr(C)]
pub struct EvtchnUnmask {
    pub port: u32,
}
assert_layout!(EvtchnUnmask, size = 4, port = 0);

/// `struct evtchn_init_control`: switch to the FIFO ABI with a control block.
#[repr(C)]
pub struct EvtchnInitControl {
    pub control_gfn: u64,
    pub offset: u32,
    pub vcpu: u32,
    /// OUT: link bits Xen uses (17).
    pub link_bits: u8,
    pub _pad: [u8; 7],
}
assert_layout!(
    EvtchnInitControl,
    size = 24,
    control_gfn = 0,
    offset = 8,
    vcpu = 12,
    link_bits = 16
);

/// `struct evtchn_expand_array`: one more page of FIFO event words.
#[repr(C)]
pub struct EvtchnExpandArray {
    pub array_gfn: u64,
}
assert_layout!(EvtchnExpandArray, size = 8, array_gfn = 0);

/// `struct evtchn_set_priority`.
#[repr(C)]
pub struct EvtchnSetPriority {
    pub port: u32,
    pub priority: u32,
}
assert_layout!(EvtchnSetPriority, size = 8, port = 0, priority = 4);

/// `VIRQ_*` numbers (`xen/include/public/xen.h`).
pub mod virq {
    pub const TIMER: u32 = 0;
    pub const DEBUG: u32 = 1;
}

/// The FIFO ABI's constants (`EVTCHN_FIFO_*`).
pub mod fifo {
    pub const PRIORITY_MAX: u32 = 0;
    pub const PRIORITY_DEFAULT: u32 = 7;
    pub const PRIORITY_MIN: u32 = 15;
    pub const MAX_QUEUES: usize = 16;
    pub const PENDING: u32 = 1 << 31;
    pub const MASKED: u32 = 1 << 30;
    pub const LINKED: u32 = 1 << 29;
    pub const BUSY: u32 = 1 << 28;
    pub const LINK_BITS: u32 = 17;
    pub const LINK_MASK: u32 = (1 << LINK_BITS) - 1;
    /// Event words per 4 KiB array page.
    pub const WORDS_PER_PAGE: usize = 4096 / 4;
}

/// `struct evtchn_fifo_control_block`: per-vCPU ready bitmap and queue heads,
/// written by Xen concurrently.
#[repr(C)]
pub struct EvtchnFifoControlBlock {
    pub ready: core::sync::atomic::AtomicU32,
    pub _rsvd: core::sync::atomic::AtomicU32,
    pub head: [core::sync::atomic::AtomicU32; fifo::MAX_QUEUES],
}
assert_layout!(EvtchnFifoControlBlock, size = 72, ready = 0, head = 8);

impl EvtchnFifoControlBlock {
    /// An empty control block, for host tests that play Xen's part.
    pub fn zeroed() -> Self {
        use core::sync::atomic::AtomicU32;
        Self {
            ready: AtomicU32::new(0),
            _rsvd: AtomicU32::new(0),
            head: core::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}
