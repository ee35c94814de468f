//! What the domain builder handed over is consistent.

use super::{fail, note, Suite};
use core::sync::atomic::Ordering;
use hypercall::abi::start_info::sif;
use hypercall::{Mfn, Pfn, PAGE_SIZE};

pub fn run(s: &mut Suite) {
    if platform::is_pvh() {
        return run_pvh(s);
    }
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

/// PVH: `hvm_start_info` and the HVM parameters stand where `start_info`
/// stands for PV; the checks are their equivalents.
fn run_pvh(s: &mut Suite) {
    use hypercall::abi::hvm::{memmap_type, START_MAGIC_VALUE};
    let si = platform::pv::start_info();
    let Some(hsi) = platform::pvh::hvm_start_info() else {
        s.check("hvm_start_info.present", |d| fail!(d, "PVH without hvm_start_info"));
        return;
    };

    s.check("hvm_start_info.magic", |d| {
        note!(d, "{:#x}, version {}", hsi.magic, hsi.version);
        hsi.magic == START_MAGIC_VALUE && hsi.version >= 1
    });

    s.check("hvm_start_info.memory_map", |d| {
        let map = platform::pvh::memmap();
        let ram: u64 = map.iter().filter(|e| e.type_ == memmap_type::RAM).map(|e| e.size).sum();
        note!(d, "{} entries, {} MiB RAM, nr_pages {}", map.len(), ram >> 20, si.nr_pages);
        !map.is_empty()
            && si.nr_pages >= 256
            && platform::pv::p2m().len() as u64 == si.nr_pages
            && ram >= si.nr_pages * PAGE_SIZE as u64 / 2
    });

    s.check("start_info.flags", |d| {
        note!(d, "{:#x}", hsi.flags);
        let init = si.flags & sif::INITDOMAIN != 0;
        let privileged = si.flags & sif::PRIVILEGED != 0;
        init == privileged
    });

    s.check("p2m.is_identity", |d| {
        // GFN = PFN: every RAM frame is its own "machine" frame.
        let (mut ram, mut holes) = (0, 0);
        for (pfn, entry) in platform::pv::p2m().iter().enumerate() {
            match entry.load(Ordering::Relaxed) {
                u64::MAX => holes += 1,
                m if m == pfn as u64 && platform::pv::mfn_to_pfn(Mfn(m)) == Some(Pfn(m)) => {
                    ram += 1
                }
                m => fail!(d, "pfn {pfn:#x} -> {m:#x}"),
            }
        }
        note!(d, "{ram} frames map themselves, {holes} holes");
        ram > 0
    });

    s.check("hvm_params.console_and_store_are_special_pages", |d| {
        // The rings are pages of the domain outside its RAM, in a region
        // the memory map reserves.
        for (what, mfn) in [("console", si.console.domu().0), ("store", si.store().0)] {
            let addr = mfn.0 * PAGE_SIZE as u64;
            let reserved = platform::pvh::memmap().iter().any(|e| {
                e.type_ == memmap_type::RESERVED && (e.addr..e.addr + e.size).contains(&addr)
            });
            if mfn.0 < si.nr_pages || !reserved {
                fail!(d, "{what} gfn {mfn} is not in a reserved region above RAM");
            }
            note!(d, "{what} gfn {mfn}; ");
        }
        true
    });

    s.check("pvh.long_mode_paging", |d| {
        let (cr0, cr4, efer) = platform::pvh::paging_registers();
        let root = platform::pv::mm::root();
        note!(d, "cr0 {cr0:#x} cr4 {cr4:#x} efer {efer:#x}, root table at gfn {root}");
        let image = platform::pv::image_range();
        let root_va = root.0 as usize * PAGE_SIZE;
        cr0 & (1 << 31) != 0
            && cr4 & (1 << 5) != 0
            && efer & (1 << 10) != 0
            && (image.0..image.1).contains(&root_va)
    });

    s.check("start_info.shared_info_mapped", |d| {
        let v = platform::vcpu_info();
        let version = v.time.version.load(Ordering::Relaxed);
        let off = platform::pvh::interrupts_off_at_entry();
        note!(
            d,
            "gfn {:#x} (XENMEM_add_to_physmap), interrupts off at entry {off}, time version {version}",
            si.shared_info / PAGE_SIZE as u64
        );
        si.shared_info.is_multiple_of(PAGE_SIZE as u64) && off && version != 0
    });

    s.check("start_info.cmdline", |d| {
        note!(d, "{:?}", si.cmdline());
        si.cmdline().split_ascii_whitespace().any(|w| w == "app=selftest")
    });
}
