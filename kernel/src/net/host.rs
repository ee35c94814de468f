//! The kernel's side of netfront ([`NetHost`]): pages from the heap seen
//! only as atomics, grants from the global table, event channels whose
//! handler just counts (the service loop does the work, never the upcall).

use crate::memory::layout::VirtAddr;
use crate::{events, grants};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use hypercall::abi::grant_table::GrantRef;
use hypercall::{DomId, EvtchnPort};
use pv_drivers::netfront::{HostError, NetHost};

/// A page shared with the backend: page-aligned, only ever atomics.
#[repr(C, align(4096))]
pub struct NetPage {
    words: [AtomicU32; 1024],
}

/// An owned [`NetPage`].
pub struct PageBox(Box<NetPage>);

impl AsRef<[AtomicU32]> for PageBox {
    fn as_ref(&self) -> &[AtomicU32] {
        &self.0.words
    }
}

/// Events received on the vif's channels (bumped in upcall context).
static EVENTS: AtomicU64 = AtomicU64::new(0);

fn on_event(_: EvtchnPort, _: usize) {
    EVENTS.fetch_add(1, Ordering::SeqCst);
}

/// Events so far: the service loop wakes when this moves.
pub fn events() -> u64 {
    EVENTS.load(Ordering::SeqCst)
}

pub struct KernelHost;

impl NetHost for KernelHost {
    type Page = PageBox;

    fn alloc_page(&mut self) -> Option<PageBox> {
        Some(PageBox(Box::new(NetPage { words: [const { AtomicU32::new(0) }; 1024] })))
    }

    fn grant(&mut self, page: &PageBox, to: DomId, readonly: bool) -> Result<GrantRef, HostError> {
        let va = VirtAddr(&*page.0 as *const NetPage as u64);
        let pfn = platform::pv::mm::direct_map().pfn(va).ok_or(HostError::Grant)?;
        let mfn = platform::pv::pfn_to_mfn(pfn).ok_or(HostError::Grant)?;
        let r = grants::with(|t| t.grant_access(to, mfn, readonly)).ok_or(HostError::Grant)?;
        r.map_err(|_| HostError::Grant)
    }

    fn revoke(&mut self, gref: GrantRef) -> bool {
        grants::with(|t| t.end_access(gref)).is_some_and(|r| r.is_ok())
    }

    fn alloc_channel(&mut self, backend: DomId) -> Result<EvtchnPort, HostError> {
        let port = events::alloc_unbound(backend).map_err(|_| HostError::EventChannel)?;
        if events::register(port, on_event, 0).is_err() {
            let _ = events::close(port);
            return Err(HostError::EventChannel);
        }
        Ok(port)
    }

    fn close_channel(&mut self, port: EvtchnPort) {
        let _ = events::close(port);
    }

    fn notify(&mut self, port: EvtchnPort) {
        let _ = events::send(port);
    }
}
