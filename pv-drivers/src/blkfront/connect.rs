//! The xenbus handshake (`blkif.h`, as Linux's xen-blkfront does it):
//!
//! 1. the backend reaches `InitWait` and has written what the frontend
//!    must know before building the rings (`max-ring-page-order`,
//!    `feature-max-indirect-segments`, `multi-queue-max-queues`);
//! 2. [`start`]: the frontend grants the ring page(s) of each queue,
//!    allocates their event channels, writes `ring-ref` (or
//!    `ring-page-order` and `ring-ref0..N`) and `event-channel` — under
//!    `queue-N/` for each queue, with `multi-queue-num-queues`, when
//!    more than one is used — then `protocol`, `feature-persistent`, and
//!    switches to `Initialised`;
//! 3. the backend maps the ring, writes `sectors`, `info`, `sector-size`
//!    and its features, and switches to `Connected`;
//! 4. [`Connecting::finish`]: the frontend reads them and switches to
//!    `Connected`.
//!
//! Split in two so host tests can play the backend between the halves.

use super::device::{BlkFront, Config, Features, Geometry};
use super::env::BlkEnv;
use super::queue::{QueueSetup, MAX_QUEUES};
use super::BlkError;
use crate::xenbus::device::{self, DeviceInfo, XenbusState};
use crate::xenbus::Bus;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;
use hypercall::abi::blkif::VdiskInfo;
use xenstore_client::{Error, Store, Transport, XsErrno};

/// A device between [`start`] and [`Connecting::finish`].
pub struct Connecting<E: BlkEnv> {
    env: E,
    dev: DeviceInfo,
    config: Config,
    queues: Vec<QueueSetup<E::Pages>>,
    order: u32,
    max_indirect_offered: u32,
    max_queues_offered: u32,
}

/// Reads an optional number the backend wrote; garbage is a protocol error.
pub(crate) fn read_num<T: Transport>(
    bus: &mut Bus<T>,
    path: &str,
) -> Result<Option<u64>, BlkError> {
    match bus.xs.read_u64(path) {
        Ok(n) => Ok(Some(n)),
        Err(Error::Xs(XsErrno::ENOENT)) => Ok(None),
        Err(Error::NotANumber) => {
            let v = bus.xs.read_opt(path)?.unwrap_or_default();
            Err(BlkError::Protocol(format!(
                "{path} = {:?} is not a number",
                String::from_utf8_lossy(&v)
            )))
        }
        Err(e) => Err(e.into()),
    }
}

fn flag<T: Transport>(bus: &mut Bus<T>, path: &str) -> Result<bool, BlkError> {
    Ok(read_num(bus, path)?.is_some_and(|n| n != 0))
}

/// Steps 1 and 2: waits for the backend's `InitWait`, builds and
/// advertises the ring.
pub fn start<T: Transport, E: BlkEnv>(
    bus: &mut Bus<T>,
    mut env: E,
    dev: DeviceInfo,
    config: Config,
) -> Result<Connecting<E>, BlkError> {
    let state =
        device::wait_for_backend(bus, &dev, |s| s >= XenbusState::InitWait, config.xenbus_timeout)?;
    if state >= XenbusState::Closing {
        return Err(BlkError::Protocol(format!("backend {} is {state}", dev.backend)));
    }
    let be = &dev.backend;
    let max_order = read_num(bus, &format!("{be}/max-ring-page-order"))?.unwrap_or(0);
    let order = max_order.min(u64::from(config.max_ring_order)) as u32;
    let max_indirect_offered =
        read_num(bus, &format!("{be}/feature-max-indirect-segments"))?.unwrap_or(0) as u32;

    let max_queues_offered =
        read_num(bus, &format!("{be}/multi-queue-max-queues"))?.unwrap_or(1).max(1) as u32;
    let nqueues = max_queues_offered.min(config.max_queues).clamp(1, MAX_QUEUES as u32) as usize;

    let pages = 1usize << order;
    let mut queues = Vec::with_capacity(nqueues);
    for _ in 0..nqueues {
        match QueueSetup::build(&mut env, dev.backend_id, pages) {
            Ok(q) => queues.push(q),
            Err(e) => {
                release_all(&mut env, queues);
                return Err(e);
            }
        }
    }
    let c =
        Connecting { env, dev, config, queues, order, max_indirect_offered, max_queues_offered };
    match c.advertise(bus) {
        Ok(()) => Ok(c),
        Err(e) => {
            let mut c = c;
            let queues = core::mem::take(&mut c.queues);
            release_all(&mut c.env, queues);
            Err(e)
        }
    }
}

/// Undoes [`QueueSetup::build`] for every queue.
fn release_all<E: BlkEnv>(env: &mut E, queues: Vec<QueueSetup<E::Pages>>) {
    for q in queues {
        q.release(env, true);
    }
}

impl<E: BlkEnv> Connecting<E> {
    /// The frontend's keys and Initialised, in one transaction (as Linux's
    /// `talk_to_blkback`), only while the device is still there.
    fn advertise<T: Transport>(&self, bus: &mut Bus<T>) -> Result<(), BlkError> {
        let mut keys: Vec<(String, String)> = Vec::new();
        let mut w = |key: String, v: String| keys.push((key, v));
        if self.order > 0 {
            w("ring-page-order".into(), format!("{}", self.order));
        }
        let multi = self.queues.len() > 1;
        if multi {
            w("multi-queue-num-queues".into(), format!("{}", self.queues.len()));
        }
        for (n, q) in self.queues.iter().enumerate() {
            let dir = if multi { format!("queue-{n}/") } else { String::new() };
            if self.order == 0 {
                w(format!("{dir}ring-ref"), format!("{}", q.grefs[0].0));
            } else {
                for (i, g) in q.grefs.iter().enumerate() {
                    w(format!("{dir}ring-ref{i}"), format!("{}", g.0));
                }
            }
            w(format!("{dir}event-channel"), format!("{}", q.port.0));
        }
        w("protocol".into(), String::from("x86_64-abi"));
        w(
            "feature-persistent".into(),
            String::from(if self.config.persistent { "1" } else { "0" }),
        );
        device::publish(bus, &self.dev, &keys, XenbusState::Initialised)?;
        Ok(())
    }

    /// The device's xenbus entry.
    pub fn info(&self) -> &DeviceInfo {
        &self.dev
    }

    /// Steps 3 and 4: waits for `Connected`, reads the disk's geometry and
    /// features, connects.
    pub fn finish<T: Transport>(mut self, bus: &mut Bus<T>) -> Result<BlkFront<E>, BlkError> {
        match self.read_connected(bus) {
            Ok((geometry, features)) => {
                device::set_state(bus, &self.dev, XenbusState::Connected)?;
                Ok(BlkFront::new(self.env, self.dev, self.config, self.queues, geometry, features))
            }
            Err(e) => {
                // Tell the backend we gave up and let it unmap the rings
                // before they are revoked, unless the node is a new
                // device's by now.
                if let Ok(true) = device::close_state(bus, &self.dev, XenbusState::Closed) {
                    let t = self.config.xenbus_timeout;
                    wait_backend_or_gone(bus, &self.dev, |s| s >= XenbusState::Closed, t);
                }
                let queues = core::mem::take(&mut self.queues);
                release_all(&mut self.env, queues);
                Err(e)
            }
        }
    }

    fn read_connected<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
    ) -> Result<(Geometry, Features), BlkError> {
        let state = device::wait_for_backend(
            bus,
            &self.dev,
            |s| s >= XenbusState::Connected,
            self.config.xenbus_timeout,
        )?;
        if state != XenbusState::Connected {
            return Err(BlkError::Protocol(format!("backend {} is {state}", self.dev.backend)));
        }
        let be = self.dev.backend.clone();
        let sectors = read_num(bus, &format!("{be}/sectors"))?
            .ok_or_else(|| BlkError::Protocol(format!("{be}/sectors is missing")))?;
        // The size in bytes must fit a u64: every offset check multiplies.
        if sectors > u64::MAX / hypercall::abi::blkif::SECTOR_BYTES {
            return Err(BlkError::Protocol(format!(
                "{be}/sectors = {sectors}: more than 2^64 bytes"
            )));
        }
        let info = read_num(bus, &format!("{be}/info"))?.unwrap_or(0);
        let info = u32::try_from(info)
            .map(VdiskInfo::from_bits_retain)
            .map_err(|_| BlkError::Protocol(format!("{be}/info = {info}: not a 32-bit value")))?;
        let sector_size = read_num(bus, &format!("{be}/sector-size"))?.unwrap_or(512);
        if !(512..=65536).contains(&sector_size) || !sector_size.is_power_of_two() {
            return Err(BlkError::Protocol(format!("{be}/sector-size = {sector_size}")));
        }
        let geometry = Geometry::new(sectors, sector_size as u32, info);
        let indirect = read_num(bus, &format!("{be}/feature-max-indirect-segments"))?
            .map_or(self.max_indirect_offered, |n| u32::try_from(n).unwrap_or(u32::MAX));
        let features = Features {
            ring_pages: 1 << self.order,
            persistent: self.config.persistent && flag(bus, &format!("{be}/feature-persistent"))?,
            indirect_segments: indirect.min(self.config.max_indirect_segments),
            flush: flag(bus, &format!("{be}/feature-flush-cache"))?,
            barrier: flag(bus, &format!("{be}/feature-barrier"))?,
            discard: flag(bus, &format!("{be}/feature-discard"))?,
            max_queues: self.max_queues_offered,
            queues: self.queues.len() as u32,
        };
        Ok((geometry, features))
    }
}

/// Waits until the backend is at least `Closing`... and beyond: `pred`
/// holds, or its state node is gone (the toolstack removed it), or the
/// timeout passes. Returns the last state seen.
pub(crate) fn wait_backend_or_gone<T: Transport>(
    bus: &mut Bus<T>,
    dev: &DeviceInfo,
    pred: impl Fn(XenbusState) -> bool,
    timeout: Duration,
) -> Option<XenbusState> {
    match device::wait_for_backend(bus, dev, pred, timeout) {
        Ok(s) => Some(s),
        Err(_) => device::backend_state(bus, dev).ok().flatten(),
    }
}
