//! What blkfront needs from the kernel: pages it can share, grants, an
//! event channel and a way to wait for it. The kernel implements this
//! over the real grant table and event channels; host tests over a fake
//! backend.

use super::BlkError;
use core::sync::atomic::AtomicU32;
use hypercall::abi::grant_table::GrantRef;
use hypercall::{DomId, EvtchnPort, Mfn};

/// Words in one 4 KiB page.
pub const PAGE_WORDS: usize = 1024;

/// Page-aligned memory meant for sharing, seen only as 32-bit atomics
/// (the backend may write it at any time while it is granted).
pub trait PageSet {
    /// All pages, consecutive, `PAGE_WORDS` words each.
    fn words(&self) -> &[AtomicU32];
    /// The machine frame of page `i`.
    fn frame(&self, i: usize) -> Mfn;
    /// Pages in the set.
    fn pages(&self) -> usize {
        self.words().len() / PAGE_WORDS
    }
}

/// The kernel side of one block device.
pub trait BlkEnv {
    type Pages: PageSet;
    /// `n` zeroed pages, consecutive in the address space.
    fn alloc_pages(&mut self, n: usize) -> Result<Self::Pages, BlkError>;
    /// Lets `to` map `frame` (read-only if asked).
    fn grant(&mut self, to: DomId, frame: Mfn, readonly: bool) -> Result<GrantRef, BlkError>;
    /// Revokes `gref`; false if the peer still maps it (the grant stays
    /// and its page must never be reused).
    fn revoke(&mut self, gref: GrantRef) -> bool;
    /// A new event channel port `backend` may bind to; its events are
    /// what [`BlkEnv::wait_event`] waits for.
    fn bind_event(&mut self, backend: DomId) -> Result<EvtchnPort, BlkError>;
    /// Closes the port.
    fn close_event(&mut self, port: EvtchnPort);
    /// Kicks the backend.
    fn notify(&mut self, port: EvtchnPort);
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
