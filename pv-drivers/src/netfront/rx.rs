//! The RX ring: the frontend posts granted pages, the backend copies each
//! packet into one or more of them (`request-rx-copy`) and answers.
//!
//! Request `i` carries id `i % size`, so the response at ring index `i`
//! (ring.h: responses answer requests in order) returns the buffer posted
//! at that index whatever id the backend writes; an id that does not match
//! is a fault and drops the packet, and the buffer still comes back.
//!
//! A packet is a first slot, then its extra-info slots if it says
//! `NETRXF_extra_info` (each saying `XEN_NETIF_EXTRA_FLAG_MORE` if another
//! follows), then more data slots while `NETRXF_more_data` is set.

use super::buf::read_bytes;
use super::wire::extra_from_rx;
use super::{fault, Stats};
use crate::env::{DriverEnv, EnvError, PageSet, PAGE_BYTES};
use crate::ring::{FrontRing, RingError};
use alloc::vec::Vec;
use hypercall::abi::grant_table::GrantRef;
use hypercall::abi::netif::{
    extra_type, gso_type, rxf, NetifExtraGso, NetifRxRequest, NetifRxResponse, EXTRA_FLAG_MORE,
};
use hypercall::{DomId, EvtchnPort};

/// Slots one packet may take (Linux's `MAX_SKB_FRAGS + 1`); a chain longer
/// than this is dropped.
pub const MAX_SLOTS: u32 = 18;
/// Extra-info slots one packet may carry: one of each type at most
/// (types 1..`XEN_NETIF_EXTRA_TYPE_MAX`), as Linux's `xennet_get_extras`
/// bounds them. A longer `XEN_NETIF_EXTRA_FLAG_MORE` chain is a fault.
pub const MAX_EXTRAS: u32 = extra_type::MAX as u32 - 1;
/// The largest packet accepted (64 KiB GSO plus an Ethernet header).
pub const MAX_PACKET: usize = 65535 + 14;

/// A page granted to the backend for it to write a packet into.
pub struct Buffer<P> {
    pub page: P,
    pub gref: GrantRef,
}

/// A received packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxPacket {
    pub data: Vec<u8>,
    /// The first slot's `NETRXF_*` flags.
    pub flags: u16,
    /// The GSO extra-info slot, if the backend sent one.
    pub gso: Option<NetifExtraGso>,
}

#[derive(Default)]
struct Assembly {
    data: Vec<u8>,
    slots: u32,
    flags: u16,
    gso: Option<NetifExtraGso>,
    /// Extra-info slots seen.
    extras: u32,
    /// A fault was seen: consume the rest of the chain, then drop it.
    bad: bool,
    more_data: bool,
    more_extra: bool,
}

/// One RX queue.
pub struct RxQueue<P> {
    ring: P,
    pub ring_gref: GrantRef,
    pub port: EvtchnPort,
    backend: DomId,
    indices: (u32, u32),
    size: u32,
    target: u32,
    batch: Batch,
    st: RxState<P>,
}

/// RX interrupt moderation: how many responses the next event waits for
/// (`rsp_event` that far ahead). A wake-up that finds more than were
/// asked for (the backend streams: bulk data, 11-17 slots a GSO packet)
/// doubles it, up to `max`; one that finds fewer (woken by something else,
/// or by the caller's hold timer: the sender waits for us) takes it down
/// to what came. Request/response traffic, a slot at a time, stays at 1,
/// an event per packet. The caller bounds the wait for a batch with a
/// timer ([`RxQueue::batching`], [`RxQueue::end_batch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub ask: u32,
    pub max: u32,
}

impl Batch {
    /// Adjusts the ask to `found` responses that were waiting at a poll.
    pub fn adapt(&mut self, found: u32) {
        if found > self.ask {
            self.ask = (self.ask * 2).min(self.max).max(1);
        } else if found > 0 && found < self.ask {
            self.ask = found;
        }
    }
}

/// The buffers and the packet in progress (apart from the ring memory,
/// which the ring borrows while responses are handled).
struct RxState<P> {
    size: u32,
    posted: Vec<Option<Buffer<P>>>,
    spare: Vec<Buffer<P>>,
    asm: Assembly,
}

impl<P: PageSet> RxQueue<P> {
    /// A fresh ring on `ring` (granted as `ring_gref`), keeping `target`
    /// buffers posted (at most the ring's size).
    pub fn new(
        ring: P,
        ring_gref: GrantRef,
        port: EvtchnPort,
        backend: DomId,
        target: u32,
    ) -> Self {
        let r = FrontRing::<NetifRxRequest, NetifRxResponse>::init(ring.words());
        let size = r.size();
        let indices = r.indices();
        RxQueue {
            ring,
            ring_gref,
            port,
            backend,
            indices,
            size,
            target: target.clamp(1, size),
            batch: Batch { ask: 1, max: 1 },
            st: RxState {
                size,
                posted: (0..size).map(|_| None).collect(),
                spare: Vec::new(),
                asm: Assembly::default(),
            },
        }
    }

    /// Buffers the backend may fill now.
    pub fn posted(&self) -> u32 {
        self.indices.0.wrapping_sub(self.indices.1)
    }

    /// Posts buffers up to the target and tells the backend if it asked.
    pub fn refill<H: DriverEnv<Pages = P>>(
        &mut self,
        host: &mut H,
        stats: &mut Stats,
    ) -> Result<(), EnvError> {
        let mut ring =
            FrontRing::<NetifRxRequest, NetifRxResponse>::resume(self.ring.words(), self.indices);
        let mut result = Ok(());
        let mut pushed = 0;
        while ring.in_flight() < self.target && ring.free_requests() > 0 {
            let buf = match self.st.spare.pop() {
                Some(b) => b,
                None => match new_buffer(host, self.backend, false, stats) {
                    Ok(b) => b,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                },
            };
            let idx = ring.indices().0;
            let slot = (idx & (self.size - 1)) as u16;
            let req = NetifRxRequest { id: slot, pad: 0, gref: buf.gref.0 };
            ring.push_request(&req).expect("free_requests checked");
            self.st.posted[usize::from(slot)] = Some(buf);
            pushed += 1;
        }
        if pushed > 0 && ring.publish() {
            host.notify(self.port);
            stats.notifications += 1;
            stats.rx_notifications += 1;
        }
        self.indices = ring.indices();
        result
    }

    /// Lets the next event wait for up to `max` responses (1: an event
    /// for every push, as before; at most half the buffers posted).
    pub fn set_batch_max(&mut self, max: u32) {
        self.batch.max = max.clamp(1, (self.target / 2).max(1));
        self.batch.ask = self.batch.ask.min(self.batch.max);
    }

    /// Whether the next event waits for more than one response: the
    /// caller must wake by a timer of its own too (a sender waiting for
    /// our ACK sends no more).
    pub fn batching(&self) -> bool {
        self.batch.ask > 1
    }

    /// The moderation state (for reports and tests).
    pub fn batch(&self) -> Batch {
        self.batch
    }

    /// The caller's hold ran out: back to an event per push, re-armed now;
    /// true if responses are waiting.
    pub fn end_batch(&mut self) -> Result<bool, RingError> {
        self.batch.ask = 1;
        let mut ring =
            FrontRing::<NetifRxRequest, NetifRxResponse>::resume(self.ring.words(), self.indices);
        ring.final_check_for_responses()
    }

    /// Takes every response the backend published and hands each complete
    /// packet to `deliver`. A broken producer index is counted and ends
    /// this round (no slot is read). The event is re-armed as far ahead
    /// as the moderation asks ([`Batch`]).
    pub fn poll(
        &mut self,
        stats: &mut Stats,
        mut deliver: impl FnMut(RxPacket),
    ) -> Result<(), RingError> {
        let mut ring =
            FrontRing::<NetifRxRequest, NetifRxResponse>::resume(self.ring.words(), self.indices);
        if let Ok(found) = ring.unconsumed_responses() {
            self.batch.adapt(found);
        }
        let ask = self.batch.ask;
        let st = &mut self.st;
        let result =
            ring.drain_responses_ahead(ask, |idx, rsp| st.slot(idx, &rsp, stats, &mut deliver));
        self.indices = ring.indices();
        if let Err(RingError::ProducerOutOfRange { prod, cons, size }) = result {
            fault(
                &mut stats.rx_bad_prod,
                "RX producer index",
                format_args!("rsp_prod {prod} with rsp_cons {cons}, ring of {size}"),
            );
        }
        result
    }

    /// Revokes every grant (ring and buffers). Pages the backend still maps
    /// are returned: they must never be reused.
    pub fn release<H: DriverEnv<Pages = P>>(
        self,
        host: &mut H,
        stats: &mut Stats,
    ) -> Vec<Buffer<P>> {
        let mut kept = Vec::new();
        let bufs = self.st.posted.into_iter().flatten().chain(self.st.spare);
        for b in bufs.chain(core::iter::once(Buffer { page: self.ring, gref: self.ring_gref })) {
            revoke_or_keep(host, stats, b, &mut kept);
        }
        kept
    }
}

impl<P: PageSet> RxState<P> {
    /// One response, at ring index `idx`, copied out already.
    fn slot(
        &mut self,
        idx: u32,
        rsp: &NetifRxResponse,
        stats: &mut Stats,
        deliver: &mut impl FnMut(RxPacket),
    ) {
        let slot = (idx & (self.size - 1)) as usize;
        // The ring check guarantees a request was posted at this index.
        let Some(buf) = self.posted[slot].take() else {
            fault(&mut stats.rx_bad_id, "RX slot", format_args!("no buffer at slot {slot}"));
            return;
        };
        let a = &mut self.asm;
        if a.more_extra {
            let e = extra_from_rx(rsp);
            stats.rx_extra_info += 1;
            match e.kind {
                extra_type::GSO => {
                    let gso = NetifExtraGso {
                        size: e.u[0],
                        kind: e.u[1] as u8,
                        pad: (e.u[1] >> 8) as u8,
                        features: e.u[2],
                    };
                    if gso.kind != gso_type::TCPV4 && gso.kind != gso_type::TCPV6 {
                        fault(&mut stats.rx_bad_extra, "GSO type", format_args!("{}", gso.kind));
                        a.bad = true;
                    } else if gso.size == 0 {
                        // Segments of no bytes: the stack could never
                        // re-cut it (Linux's netfront refuses it too).
                        fault(&mut stats.rx_bad_extra, "GSO size", format_args!("0"));
                        a.bad = true;
                    }
                    a.gso = Some(gso);
                }
                k if k > extra_type::NONE && k < extra_type::MAX => {}
                k => {
                    fault(&mut stats.rx_bad_extra, "extra-info type", format_args!("{k}"));
                    a.bad = true;
                }
            }
            a.extras += 1;
            a.more_extra = e.flags & EXTRA_FLAG_MORE != 0;
            if a.more_extra && a.extras >= MAX_EXTRAS {
                // An endless chain would hold RX open forever: cut it here.
                fault(
                    &mut stats.rx_long_chain,
                    "RX extra-info chain",
                    format_args!("more than {MAX_EXTRAS} extra-info slots"),
                );
                a.bad = true;
                a.more_extra = false;
                a.more_data = false;
            }
        } else {
            if a.slots == 0 {
                a.flags = rsp.flags;
            }
            a.slots += 1;
            let len = rsp.status;
            let end = usize::from(rsp.offset) + len.max(0) as usize;
            if rsp.id as usize != slot {
                fault(
                    &mut stats.rx_bad_id,
                    "RX response id",
                    format_args!("id {} at slot {slot}", rsp.id),
                );
                a.bad = true;
            } else if len < 0 {
                fault(&mut stats.rx_error_status, "RX status", format_args!("{len}"));
                a.bad = true;
            } else if end > PAGE_BYTES {
                fault(
                    &mut stats.rx_bad_len,
                    "RX length",
                    format_args!(
                        "{len} bytes at offset {} in a {PAGE_BYTES}-byte page",
                        rsp.offset
                    ),
                );
                a.bad = true;
            } else if a.data.len() + len as usize > MAX_PACKET {
                a.bad = true;
            } else if !a.bad && rsp.flags & rxf::GSO_PREFIX == 0 {
                let at = a.data.len();
                a.data.resize(at + len as usize, 0);
                if read_bytes(buf.page.words(), usize::from(rsp.offset), &mut a.data[at..]).is_err()
                {
                    a.bad = true;
                }
            }
            a.more_data = rsp.flags & rxf::MORE_DATA != 0;
            // Extra-info slots follow the first slot only.
            a.more_extra = a.slots == 1 && rsp.flags & rxf::EXTRA_INFO != 0;
            if a.more_data && a.slots >= MAX_SLOTS {
                fault(
                    &mut stats.rx_long_chain,
                    "RX slot chain",
                    format_args!("more than {MAX_SLOTS} slots for one packet"),
                );
                a.bad = true;
                a.more_data = false;
                a.more_extra = false;
            }
        }
        self.spare.push(buf);
        if !a.more_data && !a.more_extra {
            let done = core::mem::take(a);
            if done.bad {
                stats.rx_dropped += 1;
            } else {
                stats.rx_packets += 1;
                stats.rx_bytes += done.data.len() as u64;
                if done.slots > 1 {
                    stats.rx_multi_slot += 1;
                }
                if done.flags & rxf::DATA_VALIDATED != 0 {
                    stats.rx_csum_validated += 1;
                }
                if done.flags & rxf::CSUM_BLANK != 0 {
                    stats.rx_csum_blank += 1;
                }
                if done.gso.is_some() {
                    stats.rx_gso += 1;
                }
                deliver(RxPacket { data: done.data, flags: done.flags, gso: done.gso });
            }
        }
    }
}

pub(crate) fn new_buffer<H: DriverEnv>(
    host: &mut H,
    backend: DomId,
    readonly: bool,
    stats: &mut Stats,
) -> Result<Buffer<H::Pages>, EnvError> {
    let page = host.alloc_pages(1)?;
    let gref = host.grant(backend, &page, 0, readonly)?;
    stats.grants_made += 1;
    Ok(Buffer { page, gref })
}

pub(crate) fn revoke_or_keep<H: DriverEnv>(
    host: &mut H,
    stats: &mut Stats,
    b: Buffer<H::Pages>,
    kept: &mut Vec<Buffer<H::Pages>>,
) {
    if host.revoke(b.gref) {
        stats.grants_revoked += 1;
    } else {
        stats.grants_kept += 1;
        kept.push(b);
    }
}
