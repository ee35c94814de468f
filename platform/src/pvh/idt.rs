//! The native IDT of a PVH guest: exceptions arrive as on bare metal (the
//! CPU pushes `[error code], rip, cs, rflags, rsp, ss` on the kernel's own
//! stack, ring 0 to ring 0), and the event upcall is one more vector,
//! which Xen injects whenever `evtchn_upcall_pending` is set once
//! `HVM_PARAM_CALLBACK_IRQ` names it. The stubs build the same
//! [`TrapFrame`] as the PV stubs, so faults get the same crash report and
//! events run the same 2-level/FIFO code; they return with `iretq`.

#[cfg(doc)]
use crate::trap::TrapFrame;
use core::arch::global_asm;
use hypercall::abi::hvm;
use hypercall::ops::hvm as hvm_op;
use hypercall::XenError;
use spin::Once;
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::VirtAddr;

/// The vector Xen injects for events (Linux uses 0xf3 for the same).
pub const UPCALL_VECTOR: u8 = 0xf3;

global_asm!(
    concat!(
        r#"
    .pushsection .text.pvh_idt_stubs, "ax", @progbits

    .macro pvh_no_error name, vector
    .globl \name
\name:
    push $0
    push $\vector
    jmp pvh_trap_common
    .endm

    .macro pvh_error name, vector
    .globl \name
\name:
    push $\vector
    jmp pvh_trap_common
    .endm

    // Calls \handler(frame) on a 16-byte aligned stack, then returns to
    // the interrupted code with iretq.
    .macro pvh_call_and_return handler
"#,
        crate::trap::call_handler_asm!(),
        r#"
    iretq
    .endm

    pvh_no_error pvh_trap_0, 0
    pvh_no_error pvh_trap_1, 1
    pvh_no_error pvh_trap_2, 2
    pvh_no_error pvh_trap_3, 3
    pvh_no_error pvh_trap_4, 4
    pvh_no_error pvh_trap_5, 5
    pvh_no_error pvh_trap_6, 6
    pvh_no_error pvh_trap_7, 7
    pvh_error pvh_trap_8, 8
    pvh_error pvh_trap_10, 10
    pvh_error pvh_trap_11, 11
    pvh_error pvh_trap_12, 12
    pvh_error pvh_trap_13, 13
    pvh_error pvh_trap_14, 14
    pvh_no_error pvh_trap_16, 16
    pvh_error pvh_trap_17, 17
    pvh_no_error pvh_trap_18, 18
    pvh_no_error pvh_trap_19, 19

pvh_trap_common:
    pvh_call_and_return {trap}

    .globl pvh_upcall_entry
pvh_upcall_entry:
    push $0
    push ${upcall_vector}
    pvh_call_and_return {upcall}

    .popsection
    "#
    ),
    trap = sym crate::trap::rust_trap,
    upcall = sym crate::trap::rust_upcall,
    upcall_vector = const crate::trap::VECTOR_UPCALL,
    options(att_syntax)
);

extern "C" {
    fn pvh_trap_0();
    fn pvh_trap_1();
    fn pvh_trap_2();
    fn pvh_trap_3();
    fn pvh_trap_4();
    fn pvh_trap_5();
    fn pvh_trap_6();
    fn pvh_trap_7();
    fn pvh_trap_8();
    fn pvh_trap_10();
    fn pvh_trap_11();
    fn pvh_trap_12();
    fn pvh_trap_13();
    fn pvh_trap_14();
    fn pvh_trap_16();
    fn pvh_trap_17();
    fn pvh_trap_18();
    fn pvh_trap_19();
    fn pvh_upcall_entry();
}

static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Loads the IDT and asks Xen to deliver events on [`UPCALL_VECTOR`].
pub fn install() -> Result<(), XenError> {
    let idt = IDT.call_once(|| {
        let stubs: [(usize, unsafe extern "C" fn()); 18] = [
            (0, pvh_trap_0),
            (1, pvh_trap_1),
            (2, pvh_trap_2),
            (3, pvh_trap_3),
            (4, pvh_trap_4),
            (5, pvh_trap_5),
            (6, pvh_trap_6),
            (7, pvh_trap_7),
            (8, pvh_trap_8),
            (10, pvh_trap_10),
            (11, pvh_trap_11),
            (12, pvh_trap_12),
            (13, pvh_trap_13),
            (14, pvh_trap_14),
            (16, pvh_trap_16),
            (17, pvh_trap_17),
            (18, pvh_trap_18),
            (19, pvh_trap_19),
        ];
        let mut idt = InterruptDescriptorTable::new();
        for (vector, stub) in stubs {
            let addr = VirtAddr::new(stub as *const () as u64);
            // SAFETY: each stub handles the frame the CPU pushes for its
            // vector (with or without an error code, as listed above) and
            // returns with iretq or ends the domain.
            unsafe {
                match vector {
                    0 => idt.divide_error.set_handler_addr(addr),
                    1 => idt.debug.set_handler_addr(addr),
                    2 => idt.non_maskable_interrupt.set_handler_addr(addr),
                    3 => idt.breakpoint.set_handler_addr(addr),
                    4 => idt.overflow.set_handler_addr(addr),
                    5 => idt.bound_range_exceeded.set_handler_addr(addr),
                    6 => idt.invalid_opcode.set_handler_addr(addr),
                    7 => idt.device_not_available.set_handler_addr(addr),
                    // On its own stack (IST 1, `tss.rs`): a fault while
                    // pushing a frame on the current stack ends up here.
                    8 => idt
                        .double_fault
                        .set_handler_addr(addr)
                        .set_stack_index(super::tss::DOUBLE_FAULT_IST),
                    10 => idt.invalid_tss.set_handler_addr(addr),
                    11 => idt.segment_not_present.set_handler_addr(addr),
                    12 => idt.stack_segment_fault.set_handler_addr(addr),
                    13 => idt.general_protection_fault.set_handler_addr(addr),
                    14 => idt.page_fault.set_handler_addr(addr),
                    16 => idt.x87_floating_point.set_handler_addr(addr),
                    17 => idt.alignment_check.set_handler_addr(addr),
                    18 => idt.machine_check.set_handler_addr(addr),
                    _ => idt.simd_floating_point.set_handler_addr(addr),
                };
            }
        }
        // SAFETY: the upcall stub saves every register, runs the event
        // scan and returns with iretq.
        unsafe {
            idt[UPCALL_VECTOR]
                .set_handler_addr(VirtAddr::new(pvh_upcall_entry as *const () as u64));
        }
        idt
    });
    super::tss::load(0);
    idt.load();
    set_callback()
}

/// Asks Xen to deliver events on [`UPCALL_VECTOR`]
/// (`HVM_PARAM_CALLBACK_IRQ`): at start of day, and again after a suspend
/// (a new domain starts without it).
pub fn set_callback() -> Result<(), XenError> {
    hvm_op::set_callback_irq(hvm::callback_vector(UPCALL_VECTOR))
}

/// Loads the IDT [`install`] built on the calling CPU, secondary vCPU `n`
/// (the table is shared, each CPU's IDTR is its own), after `n`'s TSS
/// (the double fault's stack).
pub(crate) fn load_here(n: u32) -> Result<(), XenError> {
    let idt = IDT.get().ok_or(XenError::EINVAL)?;
    super::tss::load(n);
    idt.load();
    Ok(())
}
