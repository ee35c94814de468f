//! x86-64 PV entry points: the virtual IDT and callbacks
//! (`xen/include/public/arch-x86/xen.h`, `arch-x86/xen-x86_64.h`, `callback.h`).

use super::assert_layout;

/// The ring-3 64-bit code selector a PV kernel runs with.
pub const FLAT_KERNEL_CS: u16 = 0xe033;
/// The ring-3 stack selector a PV kernel runs with.
pub const FLAT_KERNEL_SS: u16 = 0xe02b;

/// `struct trap_info`: one entry of the virtual IDT given to
/// `set_trap_table`; a zero `address` ends the table.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TrapInfo {
    pub vector: u8,
    /// Bits 0-1: the lowest privilege that may `int` it; bit 2: mask events on entry.
    pub flags: u8,
    pub cs: u16,
    pub address: u64,
}
assert_layout!(TrapInfo, size = 16, vector = 0, flags = 1, cs = 2, address = 8);

/// `TrapInfo::flags` bit: mask upcalls while the handler runs (an interrupt gate).
pub const TI_MASK_EVENTS: u8 = 4;

/// `CALLBACKTYPE_*`.
pub mod callback_type {
    pub const EVENT: u16 = 0;
    pub const FAILSAFE: u16 = 1;
    pub const SYSCALL: u16 = 2;
}

/// `CALLBACKF_mask_events`: mask upcalls on entry to the callback.
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

/// `CALLBACKOP_register`.
pub const CALLBACKOP_REGISTER: u32 = 0;

/// `struct callback_register`.
#[repr(C)]
pub struct CallbackRegister {
    pub kind: u16,
    pub flags: u16,
    pub address: u64,
}
assert_layout!(CallbackRegister, size = 16, kind = 0, flags = 2, address = 8);

/// `VGCF_in_syscall`: the flag word `iret` takes on its frame.
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;
