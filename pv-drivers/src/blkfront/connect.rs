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
//! Split in two so host tests can play the backend between the halves;
//! the steps themselves are reused when a device reconnects in a new
//! domain after a restore or a migration ([`super::device`]).

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
    offer: Offer,
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

/// What the backend offers before the rings exist (step 1), capped by the
/// frontend's [`Config`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Offer {
    pub order: u32,
    pub max_indirect_offered: u32,
    pub max_queues_offered: u32,
    pub queues: usize,
}

/// Step 1: waits (up to `timeout`) for the backend's `InitWait` and reads
/// its offer.
pub(crate) fn read_offer<T: Transport>(
    bus: &mut Bus<T>,
    dev: &DeviceInfo,
    config: &Config,
    timeout: Duration,
) -> Result<Offer, BlkError> {
    let state = device::wait_for_backend(bus, dev, |s| s >= XenbusState::InitWait, timeout)?;
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
    let queues = max_queues_offered.min(config.max_queues).clamp(1, MAX_QUEUES as u32) as usize;
    Ok(Offer { order, max_indirect_offered, max_queues_offered, queues })
}

/// Step 2's memory: the rings of every queue the offer allows (undone
/// on failure).
pub(crate) fn build_queues<E: BlkEnv>(
    env: &mut E,
    dev: &DeviceInfo,
    offer: &Offer,
) -> Result<Vec<QueueSetup<E::Pages>>, BlkError> {
    let pages = 1usize << offer.order;
    let mut queues = Vec::with_capacity(offer.queues);
    for _ in 0..offer.queues {
        match QueueSetup::build(env, dev.backend_id, pages) {
            Ok(q) => queues.push(q),
            Err(e) => {
                release_all(env, queues);
                return Err(e);
            }
        }
    }
    Ok(queues)
}

/// Steps 1 and 2: waits for the backend's `InitWait`, builds and
/// advertises the ring. A device this frontend closed before is opened
/// again ([`reopen`]).
pub fn start<T: Transport, E: BlkEnv>(
    bus: &mut Bus<T>,
    mut env: E,
    dev: DeviceInfo,
    config: Config,
) -> Result<Connecting<E>, BlkError> {
    reopen(bus, &dev, config.xenbus_timeout)?;
    let offer = read_offer(bus, &dev, &config, config.xenbus_timeout)?;
    let queues = build_queues(&mut env, &dev, &offer)?;
    if let Err(e) = advertise(bus, &dev, &config, &queues, offer.order) {
        release_all(&mut env, queues);
        return Err(e);
    }
    Ok(Connecting { env, dev, config, queues, offer })
}

/// A device the guest closed itself (`close`) stays attached, with both
/// state nodes `Closed`. To open it again the frontend goes back to
/// `Initialising`, as a Linux frontend does when it probes, and the
/// backend prepares for a reconnect (Linux's blkback: `InitWait` again);
/// this waits (up to `timeout`) for the backend to leave `Closed`. The
/// switch is a transaction that sees both nodes still `Closed`, so a
/// device in any other state (a new one under the same id starts
/// `Initialising`) is left alone. (A device `xl block-detach` closed is
/// also `Closed` on both sides until the toolstack removes its nodes; an
/// open in that moment asks a backend that is going away, as Linux's
/// would, and fails when its nodes go.)
fn reopen<T: Transport>(
    bus: &mut Bus<T>,
    dev: &DeviceInfo,
    timeout: Duration,
) -> Result<(), BlkError> {
    let closed = |s: Option<XenbusState>| s == Some(XenbusState::Closed);
    if device::switch_state(bus, dev, XenbusState::Initialising, &|fe, be| {
        closed(fe) && closed(be)
    })? {
        device::wait_for_backend(bus, dev, |s| s != XenbusState::Closed, timeout)?;
    }
    Ok(())
}

/// Undoes [`QueueSetup::build`] for every queue.
pub(crate) fn release_all<E: BlkEnv>(env: &mut E, queues: Vec<QueueSetup<E::Pages>>) {
    for q in queues {
        q.release(env, true);
    }
}

/// Step 2's keys and `Initialised`, in one transaction (as Linux's
/// `talk_to_blkback`), only while the device is still there.
pub(crate) fn advertise<T: Transport, P>(
    bus: &mut Bus<T>,
    dev: &DeviceInfo,
    config: &Config,
    queues: &[QueueSetup<P>],
    order: u32,
) -> Result<(), BlkError> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut w = |key: String, v: String| keys.push((key, v));
    if order > 0 {
        w("ring-page-order".into(), format!("{order}"));
    }
    let multi = queues.len() > 1;
    if multi {
        w("multi-queue-num-queues".into(), format!("{}", queues.len()));
    }
    for (n, q) in queues.iter().enumerate() {
        let dir = if multi { format!("queue-{n}/") } else { String::new() };
        if order == 0 {
            w(format!("{dir}ring-ref"), format!("{}", q.grefs[0].0));
        } else {
            for (i, g) in q.grefs.iter().enumerate() {
                w(format!("{dir}ring-ref{i}"), format!("{}", g.0));
            }
        }
        w(format!("{dir}event-channel"), format!("{}", q.port.0));
    }
    w("protocol".into(), String::from("x86_64-abi"));
    w("feature-persistent".into(), String::from(if config.persistent { "1" } else { "0" }));
    device::publish(bus, dev, &keys, XenbusState::Initialised)?;
    Ok(())
}

/// Steps 3 and 4 without the state write: waits (up to `timeout`) for
/// `Connected` and reads the disk's geometry and features.
pub(crate) fn read_connected<T: Transport>(
    bus: &mut Bus<T>,
    dev: &DeviceInfo,
    config: &Config,
    offer: &Offer,
    timeout: Duration,
) -> Result<(Geometry, Features), BlkError> {
    let state = device::wait_for_backend(bus, dev, |s| s >= XenbusState::Connected, timeout)?;
    if state != XenbusState::Connected {
        return Err(BlkError::Protocol(format!("backend {} is {state}", dev.backend)));
    }
    let be = dev.backend.clone();
    let sectors = read_num(bus, &format!("{be}/sectors"))?
        .ok_or_else(|| BlkError::Protocol(format!("{be}/sectors is missing")))?;
    // The size in bytes must fit a u64: every offset check multiplies.
    if sectors > u64::MAX / hypercall::abi::blkif::SECTOR_BYTES {
        return Err(BlkError::Protocol(format!("{be}/sectors = {sectors}: more than 2^64 bytes")));
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
        .map_or(offer.max_indirect_offered, |n| u32::try_from(n).unwrap_or(u32::MAX));
    let features = Features {
        ring_pages: 1 << offer.order,
        persistent: config.persistent && flag(bus, &format!("{be}/feature-persistent"))?,
        indirect_segments: indirect.min(config.max_indirect_segments),
        flush: flag(bus, &format!("{be}/feature-flush-cache"))?,
        barrier: flag(bus, &format!("{be}/feature-barrier"))?,
        discard: flag(bus, &format!("{be}/feature-discard"))?,
        max_queues: offer.max_queues_offered,
        queues: offer.queues as u32,
    };
    Ok((geometry, features))
}

impl<E: BlkEnv> Connecting<E> {
    /// The device's xenbus entry.
    pub fn info(&self) -> &DeviceInfo {
        &self.dev
    }

    /// Steps 3 and 4: waits for `Connected`, reads the disk's geometry and
    /// features, connects.
    pub fn finish<T: Transport>(mut self, bus: &mut Bus<T>) -> Result<BlkFront<E>, BlkError> {
        let t = self.config.xenbus_timeout;
        match read_connected(bus, &self.dev, &self.config, &self.offer, t) {
            Ok((geometry, features)) => {
                device::set_state(bus, &self.dev, XenbusState::Connected)?;
                Ok(BlkFront::new(self.env, self.dev, self.config, self.queues, geometry, features))
            }
            Err(e) => {
                // Tell the backend we gave up and let it unmap the rings
                // before they are revoked, unless the node is a new
                // device's by now.
                if let Ok(true) = device::close_state(bus, &self.dev, XenbusState::Closed) {
                    wait_backend_or_gone(bus, &self.dev, |s| s >= XenbusState::Closed, t);
                }
                let queues = core::mem::take(&mut self.queues);
                release_all(&mut self.env, queues);
                Err(e)
            }
        }
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
