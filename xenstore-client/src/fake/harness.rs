//! A guest client wired to the fake through a real store page, for host
//! tests here and in the crates that build on the client (xenbus, control,
//! balloon).

use super::{FakeEvents, FakeXenstored};
use crate::client::Client;
use crate::ring_transport::RingTransport;
use core::cell::{RefCell, RefMut};
use core::ops::{Deref, DerefMut};
use hypercall::abi::xenstore::XenstoreDomainInterface;
use hypercall::DomId;

/// The client type a [`Harness`] hands out.
pub type FakeClient<'a> = Client<RingTransport<'a, FakeEvents<'a>>>;

/// A store page and a fake xenstored serving it.
pub struct Harness {
    pub page: XenstoreDomainInterface,
    fake: RefCell<FakeXenstored>,
}

impl Harness {
    pub fn new(guest: DomId) -> Harness {
        Harness {
            page: XenstoreDomainInterface::zeroed(),
            fake: RefCell::new(FakeXenstored::new(guest)),
        }
    }

    /// A client of the guest (several may exist, as long as one is used at
    /// a time: they share the page).
    pub fn client(&self) -> FakeClient<'_> {
        Client::new(RingTransport::new(&self.page, FakeEvents::new(&self.page, &self.fake)))
    }

    /// The fake, to act as another domain or to inject faults. When the
    /// guard goes, the fake pushes what it has to say into the ring, as a
    /// running xenstored would on its own.
    pub fn fake(&self) -> FakeGuard<'_> {
        FakeGuard { fake: self.fake.borrow_mut(), page: &self.page }
    }

    /// The fake's cell, for closures that run while a client is in use
    /// (its output then goes out at the client's next notify or wait).
    pub fn cell(&self) -> &RefCell<FakeXenstored> {
        &self.fake
    }
}

/// Exclusive access to the fake; serves the ring when dropped.
pub struct FakeGuard<'a> {
    fake: RefMut<'a, FakeXenstored>,
    page: &'a XenstoreDomainInterface,
}

impl Deref for FakeGuard<'_> {
    type Target = FakeXenstored;
    fn deref(&self) -> &FakeXenstored {
        &self.fake
    }
}

impl DerefMut for FakeGuard<'_> {
    fn deref_mut(&mut self) -> &mut FakeXenstored {
        &mut self.fake
    }
}

impl Drop for FakeGuard<'_> {
    fn drop(&mut self) {
        self.fake.serve(self.page);
    }
}
