//! Several vCPUs (issue 21), when the domain has them (`vcpus=4` in the
//! `smp` boot test): every vCPU brought up, its own clock and identity,
//! IPIs delivered exactly once to the right vCPU in every direction, a TLB
//! shootdown seen by every vCPU, per-vCPU one-shot timers, the
//! spin-then-poll lock under lock-holder preemption (with the plain spin
//! lock's figures beside it), and a vCPU taken down and brought back.
//! With one vCPU every check is skipped.

use super::{fail, note, Suite};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use hypercall::abi::vcpu::runstate;
use hypercall::ops::vcpu;
use hypercall::{DomId, EvtchnPort};
use kernel::events::{self, IrqGuard};
use kernel::smp::lock::PollLock;
use kernel::smp::{self, spin_until, XEN_WAITERS};
use kernel::timer;
use platform::smp::{TlbProbe, MAX_VCPUS};

const SECOND: u64 = 1_000_000_000;

/// Per-vCPU results the tasks write and vCPU 0 reads.
static RAN_ON: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(u64::MAX) }; MAX_VCPUS];
static CLOCK_AT: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

/// Runs `f(n)` as a task on every secondary vCPU at once and waits for all
/// (`None` on a timeout: which vCPU).
fn on_every_secondary(count: u32, f: fn(usize), timeout_ns: u64) -> Result<(), u32> {
    let before: [u64; MAX_VCPUS] = core::array::from_fn(|n| smp::tasks_done(n as u32));
    for n in 1..count {
        smp::run_task(n, f, n as usize).map_err(|_| n)?;
    }
    let deadline = platform::now_ns() + timeout_ns;
    for n in 1..count {
        if !spin_until(deadline, || smp::tasks_done(n) > before[n as usize]) {
            return Err(n);
        }
    }
    Ok(())
}

fn whoami(n: usize) {
    RAN_ON[n].store(u64::from(smp::current()), Ordering::SeqCst);
    CLOCK_AT[n].store(platform::now_ns(), Ordering::SeqCst);
}

pub fn run(s: &mut Suite) {
    let (count, more) = platform::smp::count();
    if count < 2 {
        s.skip("smp", "the domain has 1 vCPU (the smp boot test runs vcpus=4)");
        return;
    }
    s.check("smp.bring_up", |d| {
        let online = match smp::start() {
            Ok(n) => n,
            Err(e) => fail!(d, "{e}"),
        };
        if online != count {
            fail!(d, "{online} of {count} vCPUs online");
        }
        note!(d, "{count} vCPUs{}, each up in", if more { " (more exist: kept down)" } else { "" });
        for n in 1..count {
            if platform::smp::is_up(n) != Ok(true) {
                fail!(d, "vCPU {n}: Xen says it is not up");
            }
            let info = platform::smp::vcpu_info_of(n) as *const _;
            let slot = &platform::shared_info().vcpu_info[n as usize] as *const _;
            if core::ptr::eq(info, slot) {
                fail!(d, "vCPU {n}: vcpu_info still in the shared info page");
            }
            note!(d, " {}:{} us", n, smp::bringup_ns(n) / 1000);
        }
        match events::abi() {
            events::Abi::Fifo => {
                note!(d, "; vcpu_info registered, FIFO control block each, own stack and timer")
            }
            events::Abi::TwoLevel => note!(
                d,
                "; vcpu_info registered (2-level ABI: own selector, scan of its own ports), own stack and timer"
            ),
        }
        true
    });
    s.check("smp.secondary_stacks_have_a_guard_page", |d| {
        for n in 1..count {
            match platform::smp::guard_unmapped(n) {
                Some(true) => {}
                Some(false) => fail!(d, "vCPU {n}: the page below its stack is mapped"),
                None => fail!(d, "vCPU {n}: no stack"),
            }
        }
        note!(
            d,
            "{} secondary stacks, the page below each unmapped in the live page tables ({})",
            count - 1,
            if platform::is_pvh() { "PVH: its 2 MiB page split" } else { "PV" }
        );
        true
    });
    if !smp::is_online(count - 1) {
        return;
    }

    s.check("smp.each_vcpu_runs_with_its_own_clock", |d| {
        let t0 = platform::now_ns();
        if let Err(n) = on_every_secondary(count, whoami, 5 * SECOND) {
            fail!(d, "vCPU {n}'s task did not finish");
        }
        let t1 = platform::now_ns();
        for n in 1..count as usize {
            let ran = RAN_ON[n].load(Ordering::SeqCst);
            if ran != n as u64 {
                fail!(d, "the task for vCPU {n} ran on vCPU {ran}");
            }
            // Each vCPU reads its own vcpu_info.time: its clock must fall
            // between vCPU 0's readings before and after, give or take the
            // skew the timer code allows between vCPUs' clocks.
            let at = CLOCK_AT[n].load(Ordering::SeqCst);
            if at + timer::MAX_SKEW_NS < t0 || at > t1 + timer::MAX_SKEW_NS {
                fail!(d, "vCPU {n}'s clock read {at}, outside vCPU 0's [{t0}, {t1}]");
            }
        }
        note!(d, "{} tasks ran on their vCPUs; clocks agree with vCPU 0's", count - 1);
        true
    });

    s.check("smp.ipi_exactly_once_every_direction", |d| {
        // Every vCPU sends K IPIs to every other, one at a time, each
        // waited for: the target's handler must run exactly once per send,
        // on the target.
        IPI_FAILS.store(0, Ordering::SeqCst);
        let before: [u64; MAX_VCPUS] = core::array::from_fn(|n| smp::ipis(n as u32).0);
        let misdelivered0 = smp::ipis(0).1;
        send_ipis_from_here(0);
        for src in 1..count {
            let done0 = smp::tasks_done(src);
            if smp::run_task(src, send_ipis_from_here, src as usize).is_err()
                || !spin_until(platform::now_ns() + 30 * SECOND, || smp::tasks_done(src) > done0)
            {
                fail!(d, "vCPU {src}'s sends did not finish");
            }
        }
        // Late duplicates would show up here.
        timer::sleep_ns(20_000_000);
        let fails = IPI_FAILS.load(Ordering::SeqCst);
        if fails != 0 {
            fail!(
                d,
                "{fails} sends were not handled exactly once within 10 s (first: {:#x})",
                IPI_FIRST_FAIL.load(Ordering::SeqCst)
            );
        }
        let misdelivered = smp::ipis(0).1 - misdelivered0;
        if misdelivered != 0 {
            fail!(d, "{misdelivered} IPI upcalls ran on another vCPU than their port's");
        }
        for t in 0..count {
            let got = smp::ipis(t).0 - before[t as usize];
            // A secondary also got the IPI that posted its sending task.
            let want = IPIS_PER_PAIR * u64::from(count - 1) + u64::from(t != 0);
            if got != want {
                fail!(d, "vCPU {t} handled {got} IPIs, sent {want}");
            }
        }
        note!(
            d,
            "{} vCPUs x {} others x {IPIS_PER_PAIR} IPIs (+1 per task posted), each handled once on its target",
            count,
            count - 1
        );
        true
    });

    s.check("smp.tlb_shootdown_seen_by_every_vcpu", |d| tlb_shootdown(d, count));

    s.check("smp.per_vcpu_timers", |d| {
        for r in &TIMER_RESULT {
            r.store(0, Ordering::SeqCst);
        }
        let wrong0 = timer::wrong_vcpu_upcalls();
        // Every vCPU sleeps at once, each on its own one-shot timer.
        for n in 1..count {
            if smp::run_task(n, timed_sleeps, n as usize).is_err() {
                fail!(d, "vCPU {n}: cannot post its sleeps");
            }
        }
        timed_sleeps(0);
        for n in 1..count {
            if !spin_until(platform::now_ns() + 30 * SECOND, || {
                TIMER_RESULT[n as usize].load(Ordering::SeqCst) != 0
            }) {
                fail!(d, "vCPU {n}'s sleeps did not finish");
            }
        }
        let wrong = timer::wrong_vcpu_upcalls() - wrong0;
        if wrong != 0 {
            fail!(d, "{wrong} timer upcalls ran on another vCPU");
        }
        note!(d, "{SLEEPS} sleeps of 10 ms on each vCPU, Xen timer set to each deadline, 1 upcall each, none early; late by at most (us):");
        for (n, r) in TIMER_RESULT.iter().enumerate().take(count as usize) {
            let r = r.load(Ordering::SeqCst);
            if r & TIMER_FAILED != 0 {
                fail!(d, " vCPU {n} failed sleep {} ({})", (r >> 8) & 0xff, TIMER_WHY[(r & 0x3f) as usize % TIMER_WHY.len()]);
            }
            note!(d, " {}:{}", n, r >> 16);
        }
        true
    });

    s.check("smp.lock_holder_preemption", |d| lock_demo(d, count));

    s.check("smp.bind_vcpu_moves_an_event_channel", |d| bind_vcpu(d, count));

    s.check("smp.offline_and_back", |d| {
        let n = count - 1;
        if let Err(e) = smp::offline(n) {
            fail!(d, "offline: {e}");
        }
        if platform::smp::is_up(n) != Ok(false) {
            fail!(d, "vCPU {n} still up after VCPUOP_down");
        }
        // An IPI to a vCPU that is down stays pending: it is handled when
        // the vCPU is back, not before.
        let (h0, _) = smp::ipis(n);
        if let Err(e) = smp::send_ipi(n) {
            fail!(d, "send to the offline vCPU: {e}");
        }
        timer::sleep_ns(20_000_000);
        if smp::ipis(n).0 != h0 {
            fail!(d, "vCPU {n} handled an IPI while down");
        }
        let t0 = platform::now_ns();
        if let Err(e) = smp::bring_up(n) {
            fail!(d, "bring back: {e}");
        }
        let back_us = (platform::now_ns() - t0) / 1000;
        if !spin_until(platform::now_ns() + SECOND, || smp::ipis(n).0 == h0 + 1) {
            fail!(d, "the IPI sent while down was handled {} times after", smp::ipis(n).0 - h0);
        }
        if let Err(nn) = on_every_secondary(count, whoami, 5 * SECOND) {
            fail!(d, "vCPU {nn} ran no task after");
        }
        note!(d, "vCPU {n} down (Xen: not up), an IPI kept pending while down and handled once after VCPUOP_up; back in {back_us} us, running tasks");
        true
    });
}

/// Handler runs of the moved port, per vCPU it ran on.
static MOVED_HITS: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

fn moved(_: EvtchnPort, _: usize) {
    MOVED_HITS[smp::current() as usize].fetch_add(1, Ordering::SeqCst);
}

/// A loopback event channel (what a netfront or blkfront queue's channel
/// is: interdomain), moved with `EVTCHNOP_bind_vcpu` to every vCPU in
/// turn and back to vCPU 0: each send is handled once, on the vCPU it was
/// moved to.
fn bind_vcpu(d: &mut super::Detail, count: u32) -> bool {
    const SENDS: u64 = 10;
    let pair = {
        let _masked = IrqGuard::new();
        events::alloc_unbound(DomId::SELF).and_then(|a| {
            let b = events::bind_interdomain(DomId::SELF, a, moved, 0)?;
            events::clear_pending(b);
            Ok((a, b))
        })
    };
    let (a, b) = match pair {
        Ok(p) => p,
        Err(e) => fail!(d, "loopback pair: {e}"),
    };
    let mut result = Ok(());
    'targets: for target in (1..count).chain([0]) {
        if let Err(e) = events::bind_vcpu(b, target) {
            result = Err(("bind_vcpu", target, 0, alloc::format!("{e}")));
            break;
        }
        for i in 0..SENDS {
            let before: [u64; MAX_VCPUS] =
                core::array::from_fn(|n| MOVED_HITS[n].load(Ordering::SeqCst));
            let t = target as usize;
            let ok = events::send(a).is_ok()
                && spin_until(platform::now_ns() + SECOND, || {
                    MOVED_HITS[t].load(Ordering::SeqCst) > before[t]
                });
            let others_quiet = (0..MAX_VCPUS)
                .all(|n| MOVED_HITS[n].load(Ordering::SeqCst) == before[n] + u64::from(n == t));
            if !ok || !others_quiet {
                result = Err((
                    "send",
                    target,
                    i,
                    alloc::format!("{:?}", MOVED_HITS.each_ref().map(|h| h.load(Ordering::SeqCst))),
                ));
                break 'targets;
            }
        }
    }
    let closed = events::close(a).is_ok() && events::close(b).is_ok();
    if let Err((what, target, i, why)) = result {
        fail!(d, "{what} to vCPU {target} (send {i}): {why}");
    }
    if !closed {
        fail!(d, "closing the pair failed");
    }
    note!(d, "an interdomain port moved to vCPUs 1..{} and back to 0: {SENDS} sends each, every one handled once on the vCPU it was bound to", count - 1);
    true
}

const IPIS_PER_PAIR: u64 = 20;
static IPI_FAILS: AtomicU64 = AtomicU64::new(0);
static IPI_FIRST_FAIL: AtomicU64 = AtomicU64::new(0);

/// From the calling vCPU `src`, IPIS_PER_PAIR waited-for IPIs to every
/// other online vCPU: each must raise the target's count by exactly one.
fn send_ipis_from_here(src: usize) {
    let count = smp::count();
    for t in 0..count {
        if t as usize == src {
            continue;
        }
        for i in 0..IPIS_PER_PAIR {
            let before = smp::ipis(t).0;
            // 10 s: with 4 vCPUs on 2 emulated CPUs of a loaded host, a
            // target can wait over a second for Xen to run it (seen once
            // as PVH); lateness is not loss, and a lost IPI still fails.
            let ok = smp::send_ipi(t).is_ok()
                && spin_until(platform::now_ns() + 10 * SECOND, || smp::ipis(t).0 > before)
                && smp::ipis(t).0 == before + 1;
            if !ok && IPI_FAILS.fetch_add(1, Ordering::SeqCst) == 0 {
                IPI_FIRST_FAIL.store((src as u64) << 32 | u64::from(t) << 16 | i, Ordering::SeqCst);
            }
        }
    }
}

/// The TLB probe the shootdown check shares with the secondary vCPUs.
static PROBE: spin::Mutex<Option<TlbProbe>> = spin::Mutex::new(None);
/// 0: read and keep reading; 1: the page moved (no flush here): record;
/// 2: shot down: record.
static TLB_PHASE: AtomicU32 = AtomicU32::new(0);
static TLB_PRIMED: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
static TLB_BEFORE: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
static TLB_AFTER: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

fn probe_read() -> u64 {
    PROBE.lock().as_ref().map_or(0, TlbProbe::read)
}

fn tlb_task(n: usize) {
    // Read the page until told it moved, so the translation stays cached.
    let mut v = probe_read();
    TLB_PRIMED[n].store(v, Ordering::SeqCst);
    let deadline = platform::now_ns() + 20 * SECOND;
    while TLB_PHASE.load(Ordering::SeqCst) == 0 && platform::now_ns() < deadline {
        v = probe_read();
        core::hint::spin_loop();
    }
    let _ = v;
    TLB_BEFORE[n].store(probe_read(), Ordering::SeqCst);
    while TLB_PHASE.load(Ordering::SeqCst) == 1 && platform::now_ns() < deadline {
        core::hint::spin_loop();
    }
    TLB_AFTER[n].store(probe_read(), Ordering::SeqCst);
}

fn tlb_shootdown(d: &mut super::Detail, count: u32) -> bool {
    let probe = match TlbProbe::new() {
        Ok(p) => p,
        Err(e) => fail!(d, "no probe page: {e}"),
    };
    let (a, b) = probe.stamps();
    let va = probe.va();
    *PROBE.lock() = Some(probe);
    TLB_PHASE.store(0, Ordering::SeqCst);
    for n in 0..MAX_VCPUS {
        TLB_PRIMED[n].store(0, Ordering::SeqCst);
        TLB_BEFORE[n].store(0, Ordering::SeqCst);
        TLB_AFTER[n].store(0, Ordering::SeqCst);
    }
    // A stale translation of the page elsewhere (from an earlier run)
    // would spoil the start: every vCPU forgets it first.
    let _ = smp::tlb_shootdown(Some(va));
    let done0: [u64; MAX_VCPUS] = core::array::from_fn(|n| smp::tasks_done(n as u32));
    for n in 1..count {
        if smp::run_task(n, tlb_task, n as usize).is_err() {
            *PROBE.lock() = None;
            fail!(d, "vCPU {n}: cannot post the task");
        }
    }
    let primed = spin_until(platform::now_ns() + 10 * SECOND, || {
        (1..count as usize).all(|n| TLB_PRIMED[n].load(Ordering::SeqCst) != 0)
    });
    let moved = PROBE.lock().as_ref().map(TlbProbe::switch_to_b);
    TLB_PHASE.store(1, Ordering::SeqCst);
    let recorded = spin_until(platform::now_ns() + 10 * SECOND, || {
        (1..count as usize).all(|n| TLB_BEFORE[n].load(Ordering::SeqCst) != 0)
    });
    let here_after_move = probe_read();
    let shot = smp::tlb_shootdown(Some(va));
    TLB_PHASE.store(2, Ordering::SeqCst);
    let finished = spin_until(platform::now_ns() + 10 * SECOND, || {
        (1..count).all(|n| smp::tasks_done(n) > done0[n as usize])
    });
    *PROBE.lock() = None;
    if !platform::is_pvh() {
        // PV: dropping the probe flushed every vCPU (UVMF_ALL).
    } else {
        let _ = smp::tlb_shootdown(Some(va));
    }
    if !(primed && recorded && finished) {
        fail!(d, "the secondary vCPUs did not follow (primed {primed}, recorded {recorded}, finished {finished})");
    }
    if !matches!(moved, Some(Ok(()))) {
        fail!(d, "moving the page: {moved:?}");
    }
    let shot = match shot {
        Ok(n) => n,
        Err(e) => fail!(d, "shootdown: {e}"),
    };
    if here_after_move != b {
        fail!(d, "vCPU 0 reads {here_after_move:#x} after its own flush, not B");
    }
    let mut stale = 0;
    for n in 1..count as usize {
        let (p, before, after) = (
            TLB_PRIMED[n].load(Ordering::SeqCst),
            TLB_BEFORE[n].load(Ordering::SeqCst),
            TLB_AFTER[n].load(Ordering::SeqCst),
        );
        if p != a {
            fail!(d, "vCPU {n} first read {p:#x}, not frame A's stamp");
        }
        if after != b {
            fail!(d, "vCPU {n} still reads {after:#x} after the shootdown (B is {b:#x})");
        }
        if before == a {
            stale += 1;
        }
    }
    let how =
        if platform::is_pvh() { "IPIs, each flushing and counted" } else { "MMUEXT_INVLPG_MULTI" };
    note!(
        d,
        "page moved A->B with a local flush: {stale} of {} vCPUs still read A (a stale TLB entry; 0 is possible: Xen flushes on context switches); after the shootdown ({how}, {shot} vCPUs) all read B",
        count - 1
    );
    true
}

const SLEEPS: usize = 5;
/// Per vCPU: bit 7 = failed, bits 0-6 = why, bits 8-15 = which sleep,
/// bits 16.. = worst lateness in us; 0 = not done.
static TIMER_RESULT: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
const TIMER_FAILED: u64 = 0x80;
const TIMER_DONE: u64 = 0x40;
const TIMER_WHY: [&str; 4] = [
    "ok",
    "Xen's timer not set to the deadline",
    "woke early",
    "not exactly 1 upcall ran the timer",
];

/// SLEEPS sleeps of 10 ms on the calling vCPU's own timer, checked as
/// selftest's timer.sleep_10ms checks vCPU 0's.
fn timed_sleeps(n: usize) {
    let mut worst = 0u64;
    for i in 0..SLEEPS {
        let mut tries = 0;
        let (virqs0, stray0, deadline, t1) = loop {
            let (virqs0, stray0) = timer::virqs();
            let late0 = timer::late_starts();
            let deadline = platform::now_ns() + 10_000_000;
            timer::sleep_until(deadline);
            let t1 = platform::now_ns();
            tries += 1;
            if timer::late_starts() == late0 || tries > 20 {
                break (virqs0, stray0, deadline, t1);
            }
        };
        let (virqs, stray) = (timer::virqs().0 - virqs0, timer::virqs().1 - stray0);
        let why = if timer::last_programmed() != deadline {
            1
        } else if t1 < deadline {
            2
        } else if virqs - stray != 1 {
            3
        } else {
            0
        };
        if why != 0 {
            TIMER_RESULT[n].store(TIMER_FAILED | why | (i as u64) << 8, Ordering::SeqCst);
            return;
        }
        worst = worst.max((t1 - deadline) / 1000);
    }
    TIMER_RESULT[n].store(TIMER_DONE | worst << 16, Ordering::SeqCst);
}

/// The demo's two locks: the same code, one never waiting in Xen.
static SPIN_LOCK: PollLock<u64> = PollLock::new(0, u32::MAX, 0, &XEN_WAITERS);
/// Its waits time out after 10 s: far beyond any hold here (a holder wakes
/// late by up to ~0.1 s on a loaded host), so a timeout is a lost kick.
static POLL_LOCK: PollLock<u64> = PollLock::new(0, 2000, 10_000_000_000, &XEN_WAITERS);
const ROUNDS: u64 = 8;
const HOLD_NS: u64 = 2_000_000;
static DEMO_DONE: AtomicU64 = AtomicU64::new(0);

/// ROUNDS times: take the lock, count, and sleep HOLD_NS in Xen while
/// holding it (the holder descheduled). With the poll lock the holder
/// also stays away until a waiter has gone to sleep in Xen, as long as
/// others have rounds left, so the slow path is taken by construction.
fn demo_rounds(which: usize) {
    let lock = if which == 0 { &SPIN_LOCK } else { &POLL_LOCK };
    let others_busy = || DEMO_DONE.load(Ordering::SeqCst) + 1 < smp::count() as u64;
    for _ in 0..ROUNDS {
        let mut g = lock.lock();
        *g += 1;
        timer::sleep_ns(HOLD_NS);
        if which == 1 {
            let until = platform::now_ns() + 100_000_000;
            while lock.waiting() == 0 && others_busy() && platform::now_ns() < until {
                timer::sleep_ns(1_000_000);
            }
        }
        drop(g);
    }
    DEMO_DONE.fetch_add(1, Ordering::SeqCst);
}

fn demo_task_spin(_: usize) {
    demo_rounds(0);
}

fn demo_task_poll(_: usize) {
    demo_rounds(1);
}

/// (wall ns, vCPUs' running ns) of one run of the demo on every vCPU.
fn demo(count: u32, which: usize) -> Option<(u64, u64)> {
    DEMO_DONE.store(0, Ordering::SeqCst);
    let run0: u64 =
        (0..count).filter_map(|n| vcpu::runstate(n).ok()).map(|r| r.time[runstate::RUNNING]).sum();
    let t0 = platform::now_ns();
    for n in 1..count {
        smp::run_task(n, if which == 0 { demo_task_spin } else { demo_task_poll }, 0).ok()?;
    }
    demo_rounds(which);
    if !spin_until(platform::now_ns() + 60 * SECOND, || {
        DEMO_DONE.load(Ordering::SeqCst) == u64::from(count)
    }) {
        return None;
    }
    let wall = platform::now_ns() - t0;
    let run1: u64 =
        (0..count).filter_map(|n| vcpu::runstate(n).ok()).map(|r| r.time[runstate::RUNNING]).sum();
    Some((wall, run1 - run0))
}

fn lock_demo(d: &mut super::Detail, count: u32) -> bool {
    let Some((spin_wall, spin_run)) = demo(count, 0) else {
        fail!(d, "the spin lock run did not finish in 60 s");
    };
    let early_before = smp::early_poll_returns();
    let Some((poll_wall, poll_run)) = demo(count, 1) else {
        fail!(d, "the poll lock run did not finish in 60 s");
    };
    let want = ROUNDS * u64::from(count);
    let (spun, polled) = (*SPIN_LOCK.lock(), *POLL_LOCK.lock());
    if spun != want || polled != want {
        fail!(d, "counted {spun} and {polled} under the locks, want {want} each");
    }
    let (ss, ps) = (SPIN_LOCK.stats(), POLL_LOCK.stats());
    if ss.waits != 0 {
        fail!(d, "the spin lock waited in Xen {} times", ss.waits);
    }
    if ps.waits == 0 {
        fail!(d, "no waiter of the poll lock went to Xen: {ps:?}");
    }
    if ps.timeouts != 0 {
        fail!(
            d,
            "{} waits ended by their timeout, not a kick (a lost wake-up): {ps:?}",
            ps.timeouts
        );
    }
    let early = smp::early_poll_returns() - early_before;
    let ms = |ns: u64| ns / 1_000_000;
    note!(
        d,
        "{count} vCPUs x {ROUNDS} rounds, the holder asleep in Xen {} ms each: spin lock wall {} ms, vCPUs running {} ms; spin-then-poll wall {} ms, vCPUs running {} ms ({} waits in SCHEDOP_poll, {early} polled again after an upcall, {} kicks, 0 timeouts); running time poll/spin {}.{:02}",
        HOLD_NS / 1_000_000,
        ms(spin_wall),
        ms(spin_run),
        ms(poll_wall),
        ms(poll_run),
        ps.waits,
        ps.kicks,
        poll_run / spin_run.max(1),
        poll_run * 100 / spin_run.max(1) % 100
    );
    true
}
