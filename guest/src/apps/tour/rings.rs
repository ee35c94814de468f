//! Step 7: shared rings (`io/ring.h`): a ring between this guest and
//! itself over a granted page, showing producer and consumer indices,
//! batching and event suppression; then, if a disk is attached, blkfront's
//! real ring with its backend (docs/rings.md).

use super::{evidence, say, Shown, StepResult};
use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{blk, grants, xenbus};
use platform::grants::Mapping;
use platform::shared_pages::SharedPages;
use pv_drivers::blkfront::Config;
use pv_drivers::env::PageSet;
use pv_drivers::ring::{BackRing, FrontRing, RingEntry};

const STEP: &str = "rings";

/// A request of the tour's tiny protocol: an id and a number.
#[derive(Clone, Copy, Debug)]
struct Req {
    id: u32,
    value: u32,
}

/// Its response: the id and the number doubled.
#[derive(Clone, Copy, Debug)]
struct Rsp {
    id: u32,
    value: u32,
}

impl RingEntry for Req {
    const BYTES: usize = 8;
    fn encode(&self, out: &mut [u32]) {
        out[0] = self.id;
        out[1] = self.value;
    }
    fn decode(w: &[u32]) -> Self {
        Req { id: w[0], value: w[1] }
    }
}

impl RingEntry for Rsp {
    const BYTES: usize = 8;
    fn encode(&self, out: &mut [u32]) {
        out[0] = self.id;
        out[1] = self.value;
    }
    fn decode(w: &[u32]) -> Self {
        Rsp { id: w[0], value: w[1] }
    }
}

/// `req_prod req_event rsp_prod rsp_event` of the shared header.
fn header(w: &[AtomicU32]) -> String {
    format!(
        "req_prod {} req_event {} rsp_prod {} rsp_event {}",
        w[0].load(Ordering::Acquire),
        w[1].load(Ordering::Acquire),
        w[2].load(Ordering::Acquire),
        w[3].load(Ordering::Acquire)
    )
}

pub fn run() -> StepResult {
    say!("A native NIC or disk has descriptor rings in memory and a doorbell register.");
    say!("A PV frontend and its backend share ring pages: a 64-byte header with four");
    say!("free-running indices, then slots. The frontend produces requests (req_prod)");
    say!("and consumes responses; the backend the other way round. Each side says when");
    say!("it wants an event (req_event, rsp_event), so a batch costs one notification.");
    let Some(me) = grants::self_domid() else {
        return Ok(Shown::Skipped("domain id unknown (no XenStore)"));
    };
    let pages = SharedPages::new(1).ok_or("no memory for the ring page")?;
    // As PV the 'backend' maps the page through a grant to ourselves; as
    // PVH it cannot (mapping our own grant would move the page in our own
    // physical map: docs/pvh.md) and reads the page where it is.
    let granted = if platform::is_pvh() {
        None
    } else {
        let gref = grants::with(|t| t.grant_access(me, &pages, 0, false))
            .ok_or("no grant table")?
            .map_err(|e| format!("grant: {e}"))?;
        let m = Mapping::new(me, gref, false).map_err(|e| format!("map: {e}"))?;
        Some((gref, m))
    };
    let shared = pages.words();
    let back_view = granted.as_ref().map_or(shared, |(_, m)| m.words32());
    let mut front: FrontRing<'_, Req, Rsp> = FrontRing::init(shared);
    let mut back: BackRing<'_, Req, Rsp> = BackRing::attach(back_view);
    match &granted {
        Some((gref, m)) => evidence!(STEP, "ring page mfn {:#x}, granted as ref {} and mapped by the 'backend' at {:#x}: {} slots of 8 bytes; {}", pages.frame(0).0, gref.0, m.va().0, front.size(), header(shared)),
        None => evidence!(STEP, "ring page gfn {:#x}, played by both ends at {:#x} (PVH: no mapping of our own grant; blkfront's ring below has dom0 at the other end): {} slots of 8 bytes; {}", pages.frame(0).0, shared.as_ptr() as u64, front.size(), header(shared)),
    }

    for i in 0..3 {
        let _ = front.push_request(&Req { id: i, value: 10 * i });
    }
    let n1 = front.publish();
    evidence!(
        STEP,
        "frontend queued 3 requests, published once: {}; notify the backend: {n1}",
        header(shared)
    );
    for i in 3..5 {
        let _ = front.push_request(&Req { id: i, value: 10 * i });
    }
    let n2 = front.publish();
    evidence!(STEP, "2 more, published: {}; notify: {n2} (req_event was not moved: the backend has not asked again, it will see them anyway)", header(shared));
    let mut taken = 0;
    while let Some(r) = back.take_request() {
        back.push_response(&Rsp { id: r.id, value: r.value * 2 });
        taken += 1;
    }
    // RING_FINAL_CHECK_FOR_REQUESTS: ask for an event on the next request.
    let (_, req_cons) = back.indices();
    back_view[1].store(req_cons.wrapping_add(1), Ordering::SeqCst);
    let n3 = back.publish();
    evidence!(STEP, "backend consumed {taken} requests, answered all, re-armed req_event, published: {}; notify the frontend: {n3}", header(shared));
    let mut got = 0;
    let mut sum = 0;
    front
        .drain_responses(|_, r| {
            got += 1;
            sum += r.value;
        })
        .map_err(|e| format!("ring: {e:?}"))?;
    evidence!(
        STEP,
        "frontend drained {got} responses (values sum {sum}) and re-armed rsp_event: {}",
        header(shared)
    );
    let _ = front.push_request(&Req { id: 5, value: 50 });
    let n4 = front.publish();
    evidence!(
        STEP,
        "one more request: {}; notify: {n4} (req_event lies in the new range)",
        header(shared)
    );
    if let Some((gref, m)) = granted {
        m.unmap().map_err(|e| format!("unmap: {e}"))?;
        grants::with(|t| t.end_access(gref))
            .ok_or("no grant table")?
            .map_err(|e| format!("revoke: {e}"))?;
    }
    if !(n1 && !n2 && n3 && n4 && got == 5 && sum == 200) {
        return Err(format!(
            "the ring did not behave as ring.h says: notifies {n1} {n2} {n3} {n4}, {got} responses"
        ));
    }
    blkfront();
    Ok(Shown::Shown)
}

/// A real ring: one read through blkfront, if a disk is attached.
fn blkfront() {
    let Some(dev) = blk::list().into_iter().flatten().next() else {
        evidence!(STEP, "no disk attached: blkfront's real ring not shown (cargo xtask run --app tour --disk 1 attaches one)");
        return;
    };
    say!("The same protocol, with dom0's blkback at the other end:");
    let name = blk::name(&dev);
    let config = Config { max_queues: 1, pool_pages: 16, ..Config::default() };
    let mut d = match blk::open(dev, config) {
        Ok(d) => d,
        Err(e) => {
            evidence!(STEP, "{name}: could not connect: {e}");
            return;
        }
    };
    let f = d.features();
    let mut buf = [0u8; 512];
    let r = d.read_sectors(0, &mut buf);
    let s = d.stats();
    evidence!(
        STEP,
        "{name}: {} ring page(s), {} slots, {} queue(s); read sector 0: {}; {} request(s), {} response(s), {} notification(s), {} grant(s) made",
        f.ring_pages,
        d.ring_slots(),
        f.queues,
        if r.is_ok() { "ok".into() } else { format!("{r:?}") },
        s.requests,
        s.responses,
        s.notifies,
        s.grants.granted
    );
    let report = xenbus::with(|bus| d.close(bus));
    if let Some(rep) = report {
        evidence!(STEP, "{name}: closed; {} of {} grants revoked", rep.revoked_in_all, rep.made);
    }
}
