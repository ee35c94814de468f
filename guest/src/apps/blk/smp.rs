//! `blk.mode=smp`: one disk's queues driven at once from every vCPU
//! (issue 21; docs/smp.md, "Work on every vCPU: blkfront queues").
//!
//! The first writable disk is opened with every queue blkback offers (up
//! to 8), and split into one part per queue (`BlkFront::split`: its own
//! ring, event channel, bounce pool and counters). Queue `q` is a *lane*
//! whose home is vCPU `q mod vCPUs`; its event channel is bound there
//! (`EVTCHNOP_bind_vcpu`), and that vCPU does the lane's I/O: a long
//! task on a secondary vCPU, the loop on vCPU 0. A lane writes passes
//! over its own region of the disk (pattern seed `blk.seed + 1000 *
//! lane + pass`, in chunks of odd sizes), reads each pass back and checks
//! it byte for byte.
//!
//! `xl vcpu-set` (the `cpu/N/availability` nodes) is followed: a vCPU
//! asked to go offline finishes its pass, binds its lanes' channels back
//! to vCPU 0 and parks them there (vCPU 0 then drives them); when it is
//! back, vCPU 0 binds them to it again and hands them over. Each change
//! starts an *epoch*; at its end every lane's figures for the epoch are
//! printed (passes, requests, events taken on each vCPU, calls that
//! started while a lane of another vCPU was in a call), and once more at
//! the end (`xl shutdown`, or `blk.soak_s`).
//!
//! A suspend (`xl save`, `xl restore`, `xl save -c`) is taken between
//! passes: every lane is parked, the parts are joined into one device
//! again, the domain suspends (the secondary vCPUs go down and come
//! back), the device connects to its new backend if the domain is a new
//! one (`BlkFront::follow_domain`), is split again, and each lane's new
//! channel is bound to its vCPU again; a new epoch begins.

use super::pattern;
use crate::apps::{AppError, AppResult};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use kernel::blk::{self, Disk};
use kernel::cmdline::Cmdline;
use kernel::xenbus::control::ShutdownRequest;
use kernel::{events, kprintln, smp, toolstack, xenbus};
use platform::smp::MAX_VCPUS;
use pv_drivers::blkfront::queue::MAX_QUEUES;
use pv_drivers::blkfront::{BlkFront, Config};

/// Bytes each lane writes and reads back per pass (less on a small disk).
const REGION: u64 = 1 << 20;
/// Chunk lengths, cycled: odd sizes so requests start and end anywhere.
const CHUNKS: &[usize] = &[65_536, 3, 151_563, 4096, 509, 262_144, 8191];

/// The figures of one lane; `snap` is their value when the epoch began.
struct Lane {
    /// The part, when no vCPU's task holds it (vCPU 0 drives it then).
    /// Boxed: `None` is then all zero bytes, so `LANES` sits in `.bss`
    /// (an unboxed `None` leaves a `Disk`'s bytes uninitialised, which
    /// put all of `LANES`, 7 KiB, in the image's `.data`).
    part: spin::Mutex<Option<Box<Disk>>>,
    queue: AtomicUsize,
    home: AtomicU32,
    passes: AtomicU64,
    failed: AtomicU64,
    calls: AtomicU64,
    overlapping: AtomicU64,
    responses: AtomicU64,
    requests: AtomicU64,
    /// Events of its queue taken on each vCPU (added up from the part's
    /// environment after each call, and at each epoch's edges).
    events: [AtomicU64; MAX_VCPUS],
    /// The part's own counters when they were last added up (a part
    /// made anew after a suspend starts them again).
    last: [AtomicU64; MAX_VCPUS + 2],
    in_call: AtomicBool,
}

#[expect(
    clippy::declare_interior_mutable_const,
    reason = "a template for the array's elements, each its own atomics"
)]
const LANE: Lane = Lane {
    part: spin::Mutex::new(None),
    queue: AtomicUsize::new(0),
    home: AtomicU32::new(0),
    passes: AtomicU64::new(0),
    failed: AtomicU64::new(0),
    calls: AtomicU64::new(0),
    overlapping: AtomicU64::new(0),
    responses: AtomicU64::new(0),
    requests: AtomicU64::new(0),
    events: [const { AtomicU64::new(0) }; MAX_VCPUS],
    last: [const { AtomicU64::new(0) }; MAX_VCPUS + 2],
    in_call: AtomicBool::new(false),
};

static LANES: [Lane; MAX_QUEUES] = [LANE; MAX_QUEUES];
static N_LANES: AtomicUsize = AtomicUsize::new(0);
/// Set at the end: every task hands its lanes back and returns.
static STOP_ALL: AtomicBool = AtomicBool::new(false);
/// Set around a suspend: the same, for a while.
static PAUSE: AtomicBool = AtomicBool::new(false);
/// Whether vCPU n's task (driving its lanes) runs.
static TASK: [AtomicBool; MAX_VCPUS] = [const { AtomicBool::new(false) }; MAX_VCPUS];
static EPOCH: AtomicU32 = AtomicU32::new(0);
/// Whether this epoch saw calls on two vCPUs at once (said once).
static OVERLAP_SAID: AtomicBool = AtomicBool::new(false);
static SEED: AtomicU64 = AtomicU64::new(1);
static REGION_BYTES: AtomicU64 = AtomicU64::new(REGION);

/// The figures an epoch reports, per lane.
#[derive(Clone, Copy, Default)]
struct Snap {
    passes: u64,
    failed: u64,
    calls: u64,
    overlapping: u64,
    responses: u64,
    requests: u64,
    events: [u64; MAX_VCPUS],
}

fn snap(l: &Lane) -> Snap {
    Snap {
        passes: l.passes.load(Ordering::SeqCst),
        failed: l.failed.load(Ordering::SeqCst),
        calls: l.calls.load(Ordering::SeqCst),
        overlapping: l.overlapping.load(Ordering::SeqCst),
        responses: l.responses.load(Ordering::SeqCst),
        requests: l.requests.load(Ordering::SeqCst),
        events: core::array::from_fn(|n| l.events[n].load(Ordering::SeqCst)),
    }
}

/// The part's own counters: events on each vCPU, responses, requests.
fn live(d: &Disk) -> [u64; MAX_VCPUS + 2] {
    let s = d.stats();
    core::array::from_fn(|i| match i {
        i if i < MAX_VCPUS => blk::events_on(d, i as u32),
        i if i == MAX_VCPUS => s.responses,
        _ => s.requests,
    })
}

/// Adds what a part counted since the last look to its lane.
fn note_counts(l: &Lane, d: &Disk) {
    for (i, v) in live(d).into_iter().enumerate() {
        let was = l.last[i].swap(v, Ordering::SeqCst);
        let add = v.saturating_sub(was);
        match i {
            i if i < MAX_VCPUS => l.events[i].fetch_add(add, Ordering::SeqCst),
            i if i == MAX_VCPUS => l.responses.fetch_add(add, Ordering::SeqCst),
            _ => l.requests.fetch_add(add, Ordering::SeqCst),
        };
    }
}

/// A new part for the lane: its counters are where the lane starts
/// adding from.
fn rebase(l: &Lane, d: &Disk) {
    for (i, v) in live(d).into_iter().enumerate() {
        l.last[i].store(v, Ordering::SeqCst);
    }
}

fn lanes() -> &'static [Lane] {
    &LANES[..N_LANES.load(Ordering::SeqCst)]
}

/// One call of lane `k`, counted (and whether it began while a lane of
/// another vCPU was in a call).
fn call<R>(k: usize, f: impl FnOnce() -> R) -> R {
    let me = smp::current();
    let l = &LANES[k];
    l.in_call.store(true, Ordering::SeqCst);
    l.calls.fetch_add(1, Ordering::SeqCst);
    let other = lanes().iter().enumerate().find(|(j, o)| {
        *j != k && o.in_call.load(Ordering::SeqCst) && o.home.load(Ordering::SeqCst) != me
    });
    if let Some((j, _)) = other {
        l.overlapping.fetch_add(1, Ordering::SeqCst);
        if !OVERLAP_SAID.swap(true, Ordering::SeqCst) {
            kprintln!(
                "blk: smp: epoch {}: calls on two vCPUs at once (lane {k} on vCPU {me} began while lane {j} was in a call)",
                EPOCH.load(Ordering::SeqCst)
            );
        }
    }
    let r = f();
    l.in_call.store(false, Ordering::SeqCst);
    r
}

/// One pass of lane `k` on `d`: its region written with this pass's
/// pattern, read back and checked byte for byte. `Ok(false)` if the vCPU
/// was asked to go offline (or the run to end) first: the pass is left
/// for whoever drives the lane next, who does it again from the start.
fn pass(k: usize, d: &mut Disk) -> Result<bool, alloc::string::String> {
    let l = &LANES[k];
    let n = l.passes.load(Ordering::SeqCst) + 1;
    let seed = SEED.load(Ordering::SeqCst) + 1000 * k as u64 + n;
    let size = REGION_BYTES.load(Ordering::SeqCst);
    let base = size * k as u64;
    let mut buf = vec![0u8; *CHUNKS.iter().max().unwrap_or(&4096)];
    for write in [true, false] {
        let (mut off, mut i) = (0u64, 0);
        while off < size {
            if smp::stopping() || STOP_ALL.load(Ordering::SeqCst) || PAUSE.load(Ordering::SeqCst) {
                return Ok(false);
            }
            let len = (CHUNKS[i % CHUNKS.len()] as u64).min(size - off) as usize;
            let at = base + off;
            let chunk = &mut buf[..len];
            if write {
                pattern::fill(seed, at, chunk);
                call(k, || d.write_at(at, chunk))
                    .map_err(|e| alloc::format!("write at {at}: {e}"))?;
            } else {
                call(k, || d.read_at(at, chunk))
                    .map_err(|e| alloc::format!("read at {at}: {e}"))?;
                if let Some(bad) = pattern::first_mismatch(seed, at, chunk) {
                    return Err(alloc::format!(
                        "MISMATCH at byte {bad} (seed {seed}, want {:#04x})",
                        pattern::byte_at(seed, bad)
                    ));
                }
            }
            note_counts(l, d);
            off += len as u64;
            i += 1;
        }
    }
    l.passes.store(n, Ordering::SeqCst);
    kprintln!(
        "blk: smp: epoch {}: lane {k} (queue {}) on vCPU {}: pass {n} ok ({size} bytes from {base} written, read back, checked)",
        EPOCH.load(Ordering::SeqCst),
        l.queue.load(Ordering::SeqCst),
        smp::current()
    );
    Ok(true)
}

/// Runs one pass of lane `k` on `d`, counting a failure.
fn drive(k: usize, d: &mut Disk) {
    if let Err(e) = pass(k, d) {
        LANES[k].failed.fetch_add(1, Ordering::SeqCst);
        kprintln!("blk: smp: lane {k}: FAILED: {e}");
        for p in d.take_problems() {
            kprintln!("blk: smp: lane {k}: {p}");
        }
    }
}

/// The long task of secondary vCPU `me`: takes its lanes, drives them
/// until it is asked to go offline (or the run ends), then binds their
/// channels back to vCPU 0 and parks them there.
fn task(me: usize) {
    let me32 = me as u32;
    let mut mine: Vec<(usize, Disk)> = Vec::new();
    for (k, l) in lanes().iter().enumerate() {
        if l.home.load(Ordering::SeqCst) == me32 {
            if let Some(d) = l.part.lock().take() {
                mine.push((k, *d));
            }
        }
    }
    while !smp::stopping() && !STOP_ALL.load(Ordering::SeqCst) && !PAUSE.load(Ordering::SeqCst) {
        for (k, d) in &mut mine {
            drive(*k, d);
        }
    }
    for (k, d) in mine {
        if let Err(e) = blk::bind_queues(&d, 0) {
            kprintln!("blk: smp: lane {k}: cannot bind its channel to vCPU 0: {e}");
        }
        // Events Xen had already queued here before the move: taken now,
        // before this vCPU goes down (their handler only counts).
        {
            let _masked = events::IrqGuard::new();
            events::handle_upcall();
        }
        note_counts(&LANES[k], &d);
        *LANES[k].part.lock() = Some(Box::new(d));
        kprintln!("blk: smp: lane {k} leaves vCPU {me} for vCPU 0 (parked)");
    }
    TASK[me].store(false, Ordering::SeqCst);
}

/// Binds each parked lane whose home vCPU is online (not 0) to it and
/// starts that vCPU's task. Then takes what vCPU 0 had queued for them.
fn hand_out() {
    let mut started = [false; MAX_VCPUS];
    for (k, l) in lanes().iter().enumerate() {
        let home = l.home.load(Ordering::SeqCst);
        if home == 0 || !smp::is_online(home) || TASK[home as usize].load(Ordering::SeqCst) {
            continue;
        }
        let guard = l.part.lock();
        let Some(d) = guard.as_deref() else { continue };
        match blk::bind_queues(d, home) {
            Ok(()) => {
                started[home as usize] = true;
                kprintln!(
                    "blk: smp: lane {k} (queue {}) bound to vCPU {home}",
                    l.queue.load(Ordering::SeqCst)
                );
            }
            Err(e) => {
                kprintln!("blk: smp: lane {k}: cannot bind to vCPU {home}: {e}; stays on vCPU 0")
            }
        }
    }
    // What was queued on vCPU 0 before the moves is counted before the
    // epoch's figures start.
    {
        let _masked = events::IrqGuard::new();
        events::handle_upcall();
    }
    for (k, l) in lanes().iter().enumerate() {
        if let Some(d) = l.part.lock().as_deref() {
            note_counts(&LANES[k], d);
        }
    }
    for (n, go) in started.iter().enumerate() {
        if *go {
            TASK[n].store(true, Ordering::SeqCst);
            if let Err(e) = smp::run_task(n as u32, task, n) {
                TASK[n].store(false, Ordering::SeqCst);
                kprintln!("blk: smp: cannot start vCPU {n}'s task: {e}");
            }
        }
    }
}

/// Prints every lane's figures since `since` (`what`: the epoch that
/// ends, or the whole run).
fn summary(what: &str, since: &[Snap], vcpus: u32) {
    for (k, l) in lanes().iter().enumerate() {
        let (now, was) = (snap(l), since[k]);
        let ev: Vec<u64> = (0..vcpus as usize).map(|n| now.events[n] - was.events[n]).collect();
        kprintln!(
            "blk: smp: {what} summary: lane {k} (queue {}, home vCPU {}): passes {}, requests {}, responses {}, events by vCPU {:?}, calls {}, overlapping {}, failed {}",
            l.queue.load(Ordering::SeqCst),
            l.home.load(Ordering::SeqCst),
            now.passes - was.passes,
            now.requests - was.requests,
            now.responses - was.responses,
            ev,
            now.calls - was.calls,
            now.overlapping - was.overlapping,
            now.failed - was.failed
        );
    }
}

fn snaps() -> [Snap; MAX_QUEUES] {
    core::array::from_fn(|k| LANES.get(k).map(snap).unwrap_or_default())
}

/// The toolstack's news without waiting: `xl vcpu-set` is carried out,
/// a request on `control/shutdown` returned.
fn toolstack_news() -> Option<ShutdownRequest> {
    let _ = xenbus::try_with(|bus| {
        let now = bus.now();
        if bus.next_event_for(smp::hotplug::CPU_TOKEN, Some(now)).is_ok() {
            smp::hotplug::follow(bus);
        }
    });
    toolstack::poll_request()
}

/// Waits until no secondary vCPU's task holds a lane.
fn all_parked() -> bool {
    smp::spin_until(platform::now_ns() + 30_000_000_000, || {
        TASK.iter().all(|t| !t.load(Ordering::SeqCst))
    })
}

/// A suspend with every lane parked and the parts joined into one
/// device; after it, the device follows the domain (a new one: its new
/// backend) and is split again, each new part in its lane. Whether the
/// lanes are all back.
fn suspend(n: usize) -> bool {
    PAUSE.store(true, Ordering::SeqCst);
    let parked = all_parked();
    let parts: Vec<Disk> =
        LANES[..n].iter().filter_map(|l| l.part.lock().take().map(|d| *d)).collect();
    if !parked || parts.len() != n {
        kprintln!("blk: smp: suspend: lanes not all parked; FAILED");
        put_back(parts);
        return false;
    }
    let Some(mut dev) = BlkFront::join(parts) else { return false };
    let before = kernel::suspend::counts().1;
    kprintln!("blk: smp: suspend: {n} lanes parked, joined into one device");
    if let Err(e) = kernel::suspend::suspend() {
        kprintln!("blk: smp: suspend failed: {e}; carrying on");
    }
    PAUSE.store(false, Ordering::SeqCst);
    let new_domain = kernel::suspend::counts().1 != before;
    match dev.follow_domain() {
        Ok(re) => kprintln!(
            "blk: smp: resumed ({}); device {}",
            if new_domain { "a new domain" } else { "the same domain" },
            if re { "reconnected to its new backend" } else { "kept its rings" }
        ),
        Err(e) => {
            kprintln!("blk: smp: resumed; the device cannot reconnect: {e}; FAILED");
            for p in dev.take_problems() {
                kprintln!("blk: smp: {p}");
            }
            put_back(vec![dev]);
            return false;
        }
    }
    let parts = dev.split();
    if parts.len() != n {
        kprintln!("blk: smp: the device came back with {} parts, not {n}; FAILED", parts.len());
        put_back(parts);
        return false;
    }
    for (k, d) in parts.into_iter().enumerate() {
        rebase(&LANES[k], &d);
        *LANES[k].part.lock() = Some(Box::new(d));
    }
    true
}

/// After a failure: the parts go back into the first lanes, so the run's
/// end closes them (and reports fewer parts than lanes).
fn put_back(parts: Vec<Disk>) {
    for (l, d) in LANES.iter().zip(parts) {
        *l.part.lock() = Some(Box::new(d));
    }
}

pub fn run(cmd: &Cmdline<'_>) -> AppResult {
    SEED.store(cmd.number("blk.seed").unwrap_or(1), Ordering::SeqCst);
    let secs = cmd.number("blk.soak_s").unwrap_or(300);
    let vcpus = match xenbus::with(smp::hotplug::start) {
        Some(Ok(_)) => smp::count(),
        Some(Err(e)) => {
            kprintln!("blk: smp: cannot start the other vCPUs: {e}; every queue on vCPU 0");
            1
        }
        None => 1,
    };
    let config = Config { max_queues: MAX_QUEUES as u32, ..Config::default() };
    let mut disk = None;
    for dev in blk::list().into_iter().flatten() {
        let name = blk::name(&dev);
        match blk::open(dev, config) {
            Ok(d) if !d.geometry().read_only => {
                disk = Some((name, d));
                break;
            }
            Ok(d) => {
                kprintln!("blk: smp: {name}: read-only, not used");
                let _ = xenbus::with(|bus| d.close(bus));
            }
            Err(e) => kprintln!("blk: smp: {name}: cannot connect: {e}"),
        }
    }
    let Some((name, disk)) = disk else {
        kprintln!("blk: smp: no writable disk");
        return Err(AppError::TestsFailed { failed: 1, passed: 0 });
    };
    let queues = disk.features().queues;
    let size = disk.geometry().bytes();
    let parts = disk.split();
    let n = parts.len();
    REGION_BYTES.store((size / n as u64 / 4096 * 4096).min(REGION), Ordering::SeqCst);
    for (k, d) in parts.into_iter().enumerate() {
        let l = &LANES[k];
        let q = d.queue_numbers().first().copied().unwrap_or(k);
        l.queue.store(q, Ordering::SeqCst);
        l.home.store(q as u32 % vcpus, Ordering::SeqCst);
        rebase(l, &d);
        *l.part.lock() = Some(Box::new(d));
    }
    N_LANES.store(n, Ordering::SeqCst);
    kprintln!(
        "blk: smp: {name}: {queues} queue(s) in {n} part(s) on {vcpus} vCPU(s); lane k's home is vCPU k mod {vcpus}; {} bytes per lane",
        REGION_BYTES.load(Ordering::SeqCst)
    );
    hand_out();
    let mut since = snaps();
    let mut mask = smp::online_mask();
    kprintln!("blk: smp: ready; epoch 0, online mask {mask:#x}");
    let deadline = platform::now_ns() + secs * 1_000_000_000;
    let mut lost = false;
    let stop = loop {
        let mut resumed = false;
        match toolstack_news() {
            Some(ShutdownRequest::Suspend) => {
                if !suspend(n) {
                    lost = true;
                    break ShutdownRequest::Poweroff;
                }
                resumed = true;
            }
            Some(req) => break req,
            None => {}
        }
        if platform::now_ns() >= deadline {
            break ShutdownRequest::Poweroff;
        }
        let m = smp::online_mask();
        if m != mask || resumed {
            let e = EPOCH.load(Ordering::SeqCst);
            summary(&alloc::format!("epoch {e}"), &since, vcpus);
            EPOCH.store(e + 1, Ordering::SeqCst);
            OVERLAP_SAID.store(false, Ordering::SeqCst);
            mask = m;
            hand_out();
            since = snaps();
            kprintln!("blk: smp: epoch {}, online mask {m:#x}", e + 1);
        }
        // vCPU 0's lanes, and the parked ones of vCPUs that are offline.
        let mut drove = false;
        for (k, l) in LANES[..n].iter().enumerate() {
            let home = l.home.load(Ordering::SeqCst);
            if home != 0 && smp::is_online(home) {
                continue;
            }
            let taken = l.part.lock().take();
            if let Some(mut d) = taken {
                drive(k, &mut d);
                *l.part.lock() = Some(d);
                drove = true;
            }
        }
        if !drove {
            kernel::timer::sleep_ns(10_000_000);
        }
    };
    STOP_ALL.store(true, Ordering::SeqCst);
    if !all_parked() {
        kprintln!("blk: smp: a vCPU's task did not hand its lanes back in 30 s");
    }
    summary(&alloc::format!("epoch {}", EPOCH.load(Ordering::SeqCst)), &since, vcpus);
    let total = snaps();
    summary("whole run", &[Snap::default(); MAX_QUEUES], vcpus);
    let failed: u64 = total.iter().map(|s| s.failed).sum();
    let passes: u64 = total.iter().map(|s| s.passes).sum();
    let parts: Vec<Disk> =
        LANES[..n].iter().filter_map(|l| l.part.lock().take().map(|d| *d)).collect();
    let kept = parts.len();
    if let Some(r) = xenbus::with(|bus| BlkFront::close_parts(parts, bus)) {
        kprintln!(
            "blk: smp: {name}: closed ({kept} of {n} parts); grants {} made, {} revoked, {} refused",
            r.made,
            r.revoked_in_all,
            r.refused
        );
    }
    kprintln!("blk: smp: done, {passes} passes ok, {failed} failed; {stop:?} requested");
    if failed > 0 || kept != n || lost {
        return Err(AppError::TestsFailed { failed: failed.max(1) as u32, passed: passes as u32 });
    }
    Ok(())
}
