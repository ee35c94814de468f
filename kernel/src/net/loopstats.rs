//! Where the network service loop's time goes, and why it wakes: counters
//! kept by `service::run`, cumulative, printed as one `net: loop ...` line
//! on `xl sysrq` and at shutdown (for `cargo xtask bench http` and `bench
//! net` to take differences of across a load) and shown on the status page.
//!
//! The clock is the PV clock (`platform::now_ns`, no hypercall), read a
//! handful of times per pass: cheap next to one smoltcp poll.

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};

/// TCP segments by flags, both ways: SYN in, SYN-ACK out, RST in and
/// out, FIN in and out (a handshake that needs its SYN again shows as
/// more SYNs in than connections).
static SEGMENTS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// SYNs received so far.
pub fn syns_in() -> u64 {
    SEGMENTS[0].load(Ordering::Relaxed)
}

/// Counts a frame by its TCP flags; `out`: sent by the guest.
pub fn note_segment(frame: &[u8], out: bool) {
    let Some(f) = netsvc::frame::tcp_flags(frame) else { return };
    let count = |i: usize| {
        SEGMENTS[i].fetch_add(1, Ordering::Relaxed);
    };
    match (out, f & 0x12) {
        (false, 0x02) => count(0),
        (true, 0x12) => count(1),
        _ => {}
    }
    if f & 0x04 != 0 {
        count(if out { 3 } else { 2 });
    }
    if f & 0x01 != 0 {
        count(if out { 5 } else { 4 });
    }
}

/// Cumulative counters of the service loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Passes of the loop (each: RX, stack, service, stack, TX).
    pub passes: u64,
    /// Waits that ended because an event came (or had come), because
    /// their deadline passed, and passes that did not wait at all (work
    /// still queued, or a poll already due).
    pub woke_event: u64,
    pub woke_timer: u64,
    pub no_wait: u64,
    /// Busy polls that found work before the loop blocked (the polling
    /// budget), and those that ran out of budget.
    pub spin_hits: u64,
    pub spin_misses: u64,
    /// `Interface::poll` calls.
    pub polls: u64,
    /// Nanoseconds in: netfront RX (copying packets out, refilling), the
    /// stack (`Interface::poll`: ingress, every socket's egress, TX), the
    /// service (its pass over its connections), the status and the storm
    /// throttle, XenStore (the toolstack's requests, every 50 ms, and
    /// what they ask: a sysrq's printing lands here), computing the next
    /// deadline, and blocked.
    pub ns_rx: u64,
    pub ns_stack: u64,
    /// Of `ns_stack`, ingress (the rest is egress).
    pub ns_ingress: u64,
    pub ns_serve: u64,
    pub ns_misc: u64,
    pub ns_store: u64,
    pub ns_delay: u64,
    pub ns_wait: u64,
    pub ns_spin: u64,
    /// Of `ns_store`, printing these counters (`xl sysrq`): `cargo xtask
    /// bench` leaves it out of the loop's busy time.
    pub ns_report: u64,
    /// XenStore looks (every 50 ms), and the longest one: a look that
    /// waits on xenstored holds the loop up.
    pub store_looks: u64,
    pub ns_store_max: u64,
    /// Looks that took 10 ms or more, and the hotplug manager's scans of
    /// `device/vif` (each two round trips to xenstored).
    pub store_slow: u64,
    pub hotplug_scans: u64,
    /// Passes whose ingress took a SYN right after a wait that ended by
    /// its deadline, not by an event (a SYN that was pending without
    /// waking the loop would show here).
    pub syn_after_timer: u64,
    /// Passes right after a wait its deadline ended that found received
    /// packets (they came without an event, or the event was missed).
    pub rx_after_timer: u64,
    /// How the last wait ended: by its deadline.
    pub last_wake_timer: bool,
    /// When the loop began (ns of system time).
    pub start_ns: u64,
}

impl LoopStats {
    /// The cumulative line `cargo xtask bench` reads; hypercall counts are
    /// the kernel's own (every `EVTCHNOP_send`, `set_timer_op` and
    /// `SCHEDOP_block` of the domain), with the upcalls taken.
    /// Xen's own account of the vCPU (`VCPUOP_get_runstate_info`, one
    /// hypercall per line): time running, and runnable but not running
    /// (other domains had the CPU: the loop's busy time includes it), of
    /// the vCPU it runs on (a shard's loop on vCPU k: vCPU k's).
    /// `at_ns`: the time the counters are as of (`us-total` runs to it).
    pub fn line(&self, sockets: usize, at_ns: u64) -> String {
        use hypercall::abi::vcpu::runstate;
        let (_, timer_sets, _) = crate::timer::stats();
        let rs = hypercall::ops::vcpu::runstate(platform::smp::current())
            .map(|r| r.time)
            .unwrap_or_default();
        format!(
            "net: loop passes {} woke-event {} woke-timer {} no-wait {} spin-hits {} spin-misses {} polls {} sockets {} sends {} timer-sets {} blocks {} upcalls {} us-rx {} us-stack {} us-ingress {} us-serve {} us-misc {} us-store {} us-report {} us-delay {} us-wait {} us-spin {} us-running {} us-runnable {} syn-in {} syn-after-timer {} rx-after-timer {} synack-out {} rst-in {} rst-out {} fin-in {} fin-out {} store-looks {} store-slow {} hotplug-scans {} us-store-max {} timer-virqs {} us-skew-max {} clock-reads {} us-total {}",
            self.passes,
            self.woke_event,
            self.woke_timer,
            self.no_wait,
            self.spin_hits,
            self.spin_misses,
            self.polls,
            sockets,
            crate::events::sends(),
            timer_sets,
            crate::timer::blocks(),
            crate::events::upcalls(),
            self.ns_rx / 1000,
            (self.ns_stack + self.ns_ingress) / 1000,
            self.ns_ingress / 1000,
            self.ns_serve / 1000,
            self.ns_misc / 1000,
            self.ns_store / 1000,
            self.ns_report / 1000,
            self.ns_delay / 1000,
            self.ns_wait / 1000,
            self.ns_spin / 1000,
            rs[runstate::RUNNING] / 1000,
            rs[runstate::RUNNABLE] / 1000,
            SEGMENTS[0].load(Ordering::Relaxed),
            self.syn_after_timer,
            self.rx_after_timer,
            SEGMENTS[1].load(Ordering::Relaxed),
            SEGMENTS[2].load(Ordering::Relaxed),
            SEGMENTS[3].load(Ordering::Relaxed),
            SEGMENTS[4].load(Ordering::Relaxed),
            SEGMENTS[5].load(Ordering::Relaxed),
            self.store_looks,
            self.store_slow,
            self.hotplug_scans,
            self.ns_store_max / 1000,
            crate::timer::virqs().0,
            crate::timer::skew_max_ns() / 1000,
            platform::clock_reads(),
            at_ns.saturating_sub(self.start_ns) / 1000,
        )
    }
}

/// A stopwatch over one stretch of the loop: adds the time since it was
/// last read to the counter it is read into. Its last reading is also the
/// loop's idea of "now" until the next lap ([`at`](Lap::at)): each clock
/// read may be an exit (`platform::clock_reads`), so a pass reads the
/// clock at its laps and nowhere else it can help.
pub struct Lap(u64);

impl Lap {
    pub fn start() -> Self {
        Lap(platform::now_ns())
    }

    /// Adds the time since the last lap to `into`, and starts the next.
    pub fn lap(&mut self, into: &mut u64) {
        let now = platform::now_ns();
        *into += now.saturating_sub(self.0);
        self.0 = now;
    }

    /// The last reading: system time at the last lap (or the start).
    pub fn at(&self) -> u64 {
        self.0
    }
}
