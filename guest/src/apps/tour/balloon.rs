//! Step 8: ballooning: hand pages back to Xen and take them back, and the
//! toolstack's control path to it (docs/balloon.md).

use super::{evidence, say, Shown, StepResult};
use alloc::format;
use hypercall::Pfn;
use kernel::xenbus;
use xenstore_client::Store;

const STEP: &str = "balloon";
/// Pages the tour gives back: 1 MiB.
const PAGES: u64 = 256;

fn mfn_of(p: Pfn) -> alloc::string::String {
    if platform::is_pvh() {
        return "(PVH: no P2M)".into();
    }
    match platform::pv::pfn_to_mfn(p) {
        Some(m) if m.0 != hypercall::abi::memory::INVALID_P2M_ENTRY => format!("mfn {:#x}", m.0),
        _ => "no frame (INVALID_P2M_ENTRY)".into(),
    }
}

pub fn run() -> StepResult {
    say!("A native kernel has the RAM the machine has. A guest's memory is a");
    say!("reservation it can shrink or grow while running: the balloon driver frees");
    say!("pages inside the guest and hands their frames back to Xen");
    say!("(XENMEM_decrease_reservation), or asks for frames again (populate_physmap).");
    let target = xenbus::with(|bus| bus.xs.read_string("memory/target").ok()).flatten();
    let max = xenbus::with(|bus| bus.xs.read_string("memory/static-max").ok()).flatten();
    evidence!(STEP, "the toolstack's control path: memory/target = {:?} KiB, memory/static-max = {:?} KiB (xl mem-set writes the target; app=idle follows it)", target.unwrap_or_default(), max.unwrap_or_default());
    let before =
        platform::current_reservation().map_err(|e| format!("current_reservation: {e}"))?;
    let holes = platform::balloon_out(PAGES).map_err(|e| format!("balloon out: {e}"))?;
    let r = holes.range();
    let during =
        platform::current_reservation().map_err(|e| format!("current_reservation: {e}"))?;
    evidence!(
        STEP,
        "ballooned out {} pages: pfns {:#x}..{:#x}; pfn {:#x} now has {}; Xen's count of our pages {before} -> {during}",
        holes.count(),
        r.start.0,
        r.end.0,
        r.start.0,
        mfn_of(r.start)
    );
    let first = r.start;
    platform::balloon_in(holes).map_err(|(e, _)| format!("balloon in: {e}"))?;
    let after = platform::current_reservation().map_err(|e| format!("current_reservation: {e}"))?;
    evidence!(STEP, "ballooned the {PAGES} pages back in: pfn {:#x} has {} (a frame Xen chose now); Xen's count {after}", first.0, mfn_of(first));
    if during + PAGES != before || after != before {
        return Err(format!(
            "reservation {before} -> {during} -> {after}, expected -{PAGES} then back"
        ));
    }
    say!("Xen counts pages, not addresses: the guest decides which pfns become holes and");
    say!("keeps them out of its allocator until it gets frames for them again.");
    Ok(Shown::Shown)
}
