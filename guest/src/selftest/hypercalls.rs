//! Hypercall plumbing, error mapping and `xen_version`.

use super::{fail, note, Suite};
use hypercall::abi::event_channel::stat;
use hypercall::abi::xen::HYPERVISOR_VIRT_START;
use hypercall::ops::{event_channel, memory, sched_op, unimplemented_hypercall, version};
use hypercall::raw::nr;
use hypercall::{DomId, EvtchnPort, XenError};

pub fn run(s: &mut Suite) {
    s.check("hypercall.page_filled", |d| {
        let page = platform::pv::hypercall_page_bytes();
        for n in [nr::XEN_VERSION, nr::CONSOLE_IO, nr::SCHED_OP, nr::EVENT_CHANNEL_OP] {
            let entry = &page[n as usize * 32..n as usize * 32 + 32];
            // Each entry loads its number with `mov $n, %eax` (0xb8 imm32).
            let mut want = [0xb8, 0, 0, 0, 0];
            want[1..].copy_from_slice(&n.to_le_bytes());
            if !entry.windows(5).any(|w| w == want) {
                fail!(d, "entry {n} does not load its number: {:02x?}", &entry[..16]);
            }
        }
        true
    });

    s.check("hypercall.error.unimplemented_is_enosys", |d| match unimplemented_hypercall() {
        Err(XenError::ENOSYS) => true,
        other => fail!(d, "got {other:?}"),
    });

    s.check("hypercall.error.sched_op_unknown_is_enosys", |d| match sched_op::unknown_command() {
        Err(XenError::ENOSYS) => true,
        other => fail!(d, "got {other:?}"),
    });

    s.check("hypercall.error.send_to_invalid_port_is_einval", |d| {
        match event_channel::send(EvtchnPort(0x00ff_ffff)) {
            Err(XenError::EINVAL) => true,
            other => fail!(d, "got {other:?}"),
        }
    });

    s.check("xenver.version", |d| {
        let (major, minor) = version::version();
        note!(d, "{major}.{minor}");
        major >= 4
    });

    s.check("xenver.extraversion", |d| match version::extraversion() {
        Ok(v) => {
            note!(d, "{v:?}");
            true
        }
        Err(e) => fail!(d, "{e}"),
    });

    s.check("xenver.capabilities", |d| match version::capabilities() {
        Ok(c) if c.as_str().split(' ').any(|abi| abi == "xen-3.0-x86_64") => {
            note!(d, "{c}");
            true
        }
        Ok(c) => fail!(d, "no xen-3.0-x86_64 in {c:?}"),
        Err(e) => fail!(d, "{e}"),
    });

    s.check("xenver.pagesize", |d| match version::pagesize() {
        Ok(4096) => true,
        other => fail!(d, "got {other:?}"),
    });

    s.check("xenver.platform_parameters", |d| {
        // The split of the address space is a PV guest's: since Xen 4.18
        // (xen/common/kernel.c) an HVM container (PVH) is told 0; 4.17
        // still gave every guest PV's HYPERVISOR_VIRT_START.
        let ver = version::version();
        let want = if platform::is_pvh() && ver >= (4, 18) { 0 } else { HYPERVISOR_VIRT_START };
        match version::virt_start() {
            Ok(v) if v == want => {
                note!(d, "virt_start {v:#x} (Xen {}.{})", ver.0, ver.1);
                true
            }
            other => fail!(d, "got {other:x?}, want {want:#x} (Xen {}.{})", ver.0, ver.1),
        }
    });

    s.check("xenver.features", |d| match version::features(0) {
        // PVH: Xen translates (auto_translated_physmap, bit 2) and offers
        // the callback vector (hvm_callback_vector, bit 8).
        Ok(map) if platform::is_pvh() => {
            note!(d, "{map:#x}");
            map & (1 << 2) != 0 && map & (1 << 8) != 0
        }
        // A PV guest manages its own P2M: auto_translated_physmap (bit 2) is off.
        Ok(map) if map & (1 << 2) == 0 => {
            note!(d, "{map:#x}");
            true
        }
        Ok(map) => fail!(d, "{map:#x} claims auto-translated physmap"),
        Err(e) => fail!(d, "{e}"),
    });

    s.check("xenver.features_out_of_range", |d| match version::features(1000) {
        Err(XenError::EINVAL) => true,
        other => fail!(d, "got {other:?}"),
    });

    s.check("xenver.compile_info", |d| match version::compile_info() {
        Ok(info) => {
            let compiler = hypercall::abi::start_info::c_str(&info.compiler);
            note!(d, "{compiler}");
            !compiler.is_empty()
        }
        Err(e) => fail!(d, "{e}"),
    });

    s.check("xenver.guest_handle", |d| match version::guest_handle() {
        Ok(uuid) => {
            for b in uuid {
                note!(d, "{b:02x}");
            }
            // The toolstack gives every domU a UUID; dom0's is all zero.
            platform::pv::start_info().is_initial_domain() || uuid != [0; 16]
        }
        Err(e) => fail!(d, "{e}"),
    });

    s.check("sched.yield", |d| match sched_op::yield_now() {
        Ok(()) => true,
        Err(e) => fail!(d, "{e}"),
    });

    s.check("evtchn.status_of_console_and_store", |d| {
        let si = platform::pv::start_info();
        if si.is_initial_domain() {
            note!(d, "skipped in dom0: no console ring or store");
            return true;
        }
        for (what, port) in [("console", si.console.domu().1), ("store", si.store().1)] {
            match event_channel::status(DomId::SELF, port) {
                Ok((stat::INTERDOMAIN, vcpu)) => {
                    note!(d, "{what} port {port} interdomain vcpu {vcpu}; ")
                }
                other => fail!(d, "{what} port {port}: {other:?}"),
            }
        }
        true
    });

    s.check("memory.reservation", |d| {
        let si = platform::pv::start_info();
        let cur = memory::current_reservation(DomId::SELF);
        let max = memory::maximum_reservation(DomId::SELF);
        match (cur, max) {
            (Ok(cur), Ok(max)) => {
                note!(d, "current {cur} pages, maximum {max}, start_info {}", si.nr_pages);
                if platform::is_pvh() {
                    // PVH: the reservation also counts the special pages
                    // (console, store, ...) Xen keeps above RAM.
                    let ram = platform::pv::p2m()
                        .iter()
                        .filter(|e| e.load(core::sync::atomic::Ordering::Relaxed) != u64::MAX)
                        .count() as u64;
                    note!(d, "; {ram} RAM frames");
                    return cur >= ram && cur <= ram + 64 && max >= cur;
                }
                si.is_initial_domain() || (cur == si.nr_pages && max >= cur)
            }
            other => fail!(d, "{other:?}"),
        }
    });
}
