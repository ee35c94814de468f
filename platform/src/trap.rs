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

/// Assembler text (AT&T) for the body of both back ends' entry stubs,
/// after the vector and error code are on the stack: pushes the general
/// registers to complete a [`TrapFrame`], calls `\handler(frame)` on a
/// 16-byte aligned stack, pops them again and drops the vector and error
/// code. Each back end wraps it in a `.macro` of its own name (the
/// assembler sees one file) and adds its own return (`HYPERVISOR_iret`
/// for PV, `iretq` for PVH).
#[cfg(target_os = "none")]
macro_rules! call_handler_asm {
    () => {
        "
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    mov %rsp, %rbp
    and $-16, %rsp
    // The handler is Rust: the ABI wants the direction flag clear. A
    // native interrupt (PVH) keeps the interrupted code's flag, which is
    // set inside a backward memmove (`std; rep movsq`): string copies in
    // the handler would run backwards over memory. (Xen clears it in a PV
    // guest's bounce frame.) iretq gives the interrupted code its own back.
    cld
    call \\handler
    mov %rbp, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp          // vector, error code
"
    };
}
#[cfg(target_os = "none")]
pub(crate) use call_handler_asm;

/// Every back end's exception stubs call this with the frame they built.
#[cfg(target_os = "none")]
pub(crate) extern "C" fn rust_trap(frame: *mut TrapFrame) {
    // SAFETY: the stub passes the frame it just built on this stack; it
    // stays valid and unaliased until this function returns.
    let frame = unsafe { &mut *frame };
    crate::hooks::fault(frame);
}

/// Every back end's event upcall stub calls this. Upcalls are masked
/// meanwhile (PV: Xen sets the upcall mask as it delivers one; PVH: the
/// CPU cleared IF, an interrupt gate), so it does not nest.
#[cfg(target_os = "none")]
pub(crate) extern "C" fn rust_upcall(_frame: *mut TrapFrame) {
    crate::hooks::upcall();
}

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
    /// Unbounded recursion, into the stack's guard page. Under PVH the
    /// CPU cannot push the page fault's frame either: a double fault,
    /// taken on its own stack (`pvh/tss.rs`). Under PV Xen cannot write
    /// the bounce frame and crashes the domain without a report.
    StackOverflow,
    /// PVH only: an empty IDT, then `ud2`. The CPU can deliver neither
    /// the #UD nor the double fault and shuts down; Xen ends the domain
    /// with `dNvM Triple fault` on its console, the line the boot tests'
    /// harness takes for the emulator's glitch (docs/pvh.md), so that the
    /// harness's handling of it is tested by making it happen.
    TripleFault,
}
