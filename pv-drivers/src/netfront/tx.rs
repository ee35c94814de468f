//! The TX ring: each packet goes out as one or more slots, each a page of
//! ours granted read-only (the first slot's `size` is the whole packet's,
//! `NETTXF_more_data` links the rest). The pages stay granted and are
//! reused once the backend answered; they are revoked at disconnect.
//!
//! A packet may ask the backend to fill its checksum in (`csum_blank`,
//! the TCP checksum field holding the pseudo-header sum, as Linux's
//! CHECKSUM_PARTIAL) and, if larger than one segment, to cut it into
//! segments of `gso_size` payload bytes (a GSO extra-info slot right after
//! the first request, which netback answers with `NETIF_RSP_NULL`).
//!
//! Requests are queued by [`TxQueue::send`] and published by
//! [`TxQueue::flush`], once per batch, so one notification (if the backend
//! asked for one at all) covers many packets.

use super::buf::write_bytes;
use super::rx::{new_buffer, revoke_or_keep, Buffer};
use super::wire::extra_as_tx;
use super::{fault, Stats};
use crate::env::{DriverEnv, PageSet, PAGE_BYTES};
use crate::ring::{FrontRing, RingError};
use alloc::vec::Vec;
use hypercall::abi::grant_table::GrantRef;
use hypercall::abi::netif::{
    extra_type, gso_type, rsp, txf, NetifExtraInfo, NetifTxRequest, NetifTxResponse, MAX_TX_SIZE,
};
use hypercall::{DomId, EvtchnPort};

/// Why a packet was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// No free slot or buffer until the backend answers: try again later.
    Busy,
    /// More than `XEN_NETIF_MAX_TX_SIZE` bytes, or empty, or a GSO
    /// segment size of 0.
    BadSize,
    /// The vif was declared broken (repeated backend faults): it carries
    /// nothing any more.
    Broken,
    /// The queue asked for is not one of the vif's (a vif with fewer
    /// queues replaced the one the caller knew).
    NoQueue,
}

/// What a TX queue can take, counted at one moment: free request slots,
/// ids and buffers. A caller that owns the queue between that moment and
/// its next [`TxQueue::send_offloaded`] (a network shard that builds its
/// packets without holding the vif, then queues them all at once) spends
/// it packet by packet with [`TxRoom::take`]: every packet it took room
/// for is then accepted. Answers coming meanwhile only add room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRoom {
    pub requests: u32,
    pub ids: u32,
    pub buffers: u32,
}

impl TxRoom {
    fn need(bytes: usize, gso: bool) -> (u32, u32) {
        let slots = bytes.div_ceil(PAGE_BYTES).max(1) as u32;
        (slots, slots + u32::from(gso))
    }

    /// Whether a packet of `bytes` (with a GSO extra slot if `gso`) fits.
    pub fn fits(&self, bytes: usize, gso: bool) -> bool {
        let (slots, requests) = Self::need(bytes, gso);
        self.requests >= requests && self.ids >= slots && self.buffers >= slots
    }

    /// Takes a packet's share if it fits (and says whether it did).
    pub fn take(&mut self, bytes: usize, gso: bool) -> bool {
        if !self.fits(bytes, gso) {
            return false;
        }
        let (slots, requests) = Self::need(bytes, gso);
        self.requests -= requests;
        self.ids -= slots;
        self.buffers -= slots;
        true
    }

    /// The room of two queues a packet may take either of.
    pub fn min(self, o: TxRoom) -> TxRoom {
        TxRoom {
            requests: self.requests.min(o.requests),
            ids: self.ids.min(o.ids),
            buffers: self.buffers.min(o.buffers),
        }
    }
}

/// What the backend is asked to do for one packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// The transport checksum is blank (pseudo-header sum only): the
    /// backend, or whoever receives it, completes it.
    pub csum_blank: bool,
    /// TCPv4 GSO: cut the packet into segments of this many payload bytes.
    pub gso_size: Option<u16>,
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
    /// Slots answered so far (for the watchdog).
    answered: u64,
    /// Extra-info slots sent and not yet answered: netback answers each
    /// with `NETIF_RSP_NULL` (and an id it does not set).
    nulls_expected: u32,
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
            answered: 0,
            nulls_expected: 0,
        }
    }

    /// Slots sent and not yet answered.
    pub fn in_flight(&self) -> u32 {
        self.indices.0.wrapping_sub(self.indices.1)
    }

    /// Slots answered since the queue was made (the watchdog's progress).
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// Whether a packet of `bytes` (with a GSO extra slot) would be taken
    /// now: slots, ids and buffers for it are free.
    pub fn has_room(&self, bytes: usize) -> bool {
        self.room().fits(bytes, true)
    }

    /// What the queue can take now (see [`TxRoom`]).
    pub fn room(&self) -> TxRoom {
        let ring =
            FrontRing::<NetifTxRequest, NetifTxResponse>::resume(self.ring.words(), self.indices);
        TxRoom {
            requests: ring.free_requests(),
            ids: self.free_ids.len() as u32,
            buffers: self.spare.len() as u32 + (self.max_buffers - self.buffers),
        }
    }

    /// Queues `packet` (not yet visible: see [`TxQueue::flush`]).
    pub fn send<H: DriverEnv<Pages = P>>(
        &mut self,
        host: &mut H,
        stats: &mut Stats,
        packet: &[u8],
    ) -> Result<(), TxError> {
        self.send_offloaded(host, stats, packet, TxOffload::default())
    }

    /// Queues `packet` with what the backend should do for it.
    pub fn send_offloaded<H: DriverEnv<Pages = P>>(
        &mut self,
        host: &mut H,
        stats: &mut Stats,
        packet: &[u8],
        off: TxOffload,
    ) -> Result<(), TxError> {
        if packet.is_empty() || packet.len() > MAX_TX_SIZE as usize || off.gso_size == Some(0) {
            return Err(TxError::BadSize);
        }
        let slots = packet.len().div_ceil(PAGE_BYTES) as u32;
        let extra_slots = u32::from(off.gso_size.is_some());
        let mut ring =
            FrontRing::<NetifTxRequest, NetifTxResponse>::resume(self.ring.words(), self.indices);
        let buffers_left = self.spare.len() as u32 + (self.max_buffers - self.buffers);
        if ring.free_requests() < slots + extra_slots
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
            let mut flags = if last { 0 } else { txf::MORE_DATA };
            if k == 0 {
                if off.csum_blank {
                    flags |= txf::CSUM_BLANK | txf::DATA_VALIDATED;
                }
                if off.gso_size.is_some() {
                    flags |= txf::EXTRA_INFO;
                }
            }
            let req = NetifTxRequest {
                gref: b.gref.0,
                offset: 0,
                flags,
                id,
                size: if k == 0 { packet.len() as u16 } else { chunk.len() as u16 },
            };
            ring.push_request(&req).expect("free requests checked");
            self.in_flight[usize::from(id)] = Some(b);
            if let (0, Some(size)) = (k, off.gso_size) {
                let gso = NetifExtraInfo {
                    kind: extra_type::GSO,
                    flags: 0,
                    u: [size, u16::from(gso_type::TCPV4), 0],
                };
                ring.push_request(&extra_as_tx(&gso)).expect("free requests checked");
                self.nulls_expected += 1;
            }
        }
        self.indices = ring.indices();
        self.unpublished = true;
        stats.tx_packets += 1;
        stats.tx_bytes += packet.len() as u64;
        if slots > 1 {
            stats.tx_multi_slot += 1;
        }
        if off.csum_blank {
            stats.tx_csum_blank += 1;
        }
        if off.gso_size.is_some() {
            stats.tx_gso += 1;
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
            host.notify_batched(self.port);
            stats.notifications += 1;
            stats.tx_notifications += 1;
        }
        self.unpublished = false;
    }

    /// Takes the backend's answers and frees their slots and buffers.
    /// With `wake`, asks for an event on the next answer (a sender waiting
    /// for room); without, leaves `rsp_event` where it is, so netback
    /// sends no event for answers nobody waits for: the service collects
    /// them on its next pass anyway.
    ///
    /// Every response answers one of our slots, so once every slot has
    /// been answered no id may still be out: ids that are (their answers
    /// were taken by bogus or repeated ids) are taken back and counted,
    /// and `send` never stays busy for ever on leaked ids.
    pub fn reclaim(&mut self, stats: &mut Stats, wake: bool) -> Result<(), RingError> {
        let mut ring =
            FrontRing::<NetifTxRequest, NetifTxResponse>::resume(self.ring.words(), self.indices);
        let each = |_, r: NetifTxResponse| {
            if r.status == rsp::NULL {
                // Only extra-info slots are answered NULL, and their id is
                // not set: it frees nothing. A NULL for no extra is a
                // fault; the id it hides is recovered once every slot is
                // answered (below).
                self.answered += 1;
                match self.nulls_expected.checked_sub(1) {
                    Some(n) => self.nulls_expected = n,
                    None => fault(
                        &mut stats.tx_null_status,
                        "TX status NULL",
                        format_args!("id {}", r.id),
                    ),
                }
                return;
            }
            let Some(b) = self.in_flight.get_mut(usize::from(r.id)).and_then(Option::take) else {
                fault(&mut stats.tx_bad_id, "TX response id", format_args!("{}", r.id));
                return;
            };
            self.spare.push(b);
            self.free_ids.push(r.id);
            self.answered += 1;
            if r.status != rsp::OKAY {
                fault(&mut stats.tx_error_status, "TX status", format_args!("{}", r.status));
            }
        };
        let result = if wake { ring.drain_responses(each) } else { ring.take_responses(each) };
        self.indices = ring.indices();
        if self.in_flight() == 0 {
            // Every slot answered: no extra can still be owed a NULL.
            self.nulls_expected = 0;
        }
        if self.in_flight() == 0 && self.free_ids.len() < self.in_flight.len() {
            for (id, slot) in self.in_flight.iter_mut().enumerate() {
                if let Some(b) = slot.take() {
                    fault(
                        &mut stats.tx_ids_recovered,
                        "TX id never answered",
                        format_args!("id {id}, every slot answered"),
                    );
                    self.spare.push(b);
                    self.free_ids.push(id as u16);
                }
            }
        }
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
