//! The first app: say hello and stop.

use super::AppResult;
use kernel::cmdline::Cmdline;
use kernel::kprintln;

pub fn run(_: &Cmdline<'_>) -> AppResult {
    let si = platform::start_info();
    kprintln!(
        "Hello from RustPV: {} MiB, up {} us",
        si.nr_pages * 4096 / (1 << 20),
        platform::uptime_ns() / 1000
    );
    Ok(())
}
