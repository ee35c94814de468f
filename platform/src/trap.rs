//! What the entry stubs of every back end hand the kernel's fault hook:
//! the interrupted state in one layout, whatever frame Xen (PV) or the CPU
//! (PVH) built.

/// The saved state of the interrupted code, lowest address first.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Exception vector; `VECTOR_UPCALL` or `VECTOR_FAILSAFE` for callbacks.
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);

/// The vector the entry stubs record for an event upcall.
pub const VECTOR_UPCALL: u64 = 0x100;
/// The vector the entry stubs record for Xen's failsafe callback.
pub const VECTOR_FAILSAFE: u64 = 0x101;

/// A deliberate exception, to show (and test) the fault report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliberateFault {
    /// A read of address 8, in the unmapped page at 0.
    NullRead,
    /// A read of a non-canonical address.
    GeneralProtection,
    /// `ud2`.
    InvalidOpcode,
    /// Division by zero.
    DivideError,
}
