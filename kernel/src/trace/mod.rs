//! `trace=hypercalls,xenstore,events`: watch the guest talk to Xen.
//!
//! - `hypercalls`: every hypercall through the hypercall page, with its
//!   decoded arguments, result and cost in TSC cycles
//!   (`hypercall::trace` decodes; [`hypercalls`] prints);
//! - `xenstore`: every XenStore request with xenstored's answer and the
//!   round trip, and every watch event ([`xenstore`]);
//! - `events`: every event delivered to a handler ([`events`]).
//!
//! Each ends with a per-type summary when the domain shuts down (the
//! platform's `before_shutdown` hook), whose counts are the numbers of
//! lines printed of each type. Tracing starts when the kernel starts
//! (before memory is set up, so the page-table build is seen) and ends at
//! the summary. Off, a hypercall costs one relaxed load and a branch; an
//! event delivery and a XenStore message one relaxed load each.
//! See docs/tracing.md.

pub mod stats;
pub mod xenstore;

#[cfg(target_os = "none")]
mod events;
#[cfg(target_os = "none")]
mod hypercalls;

#[cfg(target_os = "none")]
pub use events::label;
#[cfg(target_os = "none")]
pub use guest::*;

#[cfg(target_os = "none")]
mod guest {
    use super::{events, hypercalls, xenstore};
    use crate::cmdline::{check_value, setting, Cmdline};
    use core::sync::atomic::{AtomicBool, Ordering};

    static EVENTS: AtomicBool = AtomicBool::new(false);
    static SUMMARY_DONE: AtomicBool = AtomicBool::new(false);
    static ANY: AtomicBool = AtomicBool::new(false);

    /// Turns on what `trace=` asks for. Runs before the command line is
    /// validated (to see memory being set up): a bad `trace=` turns
    /// nothing on here and stops the boot at validation.
    pub fn init(cmd: &Cmdline<'_>) {
        let Some(v) = cmd.get("trace") else { return };
        let Some(s) = setting("trace") else { return };
        if check_value(s, v).is_err() {
            return;
        }
        for w in v.split(',') {
            match w {
                "hypercalls" => hypercall::trace::set_hook(hypercalls::on_call, true),
                "xenstore" => xenstore::enable(),
                "events" => EVENTS.store(true, Ordering::Relaxed),
                _ => {}
            }
        }
        ANY.store(true, Ordering::Relaxed);
    }

    /// Whether event deliveries are traced (the dispatcher asks).
    #[inline]
    pub fn events_on() -> bool {
        EVENTS.load(Ordering::Relaxed)
    }

    /// The dispatcher's report of one delivery.
    pub fn delivered(port: hypercall::EvtchnPort, count: u64, cycles: u64) {
        events::on_delivery(port, count, cycles);
    }

    /// After the console printed: trace records queued meanwhile go out.
    #[inline]
    pub fn after_print() {
        if hypercall::trace::enabled() && hypercalls::pending() {
            hypercalls::drain();
        }
    }

    /// The summaries, once, and tracing off (the domain is ending).
    pub fn summary() {
        if !ANY.load(Ordering::Relaxed) || SUMMARY_DONE.swap(true, Ordering::SeqCst) {
            return;
        }
        let hc = hypercall::trace::enabled();
        if hc {
            hypercall::trace::set_enabled(false);
            hypercalls::summary();
        }
        if EVENTS.swap(false, Ordering::Relaxed) {
            events::summary();
        }
        xenstore::summary_if_on();
    }
}
