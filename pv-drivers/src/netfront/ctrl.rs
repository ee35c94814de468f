//! The netif control ring (`netif.h`, "Control ring"): a third ring, one
//! page, on which the frontend tells netback how to spread the packets it
//! sends us (RX) over the queues. Without it, Linux's netback picks the RX
//! queue from the sending socket's random hash (`netdev_pick_tx`), so which
//! queue a flow arrives on is luck. With it, netback hashes each packet
//! with Toeplitz under our key and looks the queue up in our table: the
//! same hash and table the guest uses for TX ([`super::flow`]), so the
//! guest knows every flow's RX queue.
//!
//! The frontend offers the ring (`ctrl-ring-ref`, `event-channel-ctrl`)
//! before it goes Connected if the backend says `feature-ctrl-ring`; once
//! both are Connected, [`CtrlRing::configure_toeplitz`] sends, one at a
//! time, waiting for each answer:
//! `SET_HASH_ALGORITHM` (Toeplitz), `GET_HASH_FLAGS`, `SET_HASH_KEY` (a
//! granted page holding the key), `GET_HASH_MAPPING_SIZE`,
//! `SET_HASH_MAPPING_SIZE`, `SET_HASH_MAPPING` (a granted page of `u32`
//! queue numbers), `SET_HASH_FLAGS`. If netback refuses a step after the
//! first, the algorithm is set back to none so netback steers as before.
//!
//! Responses are copied out of the shared page once (the ring does that),
//! then checked: an id or type that is not the request's, a producer index
//! out of range, or silence are errors, never a panic.

use super::buf::write_bytes;
use super::flow::{table_entry, RxSteering, RSS_KEY, TABLE_SIZE};
use super::rx::{new_buffer, revoke_or_keep, Buffer};
use super::Stats;
use crate::env::{DriverEnv, EnvError, PageSet};
use crate::ring::{FrontRing, RingError};
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::AtomicU32;
use hypercall::abi::grant_table::GrantRef;
use hypercall::abi::netif::{
    ctrl_status, ctrl_type, hash_algorithm, hash_type, NetifCtrlRequest, NetifCtrlResponse,
};
use hypercall::{DomId, EvtchnPort};

/// The hash types we ask for: all netif.h defines (netback then hashes TCP
/// by addresses and ports, anything else IP by addresses).
pub const WANTED_HASH_TYPES: u32 =
    hash_type::IPV4 | hash_type::IPV4_TCP | hash_type::IPV6 | hash_type::IPV6_TCP;

/// Why RX steering is not in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlError {
    /// No control ring: the backend lacks `feature-ctrl-ring`, or one queue
    /// only (nothing to steer), or the ring could not be made.
    NoRing,
    /// The backend answered a request with an error status
    /// (`XEN_NETIF_CTRL_STATUS_*`).
    Refused { request: u16, status: u32 },
    /// A successful answer that makes no sense (e.g. no common hash type).
    Unusable { request: u16, data: u32 },
    /// No answer in time.
    Timeout { request: u16 },
    /// An earlier request went unanswered or was answered out of turn: the
    /// ring is out of step and nothing more is sent on it.
    OutOfStep { request: u16 },
    /// An answer whose id or type is not the request's.
    BadResponse { request: u16, id: u16, kind: u16 },
    /// The backend broke the ring protocol.
    Ring(RingError),
    /// A page for the key or the table could not be had or granted.
    Host(EnvError),
    /// The key or the table does not fit in its page.
    PageOverflow,
}

/// A `XEN_NETIF_CTRL_TYPE_*` by name, for messages.
pub fn request_name(kind: u16) -> &'static str {
    match kind {
        ctrl_type::GET_HASH_FLAGS => "GET_HASH_FLAGS",
        ctrl_type::SET_HASH_FLAGS => "SET_HASH_FLAGS",
        ctrl_type::SET_HASH_KEY => "SET_HASH_KEY",
        ctrl_type::GET_HASH_MAPPING_SIZE => "GET_HASH_MAPPING_SIZE",
        ctrl_type::SET_HASH_MAPPING_SIZE => "SET_HASH_MAPPING_SIZE",
        ctrl_type::SET_HASH_MAPPING => "SET_HASH_MAPPING",
        ctrl_type::SET_HASH_ALGORITHM => "SET_HASH_ALGORITHM",
        _ => "unknown request",
    }
}

/// `XEN_NETIF_CTRL_HASH_TYPE_*` flags by name (`ipv4,ipv4-tcp,...`).
pub fn hash_type_names(flags: u32) -> alloc::string::String {
    let names = [
        (hash_type::IPV4, "ipv4"),
        (hash_type::IPV4_TCP, "ipv4-tcp"),
        (hash_type::IPV6, "ipv6"),
        (hash_type::IPV6_TCP, "ipv6-tcp"),
    ];
    let on: Vec<&str> = names.iter().filter(|(f, _)| flags & f != 0).map(|(_, n)| *n).collect();
    if on.is_empty() {
        "none".into()
    } else {
        on.join(",")
    }
}

fn status_name(status: u32) -> &'static str {
    match status {
        ctrl_status::NOT_SUPPORTED => "NOT_SUPPORTED",
        ctrl_status::INVALID_PARAMETER => "INVALID_PARAMETER",
        ctrl_status::BUFFER_OVERFLOW => "BUFFER_OVERFLOW",
        _ => "unknown status",
    }
}

impl fmt::Display for CtrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CtrlError::NoRing => f.write_str("no control ring (backend without feature-ctrl-ring)"),
            CtrlError::Refused { request, status } => write!(
                f,
                "{} refused: status {status} ({})",
                request_name(request),
                status_name(status)
            ),
            CtrlError::Unusable { request, data } => {
                write!(f, "{} answered {data:#x}, which is unusable", request_name(request))
            }
            CtrlError::Timeout { request } => write!(f, "no answer to {}", request_name(request)),
            CtrlError::OutOfStep { request } => {
                write!(f, "control ring out of step: {} not sent", request_name(request))
            }
            CtrlError::BadResponse { request, id, kind } => write!(
                f,
                "answer to {} has id {id} type {kind}, not the request's",
                request_name(request)
            ),
            CtrlError::Ring(RingError::ProducerOutOfRange { prod, cons, size }) => {
                write!(f, "control ring: rsp_prod {prod} with rsp_cons {cons}, ring of {size}")
            }
            CtrlError::Host(e) => e.fmt(f),
            CtrlError::PageOverflow => f.write_str("hash key or table larger than a page"),
        }
    }
}

/// The frontend's end of the control ring.
pub struct CtrlRing<P> {
    ring: P,
    pub ring_gref: GrantRef,
    pub port: EvtchnPort,
    backend: DomId,
    indices: (u32, u32),
    next_id: u16,
    /// A request went unanswered or was answered out of turn: the ring is
    /// out of step and no further request is sent.
    broken: bool,
}

impl<P: PageSet> CtrlRing<P> {
    /// A ring page granted to `backend` and an event channel for it.
    pub fn new<H: DriverEnv<Pages = P>>(
        host: &mut H,
        backend: DomId,
        stats: &mut Stats,
    ) -> Result<Self, EnvError> {
        let port = host.bind_event(backend)?;
        let b = match new_buffer(host, backend, false, stats) {
            Ok(b) => b,
            Err(e) => {
                host.close_event(port);
                return Err(e);
            }
        };
        let ring = FrontRing::<NetifCtrlRequest, NetifCtrlResponse>::init(b.page.words());
        let indices = ring.indices();
        Ok(CtrlRing {
            ring: b.page,
            ring_gref: b.gref,
            port,
            backend,
            indices,
            next_id: 0,
            broken: false,
        })
    }

    /// Slots in the ring.
    pub fn size(&self) -> u32 {
        FrontRing::<NetifCtrlRequest, NetifCtrlResponse>::resume(self.ring.words(), self.indices)
            .size()
    }

    /// Sends one request and waits for its answer: `wait` is called while
    /// there is none (it should block until an event or a short timeout)
    /// and returns false to give up. Returns the response's `data`.
    pub fn request<H: DriverEnv<Pages = P>>(
        &mut self,
        host: &mut H,
        stats: &mut Stats,
        kind: u16,
        data: [u32; 3],
        wait: &mut dyn FnMut() -> bool,
    ) -> Result<u32, CtrlError> {
        if self.broken {
            return Err(CtrlError::OutOfStep { request: kind });
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut ring = FrontRing::<NetifCtrlRequest, NetifCtrlResponse>::resume(
            self.ring.words(),
            self.indices,
        );
        // One request at a time: the ring is never full here.
        if ring.push_request(&NetifCtrlRequest { id, kind, data }).is_err() {
            self.broken = true;
            return Err(CtrlError::OutOfStep { request: kind });
        }
        if ring.publish() {
            host.notify(self.port);
            stats.notifications += 1;
        }
        let answer = loop {
            match ring.take_response() {
                Err(e) => break Err(CtrlError::Ring(e)),
                Ok(Some(rsp)) => break Ok(rsp),
                Ok(None) => {}
            }
            match ring.final_check_for_responses() {
                Err(e) => break Err(CtrlError::Ring(e)),
                Ok(true) => continue,
                Ok(false) => {}
            }
            if !wait() {
                break Err(CtrlError::Timeout { request: kind });
            }
        };
        self.indices = ring.indices();
        let rsp = match answer {
            Ok(r) => r,
            Err(e) => {
                self.broken = true;
                return Err(e);
            }
        };
        if rsp.id != id || rsp.kind != kind {
            self.broken = true;
            return Err(CtrlError::BadResponse { request: kind, id: rsp.id, kind: rsp.kind });
        }
        if rsp.status != ctrl_status::SUCCESS {
            return Err(CtrlError::Refused { request: kind, status: rsp.status });
        }
        Ok(rsp.data)
    }

    /// Sets netback up to steer RX as the guest does TX: Toeplitz under
    /// [`RSS_KEY`] over the hash types both sides know, a table of up to
    /// [`TABLE_SIZE`] entries filled by [`table_entry`] over `queues`.
    /// On a refusal after the algorithm was set, sets it back to none
    /// (netback then steers as it did before) and returns the refusal.
    pub fn configure_toeplitz<H: DriverEnv<Pages = P>>(
        &mut self,
        host: &mut H,
        stats: &mut Stats,
        queues: u32,
        mut wait: impl FnMut() -> bool,
    ) -> Result<RxSteering, CtrlError> {
        let wait: &mut dyn FnMut() -> bool = &mut wait;
        self.request(
            host,
            stats,
            ctrl_type::SET_HASH_ALGORITHM,
            [hash_algorithm::TOEPLITZ, 0, 0],
            wait,
        )?;
        let result = self.toeplitz_steps(host, stats, queues, wait);
        if let Err(e) = result {
            if !self.broken {
                let none = [hash_algorithm::NONE, 0, 0];
                if let Err(undo) =
                    self.request(host, stats, ctrl_type::SET_HASH_ALGORITHM, none, wait)
                {
                    log::warn!("netfront: cannot set the hash algorithm back to none: {undo}");
                }
            }
            return Err(e);
        }
        result
    }

    fn toeplitz_steps<H: DriverEnv<Pages = P>>(
        &mut self,
        host: &mut H,
        stats: &mut Stats,
        queues: u32,
        wait: &mut dyn FnMut() -> bool,
    ) -> Result<RxSteering, CtrlError> {
        let request = ctrl_type::GET_HASH_FLAGS;
        let supported = self.request(host, stats, request, [0; 3], wait)?;
        let flags = supported & WANTED_HASH_TYPES;
        if flags == 0 {
            return Err(CtrlError::Unusable { request, data: supported });
        }

        let key = self.page_with(host, stats, |page| write_bytes(page, 0, &RSS_KEY))?;
        let len = RSS_KEY.len() as u32;
        let r = self.request(host, stats, ctrl_type::SET_HASH_KEY, [key.gref.0, len, 0], wait);
        self.drop_page(host, stats, key);
        r?;

        let max = self.request(host, stats, ctrl_type::GET_HASH_MAPPING_SIZE, [0; 3], wait)?;
        // 0: no table, netback takes `hash % queues` (RxSteering does too).
        let table_size = max.min(TABLE_SIZE);
        if table_size > 0 {
            let size = [table_size, 0, 0];
            self.request(host, stats, ctrl_type::SET_HASH_MAPPING_SIZE, size, wait)?;
            let table = self.page_with(host, stats, |page| {
                let mut bytes = [0u8; TABLE_SIZE as usize * 4];
                for (i, e) in bytes.chunks_exact_mut(4).enumerate() {
                    e.copy_from_slice(&table_entry(i as u32, queues).to_le_bytes());
                }
                write_bytes(page, 0, &bytes[..table_size as usize * 4])
            })?;
            let data = [table.gref.0, table_size, 0];
            let r = self.request(host, stats, ctrl_type::SET_HASH_MAPPING, data, wait);
            self.drop_page(host, stats, table);
            r?;
        }

        self.request(host, stats, ctrl_type::SET_HASH_FLAGS, [flags, 0, 0], wait)?;
        Ok(RxSteering { flags, table_size, queues })
    }

    /// A new page filled by `fill`, granted read-only to the backend.
    fn page_with<H: DriverEnv<Pages = P>>(
        &mut self,
        host: &mut H,
        stats: &mut Stats,
        fill: impl FnOnce(&[AtomicU32]) -> Result<(), super::buf::OutOfBounds>,
    ) -> Result<Buffer<P>, CtrlError> {
        let page = host.alloc_pages(1).map_err(CtrlError::Host)?;
        // Fill before granting: the backend never sees it half written.
        fill(page.words()).map_err(|_| CtrlError::PageOverflow)?;
        let gref = host.grant(self.backend, &page, 0, true).map_err(CtrlError::Host)?;
        stats.grants_made += 1;
        Ok(Buffer { page, gref })
    }

    /// Revokes a key or table page once its request was answered (netback
    /// copies from it, so nothing maps it; if something does, it is kept).
    fn drop_page<H: DriverEnv<Pages = P>>(
        &mut self,
        host: &mut H,
        stats: &mut Stats,
        b: Buffer<P>,
    ) {
        let mut kept = Vec::new();
        revoke_or_keep(host, stats, b, &mut kept);
        // A page the backend still maps must never be reused.
        core::mem::forget(kept);
    }

    /// Closes the event channel.
    pub fn close<H: DriverEnv<Pages = P>>(&self, host: &mut H) {
        host.close_event(self.port);
    }

    /// Revokes the ring's grant; returns the page if the backend still
    /// maps it.
    pub fn release<H: DriverEnv<Pages = P>>(
        self,
        host: &mut H,
        stats: &mut Stats,
    ) -> Vec<Buffer<P>> {
        let mut kept = Vec::new();
        revoke_or_keep(host, stats, Buffer { page: self.ring, gref: self.ring_gref }, &mut kept);
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfront::fake::FakeHost;
    use hypercall::abi::netif::CTRL_RING_PAGE_SLOTS;

    #[test]
    fn a_one_page_ring_has_the_slots_ring_h_gives_it() {
        let mut host = FakeHost::default();
        let mut stats = Stats::default();
        let ring = CtrlRing::new(&mut host, DomId(0), &mut stats).unwrap();
        assert_eq!(ring.size(), CTRL_RING_PAGE_SLOTS);
        ring.close(&mut host);
        assert!(ring.release(&mut host, &mut stats).is_empty());
        assert_eq!(stats.grants_active(), 0);
        assert!(host.xen.borrow().open_ports.is_empty());
    }

    #[test]
    fn errors_read_well() {
        let e = CtrlError::Refused {
            request: ctrl_type::SET_HASH_MAPPING,
            status: ctrl_status::INVALID_PARAMETER,
        };
        assert_eq!(e.to_string(), "SET_HASH_MAPPING refused: status 2 (INVALID_PARAMETER)");
        assert!(CtrlError::NoRing.to_string().contains("feature-ctrl-ring"));
        assert_eq!(hash_type_names(WANTED_HASH_TYPES), "ipv4,ipv4-tcp,ipv6,ipv6-tcp");
        assert_eq!(hash_type_names(hash_type::IPV4_TCP), "ipv4-tcp");
        assert_eq!(hash_type_names(0), "none");
    }
}
