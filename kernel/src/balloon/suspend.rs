//! What the balloon does around a suspend, for a live migration (see
//! docs/migration.md, "Ballooning during a live migration").
//!
//! The guest cannot see a pre-copy under way: `xl migrate` writes nothing
//! the guest reads before it asks for the suspend, and `xl mem-set` is not
//! refused meanwhile (libxl's `libxl_set_memory_target` takes only the
//! domain's userdata lock, which the save path does not hold). So the
//! balloon keeps following the target, and the suspend makes it safe:
//! every page ballooned in since the previous suspend is logged as dirty
//! through Xen (`platform::log_dirty`) just before the guest suspends,
//! so the toolstack's last round sends it whatever Xen's populate path
//! logged (Xen 4.17 logs nothing there for a PVH guest).
//!
//! With `balloon.check=1` the frames each step brings in are held out of
//! the allocator, stamped with a pattern, and read back after the next
//! suspend: the boot test's proof that they arrived (`platform::pv::held`).
//!
//! The other way round, a page given back during the pre-copy after
//! round 1 sent it stays in the new domain (Xen logs no removal, and the
//! restoring toolstack never unpopulates a page): so in a new domain the
//! pages given back since the last suspend are given back again.
//!
//! `balloon.log_dirty=0` and `balloon.release_again=0` turn these off,
//! for the boot test that shows what happens without them.

use super::recent::PfnRuns;
use crate::cmdline::Cmdline;
use crate::kprintln;
use alloc::vec::Vec;
use core::ops::Range;
use hypercall::Pfn;
use platform::pv::held::{self, Held};
use spin::Mutex;

/// Pfns populated since the last suspend.
static POPULATED: Mutex<PfnRuns> = Mutex::new(PfnRuns::new());
/// Pfns given back since the last suspend.
static GAVE_BACK: Mutex<PfnRuns> = Mutex::new(PfnRuns::new());
/// `balloon.check=1`: frames stamped since the last suspend.
static STAMPED: Mutex<Vec<Held>> = Mutex::new(Vec::new());

fn setting(key: &str, default: u64) -> u64 {
    Cmdline::new(platform::cmdline()).number(key).unwrap_or(default)
}

/// The stamp of word `w` of frame `pfn` (splitmix64: no frame Xen hands
/// out, zeroed or all ones, looks like it).
fn stamp(pfn: Pfn, w: usize) -> u64 {
    let mut z = (pfn.0 << 9 | w as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The balloon populated `pfns` (`all`: every one of them; otherwise
/// some, which the P2M says).
pub(super) fn populated(pfns: Range<Pfn>, all: bool) {
    POPULATED.lock().insert(pfns.clone());
    GAVE_BACK.lock().remove(pfns.clone());
    if !all || setting("balloon.check", 0) == 0 {
        return;
    }
    match held::take(pfns.clone()) {
        Some(mut h) => {
            h.fill(stamp);
            kprintln!(
                "balloon: check: stamped {} pages ballooned in (pfns {:#x}-{:#x})",
                pfns.end - pfns.start,
                pfns.start.0,
                pfns.end.0 - 1
            );
            STAMPED.lock().push(h);
        }
        None => kprintln!(
            "balloon: check: pfns {:#x}-{:#x} are not all free; not stamped",
            pfns.start.0,
            pfns.end.0 - 1
        ),
    }
}

/// The balloon gave `pfns` back.
pub(super) fn gave_back(pfns: Range<Pfn>) {
    POPULATED.lock().remove(pfns.clone());
    GAVE_BACK.lock().insert(pfns);
}

/// Just before the suspend hypercall (secondary vCPUs down): has Xen log
/// every page ballooned in since the last suspend.
pub fn before_suspend() {
    let populated = POPULATED.lock().clone();
    if populated.pages() == 0 {
        return;
    }
    if setting("balloon.log_dirty", 1) == 0 {
        kprintln!(
            "balloon: suspend: {} pages ballooned in since the last suspend NOT logged (balloon.log_dirty=0)",
            populated.pages()
        );
        return;
    }
    let t0 = platform::now_ns();
    let mut total = platform::log_dirty::Marked::default();
    for run in populated.iter() {
        match platform::log_dirty::mark(run) {
            Ok(m) => {
                total.pages += m.pages;
                total.holes += m.holes;
                total.refused += m.refused;
                total.first_refusal = total.first_refusal.or(m.first_refusal);
            }
            Err(e) => kprintln!("balloon: suspend: Xen refused to log pages: {e}"),
        }
    }
    let us = platform::now_ns().saturating_sub(t0) / 1000;
    kprintln!(
        "balloon: suspend: had Xen log {} pages ballooned in since the last suspend ({} holes skipped, {} refused{}) in {us} us",
        total.pages,
        total.holes,
        total.refused,
        match total.first_refusal {
            Some((pfn, st)) => alloc::format!(", first pfn {:#x} status {st}", pfn.0),
            None => alloc::string::String::new(),
        }
    );
}

/// After the suspend, whatever came of it: the next suspend logs only
/// what is ballooned in from now on; in a new domain, the pages given
/// back since the last suspend are given back again where the new
/// domain holds them; stamped frames are read back and given to the
/// allocator (kept out of it if any differs).
pub fn after_suspend(new_domain: bool) {
    POPULATED.lock().clear();
    let gave_back = core::mem::take(&mut *GAVE_BACK.lock());
    if new_domain && gave_back.pages() > 0 {
        give_back_again(&gave_back);
    }
    let stamped = core::mem::take(&mut *STAMPED.lock());
    if stamped.is_empty() {
        return;
    }
    let place = if new_domain { "in the new domain" } else { "after the cancelled suspend" };
    let (mut pages, mut bad, mut first) = (0, 0, None);
    let results: Vec<(Held, held::Verified)> = stamped
        .into_iter()
        .map(|h| {
            let v = h.verify(stamp);
            (h, v)
        })
        .collect();
    for (_, v) in &results {
        pages += v.pages;
        bad += v.bad;
        first = first.or(v.first_bad);
    }
    if bad == 0 {
        kprintln!("balloon: check: {pages} pages ballooned in before the suspend read back intact {place}");
    } else if let Some((pfn, w, got, want)) = first {
        kprintln!(
            "balloon: check: {bad} of {pages} pages ballooned in before the suspend read back WRONG {place} (first: pfn {:#x} word {w}: read {got:#x}, stamped {want:#x}); they stay out of the allocator",
            pfn.0
        );
    }
    for (h, v) in results {
        let range = h.range();
        if v.bad > 0 {
            let _ = h.keep();
        } else if let Err(e) = h.release() {
            kprintln!(
                "balloon: check: pfns {:#x}-{:#x} stay out of the allocator: {e:?}",
                range.start.0,
                range.end.0 - 1
            );
        }
    }
}

/// In a new domain: the pages given back since the last suspend may have
/// been sent by round 1 of a live migration before they were given back,
/// and the new domain then holds them (`platform::pvh::give_back_again`).
/// Under PV the guest does not know the frames a stale pfn would hold (its
/// P2M says hole), and there is no live migration of PV guests here.
fn give_back_again(runs: &PfnRuns) {
    if !platform::is_pvh() {
        return;
    }
    if setting("balloon.release_again", 1) == 0 {
        kprintln!(
            "balloon: resume: {} pages given back since the last suspend NOT given back again (balloon.release_again=0)",
            runs.pages()
        );
        return;
    }
    let t0 = platform::now_ns();
    let mut taken = 0;
    for run in runs.iter() {
        match platform::pvh::give_back_again(run) {
            Ok(n) => taken += n,
            Err(e) => {
                kprintln!("balloon: resume: giving pages back again: Xen refused: {e}");
                break;
            }
        }
    }
    let us = platform::now_ns().saturating_sub(t0) / 1000;
    kprintln!(
        "balloon: resume: the new domain held {taken} of the {} pages given back since the last suspend; given back again in {us} us",
        runs.pages()
    );
}
