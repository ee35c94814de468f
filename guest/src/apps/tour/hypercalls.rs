//! Step 2: the hypercall page and register ABI, and `cli`/`sti` as the
//! upcall mask (docs/hypercalls.md).

use super::{evidence, say, Shown, StepResult};
use alloc::format;
use alloc::string::String;
use core::sync::atomic::Ordering;
use hypercall::raw::nr;
use kernel::events::IrqGuard;

const STEP: &str = "hypercalls";

/// `mov $imm32, %eax` (`b8 imm32`) in an entry: the number it loads.
fn loaded_number(entry: &[u8]) -> Option<u32> {
    let i = entry.iter().position(|&b| b == 0xb8)?;
    let b = entry.get(i + 1..i + 5)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub fn run() -> StepResult {
    say!("A native kernel runs privileged instructions; this one may not (step 1), so it");
    say!("asks Xen with a hypercall: a call into the hypercall page, a page of the image");
    say!("that Xen fills at build time (ELF note XEN_ELFNOTE_HYPERCALL_PAGE). Entry N, at");
    say!("offset N*32, is the instruction sequence for hypercall N on this CPU.");
    let page = hypercall::raw::hypercall_page_addr();
    let off = nr::XEN_VERSION as usize * 32;
    // (Under PVH the same page is filled through an MSR write.)
    let bytes: [u8; 16] =
        platform::pv::hypercall_page_bytes()[off..off + 16].try_into().unwrap_or([0; 16]);
    let mut hex = String::new();
    for b in bytes {
        hex.push_str(&format!("{b:02x} "));
    }
    evidence!(
        STEP,
        "hypercall page at {page:#x}; entry {} (xen_version) at {:#x}: {}",
        nr::XEN_VERSION,
        page + off,
        hex.trim_end()
    );
    let insn = if bytes.windows(2).any(|w| w == [0x0f, 0x05]) {
        "syscall (0f 05): a 64-bit PV guest enters Xen like a process enters its kernel"
    } else if bytes.windows(3).any(|w| w == [0x0f, 0x01, 0xc1]) {
        "vmcall (0f 01 c1): Intel VT-x"
    } else if bytes.windows(3).any(|w| w == [0x0f, 0x01, 0xd9]) {
        "vmmcall (0f 01 d9): AMD-V"
    } else {
        "an instruction this tour does not know"
    };
    evidence!(
        STEP,
        "the entry loads eax = {:?} (the hypercall number), then {insn}",
        loaded_number(&bytes)
    );
    say!("Arguments go in rdi, rsi, rdx, r10, r8 and the result comes back in rax");
    say!("(xen/include/public/arch-x86/xen-x86_64.h):");
    let (major, minor) = hypercall::ops::version::version();
    evidence!(
        STEP,
        "xen_version(XENVER_version, NULL) returned rax = {:#x}: Xen {major}.{minor}",
        (u64::from(major) << 16) | u64::from(minor)
    );

    if platform::is_pvh() {
        say!("(PVH: the kernel is in ring 0 and uses rflags.IF, cli and sti natively)");
        return Ok(Shown::Shown);
    }
    say!("cli and sti trap in ring 3 (step 1). Interrupts are event channels, and the");
    say!("guest's interrupt flag is a byte Xen reads: vcpu_info.evtchn_upcall_mask.");
    let v = platform::vcpu_info();
    let before = v.evtchn_upcall_mask.load(Ordering::Relaxed);
    let inside = {
        let _masked = IrqGuard::new();
        v.evtchn_upcall_mask.load(Ordering::Relaxed)
    };
    let after = v.evtchn_upcall_mask.load(Ordering::Relaxed);
    evidence!(STEP, "evtchn_upcall_mask: {before} before, {inside} while masked (the guest's cli), {after} after (sti)");
    say!("Unmasking is a store; if an event arrived meanwhile (evtchn_upcall_pending),");
    say!("the kernel makes any hypercall (xen_version) so that Xen delivers it on the way");
    say!("back: the only cost of sti. Run with trace=hypercalls to see each call.");
    Ok(Shown::Shown)
}
