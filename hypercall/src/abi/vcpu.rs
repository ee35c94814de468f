//! `vcpu_op` (`xen/include/public/vcpu.h`).

use super::assert_layout;

/// `VCPUOP_*` commands.
pub mod cmd {
    pub const INITIALISE: u32 = 0;
    pub const UP: u32 = 1;
    pub const DOWN: u32 = 2;
    pub const IS_UP: u32 = 3;
    pub const GET_RUNSTATE_INFO: u32 = 4;
    pub const SET_PERIODIC_TIMER: u32 = 6;
    pub const STOP_PERIODIC_TIMER: u32 = 7;
    pub const SET_SINGLESHOT_TIMER: u32 = 8;
    pub const STOP_SINGLESHOT_TIMER: u32 = 9;
    pub const REGISTER_VCPU_INFO: u32 = 10;
}

/// `struct vcpu_register_vcpu_info`: where Xen is to keep a vCPU's
/// `vcpu_info` from now on (a frame of the guest and an offset in it; the
/// struct must not cross the page's end).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuRegisterVcpuInfo {
    /// The frame (MFN for PV, GFN for PVH).
    pub mfn: u64,
    /// Byte offset of the `vcpu_info` in the frame.
    pub offset: u32,
    pub rsvd: u32,
}
assert_layout!(VcpuRegisterVcpuInfo, size = 16, mfn = 0, offset = 8, rsvd = 12);

/// `struct vcpu_set_singleshot_timer`.
#[repr(C)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time in ns.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
}
assert_layout!(VcpuSetSingleshotTimer, size = 16, timeout_abs_ns = 0, flags = 8);

/// `VCPU_SSHOTTMR_future`: fail with `ETIME` instead of firing at once
/// when the deadline has passed.
pub const SSHOTTMR_FUTURE: u32 = 1;

/// `struct vcpu_runstate_info`: where a vCPU's time went.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuRunstateInfo {
    pub state: i32,
    pub state_entry_time: u64,
    /// ns spent running, runnable, blocked, offline.
    pub time: [u64; 4],
}
assert_layout!(VcpuRunstateInfo, size = 48, state = 0, state_entry_time = 8, time = 16);

/// Indices into [`VcpuRunstateInfo::time`] (`RUNSTATE_*`).
pub mod runstate {
    pub const RUNNING: usize = 0;
    pub const RUNNABLE: usize = 1;
    pub const BLOCKED: usize = 2;
    pub const OFFLINE: usize = 3;
}
