//! Entry points Xen calls: the virtual IDT (exceptions), the event upcall
//! and the failsafe callback.
//!
//! A 64-bit PV kernel runs in ring 3, so Xen delivers these by building a
//! "bounce frame" on the current stack: `rcx, r11, [error code], rip, cs,
//! rflags, rsp, ss` (`xen/arch/x86/x86_64/entry.S`, create_bounce_frame),
//! 16-byte aligned. The stubs below turn it into a [`TrapFrame`] and return
//! through `HYPERVISOR_iret`, which restores the event mask from the saved
//! `rflags.IF` atomically with the return.

use core::arch::global_asm;
use hypercall::abi::arch::{callback_type, TrapInfo, FLAT_KERNEL_CS, TI_MASK_EVENTS};
use hypercall::ops::arch;
use hypercall::XenError;

#[cfg(doc)]
use crate::trap::TrapFrame;
use crate::trap::{VECTOR_FAILSAFE, VECTOR_UPCALL};

global_asm!(
    concat!(
        r#"
    .pushsection .text.entry_stubs, "ax", @progbits

    // Xen left the interrupted rcx and r11 on top of its frame.
    .macro load_rcx_r11 skip
    mov (%rsp), %rcx
    mov 8(%rsp), %r11
    add $\skip, %rsp
    .endm

    .macro trap_no_error name, vector
    .globl \name
\name:
    load_rcx_r11 16
    push $0
    push $\vector
    jmp trap_common
    .endm

    .macro trap_error name, vector
    .globl \name
\name:
    load_rcx_r11 16
    push $\vector
    jmp trap_common
    .endm

    // Calls \handler(frame) on a 16-byte aligned stack, then returns to
    // the interrupted code through HYPERVISOR_iret.
    .macro call_and_return handler
"#,
        crate::trap::call_handler_asm!(),
        r#"
    push $0                // iret flags: not returning from a syscall
    jmp hypercall_page + 23 * 32
    .endm

    trap_no_error xen_trap_divide_error, 0
    trap_no_error xen_trap_debug, 1
    trap_no_error xen_trap_int3, 3
    trap_no_error xen_trap_overflow, 4
    trap_no_error xen_trap_bounds, 5
    trap_no_error xen_trap_invalid_op, 6
    trap_no_error xen_trap_device_not_available, 7
    trap_no_error xen_trap_coprocessor_segment_overrun, 9
    trap_error xen_trap_invalid_tss, 10
    trap_error xen_trap_segment_not_present, 11
    trap_error xen_trap_stack_segment, 12
    trap_error xen_trap_general_protection, 13
    trap_error xen_trap_page_fault, 14
    trap_no_error xen_trap_coprocessor_error, 16
    trap_error xen_trap_alignment_check, 17
    trap_no_error xen_trap_machine_check, 18
    trap_no_error xen_trap_simd_error, 19

trap_common:
    call_and_return {trap}

    .globl xen_event_callback
xen_event_callback:
    load_rcx_r11 16
    push $0
    push ${upcall_vector}
    call_and_return {upcall}

    // The failsafe frame also carries ds, es, fs, gs: Xen could not load
    // them on a return to the guest. That is a bug here; report it.
    .globl xen_failsafe_callback
xen_failsafe_callback:
    load_rcx_r11 48
    push $0
    push ${failsafe_vector}
    jmp trap_common

    .popsection
    "#
    ),
    trap = sym crate::trap::rust_trap,
    upcall = sym crate::trap::rust_upcall,
    upcall_vector = const VECTOR_UPCALL,
    failsafe_vector = const VECTOR_FAILSAFE,
    options(att_syntax)
);

extern "C" {
    fn xen_trap_divide_error();
    fn xen_trap_debug();
    fn xen_trap_int3();
    fn xen_trap_overflow();
    fn xen_trap_bounds();
    fn xen_trap_invalid_op();
    fn xen_trap_device_not_available();
    fn xen_trap_coprocessor_segment_overrun();
    fn xen_trap_invalid_tss();
    fn xen_trap_segment_not_present();
    fn xen_trap_stack_segment();
    fn xen_trap_general_protection();
    fn xen_trap_page_fault();
    fn xen_trap_coprocessor_error();
    fn xen_trap_alignment_check();
    fn xen_trap_machine_check();
    fn xen_trap_simd_error();
    fn xen_event_callback();
    fn xen_failsafe_callback();
}

/// The virtual IDT: one entry per handled vector (18, the last zero).
pub(crate) fn trap_table() -> [TrapInfo; 18] {
    // (vector, stub, lowest ring that may `int` it): int3 and into are for everyone.
    let stubs: [(u8, unsafe extern "C" fn(), u8); 17] = [
        (0, xen_trap_divide_error, 0),
        (1, xen_trap_debug, 0),
        (3, xen_trap_int3, 3),
        (4, xen_trap_overflow, 3),
        (5, xen_trap_bounds, 0),
        (6, xen_trap_invalid_op, 0),
        (7, xen_trap_device_not_available, 0),
        (9, xen_trap_coprocessor_segment_overrun, 0),
        (10, xen_trap_invalid_tss, 0),
        (11, xen_trap_segment_not_present, 0),
        (12, xen_trap_stack_segment, 0),
        (13, xen_trap_general_protection, 0),
        (14, xen_trap_page_fault, 0),
        (16, xen_trap_coprocessor_error, 0),
        (17, xen_trap_alignment_check, 0),
        (18, xen_trap_machine_check, 0),
        (19, xen_trap_simd_error, 0),
    ];
    let mut table = [TrapInfo { vector: 0, flags: 0, cs: 0, address: 0 }; 18];
    for (slot, &(vector, stub, dpl)) in table.iter_mut().zip(stubs.iter()) {
        // Mask events on entry, like an interrupt gate: a fault handler
        // must not be interrupted by an upcall.
        *slot = TrapInfo {
            vector,
            flags: dpl | TI_MASK_EVENTS,
            cs: FLAT_KERNEL_CS,
            address: stub as *const () as u64,
        };
    }
    table
}

/// The event and failsafe callback entries.
pub(crate) fn callbacks() -> (u64, u64) {
    (xen_event_callback as *const () as u64, xen_failsafe_callback as *const () as u64)
}

/// Installs the virtual IDT and the event and failsafe callbacks.
pub fn install() -> Result<(), XenError> {
    let table = trap_table();
    // SAFETY: every address is a stub above that handles Xen's exception
    // frame for its vector; the table ends with a zero entry.
    unsafe { arch::set_trap_table(&table)? };
    let (event, failsafe) = callbacks();
    // SAFETY: the stubs handle Xen's event and failsafe callback frames.
    unsafe {
        arch::register_callback(callback_type::EVENT, 0, event)?;
        arch::register_callback(callback_type::FAILSAFE, 0, failsafe)?;
    }
    Ok(())
}
