//! Step 3: pseudo-physical and machine frames (P2M, M2P), page tables
//! the guest may read but not write, `mmu_update` and pinning
//! (docs/memory.md). Under PVH the same questions have the hardware's
//! answers: guest frames translated by Xen's nested page table, page
//! tables the guest writes itself, a PTE store and `invlpg` instead of
//! `mmu_update` (docs/pvh.md).

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
        return pvh();
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

/// The PVH form of the step: the same page, the same questions.
fn pvh() -> StepResult {
    say!("A native kernel owns physical memory and its page tables. Under PVH this");
    say!("guest runs in a hardware container: its 'physical' frames are guest frames");
    say!("(GFNs), and a second page table that Xen owns (AMD NPT, Intel EPT) maps each");
    say!("to a machine frame the guest never sees. So there is no P2M to keep: GFN = PFN.");
    let page = SharedPages::new(1).ok_or("no memory for a page")?;
    let va = VirtAddr(page.words().as_ptr() as u64);
    let pfn = mm::direct_map().pfn(va).ok_or("the page is not in the direct map")?;
    let p2m = platform::pv::pfn_to_mfn(pfn).ok_or("the page has no frame in the P2M table")?;
    let pte = mm::lookup(va).ok_or("no PTE for the page")?;
    evidence!(
        STEP,
        "a heap page at va {:#x}: pfn {:#x}; its page-table entry {:#x} holds frame {:#x}, writable {}; the kernel's P2M table says pfn {:#x} -> {:#x} (the identity: PTEs hold guest frames)",
        va.0,
        pfn.0,
        pte.0,
        pte.mfn().0,
        pte.writable(),
        pfn.0,
        p2m.0
    );
    if pte.mfn().0 != pfn.0 || p2m.0 != pfn.0 {
        return Err(format!(
            "GFN != PFN: pfn {:#x}, PTE frame {:#x}, P2M {:#x}",
            pfn.0,
            pte.mfn().0,
            p2m.0
        ));
    }

    say!("The page tables are ordinary pages of the guest, mapped writable: Xen checks");
    say!("nothing, because the nested table already confines every translation.");
    let root = mm::root();
    let root_va = mm::direct_map().virt(hypercall::Pfn(root.0));
    let root_pte = mm::lookup(root_va);
    evidence!(
        STEP,
        "the L4 (root) table (CR3) is guest frame {:#x}, mapped at {:#x} {}",
        root.0,
        root_va.0,
        match root_pte {
            Some(p) if p.writable() => "writable",
            Some(_) => "READ-ONLY",
            None => "(unmapped)",
        }
    );
    let before = mm::hypercalls();
    let (read, written, restored) =
        mm::scratch_round_trip().map_err(|e| format!("PTE write: {e}"))?;
    let reload = platform::pvh::bench::cr3_reload();
    let hc = mm::hypercalls() - before;
    evidence!(
        STEP,
        "a native page-table update: PTE store + invlpg remapped a scratch page: read through the new mapping {read}; write seen through the direct map {written}; mapped back {restored}; a CR3 reload (a context switch's TLB flush) kept the root {reload}; page-table hypercalls {hc}"
    );
    say!("Nothing here left the guest: with nested paging neither the PTE store, the");
    say!("invlpg nor the CR3 load exits to Xen (under shadow paging, hap = 0, each would).");
    drop(page);
    if !(read && written && restored && reload && hc == 0) {
        return Err("the native page-table update did not behave".into());
    }
    Ok(Shown::Shown)
}
