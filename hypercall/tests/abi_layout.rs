//! Checks the hand-written structs of `hypercall::abi` against Xen's own C
//! headers (`/usr/include/xen`, Debian's `libxen-dev`).
//!
//! The `assert_layout!` lines next to each struct only check the Rust side
//! against numbers someone copied by hand; this test asks gcc. It writes a C
//! program that prints `sizeof`/`offsetof` (and each field's size) for every
//! row of [`table`], compiles it with `$CC` (default `cc`), runs it, and
//! compares each number with `size_of`/`offset_of!` on the Rust type. Every
//! mismatch is listed, not just the first.
//!
//! To check a new struct or constant, add a `layout!` or `consts!` block to
//! [`table`] (and its header to [`HEADERS`] if it is new).
//!
//! Missing headers or compiler are a failure, never a skip: a layout nobody
//! checked is how a guest ends up corrupting a page Xen shares with it.

use hypercall::abi::blkif;
use hypercall::abi::grant_table as gnt;
use hypercall::abi::{arch, hvm, memory, mmu, netif, vcpu, vcpu_context as vctx, xen, xenstore};
use hypercall::abi::{console, event_channel as evtchn, sched, shared_info, start_info, version};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Headers the C program includes, in order.
const HEADERS: &[&str] = &[
    "stdio.h",
    "stddef.h",
    "stdint.h",
    "errno.h",
    "xen/xen.h",
    "xen/version.h",
    "xen/sched.h",
    "xen/event_channel.h",
    "xen/vcpu.h",
    "xen/callback.h",
    "xen/memory.h",
    "xen/grant_table.h",
    "xen/io/console.h",
    "xen/io/xs_wire.h",
    "xen/io/blkif.h",
    "xen/io/netif.h",
    "xen/arch-x86/cpuid.h",
    "xen/arch-x86/hvm/start_info.h",
    "xen/hvm/params.h",
    "xen/hvm/hvm_op.h",
    "xen/hvm/hvm_vcpu.h",
];

/// The interface version the guest is written against: Xen 4.17's headers
/// support at most 0x00040e00. Without it the headers fall back to the
/// legacy (0x00000000) interface, which hides some newer definitions.
const XEN_INTERFACE_VERSION: &str = "0x00040e00";

/// One number both sides must agree on.
struct Row {
    /// What it is, for the failure message.
    what: String,
    /// A C expression whose value is the number.
    c_expr: String,
    /// The Rust side's number.
    rust: u64,
}

/// The size of a field's type, without needing a value of the struct.
fn field_size<S, F>(_project: fn(&S) -> &F) -> usize {
    core::mem::size_of::<F>()
}

/// The C name of a field: the Rust name unless a `: "c_name"` is given.
macro_rules! c_field {
    ($rf:ident) => {
        stringify!($rf)
    };
    ($rf:ident, $cf:literal) => {
        $cf
    };
}

/// Rows for one struct: its size, and each listed field's offset and size.
/// `layout!(rows, RustType => "struct c_name" { field, rust_field: "c_field" })`.
macro_rules! layout {
    ($rows:ident, $rty:ty => $cty:literal { $($rf:ident $(: $cf:literal)?),* $(,)? }) => {{
        $rows.push(Row {
            what: format!("sizeof({}) vs size_of::<{}>()", $cty, stringify!($rty)),
            c_expr: format!("sizeof({})", $cty),
            rust: core::mem::size_of::<$rty>() as u64,
        });
        $(
            let cf = c_field!($rf $(, $cf)?);
            $rows.push(Row {
                what: format!(
                    "offsetof({}, {}) vs offset_of!({}, {})",
                    $cty, cf, stringify!($rty), stringify!($rf)
                ),
                c_expr: format!("offsetof({}, {})", $cty, cf),
                rust: core::mem::offset_of!($rty, $rf) as u64,
            });
            $rows.push(Row {
                what: format!(
                    "sizeof(({}){{0}}.{}) vs size of {}::{}",
                    $cty, cf, stringify!($rty), stringify!($rf)
                ),
                c_expr: format!("sizeof((({} *)0)->{})", $cty, cf),
                rust: field_size(|s: &$rty| &s.$rf) as u64,
            });
        )*
    }};
}

/// Rows for constants: `consts!(rows, rust::CONST => "C_MACRO", ...)`.
macro_rules! consts {
    ($rows:ident, $($rust:expr => $c:literal),* $(,)?) => {{
        $(
            $rows.push(Row {
                what: format!("{} vs {}", $c, stringify!($rust)),
                c_expr: format!("({})", $c),
                rust: ($rust) as u64,
            });
        )*
    }};
}

/// Everything checked. One block per struct or group of constants: add yours.
fn table() -> Vec<Row> {
    let mut rows = Vec::new();

    // xen.h
    layout!(rows, start_info::StartInfo => "struct start_info" {
        magic, nr_pages, shared_info, flags, store_mfn, store_evtchn, console,
        pt_base, nr_pt_frames, mfn_list, mod_start, mod_len, cmd_line,
        first_p2m_pfn, nr_p2m_frames,
    });
    consts!(rows,
        start_info::MAX_GUEST_CMDLINE => "MAX_GUEST_CMDLINE",
        start_info::sif::PRIVILEGED => "SIF_PRIVILEGED",
        start_info::sif::INITDOMAIN => "SIF_INITDOMAIN",
        start_info::sif::MULTIBOOT_MOD => "SIF_MULTIBOOT_MOD",
        start_info::sif::MOD_START_PFN => "SIF_MOD_START_PFN",
        start_info::sif::VIRT_P2M_4TOOLS => "SIF_VIRT_P2M_4TOOLS",
    );
    layout!(rows, shared_info::VcpuTimeInfo => "struct vcpu_time_info" {
        version, pad0, tsc_timestamp, system_time, tsc_to_system_mul,
        tsc_shift, flags, pad1,
    });
    layout!(rows, shared_info::ArchVcpuInfo => "struct arch_vcpu_info" { cr2, pad });
    layout!(rows, shared_info::VcpuInfo => "struct vcpu_info" {
        evtchn_upcall_pending, evtchn_upcall_mask, evtchn_pending_sel, arch, time,
    });
    layout!(rows, shared_info::ArchSharedInfo => "struct arch_shared_info" {
        max_pfn, pfn_to_mfn_frame_list_list, nmi_reason, p2m_cr3, p2m_vaddr,
        p2m_generation,
    });
    layout!(rows, shared_info::SharedInfo => "struct shared_info" {
        vcpu_info, evtchn_pending, evtchn_mask, wc_version, wc_sec, wc_nsec,
        wc_sec_hi, arch,
    });
    consts!(rows,
        shared_info::LEGACY_MAX_VCPUS => "XEN_LEGACY_MAX_VCPUS",
        shared_info::BITS_PER_XEN_ULONG => "(sizeof(xen_ulong_t) * 8)",
        xen::HYPERVISOR_VIRT_START => "HYPERVISOR_VIRT_START",
        xen::HYPERVISOR_VIRT_END => "HYPERVISOR_VIRT_END",
        xen::MACH2PHYS_VIRT_START => "MACH2PHYS_VIRT_START",
        xen::MACH2PHYS_VIRT_END => "MACH2PHYS_VIRT_END",
        xen::DOMID_SELF => "DOMID_SELF",
        xen::uvmf::NONE => "UVMF_NONE",
        xen::uvmf::TLB_FLUSH => "UVMF_TLB_FLUSH",
        xen::uvmf::INVLPG => "UVMF_INVLPG",
        xen::uvmf::LOCAL => "UVMF_LOCAL",
        xen::uvmf::ALL => "UVMF_ALL",
        xen::consoleio::WRITE => "CONSOLEIO_write",
        xen::consoleio::READ => "CONSOLEIO_read",
        xen::xenmem::CURRENT_RESERVATION => "XENMEM_current_reservation",
        xen::xenmem::MAXIMUM_RESERVATION => "XENMEM_maximum_reservation",
    );
    consts!(rows,
        hypercall::raw::nr::SET_TRAP_TABLE => "__HYPERVISOR_set_trap_table",
        hypercall::raw::nr::MMU_UPDATE => "__HYPERVISOR_mmu_update",
        hypercall::raw::nr::SET_GDT => "__HYPERVISOR_set_gdt",
        hypercall::raw::nr::STACK_SWITCH => "__HYPERVISOR_stack_switch",
        hypercall::raw::nr::SET_CALLBACKS => "__HYPERVISOR_set_callbacks",
        hypercall::raw::nr::FPU_TASKSWITCH => "__HYPERVISOR_fpu_taskswitch",
        hypercall::raw::nr::PLATFORM_OP => "__HYPERVISOR_platform_op",
        hypercall::raw::nr::MEMORY_OP => "__HYPERVISOR_memory_op",
        hypercall::raw::nr::MULTICALL => "__HYPERVISOR_multicall",
        hypercall::raw::nr::UPDATE_VA_MAPPING => "__HYPERVISOR_update_va_mapping",
        hypercall::raw::nr::SET_TIMER_OP => "__HYPERVISOR_set_timer_op",
        hypercall::raw::nr::XEN_VERSION => "__HYPERVISOR_xen_version",
        hypercall::raw::nr::CONSOLE_IO => "__HYPERVISOR_console_io",
        hypercall::raw::nr::GRANT_TABLE_OP => "__HYPERVISOR_grant_table_op",
        hypercall::raw::nr::VM_ASSIST => "__HYPERVISOR_vm_assist",
        hypercall::raw::nr::IRET => "__HYPERVISOR_iret",
        hypercall::raw::nr::VCPU_OP => "__HYPERVISOR_vcpu_op",
        hypercall::raw::nr::SET_SEGMENT_BASE => "__HYPERVISOR_set_segment_base",
        hypercall::raw::nr::MMUEXT_OP => "__HYPERVISOR_mmuext_op",
        hypercall::raw::nr::NMI_OP => "__HYPERVISOR_nmi_op",
        hypercall::raw::nr::SCHED_OP => "__HYPERVISOR_sched_op",
        hypercall::raw::nr::CALLBACK_OP => "__HYPERVISOR_callback_op",
        hypercall::raw::nr::EVENT_CHANNEL_OP => "__HYPERVISOR_event_channel_op",
        hypercall::raw::nr::PHYSDEV_OP => "__HYPERVISOR_physdev_op",
        hypercall::raw::nr::HVM_OP => "__HYPERVISOR_hvm_op",
    );

    // version.h
    layout!(rows, version::CompileInfo => "struct xen_compile_info" {
        compiler, compile_by, compile_domain, compile_date,
    });
    layout!(rows, version::PlatformParameters => "struct xen_platform_parameters" { virt_start });
    layout!(rows, version::FeatureInfo => "struct xen_feature_info" { submap_idx, submap });
    layout!(rows, version::Extraversion => "xen_extraversion_t" {});
    layout!(rows, version::Capabilities => "xen_capabilities_info_t" {});
    layout!(rows, version::Changeset => "xen_changeset_info_t" {});
    consts!(rows,
        version::cmd::VERSION => "XENVER_version",
        version::cmd::EXTRAVERSION => "XENVER_extraversion",
        version::cmd::COMPILE_INFO => "XENVER_compile_info",
        version::cmd::CAPABILITIES => "XENVER_capabilities",
        version::cmd::CHANGESET => "XENVER_changeset",
        version::cmd::PLATFORM_PARAMETERS => "XENVER_platform_parameters",
        version::cmd::GET_FEATURES => "XENVER_get_features",
        version::cmd::PAGESIZE => "XENVER_pagesize",
        version::cmd::GUEST_HANDLE => "XENVER_guest_handle",
        version::cmd::COMMANDLINE => "XENVER_commandline",
    );

    // sched.h
    layout!(rows, sched::SchedShutdown => "struct sched_shutdown" { reason });
    layout!(rows, sched::SchedPoll => "struct sched_poll" { ports, nr_ports, timeout });
    consts!(rows,
        sched::cmd::YIELD => "SCHEDOP_yield",
        sched::cmd::BLOCK => "SCHEDOP_block",
        sched::cmd::SHUTDOWN => "SCHEDOP_shutdown",
        sched::cmd::POLL => "SCHEDOP_poll",
        sched::cmd::REMOTE_SHUTDOWN => "SCHEDOP_remote_shutdown",
        sched::cmd::SHUTDOWN_CODE => "SCHEDOP_shutdown_code",
        sched::cmd::WATCHDOG => "SCHEDOP_watchdog",
        sched::ShutdownReason::Poweroff => "SHUTDOWN_poweroff",
        sched::ShutdownReason::Reboot => "SHUTDOWN_reboot",
        sched::ShutdownReason::Suspend => "SHUTDOWN_suspend",
        sched::ShutdownReason::Crash => "SHUTDOWN_crash",
        sched::ShutdownReason::Watchdog => "SHUTDOWN_watchdog",
        sched::ShutdownReason::SoftReset => "SHUTDOWN_soft_reset",
    );

    // event_channel.h
    layout!(rows, evtchn::EvtchnSend => "struct evtchn_send" { port });
    layout!(rows, evtchn::EvtchnStatus => "struct evtchn_status" {
        dom, port, status, vcpu, u,
    });
    layout!(rows, evtchn::EvtchnAllocUnbound => "struct evtchn_alloc_unbound" {
        dom, remote_dom, port,
    });
    layout!(rows, evtchn::EvtchnBindInterdomain => "struct evtchn_bind_interdomain" {
        remote_dom, remote_port, local_port,
    });
    layout!(rows, evtchn::EvtchnClose => "struct evtchn_close" { port });
    consts!(rows,
        evtchn::cmd::BIND_INTERDOMAIN => "EVTCHNOP_bind_interdomain",
        evtchn::cmd::BIND_VIRQ => "EVTCHNOP_bind_virq",
        evtchn::cmd::CLOSE => "EVTCHNOP_close",
        evtchn::cmd::SEND => "EVTCHNOP_send",
        evtchn::cmd::STATUS => "EVTCHNOP_status",
        evtchn::cmd::ALLOC_UNBOUND => "EVTCHNOP_alloc_unbound",
        evtchn::cmd::BIND_IPI => "EVTCHNOP_bind_ipi",
        evtchn::cmd::BIND_VCPU => "EVTCHNOP_bind_vcpu",
        evtchn::cmd::UNMASK => "EVTCHNOP_unmask",
        evtchn::cmd::RESET => "EVTCHNOP_reset",
        evtchn::cmd::INIT_CONTROL => "EVTCHNOP_init_control",
        evtchn::cmd::EXPAND_ARRAY => "EVTCHNOP_expand_array",
        evtchn::cmd::SET_PRIORITY => "EVTCHNOP_set_priority",
        evtchn::stat::CLOSED => "EVTCHNSTAT_closed",
        evtchn::stat::UNBOUND => "EVTCHNSTAT_unbound",
        evtchn::stat::INTERDOMAIN => "EVTCHNSTAT_interdomain",
        evtchn::stat::PIRQ => "EVTCHNSTAT_pirq",
        evtchn::stat::VIRQ => "EVTCHNSTAT_virq",
        evtchn::stat::IPI => "EVTCHNSTAT_ipi",
    );

    layout!(rows, evtchn::EvtchnBindVirq => "struct evtchn_bind_virq" { virq, vcpu, port });
    layout!(rows, evtchn::EvtchnBindIpi => "struct evtchn_bind_ipi" { vcpu, port });
    layout!(rows, evtchn::EvtchnUnmask => "struct evtchn_unmask" { port });
    layout!(rows, evtchn::EvtchnBindVcpu => "struct evtchn_bind_vcpu" { port, vcpu });
    layout!(rows, evtchn::EvtchnInitControl => "struct evtchn_init_control" {
        control_gfn, offset, vcpu, link_bits, _pad,
    });
    layout!(rows, evtchn::EvtchnExpandArray => "struct evtchn_expand_array" { array_gfn });
    layout!(rows, evtchn::EvtchnSetPriority => "struct evtchn_set_priority" { port, priority });
    layout!(rows, evtchn::EvtchnFifoControlBlock => "struct evtchn_fifo_control_block" {
        ready, _rsvd, head,
    });
    consts!(rows,
        evtchn::virq::TIMER => "VIRQ_TIMER",
        evtchn::virq::DEBUG => "VIRQ_DEBUG",
        evtchn::fifo::PRIORITY_MAX => "EVTCHN_FIFO_PRIORITY_MAX",
        evtchn::fifo::PRIORITY_DEFAULT => "EVTCHN_FIFO_PRIORITY_DEFAULT",
        evtchn::fifo::PRIORITY_MIN => "EVTCHN_FIFO_PRIORITY_MIN",
        evtchn::fifo::MAX_QUEUES => "EVTCHN_FIFO_MAX_QUEUES",
        evtchn::fifo::PENDING => "(1u << EVTCHN_FIFO_PENDING)",
        evtchn::fifo::MASKED => "(1u << EVTCHN_FIFO_MASKED)",
        evtchn::fifo::LINKED => "(1u << EVTCHN_FIFO_LINKED)",
        evtchn::fifo::BUSY => "(1u << EVTCHN_FIFO_BUSY)",
        evtchn::fifo::LINK_BITS => "EVTCHN_FIFO_LINK_BITS",
        evtchn::fifo::LINK_MASK => "EVTCHN_FIFO_LINK_MASK",
        evtchn::fifo::WORDS_PER_PAGE => "(4096 / sizeof(event_word_t))",
    );

    // xen.h: page tables and multicalls
    layout!(rows, mmu::MmuUpdate => "struct mmu_update" { ptr, val });
    layout!(rows, mmu::MmuextOp => "struct mmuext_op" { cmd, arg1, arg2 });
    layout!(rows, mmu::MulticallEntry => "struct multicall_entry" { op, result, args });
    consts!(rows,
        mmu::cmd::NORMAL_PT_UPDATE => "MMU_NORMAL_PT_UPDATE",
        mmu::cmd::MACHPHYS_UPDATE => "MMU_MACHPHYS_UPDATE",
        mmu::cmd::PT_UPDATE_PRESERVE_AD => "MMU_PT_UPDATE_PRESERVE_AD",
        mmu::ext::PIN_L1_TABLE => "MMUEXT_PIN_L1_TABLE",
        mmu::ext::PIN_L2_TABLE => "MMUEXT_PIN_L2_TABLE",
        mmu::ext::PIN_L3_TABLE => "MMUEXT_PIN_L3_TABLE",
        mmu::ext::PIN_L4_TABLE => "MMUEXT_PIN_L4_TABLE",
        mmu::ext::UNPIN_TABLE => "MMUEXT_UNPIN_TABLE",
        mmu::ext::NEW_BASEPTR => "MMUEXT_NEW_BASEPTR",
        mmu::ext::TLB_FLUSH_LOCAL => "MMUEXT_TLB_FLUSH_LOCAL",
        mmu::ext::INVLPG_LOCAL => "MMUEXT_INVLPG_LOCAL",
        mmu::ext::TLB_FLUSH_MULTI => "MMUEXT_TLB_FLUSH_MULTI",
        mmu::ext::INVLPG_MULTI => "MMUEXT_INVLPG_MULTI",
        mmu::ext::TLB_FLUSH_ALL => "MMUEXT_TLB_FLUSH_ALL",
        mmu::ext::INVLPG_ALL => "MMUEXT_INVLPG_ALL",
        mmu::ext::FLUSH_CACHE => "MMUEXT_FLUSH_CACHE",
        mmu::ext::SET_LDT => "MMUEXT_SET_LDT",
        mmu::ext::NEW_USER_BASEPTR => "MMUEXT_NEW_USER_BASEPTR",
        mmu::ext::CLEAR_PAGE => "MMUEXT_CLEAR_PAGE",
        mmu::ext::COPY_PAGE => "MMUEXT_COPY_PAGE",
    );

    // memory.h
    layout!(rows, memory::XenMemoryReservation => "struct xen_memory_reservation" {
        extent_start, nr_extents, extent_order, mem_flags, domid,
    });
    consts!(rows,
        memory::cmd::INCREASE_RESERVATION => "XENMEM_increase_reservation",
        memory::cmd::DECREASE_RESERVATION => "XENMEM_decrease_reservation",
        memory::cmd::CURRENT_RESERVATION => "XENMEM_current_reservation",
        memory::cmd::MAXIMUM_RESERVATION => "XENMEM_maximum_reservation",
        memory::cmd::POPULATE_PHYSMAP => "XENMEM_populate_physmap",
    );

    // vcpu.h
    layout!(rows, vcpu::VcpuRegisterVcpuInfo => "struct vcpu_register_vcpu_info" {
        mfn, offset, rsvd,
    });
    // vcpu_guest_context and its registers (arch-x86/xen.h, xen-x86_64.h)
    layout!(rows, vctx::CpuUserRegs => "struct cpu_user_regs" {
        r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi,
        error_code, entry_vector, rip, cs, saved_upcall_mask, rflags, rsp, ss, es, ds, fs, gs,
    });
    layout!(rows, vctx::VcpuGuestContext => "struct vcpu_guest_context" {
        fpu_ctxt, flags, user_regs, trap_ctxt, ldt_base, ldt_ents, gdt_frames, gdt_ents,
        kernel_ss, kernel_sp, ctrlreg, debugreg, event_callback_eip, failsafe_callback_eip,
        syscall_callback_eip, vm_assist, fs_base, gs_base_kernel, gs_base_user,
    });
    consts!(rows,
        vctx::vgcf::I387_VALID => "VGCF_i387_valid",
        vctx::vgcf::IN_KERNEL => "VGCF_in_kernel",
        vctx::vgcf::FAILSAFE_DISABLES_EVENTS => "VGCF_failsafe_disables_events",
        vctx::vgcf::SYSCALL_DISABLES_EVENTS => "VGCF_syscall_disables_events",
        vctx::vgcf::ONLINE => "VGCF_online",
        vctx::hvm_mode::MODE_32B => "VCPU_HVM_MODE_32B",
        vctx::hvm_mode::MODE_64B => "VCPU_HVM_MODE_64B",
    );
    // hvm/hvm_vcpu.h
    layout!(rows, vctx::VcpuHvmX86_64 => "struct vcpu_hvm_x86_64" {
        rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, rip, rflags, cr0, cr3, cr4, efer,
    });
    layout!(rows, vctx::VcpuHvmContext => "struct vcpu_hvm_context" {
        mode, pad, x86_64: "cpu_regs.x86_64",
    });
    layout!(rows, vcpu::VcpuSetSingleshotTimer => "struct vcpu_set_singleshot_timer" {
        timeout_abs_ns, flags,
    });
    layout!(rows, vcpu::VcpuRunstateInfo => "struct vcpu_runstate_info" {
        state, state_entry_time, time,
    });
    consts!(rows,
        vcpu::cmd::INITIALISE => "VCPUOP_initialise",
        vcpu::cmd::UP => "VCPUOP_up",
        vcpu::cmd::DOWN => "VCPUOP_down",
        vcpu::cmd::IS_UP => "VCPUOP_is_up",
        vcpu::cmd::REGISTER_VCPU_INFO => "VCPUOP_register_vcpu_info",
        vcpu::cmd::GET_RUNSTATE_INFO => "VCPUOP_get_runstate_info",
        vcpu::cmd::SET_PERIODIC_TIMER => "VCPUOP_set_periodic_timer",
        vcpu::cmd::STOP_PERIODIC_TIMER => "VCPUOP_stop_periodic_timer",
        vcpu::cmd::SET_SINGLESHOT_TIMER => "VCPUOP_set_singleshot_timer",
        vcpu::cmd::STOP_SINGLESHOT_TIMER => "VCPUOP_stop_singleshot_timer",
        vcpu::SSHOTTMR_FUTURE => "VCPU_SSHOTTMR_future",
        vcpu::runstate::RUNNING => "RUNSTATE_running",
        vcpu::runstate::RUNNABLE => "RUNSTATE_runnable",
        vcpu::runstate::BLOCKED => "RUNSTATE_blocked",
        vcpu::runstate::OFFLINE => "RUNSTATE_offline",
    );

    // arch-x86/xen.h, arch-x86/xen-x86_64.h, callback.h
    layout!(rows, arch::TrapInfo => "struct trap_info" { vector, flags, cs, address });
    layout!(rows, arch::CallbackRegister => "struct callback_register" {
        kind: "type", flags, address,
    });
    consts!(rows,
        arch::FLAT_KERNEL_CS => "FLAT_KERNEL_CS",
        arch::FLAT_KERNEL_SS => "FLAT_KERNEL_SS",
        arch::callback_type::EVENT => "CALLBACKTYPE_event",
        arch::callback_type::FAILSAFE => "CALLBACKTYPE_failsafe",
        arch::callback_type::SYSCALL => "CALLBACKTYPE_syscall",
        arch::CALLBACKF_MASK_EVENTS => "CALLBACKF_mask_events",
        arch::CALLBACKOP_REGISTER => "CALLBACKOP_register",
        arch::VGCF_IN_SYSCALL => "VGCF_in_syscall",
    );

    // io/console.h
    layout!(rows, console::XenconsInterface => "struct xencons_interface" {
        input: "in", output: "out", in_cons, in_prod, out_cons, out_prod,
    });

    // io/netif.h
    layout!(rows, netif::NetifTxRequest => "struct netif_tx_request" { gref, offset, flags, id, size });
    layout!(rows, netif::NetifTxResponse => "struct netif_tx_response" { id, status });
    layout!(rows, netif::NetifRxRequest => "struct netif_rx_request" { id, pad, gref });
    layout!(rows, netif::NetifRxResponse => "struct netif_rx_response" { id, offset, flags, status });
    layout!(rows, netif::NetifExtraInfo => "struct netif_extra_info" { kind: "type", flags, u });
    rows.push(Row {
        what: "sizeof(netif_extra_info.u.gso) vs size_of::<NetifExtraGso>()".into(),
        c_expr: "sizeof(((struct netif_extra_info *)0)->u.gso)".into(),
        rust: core::mem::size_of::<netif::NetifExtraGso>() as u64,
    });
    consts!(rows,
        netif::NR_SLOTS_MIN => "XEN_NETIF_NR_SLOTS_MIN",
        netif::MAX_TX_SIZE => "XEN_NETIF_MAX_TX_SIZE",
        netif::txf::CSUM_BLANK => "NETTXF_csum_blank",
        netif::txf::DATA_VALIDATED => "NETTXF_data_validated",
        netif::txf::MORE_DATA => "NETTXF_more_data",
        netif::txf::EXTRA_INFO => "NETTXF_extra_info",
        netif::rxf::DATA_VALIDATED => "NETRXF_data_validated",
        netif::rxf::CSUM_BLANK => "NETRXF_csum_blank",
        netif::rxf::MORE_DATA => "NETRXF_more_data",
        netif::rxf::EXTRA_INFO => "NETRXF_extra_info",
        netif::rxf::GSO_PREFIX => "NETRXF_gso_prefix",
        netif::extra_type::NONE => "XEN_NETIF_EXTRA_TYPE_NONE",
        netif::extra_type::GSO => "XEN_NETIF_EXTRA_TYPE_GSO",
        netif::extra_type::MCAST_ADD => "XEN_NETIF_EXTRA_TYPE_MCAST_ADD",
        netif::extra_type::MCAST_DEL => "XEN_NETIF_EXTRA_TYPE_MCAST_DEL",
        netif::extra_type::HASH => "XEN_NETIF_EXTRA_TYPE_HASH",
        netif::extra_type::MAX => "XEN_NETIF_EXTRA_TYPE_MAX",
        netif::EXTRA_FLAG_MORE => "XEN_NETIF_EXTRA_FLAG_MORE",
        netif::gso_type::NONE => "XEN_NETIF_GSO_TYPE_NONE",
        netif::gso_type::TCPV4 => "XEN_NETIF_GSO_TYPE_TCPV4",
        netif::gso_type::TCPV6 => "XEN_NETIF_GSO_TYPE_TCPV6",
        netif::rsp::DROPPED as i64 => "NETIF_RSP_DROPPED",
        netif::rsp::ERROR as i64 => "NETIF_RSP_ERROR",
        netif::rsp::OKAY => "NETIF_RSP_OKAY",
        netif::rsp::NULL => "NETIF_RSP_NULL",
    );
    layout!(rows, netif::NetifCtrlRequest => "struct xen_netif_ctrl_request" { id, kind: "type", data });
    layout!(rows, netif::NetifCtrlResponse => "struct xen_netif_ctrl_response" {
        id, kind: "type", status, data,
    });
    consts!(rows,
        netif::CTRL_RING_PAGE_SLOTS => "__CONST_RING_SIZE(xen_netif_ctrl, 4096)",
        netif::ctrl_type::INVALID => "XEN_NETIF_CTRL_TYPE_INVALID",
        netif::ctrl_type::GET_HASH_FLAGS => "XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS",
        netif::ctrl_type::SET_HASH_FLAGS => "XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS",
        netif::ctrl_type::SET_HASH_KEY => "XEN_NETIF_CTRL_TYPE_SET_HASH_KEY",
        netif::ctrl_type::GET_HASH_MAPPING_SIZE => "XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE",
        netif::ctrl_type::SET_HASH_MAPPING_SIZE => "XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE",
        netif::ctrl_type::SET_HASH_MAPPING => "XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING",
        netif::ctrl_type::SET_HASH_ALGORITHM => "XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM",
        netif::ctrl_type::GET_GREF_MAPPING_SIZE => "XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE",
        netif::ctrl_type::ADD_GREF_MAPPING => "XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING",
        netif::ctrl_type::DEL_GREF_MAPPING => "XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING",
        netif::ctrl_status::SUCCESS => "XEN_NETIF_CTRL_STATUS_SUCCESS",
        netif::ctrl_status::NOT_SUPPORTED => "XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED",
        netif::ctrl_status::INVALID_PARAMETER => "XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER",
        netif::ctrl_status::BUFFER_OVERFLOW => "XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW",
        netif::hash_type::IPV4 => "XEN_NETIF_CTRL_HASH_TYPE_IPV4",
        netif::hash_type::IPV4_TCP => "XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP",
        netif::hash_type::IPV6 => "XEN_NETIF_CTRL_HASH_TYPE_IPV6",
        netif::hash_type::IPV6_TCP => "XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP",
        netif::hash_algorithm::NONE => "XEN_NETIF_CTRL_HASH_ALGORITHM_NONE",
        netif::hash_algorithm::TOEPLITZ => "XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ",
    );

    // io/blkif.h
    layout!(rows, blkif::Segment => "struct blkif_request_segment" { gref, first_sect, last_sect });
    layout!(rows, blkif::Request => "struct blkif_request" {
        operation, nr_segments, handle, id, sector_number, seg,
    });
    layout!(rows, blkif::RequestDiscard => "struct blkif_request_discard" {
        operation, flag, handle, id, sector_number, nr_sectors,
    });
    layout!(rows, blkif::RequestIndirect => "struct blkif_request_indirect" {
        operation, indirect_op, nr_segments, id, sector_number, handle, indirect_grefs,
    });
    layout!(rows, blkif::Response => "struct blkif_response" { id, operation, status });
    consts!(rows,
        blkif::OP_READ => "BLKIF_OP_READ",
        blkif::OP_WRITE => "BLKIF_OP_WRITE",
        blkif::OP_WRITE_BARRIER => "BLKIF_OP_WRITE_BARRIER",
        blkif::OP_FLUSH_DISKCACHE => "BLKIF_OP_FLUSH_DISKCACHE",
        blkif::OP_DISCARD => "BLKIF_OP_DISCARD",
        blkif::OP_INDIRECT => "BLKIF_OP_INDIRECT",
        blkif::Operation::Read as i64 => "BLKIF_OP_READ",
        blkif::Operation::Write as i64 => "BLKIF_OP_WRITE",
        blkif::Operation::WriteBarrier as i64 => "BLKIF_OP_WRITE_BARRIER",
        blkif::Operation::FlushDiskcache as i64 => "BLKIF_OP_FLUSH_DISKCACHE",
        blkif::Operation::Discard as i64 => "BLKIF_OP_DISCARD",
        blkif::Operation::Indirect as i64 => "BLKIF_OP_INDIRECT",
        blkif::MAX_SEGMENTS_PER_REQUEST => "BLKIF_MAX_SEGMENTS_PER_REQUEST",
        blkif::MAX_INDIRECT_PAGES_PER_REQUEST => "BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST",
        blkif::DiscardFlags::SECURE.bits() => "BLKIF_DISCARD_SECURE",
        blkif::RSP_OKAY as i64 => "BLKIF_RSP_OKAY",
        blkif::RSP_ERROR as i64 => "BLKIF_RSP_ERROR",
        blkif::RSP_EOPNOTSUPP as i64 => "BLKIF_RSP_EOPNOTSUPP",
        blkif::VdiskInfo::CDROM.bits() => "VDISK_CDROM",
        blkif::VdiskInfo::REMOVABLE.bits() => "VDISK_REMOVABLE",
        blkif::VdiskInfo::READONLY.bits() => "VDISK_READONLY",
    );
    // A ring slot is the union of request and response: the request.
    consts!(rows, core::mem::size_of::<blkif::Request>() => "sizeof(union blkif_sring_entry)");

    // io/xs_wire.h
    layout!(rows, xenstore::XenstoreDomainInterface => "struct xenstore_domain_interface" {
        req, rsp, req_cons, req_prod, rsp_cons, rsp_prod, server_features,
        connection, error,
    });
    layout!(rows, xenstore::XsdSockmsg => "struct xsd_sockmsg" { ty: "type", req_id, tx_id, len });
    consts!(rows,
        xenstore::RING_SIZE => "XENSTORE_RING_SIZE",
        xenstore::PAYLOAD_MAX => "XENSTORE_PAYLOAD_MAX",
        xenstore::ABS_PATH_MAX => "XENSTORE_ABS_PATH_MAX",
        xenstore::REL_PATH_MAX => "XENSTORE_REL_PATH_MAX",
        xenstore::SERVER_FEATURE_RECONNECTION => "XENSTORE_SERVER_FEATURE_RECONNECTION",
        xenstore::SERVER_FEATURE_ERROR => "XENSTORE_SERVER_FEATURE_ERROR",
        xenstore::CONNECTED => "XENSTORE_CONNECTED",
        xenstore::RECONNECT => "XENSTORE_RECONNECT",
        xenstore::ERROR_NONE => "XENSTORE_ERROR_NONE",
        xenstore::ERROR_COMM => "XENSTORE_ERROR_COMM",
        xenstore::ERROR_RINGIDX => "XENSTORE_ERROR_RINGIDX",
        xenstore::ERROR_PROTO => "XENSTORE_ERROR_PROTO",
        xenstore::msg_type::CONTROL => "XS_CONTROL",
        xenstore::msg_type::DIRECTORY => "XS_DIRECTORY",
        xenstore::msg_type::READ => "XS_READ",
        xenstore::msg_type::GET_PERMS => "XS_GET_PERMS",
        xenstore::msg_type::WATCH => "XS_WATCH",
        xenstore::msg_type::UNWATCH => "XS_UNWATCH",
        xenstore::msg_type::TRANSACTION_START => "XS_TRANSACTION_START",
        xenstore::msg_type::TRANSACTION_END => "XS_TRANSACTION_END",
        xenstore::msg_type::INTRODUCE => "XS_INTRODUCE",
        xenstore::msg_type::RELEASE => "XS_RELEASE",
        xenstore::msg_type::GET_DOMAIN_PATH => "XS_GET_DOMAIN_PATH",
        xenstore::msg_type::WRITE => "XS_WRITE",
        xenstore::msg_type::MKDIR => "XS_MKDIR",
        xenstore::msg_type::RM => "XS_RM",
        xenstore::msg_type::SET_PERMS => "XS_SET_PERMS",
        xenstore::msg_type::WATCH_EVENT => "XS_WATCH_EVENT",
        xenstore::msg_type::ERROR => "XS_ERROR",
        xenstore::msg_type::IS_DOMAIN_INTRODUCED => "XS_IS_DOMAIN_INTRODUCED",
        xenstore::msg_type::RESUME => "XS_RESUME",
        xenstore::msg_type::SET_TARGET => "XS_SET_TARGET",
        xenstore::msg_type::RESET_WATCHES => "XS_RESET_WATCHES",
        xenstore::msg_type::DIRECTORY_PART => "XS_DIRECTORY_PART",
        xenstore::msg_type::INVALID => "XS_INVALID",
        xenstore::WATCH_PATH => "XS_WATCH_PATH",
        xenstore::WATCH_TOKEN => "XS_WATCH_TOKEN",
    );

    // grant_table.h
    layout!(rows, gnt::GrantEntryV1 => "struct grant_entry_v1" { flags, domid, frame });
    layout!(rows, gnt::GrantEntryHeader => "struct grant_entry_header" { flags, domid });
    layout!(rows, gnt::GrantEntryV2 => "union grant_entry_v2" {
        hdr, pad0: "full_page.pad0", frame: "full_page.frame",
    });
    layout!(rows, gnt::GrantStatus => "grant_status_t" {});
    layout!(rows, gnt::GrantRef => "grant_ref_t" {});
    layout!(rows, gnt::GrantHandle => "grant_handle_t" {});
    layout!(rows, gnt::GnttabSetupTable => "struct gnttab_setup_table" {
        dom, nr_frames, status, frame_list,
    });
    layout!(rows, gnt::GnttabQuerySize => "struct gnttab_query_size" {
        dom, nr_frames, max_nr_frames, status,
    });
    layout!(rows, gnt::GnttabMapGrantRef => "struct gnttab_map_grant_ref" {
        host_addr, flags, ref_: "ref", dom, status, handle, dev_bus_addr,
    });
    layout!(rows, gnt::GnttabUnmapGrantRef => "struct gnttab_unmap_grant_ref" {
        host_addr, dev_bus_addr, handle, status,
    });
    layout!(rows, gnt::GnttabCopyPtr => "struct gnttab_copy_ptr" { u, domid, offset });
    layout!(rows, gnt::GnttabCopy => "struct gnttab_copy" { source, dest, len, flags, status });
    layout!(rows, gnt::GnttabSetVersion => "struct gnttab_set_version" { version });
    layout!(rows, gnt::GnttabGetVersion => "struct gnttab_get_version" { dom, pad, version });
    layout!(rows, gnt::GnttabGetStatusFrames => "struct gnttab_get_status_frames" {
        nr_frames, dom, status, frame_list,
    });
    consts!(rows,
        gnt::op::MAP_GRANT_REF => "GNTTABOP_map_grant_ref",
        gnt::op::UNMAP_GRANT_REF => "GNTTABOP_unmap_grant_ref",
        gnt::op::SETUP_TABLE => "GNTTABOP_setup_table",
        gnt::op::DUMP_TABLE => "GNTTABOP_dump_table",
        gnt::op::TRANSFER => "GNTTABOP_transfer",
        gnt::op::COPY => "GNTTABOP_copy",
        gnt::op::QUERY_SIZE => "GNTTABOP_query_size",
        gnt::op::UNMAP_AND_REPLACE => "GNTTABOP_unmap_and_replace",
        gnt::op::SET_VERSION => "GNTTABOP_set_version",
        gnt::op::GET_STATUS_FRAMES => "GNTTABOP_get_status_frames",
        gnt::op::GET_VERSION => "GNTTABOP_get_version",
        gnt::op::SWAP_GRANT_REF => "GNTTABOP_swap_grant_ref",
        gnt::op::CACHE_FLUSH => "GNTTABOP_cache_flush",
        gnt::NR_RESERVED_ENTRIES => "GNTTAB_NR_RESERVED_ENTRIES",
        gnt::RESERVED_CONSOLE => "GNTTAB_RESERVED_CONSOLE",
        gnt::RESERVED_XENSTORE => "GNTTAB_RESERVED_XENSTORE",
        gnt::gtf::INVALID => "GTF_invalid",
        gnt::gtf::PERMIT_ACCESS => "GTF_permit_access",
        gnt::gtf::ACCEPT_TRANSFER => "GTF_accept_transfer",
        gnt::gtf::TRANSITIVE => "GTF_transitive",
        gnt::gtf::TYPE_MASK => "GTF_type_mask",
        gnt::gtf::READONLY => "GTF_readonly",
        gnt::gtf::READING => "GTF_reading",
        gnt::gtf::WRITING => "GTF_writing",
        gnt::gtf::PWT => "GTF_PWT",
        gnt::gtf::PCD => "GTF_PCD",
        gnt::gtf::PAT => "GTF_PAT",
        gnt::gtf::SUB_PAGE => "GTF_sub_page",
        gnt::gtf::TRANSFER_COMMITTED => "GTF_transfer_committed",
        gnt::gtf::TRANSFER_COMPLETED => "GTF_transfer_completed",
        gnt::gntmap::DEVICE_MAP => "GNTMAP_device_map",
        gnt::gntmap::HOST_MAP => "GNTMAP_host_map",
        gnt::gntmap::READONLY => "GNTMAP_readonly",
        gnt::gntmap::APPLICATION_MAP => "GNTMAP_application_map",
        gnt::gntmap::CONTAINS_PTE => "GNTMAP_contains_pte",
        gnt::gntcopy::SOURCE_GREF => "GNTCOPY_source_gref",
        gnt::gntcopy::DEST_GREF => "GNTCOPY_dest_gref",
        gnt::V1_PER_FRAME => "(4096 / sizeof(grant_entry_v1_t))",
        gnt::V2_PER_FRAME => "(4096 / sizeof(grant_entry_v2_t))",
        gnt::STATUS_PER_FRAME => "(4096 / sizeof(grant_status_t))",
    );
    // GNTST_* are negative: compare them as i16 bit patterns.
    consts!(rows,
        gnt::gntst::OKAY as u16 => "(uint16_t)GNTST_okay",
        gnt::gntst::GENERAL_ERROR as u16 => "(uint16_t)GNTST_general_error",
        gnt::gntst::BAD_DOMAIN as u16 => "(uint16_t)GNTST_bad_domain",
        gnt::gntst::BAD_GNTREF as u16 => "(uint16_t)GNTST_bad_gntref",
        gnt::gntst::BAD_HANDLE as u16 => "(uint16_t)GNTST_bad_handle",
        gnt::gntst::BAD_VIRT_ADDR as u16 => "(uint16_t)GNTST_bad_virt_addr",
        gnt::gntst::BAD_DEV_ADDR as u16 => "(uint16_t)GNTST_bad_dev_addr",
        gnt::gntst::NO_DEVICE_SPACE as u16 => "(uint16_t)GNTST_no_device_space",
        gnt::gntst::PERMISSION_DENIED as u16 => "(uint16_t)GNTST_permission_denied",
        gnt::gntst::BAD_PAGE as u16 => "(uint16_t)GNTST_bad_page",
        gnt::gntst::BAD_COPY_ARG as u16 => "(uint16_t)GNTST_bad_copy_arg",
        gnt::gntst::ADDRESS_TOO_BIG as u16 => "(uint16_t)GNTST_address_too_big",
        gnt::gntst::EAGAIN as u16 => "(uint16_t)GNTST_eagain",
        gnt::gntst::NO_SPACE as u16 => "(uint16_t)GNTST_no_space",
    );

    // arch-x86/hvm/start_info.h, hvm/params.h, hvm/hvm_op.h, memory.h (PVH)
    layout!(rows, hvm::HvmStartInfo => "struct hvm_start_info" {
        magic, version, flags, nr_modules, modlist_paddr, cmdline_paddr,
        rsdp_paddr, memmap_paddr, memmap_entries, reserved,
    });
    layout!(rows, hvm::HvmModlistEntry => "struct hvm_modlist_entry" {
        paddr, size, cmdline_paddr, reserved,
    });
    layout!(rows, hvm::HvmMemmapTableEntry => "struct hvm_memmap_table_entry" {
        addr, size, type_: "type", reserved,
    });
    layout!(rows, hvm::XenHvmParam => "struct xen_hvm_param" { domid, pad, index, value });
    layout!(rows, hvm::XenAddToPhysmap => "struct xen_add_to_physmap" {
        domid, size, space, idx, gpfn,
    });
    consts!(rows,
        hvm::START_MAGIC_VALUE => "XEN_HVM_START_MAGIC_VALUE",
        hvm::memmap_type::RAM => "XEN_HVM_MEMMAP_TYPE_RAM",
        hvm::memmap_type::RESERVED => "XEN_HVM_MEMMAP_TYPE_RESERVED",
        hvm::memmap_type::ACPI => "XEN_HVM_MEMMAP_TYPE_ACPI",
        hvm::memmap_type::NVS => "XEN_HVM_MEMMAP_TYPE_NVS",
        hvm::memmap_type::UNUSABLE => "XEN_HVM_MEMMAP_TYPE_UNUSABLE",
        hvm::memmap_type::DISABLED => "XEN_HVM_MEMMAP_TYPE_DISABLED",
        hvm::memmap_type::PMEM => "XEN_HVM_MEMMAP_TYPE_PMEM",
        hvm::hvmop::SET_PARAM => "HVMOP_set_param",
        hvm::hvmop::GET_PARAM => "HVMOP_get_param",
        hvm::param::CALLBACK_IRQ => "HVM_PARAM_CALLBACK_IRQ",
        hvm::param::STORE_PFN => "HVM_PARAM_STORE_PFN",
        hvm::param::STORE_EVTCHN => "HVM_PARAM_STORE_EVTCHN",
        hvm::param::CONSOLE_PFN => "HVM_PARAM_CONSOLE_PFN",
        hvm::param::CONSOLE_EVTCHN => "HVM_PARAM_CONSOLE_EVTCHN",
        hvm::CALLBACK_TYPE_VECTOR => "HVM_PARAM_CALLBACK_TYPE_VECTOR",
        hvm::CALLBACK_IRQ_TYPE_MASK => "HVM_PARAM_CALLBACK_IRQ_TYPE_MASK",
        hvm::mapspace::SHARED_INFO => "XENMAPSPACE_shared_info",
        hvm::mapspace::GRANT_TABLE => "XENMAPSPACE_grant_table",
        hvm::MAPIDX_GRANT_TABLE_STATUS => "XENMAPIDX_grant_table_status",
        hvm::XENMEM_ADD_TO_PHYSMAP => "XENMEM_add_to_physmap",
        hvm::cpuid::FIRST_BASE => "XEN_CPUID_FIRST_LEAF",
        hvm::cpuid::SIGNATURE[0] => "XEN_CPUID_SIGNATURE_EBX",
        hvm::cpuid::SIGNATURE[1] => "XEN_CPUID_SIGNATURE_ECX",
        hvm::cpuid::SIGNATURE[2] => "XEN_CPUID_SIGNATURE_EDX",
    );

    rows
}

/// The C program: one `printf` per row, in order.
fn c_program(rows: &[Row]) -> String {
    let mut src = String::new();
    for h in HEADERS {
        writeln!(src, "#include <{h}>").unwrap();
    }
    src.push_str("int main(void)\n{\n");
    for row in rows {
        writeln!(src, "    printf(\"%llu\\n\", (unsigned long long)({}));", row.c_expr).unwrap();
    }
    src.push_str("    return 0;\n}\n");
    src
}

/// A scratch directory for this test's C files.
fn scratch_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("abi_layout");
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Compiles `src` into `dir/name` and returns the binary, or the compiler's
/// complaint.
fn compile(dir: &Path, name: &str, src: &str) -> Result<PathBuf, String> {
    let c = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    std::fs::write(&c, src).expect("write C source");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .arg("-std=gnu11")
        .arg("-Wall")
        .arg("-Werror")
        .arg(format!("-D__XEN_INTERFACE_VERSION__={XEN_INTERFACE_VERSION}"))
        .arg("-o")
        .arg(&bin)
        .arg(&c)
        .output()
        .map_err(|e| format!("cannot run C compiler `{cc}`: {e} (install gcc)"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cc}` failed on {}:\n{}",
            c.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(bin)
}

#[test]
fn abi_structs_match_xen_headers() {
    let dir = scratch_dir();

    // First the headers alone, so a machine without them gets the remedy
    // rather than a screen of compiler errors.
    let probe: String = HEADERS
        .iter()
        .map(|h| format!("#include <{h}>\n"))
        .chain(["int main(void) { return 0; }\n".to_string()])
        .collect();
    if let Err(e) = compile(&dir, "probe", &probe) {
        panic!("Xen public headers unusable: install libxen-dev (apt-get install libxen-dev)\n{e}");
    }

    let rows = table();
    let bin = compile(&dir, "layout", &c_program(&rows))
        .unwrap_or_else(|e| panic!("a row of the table names something the C headers lack:\n{e}"));
    let out = Command::new(&bin).output().expect("run layout program");
    assert!(out.status.success(), "layout program failed: {out:?}");
    let stdout = String::from_utf8(out.stdout).expect("layout program prints ASCII");
    let c_values: Vec<u64> =
        stdout.lines().map(|l| l.parse().expect("layout program prints numbers")).collect();
    assert_eq!(c_values.len(), rows.len(), "one number per row");

    let mismatches: Vec<String> = rows
        .iter()
        .zip(&c_values)
        .filter(|(row, &c)| row.rust != c)
        .map(|(row, c)| format!("  {}: C says {c}, Rust says {}", row.what, row.rust))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} layout checks disagree with Xen's headers:\n{}",
        mismatches.len(),
        rows.len(),
        mismatches.join("\n")
    );
    eprintln!("{} layout checks agree with Xen's headers", rows.len());
}
