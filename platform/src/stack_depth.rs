//! How deep vCPU 0's boot stack has been: the stack is painted with a
//! pattern below the stack pointer early on, and the lowest word that no
//! longer holds it marks the deepest use since, event upcalls included
//! (they run on the interrupted stack). Under PVH an overflow into the
//! guard page is a double fault (`pvh/tss.rs`), under PV a domain crash:
//! this is the margin before either. (Linux: `CONFIG_DEBUG_STACK_USAGE`.)

use crate::pv::boot::BOOT_STACK_SIZE;
use hypercall::PAGE_SIZE;

/// The paint ("STACK!!!" as bytes).
const PAINT: u64 = u64::from_le_bytes(*b"STACK!!!");
/// Bytes below the stack pointer left unpainted when painting (the paint
/// loop's own frame and calls).
const MARGIN: u64 = 1024;

extern "C" {
    static __boot_stack_bottom: u8;
}

/// The usable boot stack (its lowest page is the unmapped guard page).
fn range() -> (u64, u64) {
    let bottom = core::ptr::addr_of!(__boot_stack_bottom) as u64;
    (bottom + PAGE_SIZE as u64, bottom + BOOT_STACK_SIZE as u64)
}

fn sp() -> u64 {
    let marker = 0u8;
    core::hint::black_box(core::ptr::addr_of!(marker)) as u64
}

/// Paints the boot stack below the stack pointer. Call once, on vCPU 0,
/// early (what ran before is not measured).
pub fn paint() {
    let (lo, hi) = range();
    let sp = sp();
    if !(lo + MARGIN..hi).contains(&sp) {
        return;
    }
    let end = (sp - MARGIN) & !7;
    let mut a = lo;
    while a < end {
        // SAFETY: an aligned word of the boot stack, mapped (above the
        // guard page) and below every frame in use: nothing refers to it
        // (the kernel has no red zone, and an upcall arriving meanwhile
        // pushes its frame below the stack pointer and is done with it
        // before this loop goes on).
        unsafe { (a as *mut u64).write_volatile(PAINT) };
        a += 8;
    }
}

/// The deepest use of the boot stack since [`paint`], and its usable
/// size, in bytes.
pub fn deepest() -> (u64, u64) {
    let (lo, hi) = range();
    let mut a = lo;
    // SAFETY: aligned words of the boot stack, mapped and readable; a
    // word may be written meanwhile by an upcall (a plain u64 read).
    while a < hi && unsafe { (a as *const u64).read_volatile() } == PAINT {
        a += 8;
    }
    (hi - a, hi - lo)
}
