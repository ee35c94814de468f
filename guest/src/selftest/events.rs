//! Event channels on real Xen: delivery exactly once, bursts, masking,
//! errors, and the ABI in use.

use super::{fail, note, Suite};
use core::sync::atomic::{AtomicU64, Ordering};
use hypercall::abi::event_channel::virq;
use hypercall::abi::vcpu::runstate;
use hypercall::ops::{sched_op, vcpu};
use hypercall::{DomId, EvtchnPort, XenError};
use kernel::events::{self, table::TableError, EventError, IrqGuard};
use kernel::timer;

/// Deliveries per port, indexed by the `data` word handlers are bound with.
static HITS: [AtomicU64; PAIRS] = [const { AtomicU64::new(0) }; PAIRS];
const PAIRS: usize = 100;

fn count(_: EvtchnPort, slot: usize) {
    HITS[slot].fetch_add(1, Ordering::SeqCst);
}

/// What the last [`record_df`] saw: 0 not run, 1 DF clear, 2 DF set.
static DF_SEEN: AtomicU64 = AtomicU64::new(0);

fn record_df(_: EvtchnPort, _: usize) {
    DF_SEEN.store(if platform::pvh::direction_flag() { 2 } else { 1 }, Ordering::SeqCst);
}

/// [`nest`]'s runs, the port it raises, and that port's deliveries.
static NEST_RUNS: AtomicU64 = AtomicU64::new(0);
static NEST_RAISES: AtomicU64 = AtomicU64::new(0);
static RAISED_HITS: AtomicU64 = AtomicU64::new(0);

/// Raises another port and unmasks upcalls for a moment inside the
/// handler, so that port's event comes as an upcall inside this upcall.
fn nest(_: EvtchnPort, _: usize) {
    NEST_RUNS.fetch_add(1, Ordering::SeqCst);
    let _ = events::send(EvtchnPort(NEST_RAISES.load(Ordering::SeqCst) as u32));
    events::enable_upcalls();
    let _ = platform::mask_upcalls();
}

fn count_raised(_: EvtchnPort, _: usize) {
    RAISED_HITS.fetch_add(1, Ordering::SeqCst);
}

fn hits(slot: usize) -> u64 {
    HITS[slot].load(Ordering::SeqCst)
}

/// A loopback pair: `(sender, receiver)`; the receiver counts into `slot`.
fn pair(slot: usize) -> Result<(EvtchnPort, EvtchnPort), EventError> {
    let _masked = IrqGuard::new();
    let a = events::alloc_unbound(DomId::SELF)?;
    let b = events::bind_interdomain(DomId::SELF, a, count, slot)?;
    // Drop the notification Xen raises on every interdomain bind, so the
    // counts below are of our sends only.
    events::clear_pending(b);
    Ok((a, b))
}

fn close_pair((a, b): (EvtchnPort, EvtchnPort)) -> bool {
    events::close(a).is_ok() && events::close(b).is_ok()
}

/// How long a wait for an event may take before the check fails: a hang
/// guard, far above what delivery takes on any host.
const HANG_GUARD_MS: u64 = 30_000;

/// Waits (blocked, not spinning) until `cond` or `ms` pass.
fn wait_ms(ms: u64, cond: impl FnMut() -> bool) -> bool {
    timer::wait_until(platform::now_ns() + ms * 1_000_000, cond)
}

/// Makes sure every event deliverable now has been delivered: an IPI to
/// self is sent after them and waited for, and one upcall scans every
/// pending, unmasked port. So a duplicate or a masked port's event that
/// was wrongly delivered would have been counted by the time this returns.
fn drain() -> bool {
    HITS[PAIRS - 1].store(0, Ordering::SeqCst);
    let Ok(marker) = events::bind_ipi(count, PAIRS - 1) else {
        return false;
    };
    let sent = events::send(marker).is_ok();
    let arrived = wait_ms(HANG_GUARD_MS, || hits(PAIRS - 1) >= 1);
    events::close(marker).is_ok() && sent && arrived
}

pub fn run(s: &mut Suite) {
    s.check("evtchn.abi", |d| {
        note!(d, "{}", events::abi().name());
        !events::upcalls_masked()
    });

    s.check("evtchn.loopback_delivered_exactly_once", |d| {
        HITS[0].store(0, Ordering::SeqCst);
        let p = match pair(0) {
            Ok(p) => p,
            Err(e) => fail!(d, "{e}"),
        };
        let sent = events::send(p.0).is_ok();
        let arrived = wait_ms(HANG_GUARD_MS, || hits(0) >= 1);
        // Nothing is left to deliver: the upcall that ran the handler
        // cleared the port, and an upcall after it found nothing more.
        let left = events::is_pending(p.1);
        let drained = drain();
        let counted = events::delivered(p.1);
        note!(
            d,
            "ports {}->{}, deliveries {} (table counted {counted}); pending after: {left}",
            p.0,
            p.1,
            hits(0)
        );
        close_pair(p) && sent && arrived && !left && drained && hits(0) == 1 && counted == 1
    });

    s.check("evtchn.burst_10000_none_lost_none_doubled", |d| {
        let mut ports = [(EvtchnPort(0), EvtchnPort(0)); PAIRS];
        for (i, slot) in ports.iter_mut().enumerate() {
            HITS[i].store(0, Ordering::SeqCst);
            *slot = match pair(i) {
                Ok(p) => p,
                Err(e) => fail!(d, "pair {i}: {e}"),
            };
        }
        let t0 = platform::now_ns();
        let upcalls0 = events::upcalls();
        const ROUNDS: u64 = 100;
        for round in 1..=ROUNDS {
            {
                // One burst: every sender once, delivered together.
                let _masked = IrqGuard::new();
                for &(a, _) in &ports {
                    if let Err(e) = events::send(a) {
                        fail!(d, "send on {a}: {e}");
                    }
                }
            }
            if !wait_ms(HANG_GUARD_MS, || (0..PAIRS).all(|i| hits(i) >= round)) {
                let missing = (0..PAIRS).filter(|&i| hits(i) < round).count();
                fail!(d, "round {round}: {missing} ports not delivered");
            }
        }
        let elapsed = platform::now_ns() - t0;
        let upcalls = events::upcalls() - upcalls0;
        let doubled = (0..PAIRS).filter(|&i| hits(i) != ROUNDS).count();
        let closed = ports.iter().all(|&p| close_pair(p));
        note!(
            d,
            "{} events on {PAIRS} ports in {} ms, {upcalls} upcalls, {doubled} ports off count",
            ROUNDS * PAIRS as u64,
            elapsed / 1_000_000
        );
        closed && doubled == 0
    });

    s.check("evtchn.masked_port_waits_for_unmask", |d| {
        HITS[1].store(0, Ordering::SeqCst);
        let p = match pair(1) {
            Ok(p) => p,
            Err(e) => fail!(d, "{e}"),
        };
        events::mask(p.1);
        let _ = events::send(p.0);
        // An upcall after the send has run: had the mask let it through,
        // it would have been counted.
        let drained = drain();
        let early = hits(1) > 0;
        let pending = events::is_pending(p.1) && events::is_masked(p.1);
        let unmasked = events::unmask(p.1).is_ok();
        let late = wait_ms(HANG_GUARD_MS, || hits(1) > 0);
        note!(d, "while masked: delivered {early}, pending {pending}; after unmask: {}", hits(1));
        close_pair(p) && drained && !early && pending && unmasked && late && hits(1) == 1
    });

    if platform::is_pvh() {
        // As PV, Xen clears DF in the bounce frame it delivers an upcall
        // with; a native interrupt keeps the interrupted code's flag.
        s.check("evtchn.handler_runs_with_df_clear", |d| {
            DF_SEEN.store(0, Ordering::SeqCst);
            let port = match events::bind_ipi(record_df, 0) {
                Ok(p) => p,
                Err(e) => fail!(d, "{e}"),
            };
            {
                let _masked = IrqGuard::new();
                let _ = events::send(port);
                platform::pvh::take_upcall_with_df_set();
            }
            let seen = DF_SEEN.load(Ordering::SeqCst);
            note!(
                d,
                "an upcall taken with DF set (as inside a backward memmove): the handler saw {}",
                match seen {
                    0 => "nothing (it did not run)",
                    1 => "DF clear",
                    _ => "DF SET",
                }
            );
            events::close(port).is_ok() && seen == 1
        });
    }

    // A nested upcall must not spin on the scan lock the interrupted one
    // holds (a PVH guest once did, after a live migration): it leaves the
    // event to the interrupted upcall, which scans once more.
    s.check("evtchn.an_upcall_inside_an_upcall_is_left_to_it", |d| {
        NEST_RUNS.store(0, Ordering::SeqCst);
        RAISED_HITS.store(0, Ordering::SeqCst);
        let (nester, raised) = match (events::bind_ipi(nest, 0), events::bind_ipi(count_raised, 0))
        {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => fail!(d, "bind_ipi: {:?} {:?}", a.err(), b.err()),
        };
        NEST_RAISES.store(raised.0 as u64, Ordering::SeqCst);
        let nested_before = events::nested_upcalls();
        let _ = events::send(nester);
        let arrived = wait_ms(HANG_GUARD_MS, || RAISED_HITS.load(Ordering::SeqCst) >= 1);
        let drained = drain();
        let (runs, hits) = (NEST_RUNS.load(Ordering::SeqCst), RAISED_HITS.load(Ordering::SeqCst));
        let nested = events::nested_upcalls() - nested_before;
        note!(
            d,
            "ports {nester}->{raised}: the handler ran {runs} time(s), the event it raised inside \
             it was delivered {hits} time(s), {nested} nested upcall(s) left to the outer one"
        );
        let closed = events::close(nester).is_ok() && events::close(raised).is_ok();
        closed && arrived && drained && runs == 1 && hits == 1 && nested == 1
    });

    s.check("evtchn.ipi_to_self", |d| {
        HITS[2].store(0, Ordering::SeqCst);
        let port = match events::bind_ipi(count, 2) {
            Ok(p) => p,
            Err(e) => fail!(d, "{e}"),
        };
        let _ = events::send(port);
        let ok = wait_ms(HANG_GUARD_MS, || hits(2) == 1);
        note!(d, "port {port}");
        events::close(port).is_ok() && ok
    });

    s.check("evtchn.errors_are_clear", |d| {
        let timer_port = kernel::timer::init().ok();
        // Xen refuses a second binding of the same VIRQ on the same vCPU.
        let virq_again = events::bind_virq(virq::TIMER, count, 3);
        let p = match pair(3) {
            Ok(p) => p,
            Err(e) => fail!(d, "{e}"),
        };
        let double = events::register(p.1, count, 3);
        let unknown = events::unregister(EvtchnPort(1000));
        let bad_send = events::send(EvtchnPort(0x00ff_ffff));
        close_pair(p);
        note!(
            d,
            "timer port {timer_port:?}; VIRQ again: {virq_again:?}; double handler: {double:?}"
        );
        virq_again == Err(EventError::Xen(XenError::EEXIST))
            && double == Err(EventError::Table(TableError::AlreadyBound(p.1)))
            && unknown == Err(EventError::Table(TableError::NotBound(EvtchnPort(1000))))
            && bad_send == Err(EventError::Xen(XenError::EINVAL))
    });

    s.check("evtchn.poll_with_upcalls_masked", |d| {
        let p = match pair(4) {
            Ok(p) => p,
            Err(e) => fail!(d, "{e}"),
        };
        let _masked = IrqGuard::new();
        events::clear_pending(p.1);
        let _ = events::send(p.0);
        // The event is pending before the poll: Xen must return at once,
        // without blocking the vCPU (its blocked time does not move). The
        // deadline is only a hang guard.
        let Ok(before) = vcpu::runstate(0) else {
            fail!(d, "runstate unavailable");
        };
        let t0 = platform::now_ns();
        let polled = sched_op::poll(&[p.1], t0 + HANG_GUARD_MS * 1_000_000);
        let waited = platform::now_ns() - t0;
        let Ok(after) = vcpu::runstate(0) else {
            fail!(d, "runstate unavailable");
        };
        let blocked = after.time[runstate::BLOCKED] - before.time[runstate::BLOCKED];
        let pending = events::clear_pending(p.1);
        note!(d, "poll returned after {} us, blocked {blocked} ns", waited / 1000);
        drop(_masked);
        close_pair(p) && polled.is_ok() && pending && blocked == 0
    });

    s.check("evtchn.no_unknown_events", |d| {
        note!(
            d,
            "{} upcalls, {} unknown, {} bad FIFO links",
            events::upcalls(),
            events::unknown_events(),
            events::fifo_bad_links()
        );
        events::unknown_events() == 0 && events::fifo_bad_links() == 0
    });
}
