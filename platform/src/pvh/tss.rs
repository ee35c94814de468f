//! A task state segment per vCPU, for one thing: the double fault's own
//! stack (IST 1). A PVH kernel runs in ring 0 and takes every exception
//! and the event upcall on the stack it is using. When that stack cannot
//! take a frame (an overflow into the guard page, or a wild `rsp`), the
//! CPU's push faults, the fault becomes a double fault, and without a
//! stack of its own the double fault's push faults too: a triple fault,
//! which Xen turns into a silent reboot of the domain (`d1v0 Triple
//! fault`, shutdown reason 1, no crash report). With IST 1 the double
//! fault runs the usual report (registers, `cr2`, the backtrace from
//! `rbp`) on a stack that is always there. (A PV guest has no such trap:
//! Xen crashes the domain when it cannot write the bounce frame.)
//!
//! Native kernels do the same (Linux: `DOUBLEFAULT_STACK` in each CPU's
//! TSS). The GDT keeps the boot GDT's selectors (`pvh/entry32.rs`: code
//! 0x08, data 0x10) and adds the TSS at 0x18; each vCPU has its own GDT,
//! since `ltr` marks its TSS descriptor busy.

use crate::smp::MAX_VCPUS;
use spin::Once;
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// The IDT's stack index for the double fault (IST 1).
pub const DOUBLE_FAULT_IST: u16 = 0;

/// Bytes of each vCPU's double-fault stack: the crash report's formatting
/// and console writes, with room to spare.
const STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

/// Written only by the CPU, when it takes a double fault on that vCPU.
static mut STACKS: [Stack; MAX_VCPUS] = [const { Stack([0; STACK_SIZE]) }; MAX_VCPUS];

static TSS: [Once<TaskStateSegment>; MAX_VCPUS] = [const { Once::new() }; MAX_VCPUS];
/// Each vCPU's GDT, built afresh by that vCPU at each start (its TSS
/// descriptor is busy once loaded, and `ltr` of a busy one faults).
static mut GDTS: [GlobalDescriptorTable; MAX_VCPUS] =
    [const { GlobalDescriptorTable::new() }; MAX_VCPUS];

/// Loads vCPU `n`'s GDT and TSS on the calling CPU: vCPU `n` itself, at
/// each start, before the IDT (whose double-fault gate names IST 1).
pub fn load(n: u32) {
    let n = n as usize;
    if n >= MAX_VCPUS {
        return;
    }
    let tss = TSS[n].call_once(|| {
        let mut t = TaskStateSegment::new();
        // SAFETY: only the address is taken; the stack is the CPU's alone.
        let top = unsafe { core::ptr::addr_of!(STACKS[n]) } as u64 + STACK_SIZE as u64;
        t.interrupt_stack_table[DOUBLE_FAULT_IST as usize] = VirtAddr::new(top);
        t
    });
    // SAFETY: vCPU n's GDT is written only here, by vCPU n as it starts
    // (each vCPU loads its own), before this CPU loads it; the `&mut`
    // ends before the shared reference below is taken.
    let sel = unsafe {
        let g = &mut *core::ptr::addr_of_mut!(GDTS[n]);
        *g = GlobalDescriptorTable::new();
        let code = g.append(Descriptor::kernel_code_segment());
        let data = g.append(Descriptor::kernel_data_segment());
        debug_assert_eq!((code.0, data.0), (0x08, 0x10));
        g.append(Descriptor::tss_segment(tss))
    };
    // SAFETY: nothing writes the table again until this vCPU restarts.
    let gdt: &'static GlobalDescriptorTable = unsafe { &*core::ptr::addr_of!(GDTS[n]) };
    // The loaded selectors (CS 0x08, SS/DS/ES 0x10) name the same kinds of
    // segment in this table as in the boot GDT: nothing to reload.
    gdt.load();
    // SAFETY: the selector names this vCPU's TSS descriptor, just written
    // (not busy) into the GDT just loaded.
    unsafe { load_tss(sel) };
}
