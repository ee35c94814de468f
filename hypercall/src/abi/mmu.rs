//! Page-table hypercall arguments of a PV guest (`xen/include/public/xen.h`):
//! `struct mmu_update`, `struct mmuext_op` and `struct multicall_entry`.
//!
//! A PV guest never writes a page-table entry itself: it asks Xen to, with
//! `mmu_update` (one `(ptr, val)` pair per entry, many per call), and it
//! pins, unpins and flushes with `mmuext_op`.

use super::assert_layout;
use crate::types::{MachineAddr, Mfn, Pfn};

/// `MMU_*`: the command in the low two bits of [`MmuUpdate::ptr`].
pub mod cmd {
    /// `MMU_NORMAL_PT_UPDATE`: checked `*ptr = val`; `ptr` is the machine
    /// address of the entry.
    pub const NORMAL_PT_UPDATE: u64 = 0;
    /// `MMU_MACHPHYS_UPDATE`: `ptr` is a machine address inside the frame
    /// whose machine-to-phys entry becomes `val` (a pfn).
    pub const MACHPHYS_UPDATE: u64 = 1;
    /// `MMU_PT_UPDATE_PRESERVE_AD`: as normal, but keeps the A/D bits.
    pub const PT_UPDATE_PRESERVE_AD: u64 = 2;
}

/// `struct mmu_update`: one request of `HYPERVISOR_mmu_update`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the entry, with an [`cmd`] in bits 1:0.
    pub ptr: u64,
    /// The new entry (a machine frame and `pte` bits), or a pfn for
    /// `MMU_MACHPHYS_UPDATE`.
    pub val: u64,
}
assert_layout!(MmuUpdate, size = 16, ptr = 0, val = 8);

impl MmuUpdate {
    /// `MMU_NORMAL_PT_UPDATE`: sets the page-table entry at machine address
    /// `entry` (8-byte aligned: the low bits carry the command) to `val`.
    pub const fn pt(entry: MachineAddr, val: u64) -> Self {
        Self { ptr: (entry.0 & !CMD_MASK) | cmd::NORMAL_PT_UPDATE, val }
    }

    /// `MMU_MACHPHYS_UPDATE`: says machine frame `mfn` now backs
    /// pseudo-physical frame `pfn`.
    pub const fn machphys(mfn: Mfn, pfn: Pfn) -> Self {
        Self { ptr: mfn.addr().0 | cmd::MACHPHYS_UPDATE, val: pfn.0 }
    }

    /// The `MMU_*` command of this request.
    pub const fn command(&self) -> u64 {
        self.ptr & CMD_MASK
    }

    /// The machine address the request names (an entry, or a byte of the
    /// frame for `MMU_MACHPHYS_UPDATE`).
    pub const fn target(&self) -> MachineAddr {
        MachineAddr(self.ptr & !CMD_MASK)
    }
}

/// The bits of [`MmuUpdate::ptr`] that hold the command.
const CMD_MASK: u64 = 3;

/// `MMUEXT_*` commands of `mmuext_op`.
pub mod ext {
    pub const PIN_L1_TABLE: u32 = 0;
    pub const PIN_L2_TABLE: u32 = 1;
    pub const PIN_L3_TABLE: u32 = 2;
    pub const PIN_L4_TABLE: u32 = 3;
    pub const UNPIN_TABLE: u32 = 4;
    pub const NEW_BASEPTR: u32 = 5;
    pub const TLB_FLUSH_LOCAL: u32 = 6;
    pub const INVLPG_LOCAL: u32 = 7;
    pub const TLB_FLUSH_MULTI: u32 = 8;
    pub const INVLPG_MULTI: u32 = 9;
    pub const TLB_FLUSH_ALL: u32 = 10;
    pub const INVLPG_ALL: u32 = 11;
    pub const FLUSH_CACHE: u32 = 12;
    pub const SET_LDT: u32 = 13;
    pub const NEW_USER_BASEPTR: u32 = 15;
    pub const CLEAR_PAGE: u32 = 16;
    pub const COPY_PAGE: u32 = 17;
}

/// `struct mmuext_op`. `arg1` is the union `{ xen_pfn_t mfn; unsigned long
/// linear_addr; }`, `arg2` the union `{ unsigned int nr_ents; vcpumask
/// handle; xen_pfn_t src_mfn; }`: on x86-64 both are one 64-bit word.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuextOp {
    pub cmd: u32,
    pub arg1: u64,
    pub arg2: u64,
}
assert_layout!(MmuextOp, size = 24, cmd = 0, arg1 = 8, arg2 = 16);

impl MmuextOp {
    /// An operation on a machine frame (pin, unpin, clear, new base pointer).
    pub const fn on_mfn(cmd: u32, mfn: Mfn) -> Self {
        Self { cmd, arg1: mfn.0, arg2: 0 }
    }

    /// An operation on a virtual address (`INVLPG_*`).
    pub const fn on_va(cmd: u32, va: u64) -> Self {
        Self { cmd, arg1: va, arg2: 0 }
    }

    /// An operation without arguments (`TLB_FLUSH_LOCAL`, `TLB_FLUSH_ALL`).
    pub const fn plain(cmd: u32) -> Self {
        Self { cmd, arg1: 0, arg2: 0 }
    }
}

/// `struct multicall_entry`: one hypercall of `HYPERVISOR_multicall`. Xen
/// writes each call's return value into `result`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticallEntry {
    /// The hypercall number (`__HYPERVISOR_*`).
    pub op: u64,
    /// Out: what the call returned (negative errno on failure).
    pub result: u64,
    pub args: [u64; 6],
}
assert_layout!(MulticallEntry, size = 64, op = 0, result = 8, args = 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_encode_their_command_and_target() {
        let pt = MmuUpdate::pt(MachineAddr(0x1234_5008), 0x67);
        assert_eq!(pt, MmuUpdate { ptr: 0x1234_5008, val: 0x67 });
        assert_eq!(pt.command(), cmd::NORMAL_PT_UPDATE);
        assert_eq!(pt.target(), MachineAddr(0x1234_5008));

        let m2p = MmuUpdate::machphys(Mfn(0x12345), Pfn(0x42));
        assert_eq!(m2p, MmuUpdate { ptr: 0x1234_5001, val: 0x42 });
        assert_eq!(m2p.command(), cmd::MACHPHYS_UPDATE);
        assert_eq!(m2p.target().mfn(), Mfn(0x12345));

        assert_eq!(MmuextOp::on_mfn(ext::PIN_L1_TABLE, Mfn(7)).arg1, 7);
    }
}
