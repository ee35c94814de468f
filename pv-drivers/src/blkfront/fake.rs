//! A fake blkback for host tests: a backend serving the ring against a
//! `Vec<u8>` disk, which can misbehave on request, on the pretend
//! hypervisor every driver's fake shares ([`crate::env::fake`]).

use super::env::{BlkEnv, Reconnected};
use super::wire::{get_indirect_segment, RingRequest};
use crate::env::fake::{FakeEnv, FakePages, Mem, SharedXen, Xen};
use crate::env::{EnvError, EventChannels, Grants, PageAlloc, PAGE_WORDS};
use crate::ring::BackRing;
use crate::xenbus::Bus;
use hypercall::abi::blkif::*;
use hypercall::abi::grant_table::GrantRef;
use hypercall::{DomId, EvtchnPort};
use std::cell::{Ref, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use xenstore_client::fake::FakeEvents;
use xenstore_client::RingTransport;

/// How the backend misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    None,
    /// Answers each batch in reverse order.
    Reverse,
    /// Answers one request per event, holding the rest back.
    Partial,
    /// Answers the second request of a batch with the first one's id.
    DuplicateId,
    /// Answers the first request of a batch with an id nobody used.
    IdOutOfRange,
    /// Echoes a wrong operation in the first response of a batch.
    BadOp,
    /// Publishes a producer index far beyond the ring.
    ProducerBeyond,
    /// Fails every write with BLKIF_RSP_ERROR.
    FailWrites,
    /// Never answers.
    Silent,
    /// Swaps the first responses of queue 0's and queue 1's batches: each
    /// lands on the other queue's ring.
    CrossQueue,
    /// Answers the first request of a batch with the last response sent
    /// for the same slot (a stale id, as a backend replaying old answers).
    ReplayStale,
    /// Fixed-seed chaos: random and mutated responses (see [`Chaos`]).
    Chaos,
}

/// A xorshift generator, for reproducible chaos.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// In `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What chaos did, so tests can tell the frontend had work to do.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChaosCounts {
    pub ids: u64,
    pub statuses: u64,
    pub ops: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub producers: u64,
    pub steps: u64,
}

pub struct BeRing {
    mem: Mem,
    start: usize,
    words: usize,
    idx: (u32, u32),
}

pub struct World {
    /// The hypervisor: grants (those the backend keeps mapped: persistent
    /// grants, the ring), frames, event channels.
    pub xen: SharedXen,
    events: u64,
    /// Ports given to environments split off ([`BlkEnv::split_off`]).
    pub split_ports: Vec<u32>,
    /// Refuse to split an environment off.
    pub refuse_split: bool,
    /// Environments taken back ([`BlkEnv::absorb`]).
    pub joined: usize,
    pub now: u64,
    pub disk: Vec<u8>,
    pub persistent: bool,
    /// One ring per queue, in queue order.
    pub rings: Vec<BeRing>,
    pub hostile: Hostile,
    /// Responses held back, per queue.
    held: Vec<Vec<Response>>,
    pub seen: Vec<RingRequest>,
    /// The queue each request of `seen` came on.
    pub seen_queue: Vec<usize>,
    /// What [`BlkEnv::published`] was told, call after call.
    pub published: Vec<usize>,
    pub chaos: Rng,
    /// Chance of mutating each response, in 1/1000.
    pub chaos_rate: u64,
    pub chaos_counts: ChaosCounts,
    /// The last response sent per (queue, slot bits of the id).
    sent: HashMap<(usize, u64), Response>,
    /// Things a real backend would reject (bad grants, bad segments).
    pub violations: Vec<String>,
    pub flushes: u64,
    /// New domains so far ([`BlkEnv::generation`]), and what the device
    /// reported after each reconnection.
    pub generation: u64,
    pub reconnects: Vec<Reconnected>,
}

pub type Shared = Rc<RefCell<World>>;

pub fn world(disk_bytes: usize) -> Shared {
    let mut xen = Xen::default();
    xen.backend = Some(DomId(0));
    Rc::new(RefCell::new(World {
        xen: Rc::new(RefCell::new(xen)),
        events: 0,
        split_ports: Vec::new(),
        refuse_split: false,
        joined: 0,
        now: 0,
        disk: vec![0; disk_bytes],
        persistent: false,
        rings: Vec::new(),
        hostile: Hostile::None,
        held: Vec::new(),
        seen: Vec::new(),
        seen_queue: Vec::new(),
        published: Vec::new(),
        chaos: Rng(1),
        chaos_rate: 0,
        chaos_counts: ChaosCounts::default(),
        sent: HashMap::new(),
        violations: Vec::new(),
        flushes: 0,
        generation: 0,
        reconnects: Vec::new(),
    }))
}

impl World {
    /// The page `gref` grants, as (memory, word offset, read-only).
    fn page(&self, gref: GrantRef) -> Option<(Mem, usize, bool)> {
        let g = self.xen.borrow().page(gref)?;
        Some((g.mem, g.start, g.readonly))
    }

    /// The hypervisor's state.
    pub fn xen(&self) -> Ref<'_, Xen> {
        self.xen.borrow()
    }

    /// Whether `gref` is granted now.
    pub fn granted(&self, gref: GrantRef) -> bool {
        self.xen().granted(gref)
    }

    /// Maps the ring of the next queue the frontend advertised (pages
    /// must be consecutive).
    pub fn map_ring(&mut self, grefs: &[GrantRef]) {
        let (mem, start, _) = self.page(grefs[0]).expect("ring-ref is a grant");
        for (k, g) in grefs.iter().enumerate() {
            let (m, s, ro) = self.page(*g).expect("ring-ref is a grant");
            assert!(Rc::ptr_eq(&m, &mem) && s == start + k * PAGE_WORDS && !ro);
            self.xen.borrow_mut().mapped.insert(g.0);
        }
        self.rings.push(BeRing { mem, start, words: grefs.len() * PAGE_WORDS, idx: (0, 0) });
        self.held.push(Vec::new());
    }

    /// The backend lets go of everything (blkback's disconnect).
    pub fn disconnect(&mut self) {
        self.xen.borrow_mut().mapped.clear();
        self.rings.clear();
        self.held.clear();
    }

    /// Number of grants currently active.
    pub fn live_grants(&self) -> usize {
        self.xen().live_grants()
    }

    fn segment_io(&mut self, write: bool, sector: &mut u64, s: Segment) -> bool {
        let Some((mem, base, ro)) = self.page(s.gref) else {
            self.violations.push(format!("gref {:?} not granted", s.gref));
            return false;
        };
        if s.first_sect > s.last_sect || s.last_sect >= 8 {
            self.violations.push(format!("bad segment {s:?}"));
            return false;
        }
        if !write && ro {
            self.violations.push(format!("read into read-only grant {:?}", s.gref));
            return false;
        }
        if self.persistent {
            self.xen.borrow_mut().mapped.insert(s.gref.0);
        }
        for k in s.first_sect..=s.last_sect {
            let disk_off = (*sector * 512) as usize;
            if disk_off + 512 > self.disk.len() {
                return false;
            }
            let w0 = base + usize::from(k) * 128;
            for j in 0..128 {
                let d = &mut self.disk[disk_off + 4 * j..disk_off + 4 * j + 4];
                if write {
                    d.copy_from_slice(&mem[w0 + j].load(Ordering::Relaxed).to_le_bytes());
                } else {
                    mem[w0 + j].store(u32::from_le_bytes(d.try_into().unwrap()), Ordering::Relaxed);
                }
            }
            *sector += 1;
        }
        true
    }

    fn execute(&mut self, req: &RingRequest) -> Response {
        let (id, op) = (req.id(), req.operation_byte());
        let ok = match *req {
            RingRequest::Rw(r) => match r.operation {
                Operation::Read | Operation::Write => {
                    let write = r.operation == Operation::Write;
                    if write && self.hostile == Hostile::FailWrites {
                        false
                    } else {
                        let mut sector = r.sector_number;
                        let n = usize::from(r.nr_segments).min(MAX_SEGMENTS_PER_REQUEST);
                        r.seg[..n].iter().all(|&s| self.segment_io(write, &mut sector, s))
                    }
                }
                Operation::FlushDiskcache | Operation::WriteBarrier => {
                    self.flushes += 1;
                    true
                }
                _ => false,
            },
            RingRequest::Indirect(r) => {
                let write = r.indirect_op == Operation::Write;
                if write && self.hostile == Hostile::FailWrites {
                    false
                } else {
                    let mut sector = r.sector_number;
                    let mut ok = true;
                    for i in 0..usize::from(r.nr_segments) {
                        let page = i / SEGMENTS_PER_INDIRECT_PAGE;
                        let Some((mem, base, _)) = self.page(r.indirect_grefs[page]) else {
                            self.violations.push("indirect page not granted".into());
                            ok = false;
                            break;
                        };
                        if self.persistent {
                            self.xen.borrow_mut().mapped.insert(r.indirect_grefs[page].0);
                        }
                        let seg = get_indirect_segment(
                            &mem[base..base + PAGE_WORDS],
                            i % SEGMENTS_PER_INDIRECT_PAGE,
                        );
                        ok &= self.segment_io(write, &mut sector, seg);
                    }
                    ok
                }
            }
            RingRequest::Discard(r) => {
                let a = (r.sector_number * 512) as usize;
                let b = a + (r.nr_sectors * 512) as usize;
                if b <= self.disk.len() {
                    self.disk[a..b].fill(0);
                    true
                } else {
                    false
                }
            }
            RingRequest::Unknown { .. } => {
                return Response { id, operation: op, status: RSP_EOPNOTSUPP };
            }
        };
        Response { id, operation: op, status: if ok { RSP_OKAY } else { RSP_ERROR } }
    }

    /// Serves whatever requests are on every ring; returns whether it
    /// published responses.
    pub fn step(&mut self) -> bool {
        let rings = core::mem::take(&mut self.rings);
        // Take every queue's requests and answer them.
        let mut batches = Vec::new();
        let mut idxs = Vec::new();
        for (q, ring) in rings.iter().enumerate() {
            let words = &ring.mem[ring.start..ring.start + ring.words];
            let mut back = BackRing::<RingRequest, Response>::resume(words, ring.idx);
            let mut rsps = core::mem::take(&mut self.held[q]);
            while let Some(req) = back.take_request() {
                self.seen.push(req);
                self.seen_queue.push(q);
                let rsp = self.execute(&req);
                rsps.push(rsp);
            }
            idxs.push(back.indices());
            batches.push(rsps);
        }
        if self.hostile == Hostile::CrossQueue && batches.len() >= 2 {
            let (a, b) = batches.split_at_mut(1);
            if let (Some(x), Some(y)) = (a[0].first_mut(), b[0].first_mut()) {
                core::mem::swap(x, y);
            }
        }
        let mut any = false;
        for (q, ring) in rings.iter().enumerate() {
            let mut rsps = core::mem::take(&mut batches[q]);
            match self.hostile {
                Hostile::Reverse => rsps.reverse(),
                Hostile::Partial if rsps.len() > 1 => self.held[q] = rsps.split_off(1),
                Hostile::DuplicateId if rsps.len() >= 2 => rsps[1].id = rsps[0].id,
                Hostile::IdOutOfRange if !rsps.is_empty() => rsps[0].id = 9999,
                Hostile::BadOp if !rsps.is_empty() => rsps[0].operation = 0x77,
                Hostile::Silent => self.held[q] = core::mem::take(&mut rsps),
                Hostile::ReplayStale if !rsps.is_empty() => {
                    if let Some(old) = self.sent.get(&(q, rsps[0].id & 0xffff)) {
                        rsps[0] = *old;
                    }
                }
                _ => {}
            }
            for r in &rsps {
                self.sent.insert((q, r.id & 0xffff), *r);
            }
            let mut bump = 0u32;
            if self.hostile == Hostile::Chaos {
                bump = self.mutate(q, &mut rsps);
            }
            let words = &ring.mem[ring.start..ring.start + ring.words];
            let mut back = BackRing::<RingRequest, Response>::resume(words, idxs[q]);
            for r in &rsps {
                back.push_response(r);
            }
            if !rsps.is_empty() || bump != 0 {
                back.publish();
                if self.hostile == Hostile::ProducerBeyond {
                    let (prod, _) = back.indices();
                    back.force_rsp_prod(prod.wrapping_add(1000));
                }
                if bump != 0 {
                    let (prod, _) = back.indices();
                    back.force_rsp_prod(prod.wrapping_add(bump));
                }
                any = true;
            }
            idxs[q] = back.indices();
        }
        if any {
            self.events += 1;
        }
        self.rings = rings.into_iter().zip(idxs).map(|(r, idx)| BeRing { idx, ..r }).collect();
        any
    }

    /// Chaos on one batch: mutated ids, statuses, operations; responses
    /// held back (answered later, or never), duplicated, reordered; now
    /// and then a producer index moved. Returns how far to move it.
    fn mutate(&mut self, q: usize, rsps: &mut Vec<Response>) -> u32 {
        self.chaos_counts.steps += 1;
        let rate = self.chaos_rate;
        let mut out = Vec::with_capacity(rsps.len());
        let mut held = Vec::new();
        let batch: Vec<u64> = rsps.iter().map(|r| r.id).collect();
        for mut r in rsps.drain(..) {
            if self.chaos.below(1000) >= rate {
                out.push(r);
                continue;
            }
            let raw = self.chaos.next();
            match self.chaos.below(9) {
                0 => {
                    r.id = raw;
                    self.chaos_counts.ids += 1;
                }
                1 => {
                    // Plausible: another id of the batch, or a nearby slot.
                    r.id = batch[(raw % batch.len() as u64) as usize] ^ (raw >> 60);
                    self.chaos_counts.ids += 1;
                }
                2 => {
                    r.id &= 0xffff_ffff;
                    self.chaos_counts.ids += 1;
                }
                3 => {
                    r.status = (raw >> 16) as i16;
                    self.chaos_counts.statuses += 1;
                }
                4 => {
                    r.operation = raw as u8;
                    self.chaos_counts.ops += 1;
                }
                5 => {
                    held.push(r);
                    self.chaos_counts.dropped += 1;
                    continue;
                }
                6 => {
                    out.push(r);
                    self.chaos_counts.duplicated += 1;
                }
                7 => {
                    let n = out.len();
                    if n > 0 {
                        out.swap((raw % n as u64) as usize, n - 1);
                    }
                }
                _ => {}
            }
            out.push(r);
        }
        // Held responses come back a step later, or (rarely) never.
        for r in held {
            if self.chaos.below(8) != 0 {
                self.held[q].push(r);
            }
        }
        *rsps = out;
        if rate > 0 && self.chaos.below(20_000) < rate / 4 {
            self.chaos_counts.producers += 1;
            let raw = self.chaos.next();
            return match raw % 3 {
                0 => 1,
                1 => (raw >> 8) as u32,
                _ => 0u32.wrapping_sub(1 + (raw >> 40) as u32 % 4),
            };
        }
        0
    }
}

/// What a resume test runs after a device reconnected.
pub type ReconnectedHook = Box<dyn FnMut(&Reconnected)>;

/// A bus on a leaked harness (`Box::leak`), which a device's environment
/// can hold for the test's whole life.
pub type StaticBus = Bus<RingTransport<'static, FakeEvents<'static>>>;

/// The driver's side: the shared hypervisor, and waits that run the
/// backend. For resume tests: the bus the device reconnects through, and
/// what happens at a suspend point (the test plays the toolstack there:
/// a new domain, a new backend) and after a reconnection (the new
/// backend maps the new rings).
pub struct FakeBlkEnv {
    pub w: Shared,
    base: FakeEnv,
    seen: u64,
    pub bus: Option<Rc<RefCell<StaticBus>>>,
    pub at_suspend_point: Option<Box<dyn FnMut(usize)>>,
    pub at_reconnected: Option<ReconnectedHook>,
}

impl FakeBlkEnv {
    pub fn new(w: &Shared) -> Self {
        let base = FakeEnv::on(&w.borrow().xen);
        FakeBlkEnv {
            w: w.clone(),
            base,
            seen: 0,
            bus: None,
            at_suspend_point: None,
            at_reconnected: None,
        }
    }
}

impl PageAlloc for FakeBlkEnv {
    type Pages = FakePages;
    fn alloc_pages(&mut self, n: usize) -> Result<FakePages, EnvError> {
        self.base.alloc_pages(n)
    }
}

impl Grants for FakeBlkEnv {
    fn grant(
        &mut self,
        to: DomId,
        pages: &FakePages,
        index: usize,
        readonly: bool,
    ) -> Result<GrantRef, EnvError> {
        self.base.grant(to, pages, index, readonly)
    }
    fn revoke(&mut self, gref: GrantRef) -> bool {
        self.base.revoke(gref)
    }
}

impl EventChannels for FakeBlkEnv {
    fn bind_event(&mut self, backend: DomId) -> Result<EvtchnPort, EnvError> {
        self.base.bind_event(backend)
    }
    fn close_event(&mut self, port: EvtchnPort) {
        self.base.close_event(port)
    }
    fn notify(&mut self, port: EvtchnPort) {
        self.base.notify(port)
    }
}

impl BlkEnv for FakeBlkEnv {
    fn wait_event(&mut self, deadline_ns: u64) -> bool {
        let mut w = self.w.borrow_mut();
        w.step();
        if w.events != self.seen {
            self.seen = w.events;
            w.now += 1000;
            true
        } else {
            w.now = w.now.max(deadline_ns);
            false
        }
    }

    fn now_ns(&self) -> u64 {
        self.w.borrow().now
    }

    fn published(&mut self, in_flight: usize) {
        self.w.borrow_mut().published.push(in_flight);
    }

    type Store = RingTransport<'static, FakeEvents<'static>>;

    fn with_bus<R>(&mut self, f: impl FnOnce(&mut StaticBus) -> R) -> Option<R> {
        self.bus.as_ref().map(|b| f(&mut b.borrow_mut()))
    }

    fn generation(&self) -> u64 {
        self.w.borrow().generation
    }

    fn suspend_point(&mut self, in_flight: usize) {
        if let Some(f) = self.at_suspend_point.as_mut() {
            f(in_flight);
        }
    }

    fn reconnected(&mut self, what: &Reconnected) {
        self.w.borrow_mut().reconnects.push(what.clone());
        if let Some(f) = self.at_reconnected.as_mut() {
            f(what);
        }
    }

    fn split_off(&mut self, port: EvtchnPort) -> Result<Self, EnvError> {
        let mut w = self.w.borrow_mut();
        if w.refuse_split {
            return Err(EnvError::TooManyDevices { max: 1 });
        }
        w.split_ports.push(port.0);
        drop(w);
        Ok(FakeBlkEnv::new(&self.w))
    }

    fn absorb(&mut self, _other: Self) {
        self.w.borrow_mut().joined += 1;
    }
}
