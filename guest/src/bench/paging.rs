//! `bench.suite=paging`: what memory virtualization costs this guest in
//! the mode it runs in (PV, PVH with nested paging, PVH with shadow
//! paging), for `cargo xtask bench paging` to put side by side
//! (docs/pvh.md, "Three ways of virtualizing memory"):
//!
//! - `xen_version`: the null hypercall (a `syscall` into Xen as PV, a
//!   `vmmcall`/`vmcall` exit as PVH), the unit the others are read in;
//! - `evtchn_send_upcall_handler_roundtrip`: an event to ourselves;
//! - a page-table update: PV `mmu_update` of 1, 64 and 512 entries and
//!   `update_va_mapping` (Xen validates every entry); PVH a PTE store and
//!   `invlpg` (no exit with nested paging; with shadow paging the store
//!   to a write-protected page table traps);
//! - `page_fault_roundtrip`: touch an unmapped page, take the fault in
//!   our handler, map the page, return, complete the touch;
//! - `cr3_reload`: a context switch to the same address space;
//! - `walk_4k_per_page` (and, as PVH, `walk_2m_per_page` over the direct
//!   map's 2 MiB pages first): one word read from every page of a working
//!   set larger than the TLB, after a TLB flush, in a scattered order,
//!   timed 256 pages at a time; the figure is per page touched.
//!
//! Figures are reported, never judged here; the checks (`BENCH-CHECK`)
//! say that every measured operation did what it should, on every call.

use super::run::{begin, finish, on_round_trip, ratio, roundtrip, Bench, Figure, Tally};
use super::stats::walk_passes;
use hypercall::ops::version;
use hypercall::{DomId, EvtchnPort};
use kernel::events::{self, IrqGuard};
use kernel::kprintln;
use platform::paging_bench::{cr3_reload, flush_tlb, FaultPage, WalkSet};

use crate::apps::AppResult;
use kernel::cmdline::Cmdline;

pub fn run(cmd: &Cmdline<'_>) -> AppResult {
    let (mut b, plan, ver) = begin(cmd);

    let mut t = Tally::default();
    let null = b.run("xen_version", plan.iters, 1, || t.count(version::version() == ver));
    b.check(
        "xen_version_answers",
        t.bad == 0,
        format_args!("{} calls, {} answered other than {}.{}", t.calls, t.bad, ver.0, ver.1),
    );

    match loopback() {
        Ok((a, r)) => {
            roundtrip(&mut b, plan, a, r);
            let _ = events::close(a);
            let _ = events::close(r);
        }
        Err(e) => b.fail(&alloc::format!("loopback channel: {e}")),
    }

    let update = if platform::is_pvh() { pte_write(&mut b, plan.iters) } else { mmu(&mut b, plan) };
    let fault = page_fault(&mut b, plan.iters);

    let mut t = Tally::default();
    let cr3 = b.run("cr3_reload", plan.iters, 1, || t.count(cr3_reload()));
    b.check(
        "cr3_reload_keeps_root",
        t.bad == 0,
        format_args!("{} reloads, {} failed or changed the root", t.calls, t.bad),
    );

    walk(&mut b, cmd, walk_passes(plan.iters));

    if let Some(f) = fault {
        ratio("page_fault_vs_null", ("page_fault_roundtrip", f), ("xen_version", null));
    }
    if let Some((name, u)) = update {
        ratio("pte_update_vs_null", (name, u), ("xen_version", null));
    }
    ratio("cr3_reload_vs_null", ("cr3_reload", cr3), ("xen_version", null));
    finish(&b)
}

/// A loopback pair: a send on the first raises the second, whose handler
/// counts round trips.
fn loopback() -> Result<(EvtchnPort, EvtchnPort), events::EventError> {
    let _masked = IrqGuard::new();
    let a = events::alloc_unbound(DomId::SELF)?;
    let r = events::bind_interdomain(DomId::SELF, a, on_round_trip, 0)?;
    events::clear_pending(r);
    Ok((a, r))
}

/// PV: `mmu_update` singly and batched, `update_va_mapping`
/// ([`super::run::pv_mmu_updates`], as `app=bench` measures them).
/// Returns `update_va_mapping` (one PTE and its `invlpg`, as PVH's
/// figure), for the ratio against the null hypercall.
fn mmu(b: &mut Bench, plan: super::stats::Plan) -> Option<(&'static str, Figure)> {
    let m = super::run::pv_mmu_updates(b, plan)?;
    ratio(
        "mmu_512_per_entry_vs_single",
        ("mmu_update_512_per_entry", m.batched),
        ("mmu_update_1", m.single),
    );
    Some(("update_va_mapping_invlpg", m.update_va_mapping))
}

/// PVH: a native PTE store and `invlpg` on the scratch page.
fn pte_write(b: &mut Bench, iters: usize) -> Option<(&'static str, Figure)> {
    let Some(mut scratch) = platform::pvh::bench::PteScratch::new() else {
        b.fail("no scratch frames for the page-table benchmarks");
        return None;
    };
    let mut t = Tally::default();
    let f = b.run("pte_write_invlpg", iters, 1, || t.count(scratch.flip()));
    b.check(
        "pte_write_applies",
        t.bad == 0,
        format_args!(
            "{} PTE writes + invlpg, {} read another frame's stamp through the new mapping",
            t.calls, t.bad
        ),
    );
    Some(("pte_write_invlpg", f))
}

/// Unmap (untimed), then touch: the fault, our handler mapping the page
/// again, the return and the completed read.
fn page_fault(b: &mut Bench, iters: usize) -> Option<Figure> {
    let Some(page) = FaultPage::new() else {
        b.fail("no page for the page-fault round trip");
        return None;
    };
    let before = FaultPage::fixups();
    let (mut unmapped, mut refused, mut wrong) = (0u64, 0u64, 0u64);
    let stamp = page.stamp();
    let f = b.measure_prepared(
        iters,
        1,
        || {
            if page.unmap() {
                unmapped += 1;
            } else {
                refused += 1;
            }
        },
        || wrong += u64::from(page.touch() != stamp),
    );
    let faults = FaultPage::fixups() - before;
    b.report("page_fault_roundtrip", f, 1, format_args!(""));
    // After the timed ones: a touch of a mapped page must not fault.
    let still = FaultPage::fixups();
    let mapped_read = page.touch() == stamp;
    let spurious = FaultPage::fixups() - still;
    b.check(
        "page_fault_maps_and_resumes",
        refused == 0 && wrong == 0 && faults == unmapped && mapped_read && spurious == 0,
        format_args!(
            "{unmapped} unmaps ({refused} refused), {faults} faults handled, {wrong} touches read another value; a touch of the mapped page faulted {spurious} times"
        ),
    );
    Some(f)
}

/// The working-set walk: `bench.walk_mib` (at most half the free frames),
/// each pass after a TLB flush; as PVH first over the direct map's 2 MiB
/// pages, then over 4 KiB pages.
fn walk(b: &mut Bench, cmd: &Cmdline<'_>, passes: usize) {
    let want = cmd.number("bench.walk_mib").unwrap_or(64) * 256;
    let (free, _) = platform::free_frames();
    let Some(mut set) = WalkSet::new(want.min(free / 2)) else {
        b.fail("no memory for the working-set walk");
        return;
    };
    let pages = set.pages();
    kprintln!(
        "BENCH-INFO walk pages={pages} mib={} asked_mib={} free_pages={free} passes={passes}",
        pages / 256,
        want / 256
    );
    if platform::is_pvh() {
        let large = set.in_large_pages();
        walk_pass(b, &set, "walk_2m_per_page", passes, large == pages, "2 MiB", large);
        let split = set.small_pages();
        let large = set.in_large_pages();
        kprintln!("BENCH-INFO walk split_2m_pages={}", split.map_or(-1, |n| n as i64));
        walk_pass(b, &set, "walk_4k_per_page", passes, split.is_some() && large == 0, "4 KiB", 0);
    } else {
        walk_pass(b, &set, "walk_4k_per_page", passes, true, "4 KiB", 0);
    }
}

/// Pages per timed sample of the walk.
const WALK_PIECE: u64 = 256;

/// `passes` walks over `set`, each after a TLB flush (not timed), timed in
/// pieces of [`WALK_PIECE`] pages (see `WalkSet::walk`), per page; one
/// untimed pass first.
fn walk_pass(
    b: &mut Bench,
    set: &WalkSet,
    name: &str,
    passes: usize,
    mapped_as_said: bool,
    size: &str,
    large: u64,
) {
    let want = set.expected_sum();
    let pages = set.pages();
    let pieces = pages / WALK_PIECE;
    let mut t = Tally::default();
    let mut v = alloc::vec::Vec::with_capacity(passes * pieces as usize);
    for pass in 0..=passes {
        flush_tlb();
        let mut sum = 0u64;
        for p in 0..pieces {
            let t0 = platform::tsc_begin();
            sum = sum.wrapping_add(set.walk(p * WALK_PIECE, WALK_PIECE));
            let t1 = platform::tsc_end();
            if pass > 0 {
                v.push(t1.wrapping_sub(t0));
            }
        }
        t.count(sum == want);
    }
    let f = b.figure_of(v, WALK_PIECE);
    b.report(name, f, WALK_PIECE, format_args!(" passes={passes} pages={pages}"));
    b.check(
        &alloc::format!("{name}_reads_every_page"),
        t.bad == 0 && mapped_as_said,
        format_args!(
            "{} passes over {pages} pages ({} MiB, mapped with {size} pages: {mapped_as_said}, {large} in 2 MiB pages), {} read a wrong sum",
            t.calls,
            pages / 256,
            t.bad
        ),
    );
}
