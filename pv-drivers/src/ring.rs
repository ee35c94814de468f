//! Xen's shared request/response rings (`xen/include/public/io/ring.h`).
//!
//! A ring lives in pages granted to the backend: a 64-byte header
//! (`req_prod, req_event, rsp_prod, rsp_event`, padding) followed by a
//! power-of-two number of slots, each big enough for a request or a
//! response. Indices are free-running `u32`s. The memory is seen only as
//! 32-bit atomics: the backend writes `rsp_prod`/`req_event` and the slots
//! at any time, so a slot is copied out once, then decoded and checked.
//!
//! Ordering follows ring.h: the producer writes slots, then (`wmb`, here a
//! Release store) the producer index; it then (`mb`, a SeqCst fence) reads
//! the consumer's event index to decide whether to notify. The consumer
//! reads the producer index with Acquire before reading slots.

use core::marker::PhantomData;
use core::sync::atomic::{fence, AtomicU32, Ordering};

/// Bytes of the ring header before the first slot.
pub const HEADER_BYTES: usize = 64;
const HEADER_WORDS: usize = HEADER_BYTES / 4;
const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 1;
const RSP_PROD: usize = 2;
const RSP_EVENT: usize = 3;

/// A request or response as it sits in a slot: a fixed number of 32-bit
/// words, little-endian, laid out as the C struct (checked by each
/// protocol's layout tests).
pub trait RingEntry: Sized {
    /// Size of the C struct in bytes (a multiple of 4).
    const BYTES: usize;
    /// Writes the entry into `out` (`BYTES / 4` words).
    fn encode(&self, out: &mut [u32]);
    /// Reads an entry from a private copy of a slot.
    fn decode(words: &[u32]) -> Self;
}

/// Slots that fit in `bytes` of ring memory for entries of `slot_bytes`:
/// the largest power of two (`__RING_SIZE`).
pub const fn ring_size(bytes: usize, slot_bytes: usize) -> u32 {
    let n = (bytes - HEADER_BYTES) / slot_bytes;
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

/// The backend broke the ring protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The producer index claims more unconsumed entries than the ring holds.
    ProducerOutOfRange { prod: u32, cons: u32, size: u32 },
}

/// The ring has no free slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFull;

/// Slot size of a ring carrying `Req` and `Rsp`: the C union of both.
const fn slot_words<Req: RingEntry, Rsp: RingEntry>() -> usize {
    let b = if Req::BYTES > Rsp::BYTES { Req::BYTES } else { Rsp::BYTES };
    b / 4
}

fn copy_out(mem: &[AtomicU32], at: usize, out: &mut [u32]) {
    for (i, w) in out.iter_mut().enumerate() {
        *w = mem[at + i].load(Ordering::Relaxed);
    }
}

fn copy_in(mem: &[AtomicU32], at: usize, words: &[u32]) {
    for (i, &w) in words.iter().enumerate() {
        mem[at + i].store(w, Ordering::Relaxed);
    }
}

/// Largest slot any protocol here uses (netif's 12-byte and blkif's
/// 112-byte entries), in words, for the stack copy of one slot.
const MAX_SLOT_WORDS: usize = 64;

/// The frontend's end: produces requests, consumes responses.
pub struct FrontRing<'a, Req, Rsp> {
    mem: &'a [AtomicU32],
    size: u32,
    req_prod_pvt: u32,
    rsp_cons: u32,
    _entries: PhantomData<(Req, Rsp)>,
}

impl<'a, Req: RingEntry, Rsp: RingEntry> FrontRing<'a, Req, Rsp> {
    /// Initialises the shared header (`SHARED_RING_INIT`) and takes the
    /// front end (`FRONT_RING_INIT`). `mem` is the whole ring area.
    pub fn init(mem: &'a [AtomicU32]) -> Self {
        for w in &mem[..HEADER_WORDS] {
            w.store(0, Ordering::Relaxed);
        }
        mem[REQ_EVENT].store(1, Ordering::Relaxed);
        mem[RSP_EVENT].store(1, Ordering::Release);
        Self::attach(mem)
    }

    /// The front end of a ring whose header is already initialised.
    pub fn attach(mem: &'a [AtomicU32]) -> Self {
        let slot = slot_words::<Req, Rsp>();
        assert!(slot <= MAX_SLOT_WORDS, "ring slot larger than this implementation copies");
        let size = ring_size(mem.len() * 4, slot * 4);
        assert!(size > 0, "ring memory too small for one slot");
        FrontRing { mem, size, req_prod_pvt: 0, rsp_cons: 0, _entries: PhantomData }
    }

    /// Slots in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The front end of a ring already in use, at the private indices a
    /// previous [`FrontRing::indices`] returned: lets a driver that owns
    /// the ring memory keep only the indices between calls.
    pub fn resume(mem: &'a [AtomicU32], (req_prod_pvt, rsp_cons): (u32, u32)) -> Self {
        FrontRing { req_prod_pvt, rsp_cons, ..Self::attach(mem) }
    }

    /// The private producer and consumer indices, for [`FrontRing::resume`].
    pub fn indices(&self) -> (u32, u32) {
        (self.req_prod_pvt, self.rsp_cons)
    }

    /// The shared header as it is now: `req_prod`, `req_event`,
    /// `rsp_prod`, `rsp_event` (for reports: the backend writes two).
    pub fn header(&self) -> [u32; 4] {
        [REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT].map(|i| self.mem[i].load(Ordering::Acquire))
    }

    fn slot_at(&self, idx: u32) -> usize {
        HEADER_WORDS + (idx & (self.size - 1)) as usize * slot_words::<Req, Rsp>()
    }

    /// Requests that can be queued before responses free slots.
    pub fn free_requests(&self) -> u32 {
        self.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Requests queued but not yet answered.
    pub fn in_flight(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Writes `req` into the next slot (not yet visible to the backend).
    pub fn push_request(&mut self, req: &Req) -> Result<(), RingFull> {
        if self.free_requests() == 0 {
            return Err(RingFull);
        }
        let mut words = [0u32; MAX_SLOT_WORDS];
        let n = Req::BYTES / 4;
        req.encode(&mut words[..n]);
        copy_in(self.mem, self.slot_at(self.req_prod_pvt), &words[..n]);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes queued requests; true if the backend asked to be notified
    /// (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    pub fn publish(&mut self) -> bool {
        let old = self.mem[REQ_PROD].load(Ordering::Relaxed);
        let new = self.req_prod_pvt;
        self.mem[REQ_PROD].store(new, Ordering::Release);
        fence(Ordering::SeqCst);
        let event = self.mem[REQ_EVENT].load(Ordering::Relaxed);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Responses waiting, checked against the ring's size.
    pub fn unconsumed_responses(&self) -> Result<u32, RingError> {
        let prod = self.mem[RSP_PROD].load(Ordering::Acquire);
        let n = prod.wrapping_sub(self.rsp_cons);
        // More responses than requests in flight is as bad as more than
        // the ring holds: the backend is answering what was never asked.
        if n > self.size || n > self.in_flight() {
            return Err(RingError::ProducerOutOfRange {
                prod,
                cons: self.rsp_cons,
                size: self.size,
            });
        }
        Ok(n)
    }

    /// The next response, copied out of its slot once.
    pub fn take_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if self.unconsumed_responses()? == 0 {
            return Ok(None);
        }
        let mut words = [0u32; MAX_SLOT_WORDS];
        let n = Rsp::BYTES / 4;
        copy_out(self.mem, self.slot_at(self.rsp_cons), &mut words[..n]);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(Rsp::decode(&words[..n])))
    }

    /// The consumer's loop: every response, each with its ring index, then
    /// the final check (re-arming the event), repeated until the ring is
    /// truly empty. Stops at the first protocol error.
    pub fn drain_responses(&mut self, f: impl FnMut(u32, Rsp)) -> Result<(), RingError> {
        self.drain_responses_ahead(1, f)
    }

    /// [`FrontRing::drain_responses`], re-arming the event `ahead`
    /// responses on ([`FrontRing::final_check_for_responses_ahead`]).
    pub fn drain_responses_ahead(
        &mut self,
        ahead: u32,
        mut f: impl FnMut(u32, Rsp),
    ) -> Result<(), RingError> {
        loop {
            let idx = self.rsp_cons;
            match self.take_response()? {
                Some(rsp) => f(idx, rsp),
                None if self.final_check_for_responses_ahead(ahead)? => continue,
                None => return Ok(()),
            }
        }
    }

    /// Takes every published response without asking for an event when
    /// more come (`rsp_event` stays where it is, so the other end sends
    /// none for them): for a consumer that looks at the ring anyway, on
    /// its own schedule, and must not be woken for each answer (netfront's
    /// TX completions while it has room). [`FrontRing::drain_responses`]
    /// asks again.
    pub fn take_responses(&mut self, mut f: impl FnMut(u32, Rsp)) -> Result<(), RingError> {
        loop {
            let idx = self.rsp_cons;
            match self.take_response()? {
                Some(rsp) => f(idx, rsp),
                None => return Ok(()),
            }
        }
    }

    /// After draining: asks for an event on the next response and checks
    /// once more (`RING_FINAL_CHECK_FOR_RESPONSES`), so a response that
    /// raced the request is not left without an event.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        self.final_check_for_responses_ahead(1)
    }

    /// [`FrontRing::final_check_for_responses`], asking for the event only
    /// when the `ahead`-th response from here is published (the other end
    /// notifies when `rsp_event` falls among the responses it pushes), so
    /// a batch costs one event: interrupt moderation. 0 counts as 1, and
    /// more than the requests in flight as that many.
    pub fn final_check_for_responses_ahead(&mut self, ahead: u32) -> Result<bool, RingError> {
        if self.unconsumed_responses()? > 0 {
            return Ok(true);
        }
        // Never further than the requests still unanswered: that event
        // would not come.
        let ahead = ahead.clamp(1, self.in_flight().max(1));
        self.mem[RSP_EVENT].store(self.rsp_cons.wrapping_add(ahead), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Ok(self.unconsumed_responses()? > 0)
    }
}

/// The backend's end: for fake backends in tests (and future backends).
pub struct BackRing<'a, Req, Rsp> {
    mem: &'a [AtomicU32],
    size: u32,
    rsp_prod_pvt: u32,
    req_cons: u32,
    _entries: PhantomData<(Req, Rsp)>,
}

impl<'a, Req: RingEntry, Rsp: RingEntry> BackRing<'a, Req, Rsp> {
    /// The back end of an initialised ring (`BACK_RING_ATTACH` at zero).
    pub fn attach(mem: &'a [AtomicU32]) -> Self {
        let size = ring_size(mem.len() * 4, slot_words::<Req, Rsp>() * 4);
        BackRing { mem, size, rsp_prod_pvt: 0, req_cons: 0, _entries: PhantomData }
    }

    /// The back end of a ring already in use, at the private indices
    /// (`rsp_prod_pvt`, `req_cons`) a previous [`BackRing::indices`]
    /// returned (as [`FrontRing::resume`]).
    pub fn resume(mem: &'a [AtomicU32], (rsp_prod_pvt, req_cons): (u32, u32)) -> Self {
        BackRing { rsp_prod_pvt, req_cons, ..Self::attach(mem) }
    }

    /// The private producer and consumer indices, for [`BackRing::resume`].
    pub fn indices(&self) -> (u32, u32) {
        (self.rsp_prod_pvt, self.req_cons)
    }

    fn slot_at(&self, idx: u32) -> usize {
        HEADER_WORDS + (idx & (self.size - 1)) as usize * slot_words::<Req, Rsp>()
    }

    /// The next request, if any.
    pub fn take_request(&mut self) -> Option<Req> {
        let prod = self.mem[REQ_PROD].load(Ordering::Acquire);
        if prod == self.req_cons {
            return None;
        }
        let mut words = [0u32; MAX_SLOT_WORDS];
        let n = Req::BYTES / 4;
        copy_out(self.mem, self.slot_at(self.req_cons), &mut words[..n]);
        self.req_cons = self.req_cons.wrapping_add(1);
        Some(Req::decode(&words[..n]))
    }

    /// Writes a response (not yet visible).
    pub fn push_response(&mut self, rsp: &Rsp) {
        let mut words = [0u32; MAX_SLOT_WORDS];
        let n = Rsp::BYTES / 4;
        rsp.encode(&mut words[..n]);
        copy_in(self.mem, self.slot_at(self.rsp_prod_pvt), &words[..n]);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
    }

    /// Publishes responses; true if the frontend asked to be notified.
    pub fn publish(&mut self) -> bool {
        let old = self.mem[RSP_PROD].load(Ordering::Relaxed);
        let new = self.rsp_prod_pvt;
        self.mem[RSP_PROD].store(new, Ordering::Release);
        fence(Ordering::SeqCst);
        let event = self.mem[RSP_EVENT].load(Ordering::Relaxed);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Sets the shared producer index to anything (for hostile-backend tests).
    pub fn force_rsp_prod(&mut self, prod: u32) {
        self.mem[RSP_PROD].store(prod, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16-byte request and an 8-byte response, like a tiny protocol.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Req {
        id: u16,
        op: u8,
        payload: u64,
    }
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Rsp {
        id: u16,
        status: i16,
        extra: u32,
    }

    impl RingEntry for Req {
        const BYTES: usize = 16;
        fn encode(&self, out: &mut [u32]) {
            out[0] = u32::from(self.id) | (u32::from(self.op) << 16);
            out[1] = 0;
            out[2] = self.payload as u32;
            out[3] = (self.payload >> 32) as u32;
        }
        fn decode(w: &[u32]) -> Self {
            Req {
                id: w[0] as u16,
                op: (w[0] >> 16) as u8,
                payload: u64::from(w[2]) | (u64::from(w[3]) << 32),
            }
        }
    }

    impl RingEntry for Rsp {
        const BYTES: usize = 8;
        fn encode(&self, out: &mut [u32]) {
            out[0] = u32::from(self.id) | (u32::from(self.status as u16) << 16);
            out[1] = self.extra;
        }
        fn decode(w: &[u32]) -> Self {
            Rsp { id: w[0] as u16, status: (w[0] >> 16) as u16 as i16, extra: w[1] }
        }
    }

    fn page() -> Vec<AtomicU32> {
        (0..1024).map(|_| AtomicU32::new(0xdead_beef)).collect()
    }

    #[test]
    fn sizes_follow_ring_h() {
        // blkif: 112-byte slots in one page -> 32; netif tx: 12 -> 256.
        assert_eq!(ring_size(4096, 112), 32);
        assert_eq!(ring_size(4096, 12), 256);
        assert_eq!(ring_size(4096, 16), 128);
        assert_eq!(ring_size(4 * 4096, 112), 128);
    }

    #[test]
    fn requests_and_responses_round_trip_across_wraps() {
        let mem = page();
        let mut front = FrontRing::<Req, Rsp>::init(&mem);
        let mut back = BackRing::<Req, Rsp>::attach(&mem);
        assert_eq!(front.size(), 128);
        let mut next_id = 0u16;
        let mut answered = 0u32;
        for round in 0..50u64 {
            let burst = (round % 7 + 1) * 20;
            let burst = burst.min(u64::from(front.free_requests()));
            for _ in 0..burst {
                front
                    .push_request(&Req { id: next_id, op: 3, payload: u64::from(next_id) << 20 })
                    .unwrap();
                next_id = next_id.wrapping_add(1);
            }
            front.publish();
            while let Some(req) = back.take_request() {
                assert_eq!(req.payload, u64::from(req.id) << 20);
                back.push_response(&Rsp { id: req.id, status: 0, extra: u32::from(req.op) });
            }
            back.publish();
            while let Some(rsp) = front.take_response().unwrap() {
                assert_eq!(rsp.id, answered as u16);
                answered += 1;
            }
            assert!(!front.final_check_for_responses().unwrap());
        }
        assert_eq!(answered, u32::from(next_id));
        assert_eq!(front.in_flight(), 0);
    }

    #[test]
    fn indices_survive_detaching_and_resuming() {
        let mem = page();
        let mut front = FrontRing::<Req, Rsp>::init(&mem);
        let back = BackRing::<Req, Rsp>::attach(&mem);
        front.push_request(&Req { id: 1, op: 0, payload: 9 }).unwrap();
        front.publish();
        let saved = front.indices();
        let bsaved = back.indices();
        let mut back = BackRing::<Req, Rsp>::resume(&mem, bsaved);
        assert_eq!(back.take_request().unwrap().payload, 9);
        back.push_response(&Rsp { id: 1, status: 0, extra: 0 });
        back.publish();
        let mut front = FrontRing::<Req, Rsp>::resume(&mem, saved);
        assert_eq!(front.in_flight(), 1);
        assert_eq!(front.take_response().unwrap().unwrap().id, 1);
        assert_eq!(front.indices(), (1, 1));
        assert_eq!(back.indices(), (1, 1));
    }

    #[test]
    fn full_ring_refuses_more() {
        let mem = page();
        let mut front = FrontRing::<Req, Rsp>::init(&mem);
        for i in 0..128 {
            front.push_request(&Req { id: i, op: 0, payload: 0 }).unwrap();
        }
        assert_eq!(front.push_request(&Req { id: 0, op: 0, payload: 0 }), Err(RingFull));
    }

    #[test]
    fn notification_only_when_the_peer_asked() {
        let mem = page();
        let mut front = FrontRing::<Req, Rsp>::init(&mem);
        front.push_request(&Req { id: 1, op: 0, payload: 0 }).unwrap();
        // req_event starts at 1: the first request notifies.
        assert!(front.publish());
        // The backend did not re-arm (req_event still 1): no notification.
        front.push_request(&Req { id: 2, op: 0, payload: 0 }).unwrap();
        assert!(!front.publish());
        // The backend re-arms for the next request.
        mem[REQ_EVENT].store(3, Ordering::SeqCst);
        front.push_request(&Req { id: 3, op: 0, payload: 0 }).unwrap();
        assert!(front.publish());
    }

    #[test]
    fn a_hostile_producer_index_is_an_error_not_a_read_out_of_bounds() {
        let mem = page();
        let mut front = FrontRing::<Req, Rsp>::init(&mem);
        let mut back = BackRing::<Req, Rsp>::attach(&mem);
        front.push_request(&Req { id: 1, op: 0, payload: 0 }).unwrap();
        front.publish();
        back.force_rsp_prod(1000);
        assert!(matches!(
            front.take_response(),
            Err(RingError::ProducerOutOfRange { prod: 1000, .. })
        ));
        // Answering more than was asked is refused too.
        back.force_rsp_prod(2);
        assert!(front.take_response().is_err());
        // A sane index again: the ring is usable.
        back.push_response(&Rsp { id: 1, status: -5, extra: 0 });
        back.publish();
        assert_eq!(front.take_response().unwrap(), Some(Rsp { id: 1, status: -5, extra: 0 }));
    }

    #[test]
    fn drain_takes_everything_with_its_index_and_rearms() {
        let mem = page();
        let mut front = FrontRing::<Req, Rsp>::init(&mem);
        let mut back = BackRing::<Req, Rsp>::attach(&mem);
        for id in 0..5 {
            front.push_request(&Req { id, op: 0, payload: 0 }).unwrap();
        }
        front.publish();
        while let Some(r) = back.take_request() {
            back.push_response(&Rsp { id: r.id, status: 0, extra: 0 });
        }
        back.publish();
        let mut got = vec![];
        front.drain_responses(|idx, r| got.push((idx, r.id))).unwrap();
        assert_eq!(got, vec![(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]);
        assert_eq!(mem[RSP_EVENT].load(Ordering::SeqCst), 6, "armed for the next response");
        back.force_rsp_prod(100);
        assert!(front.drain_responses(|_, _| {}).is_err());
    }

    #[test]
    fn final_check_rearms_the_event() {
        let mem = page();
        let mut front = FrontRing::<Req, Rsp>::init(&mem);
        let mut back = BackRing::<Req, Rsp>::attach(&mem);
        front.push_request(&Req { id: 7, op: 0, payload: 0 }).unwrap();
        front.publish();
        assert!(!front.final_check_for_responses().unwrap());
        assert_eq!(mem[RSP_EVENT].load(Ordering::SeqCst), 1);
        back.take_request().unwrap();
        back.push_response(&Rsp { id: 7, status: 0, extra: 0 });
        // rsp_event == 1 and the response is index 0 -> 1: notify.
        assert!(back.publish());
        assert!(front.final_check_for_responses().unwrap());
    }

    #[test]
    fn an_event_asked_ahead_comes_with_that_response_and_never_past_the_requests() {
        let mem = page();
        let mut front = FrontRing::<Req, Rsp>::init(&mem);
        let mut back = BackRing::<Req, Rsp>::attach(&mem);
        for id in 0..3 {
            front.push_request(&Req { id, op: 0, payload: 0 }).unwrap();
        }
        front.publish();
        // 5 asked, 3 in flight: the event comes with the third.
        assert!(!front.final_check_for_responses_ahead(5).unwrap());
        assert_eq!(mem[RSP_EVENT].load(Ordering::SeqCst), 3);
        let mut answer = |n| {
            let r = back.take_request().unwrap();
            back.push_response(&Rsp { id: r.id, status: 0, extra: 0 });
            assert_eq!(back.publish(), n == 3, "response {n}");
        };
        (1..=3).for_each(&mut answer);
        let mut got = 0;
        front.drain_responses_ahead(2, |_, _| got += 1).unwrap();
        assert_eq!(got, 3);
        // Nothing in flight: asked as 1.
        assert_eq!(mem[RSP_EVENT].load(Ordering::SeqCst), 4);
    }

    /// Fuzz target `ring`: the generic FrontRing against a backend that
    /// does anything to the shared page (answers, publishes any producer
    /// index, scribbles over any word, rewrites the event indices). The
    /// front never panics, never hands out more responses than requests it
    /// had in flight, and its indices stay within the ring.
    #[test]
    fn fuzz_ring() {
        use fuzzkit::{Arbitrary, Unstructured};
        fuzzkit::fuzz("ring", |u: &mut Unstructured<'_>| {
            let mem = page();
            let mut front = FrontRing::<Req, Rsp>::init(&mem);
            let mut back = BackRing::<Req, Rsp>::attach(&mem);
            let size = front.size();
            let (mut pushed, mut taken) = (0u64, 0u64);
            for _ in 0..u.int_in_range(1..=200)? {
                match u.int_in_range(0..=7)? {
                    0 | 1 => {
                        let r =
                            front.push_request(&Req { id: u16::arbitrary(u)?, op: 0, payload: 0 });
                        if r.is_ok() {
                            pushed += 1;
                        } else {
                            assert_eq!(front.free_requests(), 0);
                        }
                    }
                    2 => {
                        front.publish();
                    }
                    3 => {
                        if back.take_request().is_some() {
                            let rsp = Rsp {
                                id: u16::arbitrary(u)?,
                                status: i16::arbitrary(u)?,
                                extra: 0,
                            };
                            back.push_response(&rsp);
                        }
                        back.publish();
                    }
                    4 => back.force_rsp_prod(u32::arbitrary(u)?),
                    5 => {
                        let at = u.choose_index(mem.len())?;
                        mem[at].store(u32::arbitrary(u)?, Ordering::Relaxed);
                    }
                    _ => {
                        let before = front.in_flight();
                        let mut n = 0u32;
                        // Any moderation, 0 and past the ring included.
                        let ahead = u32::arbitrary(u)? % (2 * size + 2);
                        let r = front.drain_responses_ahead(ahead, |_, _| n += 1);
                        assert!(n <= before, "{n} responses for {before} in flight ({r:?})");
                        taken += u64::from(n);
                        if r.is_ok() {
                            // Never asked past the requests still out.
                            let event = mem[RSP_EVENT].load(Ordering::Relaxed);
                            let asked = event.wrapping_sub(front.indices().1);
                            assert!(asked >= 1 && asked <= front.in_flight().max(1), "{asked}");
                        }
                    }
                }
                assert!(front.in_flight() <= size);
                assert!(front.free_requests() <= size);
                assert!(taken <= pushed);
            }
            Ok(())
        });
    }
}
