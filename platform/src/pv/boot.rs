//! The image's contract with Xen's domain builder: ELF notes, the entry
//! stub and the boot stack (`xen/include/public/elfnote.h`).

use core::arch::global_asm;
use hypercall::abi::start_info::StartInfo;

// Notes are read by libelf from the PT_NOTE segment. Each is
// {namesz=4, descsz, type, "Xen\0", desc, pad to 4}.
// VIRT_BASE and PADDR_OFFSET are equal so that Xen maps every segment at
// its link address (the ELF paddr equals the vaddr in link.ld).
global_asm!(
    r#"
    .macro xen_note_str type, value
    .balign 4
    .long 4
    .long 6f - 5f
    .long \type
    .asciz "Xen"
5:  .asciz "\value"
6:  .balign 4
    .endm

    .macro xen_note_quad type, value
    .balign 4
    .long 4
    .long 6f - 5f
    .long \type
    .asciz "Xen"
5:  .quad \value
6:  .balign 4
    .endm

    .pushsection .note.Xen, "a", @note
    xen_note_str 6, "RustPV"
    xen_note_str 7, "0.1"
    xen_note_str 5, "xen-3.0"
    xen_note_str 8, "generic"
    xen_note_quad 3, __virt_base
    xen_note_quad 4, __virt_base
    xen_note_quad 1, _start
    xen_note_quad 2, hypercall_page
    // XEN_ELFNOTE_SUSPEND_CANCEL: a cancelled suspend returns 1 and the
    // domain carries on (`xl save -c`), instead of a full rebuild.
    .balign 4
    .long 4
    .long 4
    .long 14
    .asciz "Xen"
    .long 1
    .popsection

    .pushsection .bss.boot_stack, "aw", @nobits
    .balign 4096
    .globl __boot_stack_bottom
__boot_stack_bottom:
    .skip {stack_size}
__boot_stack_top:
    .popsection

    .pushsection .text.entry, "ax", @progbits
    .globl _start
_start:
    cld
    lea __boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %rsi, %rdi
    call {entry}
    ud2
    .popsection
    "#,
    entry = sym rust_entry,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);

/// Size of the boot stack in `.bss.boot_stack`.
pub const BOOT_STACK_SIZE: usize = 65536;

/// Where the entry stub lands: `start_info` is in `rdi` (Xen passed it in `rsi`).
extern "C" fn rust_entry(start_info: *const StartInfo) -> ! {
    super::init(start_info);
    extern "Rust" {
        /// The image's main, defined by [`crate::entry!`].
        fn __platform_image_main() -> !;
    }
    // SAFETY: the symbol is defined only by `platform::entry!`, as a safe
    // `fn() -> !` with this signature and the Rust ABI; the back end is set
    // up, as the kernel's main expects.
    unsafe { __platform_image_main() }
}
