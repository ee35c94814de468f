//! What happens on a CPU exception: a report a person can act on, then the
//! domain ends as crashed. Never a silent hang.

#[cfg(target_os = "none")]
use crate::{console, kprintln};
#[cfg(target_os = "none")]
use core::sync::atomic::{AtomicBool, Ordering};
#[cfg(target_os = "none")]
use hypercall::abi::sched::ShutdownReason;
#[cfg(target_os = "none")]
use platform::TrapFrame;

use platform::trap::VECTOR_FAILSAFE;

/// x86 exception names by vector.
pub fn vector_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range exceeded",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        9 => "coprocessor segment overrun",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack-segment fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating-point error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating-point error",
        VECTOR_FAILSAFE => "failsafe callback (Xen could not load segments)",
        _ => "unknown vector",
    }
}

/// Decodes a page-fault error code.
pub fn page_fault_cause(code: u64) -> (&'static str, &'static str, &'static str) {
    (
        if code & 1 != 0 { "protection violation" } else { "page not present" },
        if code & 16 != 0 {
            "instruction fetch"
        } else if code & 2 != 0 {
            "write"
        } else {
            "read"
        },
        if code & 8 != 0 { "reserved bit set" } else { "" },
    )
}

#[cfg(target_os = "none")]
static REPORTING: AtomicBool = AtomicBool::new(false);

#[cfg(target_os = "none")]
/// Handles an exception; returns only for the debug traps (int3, #DB).
pub fn handle(frame: &mut TrapFrame) {
    if frame.vector == 3 || frame.vector == 1 {
        log::info!("{} at {:#x}", vector_name(frame.vector), frame.rip);
        return;
    }
    if REPORTING.swap(true, Ordering::SeqCst) {
        console::emergency_print(format_args!(
            "\nfault while reporting a fault: {} at rip {:#x}\n",
            vector_name(frame.vector),
            frame.rip
        ));
        platform::shutdown(ShutdownReason::Crash);
    }
    report(frame);
    platform::shutdown(ShutdownReason::Crash);
}

#[cfg(target_os = "none")]
fn report(f: &TrapFrame) {
    kprintln!();
    kprintln!("FATAL: {} (vector {}) at rip {:#018x}", vector_name(f.vector), f.vector, f.rip);
    kprintln!("  error code {:#x}", f.error_code);
    if f.vector == 14 {
        let cr2 = platform::fault_address();
        let (why, access, rsvd) = page_fault_cause(f.error_code);
        let sep = if rsvd.is_empty() { "" } else { ", " };
        kprintln!("  fault address (cr2) {cr2:#018x}: {why} on {access}{sep}{rsvd}");
    }
    if f.vector == 8 {
        // PVH: the double fault runs on its own stack (platform's
        // pvh/tss.rs); most often the CPU could not push a frame on the
        // current one, and cr2 is that push's address if it was a #PF.
        kprintln!(
            "  a fault while delivering a fault or the upcall: the last page fault's address (cr2) {:#018x}; rsp {:#018x} is the stack it was pushing on (in a guard page: a stack overflow)",
            platform::fault_address(),
            f.rsp
        );
    }
    kprintln!(
        "  rip {:#018x} cs {:#06x} rflags {:#010x} rsp {:#018x} ss {:#06x}",
        f.rip,
        f.cs,
        f.rflags,
        f.rsp,
        f.ss
    );
    kprintln!("  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}", f.rax, f.rbx, f.rcx, f.rdx);
    kprintln!("  rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}", f.rsi, f.rdi, f.rbp, f.r8);
    kprintln!("  r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}", f.r9, f.r10, f.r11, f.r12);
    kprintln!("  r13 {:#018x} r14 {:#018x} r15 {:#018x}", f.r13, f.r14, f.r15);
    kprintln!("  backtrace (frame pointers):");
    kprintln!("    #0 {:#018x}", f.rip);
    let mut rbp = f.rbp;
    for depth in 1..32 {
        // Each frame: [rbp] = caller's rbp, [rbp + 8] = return address.
        let (Some(next), Some(ret)) = (platform::stack_word(rbp), platform::stack_word(rbp + 8))
        else {
            break;
        };
        if ret == 0 {
            break;
        }
        kprintln!("    #{depth} {ret:#018x}");
        if next <= rbp {
            break;
        }
        rbp = next;
    }
    kprintln!("  resolve with: addr2line -f -C -e target/xen/guest.elf <address>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_fault_codes_decode() {
        assert_eq!(page_fault_cause(0), ("page not present", "read", ""));
        assert_eq!(page_fault_cause(3), ("protection violation", "write", ""));
        assert_eq!(page_fault_cause(0x10), ("page not present", "instruction fetch", ""));
        assert_eq!(page_fault_cause(0x9).2, "reserved bit set");
    }

    #[test]
    fn vectors_have_names() {
        assert_eq!(vector_name(14), "#PF page fault");
        assert_eq!(vector_name(13), "#GP general protection");
        assert_eq!(vector_name(99), "unknown vector");
    }
}
