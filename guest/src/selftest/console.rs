//! The console ring under load: output three times the ring's size must
//! arrive whole, in order, with the backend keeping up.

use super::{note, Suite};
use kernel::{console, kprintln};

/// Lines the host checks byte for byte (see tests/tests/boot.rs).
const PATTERN_LINES: u64 = 48;

/// SplitMix64, the generator the host recomputes the pattern with.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn run(s: &mut Suite) {
    let before = console::stats();
    for i in 0..PATTERN_LINES {
        kprintln!(
            "console-pattern {i:03} {:016x}{:016x}{:016x}{:016x}{:016x}{:016x}",
            splitmix64(i * 6),
            splitmix64(i * 6 + 1),
            splitmix64(i * 6 + 2),
            splitmix64(i * 6 + 3),
            splitmix64(i * 6 + 4),
            splitmix64(i * 6 + 5)
        );
    }
    let flushed = console::flush();
    let after = console::stats();
    s.check("console.ring_wraparound", |d| {
        let sent = after.bytes - before.bytes;
        note!(
            d,
            "{sent} bytes in {PATTERN_LINES} lines, dropped {}, stalls {}",
            after.dropped,
            after.stalls
        );
        sent > 2 * 2048 && after.dropped == 0 && !after.corrupt && flushed.is_ok()
    });
    s.check("console.backend_caught_up", |d| {
        // The PASS line above is in the ring too: wait for the backend
        // again. flush() returns Ok only once out_cons reached out_prod; it
        // gives up only if xenconsoled made no progress for the whole stall
        // budget (10 s on the clock), which no loaded host explains.
        let flushed = console::flush();
        match console::ring_state() {
            Some((prod, cons)) => {
                note!(d, "flush {flushed:?}; out_prod {prod} out_cons {cons}");
                flushed.is_ok() && prod == cons
            }
            None => {
                note!(d, "no ring (dom0 console_io)");
                platform::pv::start_info().is_initial_domain()
            }
        }
    });
}
