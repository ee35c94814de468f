//! What the toolstack asks of a running guest, carried out the same way
//! by every app that listens (`app=idle`, the network services): `xl
//! shutdown`/`reboot` and `xl sysrq`. The requests themselves are read in
//! `xenbus::control`.

use crate::xenbus::control::ShutdownRequest;
use crate::{devices, kprintln};
use hypercall::abi::sched::ShutdownReason;

/// Carries out a toolstack shutdown request: quiesces every device, then
/// ends the domain as asked.
pub fn obey(req: ShutdownRequest) {
    let reason = match req {
        ShutdownRequest::Poweroff | ShutdownRequest::Halt => ShutdownReason::Poweroff,
        ShutdownRequest::Reboot => ShutdownReason::Reboot,
        ShutdownRequest::Crash => ShutdownReason::Crash,
        ShutdownRequest::Suspend => {
            // For apps without connected devices (app=idle probes them,
            // never connects): nothing to quiesce or reconnect. Apps with
            // devices take Suspend themselves (net service, blk hotplug).
            if let Err(e) = crate::suspend::suspend() {
                kprintln!("suspend failed: {e}; carrying on");
            }
            return;
        }
        ShutdownRequest::Other(_) => {
            log::warn!("control/shutdown: {req:?} is not supported; ignored");
            return;
        }
    };
    kprintln!("control: {req:?} requested by the toolstack");
    let (n, timed_out) = devices::quiesce_all();
    kprintln!(
        "control: {n} devices quiesced ({timed_out} waited out a timeout); shutting down ({reason:?})"
    );
    let (deepest, size) = platform::stack_depth::deepest();
    kprintln!("stack: vCPU 0's boot stack used {deepest} of {size} bytes at its deepest");
    platform::shutdown(reason);
}

/// A request taken from `control/shutdown` by code that could not carry
/// it out there (a block transfer's suspend point finding a poweroff, an
/// app's loop finding a suspend it leaves to the transfers), kept for
/// whoever looks next.
static DEFERRED: spin::Mutex<Option<ShutdownRequest>> = spin::Mutex::new(None);

/// The toolstack's pending request, without waiting: one deferred
/// earlier, else `control/shutdown` if its watch fired (read and
/// acknowledged). `None` when there is none, or when the bus is busy
/// further up the stack (the watch event stays for the next look).
pub fn poll_request() -> Option<ShutdownRequest> {
    if let Some(r) = DEFERRED.lock().take() {
        return Some(r);
    }
    crate::xenbus::try_with(|bus| {
        let now = bus.now();
        bus.next_event_for(crate::xenbus::control::SHUTDOWN_TOKEN, Some(now))
            .ok()
            .and_then(|_| crate::xenbus::control::shutdown_request(bus))
    })
    .flatten()
}

/// Keeps `req` for the next [`poll_request`] (a newer deferred request
/// replaces an older one, as a newer `control/shutdown` does).
pub fn defer_request(req: ShutdownRequest) {
    *DEFERRED.lock() = Some(req);
}

/// Whether a request waits for the next [`poll_request`].
pub fn has_deferred() -> bool {
    DEFERRED.lock().is_some()
}

/// `xl sysrq DOMAIN KEY`: a debug dump for any key but `h`, which lists keys.
pub fn sysrq(key: u8) {
    if key == b'h' {
        kprintln!("sysrq: any key dumps event, timer and console state");
        return;
    }
    crate::diag::dump(format_args!("sysrq {:?}", key as char));
}
