//! The TX ring: each packet goes out as one or more slots, each a page of
//! ours granted read-only (the first slot's `size` is the whole packet's,
//! `NETTXF_more_data` links the rest). The pages stay granted and are
//! reused once the backend answered; they are revoked at disconnect.
//!
//! Requests are queued by [`TxQueue::send`] and published by
//! [`TxQueue::flush`], once per batch, so one notification (if the backend
//! asked for one at all) covers many packets.

use super::buf::write_bytes;
use super::rx::{new_buffer, revoke_or_keep, Buffer};
use super::{fault, Stats};
use crate::env::{DriverEnv, PageSet, PAGE_BYTES};
use crate::ring::{FrontRing, RingError};
use alloc::vec::Vec;
use hypercall::abi::grant_table::GrantRef;
use hypercall::abi::netif::{rsp, txf, NetifTxRequest, NetifTxResponse, MAX_TX_SIZE};
use hypercall::{DomId, EvtchnPort};

/// Why a packet was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// No free slot or buffer until the backend answers: try again later.
    Busy,
    /// More than `XEN_NETIF_MAX_TX_SIZE` bytes, or empty.
    BadSize,
}

/// One TX queue.
pub struct TxQueue<P> {
    ring: P,
    pub ring_gref: GrantRef,
    pub port: EvtchnPort,
    backend: DomId,
    indices: (u32, u32),
    in_flight: Vec<Option<Buffer<P>>>,
    free_ids: Vec<u16>,
    spare: Vec<Buffer<P>>,
    buffers: u32,
    max_buffers: u32,
    unpublished: bool,
}

impl<P: PageSet> TxQueue<P> {
    /// A fresh ring on `ring` (granted as `ring_gref`) using at most
    /// `max_buffers` pages for packets in flight.
    pub fn new(
        ring: P,
        ring_gref: GrantRef,
        port: EvtchnPort,
        backend: DomId,
        max_buffers: u32,
    ) -> Self {
        let r = FrontRing::<NetifTxRequest, NetifTxResponse>::init(ring.words());
        let size = r.size();
        let indices = r.indices();
        TxQueue {
            ring,
            ring_gref,
            port,
            backend,
            indices,
            in_flight: (0..size).map(|_| None).collect(),
            free_ids: (0..size as u16).rev().collect(),
            spare: Vec::new(),
            buffers: 0,
            max_buffers: max_buffers.clamp(1, size),
            unpublished: false,
        }
    }

    /// Slots sent and not yet answered.
    pub fn in_flight(&self) -> u32 {
        self.indices.0.wrapping_sub(self.indices.1)
    }

    /// Queues `packet` (not yet visible: see [`TxQueue::flush`]).
    pub fn send<H: DriverEnv<Pages = P>>(
        &mut self,
        host: &mut H,
        stats: &mut Stats,
        packet: &[u8],
    ) -> Result<(), TxError> {
        if packet.is_empty() || packet.len() > MAX_TX_SIZE as usize {
            return Err(TxError::BadSize);
        }
        let slots = packet.len().div_ceil(PAGE_BYTES) as u32;
        let mut ring =
            FrontRing::<NetifTxRequest, NetifTxResponse>::resume(self.ring.words(), self.indices);
        let buffers_left = self.spare.len() as u32 + (self.max_buffers - self.buffers);
        if ring.free_requests() < slots
            || (self.free_ids.len() as u32) < slots
            || buffers_left < slots
        {
            return Err(TxError::Busy);
        }
        // Take every buffer first: a failed allocation then queues nothing.
        let mut bufs = Vec::with_capacity(slots as usize);
        for _ in 0..slots {
            let b = match self.spare.pop() {
                Some(b) => b,
                None => match new_buffer(host, self.backend, true, stats) {
                    Ok(b) => {
                        self.buffers += 1;
                        b
                    }
                    Err(_) => {
                        self.spare.extend(bufs);
                        return Err(TxError::Busy);
                    }
                },
            };
            bufs.push(b);
        }
        for (k, (chunk, b)) in packet.chunks(PAGE_BYTES).zip(bufs).enumerate() {
            write_bytes(b.page.words(), 0, chunk).expect("a chunk fits its page");
            let id = self.free_ids.pop().expect("free ids checked");
            let last = (k + 1) as u32 == slots;
            let req = NetifTxRequest {
                gref: b.gref.0,
                offset: 0,
                flags: if last { 0 } else { txf::MORE_DATA },
                id,
                size: if k == 0 { packet.len() as u16 } else { chunk.len() as u16 },
            };
            ring.push_request(&req).expect("free requests checked");
            self.in_flight[usize::from(id)] = Some(b);
        }
        self.indices = ring.indices();
        self.unpublished = true;
        stats.tx_packets += 1;
        stats.tx_bytes += packet.len() as u64;
        if slots > 1 {
            stats.tx_multi_slot += 1;
        }
        Ok(())
    }

    /// Publishes queued packets; notifies the backend if it asked.
    pub fn flush<H: DriverEnv<Pages = P>>(&mut self, host: &mut H, stats: &mut Stats) {
        if !self.unpublished {
            return;
        }
        let mut ring =
            FrontRing::<NetifTxRequest, NetifTxResponse>::resume(self.ring.words(), self.indices);
        if ring.publish() {
            host.notify(self.port);
            stats.notifications += 1;
            stats.tx_notifications += 1;
        }
        self.unpublished = false;
    }

    /// Takes the backend's answers and frees their slots and buffers.
    pub fn reclaim(&mut self, stats: &mut Stats) -> Result<(), RingError> {
        let mut ring =
            FrontRing::<NetifTxRequest, NetifTxResponse>::resume(self.ring.words(), self.indices);
        let result = ring.drain_responses(|_, r| {
            if r.status == rsp::NULL {
                return;
            }
            let Some(b) = self.in_flight.get_mut(usize::from(r.id)).and_then(Option::take) else {
                fault(&mut stats.tx_bad_id, "TX response id", format_args!("{}", r.id));
                return;
            };
            self.spare.push(b);
            self.free_ids.push(r.id);
            if r.status != rsp::OKAY {
                fault(&mut stats.tx_error_status, "TX status", format_args!("{}", r.status));
            }
        });
        self.indices = ring.indices();
        if let Err(RingError::ProducerOutOfRange { prod, cons, size }) = result {
            fault(
                &mut stats.tx_bad_prod,
                "TX producer index",
                format_args!("rsp_prod {prod} with rsp_cons {cons}, ring of {size}"),
            );
        }
        result
    }

    /// Revokes every grant. Pages the backend still maps are returned.
    pub fn release<H: DriverEnv<Pages = P>>(
        self,
        host: &mut H,
        stats: &mut Stats,
    ) -> Vec<super::rx::Buffer<P>> {
        let mut kept = Vec::new();
        let bufs = self.in_flight.into_iter().flatten().chain(self.spare);
        for b in bufs.chain(core::iter::once(Buffer { page: self.ring, gref: self.ring_gref })) {
            revoke_or_keep(host, stats, b, &mut kept);
        }
        kept
    }
}
