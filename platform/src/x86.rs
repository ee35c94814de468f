//! The x86-64 instructions both back ends use the same way: the time stamp
//! counter, CPUID and deliberate exceptions.

use crate::trap::DeliberateFault;

/// The TSC at the start of a timed region: `lfence` keeps earlier
/// instructions from drifting past the read.
#[inline(always)]
pub fn tsc_begin() -> u64 {
    rdtsc()
}

/// The TSC at the end of a timed region: `rdtscp` waits for the region's
/// instructions, `lfence` keeps later ones from starting early.
#[inline(always)]
pub fn tsc_end() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtscp and lfence only read the time stamp counter (and
    // TSC_AUX into ecx).
    unsafe {
        core::arch::asm!("rdtscp", "lfence", out("eax") lo, out("edx") hi, out("ecx") _, options(nomem, nostack));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The CPU's brand string (CPUID 0x80000002..4), as the guest sees it.
pub fn cpu_brand() -> crate::fmtbuf::FmtBuf<48> {
    use core::fmt::Write;
    let mut out = crate::fmtbuf::FmtBuf::new();
    for leaf in 0x8000_0002u32..=0x8000_0004 {
        let r = core::arch::x86_64::__cpuid(leaf);
        for word in [r.eax, r.ebx, r.ecx, r.edx] {
            for byte in word.to_le_bytes() {
                if byte != 0 {
                    let _ = out.write_char(byte as char);
                }
            }
        }
    }
    out
}

/// A serialised TSC read.
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: lfence and rdtsc only read the time stamp counter.
    unsafe {
        core::arch::asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Raises `kind`; the fault handler ends the domain, so this never returns.
pub fn trigger_fault(kind: DeliberateFault) -> ! {
    match kind {
        DeliberateFault::NullRead => {
            // SAFETY: none is needed for soundness: the page at 0 is never
            // mapped, so the read faults and the handler ends the domain.
            let v = unsafe { core::ptr::read_volatile(core::ptr::without_provenance::<u64>(8)) };
            panic!("read of address 8 returned {v:#x}: the page at 0 is mapped");
        }
        DeliberateFault::GeneralProtection => {
            // SAFETY: a non-canonical address cannot be accessed: #GP.
            let v = unsafe {
                core::ptr::read_volatile(core::ptr::without_provenance::<u64>(
                    0x8000_0000_0000_0000,
                ))
            };
            panic!("non-canonical read returned {v:#x}");
        }
        // SAFETY: ud2 only raises #UD.
        DeliberateFault::InvalidOpcode => unsafe { core::arch::asm!("ud2", options(noreturn)) },
        DeliberateFault::DivideError => {
            let zero: u64 = 0;
            // SAFETY: a 64-bit divide by zero only raises #DE.
            unsafe {
                core::arch::asm!("xor edx, edx", "mov eax, 1", "div {0}", in(reg) zero, out("eax") _, out("edx") _);
            }
            panic!("division by zero did not fault");
        }
        DeliberateFault::TripleFault => {
            #[repr(C, packed)]
            struct Idtr {
                limit: u16,
                base: u64,
            }
            let empty = Idtr { limit: 0, base: 0 };
            // SAFETY: an IDT of limit 0 makes every exception undeliverable:
            // the ud2 ends in a shutdown, and nothing runs after it. Only a
            // PVH guest (ring 0) can load an IDT; the caller checks the mode.
            unsafe {
                core::arch::asm!(
                    "lidt [{0}]",
                    "ud2",
                    in(reg) &raw const empty,
                    options(noreturn, nostack),
                )
            }
        }
        DeliberateFault::StackOverflow => {
            let depth = recurse(0);
            panic!("{depth} frames of recursion did not overflow the stack");
        }
    }
}

/// Calls itself with a 512-byte frame until the stack overflows (the
/// `black_box`es keep the frame and the call: no tail call, no loop).
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 64]);
    if depth == u64::MAX {
        return frame[0];
    }
    core::hint::black_box(recurse(depth + 1)) + frame[1]
}
