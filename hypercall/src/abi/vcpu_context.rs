//! The state a new vCPU starts from, given to `VCPUOP_initialise`: the
//! 64-bit PV `struct vcpu_guest_context` (`xen/include/public/arch-x86/xen.h`,
//! its registers `struct cpu_user_regs` from `arch-x86/xen-x86_64.h`) and
//! the HVM/PVH `struct vcpu_hvm_context` (`xen/include/public/hvm/hvm_vcpu.h`).
//!
//! A PV guest has no `INIT`/`SIPI`: the vCPU that is already running hands
//! Xen the whole starting state of the next one (registers, virtual IDT,
//! GDT frames, kernel stack, callbacks, page-table base), then
//! `VCPUOP_up` lets it run. A PVH guest could use the emulated local APIC
//! like a native kernel, but the same hypercall with the HVM context starts
//! the vCPU directly in long mode, on the page tables it names.

use super::arch::TrapInfo;
use super::assert_layout;

/// `struct cpu_user_regs` (x86-64), with the 64-bit register names. The
/// `_pad` fields are the header's padding; `saved_upcall_mask` is Xen's
/// private copy (ignored on input).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub error_code: u32,
    pub entry_vector: u32,
    pub rip: u64,
    pub cs: u16,
    pub _pad0: u16,
    pub saved_upcall_mask: u8,
    pub _pad1: [u8; 3],
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u16,
    pub _pad2: [u16; 3],
    pub es: u16,
    pub _pad3: [u16; 3],
    pub ds: u16,
    pub _pad4: [u16; 3],
    pub fs: u16,
    pub _pad5: [u16; 3],
    pub gs: u16,
    pub _pad6: [u16; 3],
}
assert_layout!(
    CpuUserRegs,
    size = 200,
    r15 = 0,
    rbp = 32,
    rbx = 40,
    rax = 80,
    rsi = 104,
    rdi = 112,
    error_code = 120,
    rip = 128,
    cs = 136,
    saved_upcall_mask = 140,
    rflags = 144,
    rsp = 152,
    ss = 160,
    es = 168,
    ds = 176,
    fs = 184,
    gs = 192,
);

/// `VGCF_*` flags of [`VcpuGuestContext::flags`].
pub mod vgcf {
    /// `fpu_ctxt` holds a valid FXSAVE image.
    pub const I387_VALID: u64 = 1 << 0;
    /// The vCPU starts in (guest) kernel mode.
    pub const IN_KERNEL: u64 = 1 << 2;
    /// The failsafe callback masks events, like an interrupt gate.
    pub const FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
    /// The syscall callback masks events.
    pub const SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
    /// Set by Xen when reporting a context: the vCPU is up.
    pub const ONLINE: u64 = 1 << 5;
}

/// GDT entries per frame (`512` descriptors of 8 bytes).
pub const GDT_ENTRIES_PER_FRAME: u64 = 512;

/// `struct vcpu_guest_context` (x86-64 PV): 5168 bytes. Too large for a
/// small stack frame: build it on the heap.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VcpuGuestContext {
    /// FXSAVE image (used with [`vgcf::I387_VALID`]).
    pub fpu_ctxt: [u8; 512],
    /// [`vgcf`] flags.
    pub flags: u64,
    pub user_regs: CpuUserRegs,
    /// The virtual IDT, indexed by vector (Xen copies it).
    pub trap_ctxt: [TrapInfo; 256],
    pub ldt_base: u64,
    pub ldt_ents: u64,
    /// Machine frames of the vCPU's GDT (read-only everywhere).
    pub gdt_frames: [u64; 16],
    /// Descriptors in the GDT; 0: only Xen's reserved flat selectors.
    pub gdt_ents: u64,
    /// The virtual TSS: the stack Xen switches to on a user-to-kernel
    /// transition.
    pub kernel_ss: u64,
    pub kernel_sp: u64,
    /// `ctrlreg[3]`: the page-table base, `xen_pfn_to_cr3(mfn)` (`mfn << 12`
    /// on x86-64); `ctrlreg[1]` the user page-table base.
    pub ctrlreg: [u64; 8],
    pub debugreg: [u64; 8],
    pub event_callback_eip: u64,
    pub failsafe_callback_eip: u64,
    pub syscall_callback_eip: u64,
    /// `VMASST_TYPE_*` (only vCPU 0's counts).
    pub vm_assist: u64,
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
}
assert_layout!(
    VcpuGuestContext,
    size = 5168,
    fpu_ctxt = 0,
    flags = 512,
    user_regs = 520,
    trap_ctxt = 720,
    ldt_base = 4816,
    ldt_ents = 4824,
    gdt_frames = 4832,
    gdt_ents = 4960,
    kernel_ss = 4968,
    kernel_sp = 4976,
    ctrlreg = 4984,
    debugreg = 5048,
    event_callback_eip = 5112,
    failsafe_callback_eip = 5120,
    syscall_callback_eip = 5128,
    vm_assist = 5136,
    fs_base = 5144,
    gs_base_kernel = 5152,
    gs_base_user = 5160,
);

impl VcpuGuestContext {
    /// All zero: no registers, an empty virtual IDT, no GDT, no callbacks.
    pub const fn zeroed() -> Self {
        const ZERO_TRAP: TrapInfo = TrapInfo { vector: 0, flags: 0, cs: 0, address: 0 };
        const ZERO_REGS: CpuUserRegs = CpuUserRegs {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            rbp: 0,
            rbx: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rax: 0,
            rcx: 0,
            rdx: 0,
            rsi: 0,
            rdi: 0,
            error_code: 0,
            entry_vector: 0,
            rip: 0,
            cs: 0,
            _pad0: 0,
            saved_upcall_mask: 0,
            _pad1: [0; 3],
            rflags: 0,
            rsp: 0,
            ss: 0,
            _pad2: [0; 3],
            es: 0,
            _pad3: [0; 3],
            ds: 0,
            _pad4: [0; 3],
            fs: 0,
            _pad5: [0; 3],
            gs: 0,
            _pad6: [0; 3],
        };
        Self {
            fpu_ctxt: [0; 512],
            flags: 0,
            user_regs: ZERO_REGS,
            trap_ctxt: [ZERO_TRAP; 256],
            ldt_base: 0,
            ldt_ents: 0,
            gdt_frames: [0; 16],
            gdt_ents: 0,
            kernel_ss: 0,
            kernel_sp: 0,
            ctrlreg: [0; 8],
            debugreg: [0; 8],
            event_callback_eip: 0,
            failsafe_callback_eip: 0,
            syscall_callback_eip: 0,
            vm_assist: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
        }
    }
}

/// `VCPU_HVM_MODE_*` of [`VcpuHvmContext::mode`].
pub mod hvm_mode {
    pub const MODE_32B: u32 = 0;
    pub const MODE_64B: u32 = 1;
}

/// `struct vcpu_hvm_x86_64`: a vCPU started directly in long mode. Xen
/// gives it a flat 64-bit code segment, flat data segments and a busy TSS
/// in the hidden parts of the segment registers (selectors 0); the guest
/// loads its own GDT and IDT before taking an interrupt.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuHvmX86_64 {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rip: u64,
    pub rflags: u64,
    /// Must have PG (and PE).
    pub cr0: u64,
    /// The guest-physical address of the top-level page table.
    pub cr3: u64,
    /// Must have PAE.
    pub cr4: u64,
    /// Must have LME (Xen adds LMA).
    pub efer: u64,
}
assert_layout!(VcpuHvmX86_64, size = 112, rsp = 32, rdi = 56, rip = 64, cr0 = 80, efer = 104);

/// `struct vcpu_hvm_context`. The register union is as large as its
/// 32-bit member (120 bytes); `_union_tail` pads the 64-bit one to it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuHvmContext {
    /// [`hvm_mode`].
    pub mode: u32,
    pub pad: u32,
    pub x86_64: VcpuHvmX86_64,
    pub _union_tail: u64,
}
assert_layout!(VcpuHvmContext, size = 128, mode = 0, pad = 4, x86_64 = 8);
