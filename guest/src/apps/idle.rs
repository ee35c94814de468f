//! `app=idle`: everything up, then blocked until the toolstack says what to
//! do (`xl shutdown`, `xl reboot`, `xl mem-set`, `xl sysrq`, and with
//! `smp=1` `xl vcpu-set`).

use super::{AppError, AppResult};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use kernel::cmdline::Cmdline;
use kernel::toolstack::{obey, sysrq};
use kernel::xenbus::device::{self, DeviceInfo, XenbusState};
use kernel::xenbus::{self, control};
use kernel::{balloon, devices, kprintln, smp, timer};

pub fn run(cmd: &Cmdline<'_>) -> AppResult {
    if xenbus::identity().is_none() {
        return Err(AppError::BadSetting("app=idle needs XenStore (a domU)"));
    }
    let timeout_ms = cmd.number("xenbus.timeout_ms").unwrap_or(5000);
    let timeout = Duration::from_millis(timeout_ms);
    probe_devices(timeout);
    // Devices attached later (xl network-attach, block-attach) appear here.
    if let Some(Err(e)) = xenbus::with(|bus| bus.watch("device", DEVICE_TOKEN)) {
        log::warn!("xenbus: cannot watch device/: {e:?}");
    }
    if let Some(Err(e)) = xenbus::with(balloon::start) {
        log::warn!("balloon: cannot watch memory/target: {e:?}");
    }
    if cmd.number("smp") == Some(1) {
        match xenbus::with(smp::hotplug::start) {
            Some(Ok(_)) => {}
            Some(Err(e)) => kprintln!("smp: cannot start the other vCPUs: {e}; staying on vCPU 0"),
            None => {}
        }
    }
    kernel::timeline::mark("ready");
    kernel::timeline::print();
    kprintln!("idle: ready; waiting for the toolstack");
    loop {
        let ev = match xenbus::with(|bus| bus.next_event(None)) {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                if !xenbus::recover("idle", &e) {
                    timer::sleep_ns(1_000_000_000);
                }
                continue;
            }
            None => unreachable!("identity implies a bus"),
        };
        match ev.token.as_str() {
            control::SHUTDOWN_TOKEN => {
                let req = xenbus::with(control::shutdown_request).flatten();
                if let Some(req) = req {
                    obey(req);
                }
            }
            control::SYSRQ_TOKEN => {
                if let Some(Ok(Some(key))) = xenbus::with(control::take_sysrq) {
                    sysrq(key);
                }
            }
            balloon::TARGET_TOKEN => {
                if let Some(Err(e)) = xenbus::with(balloon::follow_target) {
                    log::warn!("balloon: {e:?}");
                }
            }
            DEVICE_TOKEN => probe_devices(timeout),
            smp::hotplug::CPU_TOKEN => {
                let _ = xenbus::with(smp::hotplug::follow);
            }
            other => log::debug!("watch event {other} on {}", ev.path),
        }
    }
}

/// The watch token for `device/` (hotplugged frontends).
const DEVICE_TOKEN: &str = "device";

static CLOSE_REGISTERED: AtomicBool = AtomicBool::new(false);

/// Frontends this app moved out of their initial state.
static PROBED: spin::Mutex<Vec<DeviceInfo>> = spin::Mutex::new(Vec::new());

/// Tells each probed frontend's backend we are going away (without
/// waiting for an answer: these devices carry no I/O).
fn close_probed() -> bool {
    let mut in_time = true;
    for d in PROBED.lock().iter() {
        let closed = xenbus::with(|bus| device::set_state(bus, d, XenbusState::Closed));
        if let Some(Err(e)) = closed {
            log::warn!("xenbus: closing {}: {e}", d.frontend);
            in_time &= e != device::XenbusError::Store(xenstore_client::Error::TimedOut);
        }
    }
    in_time
}

/// Announces every frontend the toolstack gave this domain and waits for
/// its backend to come up (`InitWait` or later), so a missing backend is
/// reported by name instead of leaving the device silently dead.
fn probe_devices(timeout: Duration) {
    let probed = xenbus::with(|bus| {
        let devices = device::enumerate(bus)?;
        let mut new = 0;
        for dev in &devices {
            let d = match dev {
                Ok(d) => d,
                Err(e) => {
                    kprintln!("xenbus: broken device entry: {e}");
                    continue;
                }
            };
            if PROBED.lock().iter().any(|p| p.frontend == d.frontend) {
                continue;
            }
            kprintln!("xenbus: {} -> {} (backend domain {})", d.frontend, d.backend, d.backend_id);
            if let Err(e) = device::set_state(bus, d, XenbusState::Initialising) {
                // Not ours to write yet (a toolstack still setting it up):
                // the next change under device/ brings it back here.
                kprintln!("xenbus: {}: {e}; will retry", d.frontend);
                continue;
            }
            match device::wait_for_backend(bus, d, |s| s >= XenbusState::InitWait, timeout) {
                Ok(state) => kprintln!("xenbus: {}: backend is {state}", d.frontend),
                Err(e) => kprintln!("xenbus: {}: {e}", d.frontend),
            }
            PROBED.lock().push(d.clone());
            new += 1;
        }
        Ok::<usize, device::XenbusError>(new)
    });
    if !PROBED.lock().is_empty() && !CLOSE_REGISTERED.swap(true, Ordering::Relaxed) {
        devices::register("probed xenbus frontends", close_probed);
    }
    match probed {
        Some(Ok(0)) => {}
        Some(Ok(n)) => kprintln!("xenbus: probed {n} new devices"),
        Some(Err(e)) => log::warn!("xenbus: cannot list devices: {e}"),
        None => {}
    }
}
