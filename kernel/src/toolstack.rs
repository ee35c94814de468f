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
    platform::shutdown(reason);
}

/// `xl sysrq DOMAIN KEY`: a debug dump for any key but `h`, which lists keys.
pub fn sysrq(key: u8) {
    if key == b'h' {
        kprintln!("sysrq: any key dumps event, timer and console state");
        return;
    }
    crate::diag::dump(format_args!("sysrq {:?}", key as char));
}
