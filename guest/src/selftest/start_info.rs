//! What the domain builder handed over is consistent.

use super::{fail, note, Suite};
use core::sync::atomic::Ordering;
use hypercall::abi::start_info::sif;
use hypercall::{Mfn, Pfn, PAGE_SIZE};

pub fn run(s: &mut Suite) {
    let si = platform::pv::start_info();

    s.check("start_info.magic", |d| {
        note!(d, "{}", si.magic_str());
        si.magic_str() == "xen-3.0-x86_64"
    });

    s.check("start_info.nr_pages", |d| {
        note!(d, "{} pages = {} MiB", si.nr_pages, (si.nr_pages as usize * PAGE_SIZE) >> 20);
        si.nr_pages >= 256 && platform::pv::p2m().len() as u64 >= si.nr_pages
    });

    s.check("start_info.flags", |d| {
        note!(d, "{:#x}", si.flags);
        // A domU has neither flag; the initial domain has both.
        let init = si.flags & sif::INITDOMAIN != 0;
        let privileged = si.flags & sif::PRIVILEGED != 0;
        init == privileged
    });

    s.check("start_info.p2m_and_m2p_agree", |d| {
        let p2m = platform::pv::p2m();
        let mut holes = 0;
        for (pfn, entry) in p2m.iter().enumerate() {
            let mfn = Mfn(entry.load(Ordering::Relaxed));
            // Past the boot size (up to the maximum reservation) the P2M
            // has holes: pfns without a frame yet.
            if mfn.0 == hypercall::abi::memory::INVALID_P2M_ENTRY && pfn as u64 >= si.nr_pages {
                holes += 1;
                continue;
            }
            match platform::pv::mfn_to_pfn(mfn) {
                Some(back) if back == Pfn(pfn as u64) => {}
                other => fail!(d, "pfn {pfn:#x} -> {mfn} -> {other:?}"),
            }
        }
        note!(d, "{} frames, {holes} holes past the boot size", p2m.len() - holes);
        holes == p2m.len() - si.nr_pages as usize
    });

    s.check("start_info.console_and_store_frames_are_ours", |d| {
        if si.is_initial_domain() {
            note!(d, "skipped in dom0");
            return true;
        }
        for (what, mfn) in [("console", si.console.domu().0), ("store", si.store().0)] {
            let pfn = platform::pv::mfn_to_pfn(mfn);
            match pfn.and_then(platform::pv::pfn_to_mfn) {
                Some(back) if back == mfn => {
                    note!(d, "{what} {mfn} = pfn {}; ", pfn.unwrap_or_default())
                }
                other => fail!(d, "{what} {mfn}: pfn {pfn:?} maps back to {other:?}"),
            }
        }
        true
    });

    s.check("start_info.page_tables", |d| {
        let base = platform::pv::pfn_to_virt(Pfn(0)) as u64;
        let end = platform::pv::pfn_to_virt(Pfn(si.nr_pages)) as u64;
        note!(d, "pt_base {:#x}, {} frames", si.pt_base, si.nr_pt_frames);
        si.pt_base.is_multiple_of(PAGE_SIZE as u64)
            && (base..end).contains(&si.pt_base)
            && si.nr_pt_frames >= 4
    });

    s.check("start_info.shared_info_mapped", |d| {
        let v = platform::vcpu_info();
        let mask = platform::pv::upcall_mask_at_entry();
        let version = v.time.version.load(Ordering::Relaxed);
        note!(
            d,
            "machine {:#x}, upcall mask at entry {mask}, time version {version}",
            si.shared_info
        );
        // Upcalls stay masked until the guest installs a handler.
        si.shared_info.is_multiple_of(PAGE_SIZE as u64) && mask == 1
    });

    s.check("start_info.cmdline", |d| {
        note!(d, "{:?}", si.cmdline());
        si.cmdline().split_ascii_whitespace().any(|w| w == "app=selftest")
    });
}
