//! The suspend of a PVH domain (`xl save`, `xl save -c`, `xl migrate`):
//! simpler than PV's ([`crate::pv::suspend`]). Our page tables hold guest
//! frames, which a restore keeps, and the toolstack reads memory through
//! Xen's own physical map: there is no start-info page to canonicalise,
//! no P2M to publish, and nothing to unmap. Linux does the same in
//! `drivers/xen/manage.c` (`HYPERVISOR_suspend(0)` for HVM guests) and
//! `arch/x86/xen/suspend_hvm.c` (`xen_hvm_post_suspend`).
//!
//! After the call:
//! - cancelled (1: `xl save -c`, a failed migration): the same domain;
//!   the callback vector is named again (as Linux does: harmless, and it
//!   makes sure the toolstack's resume path left it in place);
//! - a new domain (0: restore, migration): Xen's shared info page is not
//!   part of our memory, so the guest frame where we had put it now holds
//!   a copy the toolstack made (or nothing): the page is put back with
//!   `XENMEM_add_to_physmap`. `HVM_PARAM_CALLBACK_IRQ` is not in the
//!   save stream's parameters, so the vector is named again. The console
//!   and XenStore rings stay at their guest frames (the toolstack keeps
//!   `HVM_PARAM_CONSOLE_PFN`/`STORE_PFN`); their event channels are new
//!   and read from `HVM_PARAM_CONSOLE_EVTCHN`/`STORE_EVTCHN`, which the
//!   restoring toolstack sets. Everything else (event channel ABI, ports,
//!   timer, grant frames) is the kernel's, as under PV.
//!
//! `vcpu_info` is the one in shared info (vCPU 0; no
//! `VCPUOP_register_vcpu_info`), so it comes back with the page.

use super::idt;
use crate::pv::suspend::Outcome;
use hypercall::abi::hvm;
use hypercall::ops::{hvm as hvm_op, sched_op};
use hypercall::{EvtchnPort, Mfn, XenError};
use x86_64::instructions::tables::{lgdt, lidt, sgdt, sidt};
use x86_64::structures::DescriptorTablePointer;

/// The GDTR and IDTR are the vCPU's own state, which neither a cancelled
/// suspend (the toolstack rewrites vCPU 0's registers to make the call
/// return 1: `modify_returncode` in libxc's `xg_resume.c`) nor a restore
/// should change. Issues 15/16: a PVH guest triple-faulted just after a
/// cancelled checkpoint, which a table no longer where the GDTR or IDTR
/// says would do at the next interrupt. If they moved, say so and load
/// them again (the upcall is still masked: nothing was delivered yet).
fn check_tables((gdt, idt): (DescriptorTablePointer, DescriptorTablePointer)) {
    let (g, i) = (sgdt(), sidt());
    let same = |a: &DescriptorTablePointer, b: &DescriptorTablePointer| {
        ({ a.base }, { a.limit }) == ({ b.base }, { b.limit })
    };
    if same(&g, &gdt) && same(&i, &idt) {
        return;
    }
    crate::hooks::emergency_print(format_args!(
        "resume: descriptor tables changed across the suspend: GDTR {:#x}/{:#x} -> {:#x}/{:#x}, IDTR {:#x}/{:#x} -> {:#x}/{:#x}; loaded again\n",
        { gdt.base }.as_u64(),
        { gdt.limit },
        { g.base }.as_u64(),
        { g.limit },
        { idt.base }.as_u64(),
        { idt.limit },
        { i.base }.as_u64(),
        { i.limit },
    ));
    // SAFETY: the two pointers are the ones this vCPU had loaded before
    // the suspend, to tables that live for good in the image.
    unsafe {
        lgdt(&gdt);
        lidt(&idt);
    }
}

fn port(param: u32) -> Result<EvtchnPort, XenError> {
    let v = hvm_op::get_param(param)?;
    u32::try_from(v).map(EvtchnPort).map_err(|_| XenError::EINVAL)
}

/// Suspends the domain. Call with interrupts off (the upcall masked), no
/// request to xenstored in flight and the console flushed. `Err` when
/// Xen refused the suspend (nothing changed).
pub fn suspend() -> Result<Outcome, XenError> {
    let tables = (sgdt(), sidt());
    // SAFETY: an HVM container's memory is read by the toolstack through
    // Xen's physical map, whatever our page tables hold; the argument is
    // 0 (no start-info frame: HVM guests have none). After a 0 return the
    // code below rebuilds what lives outside our memory.
    let r = unsafe { sched_op::suspend(Mfn(0)) }?;
    check_tables(tables);
    if r != 0 {
        // Cancelled: the same domain, shared info still in place.
        idt::set_callback()?;
        return Ok(Outcome::Cancelled);
    }
    // A new domain: from here a failure leaves the guest without events
    // (or without its clock), so it ends the domain with a line.
    let fatal = |what: &str, e: XenError| -> ! {
        crate::hooks::emergency_print(format_args!("resume: {what}: Xen refused: {e}\n"));
        crate::shutdown(hypercall::abi::sched::ShutdownReason::Crash)
    };
    if let Err(e) = super::map_shared_info() {
        fatal("cannot put shared info back", e);
    }
    if let Err(e) = idt::set_callback() {
        fatal("cannot name the callback vector again", e);
    }
    let store = port(hvm::param::STORE_EVTCHN).unwrap_or_else(|e| fatal("store port", e));
    let console = port(hvm::param::CONSOLE_EVTCHN).unwrap_or_else(|e| fatal("console port", e));
    Ok(Outcome::Resumed { store, console })
}
