//! The measurements.

use super::stats::{cycles_to_ns, Summary};
use crate::apps::{AppError, AppResult};
use crate::cmdline::Cmdline;
use crate::events::{self, IrqGuard};
use crate::grants;
use crate::platform::grants::{self as pg, SharedPage};
use crate::platform::{self, bench::Scratch};
use crate::time::PvClock;
use crate::{kprintln, xenbus};
use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};
use grant_tables::{CopyBatch, Page};
use hypercall::abi::mmu::MulticallEntry;
use hypercall::ops::{mmu, sched_op, version};
use hypercall::{DomId, EvtchnPort};
use xenstore_client::Store;

struct Bench {
    tsc_hz: u64,
    /// Median cost of the timer pair itself, subtracted from every sample.
    overhead: u64,
    iters: usize,
    failures: u32,
}

impl Bench {
    /// Times `op` `iters` times after `iters / 10` warm-up runs.
    fn sample(&self, iters: usize, mut op: impl FnMut()) -> Summary {
        for _ in 0..iters / 10 + 1 {
            op();
        }
        let mut samples = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t0 = platform::tsc_begin();
            op();
            let t1 = platform::tsc_end();
            samples.push(t1.wrapping_sub(t0));
        }
        Summary::of(&mut samples).expect("iters > 0")
    }

    fn report(&self, name: &str, s: Summary, per: u64) {
        let ns = |c| cycles_to_ns(c, self.tsc_hz);
        kprintln!(
            "BENCH name={name} iters={} per={per} cycles={}/{}/{}/{} ns={}/{}/{}/{}",
            s.n,
            s.min,
            s.median,
            s.p99,
            s.max,
            ns(s.min),
            ns(s.median),
            ns(s.p99),
            ns(s.max)
        );
    }

    /// Measures `op` (minus the timer) and reports it per item of `per`.
    fn run(&mut self, name: &str, iters: usize, per: u64, op: impl FnMut()) -> Summary {
        let s = self.sample(iters, op).minus(self.overhead).per(per);
        self.report(name, s, per);
        s
    }

    fn fail(&mut self, what: &str) {
        self.failures += 1;
        kprintln!("BENCH-ERROR {what}");
    }
}

#[inline(never)]
fn noop(x: u64) -> u64 {
    black_box(x)
}

static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);

fn on_round_trip(_: EvtchnPort, _: usize) {
    ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
}

pub fn run(cmd: &Cmdline<'_>) -> AppResult {
    let quick = cmd.get("bench.quick").is_some_and(|v| v != "0");
    let iters = cmd.get("bench.iters").and_then(|v| v.parse().ok()).unwrap_or(if quick {
        300
    } else {
        10_000
    });
    let tsc_hz = PvClock::read(&platform::vcpu_info().time).tsc_hz();
    let (major, minor) = version::version();
    let extra = version::extraversion().map(|e| e.0).unwrap_or_default();
    kprintln!(
        "BENCH-ENV xen={major}.{minor}{} tsc_hz={tsc_hz} cpu=\"{}\" domain={} iters={iters}",
        hypercall::abi::start_info::c_str(&extra),
        platform::cpu_brand().as_str(),
        if platform::start_info().is_initial_domain() { "dom0" } else { "domU" }
    );

    let mut b = Bench { tsc_hz, overhead: 0, iters, failures: 0 };
    // The timer pair alone: reported raw, then subtracted from the rest.
    let timer = b.sample(iters, || {});
    b.report("tsc_timer_pair", timer, 1);
    b.overhead = timer.median;

    b.run("function_call", iters, 1, || {
        black_box(noop(black_box(1)));
    });
    let null = b.run("xen_version", iters, 1, || {
        black_box(version::version());
    });
    b.run("sched_yield", iters, 1, || {
        let _ = sched_op::yield_now();
    });

    // Event channels: a loopback pair.
    match (|| -> Result<(EvtchnPort, EvtchnPort), events::EventError> {
        let _masked = IrqGuard::new();
        let a = events::alloc_unbound(DomId::SELF)?;
        let r = events::bind_interdomain(DomId::SELF, a, on_round_trip, 0)?;
        events::clear_pending(r);
        Ok((a, r))
    })() {
        Ok((a, r)) => {
            {
                let _masked = IrqGuard::new();
                b.run("evtchn_send", iters, 1, || {
                    let _ = events::send(a);
                });
                events::clear_pending(r);
            }
            // With upcalls on, Xen delivers the event as the send returns:
            // the upcall, the handler and the iret are inside the timing.
            let before = ROUND_TRIPS.load(Ordering::Relaxed);
            b.run("evtchn_send_upcall_handler_roundtrip", iters, 1, || {
                let _ = events::send(a);
            });
            let delivered = ROUND_TRIPS.load(Ordering::Relaxed) - before;
            let expected = (iters + iters / 10 + 1) as u64;
            if delivered != expected {
                b.fail(&alloc::format!(
                    "round trip: {delivered} handler runs for {expected} sends"
                ));
            }
            let _ = events::close(a);
            let _ = events::close(r);
        }
        Err(e) => b.fail(&alloc::format!("loopback channel: {e}")),
    }

    // Page tables: rewriting entries with their own values.
    match Scratch::new(512) {
        Some(scratch) => {
            let single = b.run("mmu_update_1", iters, 1, || {
                let _ = scratch.rewrite(1);
            });
            b.run("mmu_update_64_per_entry", iters.div_ceil(4), 64, || {
                let _ = scratch.rewrite(64);
            });
            let batched = b.run("mmu_update_512_per_entry", iters.div_ceil(16), 512, || {
                let _ = scratch.rewrite(512);
            });
            // Orderings compare minimums: interference from the host only
            // ever adds time, so the minimum is the least noisy figure.
            if batched.min >= single.min {
                b.fail("512 batched mmu_update entries cost no less per entry than single calls");
            }
            b.run("update_va_mapping_invlpg", iters, 1, || {
                let _ = scratch.remap_first();
            });
        }
        None => b.fail("no scratch pages for the page-table benchmarks"),
    }
    b.run("mmuext_tlb_flush_local", iters, 1, || {
        let _ = mmu::tlb_flush_local();
    });

    // Batching: one multicall of 32 cheap calls against 32 separate ones.
    let mut entries = [MulticallEntry { op: 0, result: 0, args: [0; 6] }; 32];
    let multi = b.run("multicall_32_xen_version_total", iters.div_ceil(4), 1, || {
        let _ = platform::bench::multicall_xen_version(&mut entries);
    });
    let separate = b.run("separate_32_xen_version_total", iters.div_ceil(4), 1, || {
        for _ in 0..32 {
            black_box(version::version());
        }
    });
    // Batching cheap calls need not pay (Xen 4.20 under TCG: even), but a
    // multicall clearly dearer than the calls it replaces is broken.
    if !super::stats::multicall_no_dearer(multi.min, separate.min) {
        b.fail("a multicall of 32 costs clearly more than 32 separate hypercalls");
    }
    if null.median == 0 {
        b.fail("the null hypercall measured as free: the timer is broken");
    }

    // Grants: publishing and revoking a v1 entry is guest memory only (no
    // hypercall); a grant copy of a whole page is one GNTTABOP_copy.
    match grants::self_domid() {
        Some(me) if grants::with(|_| ()).is_some() => {
            let src = SharedPage::new();
            let dst = SharedPage::new();
            let frame = src.frame();
            let mut failed = false;
            b.run("grant_access_end_access", iters, 1, || {
                let ok = grants::with(|t| {
                    t.grant_access(me, frame, true).and_then(|r| t.end_access(r)).is_ok()
                });
                failed |= ok != Some(true);
            });
            let from = [Page::Frame(DomId::SELF, frame)];
            let to = [Page::Frame(DomId::SELF, dst.frame())];
            let dests: [&SharedPage; 1] = [&dst];
            b.run("gnttab_copy_4k", iters, 1, || {
                let mut batch = CopyBatch::new();
                failed |= batch.push(&from, 0, &to, 0, 4096).is_err();
                failed |= pg::copy(&mut batch, me, &dests, |_| None).is_err();
            });
            if failed {
                b.fail("a grant or a grant copy failed while measured");
            }
        }
        _ => b.fail("no grant table: grant figures not measured"),
    }

    // A XenStore read: request out, xenstored in dom0 answers, event back.
    if xenbus::identity().is_some() {
        let n = (iters / 20).max(20);
        b.run("xenstore_read_roundtrip", n, 1, || {
            let _ = xenbus::with(|bus| bus.xs.read("domid"));
        });
    }

    kprintln!("BENCH-DONE failures={}", b.failures);
    let _ = b.iters;
    if b.failures == 0 {
        Ok(())
    } else {
        Err(AppError::TestsFailed { failed: b.failures, passed: 0 })
    }
}
