//! Starting a PVH vCPU: `VCPUOP_initialise` with a `struct
//! vcpu_hvm_context` in 64-bit mode (Xen's `arch_set_info_hvm_guest`): the
//! vCPU starts in long mode with this vCPU's CR0, CR3 (the same identity
//! map), CR4 and EFER, flat segments in the hidden registers (selector 0)
//! and interrupts off. Its first instructions load the boot GDT of
//! `pvh/entry32.rs` and real selectors (an `iretq` reloads CS and SS from
//! the GDT), then Rust loads the shared IDT. No INIT/SIPI and no real-mode
//! trampoline, which a native kernel (and Linux as a PVH guest) needs.

use core::arch::global_asm;
use hypercall::abi::vcpu_context::{hvm_mode, VcpuHvmContext, VcpuHvmX86_64};
use hypercall::ops::vcpu;
use hypercall::XenError;

global_asm!(
    r#"
    .pushsection .text.smp_pvh_entry, "ax", @progbits
    .globl smp_pvh_entry
smp_pvh_entry:
    // rsp = top of this vCPU's stack, rdi = its id (from the context).
    cld
    lgdt pvh_gdt_ptr(%rip)
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    pushq $0x08
    lea 1f(%rip), %rax
    push %rax
    lretq
1:  xor %ebp, %ebp
    call {entry}
    ud2
    .popsection
    "#,
    entry = sym super::secondary_entry,
    options(att_syntax)
);

extern "C" {
    fn smp_pvh_entry();
}

/// `VCPUOP_initialise` of PVH vCPU `n`: rsp = `stack_top`, rdi = `n`.
pub(super) fn initialise(n: u32, stack_top: u64) -> Result<(), XenError> {
    use x86_64::registers::control::{Cr0, Cr3, Cr4};
    use x86_64::registers::model_specific::Efer;
    let (root, _) = Cr3::read();
    let ctx = VcpuHvmContext {
        mode: hvm_mode::MODE_64B,
        pad: 0,
        x86_64: VcpuHvmX86_64 {
            rsp: stack_top,
            rdi: u64::from(n),
            rip: smp_pvh_entry as *const () as u64,
            // Reserved bit 1 set, IF clear: upcalls masked.
            rflags: 0x2,
            cr0: Cr0::read_raw(),
            cr3: root.start_address().as_u64(),
            cr4: Cr4::read_raw(),
            efer: Efer::read_raw(),
            ..VcpuHvmX86_64::default()
        },
        _union_tail: 0,
    };
    // SAFETY: rip is the stub above, which expects exactly this state
    // (long mode on the kernel's identity map, rsp a fresh 16-byte aligned
    // stack reserved for vCPU `n` alone, rdi its id, interrupts off until
    // the IDT is loaded); the page tables live in the image for good.
    unsafe { vcpu::initialise_hvm(n, &ctx) }
}
