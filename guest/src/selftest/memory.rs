//! Memory management on Xen: the direct map covers every page, the guard
//! pages are unmapped, all free memory holds a pattern, the heap works
//! across all memory, pinning follows Xen's rules, and ballooning 4 MiB out
//! and back keeps the reservation, the P2M and the mappings true.

extern crate alloc;

use super::{fail, note, Suite};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use hypercall::abi::memory::INVALID_P2M_ENTRY;
use hypercall::{FrameRange, Pfn, PAGE_SIZE};
use kernel::memory::layout::VirtAddr;
use platform::pv::mm;

const PAGE: u64 = PAGE_SIZE as u64;

pub fn run(s: &mut Suite) {
    s.check("memory.direct_map_built", |d| {
        let i = mm::info();
        let mib = i.layout.map.nr_pages >> 8;
        note!(
            d,
            "{mib} MiB: Xen mapped pfns < {:#x}; the rest took {} ms, {} hypercalls, {} entries, {} new tables ({} made read-only first)",
            i.boot_mapped_end.0,
            i.map_ns / 1_000_000,
            i.map_hypercalls,
            i.stats.entries,
            i.stats.tables,
            i.stats.made_read_only
        );
        i.stats.pages == i.layout.map.nr_pages - i.boot_mapped_end.0
    });

    if platform::is_pvh() {
        // PVH: page 0 (null) and page 1 (the scratch page) are not
        // allocatable; page 0 is unmapped, every other RAM page maps itself.
        s.check("memory.every_pfn_mapped_to_its_frame", |d| {
            let map = mm::direct_map();
            let mut holes = 0;
            for pfn in (1..map.nr_pages).map(Pfn) {
                let va = map.virt(pfn);
                match (mm::lookup(va), platform::pv::pfn_to_mfn(pfn)) {
                    (None, _) if va == mm::info().guard_page => {}
                    (Some(pte), Some(m)) if pte.mfn() == m => {}
                    (_, Some(hypercall::Mfn(u64::MAX))) => holes += 1,
                    (pte, want) => fail!(d, "pfn {pfn}: {pte:?}, P2M says {want:?}"),
                }
            }
            note!(d, "{} pages identity-mapped (GFN = PFN), {holes} holes", map.nr_pages);
            mm::lookup(VirtAddr(0)).is_none()
        });
    } else {
        every_pfn_mapped(s);
    }

    s.check("memory.nothing_mapped_below_virt_base", |d| {
        let base = mm::direct_map().base;
        match mm::first_mapped(VirtAddr(0)..base) {
            None => {
                note!(d, "[0, {base}) unmapped");
                mm::lookup(VirtAddr(0)).is_none()
            }
            Some(va) => fail!(d, "{va} is mapped"),
        }
    });

    s.check("memory.boot_stack_guard_page", |d| {
        let guard = mm::info().guard_page;
        note!(d, "{guard}");
        mm::lookup(guard).is_none() && mm::lookup(guard.add(PAGE)).is_some()
    });

    rest(s);
}

fn every_pfn_mapped(s: &mut Suite) {
    s.check("memory.every_pfn_mapped_to_its_frame", |d| {
        let map = mm::direct_map();
        let image = platform::pv::image_range();
        let (mut read_only, mut shared) = (0, 0);
        for pfn in (0..map.nr_pages).map(Pfn) {
            let want = platform::pv::pfn_to_mfn(pfn);
            let va = map.virt(pfn);
            match mm::lookup(va) {
                Some(pte) if Some(pte.mfn()) == want => read_only += u64::from(!pte.writable()),
                // Image pages that map a frame Xen shares (shared info, ...).
                Some(pte)
                    if (image.0..image.1).contains(&(va.0 as usize))
                        && platform::pv::mfn_to_pfn(pte.mfn()) != Some(pfn) =>
                {
                    shared += 1
                }
                None if va == mm::info().guard_page => {}
                // Past the boot size, up to the maximum reservation: holes.
                None if pfn.0 >= platform::pv::start_info().nr_pages
                    && want == Some(hypercall::Mfn(INVALID_P2M_ENTRY)) => {}
                other => fail!(d, "pfn {pfn}: {other:?}, P2M says {want:?}"),
            }
        }
        if mm::lookup(map.end()).is_some() {
            fail!(d, "the page past the last pfn is mapped");
        }
        note!(
            d,
            "{} pages, {read_only} read-only (page tables), {shared} image pages map Xen's frames",
            map.nr_pages
        );
        true
    });
}

fn rest(s: &mut Suite) {
    s.check("memory.pattern_over_all_free_memory", |d| {
        let t0 = platform::now_ns();
        let pattern = |w: u64| w.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_5A5A;
        match mm::pattern_test(pattern) {
            Ok(bytes) => {
                let (free, _) = mm::free_frames();
                note!(
                    d,
                    "{} MiB written and read back in {} ms ({} MiB free)",
                    bytes >> 20,
                    (platform::now_ns() - t0) / 1_000_000,
                    free >> 8
                );
                // All free frames were covered (short only of 32 runs).
                bytes >= (free * PAGE).saturating_sub(32 * PAGE)
            }
            Err(va) => fail!(d, "mismatch at {va}"),
        }
    });

    s.check("memory.alloc_stress", |d| {
        let (free, _) = mm::free_frames();
        // A quarter of free memory in one Vec, grown by doubling.
        let target = (free * PAGE / 4 / 8) as usize;
        let mut v: Vec<u64> = Vec::new();
        for i in 0..target as u64 {
            v.push(i ^ 0x5555);
        }
        if v.iter().enumerate().any(|(i, &x)| x != i as u64 ^ 0x5555) {
            fail!(d, "Vec contents wrong");
        }
        let big = v.len() * 8;
        drop(v);
        let mut map = BTreeMap::new();
        for i in 0..100_000u64 {
            map.insert(i.wrapping_mul(2_654_435_761) % 1_000_003, Box::new([i; 4]));
        }
        let sum: u64 = map.values().map(|b| b[0]).sum();
        let boxes: Vec<Box<[u8]>> = (0..2000)
            .map(|i| alloc::vec![i as u8; 1 + (i * 37) % 9000].into_boxed_slice())
            .collect();
        let boxes_ok = boxes.iter().enumerate().all(|(i, b)| b.iter().all(|&x| x == i as u8));
        note!(
            d,
            "Vec of {} MiB, BTreeMap of {} entries, 2000 boxes; heap {} MiB",
            big >> 20,
            map.len(),
            mm::heap_bytes() >> 20
        );
        sum == (0..100_000u64).sum::<u64>() && boxes_ok
    });

    s.check("memory.failed_allocation_is_an_error", |d| {
        let (free, _) = mm::free_frames();
        let mut v: Vec<u8> = Vec::new();
        let too_much = (free as usize + 1) * PAGE_SIZE * 2;
        match v.try_reserve_exact(too_much) {
            Err(_) => {
                note!(d, "try_reserve of {} MiB refused", too_much >> 20);
                true
            }
            Ok(()) => fail!(d, "{too_much} bytes granted with {free} frames free"),
        }
    });

    if platform::is_pvh() {
        s.check("memory.native_pte_write", |d| match mm::scratch_round_trip() {
            Ok((read, written, restored)) => {
                note!(
                    d,
                    "PTE write + invlpg: read through the new mapping {read}; write seen through the direct map {written}; mapped back {restored}"
                );
                read && written && restored
            }
            Err(e) => fail!(d, "{e}"),
        });
    } else {
        pin_needs_read_only(s);
    }
    balloon(s);
}

fn pin_needs_read_only(s: &mut Suite) {
    s.check("memory.pin_needs_read_only", |d| match mm::pin_round_trip() {
        Ok((refused, writable_refused, restored)) => {
            note!(
                d,
                "pin while writable refused: {refused}; writable mapping while pinned refused: {writable_refused}; writable again after unpin: {restored}"
            );
            refused && writable_refused && restored
        }
        Err(e) => fail!(d, "{e}"),
    });
}

fn balloon(s: &mut Suite) {
    s.check("memory.balloon_4_mib_out_and_in", |d| {
        let before = match platform::current_reservation() {
            Ok(n) => n,
            Err(e) => fail!(d, "current_reservation: {e}"),
        };
        let pages = 1024;
        let t0 = platform::now_ns();
        let holes = match platform::balloon_out(pages) {
            Ok(h) => h,
            Err(e) => fail!(d, "balloon out: {e}"),
        };
        let pfns = holes.range();
        let during = platform::current_reservation().unwrap_or(0);
        let map = mm::direct_map();
        // PVH keeps its (2 MiB) identity mappings of the holes: Xen's
        // physical map has no frame behind them, which the P2M records.
        let unmapped = pfns.clone().frames().all(|p| {
            (platform::is_pvh() || mm::lookup(map.virt(p)).is_none())
                && platform::pv::pfn_to_mfn(p) == Some(hypercall::Mfn(!0))
        });
        if let Err((e, _)) = platform::balloon_in(holes) {
            fail!(d, "balloon in: {e}");
        }
        let after = platform::current_reservation().unwrap_or(0);
        let remapped = pfns.clone().frames().all(|p| {
            let mfn = platform::pv::pfn_to_mfn(p);
            mm::lookup(map.virt(p)).map(|e| e.mfn()) == mfn
                && mfn.and_then(platform::pv::mfn_to_pfn) == Some(p)
        });
        note!(
            d,
            "pfns {}..{}: reservation {before} -> {during} -> {after} pages in {} ms; holes unmapped: {unmapped}; P2M, M2P and mappings back: {remapped}",
            pfns.start,
            pfns.end,
            (platform::now_ns() - t0) / 1_000_000
        );
        during == before - pages && after == before && unmapped && remapped
    });
}
