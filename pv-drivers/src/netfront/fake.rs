//! A fake kernel host and a fake netback for host tests: pages are shared
//! `Arc`s, the grant table is a map the backend reads, and the backend
//! drives the other end of both rings.

use super::buf::{read_bytes, write_bytes};
use super::wire::extra_as_rx;
use super::{HostError, NetHost};
use crate::ring::BackRing;
use hypercall::abi::grant_table::GrantRef;
use hypercall::abi::netif::{
    rsp, rxf, txf, NetifExtraInfo, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse,
};
use hypercall::{DomId, EvtchnPort};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

pub type Page = Arc<[AtomicU32]>;

#[derive(Default)]
pub struct Table {
    pub active: BTreeMap<u32, (Page, DomId, bool)>,
    /// Grants the backend "maps": revoking them fails.
    pub mapped: BTreeSet<u32>,
    next: u32,
}

#[derive(Default)]
pub struct FakeHost {
    pub table: Rc<RefCell<Table>>,
    pub notifies: u32,
    pub open_ports: BTreeSet<u32>,
    next_port: u32,
    /// Pages left to hand out (`None`: unlimited).
    pub pages_left: Option<u32>,
}

impl NetHost for FakeHost {
    type Page = Page;
    fn alloc_page(&mut self) -> Option<Page> {
        if let Some(n) = &mut self.pages_left {
            *n = n.checked_sub(1)?;
        }
        Some((0..1024).map(|_| AtomicU32::new(0)).collect())
    }
    fn grant(&mut self, page: &Page, to: DomId, readonly: bool) -> Result<GrantRef, HostError> {
        let mut t = self.table.borrow_mut();
        t.next += 1;
        let r = t.next + 7;
        t.active.insert(r, (page.clone(), to, readonly));
        Ok(GrantRef(r))
    }
    fn revoke(&mut self, gref: GrantRef) -> bool {
        let mut t = self.table.borrow_mut();
        if t.mapped.contains(&gref.0) {
            return false;
        }
        t.active.remove(&gref.0).is_some()
    }
    fn alloc_channel(&mut self, _: DomId) -> Result<EvtchnPort, HostError> {
        self.next_port += 1;
        self.open_ports.insert(self.next_port);
        Ok(EvtchnPort(self.next_port))
    }
    fn close_channel(&mut self, port: EvtchnPort) {
        assert!(self.open_ports.remove(&port.0), "closing a port not open");
    }
    fn notify(&mut self, _: EvtchnPort) {
        self.notifies += 1;
    }
}

fn leak(p: Page) -> &'static [AtomicU32] {
    let b: &'static Page = Box::leak(Box::new(p));
    b
}

/// The backend's end of both rings.
pub struct FakeBackend {
    table: Rc<RefCell<Table>>,
    pub rx: BackRing<'static, NetifRxRequest, NetifRxResponse>,
    pub tx: BackRing<'static, NetifTxRequest, NetifTxResponse>,
}

impl FakeBackend {
    pub fn attach(host: &FakeHost, tx_ref: GrantRef, rx_ref: GrantRef) -> Self {
        let page = |r: GrantRef| host.table.borrow().active[&r.0].0.clone();
        FakeBackend {
            table: host.table.clone(),
            tx: BackRing::attach(leak(page(tx_ref))),
            rx: BackRing::attach(leak(page(rx_ref))),
        }
    }

    fn page(&self, gref: u32) -> Page {
        let t = self.table.borrow();
        t.active.get(&gref).expect("a granted page").0.clone()
    }

    /// Copies `packet` into posted buffers, `chunk` bytes a slot, with
    /// extra-info slots after the first; false if too few were posted
    /// (nothing is then published).
    pub fn deliver(
        &mut self,
        packet: &[u8],
        chunk: usize,
        extras: &[NetifExtraInfo],
        flags: u16,
    ) -> bool {
        let chunks: Vec<&[u8]> =
            if packet.is_empty() { vec![&[][..]] } else { packet.chunks(chunk).collect() };
        for (k, c) in chunks.iter().enumerate() {
            let Some(req) = self.rx.take_request() else { return false };
            write_bytes(&self.page(req.gref), 0, c).unwrap();
            let mut f = if k + 1 < chunks.len() { rxf::MORE_DATA } else { 0 };
            if k == 0 {
                f |= flags;
                if !extras.is_empty() {
                    f |= rxf::EXTRA_INFO;
                }
            }
            self.rx.push_response(&NetifRxResponse {
                id: req.id,
                offset: 0,
                flags: f,
                status: c.len() as i16,
            });
            if k == 0 {
                for e in extras {
                    let Some(_) = self.rx.take_request() else { return false };
                    self.rx.push_response(&extra_as_rx(e));
                }
            }
        }
        self.rx.publish();
        true
    }

    /// Answers the next posted buffer with `make(request)` as is.
    pub fn raw_rx(&mut self, make: impl FnOnce(&NetifRxRequest) -> NetifRxResponse) -> bool {
        let Some(req) = self.rx.take_request() else { return false };
        self.rx.push_response(&make(&req));
        true
    }

    /// Takes every queued TX packet (reassembled) and answers each slot.
    pub fn take_tx(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut cur: Option<(Vec<u8>, usize)> = None;
        while let Some(req) = self.tx.take_request() {
            let page = self.page(req.gref);
            let (mut data, total) = cur.take().unwrap_or((Vec::new(), usize::from(req.size)));
            let this = if data.is_empty() && req.flags & txf::MORE_DATA == 0 {
                total
            } else if data.is_empty() {
                // The first slot: its size is the packet's; its data is
                // whatever the later slots do not carry (here a full page).
                total.min(4096)
            } else {
                usize::from(req.size)
            };
            let at = data.len();
            data.resize(at + this, 0);
            read_bytes(&page, usize::from(req.offset), &mut data[at..]).unwrap();
            self.tx.push_response(&NetifTxResponse { id: req.id, status: rsp::OKAY });
            if req.flags & txf::MORE_DATA != 0 {
                cur = Some((data, total));
            } else {
                out.push(data);
            }
        }
        self.tx.publish();
        out
    }
}
