//! `sched_op` (`xen/include/public/sched.h`).

use super::assert_layout;

/// `SCHEDOP_*` commands.
pub mod cmd {
    pub const YIELD: u32 = 0;
    pub const BLOCK: u32 = 1;
    pub const SHUTDOWN: u32 = 2;
    pub const POLL: u32 = 3;
    pub const REMOTE_SHUTDOWN: u32 = 4;
    pub const SHUTDOWN_CODE: u32 = 5;
    pub const WATCHDOG: u32 = 6;
}

/// `SHUTDOWN_*` reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ShutdownReason {
    Poweroff = 0,
    Reboot = 1,
    Suspend = 2,
    Crash = 3,
    Watchdog = 4,
    SoftReset = 5,
}

/// `struct sched_shutdown`.
#[repr(C)]
pub struct SchedShutdown {
    pub reason: u32,
}
assert_layout!(SchedShutdown, size = 4, reason = 0);

/// `struct sched_poll`: wait until one of `ports` is pending or `timeout`
/// (absolute system time in ns, 0 for none) passes.
#[repr(C)]
pub struct SchedPoll {
    /// Guest handle: virtual address of an array of `evtchn_port_t`.
    pub ports: u64,
    pub nr_ports: u32,
    pub timeout: u64,
}
assert_layout!(SchedPoll, size = 24, ports = 0, nr_ports = 8, timeout = 16);
