//! What every frontend needs from the kernel, as small traits: memory it
//! can share ([`PageAlloc`], handing out owned [`PageSet`]s), grants of
//! that memory to a backend ([`Grants`]) and event channels
//! ([`EventChannels`]). netfront and blkfront are generic over
//! [`DriverEnv`], all three together; the kernel implements them once over
//! its heap, grant table and event channels, and host tests once over a
//! pretend hypervisor ([`fake`], shared by every driver's fake backend).
//!
//! A driver that needs more (blkfront waits for its events in the
//! caller's context) adds a trait of its own on top.

#[cfg(any(test, feature = "fake"))]
pub mod fake;

use core::fmt;
use core::sync::atomic::AtomicU32;
use hypercall::abi::grant_table::GrantRef;
use hypercall::{DomId, EvtchnPort, XenError};

/// Words in one 4 KiB page.
pub const PAGE_WORDS: usize = 1024;
/// Bytes in one page.
pub const PAGE_BYTES: usize = 4096;

/// Owned, page-aligned memory meant for sharing, seen only as 32-bit
/// atomics (the backend may write it at any time while it is granted).
/// Drivers grant it by page index ([`Grants::grant`]), never by frame
/// number: only the kernel knows which frame a page is. Dropping it gives
/// up the driver's claim; the kernel keeps the memory while a grant of it
/// is live, so a driver may drop a set whose revoke was refused.
pub trait PageSet {
    /// All pages, consecutive, [`PAGE_WORDS`] words each.
    fn words(&self) -> &[AtomicU32];
    /// Pages in the set.
    fn pages(&self) -> usize {
        self.words().len() / PAGE_WORDS
    }
}

/// Memory to share.
pub trait PageAlloc {
    type Pages: PageSet;
    /// `n` zeroed pages, consecutive in the address space.
    fn alloc_pages(&mut self, n: usize) -> Result<Self::Pages, EnvError>;
}

/// The grant table.
pub trait Grants: PageAlloc {
    /// Lets `to` map page `index` of `pages` (read-only if asked). The
    /// grant holds the page's memory until it is revoked.
    fn grant(
        &mut self,
        to: DomId,
        pages: &Self::Pages,
        index: usize,
        readonly: bool,
    ) -> Result<GrantRef, EnvError>;
    /// Revokes `gref`; false if the peer still maps it (the grant stays
    /// and its page must never be reused: the caller keeps it).
    fn revoke(&mut self, gref: GrantRef) -> bool;
}

/// Event channels to a backend.
pub trait EventChannels {
    /// A new unbound port `backend` may bind to, with the kernel's handler
    /// attached (it only counts: drivers do their work in the caller's
    /// context).
    fn bind_event(&mut self, backend: DomId) -> Result<EvtchnPort, EnvError>;
    /// Closes a port from [`EventChannels::bind_event`].
    fn close_event(&mut self, port: EvtchnPort);
    /// Kicks the backend through `port`.
    fn notify(&mut self, port: EvtchnPort);
    /// Kicks the backend through `port` for requests that may wait for
    /// the end of the caller's pass (a service loop's TX push): the
    /// environment may hold it and send it with the pass's block, in one
    /// trap. Not for what the backend is stalled on (RX buffers).
    fn notify_batched(&mut self, port: EvtchnPort) {
        self.notify(port);
    }
}

/// Everything a frontend needs from the kernel.
pub trait DriverEnv: PageAlloc + Grants + EventChannels {}
impl<T: PageAlloc + Grants + EventChannels> DriverEnv for T {}

/// A kernel service a driver asked for failed: what ran out, or what
/// refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvError {
    /// No memory for `pages` more pages to share.
    OutOfMemory { pages: usize },
    /// Every grant reference is in use and the table cannot grow.
    OutOfGrants,
    /// The grant table refused for another reason (Xen's error, a frame it
    /// cannot hold); the kernel logs the details.
    GrantRefused,
    /// The grant table is not set up.
    NoGrantTable,
    /// Xen refused a new event channel.
    EventChannel(XenError),
    /// The kernel's port table cannot take the new port's handler.
    PortTable,
    /// More devices than the kernel has event counters for.
    TooManyDevices { max: usize },
    /// The environment cannot do this (it says what).
    Unsupported(&'static str),
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvError::OutOfMemory { pages } => {
                write!(f, "out of memory for {pages} shared page(s)")
            }
            EnvError::OutOfGrants => f.write_str("grant table full"),
            EnvError::GrantRefused => f.write_str("cannot grant a page"),
            EnvError::NoGrantTable => f.write_str("grant tables unavailable"),
            EnvError::EventChannel(e) => write!(f, "event channel: Xen refused: {e}"),
            EnvError::PortTable => f.write_str("event channel: no handler slot for the port"),
            EnvError::TooManyDevices { max } => write!(f, "more than {max} devices"),
            EnvError::Unsupported(what) => write!(f, "not supported here: {what}"),
        }
    }
}
