//! Starting a PV vCPU: the whole starting state goes to Xen in one
//! `struct vcpu_guest_context` (Linux: `cpu_initialize_context` in
//! arch/x86/xen/smp_pv.c). The new vCPU begins in kernel mode at
//! `smp_pv_entry` with its own stack, the same virtual IDT, event and
//! failsafe callbacks as vCPU 0, the same page tables, and a GDT frame of
//! its own.

use core::arch::global_asm;
use hypercall::abi::arch::{FLAT_KERNEL_CS, FLAT_KERNEL_SS};
use hypercall::abi::vcpu_context::{vgcf, VcpuGuestContext, GDT_ENTRIES_PER_FRAME};
use hypercall::ops::vcpu;
use hypercall::{Mfn, XenError};

global_asm!(
    r#"
    .pushsection .text.smp_pv_entry, "ax", @progbits
    .globl smp_pv_entry
smp_pv_entry:
    // Xen loaded rsp (the top of this vCPU's stack, 16-byte aligned) and
    // rdi (the vCPU id) from the context.
    cld
    xor %ebp, %ebp
    call {entry}
    ud2
    .popsection
    "#,
    entry = sym super::secondary_entry,
    options(att_syntax)
);

extern "C" {
    fn smp_pv_entry();
}

/// `VCPUOP_initialise` of PV vCPU `n`: rsp = `stack_top`, rdi = `n`.
pub(super) fn initialise(n: u32, stack_top: u64, gdt: Mfn) -> Result<(), XenError> {
    let mut ctx = alloc::boxed::Box::new(VcpuGuestContext::zeroed());
    // In kernel mode; the failsafe callback masks events like vCPU 0's.
    ctx.flags = vgcf::IN_KERNEL | vgcf::FAILSAFE_DISABLES_EVENTS;
    ctx.user_regs.rip = smp_pv_entry as *const () as u64;
    ctx.user_regs.rsp = stack_top;
    ctx.user_regs.rdi = u64::from(n);
    ctx.user_regs.cs = FLAT_KERNEL_CS;
    ctx.user_regs.ss = FLAT_KERNEL_SS;
    // Xen sets IF itself; upcalls stay masked in the vCPU's vcpu_info.
    ctx.user_regs.rflags = 0;
    // The virtual IDT, indexed by vector as Xen keeps it.
    for t in super::super::pv::entry::trap_table() {
        if t.address != 0 {
            ctx.trap_ctxt[usize::from(t.vector)] = t;
        }
    }
    // A GDT frame of its own. Every selector this kernel loads is one of
    // Xen's flat ones (in the reserved part of every GDT), so its 512
    // descriptors are all empty (not present): what matters is that the
    // frame is this vCPU's and read-only everywhere, as Xen requires.
    ctx.gdt_frames[0] = gdt.0;
    ctx.gdt_ents = GDT_ENTRIES_PER_FRAME;
    ctx.kernel_ss = u64::from(FLAT_KERNEL_SS);
    ctx.kernel_sp = stack_top;
    // xen_pfn_to_cr3: the machine frame of the (pinned) top-level table.
    ctx.ctrlreg[3] = crate::pv::mm::root().0 << 12;
    let (event, failsafe) = crate::pv::entry::callbacks();
    ctx.event_callback_eip = event;
    ctx.failsafe_callback_eip = failsafe;
    // SAFETY: rip is the stub above, which expects exactly this state
    // (rsp a fresh, 16-byte aligned stack reserved for vCPU `n` alone, rdi
    // its id); the trap table and callbacks are vCPU 0's stubs, which run
    // on whatever stack they interrupt; cr3 is the kernel's own pinned
    // root; the GDT frame is kept for this vCPU and mapped read-only.
    unsafe { vcpu::initialise_pv(n, &ctx) }
}
