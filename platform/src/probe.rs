//! Instructions that show why x86 was not virtualizable by trap-and-emulate
//! (docs/virtualizability.md), run on purpose by the de-privileged kernel.
//!
//! A 64-bit PV kernel runs in ring 3. Some instructions are *sensitive*
//! (they read or change state the hypervisor owns) but *unprivileged* (the
//! CPU runs them in ring 3 without a fault): `smsw`, `sgdt`, `sidt`,
//! `str`, reading `cs`, `pushf` and `popf`. They cannot trap, so Xen never
//! sees them: they return what the hardware holds (Xen's descriptor tables,
//! the real `cr0`, ring 3, `rflags.IF` always set), not what the guest set
//! up. Others are *privileged*: in ring 3 they raise `#GP`, Xen's handler
//! looks at the instruction (`xen/arch/x86/pv/emul-priv-op.c`) and either
//! emulates it (reading `cr0` or `cr3`) or reflects the `#GP` into the
//! guest (`hlt`, a write of a bogus `cr3`, port I/O the domain has no
//! right to, `cli`). A reflected fault comes back through this guest's
//! trap table; [`fixup`] recognises the probe's address, records the fault
//! and resumes after the instruction, so the caller gets an [`Outcome`].
//!
//! Each probe is a tiny function in assembly: `rdx` is 0 on the way in and
//! [`fixup`] sets it to 1 when the instruction faulted; `rax` carries the
//! value read. The probes only read state or try to change it in a way
//! the CPU or Xen refuses; under PVH (ring 0 of an HVM container) the
//! privileged ones would really run, so [`run`] refuses them there.

use crate::trap::TrapFrame;
use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// What a probe is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `smsw`: the low 16 bits of `cr0` (the machine status word).
    Smsw,
    /// `sgdt`: the GDT's base and limit.
    Sgdt,
    /// `sidt`: the IDT's base and limit.
    Sidt,
    /// `str`: the task register's selector.
    Str,
    /// `mov %cs, %ax`: the code segment, whose low two bits are the ring.
    ReadCs,
    /// `pushf`: `rflags`, with `IF` (bit 9).
    Pushf,
    /// `popf` of `rflags` with `IF` cleared, then `pushf`: what stuck.
    PopfClearIf,
    /// `mov %cr0, %rax`: privileged; Xen emulates it.
    ReadCr0,
    /// `mov %cr3, %rax`: privileged; Xen emulates it (the page-table root).
    ReadCr3,
    /// `mov %rax, %cr3` with 0, a frame this domain does not own:
    /// privileged; Xen refuses and reflects `#GP`.
    WriteCr3Bogus,
    /// `hlt`: privileged; Xen does not emulate it for a PV guest (`#GP`).
    Hlt,
    /// `in $0x80, %al`: port I/O without I/O privilege (`#GP`).
    InPort80,
    /// `cli`: with `IOPL` 0, `#GP` (the guest masks events instead).
    Cli,
}

impl Probe {
    pub const ALL: [Probe; 13] = [
        Probe::Smsw,
        Probe::Sgdt,
        Probe::Sidt,
        Probe::Str,
        Probe::ReadCs,
        Probe::Pushf,
        Probe::PopfClearIf,
        Probe::ReadCr0,
        Probe::ReadCr3,
        Probe::WriteCr3Bogus,
        Probe::Hlt,
        Probe::InPort80,
        Probe::Cli,
    ];

    /// The instruction as written.
    pub fn insn(self) -> &'static str {
        match self {
            Probe::Smsw => "smsw %eax",
            Probe::Sgdt => "sgdt (mem)",
            Probe::Sidt => "sidt (mem)",
            Probe::Str => "str %ax",
            Probe::ReadCs => "mov %cs, %ax",
            Probe::Pushf => "pushf",
            Probe::PopfClearIf => "popf (IF=0); pushf",
            Probe::ReadCr0 => "mov %cr0, %rax",
            Probe::ReadCr3 => "mov %cr3, %rax",
            Probe::WriteCr3Bogus => "mov %rax, %cr3 (rax=0)",
            Probe::Hlt => "hlt",
            Probe::InPort80 => "in $0x80, %al",
            Probe::Cli => "cli",
        }
    }

    /// Whether the CPU checks the privilege level for it (ring 0 only).
    pub fn privileged(self) -> bool {
        matches!(
            self,
            Probe::ReadCr0
                | Probe::ReadCr3
                | Probe::WriteCr3Bogus
                | Probe::Hlt
                | Probe::InPort80
                | Probe::Cli
        )
    }
}

/// A fault a probe took, as the guest's trap handler saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u64,
    pub error_code: u64,
}

/// What running a probe gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The value read (`rax`; for `sgdt`/`sidt` the table's base).
    pub value: u64,
    /// For `sgdt`/`sidt`: the table's limit.
    pub limit: u16,
    /// The fault Xen reflected into the guest, if it did.
    pub fault: Option<Fault>,
}

/// The probe refused to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A privileged probe under PVH, where the kernel runs in ring 0 and
    /// the instruction would really take effect.
    Pvh,
}

// Each probe: `name` is the function, `name_at` the instruction that may
// fault, `name_out` where a fault resumes. SysV: a `{u64, u64}` struct is
// returned in rax:rdx.
global_asm!(
    r#"
    .pushsection .text.probes, "ax", @progbits

    .macro probe name
    .globl \name
\name:
    xor %edx, %edx
    xor %eax, %eax
    .endm

    probe probe_smsw
probe_smsw_at:
    smsw %eax
probe_smsw_out:
    ret

    probe probe_sgdt
probe_sgdt_at:
    sgdt (%rdi)
probe_sgdt_out:
    ret

    probe probe_sidt
probe_sidt_at:
    sidt (%rdi)
probe_sidt_out:
    ret

    probe probe_str
probe_str_at:
    str %ax
probe_str_out:
    ret

    probe probe_read_cs
probe_read_cs_at:
    mov %cs, %ax
probe_read_cs_out:
    ret

    probe probe_pushf
probe_pushf_at:
    pushfq
    pop %rax
probe_pushf_out:
    ret

    probe probe_popf
    pushfq
    pop %rcx
    mov %rcx, %rax
    and $~0x200, %rax
    push %rax
probe_popf_at:
    popfq
    pushfq
    pop %rax
    push %rcx
    popfq
probe_popf_out:
    ret

    probe probe_read_cr0
probe_read_cr0_at:
    mov %cr0, %rax
probe_read_cr0_out:
    ret

    probe probe_read_cr3
probe_read_cr3_at:
    mov %cr3, %rax
probe_read_cr3_out:
    ret

    probe probe_write_cr3
probe_write_cr3_at:
    mov %rax, %cr3
probe_write_cr3_out:
    ret

    probe probe_hlt
probe_hlt_at:
    hlt
probe_hlt_out:
    ret

    probe probe_in80
probe_in80_at:
    in $0x80, %al
probe_in80_out:
    ret

    probe probe_cli
probe_cli_at:
    cli
probe_cli_out:
    ret

    .popsection

    .pushsection .rodata.probe_fixups, "a", @progbits
    .balign 8
    .globl probe_fixups
probe_fixups:
    .quad probe_smsw_at, probe_smsw_out
    .quad probe_sgdt_at, probe_sgdt_out
    .quad probe_sidt_at, probe_sidt_out
    .quad probe_str_at, probe_str_out
    .quad probe_read_cs_at, probe_read_cs_out
    .quad probe_pushf_at, probe_pushf_out
    .quad probe_popf_at, probe_popf_out
    .quad probe_read_cr0_at, probe_read_cr0_out
    .quad probe_read_cr3_at, probe_read_cr3_out
    .quad probe_write_cr3_at, probe_write_cr3_out
    .quad probe_hlt_at, probe_hlt_out
    .quad probe_in80_at, probe_in80_out
    .quad probe_cli_at, probe_cli_out
    .popsection
    "#,
    options(att_syntax)
);

/// `rax`, `rdx` of a probe.
#[repr(C)]
struct Raw {
    value: u64,
    faulted: u64,
}

extern "C" {
    fn probe_smsw() -> Raw;
    fn probe_sgdt(table: *mut [u8; 10]) -> Raw;
    fn probe_sidt(table: *mut [u8; 10]) -> Raw;
    fn probe_str() -> Raw;
    fn probe_read_cs() -> Raw;
    fn probe_pushf() -> Raw;
    fn probe_popf() -> Raw;
    fn probe_read_cr0() -> Raw;
    fn probe_read_cr3() -> Raw;
    fn probe_write_cr3() -> Raw;
    fn probe_hlt() -> Raw;
    fn probe_in80() -> Raw;
    fn probe_cli() -> Raw;
    /// (instruction, resume) address pairs, one per probe.
    static probe_fixups: [[u64; 2]; 13];
}

/// The last fault a probe took: `vector << 32 | error code`, +1 so that 0
/// means none.
static LAST_FAULT: AtomicU64 = AtomicU64::new(0);

/// Called first by the fault path of every back end: if `frame` is a
/// probe's instruction faulting, records the fault, marks the probe as
/// faulted and resumes after the instruction. Returns whether it did.
pub(crate) fn fixup(frame: &mut TrapFrame) -> bool {
    // SAFETY: `probe_fixups` is a read-only table of addresses in the
    // image, defined in the assembly above with exactly 13 entries.
    let table = unsafe { &*core::ptr::addr_of!(probe_fixups) };
    let Some(&[_, out]) = table.iter().find(|[at, _]| *at == frame.rip) else {
        return false;
    };
    LAST_FAULT
        .store(((frame.vector << 32) | (frame.error_code & 0xffff_ffff)) + 1, Ordering::SeqCst);
    frame.rdx = 1;
    frame.rip = out;
    true
}

/// Runs `probe` once.
pub fn run(probe: Probe) -> Result<Outcome, Refused> {
    if probe.privileged() && crate::is_pvh() {
        return Err(Refused::Pvh);
    }
    LAST_FAULT.store(0, Ordering::SeqCst);
    let mut table = [0u8; 10];
    // SAFETY: each probe is the assembly function above: it follows the
    // SysV ABI, clobbers only rax, rcx, rdx (caller-saved) and flags,
    // restores rflags where it changes them (popf), and either runs its
    // instruction (which only reads state, or changes state the CPU or Xen
    // refuses to change for a PV kernel in ring 3: privileged probes are
    // refused above under PVH) or faults into `fixup`, which resumes it at
    // its `ret`. `sgdt`/`sidt` write 10 bytes to `table`, which is 10
    // bytes and exclusively borrowed.
    let raw = unsafe {
        match probe {
            Probe::Smsw => probe_smsw(),
            Probe::Sgdt => probe_sgdt(&mut table),
            Probe::Sidt => probe_sidt(&mut table),
            Probe::Str => probe_str(),
            Probe::ReadCs => probe_read_cs(),
            Probe::Pushf => probe_pushf(),
            Probe::PopfClearIf => probe_popf(),
            Probe::ReadCr0 => probe_read_cr0(),
            Probe::ReadCr3 => probe_read_cr3(),
            Probe::WriteCr3Bogus => probe_write_cr3(),
            Probe::Hlt => probe_hlt(),
            Probe::InPort80 => probe_in80(),
            Probe::Cli => probe_cli(),
        }
    };
    let fault = match (raw.faulted, LAST_FAULT.load(Ordering::SeqCst)) {
        (0, _) | (_, 0) => None,
        (_, f) => Some(Fault { vector: (f - 1) >> 32, error_code: (f - 1) & 0xffff_ffff }),
    };
    let (value, limit) = match probe {
        Probe::Sgdt | Probe::Sidt if fault.is_none() => (
            u64::from_le_bytes(table[2..10].try_into().unwrap_or([0; 8])),
            u16::from_le_bytes([table[0], table[1]]),
        ),
        Probe::Smsw | Probe::Str | Probe::ReadCs => (raw.value & 0xffff, 0),
        _ => (raw.value, 0),
    };
    Ok(Outcome { value, limit, fault })
}
