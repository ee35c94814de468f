//! Step 3: pseudo-physical and machine frames (P2M, M2P), page tables
//! the guest may read but not write, `mmu_update` and pinning
//! (docs/memory.md).

use super::{evidence, say, Shown, StepResult};
use alloc::format;
use hypercall::Pfn;
use platform::memory::layout::VirtAddr;
use platform::pv::mm;
use platform::shared_pages::SharedPages;
use pv_drivers::env::PageSet;

const STEP: &str = "memory";

pub fn run() -> StepResult {
    if platform::is_pvh() {
        say!("PVH: the hardware translates guest frames (nested paging); there is no P2M");
        say!("and the guest writes its own page tables. See docs/pvh.md.");
        return Ok(Shown::Skipped("PVH has no P2M or PV page tables"));
    }
    say!("A native kernel owns physical memory. This guest sees pseudo-physical frames");
    say!("(pfns, 0..N, contiguous); the machine frames (mfns) behind them are wherever");
    say!("Xen found them. The guest keeps the P2M (pfn -> mfn); Xen keeps the M2P");
    say!("(mfn -> pfn) for every domain.");
    let page = SharedPages::new(1).ok_or("no memory for a page")?;
    let va = VirtAddr(page.words().as_ptr() as u64);
    let pfn = mm::direct_map().pfn(va).ok_or("the page is not in the direct map")?;
    let mfn = platform::pv::pfn_to_mfn(pfn).ok_or("the page has no machine frame")?;
    let back = platform::pv::mfn_to_pfn(mfn);
    evidence!(
        STEP,
        "a heap page at va {:#x}: pfn {:#x} -> P2M -> mfn {:#x} -> M2P -> pfn {:#x}",
        va.0,
        pfn.0,
        mfn.0,
        back.map_or(u64::MAX, |p| p.0)
    );
    let neighbour = platform::pv::pfn_to_mfn(Pfn(pfn.0 + 1));
    evidence!(
        STEP,
        "the next pfn {:#x} is mfn {:#x}: contiguous pfns need not be contiguous mfns",
        pfn.0 + 1,
        neighbour.map_or(0, |m| m.0)
    );
    let pte = mm::lookup(va).ok_or("no PTE for the page")?;
    evidence!(
        STEP,
        "its page-table entry {:#x}: mfn {:#x}, writable {} (PTEs hold machine frames)",
        pte.0,
        pte.mfn().0,
        pte.writable()
    );

    say!("The page tables themselves are machine frames the guest may map only");
    say!("read-only: Xen validates every change, made with mmu_update.");
    let root = mm::root();
    let root_va = platform::pv::mfn_to_pfn(root).map(|p| mm::direct_map().virt(p));
    let root_pte = root_va.and_then(mm::lookup);
    evidence!(
        STEP,
        "the L4 (root) table is mfn {:#x}, mapped at {} {}",
        root.0,
        root_va.map_or("nowhere".into(), |v| format!("{:#x}", v.0)),
        match root_pte {
            Some(p) if !p.writable() => "read-only",
            Some(_) => "WRITABLE",
            None => "(unmapped)",
        }
    );
    match mm::pin_round_trip() {
        Ok((refused, pinned, restored)) => evidence!(
            STEP,
            "pinning a fresh frame as an L1 table: refused while mapped writable: {refused}; after remapping it read-only (mmu_update): pinned {pinned}; undone {restored}"
        ),
        Err(e) => return Err(format!("pin round trip: {e}")),
    }
    let hc = mm::hypercalls();
    evidence!(
        STEP,
        "page-table hypercalls so far (mmu_update, mmuext_op, update_va_mapping): {hc}"
    );
    say!("Building the direct map at boot took a handful of batched mmu_update calls");
    say!("(boot line `memory:`); trace=hypercalls lists them with their first entry.");
    drop(page);
    Ok(Shown::Shown)
}
