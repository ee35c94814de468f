//! The measurements, and the checks that every measured operation did what
//! it should.
//!
//! Two kinds of output, kept apart:
//! - **Figures** (`BENCH` lines) and **ratios** (`BENCH-RATIO`): timings.
//!   On a shared, emulated machine they vary from run to run, so nothing
//!   here judges them; the reader (or `cargo xtask bench hypercall`) does.
//! - **Checks** (`BENCH-CHECK name=... result=pass|fail ...`): what must
//!   hold on every run whatever the timing: every call succeeded and had
//!   its effect (each event send ran the handler exactly once, every entry
//!   of a batched `mmu_update` holds the value written, a multicall's 32
//!   results are all right, a grant copy copied). Only checks count in
//!   `BENCH-DONE failures=N`.

use super::stats::{at_or_below, cycles_to_ns, Plan, Ratio, Summary};
use crate::apps::{AppError, AppResult};
use alloc::vec::Vec;
use core::fmt;
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};
use grant_tables::{CopyBatch, Page};
use hypercall::abi::mmu::MulticallEntry;
use hypercall::ops::{mmu, sched_op, version};
use hypercall::{DomId, EvtchnPort};
use kernel::cmdline::Cmdline;
use kernel::events::{self, IrqGuard};
use kernel::grants;
use kernel::time::PvClock;
use kernel::{kprintln, xenbus};
use platform::grants as pg;
use platform::pv::bench::Scratch;
use platform::shared_pages::SharedPage;
use xenstore_client::Store;

/// How long the round trip waits for one send's handler before calling
/// the event lost. A delivery that is merely late (see
/// [`roundtrip`]) arrives within microseconds; this only bounds a hang.
const LOST_AFTER_NS: u64 = 5_000_000_000;

/// One figure: the summary after the timer is subtracted and divided per
/// item, and how many samples were at or below the timer's own median.
#[derive(Clone, Copy)]
pub(super) struct Figure {
    s: Summary,
    clamped: usize,
}

pub(super) struct Bench {
    tsc_hz: u64,
    /// Median cost of the timer pair itself, subtracted from every sample.
    overhead: u64,
    failures: u32,
    passed: u32,
}

/// Calls made and calls that failed (or answered wrongly) while measured.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) calls: u64,
    pub(super) bad: u64,
}

impl Tally {
    pub(super) fn count(&mut self, ok: bool) {
        self.calls += 1;
        self.bad += u64::from(!ok);
    }
}

impl Bench {
    /// Times `op` `samples` times after `samples / 10 + 1` warm-up runs;
    /// the raw samples, sorted.
    fn sample(&self, samples: usize, mut op: impl FnMut()) -> Vec<u64> {
        for _ in 0..samples / 10 + 1 {
            op();
        }
        let mut v = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t0 = platform::tsc_begin();
            op();
            let t1 = platform::tsc_end();
            v.push(t1.wrapping_sub(t0));
        }
        v.sort_unstable();
        v
    }

    /// Times `op` `samples` times after `samples / 10 + 1` warm-up runs,
    /// each run preceded by an untimed `prep` (unmapping a page, flushing
    /// the TLB); the summary minus the timer, per item of `per`.
    pub(super) fn measure_prepared(
        &self,
        samples: usize,
        per: u64,
        mut prep: impl FnMut(),
        mut op: impl FnMut(),
    ) -> Figure {
        for _ in 0..samples / 10 + 1 {
            prep();
            op();
        }
        let mut v = Vec::with_capacity(samples);
        for _ in 0..samples {
            prep();
            let t0 = platform::tsc_begin();
            op();
            let t1 = platform::tsc_end();
            v.push(t1.wrapping_sub(t0));
        }
        self.figure_of(v, per)
    }

    /// Raw samples (timer pairs around one operation of `per` items) as
    /// a figure: sorted, the timer subtracted, per item.
    pub(super) fn figure_of(&self, mut v: Vec<u64>, per: u64) -> Figure {
        v.sort_unstable();
        let clamped = at_or_below(&v, self.overhead);
        let s = Summary::of(&mut v).expect("samples > 0").minus(self.overhead).per(per);
        Figure { s, clamped }
    }

    /// Measures `op` minus the timer, per item of `per`, without printing.
    pub(super) fn measure(&self, samples: usize, per: u64, op: impl FnMut()) -> Figure {
        let mut v = self.sample(samples, op);
        let clamped = at_or_below(&v, self.overhead);
        let s = Summary::of(&mut v).expect("samples > 0").minus(self.overhead).per(per);
        Figure { s, clamped }
    }

    /// `BENCH name=N iters=I per=K cycles=a/b/c/d ns=a/b/c/d clamped=C`,
    /// then `extra` (` key=value` words).
    pub(super) fn report(&self, name: &str, f: Figure, per: u64, extra: fmt::Arguments<'_>) {
        let ns = |c| cycles_to_ns(c, self.tsc_hz);
        let s = f.s;
        kprintln!(
            "BENCH name={name} iters={} per={per} cycles={}/{}/{}/{} ns={}/{}/{}/{} clamped={}{extra}",
            s.n,
            s.min,
            s.median,
            s.p99,
            s.max,
            ns(s.min),
            ns(s.median),
            ns(s.p99),
            ns(s.max),
            f.clamped
        );
    }

    /// Measures `op` and reports it.
    pub(super) fn run(&mut self, name: &str, samples: usize, per: u64, op: impl FnMut()) -> Figure {
        let f = self.measure(samples, per, op);
        self.report(name, f, per, format_args!(""));
        f
    }

    /// `BENCH-CHECK name=N result=pass|fail detail`: a condition that must
    /// hold on every run. Failures count in `BENCH-DONE`.
    pub(super) fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments<'_>) {
        kprintln!("BENCH-CHECK name={name} result={} {detail}", if ok { "pass" } else { "fail" });
        if ok {
            self.passed += 1;
        } else {
            self.failures += 1;
        }
    }

    /// Something could not be set up: its figures and checks are missing.
    pub(super) fn fail(&mut self, what: &str) {
        self.failures += 1;
        kprintln!("BENCH-ERROR {what}");
    }
}

/// `BENCH-RATIO name=N of=A/B min=x median=y`: a comparison of two
/// figures, reported, never judged.
pub(super) fn ratio(name: &str, (a, fa): (&str, Figure), (b, fb): (&str, Figure)) {
    kprintln!(
        "BENCH-RATIO name={name} of={a}/{b} min={} median={}",
        Ratio(fa.s.min, fb.s.min),
        Ratio(fa.s.median, fb.s.median)
    );
}

#[inline(never)]
fn noop(x: u64) -> u64 {
    black_box(x)
}

static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);

pub(super) fn on_round_trip(_: EvtchnPort, _: usize) {
    ROUND_TRIPS.fetch_add(1, Ordering::SeqCst);
}

/// Spins until `cond()` or `ns` nanoseconds pass; returns `cond()`.
fn spin_until(ns: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = platform::now_ns().saturating_add(ns);
    while !cond() {
        if platform::now_ns() > deadline {
            return cond();
        }
        core::hint::spin_loop();
    }
    true
}

/// `XENVER_version` as the hypercall returns it (major << 16 | minor).
pub(super) fn version_word((major, minor): (u16, u16)) -> u64 {
    (u64::from(major) << 16) | u64::from(minor)
}

pub fn run(cmd: &Cmdline<'_>) -> AppResult {
    if cmd.choice("bench.suite") == "paging" {
        return super::paging::run(cmd);
    }
    let (mut b, plan, ver) = begin(cmd);

    b.run("function_call", plan.iters, 1, || {
        black_box(noop(black_box(1)));
    });
    let mut t = Tally::default();
    let null = b.run("xen_version", plan.iters, 1, || t.count(version::version() == ver));
    b.check(
        "xen_version_answers",
        t.bad == 0,
        format_args!("{} calls, {} answered other than {}.{}", t.calls, t.bad, ver.0, ver.1),
    );
    let mut t = Tally::default();
    b.run("sched_yield", plan.iters, 1, || t.count(sched_op::yield_now().is_ok()));
    b.check(
        "sched_yield_succeeds",
        t.bad == 0,
        format_args!("{} calls, {} failed", t.calls, t.bad),
    );

    // Event channels: a loopback pair, `a` raises `r`.
    let mut roundtrip = None;
    let mut send = None;
    match (|| -> Result<(EvtchnPort, EvtchnPort), events::EventError> {
        let _masked = IrqGuard::new();
        let a = events::alloc_unbound(DomId::SELF)?;
        let r = events::bind_interdomain(DomId::SELF, a, on_round_trip, 0)?;
        events::clear_pending(r);
        Ok((a, r))
    })() {
        Ok((a, r)) => {
            let mut t = Tally::default();
            let was_pending;
            {
                // Upcalls masked: the hypercall alone; the event stays pending.
                let _masked = IrqGuard::new();
                send =
                    Some(b.run("evtchn_send", plan.iters, 1, || t.count(events::send(a).is_ok())));
                was_pending = events::clear_pending(r);
            }
            b.check(
                "evtchn_send_marks_pending",
                t.bad == 0 && was_pending,
                format_args!(
                    "{} sends with upcalls masked, {} refused; the port was {}pending afterwards",
                    t.calls,
                    t.bad,
                    if was_pending { "" } else { "not " }
                ),
            );
            roundtrip = Some(self::roundtrip(&mut b, plan, a, r));
            let _ = events::close(a);
            let _ = events::close(r);
        }
        Err(e) => b.fail(&alloc::format!("loopback channel: {e}")),
    }

    // Page tables: every call changes every entry it names (see Scratch).
    let mut batching = None;
    if platform::is_pvh() {
        // PVH: native page tables. A PTE store + invlpg replaces the
        // mmu_update family, and a CR3 reload stands for a context switch.
        match platform::pvh::bench::PteScratch::new() {
            Some(mut scratch) => {
                let mut t = Tally::default();
                let pte = b.run("pte_write_invlpg", plan.iters, 1, || t.count(scratch.flip()));
                b.check(
                    "pte_write_applies",
                    t.bad == 0,
                    format_args!(
                        "{} PTE writes + invlpg, {} read another frame's stamp through the new mapping",
                        t.calls, t.bad
                    ),
                );
                let mut t = Tally::default();
                let cr3 = b.run("cr3_reload", plan.iters, 1, || {
                    t.count(platform::pvh::bench::cr3_reload())
                });
                b.check(
                    "cr3_reload_keeps_root",
                    t.bad == 0,
                    format_args!("{} reloads, {} changed the root", t.calls, t.bad),
                );
                batching = Some((cr3, pte));
            }
            None => b.fail("no scratch frames for the page-table benchmarks"),
        }
    } else {
        if let Some(m) = pv_mmu_updates(&mut b, plan) {
            batching = Some((m.single, m.batched));
        }
        // MMUEXT_* is the PV guest's way to flush: an HVM container (PVH)
        // has no mmuext_op and flushes natively (cr3_reload above).
        let mut t = Tally::default();
        b.run("mmuext_tlb_flush_local", plan.iters, 1, || t.count(mmu::tlb_flush_local().is_ok()));
        b.check(
            "mmuext_tlb_flush_succeeds",
            t.bad == 0,
            format_args!("{} calls, {} failed", t.calls, t.bad),
        );
    }

    // Batching: one multicall of 32 cheap calls against 32 separate ones.
    let want = version_word(ver);
    let mut entries = [MulticallEntry { op: 0, result: 0, args: [0; 6] }; 32];
    let mut t = Tally::default();
    let multi = b.run("multicall_32_xen_version_total", plan.quarter, 1, || {
        let ok = platform::pv::bench::multicall_xen_version(&mut entries).is_ok();
        t.count(ok && entries.iter().all(|e| e.result == want));
    });
    b.check(
        "multicall_runs_all_32",
        t.bad == 0,
        format_args!(
            "{} multicalls of 32 xen_version, {} with a failed call or a result other than {want:#x}",
            t.calls, t.bad
        ),
    );
    let mut t = Tally::default();
    let separate = b.run("separate_32_xen_version_total", plan.quarter, 1, || {
        let mut ok = true;
        for _ in 0..32 {
            ok &= version::version() == ver;
        }
        t.count(ok);
    });
    b.check(
        "separate_32_answer",
        t.bad == 0,
        format_args!("{} rounds of 32 calls, {} with a wrong answer", t.calls, t.bad),
    );

    // Grants: publishing and revoking a v1 entry is guest memory only (no
    // hypercall); a grant copy of a whole page is one GNTTABOP_copy.
    match grants::self_domid() {
        Some(me) if grants::with(|_| ()).is_some() => {
            let src = SharedPage::new();
            let dst = SharedPage::new();
            for (i, w) in src.words().iter().enumerate() {
                w.store((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), Ordering::Relaxed);
            }
            let frame = src.frame();
            let mut t = Tally::default();
            b.run("grant_access_end_access", plan.iters, 1, || {
                let ok = grants::with(|g| {
                    g.grant_access(me, &src, 0, true).and_then(|r| g.end_access(r)).is_ok()
                });
                t.count(ok == Some(true));
            });
            b.check(
                "grant_access_end_access_succeeds",
                t.bad == 0,
                format_args!("{} grants published and revoked, {} failed", t.calls, t.bad),
            );
            let from = [Page::Frame(DomId::SELF, frame)];
            let to = [Page::Frame(DomId::SELF, dst.frame())];
            let dests: [&SharedPage; 1] = [&dst];
            let mut t = Tally::default();
            let mut stamp = 0u64;
            b.run("gnttab_copy_4k", plan.iters, 1, || {
                // A new first word each time: each copy must carry it over.
                stamp += 1;
                src.words()[0].store(stamp, Ordering::Relaxed);
                let mut batch = CopyBatch::new();
                let ok = batch.push(&from, 0, &to, 0, 4096).is_ok()
                    && pg::copy(&mut batch, me, &dests, |_| None).is_ok();
                t.count(ok && dst.words()[0].load(Ordering::Relaxed) == stamp);
            });
            let same = src
                .words()
                .iter()
                .zip(dst.words().iter())
                .all(|(a, b)| a.load(Ordering::Relaxed) == b.load(Ordering::Relaxed));
            b.check(
                "gnttab_copy_copies",
                t.bad == 0 && same,
                format_args!(
                    "{} copies of 4 KiB, {} failed or left the stamp behind; last copy equal to its source: {same}",
                    t.calls, t.bad
                ),
            );
        }
        _ => b.fail("no grant table: grant figures not measured"),
    }

    // A XenStore read: request out, xenstored in dom0 answers, event back.
    let mut store = None;
    match xenbus::identity() {
        Some(id) => {
            let want = alloc::format!("{}", id.domid.0);
            let mut t = Tally::default();
            store = Some(b.run("xenstore_read_roundtrip", plan.store, 1, || {
                let v = xenbus::with(|bus| bus.xs.read("domid"));
                t.count(matches!(v, Some(Ok(ref v)) if v.as_slice() == want.as_bytes()));
            }));
            b.check(
                "xenstore_read_answers",
                t.bad == 0,
                format_args!(
                    "{} reads of domid, {} failed or answered other than {want}",
                    t.calls, t.bad
                ),
            );
        }
        None => b.fail("no XenStore: its figure not measured"),
    }

    // Across vCPUs (issue 21), with a second vCPU: an IPI round trip and a
    // one-page TLB shootdown.
    if platform::smp::count().0 >= 2 {
        smp_figures(&mut b, plan);
    } else {
        kprintln!("BENCH-ENV vcpus=1 (no IPI or shootdown figures)");
    }

    // Comparisons, reported for the reader; timings decide nothing here.
    match batching {
        Some((cr3, pte)) if platform::is_pvh() => {
            ratio("cr3_reload_vs_pte_write", ("cr3_reload", cr3), ("pte_write_invlpg", pte))
        }
        Some((single, batched)) => ratio(
            "mmu_512_per_entry_vs_single",
            ("mmu_update_512_per_entry", batched),
            ("mmu_update_1", single),
        ),
        None => {}
    }
    ratio(
        "multicall_vs_separate",
        ("multicall_32_xen_version_total", multi),
        ("separate_32_xen_version_total", separate),
    );
    if let (Some(s), Some(rt)) = (send, roundtrip) {
        ratio(
            "roundtrip_vs_send",
            ("evtchn_send_upcall_handler_roundtrip", rt),
            ("evtchn_send", s),
        );
    }
    if let Some(x) = store {
        ratio("xenstore_read_vs_null", ("xenstore_read_roundtrip", x), ("xen_version", null));
    }

    finish(&b)
}

/// What every suite starts with: the plan from `bench.quick` /
/// `bench.iters`, the `BENCH-ENV` line (with `suite=`), and the timer
/// pair measured alone, reported and from then on subtracted.
pub(super) fn begin(cmd: &Cmdline<'_>) -> (Bench, Plan, (u16, u16)) {
    let quick = cmd.number("bench.quick") == Some(1);
    let iters = cmd.number("bench.iters").unwrap_or(if quick { 300 } else { 10_000 }) as usize;
    let plan = Plan::new(iters);
    let tsc_hz = PvClock::read(&platform::vcpu_info().time).tsc_hz();
    let ver = version::version();
    let extra = version::extraversion().map(|e| e.0).unwrap_or_default();
    kprintln!(
        "BENCH-ENV xen={}.{}{} tsc_hz={tsc_hz} cpu=\"{}\" domain={} iters={} mode={} suite={}",
        ver.0,
        ver.1,
        hypercall::abi::start_info::c_str(&extra),
        platform::cpu_brand().as_str(),
        if platform::pv::start_info().is_initial_domain() { "dom0" } else { "domU" },
        plan.iters,
        platform::backend().name(),
        cmd.choice("bench.suite")
    );

    let mut b = Bench { tsc_hz, overhead: 0, failures: 0, passed: 0 };
    // The timer pair alone: reported raw, then subtracted from the rest.
    let mut raw = b.sample(plan.iters, || {});
    let timer = Summary::of(&mut raw).expect("samples > 0");
    b.report("tsc_timer_pair", Figure { s: timer, clamped: 0 }, 1, format_args!(""));
    b.overhead = timer.median;
    (b, plan, ver)
}

/// `BENCH-DONE failures=N checks=M`, and the app's result.
pub(super) fn finish(b: &Bench) -> AppResult {
    kprintln!("BENCH-DONE failures={} checks={}", b.failures, b.passed + b.failures);
    if b.failures == 0 {
        Ok(())
    } else {
        Err(AppError::TestsFailed { failed: b.failures, passed: b.passed })
    }
}

static PONGS: AtomicU64 = AtomicU64::new(0);
/// The vCPU each pong ran on, as a bitmap: only vCPU 1 may appear.
static PONG_CPUS: AtomicU64 = AtomicU64::new(0);

fn pong(_: usize) {
    PONG_CPUS.fetch_or(1 << kernel::smp::current(), Ordering::SeqCst);
    PONGS.fetch_add(1, Ordering::SeqCst);
}

/// With SMP started: vCPU 0 posts a call to vCPU 1 (its mailbox, then
/// `EVTCHNOP_send` on vCPU 1's IPI port), vCPU 1's IPI handler runs it,
/// vCPU 0 sees it done (Linux's comparator: `smp_call_function_single`
/// with `wait`); then a shootdown of one page on both vCPUs
/// (`kernel::smp::tlb_shootdown`: PV, a local `invlpg` and one
/// `MMUEXT_INVLPG_MULTI` naming vCPU 1; PVH, an IPI whose handler flushes,
/// waited for; Linux: `on_each_cpu` running the PV local flush, as its
/// `flush_tlb_kernel_range` does) and, PV, the `MMUEXT_INVLPG_MULTI`
/// hypercall alone.
fn smp_figures(b: &mut Bench, plan: Plan) {
    let online = match kernel::smp::start() {
        Ok(n) => n,
        Err(e) => return b.fail(&alloc::format!("smp: {e}")),
    };
    kprintln!("BENCH-ENV vcpus={online}");
    if online < 2 {
        return b.fail("smp: vCPU 1 did not come online");
    }
    let base = PONGS.load(Ordering::SeqCst);
    let (mut sent, mut refused) = (0u64, 0u64);
    let mut lost: Option<u64> = None;
    let f = b.measure(plan.iters, 1, || {
        if lost.is_some() {
            return;
        }
        if kernel::smp::call_irq(1, pong, 0).is_err() {
            refused += 1;
            return;
        }
        sent += 1;
        if !spin_until(LOST_AFTER_NS, || PONGS.load(Ordering::SeqCst) >= base + sent) {
            lost = Some(sent);
        }
    });
    b.report("ipi_roundtrip", f, 1, format_args!(""));
    let runs = PONGS.load(Ordering::SeqCst) - base;
    let cpus = PONG_CPUS.load(Ordering::SeqCst);
    b.check(
        "ipi_runs_once_on_its_target",
        refused == 0 && lost.is_none() && runs == sent && cpus == 1 << 1,
        format_args!(
            "{runs} calls run for {sent} posted ({refused} refused{}), on vCPUs {cpus:#x}",
            lost.map_or(alloc::string::String::new(), |n| alloc::format!(", call {n} lost"))
        ),
    );
    // Any mapped page will do: the flush changes no mapping.
    let page = alloc::boxed::Box::new([0u8; 4096]);
    let va = page.as_ptr() as usize & !0xfff;
    let (mut ok, mut bad) = (0u64, 0u64);
    let f = b.measure(plan.iters, 1, || match kernel::smp::tlb_shootdown(Some(va)) {
        Ok(1) => ok += 1,
        _ => bad += 1,
    });
    b.report("tlb_shootdown_1_page", f, 1, format_args!(""));
    b.check(
        "tlb_shootdown_reaches_the_other_vcpu",
        bad == 0 && ok > 0,
        format_args!("{ok} shootdowns flushed vCPU 1 too, {bad} did not"),
    );
    if !platform::is_pvh() {
        let mut t = Tally::default();
        b.run("mmuext_invlpg_multi", plan.iters, 1, || {
            t.count(platform::smp::flush_tlb_multi(1 << 1, Some(va)).is_ok())
        });
        b.check(
            "mmuext_invlpg_multi_succeeds",
            t.bad == 0,
            format_args!("{} calls, {} failed", t.calls, t.bad),
        );
    }
    drop(page);
}

/// The PV page-table figures of both suites (`app=bench`, and
/// `bench.suite=paging`).
pub(super) struct PvMmu {
    pub single: Figure,
    pub batched: Figure,
    pub update_va_mapping: Figure,
}

/// PV: `mmu_update` singly and batched 64/512, then `update_va_mapping`
/// with its `invlpg`, each call changing every entry it names (see
/// `platform::pv::bench::Scratch`), checked by reading the entries back;
/// `None` (a failure reported) without scratch pages.
pub(super) fn pv_mmu_updates(b: &mut Bench, plan: Plan) -> Option<PvMmu> {
    let Some(scratch) = Scratch::new(512) else {
        b.fail("no scratch pages for the page-table benchmarks");
        return None;
    };
    let mut t = Tally::default();
    let mut held = [0usize; 3];
    let single = b.run("mmu_update_1", plan.iters, 1, || t.count(scratch.flip(1).is_ok()));
    held[0] = scratch.holding(1);
    b.run("mmu_update_64_per_entry", plan.quarter, 64, || t.count(scratch.flip(64).is_ok()));
    held[1] = scratch.holding(64);
    let batched = b.run("mmu_update_512_per_entry", plan.sixteenth, 512, || {
        t.count(scratch.flip(512).is_ok())
    });
    held[2] = scratch.holding(512);
    b.check(
        "mmu_update_applies_every_entry",
        t.bad == 0 && held == [1, 64, 512],
        format_args!(
            "{} calls of 1, 64 and 512 entries, {} refused; read back, {}/1, {}/64 and {}/512 entries hold what the last call wrote",
            t.calls, t.bad, held[0], held[1], held[2]
        ),
    );
    let restored = scratch.restore();
    let mut t = Tally::default();
    let update_va_mapping =
        b.run("update_va_mapping_invlpg", plan.iters, 1, || t.count(scratch.remap_first().is_ok()));
    let first = scratch.first_is_original();
    b.check(
        "update_va_mapping_succeeds",
        t.bad == 0 && restored && first,
        format_args!(
            "{} calls, {} failed; entries restored: {restored}; first entry as mapped: {first}",
            t.calls, t.bad
        ),
    );
    Some(PvMmu { single, batched, update_va_mapping })
}

/// Send on `a`, upcall, handler for `r`, return: timed from the send until
/// the handler has run, each send waited for before the next.
///
/// Usually Xen delivers the upcall as the send hypercall returns, so the
/// handler has run when `send` returns. Not always: when another event of
/// the same FIFO queue is being raised on the other physical CPU at that
/// moment (xenstored's notification, say), Xen links our event behind it
/// and leaves the upcall to that CPU, which raises it a moment later. A
/// send made before that upcall finds the port still pending, and Xen
/// merges it (one handler run for two sends, as event channels are
/// specified to). So each send waits for its own handler run; the sends
/// that had to wait are reported as `late=N`, and the check is exact: one
/// handler run per send, none lost.
pub(super) fn roundtrip(b: &mut Bench, plan: Plan, a: EvtchnPort, r: EvtchnPort) -> Figure {
    let base = ROUND_TRIPS.load(Ordering::SeqCst);
    let (mut sent, mut refused, mut late) = (0u64, 0u64, 0u64);
    let mut lost: Option<u64> = None;
    let f = b.measure(plan.iters, 1, || {
        if lost.is_some() {
            return;
        }
        if events::send(a).is_err() {
            refused += 1;
            return;
        }
        sent += 1;
        let done = || ROUND_TRIPS.load(Ordering::SeqCst) >= base + sent;
        if !done() {
            late += 1;
            if !spin_until(LOST_AFTER_NS, done) {
                lost = Some(sent);
            }
        }
    });
    b.report("evtchn_send_upcall_handler_roundtrip", f, 1, format_args!(" late={late}"));
    let runs = ROUND_TRIPS.load(Ordering::SeqCst) - base;
    let calls = Plan::calls(plan.iters) as u64;
    let left = events::is_pending(r);
    b.check(
        "roundtrip_one_handler_run_per_send",
        refused == 0 && lost.is_none() && sent == calls && runs == sent && !left,
        format_args!(
            "{runs} handler runs for {sent} sends of {calls} ({refused} refused), each waited for; {late} ran only after the send returned; {}; port {}pending afterwards",
            match lost {
                Some(n) => alloc::format!("send {n} never delivered within {} s", LOST_AFTER_NS / 1_000_000_000),
                None => "none lost".into(),
            },
            if left { "" } else { "not " }
        ),
    );
    f
}
