//! Hypercall tracing: every call through [`crate::raw::hypercall`], with
//! its arguments decoded, its result and its cost in TSC cycles, handed to
//! a hook (the kernel's `trace=hypercalls`, `kernel/src/trace/`).
//!
//! Off (no hook set) a hypercall pays one relaxed load of [`ON`] and a
//! branch that is not taken. On, the call goes through [`traced`]: the
//! argument structs the call names are copied (a few bytes, before and
//! after the call, while the caller's borrow of them is still live), the
//! TSC is read on both sides of the `call` into the hypercall page, and
//! the hook gets a [`Call`]. Decoding those bytes into names and fields is
//! plain safe code ([`Call`]'s `Display`), host-tested below.
//!
//! What is not seen here: `HYPERVISOR_iret` (a jump into the hypercall page
//! from the trap return path, `platform/src/pv/entry.rs`) and the calls
//! that Xen makes on the guest's behalf inside a multicall (the multicall
//! itself is traced, with its first and last entries).

use crate::abi::{event_channel as ev, grant_table as gt, memory as mem, mmu, sched, vcpu};
use crate::raw::nr;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes of an argument struct kept per call (a multicall entry's size).
pub const CAPTURE_BYTES: usize = 64;

/// What a traced call looked like.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    /// `__HYPERVISOR_*`.
    pub nr: u32,
    /// The five argument registers (`rdi, rsi, rdx, r10, r8`).
    pub args: [u64; 5],
    /// What Xen returned in `rax` (negative: `-errno`).
    pub ret: i64,
    /// TSC cycles from just before the `call` to just after it returned,
    /// less what the two TSC reads cost ([`tsc_pair_cycles`]).
    pub cycles: u64,
    /// The argument struct (or first array element) before the call.
    pub before: Capture,
    /// The same bytes after the call (Xen's outputs).
    pub after: Capture,
}

/// A copy of the bytes a call's pointer argument named.
#[derive(Clone, Copy, Debug)]
pub struct Capture {
    pub bytes: [u8; CAPTURE_BYTES],
    pub len: usize,
    /// One word behind a guest handle inside the struct (the first extent
    /// of a reservation, the first port of a poll), if there is one.
    pub extra: Option<u64>,
}

impl Capture {
    pub const EMPTY: Capture = Capture { bytes: [0; CAPTURE_BYTES], len: 0, extra: None };

    fn u16(&self, off: usize) -> u16 {
        self.get::<2>(off).map_or(0, u16::from_le_bytes)
    }
    fn i16(&self, off: usize) -> i16 {
        self.u16(off) as i16
    }
    fn u32(&self, off: usize) -> u32 {
        self.get::<4>(off).map_or(0, u32::from_le_bytes)
    }
    fn u64(&self, off: usize) -> u64 {
        self.get::<8>(off).map_or(0, u64::from_le_bytes)
    }
    fn get<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        if off + N > self.len {
            return None;
        }
        let mut b = [0; N];
        b.copy_from_slice(&self.bytes[off..off + N]);
        Some(b)
    }
    /// Whether anything was captured.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Where a call's argument bytes are: `len` bytes at `addr`, and maybe one
/// word behind a handle stored in them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub addr: u64,
    pub len: usize,
    pub extra: Option<Indirect>,
}

/// A word to read through a guest handle found in the captured bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Indirect {
    /// Offset of the handle (a virtual address) in the captured bytes.
    pub handle_at: usize,
    /// Offset of the element count in the captured bytes (read as `u32`);
    /// nothing is read when it is 0.
    pub count_at: usize,
    /// Bytes of the element (4 or 8).
    pub size: usize,
}

/// Which bytes hypercall `nr` with `args` points at (none for calls that
/// take no pointer, or whose pointer is 0). Sizes are the structs' in
/// `crate::abi`, so nothing past what the caller owns is read.
pub fn plan(nr: u32, args: &[u64; 5]) -> Option<Plan> {
    use core::mem::size_of;
    let at =
        |addr: u64, len: usize| (addr != 0 && len > 0).then_some(Plan { addr, len, extra: None });
    let count = |n: u64| n > 0;
    match nr {
        nr::MMU_UPDATE if count(args[1]) => at(args[0], size_of::<mmu::MmuUpdate>()),
        nr::MMUEXT_OP if count(args[1]) => at(args[0], size_of::<mmu::MmuextOp>()),
        nr::MULTICALL if count(args[1]) => at(args[0], size_of::<mmu::MulticallEntry>()),
        nr::SET_TRAP_TABLE => at(args[0], size_of::<crate::abi::arch::TrapInfo>()),
        nr::CALLBACK_OP => at(args[1], size_of::<crate::abi::arch::CallbackRegister>()),
        nr::CONSOLE_IO => at(args[2], (args[1] as usize).min(CAPTURE_BYTES)),
        nr::HVM_OP => at(args[1], size_of::<crate::abi::hvm::XenHvmParam>()),
        nr::MEMORY_OP => match (args[0] & MEMOP_CMD_MASK) as u32 {
            mem::cmd::INCREASE_RESERVATION
            | mem::cmd::DECREASE_RESERVATION
            | mem::cmd::POPULATE_PHYSMAP => at(args[1], size_of::<mem::XenMemoryReservation>())
                .map(|p| Plan {
                    extra: Some(Indirect { handle_at: 0, count_at: 8, size: 8 }),
                    ..p
                }),
            mem::cmd::CURRENT_RESERVATION | mem::cmd::MAXIMUM_RESERVATION => at(args[1], 2),
            XENMEM_ADD_TO_PHYSMAP => at(args[1], 24),
            _ => None,
        },
        nr::GRANT_TABLE_OP if count(args[2]) => {
            let len = match args[0] as u32 {
                gt::op::MAP_GRANT_REF => size_of::<gt::GnttabMapGrantRef>(),
                gt::op::UNMAP_GRANT_REF => size_of::<gt::GnttabUnmapGrantRef>(),
                gt::op::SETUP_TABLE => size_of::<gt::GnttabSetupTable>(),
                gt::op::COPY => size_of::<gt::GnttabCopy>(),
                gt::op::QUERY_SIZE => size_of::<gt::GnttabQuerySize>(),
                gt::op::SET_VERSION => size_of::<gt::GnttabSetVersion>(),
                gt::op::GET_VERSION => size_of::<gt::GnttabGetVersion>(),
                gt::op::GET_STATUS_FRAMES => size_of::<gt::GnttabGetStatusFrames>(),
                _ => 0,
            };
            at(args[1], len)
        }
        nr::EVENT_CHANNEL_OP => {
            let len = match args[0] as u32 {
                ev::cmd::SEND | ev::cmd::CLOSE | ev::cmd::UNMASK => 4,
                ev::cmd::ALLOC_UNBOUND | ev::cmd::BIND_IPI | ev::cmd::BIND_VCPU => 8,
                ev::cmd::SET_PRIORITY | ev::cmd::EXPAND_ARRAY => 8,
                ev::cmd::BIND_INTERDOMAIN | ev::cmd::BIND_VIRQ => 12,
                ev::cmd::STATUS | ev::cmd::INIT_CONTROL => 24,
                ev::cmd::RESET => 2,
                _ => 0,
            };
            at(args[1], len)
        }
        nr::SCHED_OP => match args[0] as u32 {
            sched::cmd::SHUTDOWN => at(args[1], 4),
            sched::cmd::POLL => at(args[1], size_of::<sched::SchedPoll>()).map(|p| Plan {
                extra: Some(Indirect { handle_at: 0, count_at: 8, size: 4 }),
                ..p
            }),
            _ => None,
        },
        nr::VCPU_OP => match args[0] as u32 {
            vcpu::cmd::SET_SINGLESHOT_TIMER => at(args[2], 16),
            vcpu::cmd::GET_RUNSTATE_INFO => at(args[2], size_of::<vcpu::VcpuRunstateInfo>()),
            _ => None,
        },
        nr::XEN_VERSION => match args[0] as u32 {
            crate::abi::version::cmd::GET_FEATURES => at(args[1], 8),
            crate::abi::version::cmd::EXTRAVERSION => at(args[1], 16),
            _ => None,
        },
        _ => None,
    }
}

/// `MEMOP_CMD_MASK`: the command bits of `memory_op`'s first argument (the
/// rest carry a continuation's start extent).
const MEMOP_CMD_MASK: u64 = (1 << 6) - 1;
/// `XENMEM_add_to_physmap`.
const XENMEM_ADD_TO_PHYSMAP: u32 = 7;

/// Copies what `plan` names.
///
/// # Safety
/// The plan must come from [`plan`] for the arguments of a hypercall
/// whose caller vouched (as [`crate::raw::hypercall`] requires) that its
/// pointers name live memory of the layout Xen expects, for the duration
/// of the call; this is called just before and just after that call, inside
/// it as far as the caller's borrows go.
unsafe fn capture(plan: Option<Plan>) -> Capture {
    let mut c = Capture::EMPTY;
    let Some(p) = plan else { return c };
    let len = p.len.min(CAPTURE_BYTES);
    // SAFETY: the caller vouched that `len` bytes at `p.addr` are the
    // argument struct (or the first element of the array) of this call.
    unsafe { core::ptr::copy_nonoverlapping(p.addr as *const u8, c.bytes.as_mut_ptr(), len) };
    c.len = len;
    if let Some(ind) = p.extra {
        let handle = c.u64(ind.handle_at);
        if c.u32(ind.count_at) > 0 && handle != 0 {
            let mut w = [0u8; 8];
            // SAFETY: the struct's handle names an array of at least one
            // element of `ind.size` bytes (its count is not 0), which the
            // caller vouched for with the struct.
            unsafe {
                core::ptr::copy_nonoverlapping(handle as *const u8, w.as_mut_ptr(), ind.size)
            };
            c.extra = Some(u64::from_le_bytes(w));
        }
    }
    c
}

/// A multicall of two or more entries: its last entry's `op` and first
/// argument (the command of a multiplexed call: `op | arg0 << 32`) at
/// offset 16, or its `result` at offset 8. A sleep's multicall ends in
/// `SCHEDOP_block`, and the first entry alone would not say so.
///
/// # Safety
/// `args` are a multicall's, whose entry array the caller vouched for.
unsafe fn last_entry(nr: u32, args: &[u64; 5], field: u64) -> Option<u64> {
    if nr != nr::MULTICALL || args[1] < 2 || args[0] == 0 {
        return None;
    }
    let entry = args[0] + (args[1] - 1) * core::mem::size_of::<mmu::MulticallEntry>() as u64;
    // SAFETY: the last of the `args[1]` entries at `args[0]`; `op`,
    // `result` and `args[0]` are its words at offsets 0, 8 and 16.
    let word = |off: u64| unsafe { core::ptr::read_unaligned((entry + off) as *const u64) };
    Some(match field {
        16 => (word(0) & 0xffff_ffff) | (word(16) << 32),
        _ => word(field),
    })
}

/// Whether a hook is set. Read (relaxed) on every hypercall.
static ON: AtomicBool = AtomicBool::new(false);
static HOOK: spin::Once<fn(&Call)> = spin::Once::new();
/// What two back-to-back TSC reads cost (the least of a few tries), taken
/// off every call's cycles. Large when Xen emulates `rdtsc` (a PV guest
/// without `tsc_mode = "native"` on a host whose TSC Xen does not trust).
static TSC_PAIR: AtomicU64 = AtomicU64::new(0);

/// Sets the hook (only the first call's function counts) and turns tracing
/// on or off. The hook runs after each traced call, in the caller's
/// context (an event handler's too): it must not block on a lock the
/// interrupted code may hold, and hypercalls it makes are traced too
/// unless it guards against that itself.
pub fn set_hook(hook: fn(&Call), on: bool) {
    HOOK.call_once(|| hook);
    let mut least = u64::MAX;
    for _ in 0..16 {
        let t0 = tsc();
        least = least.min(tsc().wrapping_sub(t0));
    }
    TSC_PAIR.store(least, Ordering::Relaxed);
    ON.store(on, Ordering::Relaxed);
}

/// The TSC pair's own cost, subtracted from every [`Call::cycles`].
pub fn tsc_pair_cycles() -> u64 {
    TSC_PAIR.load(Ordering::Relaxed)
}

/// Turns tracing off (or back on, once a hook is set).
pub fn set_enabled(on: bool) {
    ON.store(on && HOOK.get().is_some(), Ordering::Relaxed);
}

/// Whether hypercalls are being traced.
#[inline(always)]
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

fn tsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: lfence and rdtsc only read the time stamp counter.
    unsafe {
        core::arch::asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The traced path of [`crate::raw::hypercall`]: captures, times, calls,
/// captures again, and hands the record to the hook.
///
/// # Safety
/// As for [`crate::raw::hypercall`].
#[cold]
#[inline(never)]
pub(crate) unsafe fn traced<const NR: u32>(a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let args = [a1, a2, a3, a4, a5];
    let p = plan(NR, &args);
    // SAFETY: `p` is this call's plan; the caller vouched for its pointers.
    let mut before = unsafe { capture(p) };
    // SAFETY: for a multicall, the caller vouched for its whole entry array.
    let last = unsafe { last_entry(NR, &args, 16) };
    before.extra = before.extra.or(last);
    let t0 = tsc();
    // SAFETY: the caller's guarantee for this call.
    let ret = unsafe { crate::raw::hypercall_untraced::<NR>(a1, a2, a3, a4, a5) };
    let cycles = tsc().wrapping_sub(t0).saturating_sub(TSC_PAIR.load(Ordering::Relaxed));
    // SAFETY: as above; the call has returned and the caller's borrow of
    // the argument memory lasts until this function returns.
    let mut after = unsafe { capture(p) };
    // SAFETY: as above.
    after.extra = after.extra.or(unsafe { last_entry(NR, &args, 8) });
    if let Some(hook) = HOOK.get() {
        hook(&Call { nr: NR, args, ret, cycles, before, after });
    }
    ret
}

/// A call's type: the hypercall and, for multiplexed ones, the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub name: &'static str,
    pub sub: Option<&'static str>,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sub {
            Some(s) => write!(f, "{}.{s}", self.name),
            None => f.write_str(self.name),
        }
    }
}

/// `__HYPERVISOR_*` names (`xen/include/public/xen.h`).
pub fn name(nr: u32) -> &'static str {
    match nr {
        nr::SET_TRAP_TABLE => "set_trap_table",
        nr::MMU_UPDATE => "mmu_update",
        nr::SET_GDT => "set_gdt",
        nr::STACK_SWITCH => "stack_switch",
        nr::SET_CALLBACKS => "set_callbacks",
        nr::FPU_TASKSWITCH => "fpu_taskswitch",
        nr::PLATFORM_OP => "platform_op",
        nr::MEMORY_OP => "memory_op",
        nr::MULTICALL => "multicall",
        nr::UPDATE_VA_MAPPING => "update_va_mapping",
        nr::SET_TIMER_OP => "set_timer_op",
        nr::XEN_VERSION => "xen_version",
        nr::CONSOLE_IO => "console_io",
        nr::GRANT_TABLE_OP => "grant_table_op",
        nr::VM_ASSIST => "vm_assist",
        nr::IRET => "iret",
        nr::VCPU_OP => "vcpu_op",
        nr::SET_SEGMENT_BASE => "set_segment_base",
        nr::MMUEXT_OP => "mmuext_op",
        nr::NMI_OP => "nmi_op",
        nr::SCHED_OP => "sched_op",
        nr::CALLBACK_OP => "callback_op",
        nr::EVENT_CHANNEL_OP => "event_channel_op",
        nr::PHYSDEV_OP => "physdev_op",
        nr::HVM_OP => "hvm_op",
        _ => "hypercall",
    }
}

/// The command's name for multiplexed hypercalls (`XENMEM_*`,
/// `GNTTABOP_*`, `EVTCHNOP_*`, `SCHEDOP_*`, `VCPUOP_*`, `XENVER_*`,
/// `MMUEXT_*` of the first op, `HVMOP_*`).
pub fn sub_name(nr: u32, cmd: u64) -> Option<&'static str> {
    let c = cmd as u32;
    Some(match nr {
        nr::MEMORY_OP => match (cmd & MEMOP_CMD_MASK) as u32 {
            0 => "increase_reservation",
            1 => "decrease_reservation",
            2 => "maximum_ram_page",
            3 => "current_reservation",
            4 => "maximum_reservation",
            5 => "machphys_mfn_list",
            6 => "populate_physmap",
            7 => "add_to_physmap",
            9 => "memory_map",
            10 => "machine_memory_map",
            _ => "other",
        },
        nr::GRANT_TABLE_OP => match c {
            gt::op::MAP_GRANT_REF => "map_grant_ref",
            gt::op::UNMAP_GRANT_REF => "unmap_grant_ref",
            gt::op::SETUP_TABLE => "setup_table",
            gt::op::DUMP_TABLE => "dump_table",
            gt::op::TRANSFER => "transfer",
            gt::op::COPY => "copy",
            gt::op::QUERY_SIZE => "query_size",
            gt::op::UNMAP_AND_REPLACE => "unmap_and_replace",
            gt::op::SET_VERSION => "set_version",
            gt::op::GET_STATUS_FRAMES => "get_status_frames",
            gt::op::GET_VERSION => "get_version",
            gt::op::SWAP_GRANT_REF => "swap_grant_ref",
            gt::op::CACHE_FLUSH => "cache_flush",
            _ => "other",
        },
        nr::EVENT_CHANNEL_OP => match c {
            ev::cmd::BIND_INTERDOMAIN => "bind_interdomain",
            ev::cmd::BIND_VIRQ => "bind_virq",
            2 => "bind_pirq",
            ev::cmd::CLOSE => "close",
            ev::cmd::SEND => "send",
            ev::cmd::STATUS => "status",
            ev::cmd::ALLOC_UNBOUND => "alloc_unbound",
            ev::cmd::BIND_IPI => "bind_ipi",
            ev::cmd::BIND_VCPU => "bind_vcpu",
            ev::cmd::UNMASK => "unmask",
            ev::cmd::RESET => "reset",
            ev::cmd::INIT_CONTROL => "init_control",
            ev::cmd::EXPAND_ARRAY => "expand_array",
            ev::cmd::SET_PRIORITY => "set_priority",
            _ => "other",
        },
        nr::SCHED_OP => match c {
            sched::cmd::YIELD => "yield",
            sched::cmd::BLOCK => "block",
            sched::cmd::SHUTDOWN => "shutdown",
            sched::cmd::POLL => "poll",
            sched::cmd::REMOTE_SHUTDOWN => "remote_shutdown",
            sched::cmd::SHUTDOWN_CODE => "shutdown_code",
            sched::cmd::WATCHDOG => "watchdog",
            _ => "other",
        },
        nr::VCPU_OP => match c {
            0 => "initialise",
            1 => "up",
            2 => "down",
            3 => "is_up",
            vcpu::cmd::GET_RUNSTATE_INFO => "get_runstate_info",
            5 => "register_runstate_memory_area",
            vcpu::cmd::SET_PERIODIC_TIMER => "set_periodic_timer",
            vcpu::cmd::STOP_PERIODIC_TIMER => "stop_periodic_timer",
            vcpu::cmd::SET_SINGLESHOT_TIMER => "set_singleshot_timer",
            vcpu::cmd::STOP_SINGLESHOT_TIMER => "stop_singleshot_timer",
            10 => "register_vcpu_info",
            _ => "other",
        },
        nr::XEN_VERSION => match c {
            0 => "version",
            1 => "extraversion",
            2 => "compile_info",
            3 => "capabilities",
            4 => "changeset",
            5 => "platform_parameters",
            6 => "get_features",
            7 => "pagesize",
            8 => "guest_handle",
            9 => "commandline",
            10 => "build_id",
            _ => "other",
        },
        nr::HVM_OP => match c {
            0 => "set_param",
            1 => "get_param",
            _ => "other",
        },
        nr::CONSOLE_IO => match c {
            0 => "write",
            1 => "read",
            _ => "other",
        },
        nr::CALLBACK_OP => match c {
            0 => "register",
            1 => "unregister",
            _ => "other",
        },
        nr::VM_ASSIST => match c {
            0 => "enable",
            1 => "disable",
            _ => "other",
        },
        _ => return None,
    })
}

fn mmuext_name(cmd: u32) -> &'static str {
    match cmd {
        mmu::ext::PIN_L1_TABLE => "pin_l1_table",
        mmu::ext::PIN_L2_TABLE => "pin_l2_table",
        mmu::ext::PIN_L3_TABLE => "pin_l3_table",
        mmu::ext::PIN_L4_TABLE => "pin_l4_table",
        mmu::ext::UNPIN_TABLE => "unpin_table",
        mmu::ext::NEW_BASEPTR => "new_baseptr",
        mmu::ext::TLB_FLUSH_LOCAL => "tlb_flush_local",
        mmu::ext::INVLPG_LOCAL => "invlpg_local",
        mmu::ext::TLB_FLUSH_MULTI => "tlb_flush_multi",
        mmu::ext::INVLPG_MULTI => "invlpg_multi",
        mmu::ext::TLB_FLUSH_ALL => "tlb_flush_all",
        mmu::ext::INVLPG_ALL => "invlpg_all",
        mmu::ext::FLUSH_CACHE => "flush_cache",
        mmu::ext::SET_LDT => "set_ldt",
        mmu::ext::NEW_USER_BASEPTR => "new_user_baseptr",
        mmu::ext::CLEAR_PAGE => "clear_page",
        mmu::ext::COPY_PAGE => "copy_page",
        _ => "other",
    }
}

fn virq_name(v: u32) -> &'static str {
    match v {
        0 => "VIRQ_TIMER",
        1 => "VIRQ_DEBUG",
        2 => "VIRQ_CONSOLE",
        3 => "VIRQ_DOM_EXC",
        _ => "VIRQ",
    }
}

fn domid(d: u16) -> DomName {
    DomName(d)
}

/// A domain id, `self` for `DOMID_SELF`.
struct DomName(u16);

impl fmt::Display for DomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0x7ff0 => f.write_str("self"),
            d => write!(f, "{d}"),
        }
    }
}

/// A return value: `-ENAME` for errors, else the number.
struct Ret(i64);

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match crate::error::XenError::from_ret(self.0) {
            Ok(v) => write!(f, "{v}"),
            Err(crate::error::XenError::Unknown(e)) => write!(f, "-{e}"),
            Err(e) => write!(f, "-{e:?}"),
        }
    }
}

impl Call {
    /// The call's type (what the summary counts).
    pub fn kind(&self) -> Kind {
        let cmd = match self.nr {
            nr::MMUEXT_OP => {
                return Kind {
                    name: name(self.nr),
                    sub: (!self.before.is_empty()).then(|| mmuext_name(self.before.u32(0))),
                }
            }
            nr::CALLBACK_OP | nr::VCPU_OP | nr::HVM_OP | nr::VM_ASSIST => self.args[0],
            nr::CONSOLE_IO => self.args[0],
            _ => self.args[0],
        };
        Kind { name: name(self.nr), sub: sub_name(self.nr, cmd) }
    }

    /// The decoded arguments (and outputs), without the name.
    fn args_fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, af) = (&self.args, &self.before, &self.after);
        match self.nr {
            nr::MMU_UPDATE => {
                let ptr = b.u64(0);
                let what = match ptr & 3 {
                    0 => "pt_update",
                    1 => "machphys_update",
                    2 => "pt_update_preserve_ad",
                    _ => "?",
                };
                write!(f, "{} reqs, dom {}", a[1], domid(a[3] as u16))?;
                if !b.is_empty() {
                    let val = b.u64(8);
                    if ptr & 3 == 1 {
                        write!(f, "; first: {what} mfn {:#x} -> pfn {:#x}", ptr >> 12, val)?;
                    } else {
                        write!(
                            f,
                            "; first: {what} entry at ma {:#x} = {val:#x} (mfn {:#x}{})",
                            ptr & !3,
                            (val & PTE_FRAME) >> 12,
                            pte_flags(val)
                        )?;
                    }
                }
                Ok(())
            }
            nr::MMUEXT_OP => {
                write!(f, "{} ops, dom {}", a[1], domid(a[3] as u16))?;
                if !b.is_empty() {
                    let cmd = b.u32(0);
                    let arg = b.u64(8);
                    match cmd {
                        0..=5 | 15..=17 => write!(f, "; first: {} mfn {arg:#x}", mmuext_name(cmd))?,
                        7 | 9 | 11 => write!(f, "; first: {} va {arg:#x}", mmuext_name(cmd))?,
                        _ => write!(f, "; first: {}", mmuext_name(cmd))?,
                    }
                }
                Ok(())
            }
            nr::MULTICALL => {
                write!(f, "{} calls", a[1])?;
                if !b.is_empty() {
                    let op = b.u64(0) as u32;
                    let k = Kind { name: name(op), sub: sub_name(op, b.u64(16)) };
                    write!(f, "; first: {k} = {}", Ret(af.u64(8) as i64))?;
                }
                if let Some(x) = b.extra {
                    let op = x as u32;
                    let k = Kind { name: name(op), sub: sub_name(op, x >> 32) };
                    write!(f, "; last: {k} = {}", Ret(af.extra.unwrap_or(0) as i64))?;
                }
                Ok(())
            }
            nr::UPDATE_VA_MAPPING => {
                let flush = match a[2] & 3 {
                    0 => "no flush",
                    1 => "tlb flush",
                    2 => "invlpg",
                    _ => "?",
                };
                let scope = if a[2] & 4 != 0 { "all" } else { "local" };
                write!(
                    f,
                    "va {:#x} -> {:#x} (mfn {:#x}{}), {flush} {scope}",
                    a[0],
                    a[1],
                    (a[1] & PTE_FRAME) >> 12,
                    pte_flags(a[1])
                )
            }
            nr::SET_TIMER_OP => match a[0] {
                0 => f.write_str("stop"),
                t => write!(f, "deadline {}.{:09} s", t / 1_000_000_000, t % 1_000_000_000),
            },
            nr::XEN_VERSION => match a[0] as u32 {
                0 => write!(f, "-> {}.{}", (self.ret as u64) >> 16, self.ret as u64 & 0xffff),
                6 => write!(f, "submap {} -> {:#x}", af.u32(0), af.u32(4)),
                1 => {
                    let s = &af.bytes[..af.len];
                    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
                    write!(f, "-> {:?}", core::str::from_utf8(&s[..end]).unwrap_or("?"))
                }
                _ => Ok(()),
            },
            nr::CONSOLE_IO => {
                write!(f, "{} bytes", a[1])?;
                if !b.is_empty() {
                    let s = &b.bytes[..b.len];
                    let text = core::str::from_utf8(s).unwrap_or("(not UTF-8)");
                    write!(f, " {:?}", text.trim_end())?;
                }
                Ok(())
            }
            nr::GRANT_TABLE_OP => {
                write!(f, "{} ops", a[2])?;
                if b.is_empty() {
                    return Ok(());
                }
                match a[0] as u32 {
                    gt::op::MAP_GRANT_REF => write!(
                        f,
                        "; first: ref {} of dom {} at {:#x}{} -> status {}, handle {}",
                        b.u32(12),
                        domid(b.u16(16)),
                        b.u64(0),
                        if b.u32(8) & gt::gntmap::READONLY != 0 { " read-only" } else { "" },
                        af.i16(18),
                        af.u32(20)
                    ),
                    gt::op::UNMAP_GRANT_REF => write!(
                        f,
                        "; first: handle {} at {:#x} -> status {}",
                        b.u32(16),
                        b.u64(0),
                        af.i16(20)
                    ),
                    gt::op::SETUP_TABLE => write!(
                        f,
                        "; dom {}, {} frames -> status {}",
                        domid(b.u16(0)),
                        b.u32(4),
                        af.i16(8)
                    ),
                    gt::op::COPY => {
                        let side = |f: &mut fmt::Formatter<'_>, off: usize, flag: u16| {
                            if b.u16(34) & flag != 0 {
                                write!(
                                    f,
                                    "ref {} of dom {}",
                                    b.u64(off) as u32,
                                    domid(b.u16(off + 8))
                                )
                            } else {
                                write!(
                                    f,
                                    "frame {:#x} of dom {}",
                                    b.u64(off),
                                    domid(b.u16(off + 8))
                                )
                            }
                        };
                        f.write_str("; first: ")?;
                        side(f, 0, gt::gntcopy::SOURCE_GREF)?;
                        f.write_str(" -> ")?;
                        side(f, 16, gt::gntcopy::DEST_GREF)?;
                        write!(f, ", {} bytes -> status {}", b.u16(32), af.i16(36))
                    }
                    gt::op::QUERY_SIZE => write!(
                        f,
                        "; -> {} of at most {} frames, status {}",
                        af.u32(4),
                        af.u32(8),
                        af.i16(12)
                    ),
                    gt::op::SET_VERSION => write!(f, "; version {}", b.u32(0)),
                    gt::op::GET_VERSION => write!(f, "; -> version {}", af.u32(4)),
                    _ => Ok(()),
                }
            }
            nr::EVENT_CHANNEL_OP => {
                if b.is_empty() {
                    return Ok(());
                }
                match a[0] as u32 {
                    ev::cmd::SEND | ev::cmd::CLOSE | ev::cmd::UNMASK => {
                        write!(f, "port {}", b.u32(0))
                    }
                    ev::cmd::ALLOC_UNBOUND => write!(
                        f,
                        "dom {}, for dom {} -> port {}",
                        domid(b.u16(0)),
                        domid(b.u16(2)),
                        af.u32(4)
                    ),
                    ev::cmd::BIND_INTERDOMAIN => write!(
                        f,
                        "dom {} port {} -> local port {}",
                        domid(b.u16(0)),
                        b.u32(4),
                        af.u32(8)
                    ),
                    ev::cmd::BIND_VIRQ => write!(
                        f,
                        "{} ({}), vcpu {} -> port {}",
                        virq_name(b.u32(0)),
                        b.u32(0),
                        b.u32(4),
                        af.u32(8)
                    ),
                    ev::cmd::BIND_IPI => write!(f, "vcpu {} -> port {}", b.u32(0), af.u32(4)),
                    ev::cmd::BIND_VCPU => write!(f, "port {} to vcpu {}", b.u32(0), b.u32(4)),
                    ev::cmd::STATUS => write!(
                        f,
                        "dom {} port {} -> status {}, vcpu {}",
                        domid(b.u16(0)),
                        b.u32(4),
                        af.u32(8),
                        af.u32(12)
                    ),
                    ev::cmd::INIT_CONTROL => write!(
                        f,
                        "control block gfn {:#x} offset {}, vcpu {} -> link bits {}",
                        b.u64(0),
                        b.u32(8),
                        b.u32(12),
                        af.bytes[16]
                    ),
                    ev::cmd::EXPAND_ARRAY => write!(f, "array gfn {:#x}", b.u64(0)),
                    ev::cmd::SET_PRIORITY => {
                        write!(f, "port {} priority {}", b.u32(0), b.u32(4))
                    }
                    _ => Ok(()),
                }
            }
            nr::SCHED_OP => match a[0] as u32 {
                sched::cmd::SHUTDOWN => write!(f, "reason {}", shutdown_reason(b.u32(0))),
                sched::cmd::POLL => {
                    write!(f, "{} ports", b.u32(8))?;
                    if let Some(p) = b.extra {
                        write!(f, " (first {})", p as u32)?;
                    }
                    match b.u64(16) {
                        0 => f.write_str(", no timeout"),
                        t => {
                            write!(f, ", timeout {}.{:09} s", t / 1_000_000_000, t % 1_000_000_000)
                        }
                    }
                }
                _ => Ok(()),
            },
            nr::VCPU_OP => match a[0] as u32 {
                vcpu::cmd::SET_SINGLESHOT_TIMER => {
                    let t = b.u64(0);
                    write!(
                        f,
                        "vcpu {}, deadline {}.{:09} s",
                        a[1],
                        t / 1_000_000_000,
                        t % 1_000_000_000
                    )
                }
                vcpu::cmd::GET_RUNSTATE_INFO => write!(
                    f,
                    "vcpu {} -> running {} ms, runnable {} ms, blocked {} ms",
                    a[1],
                    af.u64(16) / 1_000_000,
                    af.u64(24) / 1_000_000,
                    af.u64(32) / 1_000_000
                ),
                _ => write!(f, "vcpu {}", a[1]),
            },
            nr::MEMORY_OP => {
                let cmd = (a[0] & MEMOP_CMD_MASK) as u32;
                match cmd {
                    mem::cmd::INCREASE_RESERVATION
                    | mem::cmd::DECREASE_RESERVATION
                    | mem::cmd::POPULATE_PHYSMAP => {
                        if b.is_empty() {
                            return Ok(());
                        }
                        write!(
                            f,
                            "dom {}, {} extents of order {}",
                            domid(b.u16(24)),
                            b.u64(8),
                            b.u32(16)
                        )?;
                        match cmd {
                            mem::cmd::DECREASE_RESERVATION => {
                                if let Some(m) = b.extra {
                                    write!(f, "; first: mfn {m:#x}")?;
                                }
                            }
                            mem::cmd::POPULATE_PHYSMAP => {
                                if let (Some(p), Some(m)) = (b.extra, af.extra) {
                                    write!(f, "; first: pfn {p:#x} -> mfn {m:#x}")?;
                                }
                            }
                            _ => {
                                if let Some(m) = af.extra {
                                    write!(f, "; first -> mfn {m:#x}")?;
                                }
                            }
                        }
                        Ok(())
                    }
                    mem::cmd::CURRENT_RESERVATION | mem::cmd::MAXIMUM_RESERVATION => {
                        write!(f, "dom {}", domid(b.u16(0)))
                    }
                    XENMEM_ADD_TO_PHYSMAP => {
                        write!(f, "space {} idx {:#x} at gpfn {:#x}", b.u32(4), b.u64(8), b.u64(16))
                    }
                    _ => Ok(()),
                }
            }
            nr::SET_TRAP_TABLE => {
                write!(f, "table at {:#x}; first: vector {} -> {:#x}", a[0], b.bytes[0], b.u64(8))
            }
            nr::CALLBACK_OP => {
                let kind = match b.u16(0) {
                    0 => "event",
                    1 => "failsafe",
                    2 => "syscall",
                    4 => "nmi",
                    _ => "?",
                };
                write!(f, "{kind} -> {:#x}", b.u64(8))
            }
            nr::HVM_OP => {
                write!(f, "dom {} param {} value {:#x}", domid(b.u16(0)), b.u32(4), af.u64(8))
            }
            nr::VM_ASSIST => write!(f, "type {}", a[1]),
            _ => write!(f, "{:#x}, {:#x}, {:#x}", a[0], a[1], a[2]),
        }
    }
}

/// The frame bits of a PTE (bits 12..51).
const PTE_FRAME: u64 = 0x000f_ffff_ffff_f000;

/// `P`, `W`, `U` of a PTE, as `, P W U`.
fn pte_flags(v: u64) -> PteFlags {
    PteFlags(v)
}

struct PteFlags(u64);

impl fmt::Display for PteFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v & 1 == 0 {
            return f.write_str(", not present");
        }
        f.write_str(if v & 2 != 0 { ", writable" } else { ", read-only" })
    }
}

fn shutdown_reason(r: u32) -> &'static str {
    match r {
        0 => "poweroff",
        1 => "reboot",
        2 => "suspend",
        3 => "crash",
        4 => "watchdog",
        5 => "soft_reset",
        _ => "?",
    }
}

impl fmt::Display for Call {
    /// `kind(decoded arguments) = result`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.kind())?;
        self.args_fmt(f)?;
        write!(f, ") = {}", Ret(self.ret))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    fn cap(bytes: &[u8]) -> Capture {
        let mut c = Capture::EMPTY;
        c.bytes[..bytes.len()].copy_from_slice(bytes);
        c.len = bytes.len();
        c
    }

    fn call(nr: u32, args: [u64; 5], ret: i64, before: Capture, after: Capture) -> Call {
        Call { nr, args, ret, cycles: 100, before, after }
    }

    /// A sleep's multicall shows its first and last calls: the last is the
    /// block, read from the caller's entry array.
    #[test]
    fn a_multicall_shows_its_first_and_last_entries() {
        use crate::ops::multicall::{send_and_block_entries_for_test, TimerChange};
        let entries =
            send_and_block_entries_for_test(0, &[crate::EvtchnPort(5)], TimerChange::Set(9));
        let args = [entries.as_ptr() as u64, entries.len() as u64, 0, 0, 0];
        let plan = plan(nr::MULTICALL, &args);
        // SAFETY: `entries` is live and `plan` reads its first entry.
        let mut before = unsafe { capture(plan) };
        // SAFETY: `args` name the live `entries`.
        before.extra = unsafe { last_entry(nr::MULTICALL, &args, 16) };
        let mut after = before;
        // SAFETY: as above.
        after.extra = unsafe { last_entry(nr::MULTICALL, &args, 8) };
        let c = call(nr::MULTICALL, args, 0, before, after);
        assert_eq!(
            c.to_string(),
            "multicall(3 calls; first: event_channel_op.send = 0; last: sched_op.block = 0) = 0"
        );
        assert_eq!(c.kind().to_string(), "multicall");
        // One entry: no last.
        let one = [args[0], 1, 0, 0, 0];
        // SAFETY: nothing is read for one entry, or for another call.
        assert_eq!(unsafe { last_entry(nr::MULTICALL, &one, 16) }, None);
        // SAFETY: as above.
        assert_eq!(unsafe { last_entry(nr::MMU_UPDATE, &args, 16) }, None);
    }

    #[test]
    fn event_channel_sends_and_binds_read_their_structs() {
        let port = cap(&5u32.to_le_bytes());
        let c = call(nr::EVENT_CHANNEL_OP, [4, 0x1000, 0, 0, 0], 0, port, port);
        assert_eq!(c.to_string(), "event_channel_op.send(port 5) = 0");
        assert_eq!(c.kind().to_string(), "event_channel_op.send");

        let mut v = [0u8; 12];
        v[4..8].copy_from_slice(&0u32.to_le_bytes());
        let before = cap(&v);
        v[8..12].copy_from_slice(&3u32.to_le_bytes());
        let c = call(nr::EVENT_CHANNEL_OP, [1, 0x1000, 0, 0, 0], 0, before, cap(&v));
        assert_eq!(
            c.to_string(),
            "event_channel_op.bind_virq(VIRQ_TIMER (0), vcpu 0 -> port 3) = 0"
        );
    }

    #[test]
    fn errors_are_named() {
        let c = call(
            nr::EVENT_CHANNEL_OP,
            [4, 0x1000, 0, 0, 0],
            -22,
            cap(&[9, 0, 0, 0]),
            Capture::EMPTY,
        );
        assert_eq!(c.to_string(), "event_channel_op.send(port 9) = -EINVAL");
        let c = call(47, [0; 5], -38, Capture::EMPTY, Capture::EMPTY);
        assert_eq!(c.to_string(), "hypercall(0x0, 0x0, 0x0) = -ENOSYS");
    }

    #[test]
    fn reservations_show_the_first_frame_both_ways() {
        let mut r = [0u8; 32];
        r[0..8].copy_from_slice(&0x5000u64.to_le_bytes());
        r[8..16].copy_from_slice(&16u64.to_le_bytes());
        r[24..26].copy_from_slice(&0x7ff0u16.to_le_bytes());
        let mut before = cap(&r);
        before.extra = Some(0x1ff0);
        let mut after = before;
        after.extra = Some(0x2a31);
        let c = call(nr::MEMORY_OP, [6, 0x3000, 0, 0, 0], 16, before, after);
        assert_eq!(
            c.to_string(),
            "memory_op.populate_physmap(dom self, 16 extents of order 0; first: pfn 0x1ff0 -> mfn 0x2a31) = 16"
        );
        let mut d = before;
        d.extra = Some(0x777);
        let c = call(nr::MEMORY_OP, [1, 0x3000, 0, 0, 0], 16, d, d);
        assert!(c.to_string().contains(
            "decrease_reservation(dom self, 16 extents of order 0; first: mfn 0x777) = 16"
        ));
    }

    #[test]
    fn page_table_updates_decode_entry_and_frame() {
        let mut r = [0u8; 16];
        r[0..8].copy_from_slice(&0x1234_5008u64.to_le_bytes());
        r[8..16].copy_from_slice(&0x0000_0000_0abc_d063u64.to_le_bytes());
        let c = call(nr::MMU_UPDATE, [0x1000, 3, 0, 0x7ff0, 0], 0, cap(&r), cap(&r));
        assert_eq!(
            c.to_string(),
            "mmu_update(3 reqs, dom self; first: pt_update entry at ma 0x12345008 = 0xabcd063 (mfn 0xabcd, writable)) = 0"
        );
        let c = call(
            nr::UPDATE_VA_MAPPING,
            [0x40_0000, 0xabcd061, 2, 0, 0],
            0,
            Capture::EMPTY,
            Capture::EMPTY,
        );
        assert_eq!(
            c.to_string(),
            "update_va_mapping(va 0x400000 -> 0xabcd061 (mfn 0xabcd, read-only), invlpg local) = 0"
        );
        let mut op = [0u8; 24];
        op[0..4].copy_from_slice(&mmu::ext::PIN_L1_TABLE.to_le_bytes());
        op[8..16].copy_from_slice(&0x99u64.to_le_bytes());
        let c = call(nr::MMUEXT_OP, [0x1000, 1, 0, 0x7ff0, 0], -22, cap(&op), cap(&op));
        assert_eq!(c.kind().to_string(), "mmuext_op.pin_l1_table");
        assert_eq!(
            c.to_string(),
            "mmuext_op.pin_l1_table(1 ops, dom self; first: pin_l1_table mfn 0x99) = -EINVAL"
        );
    }

    #[test]
    fn plans_only_read_what_the_call_names() {
        // No pointer, no count: nothing is read.
        assert_eq!(plan(nr::SCHED_OP, &[1, 0, 0, 0, 0]), None);
        assert_eq!(plan(nr::MMU_UPDATE, &[0x1000, 0, 0, 0, 0]), None);
        assert_eq!(plan(nr::EVENT_CHANNEL_OP, &[4, 0, 0, 0, 0]), None);
        // A send's struct is 4 bytes; a console write at most CAPTURE_BYTES.
        assert_eq!(plan(nr::EVENT_CHANNEL_OP, &[4, 0x10, 0, 0, 0]).unwrap().len, 4);
        assert_eq!(plan(nr::CONSOLE_IO, &[0, 1000, 0x10, 0, 0]).unwrap().len, CAPTURE_BYTES);
        assert_eq!(plan(nr::CONSOLE_IO, &[0, 3, 0x10, 0, 0]).unwrap().len, 3);
        let p = plan(nr::MEMORY_OP, &[1, 0x10, 0, 0, 0]).unwrap();
        assert_eq!((p.len, p.extra.map(|e| e.size)), (32, Some(8)));
    }

    #[test]
    fn every_number_has_a_name_or_says_it_has_none() {
        for n in 0..nr::PAGE_ENTRIES {
            let nm = name(n);
            assert!(!nm.is_empty());
        }
        assert_eq!(name(nr::SCHED_OP), "sched_op");
        assert_eq!(sub_name(nr::SCHED_OP, 1), Some("block"));
        assert_eq!(sub_name(nr::SET_TIMER_OP, 1), None);
    }
}
