//! Step 1: sensitive but unprivileged instructions run by the
//! de-privileged kernel without trapping, and privileged ones that trap
//! to Xen, which emulates them or reflects the fault; all timed against a
//! hypercall (docs/virtualizability.md).

use super::{evidence, median_cycles, say, Shown, StepResult};
use alloc::format;
use alloc::string::String;
use kernel::events::IrqGuard;
use platform::probe::{self, Outcome, Probe};

const STEP: &str = "virt";

/// `cr0` bits `smsw` shows.
fn cr0_bits(v: u64) -> String {
    let names = [(1, "PE"), (2, "MP"), (4, "EM"), (8, "TS"), (0x10, "ET"), (0x20, "NE")];
    let mut s = String::new();
    for (bit, n) in names {
        if v & bit != 0 {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(n);
        }
    }
    s
}

fn what(p: Probe, o: &Outcome, smsw: u64) -> String {
    if let Some(f) = o.fault {
        let name = kernel::fault::vector_name(f.vector);
        return format!(
            "{name} (vector {}, error code {:#x}) reflected by Xen into our trap table; the kernel recorded it and went on",
            f.vector, f.error_code
        );
    }
    if platform::is_pvh() {
        return pvh_what(p, o);
    }
    match p {
        Probe::Smsw => format!("{:#06x} = {}: the machine's cr0, not one this guest set", o.value, cr0_bits(o.value)),
        Probe::Sgdt => format!(
            "base {:#x} limit {:#x}: Xen's GDT (above 0xffff800000000000, Xen's part of the address space); this guest never loaded one",
            o.value, o.limit
        ),
        Probe::Sidt => format!(
            "base {:#x} limit {:#x}: Xen's IDT; this guest's trap table went to Xen by hypercall (set_trap_table)",
            o.value, o.limit
        ),
        Probe::Str => format!("{:#x}: Xen's task state segment", o.value),
        Probe::ReadCs => format!("{:#x}: ring {} (the low two bits): the kernel is not in ring 0", o.value, o.value & 3),
        Probe::Pushf => format!("rflags {:#x}, IF={}", o.value, (o.value >> 9) & 1),
        Probe::PopfClearIf => format!(
            "rflags {:#x}, IF={}: the CPU ignored the change without a fault, so Xen could not emulate it",
            o.value,
            (o.value >> 9) & 1
        ),
        Probe::ReadCr0 => format!(
            "{:#x}: Xen emulated the read (smsw saw {:#06x} without asking Xen)",
            o.value, smsw
        ),
        Probe::ReadCr3 => {
            let mfn = o.value >> 12;
            let root = platform::pv::mm::root().0;
            format!(
                "{:#x}: Xen emulated the read: machine frame {mfn:#x} holds our L4 table (the platform's root: {root:#x}{})",
                o.value,
                if mfn == root { ", the same" } else { ", DIFFERENT" }
            )
        }
        _ => format!("{:#x}: it ran, without a fault", o.value),
    }
}

/// Under PVH the same instructions run in the guest's own ring 0 of a
/// hardware-virtualized container: they show the guest's own state.
fn pvh_what(p: Probe, o: &Outcome) -> String {
    match p {
        Probe::Smsw => format!(
            "{:#06x} = {}: this guest's own cr0 (hardware virtualization keeps one per guest)",
            o.value,
            cr0_bits(o.value)
        ),
        Probe::Sgdt => format!(
            "base {:#x} limit {:#x}: this guest's own GDT, loaded at its PVH entry",
            o.value, o.limit
        ),
        Probe::Sidt => format!("base {:#x} limit {:#x}: this guest's own IDT", o.value, o.limit),
        Probe::Str => format!("{:#x}: this guest loaded no task register", o.value),
        Probe::ReadCs => format!(
            "{:#x}: ring {}: the guest has a ring 0 of its own under VT-x/AMD-V",
            o.value,
            o.value & 3
        ),
        Probe::Pushf | Probe::PopfClearIf => format!(
            "rflags {:#x}, IF={}: the real flag, which this guest clears with cli",
            o.value,
            (o.value >> 9) & 1
        ),
        _ => format!("{:#x}", o.value),
    }
}

pub fn run() -> StepResult {
    say!("x86 has sensitive instructions (they read or change state only the hypervisor");
    say!("should own) that are not privileged: the CPU runs them in any ring without a");
    say!("fault. Popek and Goldberg's condition for trap-and-emulate is that every");
    say!("sensitive instruction traps; on x86 before VT-x/AMD-V these do not. A 64-bit PV");
    say!("kernel runs in ring 3, so it can watch it happen:");
    let pvh = platform::is_pvh();
    if pvh {
        say!("(PVH: this kernel runs in ring 0 of a hardware-virtualized container; the");
        say!("privileged instructions would really run, so they are not tried here)");
    }
    let smsw = probe::run(Probe::Smsw).map(|o| o.value).unwrap_or(0);
    let hypercall = median_cycles(200, || {
        let _ = hypercall::ops::version::version();
    });
    let mut worst = String::new();
    for p in Probe::ALL {
        let o = if p == Probe::Pushf {
            // The guest's "cli": mask upcalls, then look at IF.
            let _masked = IrqGuard::new();
            let mask = platform::vcpu_info()
                .evtchn_upcall_mask
                .load(core::sync::atomic::Ordering::Relaxed);
            let o = probe::run(p);
            if let Ok(o) = &o {
                let if_flag = (o.value >> 9) & 1;
                if platform::is_pvh() {
                    evidence!(STEP, "events masked with a real cli (PVH): pushf says IF={if_flag}");
                } else {
                    evidence!(STEP, "upcall mask {mask} (events off, the guest's cli); pushf still says IF={if_flag}");
                }
            }
            o
        } else {
            probe::run(p)
        };
        let o = match o {
            Ok(o) => o,
            Err(_) => {
                evidence!(STEP, "{}: not tried under PVH", p.insn());
                continue;
            }
        };
        let n = if o.fault.is_some() { 50 } else { 200 };
        let cycles = median_cycles(n, || {
            let _ = probe::run(p);
        });
        let kind = match (p.privileged(), o.fault) {
            (false, None) => "sensitive, unprivileged: no trap",
            (false, Some(_)) => "sensitive: TRAPPED (UMIP is on for this CPU)",
            (true, None) => "privileged: trapped, emulated by Xen",
            (true, Some(_)) => "privileged: trapped, refused by Xen, survived",
        };
        evidence!(STEP, "{:<24} {kind}; {cycles} cycles: {}", p.insn(), what(p, &o, smsw));
        if p == Probe::Hlt && o.fault.is_some() {
            worst = format!("{cycles}");
        }
    }
    evidence!(STEP, "a hypercall (xen_version) for comparison: {hypercall} cycles");
    say!("An instruction that does not trap costs what it costs natively and Xen never");
    say!("learns of it; one that traps costs a round trip through Xen (and for a fault,");
    say!(
        "a second one back through the guest's handler and HYPERVISOR_iret{}),",
        if worst.is_empty() { String::new() } else { format!(", {worst} cycles for hlt") }
    );
    say!("more than asking Xen directly with a hypercall. The answers: binary translation");
    say!("(rewrite such instructions before they run), paravirtualization (this kernel");
    say!("never relies on them: it asks Xen), and hardware support (VT-x/AMD-V: a guest");
    say!("ring 0 where every sensitive instruction can be made to exit).");
    Ok(Shown::Shown)
}
