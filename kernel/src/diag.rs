//! A dump of the guest's state for a person debugging it: asked for with
//! `xl sysrq DOMAIN KEY` or Xen's `q` debug key (`VIRQ_DEBUG`).

use crate::{console, events, kprintln, timer};
use hypercall::EvtchnPort;

/// Prints uptime, event, timer and console counters.
pub fn dump(why: core::fmt::Arguments<'_>) {
    let (fired, programmed, queued) = timer::stats();
    let con = console::stats();
    kprintln!("{why}: uptime {} ms", platform::uptime_ns() / 1_000_000);
    kprintln!(
        "  events: {} ABI, {} upcalls ({} nested), {} unknown",
        events::abi().name(),
        events::upcalls(),
        events::nested_upcalls(),
        events::unknown_events()
    );
    let (virqs, stray) = timer::virqs();
    kprintln!("  timers: {fired} fired, Xen timer set {programmed} times, {queued} queued");
    // Every time the guest woke up, and what woke it: an idle guest's
    // counts stand still between two dumps (tests/tests/control.rs).
    kprintln!(
        "  wake-ups: {} blocks, {virqs} timer upcalls ({stray} with nothing due)",
        timer::blocks()
    );
    kprintln!("  console: {} bytes, {} dropped, {} stalls", con.bytes, con.dropped, con.stalls);
    let (cancelled, resumed) = crate::suspend::counts();
    kprintln!(
        "  suspends: {cancelled} cancelled, {resumed} resumed; balloon holds {} pages",
        crate::balloon::held_pages()
    );
}

/// What the guest costs right now: image, frames in use (the allocator's
/// view: everything not free, page tables and heap included), heap, grants
/// and event channels.
pub fn footprint() {
    let nr_pages = platform::nr_pages();
    let (start, end) = platform::image_range();
    let (free, _) = platform::free_frames();
    let used = nr_pages.saturating_sub(free);
    let grants = crate::grants::with(|t| t.stats());
    kprintln!(
        "footprint: image {} KiB, {} of {} pages in use ({} KiB), heap {} KiB, {} event channels bound, {} grants in use",
        (end - start) / 1024,
        used,
        nr_pages,
        used * 4,
        platform::heap_bytes() / 1024,
        events::bound_ports(),
        grants.map_or(0, |g| g.in_use)
    );
}

/// The `VIRQ_DEBUG` handler: printing is all it does, which is safe in an
/// upcall (the console lock masks upcalls).
pub fn on_debug_virq(_: EvtchnPort, _: usize) {
    dump(format_args!("debug VIRQ"));
}
