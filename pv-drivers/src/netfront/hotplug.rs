//! netfront under the hotplug manager ([`crate::xenbus::hotplug`]): vifs
//! that come and go with `xl network-attach` / `xl network-detach`.

use super::connect::{Config, NetError, Netfront};
use super::rx::Buffer;
use super::Stats;
use crate::env::DriverEnv;
use crate::xenbus::device::DeviceInfo;
use crate::xenbus::hotplug::Driver;
use crate::xenbus::Bus;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use xenstore_client::Transport;

/// Connects vifs on a [`DriverEnv`].
pub struct VifDriver<H: DriverEnv> {
    pub host: H,
    pub cfg: Config,
    /// How long a close waits for the backend to be Closed.
    pub close_timeout: Duration,
    /// Grants a backend still mapped when their device was let go, with
    /// their pages: revoked again at every later connect and close, and
    /// the page freed once the revoke succeeds (never reused before).
    pub quarantine: Vec<Buffer<H::Pages>>,
}

impl<H: DriverEnv> VifDriver<H> {
    pub fn new(host: H, cfg: Config) -> Self {
        VifDriver { host, cfg, close_timeout: Duration::from_secs(5), quarantine: Vec::new() }
    }

    fn keep(&mut self, stats: Stats, kept: Vec<Buffer<H::Pages>>) -> VifClosed {
        let reclaimed = self.reclaim();
        let closed = VifClosed { stats, kept: kept.len(), reclaimed };
        self.quarantine.extend(kept);
        closed
    }

    /// Revokes the quarantined grants again; returns how many went (their
    /// backend has let go of them since).
    pub fn reclaim(&mut self) -> usize {
        let before = self.quarantine.len();
        let host = &mut self.host;
        self.quarantine.retain(|b| !host.revoke(b.gref));
        before - self.quarantine.len()
    }
}

/// What letting a vif go did.
#[derive(Clone, Copy, Debug)]
pub struct VifClosed {
    /// The device's final counters.
    pub stats: Stats,
    /// Pages the backend still mapped (quarantined).
    pub kept: usize,
    /// Grants of earlier devices revoked at last (their pages freed).
    pub reclaimed: usize,
}

impl fmt::Display for VifClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} grants revoked, {} still mapped and kept",
            self.stats.grants_revoked, self.kept
        )?;
        if self.reclaimed > 0 {
            write!(f, "; {} kept earlier now revoked", self.reclaimed)?;
        }
        Ok(())
    }
}

impl<H: DriverEnv> Driver for VifDriver<H> {
    type Device = Netfront<H>;
    type Closed = VifClosed;
    type Error = NetError;

    fn connect<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        dev: &DeviceInfo,
    ) -> Result<Netfront<H>, NetError> {
        self.reclaim();
        Netfront::connect(bus, &mut self.host, dev, &self.cfg)
    }

    fn close<T: Transport>(&mut self, bus: &mut Bus<T>, nf: Netfront<H>) -> VifClosed {
        let (stats, kept) = nf.disconnect(bus, &mut self.host, self.close_timeout);
        self.keep(stats, kept)
    }

    fn abandon(&mut self, nf: Netfront<H>) -> VifClosed {
        let (stats, kept) = nf.abandon(&mut self.host);
        self.keep(stats, kept)
    }

    fn kept(closed: &VifClosed) -> u64 {
        closed.kept as u64
    }
}
