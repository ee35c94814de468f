//! The PVH entry: where Xen starts the image when the domain is created
//! with `type="pvh"` (`docs/misc/pvh.pandoc` in Xen's tree).
//!
//! Xen enters at the physical address in the `XEN_ELFNOTE_PHYS32_ENTRY`
//! note in 32-bit protected mode: paging off, flat 4 GiB `cs`/`ds`/`ss`,
//! interrupts off, `ebx` = physical address of `struct hvm_start_info`.
//! Nothing else is set up: no GDT of ours, no stack, no page tables. The
//! image is linked with its virtual addresses equal to its physical ones
//! (`link.ld`: both 4 MiB), so this stub identity-maps the first 4 GiB with
//! 2 MiB pages, enters long mode and calls Rust on the boot stack; the
//! Rust side then refines the map (the null page and the stack guard).
//!
//! The same image keeps its PV notes: a PV domain builder ignores this
//! note and enters at `_start` (platform/boot.rs) instead.

use core::arch::global_asm;

/// Entries of the four page directories: 4 GiB of 2 MiB pages.
pub const BOOT_PD_ENTRIES: usize = 4 * 512;

global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18                 // XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .quad pvh_start32
    .balign 4
    .popsection

    // The boot page tables: one PML4, one PDPT, four page directories.
    .pushsection .bss.pvh_boot_tables, "aw", @nobits
    .balign 4096
    .globl pvh_boot_pml4
pvh_boot_pml4:
    .skip 4096
    .globl pvh_boot_pdpt
pvh_boot_pdpt:
    .skip 4096
    .globl pvh_boot_pd
pvh_boot_pd:
    .skip 4096 * 4
    .popsection

    // null, 64-bit code (0x08), data (0x10).
    .pushsection .rodata.pvh_gdt, "a", @progbits
    .balign 16
pvh_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
pvh_gdt_end:
    .balign 16
    .globl pvh_gdt_ptr
pvh_gdt_ptr:
    .word pvh_gdt_end - pvh_gdt - 1
    .quad pvh_gdt
    .popsection

    .pushsection .text.pvh_entry, "ax", @progbits
    .code32
    .balign 16
    .globl pvh_start32
pvh_start32:
    cld
    cli
    mov %ebx, %esi                      // hvm_start_info (kept until Rust)
    lgdt pvh_gdt_ptr
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss

    // Page directories: entry j maps [j * 2 MiB, (j + 1) * 2 MiB).
    mov $pvh_boot_pd, %edi
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                      // present, writable, 2 MiB page
    mov %eax, (%edi,%ecx,8)
    movl $0, 4(%edi,%ecx,8)
    inc %ecx
    cmp ${pd_entries}, %ecx
    jb 1b

    // The PDPT's first four entries point at the four directories.
    mov $pvh_boot_pdpt, %edi
    mov $pvh_boot_pd + 0x3, %eax        // present, writable
    xor %ecx, %ecx
2:  mov %eax, (%edi,%ecx,8)
    movl $0, 4(%edi,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jb 2b

    mov $pvh_boot_pml4, %edi
    movl $pvh_boot_pdpt + 0x3, (%edi)
    movl $0, 4(%edi)

    mov %cr4, %eax
    or $0x20, %eax                      // PAE
    mov %eax, %cr4
    mov $pvh_boot_pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx               // EFER
    rdmsr
    or $0x100, %eax                     // LME
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax                // PG, WP, PE
    mov %eax, %cr0
    ljmp $0x08, $pvh_start64

    .code64
pvh_start64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    lea __boot_stack_bottom + {stack_size}(%rip), %rsp
    xor %ebp, %ebp
    mov %esi, %edi                      // zero-extended: hvm_start_info
    call {entry}
    ud2
    .popsection
    "#,
    pd_entries = const BOOT_PD_ENTRIES,
    stack_size = const crate::pv::boot::BOOT_STACK_SIZE,
    entry = sym super::rust_pvh_entry,
    options(att_syntax)
);
