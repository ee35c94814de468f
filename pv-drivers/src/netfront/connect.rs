//! The xenbus side of a vif: the handshake that connects rings and event
//! channels to `xen-netback` (as Linux's `talk_to_netback` does), and the
//! disconnect that closes the device and revokes every grant.

use super::ctrl::{CtrlError, CtrlRing};
use super::flow::{select_queue, RxSteering};
use super::rx::{Buffer, RxPacket, RxQueue};
use super::tx::{TxError, TxOffload, TxQueue, TxRoom};
use super::{fault, Stats, BROKEN_AFTER_FAULTS, TX_STALL_NS};
use crate::env::{DriverEnv, EnvError, PageSet};
use crate::ring::RingError;
use crate::xenbus::device::{self, DeviceInfo, XenbusError, XenbusState};
use crate::xenbus::Bus;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use core::time::Duration;
use hypercall::abi::grant_table::GrantRef;
use hypercall::EvtchnPort;
use xenstore_client::{Store, Transport};

/// Sizes and timeouts.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// RX buffers kept posted (pages).
    pub rx_buffers: u32,
    /// TX buffers at most (pages).
    pub tx_buffers: u32,
    /// How long the backend may take for each state change.
    pub timeout: Duration,
    /// Queues to use at most (the backend's `multi-queue-max-queues`
    /// limits them too); RX and TX buffers are per queue.
    pub max_queues: u32,
    /// Offer netback the offloads (checksums left blank or already
    /// validated, GSO TCPv4 both ways); false keeps every packet at the
    /// MTU with its checksum computed in software (for comparison).
    pub offload: bool,
    /// RX interrupt moderation: the most responses an RX event may wait
    /// for (1: an event for every push netback makes). See
    /// [`super::rx::Batch`].
    pub rx_batch_max: u32,
}

/// The offloads in use on a connected vif (netif.h, "Offload features").
/// RX ones are ours to offer (netback sends accordingly); TX ones need
/// the backend's keys as well.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offloads {
    /// Netback may send packets with `NETRXF_csum_blank` (we did not
    /// write `feature-no-csum-offload`): their checksum is trusted.
    pub rx_csum: bool,
    /// Netback may send GSO TCPv4 packets of up to 64 KiB, over several
    /// slots with a GSO extra-info slot (`feature-gso-tcpv4`, `feature-sg`).
    pub rx_gso: bool,
    /// Our TCP segments go out with a blank checksum (pseudo-header sum
    /// only) and `NETTXF_csum_blank | NETTXF_data_validated`: every netback
    /// accepts these.
    pub tx_csum: bool,
    /// The backend takes multi-slot packets (`feature-sg`) and GSO TCPv4
    /// (`feature-gso-tcpv4`): large segments go out whole, netback cuts them.
    pub tx_gso: bool,
}

/// Queues at most, whatever the backend offers (Linux's default bound is
/// the number of CPUs; ours serves every queue from one loop).
pub const MAX_QUEUES: u32 = 8;

impl Default for Config {
    fn default() -> Self {
        Config {
            rx_buffers: 128,
            tx_buffers: 64,
            timeout: Duration::from_secs(10),
            max_queues: 4,
            offload: true,
            rx_batch_max: 1,
        }
    }
}

/// Why a vif did not connect.
#[derive(Debug)]
pub enum NetError {
    Xenbus(XenbusError),
    Host(EnvError),
    /// The backend cannot copy into our pages (`feature-rx-copy`).
    NoRxCopy,
    /// The `mac` node is missing or not six hex bytes.
    BadMac(String),
    /// The backend went to this state instead of connecting.
    BackendLeft(XenbusState),
}

impl From<XenbusError> for NetError {
    fn from(e: XenbusError) -> Self {
        NetError::Xenbus(e)
    }
}

impl From<xenstore_client::Error> for NetError {
    fn from(e: xenstore_client::Error) -> Self {
        NetError::Xenbus(e.into())
    }
}

impl From<EnvError> for NetError {
    fn from(e: EnvError) -> Self {
        NetError::Host(e)
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Xenbus(e) => e.fmt(f),
            NetError::Host(e) => e.fmt(f),
            NetError::NoRxCopy => f.write_str("the backend does not offer feature-rx-copy"),
            NetError::BadMac(m) => write!(f, "bad mac {m:?}"),
            NetError::BackendLeft(s) => write!(f, "the backend went {s} instead of connecting"),
        }
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.trim_end_matches('\0').trim().split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn flag<T: Transport>(bus: &mut Bus<T>, path: &str) -> Result<bool, NetError> {
    Ok(match bus.xs.read_opt(path)? {
        Some(v) => {
            core::str::from_utf8(&v).ok().map(|s| s.trim_end_matches('\0').trim()) == Some("1")
        }
        None => false,
    })
}

/// One queue: a TX and an RX ring with their event channel(s).
pub struct Queue<P> {
    rx: RxQueue<P>,
    tx: TxQueue<P>,
    /// Packets through this queue, each way.
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// The TX watchdog: slots answered when last looked, and since when.
    tx_watch: (u64, u64),
}

impl<P: PageSet> Queue<P> {
    /// Event channel(s) and both ring pages; on failure whatever was made
    /// is closed or revoked again.
    fn new<H: DriverEnv<Pages = P>>(
        host: &mut H,
        backend: hypercall::DomId,
        split: bool,
        cfg: &Config,
        stats: &mut Stats,
    ) -> Result<Self, EnvError> {
        let tx_port = host.bind_event(backend)?;
        let rx_port = if split {
            match host.bind_event(backend) {
                Ok(p) => p,
                Err(e) => {
                    host.close_event(tx_port);
                    return Err(e);
                }
            }
        } else {
            tx_port
        };
        let close = |host: &mut H| {
            host.close_event(tx_port);
            if split {
                host.close_event(rx_port);
            }
        };
        let txb = match super::rx::new_buffer(host, backend, false, stats) {
            Ok(b) => b,
            Err(e) => {
                close(host);
                return Err(e);
            }
        };
        let rxb = match super::rx::new_buffer(host, backend, false, stats) {
            Ok(b) => b,
            Err(e) => {
                let mut kept = Vec::new();
                super::rx::revoke_or_keep(host, stats, txb, &mut kept);
                core::mem::forget(kept);
                close(host);
                return Err(e);
            }
        };
        let mut rx = RxQueue::new(rxb.page, rxb.gref, rx_port, backend, cfg.rx_buffers);
        rx.set_batch_max(cfg.rx_batch_max);
        Ok(Queue {
            tx: TxQueue::new(txb.page, txb.gref, tx_port, backend, cfg.tx_buffers),
            rx,
            rx_packets: 0,
            tx_packets: 0,
            tx_watch: (0, 0),
        })
    }

    /// The event channel ports (TX, RX; the same port unless split).
    pub fn ports(&self) -> (EvtchnPort, EvtchnPort) {
        (self.tx.port, self.rx.port)
    }

    /// The ring grant references (TX, RX).
    pub fn ring_refs(&self) -> (GrantRef, GrantRef) {
        (self.tx.ring_gref, self.rx.ring_gref)
    }

    /// RX buffers posted now.
    pub fn rx_posted(&self) -> u32 {
        self.rx.posted()
    }

    /// TX slots not yet answered.
    pub fn tx_in_flight(&self) -> u32 {
        self.tx.in_flight()
    }

    /// Closes the event channel(s).
    fn close<H: DriverEnv<Pages = P>>(&self, host: &mut H, split: bool) {
        host.close_event(self.tx.port);
        if split {
            host.close_event(self.rx.port);
        }
    }

    /// Revokes every grant; returns the pages the backend still maps.
    fn release<H: DriverEnv<Pages = P>>(self, host: &mut H, stats: &mut Stats) -> Vec<Buffer<P>> {
        let mut kept = self.rx.release(host, stats);
        kept.extend(self.tx.release(host, stats));
        kept
    }
}

/// A connected vif.
pub struct Netfront<H: DriverEnv> {
    pub dev: DeviceInfo,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// Separate TX and RX event channels (`feature-split-event-channels`).
    pub split: bool,
    /// Queues the backend offered (`multi-queue-max-queues`).
    pub queues_offered: u32,
    /// What both sides agreed to offload.
    pub offloads: Offloads,
    queues: Vec<Queue<H::Pages>>,
    /// The control ring, if the backend offered one and there are queues
    /// to steer between.
    ctrl: Option<CtrlRing<H::Pages>>,
    /// How netback steers RX, once [`Netfront::steer_rx`] set it up.
    rx_steering: Option<RxSteering>,
    pub stats: Stats,
    /// Declared broken: the backend faulted [`BROKEN_AFTER_FAULTS`] times
    /// or stalled TX; its rings are no longer looked at.
    broken: bool,
}

impl<H: DriverEnv> Netfront<H> {
    /// Connects `dev`: waits for the backend to be ready, shares the rings
    /// and event channels of as many queues as both sides allow, moves to
    /// Connected and waits for the backend to follow, then posts the RX
    /// buffers.
    pub fn connect<T: Transport>(
        bus: &mut Bus<T>,
        host: &mut H,
        dev: &DeviceInfo,
        cfg: &Config,
    ) -> Result<Self, NetError> {
        device::set_state(bus, dev, XenbusState::Initialising)?;
        device::wait_for_backend(bus, dev, |s| s >= XenbusState::InitWait, cfg.timeout)?;
        let be = dev.backend.clone();
        if !flag(bus, &format!("{be}/feature-rx-copy"))? {
            return Err(NetError::NoRxCopy);
        }
        let split = flag(bus, &format!("{be}/feature-split-event-channels"))?;
        let queues_offered =
            bus.xs.read_u64(&format!("{be}/multi-queue-max-queues")).unwrap_or(1).min(1 << 16)
                as u32;
        let num_queues = queues_offered.clamp(1, cfg.max_queues.clamp(1, MAX_QUEUES));
        let mac_text = bus.xs.read_string(&format!("{}/mac", dev.frontend)).unwrap_or_default();
        let mac = parse_mac(&mac_text).ok_or(NetError::BadMac(mac_text))?;
        let mtu = bus.xs.read_u64(&format!("{be}/mtu")).map_or(1500, |m| m.clamp(68, 65535) as u32);
        let offloads = if cfg.offload {
            let be_sg = flag(bus, &format!("{be}/feature-sg"))?;
            let be_gso = flag(bus, &format!("{be}/feature-gso-tcpv4"))?;
            Offloads { rx_csum: true, rx_gso: true, tx_csum: true, tx_gso: be_sg && be_gso }
        } else {
            Offloads::default()
        };

        let mut stats = Stats::default();
        let mut queues = Vec::new();
        for _ in 0..num_queues {
            match Queue::new(host, dev.backend_id, split, cfg, &mut stats) {
                Ok(q) => queues.push(q),
                Err(e) => {
                    for q in queues {
                        q.close(host, split);
                        core::mem::forget(q.release(host, &mut stats));
                    }
                    return Err(NetError::Host(e));
                }
            }
        }
        // A control ring to steer RX with (netif.h, "Control ring"): only
        // worth it with queues to steer between; without one the vif works
        // as before.
        let mut ctrl = None;
        if queues.len() > 1 && flag(bus, &format!("{be}/feature-ctrl-ring"))? {
            match CtrlRing::new(host, dev.backend_id, &mut stats) {
                Ok(c) => ctrl = Some(c),
                Err(e) => log::warn!("netfront: {}: no control ring: {e}", dev.frontend),
            }
        }
        let mut nf = Netfront {
            dev: dev.clone(),
            mac,
            mtu,
            split,
            queues_offered,
            offloads,
            queues,
            ctrl,
            rx_steering: None,
            stats,
            broken: false,
        };
        let connected = nf.publish(bus).and_then(|()| {
            // Connected, or anything past it: a backend that starts
            // closing instead (the toolstack detaching the device while
            // we connect) ends the wait at once.
            let s =
                device::wait_for_backend(bus, dev, |s| s >= XenbusState::Connected, cfg.timeout)?;
            if s != XenbusState::Connected {
                return Err(NetError::BackendLeft(s));
            }
            Ok(())
        });
        if let Err(e) = connected {
            // The backend may have mapped the rings already: close with it
            // and let it unmap before revoking (unless the node belongs to
            // a new device by now). Pages it still maps are never reused.
            let (_, kept) = nf.disconnect(bus, host, cfg.timeout);
            core::mem::forget(kept);
            return Err(e);
        }
        for q in &mut nf.queues {
            if let Err(e) = q.rx.refill(host, &mut nf.stats) {
                log::warn!(
                    "netfront: {}: only {} RX buffers posted: {e}",
                    dev.frontend,
                    q.rx.posted()
                );
            }
        }
        Ok(nf)
    }

    /// Writes the frontend's keys (what Linux's `talk_to_netback` writes)
    /// and Connected, in one transaction:
    /// one queue's rings and channels at the device's top level, or
    /// `multi-queue-num-queues` and each queue's under `queue-N/`.
    fn publish<T: Transport>(&self, bus: &mut Bus<T>) -> Result<(), NetError> {
        let num = |n: u32| format!("{n}");
        let mut keys: Vec<(String, String)> = Vec::new();
        let multi = self.queues.len() > 1;
        if multi {
            keys.push(("multi-queue-num-queues".into(), num(self.queues.len() as u32)));
        }
        for (i, q) in self.queues.iter().enumerate() {
            let dir = if multi { format!("queue-{i}/") } else { String::new() };
            keys.push((format!("{dir}tx-ring-ref"), num(q.tx.ring_gref.0)));
            keys.push((format!("{dir}rx-ring-ref"), num(q.rx.ring_gref.0)));
            if self.split {
                keys.push((format!("{dir}event-channel-tx"), num(q.tx.port.0)));
                keys.push((format!("{dir}event-channel-rx"), num(q.rx.port.0)));
            } else {
                keys.push((format!("{dir}event-channel"), num(q.tx.port.0)));
            }
        }
        if let Some(c) = &self.ctrl {
            keys.push(("ctrl-ring-ref".into(), num(c.ring_gref.0)));
            keys.push(("event-channel-ctrl".into(), num(c.port.0)));
        }
        let o = self.offloads;
        for (k, v) in [
            ("request-rx-copy", 1),
            ("feature-rx-notify", 1),
            ("feature-sg", 1),
            // Netback's vif gets NETIF_F_IP_CSUM unless we write 1 here:
            // without it, dom0 computes every checksum it sends us, and
            // TSO (which needs it) is off too.
            ("feature-no-csum-offload", u32::from(!o.rx_csum)),
            // Netback's vif gets NETIF_F_TSO: dom0's stack hands it 64 KiB
            // segments, which reach us as one multi-slot packet with a
            // GSO extra-info slot (never the old prefix slot).
            ("feature-gso-tcpv4", u32::from(o.rx_gso)),
        ] {
            keys.push((k.into(), num(v)));
        }
        // All at once with Connected, as Linux's talk_to_netback does (and
        // only while the device is still there).
        device::publish(bus, &self.dev, &keys, XenbusState::Connected)?;
        Ok(())
    }

    /// The queues in use.
    pub fn queues(&self) -> &[Queue<H::Pages>] {
        &self.queues
    }

    /// The control ring's grant and event channel, if there is one.
    pub fn ctrl_ring(&self) -> Option<(GrantRef, EvtchnPort)> {
        self.ctrl.as_ref().map(|c| (c.ring_gref, c.port))
    }

    /// How netback steers RX, if [`Netfront::steer_rx`] set it up.
    pub fn rx_steering(&self) -> Option<RxSteering> {
        self.rx_steering
    }

    /// Has netback steer RX flows as we steer TX ([`super::ctrl`]): call
    /// once connected. `wait` is called while an answer is due; it should
    /// block until an event or a short timeout, and return false to give
    /// up. On failure netback keeps (or is set back to) its own RX steering.
    pub fn steer_rx(
        &mut self,
        host: &mut H,
        wait: impl FnMut() -> bool,
    ) -> Result<RxSteering, CtrlError> {
        let ctrl = self.ctrl.as_mut().ok_or(CtrlError::NoRing)?;
        let queues = self.queues.len() as u32;
        let s = ctrl.configure_toeplitz(host, &mut self.stats, queues, wait)?;
        self.rx_steering = Some(s);
        Ok(s)
    }

    /// Whether the vif was declared broken (see [`BROKEN_AFTER_FAULTS`],
    /// [`Netfront::watchdog`]): it then carries nothing, and is left
    /// alone until it is closed.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Declares the vif broken once the backend faulted too often.
    fn judge(&mut self) {
        let faults = self.stats.backend_errors();
        if !self.broken && faults >= BROKEN_AFTER_FAULTS {
            self.broken = true;
            log::error!(
                "netfront: {}: declared broken after {faults} backend faults; no more I/O on it",
                self.dev.frontend
            );
        }
    }

    /// The TX watchdog, called now and then with the time: a queue with
    /// slots in flight and no answer for [`TX_STALL_NS`] is a fault, and
    /// the vif is declared broken (a stalled ring would keep `send` busy
    /// for ever).
    pub fn watchdog(&mut self, now_ns: u64) {
        if self.broken {
            return;
        }
        let mut stalled = false;
        for q in &mut self.queues {
            let answered = q.tx.answered();
            if q.tx.in_flight() == 0 || answered != q.tx_watch.0 || q.tx_watch.1 == 0 {
                q.tx_watch = (answered, now_ns.max(1));
            } else if now_ns.saturating_sub(q.tx_watch.1) >= TX_STALL_NS {
                fault(
                    &mut self.stats.tx_stalled,
                    "TX stalled",
                    format_args!("{} slots unanswered for {TX_STALL_NS} ns", q.tx.in_flight()),
                );
                q.tx_watch = (answered, now_ns);
                stalled = true;
            }
        }
        if stalled {
            self.broken = true;
            log::error!(
                "netfront: {}: declared broken: TX stalled; no more I/O on it",
                self.dev.frontend
            );
        }
        self.judge();
    }

    /// The queues `which` names: queue `q`, or all of them (`None`); none
    /// if `q` is not a queue of this vif.
    fn span(&self, which: Option<usize>) -> Range<usize> {
        match which {
            None => 0..self.queues.len(),
            Some(q) if q < self.queues.len() => q..q + 1,
            Some(_) => 0..0,
        }
    }

    /// Delivers received packets from every queue and posts buffers again.
    /// Returns the first ring error (the other queues are still served).
    pub fn poll_rx(
        &mut self,
        host: &mut H,
        deliver: impl FnMut(RxPacket),
    ) -> Result<(), RingError> {
        self.poll_rx_queues(None, host, deliver)
    }

    /// As [`Netfront::poll_rx`], for queue `q` only (`Some(q)`: one
    /// network shard's, see docs/smp.md) or all (`None`).
    pub fn poll_rx_queues(
        &mut self,
        which: Option<usize>,
        host: &mut H,
        mut deliver: impl FnMut(RxPacket),
    ) -> Result<(), RingError> {
        if self.broken {
            return Ok(());
        }
        let mut result = Ok(());
        for i in self.span(which) {
            let q = &mut self.queues[i];
            let before = self.stats.rx_packets;
            let r = q.rx.poll(&mut self.stats, &mut deliver);
            q.rx_packets += self.stats.rx_packets - before;
            let _ = q.rx.refill(host, &mut self.stats);
            result = result.and(r);
        }
        self.judge();
        result
    }

    /// Whether an RX event of queue `q` (or of any, `None`) waits for a
    /// batch: the caller must also wake by its own timer, then call
    /// [`Netfront::rx_end_batch`].
    pub fn rx_batching(&self, which: Option<usize>) -> bool {
        !self.broken && self.span(which).any(|i| self.queues[i].rx.batching())
    }

    /// The caller's hold for a batch ran out on queue `q` (or all): each
    /// goes back to an event per push; true if responses are waiting.
    pub fn rx_end_batch(&mut self, which: Option<usize>) -> bool {
        if self.broken {
            return false;
        }
        let mut waiting = false;
        for i in self.span(which) {
            let rx = &mut self.queues[i].rx;
            if rx.batching() {
                // A broken index shows at the next poll, which counts it.
                waiting |= rx.end_batch().unwrap_or(true);
            }
        }
        waiting
    }

    /// The RX moderation of queue `q` (for reports and tests).
    pub fn rx_batch(&self, q: usize) -> Option<super::rx::Batch> {
        self.queues.get(q).map(|q| q.rx.batch())
    }

    /// Queues a packet on its flow's queue (see [`Netfront::flush`]);
    /// reclaims completions first if the ring or the buffers are short.
    pub fn send(&mut self, host: &mut H, packet: &[u8]) -> Result<(), TxError> {
        self.send_offloaded(host, packet, TxOffload::default())
    }

    /// As [`Netfront::send`], asking the backend for `off` (which must be
    /// within [`Netfront::offloads`]: a GSO packet to a backend without
    /// `feature-gso-tcpv4` is refused as [`TxError::BadSize`]).
    pub fn send_offloaded(
        &mut self,
        host: &mut H,
        packet: &[u8],
        off: TxOffload,
    ) -> Result<(), TxError> {
        self.send_on(None, host, packet, off)
    }

    /// As [`Netfront::send_offloaded`], on queue `q` whatever the flow
    /// (`Some(q)`: a network shard sends every packet of its flows on its
    /// own queue, the one netback steers them in on) or on the flow's
    /// queue (`None`).
    pub fn send_on(
        &mut self,
        which: Option<usize>,
        host: &mut H,
        packet: &[u8],
        off: TxOffload,
    ) -> Result<(), TxError> {
        if self.broken {
            return Err(TxError::Broken);
        }
        if (off.gso_size.is_some() && !self.offloads.tx_gso)
            || (off.csum_blank && !self.offloads.tx_csum)
        {
            return Err(TxError::BadSize);
        }
        let i = match which {
            None => select_queue(packet, self.queues.len()),
            Some(q) if q < self.queues.len() => q,
            Some(_) => return Err(TxError::NoQueue),
        };
        let q = &mut self.queues[i];
        let r = match q.tx.send_offloaded(host, &mut self.stats, packet, off) {
            Err(TxError::Busy) => {
                let _ = q.tx.reclaim(&mut self.stats, false);
                match q.tx.send_offloaded(host, &mut self.stats, packet, off) {
                    Err(TxError::Busy) => {
                        // Still full: an event when netback answers.
                        let _ = q.tx.reclaim(&mut self.stats, true);
                        Err(TxError::Busy)
                    }
                    r => r,
                }
            }
            r => r,
        };
        if r.is_ok() {
            q.tx_packets += 1;
        }
        self.judge();
        r
    }

    /// Publishes queued packets (one notification per queue at most).
    pub fn flush(&mut self, host: &mut H) {
        self.flush_queues(None, host);
    }

    /// As [`Netfront::flush`], for queue `q` only or all (`None`).
    pub fn flush_queues(&mut self, which: Option<usize>, host: &mut H) {
        for i in self.span(which) {
            self.queues[i].tx.flush(host, &mut self.stats);
        }
    }

    /// Frees answered TX slots on every queue, asking netback for no
    /// event: its TX answers wake nobody unless a sender waits for room
    /// ([`Netfront::tx_room`], [`Netfront::send`] ask for one then).
    pub fn reclaim_tx(&mut self) -> Result<(), RingError> {
        self.reclaim_tx_queues(None)
    }

    /// As [`Netfront::reclaim_tx`], for queue `q` only or all (`None`).
    pub fn reclaim_tx_queues(&mut self, which: Option<usize>) -> Result<(), RingError> {
        if self.broken {
            return Ok(());
        }
        let mut result = Ok(());
        for i in self.span(which) {
            result = result.and(self.queues[i].tx.reclaim(&mut self.stats, false));
        }
        self.judge();
        result
    }

    /// RX buffers posted now, all queues.
    pub fn rx_posted(&self) -> u32 {
        self.queues.iter().map(Queue::rx_posted).sum()
    }

    /// Whether every queue takes a packet of `bytes` now (the stack asks
    /// before it knows the packet's flow, hence its queue), after taking
    /// the backend's answers. A stack that sends only when this holds
    /// never sees a packet dropped for want of room: its data waits in its
    /// own buffer instead of being retransmitted after a timeout.
    /// Without room, an event is asked for on the first answer of each
    /// full queue, so the waiting stack is woken when room comes.
    pub fn tx_room(&mut self, bytes: usize) -> bool {
        self.tx_room_on(None, bytes).fits(bytes, true)
    }

    /// What queue `q` (or every queue, `None`: the least of them) can take
    /// now, after taking the backend's answers; a queue without room for
    /// a packet of `bytes` asks for an event on its next answer, as
    /// [`Netfront::tx_room`] does. Nothing for a broken vif or a queue it
    /// does not have.
    pub fn tx_room_on(&mut self, which: Option<usize>, bytes: usize) -> TxRoom {
        let span = self.span(which);
        if self.broken || span.is_empty() {
            return TxRoom::default();
        }
        let _ = self.reclaim_tx_queues(which);
        let mut room: Option<TxRoom> = None;
        for i in span {
            let q = &mut self.queues[i];
            if !q.tx.has_room(bytes) {
                let _ = q.tx.reclaim(&mut self.stats, true);
            }
            let r = q.tx.room();
            room = Some(room.map_or(r, |m| m.min(r)));
        }
        room.unwrap_or_default()
    }

    /// TX slots not yet answered, all queues.
    pub fn tx_in_flight(&self) -> u32 {
        self.queues.iter().map(Queue::tx_in_flight).sum()
    }

    /// Closes every event channel (queues and control ring).
    fn close_events(&self, host: &mut H) {
        for q in &self.queues {
            q.close(host, self.split);
        }
        if let Some(c) = &self.ctrl {
            c.close(host);
        }
    }

    /// Revokes all grants; returns the pages the backend still maps.
    fn release(self, host: &mut H) -> (Stats, Vec<Buffer<H::Pages>>) {
        let mut stats = self.stats;
        let mut kept = Vec::new();
        for q in self.queues {
            kept.extend(q.release(host, &mut stats));
        }
        if let Some(c) = self.ctrl {
            kept.extend(c.release(host, &mut stats));
        }
        (stats, kept)
    }

    /// Closes the device: tells the backend (Closed, as Linux's
    /// `xenbus_frontend_closed`), waits for it to close (so it has unmapped
    /// our pages), closes the event channels and revokes every grant.
    /// Returns the final counters and the pages still mapped (never reuse
    /// them). If the frontend's node was reset meanwhile (a new device
    /// under the same id), nothing is written and nothing waited for:
    /// the node and its backend belong to the new device.
    pub fn disconnect<T: Transport>(
        self,
        bus: &mut Bus<T>,
        host: &mut H,
        timeout: Duration,
    ) -> (Stats, Vec<Buffer<H::Pages>>) {
        let dev = self.dev.clone();
        let written = match device::close_state(bus, &dev, XenbusState::Closed) {
            Ok(w) => w,
            Err(e) => {
                log::warn!("netfront: {}: {e}", dev.frontend);
                false
            }
        };
        if written {
            match device::wait_for_backend(bus, &dev, |s| s == XenbusState::Closed, timeout) {
                Ok(_) => {}
                // Gone already (the toolstack removed it): nothing maps our pages.
                Err(XenbusError::BackendTimeout { last: None, .. })
                | Err(XenbusError::BackendGone { .. })
                | Err(XenbusError::Vanished { .. }) => {}
                Err(e) => log::warn!("netfront: {}: {e}", dev.frontend),
            }
        }
        self.abandon(host)
    }

    /// Lets the device go without a word to XenStore (it vanished, or its
    /// id now names a new device): closes the event channels and revokes
    /// every grant the backend no longer maps. Returns the final counters
    /// and the pages still mapped (never reuse them).
    pub fn abandon(self, host: &mut H) -> (Stats, Vec<Buffer<H::Pages>>) {
        self.close_events(host);
        self.release(host)
    }
}
