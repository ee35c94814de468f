//! What blkfront needs from the kernel beyond every driver's
//! [`DriverEnv`] (pages, grants, event channels): a way to wait for its
//! events in the caller's context, and the time. The kernel implements it
//! over its timer; host tests over a fake blkback that serves the ring
//! while the driver "waits".

use crate::env::DriverEnv;

/// The kernel side of one block device.
pub trait BlkEnv: DriverEnv {
    /// Waits until an event arrived since the previous call returned, or
    /// until system time `deadline_ns`; false on timeout. Returns at once
    /// if an event is already there.
    fn wait_event(&mut self, deadline_ns: u64) -> bool;
    /// System time, ns.
    fn now_ns(&self) -> u64;
    /// Told right after requests were published to the backend, with how
    /// many of the current call's requests are outstanding (at least one):
    /// a point at which I/O is certainly in flight. Nothing by default.
    fn published(&mut self, _in_flight: usize) {}
}
