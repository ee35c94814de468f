//! One queue of a device: its shared ring, event channel and the table of
//! requests in flight on it (Linux's `blkfront_ring_info`). With
//! multi-queue (`multi-queue-num-queues`) a device has several, each
//! answered on its own ring.
//!
//! A request's id is opaque to the backend, which must echo it. Ours says
//! where the request lives and which use of that slot it is:
//! `slot | queue << 16 | seq << 32`, `seq` counting every request of the
//! device. So a response carrying a stale id (a slot since reused), an
//! id of another queue, or a made-up one matches nothing, and never
//! completes a request the backend has not answered.
//!
//! A bogus response takes a response slot of the ring, so the request
//! whose answer it replaced is never answered: every request the ring
//! took has been answered (`rsp_cons == req_prod`) while some slot is
//! still in use. A sound backend never gets there, so at that point
//! those requests are failed at once ([`Queue::orphans`]), not at the I/O
//! timeout.

use super::env::BlkEnv;
use super::wire::RingRequest;
use crate::env::PageSet;
use crate::ring::{FrontRing, RingError, RingFull};
use alloc::vec::Vec;
use hypercall::abi::blkif::{Operation, Response};
use hypercall::abi::grant_table::GrantRef;
use hypercall::EvtchnPort;

/// Most queues a device uses (`Config::max_queues` is capped to it).
pub const MAX_QUEUES: usize = 8;

/// One request on a ring.
pub(crate) struct InFlight {
    /// The call's operation, which the response must echo (for an
    /// indirect request, the operation it carries).
    pub op: Operation,
    pub sector: u64,
    pub data: Vec<usize>,
    pub indirect: Vec<usize>,
    /// Where a read's bytes go in the caller's buffer, and how many.
    pub buf_off: usize,
    pub len: usize,
    /// The request as it went on the ring: in a new domain it is put on
    /// the new ring again, with new grants and a new id.
    pub req: RingRequest,
    seq: u32,
}

impl InFlight {
    /// `req` (of operation `op`) as it goes on the ring, holding `data`
    /// and `indirect` pages of the pool, for `len` bytes of the caller's
    /// buffer from `buf_off`.
    pub fn new(
        op: Operation,
        req: RingRequest,
        sector: u64,
        data: Vec<usize>,
        indirect: Vec<usize>,
        buf_off: usize,
        len: usize,
    ) -> Self {
        InFlight { op, sector, data, indirect, buf_off, len, req, seq: 0 }
    }

    /// The device's count of requests when this one was made.
    pub fn seq(&self) -> u32 {
        self.seq
    }
}

/// The ring memory, its grants and its event channel, as the handshake
/// builds them.
pub struct QueueSetup<P> {
    pub mem: P,
    pub grefs: Vec<GrantRef>,
    pub port: EvtchnPort,
}

impl<P: PageSet> QueueSetup<P> {
    /// Builds queue `i`'s ring of `pages` pages: memory, header, grants,
    /// event channel. On failure everything made so far is undone.
    pub fn build<E: BlkEnv<Pages = P>>(
        env: &mut E,
        backend: hypercall::DomId,
        pages: usize,
    ) -> Result<Self, super::BlkError> {
        let mem = env.alloc_pages(pages)?;
        // Header initialised before the backend can see the pages.
        let _ = FrontRing::<RingRequest, Response>::init(mem.words());
        let mut grefs = Vec::new();
        for i in 0..pages {
            match env.grant(backend, &mem, i, false) {
                Ok(g) => grefs.push(g),
                Err(e) => {
                    QueueSetup { mem, grefs, port: EvtchnPort(0) }.release(env, false);
                    return Err(e.into());
                }
            }
        }
        match env.bind_event(backend) {
            Ok(port) => Ok(QueueSetup { mem, grefs, port }),
            Err(e) => {
                QueueSetup { mem, grefs, port: EvtchnPort(0) }.release(env, false);
                Err(e.into())
            }
        }
    }

    /// Closes the port (if `bound`) and revokes the ring's grants; the
    /// memory is leaked if the backend still maps a page. Returns
    /// (revoked, refused).
    pub fn release<E: BlkEnv<Pages = P>>(self, env: &mut E, bound: bool) -> (u64, u64) {
        if bound {
            env.close_event(self.port);
        }
        let (mut ok, mut refused) = (0, 0);
        for g in self.grefs {
            if env.revoke(g) {
                ok += 1;
            } else {
                refused += 1;
            }
        }
        if refused > 0 {
            // The backend still maps the ring: its memory must never be
            // reused.
            core::mem::forget(self.mem);
        }
        (ok, refused)
    }
}

/// What [`Queue::take`] found in the next response slot.
pub(crate) enum Taken {
    /// The ring has nothing more.
    Empty,
    /// A response to one of this queue's requests (slot freed).
    Done(Response, InFlight),
    /// A response matching no request in flight here.
    Bogus(Response),
}

pub(crate) struct Queue<P> {
    pub setup: QueueSetup<P>,
    index: usize,
    idx: (u32, u32),
    slots: Vec<Option<InFlight>>,
    free: Vec<usize>,
    /// Requests pushed since the last publish.
    unpublished: bool,
}

pub(crate) fn encode_id(queue: usize, slot: usize, seq: u32) -> u64 {
    slot as u64 | ((queue as u64) << 16) | (u64::from(seq) << 32)
}

impl<P: PageSet> Queue<P> {
    pub fn new(setup: QueueSetup<P>, index: usize) -> Self {
        let size = FrontRing::<RingRequest, Response>::attach(setup.mem.words()).size();
        Queue {
            setup,
            index,
            idx: (0, 0),
            slots: (0..size).map(|_| None).collect(),
            free: (0..size as usize).rev().collect(),
            unpublished: false,
        }
    }

    fn ring(&self) -> FrontRing<'_, RingRequest, Response> {
        FrontRing::resume(self.setup.mem.words(), self.idx)
    }

    pub fn size(&self) -> u32 {
        self.slots.len() as u32
    }

    /// The queue's number in the device (`queue-N`), which its ids carry.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The ring's state for a report: `queue N: req_prod P (event E),
    /// rsp_prod P (event E), consumed C, waiting W`.
    pub fn describe(&self) -> alloc::string::String {
        let [rp, re, sp, se] = self.ring().header();
        alloc::format!(
            "queue {}: req_prod {rp} (event {re}), rsp_prod {sp} (event {se}), consumed {}, waiting {}",
            self.index,
            self.idx.1,
            self.busy()
        )
    }

    /// Whether a request can be queued now.
    pub fn has_room(&self) -> bool {
        !self.free.is_empty() && self.ring().free_requests() > 0
    }

    /// Requests waiting for an answer.
    pub fn busy(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// The id the next request will carry (`seq` counts requests).
    pub fn next_id(&self, seq: u32) -> Option<u64> {
        self.free.last().map(|&s| encode_id(self.index, s, seq))
    }

    /// Puts `req` (carrying [`Queue::next_id`]'s id) on the ring.
    pub fn push(&mut self, req: &RingRequest, mut f: InFlight, seq: u32) -> Result<(), RingFull> {
        let slot = *self.free.last().ok_or(RingFull)?;
        debug_assert_eq!(req.id(), encode_id(self.index, slot, seq));
        let mut ring = FrontRing::<RingRequest, Response>::resume(self.setup.mem.words(), self.idx);
        ring.push_request(req)?;
        self.idx = ring.indices();
        self.free.pop();
        f.seq = seq;
        self.slots[slot] = Some(f);
        self.unpublished = true;
        Ok(())
    }

    /// Makes pushed requests visible; true if the backend wants a kick.
    pub fn publish(&mut self) -> bool {
        if !core::mem::take(&mut self.unpublished) {
            return false;
        }
        let mut ring = FrontRing::<RingRequest, Response>::resume(self.setup.mem.words(), self.idx);
        ring.publish()
    }

    /// The next response, copied out once and matched against the table.
    pub fn take(&mut self) -> Result<Taken, RingError> {
        let mut ring = FrontRing::<RingRequest, Response>::resume(self.setup.mem.words(), self.idx);
        let rsp = loop {
            match ring.take_response() {
                Ok(Some(r)) => break r,
                Ok(None) => {
                    let again = ring.final_check_for_responses();
                    self.idx = ring.indices();
                    match again? {
                        true => continue,
                        false => return Ok(Taken::Empty),
                    }
                }
                Err(e) => {
                    self.idx = ring.indices();
                    return Err(e);
                }
            }
        };
        self.idx = ring.indices();
        let id = rsp.id;
        let slot = (id & 0xffff) as usize;
        let ours = (id >> 16) & 0xffff == self.index as u64
            && self
                .slots
                .get(slot)
                .is_some_and(|s| s.as_ref().is_some_and(|f| u64::from(f.seq) == id >> 32));
        if !ours {
            return Ok(Taken::Bogus(rsp));
        }
        let f = self.slots[slot].take().expect("checked above");
        self.free.push(slot);
        Ok(Taken::Done(rsp, f))
    }

    /// Requests that can never be answered: the ring has answered every
    /// request it took, yet these are still waiting (bogus responses took
    /// their places). They are removed from the table and returned.
    pub fn orphans(&mut self) -> Vec<InFlight> {
        if self.ring().in_flight() != 0 || self.busy() == 0 {
            return Vec::new();
        }
        self.drain()
    }

    /// Every request still in the table (the ring is abandoned or orphans).
    pub fn drain(&mut self) -> Vec<InFlight> {
        let mut out = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let Some(f) = s.take() {
                out.push(f);
                self.free.push(i);
            }
        }
        out
    }
}
