//! A pretend hypervisor for host tests, the one every driver's fake
//! backend builds on: frames of shared memory, a grant table the backend
//! reads (and "maps": revoking a mapped grant fails, as Xen's does), event
//! channels that must be closed once, and counters tests assert on.
//! [`FakeEnv`] is the driver's side of it ([`DriverEnv`](super::DriverEnv));
//! a fake backend holds the same [`SharedXen`] and looks grants up in it.
//!
//! Host tests only (`cfg(test)` or the `fake` feature): `cargo xtask test`
//! checks that the guest never enables it.

use super::{EnvError, EventChannels, Grants, PageAlloc, PageSet, PAGE_WORDS};
use hypercall::abi::grant_table::GrantRef;
use hypercall::{DomId, EvtchnPort, Mfn};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::atomic::AtomicU32;

/// Memory the fake hands out: shared between the driver's page set and
/// the backend's mappings of it.
pub type Mem = Rc<[AtomicU32]>;

/// Pages from [`FakeEnv::alloc_pages`].
pub struct FakePages {
    mem: Mem,
    mfns: Vec<Mfn>,
}

impl PageSet for FakePages {
    fn words(&self) -> &[AtomicU32] {
        &self.mem
    }
}

impl FakePages {
    /// The pretend frame of page `i`.
    pub fn frame(&self, i: usize) -> Mfn {
        self.mfns[i]
    }
}

/// One entry of the grant table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub mfn: Mfn,
    pub to: DomId,
    pub readonly: bool,
}

/// A granted page as a backend sees it: page `start / PAGE_WORDS` of an
/// allocation.
#[derive(Clone)]
pub struct Granted {
    pub mem: Mem,
    /// Word offset of the page in `mem`.
    pub start: usize,
    pub readonly: bool,
}

impl Granted {
    /// The page's words.
    pub fn words(&self) -> &[AtomicU32] {
        &self.mem[self.start..self.start + PAGE_WORDS]
    }

    /// The page's words for a backend ring that lives as long as the test.
    pub fn leak(self) -> &'static [AtomicU32] {
        Box::leak(Box::new(self)).words()
    }
}

/// The hypervisor's state.
pub struct Xen {
    next_mfn: u64,
    /// Every frame handed out: its allocation and page index in it.
    frames: BTreeMap<u64, (Mem, usize)>,
    /// Active grants by reference.
    pub grants: BTreeMap<u32, Grant>,
    next_gref: u32,
    /// Grants a backend maps now: revoking them fails.
    pub mapped: BTreeSet<u32>,
    pub grants_made: u64,
    pub revokes: u64,
    pub notifies: u64,
    /// Event channels bound and not closed.
    pub open_ports: BTreeSet<u32>,
    next_port: u32,
    /// Pages left to hand out (`None`: unlimited).
    pub pages_left: Option<usize>,
    /// The only domain grants may name, if set (a grant to anyone else
    /// fails the test).
    pub backend: Option<DomId>,
}

impl Default for Xen {
    fn default() -> Self {
        Xen {
            next_mfn: 0x1000,
            frames: BTreeMap::new(),
            grants: BTreeMap::new(),
            next_gref: 8,
            mapped: BTreeSet::new(),
            grants_made: 0,
            revokes: 0,
            notifies: 0,
            open_ports: BTreeSet::new(),
            next_port: 5,
            pages_left: None,
            backend: None,
        }
    }
}

impl Xen {
    /// The page `gref` grants now.
    pub fn page(&self, gref: GrantRef) -> Option<Granted> {
        let g = self.grants.get(&gref.0)?;
        let (mem, i) = self.frames.get(&g.mfn.0)?;
        Some(Granted { mem: mem.clone(), start: i * PAGE_WORDS, readonly: g.readonly })
    }

    /// Whether `gref` is granted now.
    pub fn granted(&self, gref: GrantRef) -> bool {
        self.grants.contains_key(&gref.0)
    }

    /// Grants active now.
    pub fn live_grants(&self) -> usize {
        self.grants.len()
    }

    /// The backend maps `gref` (false if it is not granted).
    pub fn map(&mut self, gref: GrantRef) -> bool {
        self.granted(gref) && {
            self.mapped.insert(gref.0);
            true
        }
    }
}

/// The hypervisor, shared by the driver's environment and the backend.
pub type SharedXen = Rc<RefCell<Xen>>;

/// The driver's environment on the fake hypervisor.
#[derive(Clone, Default)]
pub struct FakeEnv {
    pub xen: SharedXen,
}

impl FakeEnv {
    /// An environment on `xen`, shared with whoever else holds it.
    pub fn on(xen: &SharedXen) -> Self {
        FakeEnv { xen: xen.clone() }
    }
}

impl PageAlloc for FakeEnv {
    type Pages = FakePages;

    fn alloc_pages(&mut self, n: usize) -> Result<FakePages, EnvError> {
        let mut x = self.xen.borrow_mut();
        if let Some(left) = &mut x.pages_left {
            *left = left.checked_sub(n).ok_or(EnvError::OutOfMemory { pages: n })?;
        }
        let mem: Mem = (0..n * PAGE_WORDS).map(|_| AtomicU32::new(0)).collect();
        let mut mfns = Vec::new();
        for i in 0..n {
            let m = x.next_mfn;
            x.next_mfn += 1;
            x.frames.insert(m, (mem.clone(), i));
            mfns.push(Mfn(m));
        }
        Ok(FakePages { mem, mfns })
    }
}

impl Grants for FakeEnv {
    fn grant(
        &mut self,
        to: DomId,
        pages: &FakePages,
        index: usize,
        readonly: bool,
    ) -> Result<GrantRef, EnvError> {
        assert!(index < pages.mfns.len(), "granting page {index} of a set of {}", pages.mfns.len());
        let frame = pages.frame(index);
        let mut x = self.xen.borrow_mut();
        if let Some(b) = x.backend {
            assert_eq!(to, b, "a grant to a domain that is not the backend");
        }
        assert!(x.frames.contains_key(&frame.0), "granting {frame:?}, not a page of ours");
        let g = x.next_gref;
        x.next_gref += 1;
        x.grants.insert(g, Grant { mfn: frame, to, readonly });
        x.grants_made += 1;
        Ok(GrantRef(g))
    }

    fn revoke(&mut self, gref: GrantRef) -> bool {
        let mut x = self.xen.borrow_mut();
        if x.mapped.contains(&gref.0) {
            return false;
        }
        assert!(x.grants.remove(&gref.0).is_some(), "revoking {gref:?}, not granted");
        x.revokes += 1;
        true
    }
}

impl EventChannels for FakeEnv {
    fn bind_event(&mut self, _backend: DomId) -> Result<EvtchnPort, EnvError> {
        let mut x = self.xen.borrow_mut();
        let p = x.next_port;
        x.next_port += 1;
        x.open_ports.insert(p);
        Ok(EvtchnPort(p))
    }

    fn close_event(&mut self, port: EvtchnPort) {
        assert!(self.xen.borrow_mut().open_ports.remove(&port.0), "closing {port:?}, not open");
    }

    fn notify(&mut self, _port: EvtchnPort) {
        self.xen.borrow_mut().notifies += 1;
    }
}
