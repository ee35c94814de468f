//! The xenbus side of a vif: the handshake that connects rings and event
//! channels to `xen-netback` (as Linux's `talk_to_netback` does), and the
//! disconnect that closes the device and revokes every grant.

use super::rx::{RxPacket, RxQueue};
use super::tx::{TxError, TxQueue};
use super::{HostError, NetHost, Stats};
use crate::ring::RingError;
use crate::xenbus::device::{self, DeviceInfo, XenbusError, XenbusState};
use crate::xenbus::Bus;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
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
}

impl Default for Config {
    fn default() -> Self {
        Config { rx_buffers: 128, tx_buffers: 64, timeout: Duration::from_secs(10) }
    }
}

/// Why a vif did not connect.
#[derive(Debug)]
pub enum NetError {
    Xenbus(XenbusError),
    Host(HostError),
    /// The backend cannot copy into our pages (`feature-rx-copy`).
    NoRxCopy,
    /// The `mac` node is missing or not six hex bytes.
    BadMac(String),
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

impl From<HostError> for NetError {
    fn from(e: HostError) -> Self {
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

/// A connected vif (one queue).
pub struct Netfront<H: NetHost> {
    pub dev: DeviceInfo,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// Separate TX and RX event channels (`feature-split-event-channels`).
    pub split: bool,
    /// Queues the backend offered (`multi-queue-max-queues`); one is used.
    pub queues_offered: u32,
    rx: RxQueue<H::Page>,
    tx: TxQueue<H::Page>,
    pub stats: Stats,
}

impl<H: NetHost> Netfront<H> {
    /// Connects `dev`: waits for the backend to be ready, shares the rings
    /// and event channels, moves to Connected and waits for the backend
    /// to follow, then posts the RX buffers.
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
            bus.xs.read_u64(&format!("{be}/multi-queue-max-queues")).unwrap_or(1) as u32;
        let mac_text = bus.xs.read_string(&format!("{}/mac", dev.frontend)).unwrap_or_default();
        let mac = parse_mac(&mac_text).ok_or(NetError::BadMac(mac_text))?;
        let mtu = bus.xs.read_u64(&format!("{be}/mtu")).map_or(1500, |m| m.clamp(68, 65535) as u32);

        let mut stats = Stats::default();
        let backend = dev.backend_id;
        let tx_port = host.alloc_channel(backend)?;
        let rx_port = if split {
            match host.alloc_channel(backend) {
                Ok(p) => p,
                Err(e) => {
                    host.close_channel(tx_port);
                    return Err(e.into());
                }
            }
        } else {
            tx_port
        };
        let close = |host: &mut H| {
            host.close_channel(tx_port);
            if split {
                host.close_channel(rx_port);
            }
        };
        let rings = (|| {
            let tx = super::rx::new_buffer(host, backend, false, &mut stats)?;
            let rx = match super::rx::new_buffer(host, backend, false, &mut stats) {
                Ok(b) => b,
                Err(e) => {
                    let mut kept = Vec::new();
                    super::rx::revoke_or_keep(host, &mut stats, tx, &mut kept);
                    core::mem::forget(kept);
                    return Err(e);
                }
            };
            Ok((tx, rx))
        })();
        let (txb, rxb) = match rings {
            Ok(r) => r,
            Err(e) => {
                close(host);
                return Err(NetError::Host(e));
            }
        };
        let tx = TxQueue::new(txb.page, txb.gref, tx_port, backend, cfg.tx_buffers);
        let rx = RxQueue::new(rxb.page, rxb.gref, rx_port, backend, cfg.rx_buffers);
        let mut nf = Netfront { dev: dev.clone(), mac, mtu, split, queues_offered, rx, tx, stats };
        let written = nf.publish(bus);
        let connected = written.and_then(|()| {
            device::set_state(bus, dev, XenbusState::Connected)?;
            device::wait_for_backend(bus, dev, |s| s == XenbusState::Connected, cfg.timeout)?;
            Ok(())
        });
        if let Err(e) = connected {
            let _ = device::set_state(bus, dev, XenbusState::Closed);
            close(host);
            let kept = nf.release(host);
            core::mem::forget(kept);
            return Err(e);
        }
        if let Err(e) = nf.rx.refill(host, &mut nf.stats) {
            log::warn!(
                "netfront: {}: only {} RX buffers posted: {e}",
                dev.frontend,
                nf.rx.posted()
            );
        }
        Ok(nf)
    }

    /// Writes the frontend's keys (what Linux's `talk_to_netback` writes).
    fn publish<T: Transport>(&self, bus: &mut Bus<T>) -> Result<(), NetError> {
        let fe = &self.dev.frontend;
        let num = |n: u32| format!("{n}");
        let mut keys: Vec<(&str, String)> = Vec::from([
            ("tx-ring-ref", num(self.tx.ring_gref.0)),
            ("rx-ring-ref", num(self.rx.ring_gref.0)),
            ("request-rx-copy", num(1)),
            ("feature-rx-notify", num(1)),
            ("feature-sg", num(1)),
            // Checksums are computed by our stack: ask the backend not to
            // hand us packets with a blank checksum.
            ("feature-no-csum-offload", num(1)),
        ]);
        if self.split {
            keys.push(("event-channel-tx", num(self.tx.port.0)));
            keys.push(("event-channel-rx", num(self.rx.port.0)));
        } else {
            keys.push(("event-channel", num(self.tx.port.0)));
        }
        for (k, v) in keys {
            bus.xs.write(&format!("{fe}/{k}"), v.as_bytes())?;
        }
        Ok(())
    }

    /// The event channel ports (TX, RX; the same port unless split).
    pub fn ports(&self) -> (EvtchnPort, EvtchnPort) {
        (self.tx.port, self.rx.port)
    }

    /// Delivers received packets and posts buffers again.
    pub fn poll_rx(
        &mut self,
        host: &mut H,
        deliver: impl FnMut(RxPacket),
    ) -> Result<(), RingError> {
        let r = self.rx.poll(&mut self.stats, deliver);
        let _ = self.rx.refill(host, &mut self.stats);
        r
    }

    /// Queues a packet (see [`Netfront::flush`]); reclaims completions
    /// first if the ring or the buffers are short.
    pub fn send(&mut self, host: &mut H, packet: &[u8]) -> Result<(), TxError> {
        match self.tx.send(host, &mut self.stats, packet) {
            Err(TxError::Busy) => {
                let _ = self.tx.reclaim(&mut self.stats);
                self.tx.send(host, &mut self.stats, packet)
            }
            r => r,
        }
    }

    /// Publishes queued packets.
    pub fn flush(&mut self, host: &mut H) {
        self.tx.flush(host, &mut self.stats);
    }

    /// Frees answered TX slots.
    pub fn reclaim_tx(&mut self) -> Result<(), RingError> {
        self.tx.reclaim(&mut self.stats)
    }

    /// RX buffers posted now.
    pub fn rx_posted(&self) -> u32 {
        self.rx.posted()
    }

    /// TX slots not yet answered.
    pub fn tx_in_flight(&self) -> u32 {
        self.tx.in_flight()
    }

    /// Revokes all grants; returns the pages the backend still maps.
    fn release(self, host: &mut H) -> (Stats, Vec<H::Page>) {
        let mut stats = self.stats;
        let mut kept = self.rx.release(host, &mut stats);
        kept.extend(self.tx.release(host, &mut stats));
        (stats, kept)
    }

    /// Closes the device: tells the backend (Closed, as Linux's
    /// `xenbus_frontend_closed`), waits for it to close (so it has unmapped
    /// our pages), closes the event channels and revokes every grant.
    /// Returns the final counters and the pages still mapped (never reuse
    /// them).
    pub fn disconnect<T: Transport>(
        self,
        bus: &mut Bus<T>,
        host: &mut H,
        timeout: Duration,
    ) -> (Stats, Vec<H::Page>) {
        let dev = self.dev.clone();
        if let Err(e) = device::set_state(bus, &dev, XenbusState::Closed) {
            log::warn!("netfront: {}: {e}", dev.frontend);
        }
        match device::wait_for_backend(bus, &dev, |s| s == XenbusState::Closed, timeout) {
            Ok(_) => {}
            // Gone already (the toolstack removed it): nothing maps our pages.
            Err(XenbusError::BackendTimeout { last: None, .. }) => {}
            Err(e) => log::warn!("netfront: {}: {e}", dev.frontend),
        }
        let (tx, rx, split) = (self.tx.port, self.rx.port, self.split);
        host.close_channel(tx);
        if split {
            host.close_channel(rx);
        }
        self.release(host)
    }
}
