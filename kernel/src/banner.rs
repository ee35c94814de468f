//! The boot banner: what Xen this is, what it gave us, what runs next.

use crate::cmdline::Cmdline;
use crate::fmtbuf::FmtBuf;
use crate::kprintln;
use crate::time::{wallclock_base, PvClock, Utc};
use core::fmt::Write;
use hypercall::abi::start_info::sif;
use hypercall::abi::version::FEATURE_NAMES;
use hypercall::ops::version;
use hypercall::raw::hypercall_page_addr;

pub fn print(cmd: &Cmdline<'_>) {
    let si = platform::start_info();
    let (major, minor) = version::version();
    let extra = version::extraversion().map(|s| s.0).unwrap_or_default();
    let extra = hypercall::abi::start_info::c_str(&extra);

    kprintln!();
    kprintln!("RustPV {} - a Xen PV guest kernel in Rust", env!("CARGO_PKG_VERSION"));
    kprintln!("Xen {major}.{minor}{extra}");
    match version::capabilities() {
        Ok(caps) => kprintln!("  capabilities: {caps}"),
        Err(e) => kprintln!("  capabilities: unavailable ({e})"),
    }
    if let Ok(info) = version::compile_info() {
        kprintln!(
            "  built by {}@{} on {} with {}",
            hypercall::abi::start_info::c_str(&info.compile_by),
            hypercall::abi::start_info::c_str(&info.compile_domain),
            hypercall::abi::start_info::c_str(&info.compile_date),
            hypercall::abi::start_info::c_str(&info.compiler)
        );
    }
    if let Ok(cs) = version::changeset() {
        kprintln!("  changeset: {cs}");
    }
    let mut feats = FmtBuf::<512>::new();
    match version::features(0) {
        Ok(map) => {
            for (bit, name) in FEATURE_NAMES {
                if map & (1 << bit) != 0 {
                    let _ = write!(feats, " {name}");
                }
            }
            kprintln!("  features: {map:#x}{feats}");
        }
        Err(e) => kprintln!("  features: unavailable ({e})"),
    }
    match version::virt_start() {
        // Xen 4.18 on tells an HVM container (PVH) 0: no hole of Xen's in
        // its address space.
        Ok(0) => kprintln!("  hypervisor hole: none in this address space"),
        Ok(vs) => kprintln!("  hypervisor hole starts at {vs:#x}"),
        Err(_) => {}
    }

    let mut flags = FmtBuf::<128>::new();
    for (bit, name) in [
        (sif::PRIVILEGED, "privileged"),
        (sif::INITDOMAIN, "initdomain"),
        (sif::MULTIBOOT_MOD, "multiboot-mod"),
        (sif::MOD_START_PFN, "mod-start-pfn"),
        (sif::VIRT_P2M_4TOOLS, "virt-p2m-4tools"),
    ] {
        if si.flags & bit != 0 {
            let _ = write!(flags, " {name}");
        }
    }
    let (store_mfn, store_port) = si.store();
    let (con_mfn, con_port) = si.console.domu();
    kprintln!("start_info: {}", si.magic_str());
    kprintln!("  memory: {} pages ({} MiB)", si.nr_pages, si.nr_pages * 4096 / (1 << 20));
    kprintln!("  flags: {:#x}{}", si.flags, flags);
    kprintln!("  shared_info at machine address {:#x}", si.shared_info);
    if si.is_initial_domain() {
        kprintln!("  initial domain: console on Xen's console_io, no XenStore");
    } else {
        kprintln!("  xenstore: mfn {store_mfn} evtchn {store_port}");
        kprintln!("  console: mfn {con_mfn} evtchn {con_port}");
    }
    kprintln!("  page tables: {:#x}, {} frames", si.pt_base, si.nr_pt_frames);
    kprintln!("  p2m list: {:#x}", si.mfn_list);
    if si.mod_len != 0 {
        kprintln!("  module: {:#x}, {} bytes", si.mod_start, si.mod_len);
    }
    kprintln!("  cmdline: {:?}", cmd.raw());

    let (start, end) = platform::image_range();
    kprintln!(
        "image: {start:#x}..{end:#x} ({} KiB), hypercall page at {:#x}",
        (end - start) / 1024,
        hypercall_page_addr()
    );
    let clock = PvClock::read(&platform::vcpu_info().time);
    let (wc_sec, _) = wallclock_base(platform::shared_info());
    let now = wc_sec + platform::now_ns() / 1_000_000_000;
    kprintln!(
        "clock: TSC {} MHz, system time {} ms, wall clock {}",
        clock.tsc_hz() / 1_000_000,
        platform::now_ns() / 1_000_000,
        Utc::from_unix(now)
    );
}
