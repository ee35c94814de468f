//! What blkfront needs from the kernel beyond every driver's
//! [`DriverEnv`] (pages, grants, event channels): a way to wait for its
//! events in the caller's context, and the time. The kernel implements it
//! over its timer; host tests over a fake blkback that serves the ring
//! while the driver "waits".

use crate::env::{DriverEnv, EnvError};
use crate::xenbus::Bus;
use hypercall::EvtchnPort;
use xenstore_client::Transport;

/// What a device told the kernel after it reconnected in a new domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconnected {
    /// `device/vbd/<id>`'s id.
    pub id: alloc::string::String,
    /// The new backend's path.
    pub backend: alloc::string::String,
    /// Requests that were in flight when the domain was suspended, put on
    /// the new rings.
    pub reissued: usize,
    /// Queues before and after.
    pub queues: (usize, usize),
    /// From the first look at the new domain to the last request re-issued.
    pub ms: u64,
}

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

    /// The XenStore connection a device reconnects through after the
    /// domain was restored or migrated.
    type Store: Transport;
    /// Runs `f` on the XenStore connection; `None` if there is none (or it
    /// is in use further up the stack).
    fn with_bus<R>(&mut self, f: impl FnOnce(&mut Bus<Self::Store>) -> R) -> Option<R>;
    /// Times the domain has come back as a new domain (restore,
    /// migration) so far: a device connected at another count has rings,
    /// grants and event channels that no longer exist.
    fn generation(&self) -> u64 {
        0
    }
    /// Called (only for a device with [`Config::follow_suspend`]) while a
    /// call waits for answers with `in_flight` requests outstanding: if
    /// the toolstack asked for a suspend, the kernel carries it out here
    /// and returns once the domain runs again (the same one, or a new one
    /// with another [`BlkEnv::generation`]).
    ///
    /// [`Config::follow_suspend`]: super::Config::follow_suspend
    fn suspend_point(&mut self, _in_flight: usize) {}
    /// Told after a device reconnected in a new domain.
    fn reconnected(&mut self, _what: &Reconnected) {}
    /// For [`BlkFront::split`]: a new environment of the same kind that
    /// takes over `port` (one this one bound): its events wake waits on
    /// the new environment only, and the new one closes it when it lets
    /// go. On an error nothing changed.
    ///
    /// [`BlkFront::split`]: super::BlkFront::split
    fn split_off(&mut self, _port: EvtchnPort) -> Result<Self, EnvError>
    where
        Self: Sized,
    {
        Err(EnvError::Unsupported("taking one port into a new environment"))
    }
    /// For [`BlkFront::join`]: takes back every port of `other` (an
    /// environment [`BlkEnv::split_off`] made), whose events wake waits
    /// on this one from now on; `other` is then dropped.
    ///
    /// [`BlkFront::join`]: super::BlkFront::join
    fn absorb(&mut self, _other: Self)
    where
        Self: Sized,
    {
    }
}
