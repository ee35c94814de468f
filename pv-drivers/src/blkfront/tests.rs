//! blkfront against the fake backend: handshake, data of every shape,
//! features, hostile responses, close.

use super::fake::{self, FakeBlkEnv, Hostile, Shared};
use super::wire::RingRequest;
use super::*;
use crate::xenbus::device::{describe, XenbusState};
use crate::xenbus::Bus;
use hypercall::abi::blkif::{Operation, VdiskInfo};
use hypercall::abi::grant_table::GrantRef;
use hypercall::DomId;
use xenstore_client::fake::{FakeEvents, Harness};
use xenstore_client::RingTransport;

type FakeBus<'a> = Bus<RingTransport<'a, FakeEvents<'a>>>;
use xenstore_client::{Access, Perm};

const GUEST: DomId = DomId(7);
const BACKEND: &str = "/local/domain/0/backend/vbd/7/51712";

#[derive(Clone)]
struct Offer {
    bytes: usize,
    max_ring_order: Option<u32>,
    indirect: Option<u32>,
    persistent: bool,
    flush: bool,
    discard: bool,
    info: u32,
    sector_size: u32,
    /// `multi-queue-max-queues`.
    queues: Option<u32>,
}

impl Default for Offer {
    fn default() -> Self {
        Offer {
            bytes: 1 << 20,
            max_ring_order: Some(4),
            indirect: Some(256),
            persistent: true,
            flush: true,
            discard: true,
            info: 0,
            sector_size: 512,
            queues: None,
        }
    }
}

fn dom0_put(h: &Harness, path: &str, value: &str) {
    let mut fake = h.fake();
    fake.write_as(DomId(0), path, value.as_bytes()).unwrap();
    let perms = [Perm::new(DomId(0), Access::None), Perm::new(GUEST, Access::Read)];
    fake.set_perms_as(DomId(0), path, &perms).unwrap();
}

fn guest_put(h: &Harness, rel: &str, value: &str) {
    let mut fake = h.fake();
    let path = fake.abs(rel);
    fake.write_as(DomId(0), &path, value.as_bytes()).unwrap();
    fake.set_perms_as(DomId(0), &path, &[Perm::new(GUEST, Access::None)]).unwrap();
}

fn fe_key(h: &Harness, key: &str) -> Option<String> {
    let fake = h.fake();
    let path = fake.abs(&format!("device/vbd/51712/{key}"));
    fake.get(&path).map(|v| String::from_utf8(v).unwrap())
}

/// Runs `f` on a device connected to a fake backend offering `offer`.
fn with_device(
    offer: Offer,
    config: Config,
    f: impl FnOnce(&Harness, &mut FakeBus<'_>, &Shared, BlkFront<FakeBlkEnv>),
) {
    let h = Harness::new(GUEST);
    let w = fake::world(offer.bytes);
    guest_put(&h, "device/vbd/51712/backend", BACKEND);
    guest_put(&h, "device/vbd/51712/backend-id", "0");
    dom0_put(&h, &format!("{BACKEND}/state"), "2");
    if let Some(o) = offer.max_ring_order {
        dom0_put(&h, &format!("{BACKEND}/max-ring-page-order"), &o.to_string());
    }
    if let Some(n) = offer.indirect {
        dom0_put(&h, &format!("{BACKEND}/feature-max-indirect-segments"), &n.to_string());
    }
    if let Some(n) = offer.queues {
        dom0_put(&h, &format!("{BACKEND}/multi-queue-max-queues"), &n.to_string());
    }
    let mut bus = Bus::new(h.client());
    let dev = describe(&mut bus, "vbd", "51712").unwrap();
    let connecting = start(&mut bus, FakeBlkEnv::new(&w), dev, config).unwrap();
    let dev = backend_connects(&h, &w, &offer, &mut bus, connecting);
    f(&h, &mut bus, &w, dev);
}

/// The backend's half of steps 3 and 4 for what `connecting` advertised,
/// then the frontend's `finish`.
fn backend_connects<'a>(
    h: &Harness,
    w: &Shared,
    offer: &Offer,
    bus: &mut FakeBus<'a>,
    connecting: Connecting<FakeBlkEnv>,
) -> BlkFront<FakeBlkEnv> {
    // The backend's half: map what the frontend advertised.
    assert_eq!(fe_key(h, "state").as_deref(), Some("3"));
    assert_eq!(fe_key(h, "protocol").as_deref(), Some("x86_64-abi"));
    let order = fe_key(h, "ring-page-order").map(|o| o.parse::<u32>().unwrap());
    let queue_dirs: Vec<String> = match fe_key(h, "multi-queue-num-queues") {
        Some(n) => {
            let n: u32 = n.parse().unwrap();
            assert!(n >= 2 && n <= offer.queues.unwrap(), "{n} queues");
            assert!(fe_key(h, "ring-ref").is_none() && fe_key(h, "event-channel").is_none());
            (0..n).map(|i| format!("queue-{i}/")).collect()
        }
        None => vec![String::new()],
    };
    let mut rings = Vec::new();
    for dir in &queue_dirs {
        assert!(fe_key(h, &format!("{dir}event-channel")).is_some());
        let grefs: Vec<GrantRef> = match order {
            Some(o) => (0..1 << o)
                .map(|i| {
                    GrantRef(fe_key(h, &format!("{dir}ring-ref{i}")).unwrap().parse().unwrap())
                })
                .collect(),
            None => vec![GrantRef(fe_key(h, &format!("{dir}ring-ref")).unwrap().parse().unwrap())],
        };
        rings.push(grefs);
    }
    let fe_persistent = fe_key(h, "feature-persistent").as_deref() == Some("1");
    {
        let mut world = w.borrow_mut();
        for grefs in &rings {
            world.map_ring(grefs);
        }
        world.persistent = offer.persistent && fe_persistent;
    }
    dom0_put(h, &format!("{BACKEND}/sectors"), &(offer.bytes / 512).to_string());
    dom0_put(h, &format!("{BACKEND}/info"), &offer.info.to_string());
    dom0_put(h, &format!("{BACKEND}/sector-size"), &offer.sector_size.to_string());
    dom0_put(h, &format!("{BACKEND}/feature-persistent"), if offer.persistent { "1" } else { "0" });
    dom0_put(h, &format!("{BACKEND}/feature-flush-cache"), if offer.flush { "1" } else { "0" });
    dom0_put(h, &format!("{BACKEND}/feature-discard"), if offer.discard { "1" } else { "0" });
    dom0_put(h, &format!("{BACKEND}/state"), "4");
    let dev = connecting.finish(bus).unwrap();
    assert_eq!(fe_key(h, "state").as_deref(), Some("4"));
    dev
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// Detaches like `xl block-detach`: backend Closing, frontend closes,
/// backend lets go and is Closed.
fn detach(
    h: &Harness,
    bus: &mut FakeBus<'_>,
    w: &Shared,
    mut dev: BlkFront<FakeBlkEnv>,
) -> CloseReport {
    dom0_put(h, &format!("{BACKEND}/state"), "5");
    assert!(dev.backend_leaving(bus).unwrap());
    w.borrow_mut().disconnect();
    dom0_put(h, &format!("{BACKEND}/state"), "6");
    dev.close(bus)
}

/// A disk the guest closed itself (both state nodes `Closed`, still
/// attached) opens again: the frontend goes back to `Initialising`, the
/// backend (as Linux's blkback does) to `InitWait`, and the handshake
/// runs anew on new rings; the data is still there.
#[test]
fn a_disk_closed_by_the_guest_opens_again() {
    with_device(Offer::default(), Config::default(), |h, bus, w, mut dev| {
        dev.write_at(4096, &pattern(8192, 3)).unwrap();
        // The guest closes; the backend follows to Closed and lets go.
        let state = format!("{BACKEND}/state");
        let fe_state = h.fake().abs("device/vbd/51712/state");
        let (be, w2) = (state.clone(), w.clone());
        h.fake().set_interleave(move |x| {
            let fe = x.get(&fe_state).unwrap_or_default();
            let now = x.get(&be).unwrap_or_default();
            let to = match (fe.as_slice(), now.as_slice()) {
                (b"5", b"4") => Some("5"),
                (b"6", b"5") => {
                    w2.borrow_mut().disconnect();
                    Some("6")
                }
                // Linux's blkback: "prepare for reconnect".
                (b"1", b"6") => Some("2"),
                _ => None,
            };
            if let Some(to) = to {
                x.write_as(DomId(0), &be, to.as_bytes()).unwrap();
            }
        });
        let report = dev.close(bus);
        assert_eq!(report.refused, 0);
        assert_eq!(report.made, report.revoked_in_all);
        assert_eq!(fe_key(h, "state").as_deref(), Some("6"));
        let info = describe(bus, "vbd", "51712").unwrap();
        let connecting = start(bus, FakeBlkEnv::new(w), info, Config::default()).unwrap();
        h.fake().clear_interleave();
        assert_eq!(fe_key(h, "state").as_deref(), Some("3"), "advertised again");
        let mut dev = backend_connects(h, w, &Offer::default(), bus, connecting);
        let mut back = vec![0u8; 8192];
        dev.read_at(4096, &mut back).unwrap();
        assert_eq!(back, pattern(8192, 3));
        let _ = detach(h, bus, w, dev);
    });
}

/// A device whose backend is `Closed` while our node is not (a backend
/// that went away under us) is not reopened: the open fails as before.
#[test]
fn a_closed_backend_of_a_device_we_did_not_close_is_an_error() {
    let h = Harness::new(GUEST);
    let w = fake::world(1 << 20);
    guest_put(&h, "device/vbd/51712/backend", BACKEND);
    guest_put(&h, "device/vbd/51712/backend-id", "0");
    guest_put(&h, "device/vbd/51712/state", "1");
    dom0_put(&h, &format!("{BACKEND}/state"), "6");
    let mut bus = Bus::new(h.client());
    let dev = describe(&mut bus, "vbd", "51712").unwrap();
    let err = start(&mut bus, FakeBlkEnv::new(&w), dev, Config::default()).err().unwrap();
    assert!(matches!(err, BlkError::Protocol(_)), "{err:?}");
    assert_eq!(fe_key(&h, "state").as_deref(), Some("1"));
}

#[test]
fn handshake_negotiates_multi_page_ring_indirect_and_persistent() {
    with_device(Offer::default(), Config::default(), |h, bus, w, dev| {
        let f = dev.features();
        assert_eq!(f.ring_pages, 4, "order min(ours 2, offered 4)");
        assert_eq!(dev.ring_slots(), 128);
        assert_eq!(fe_key(h, "ring-page-order").as_deref(), Some("2"));
        assert!(f.persistent && f.flush && f.discard);
        assert_eq!(f.indirect_segments, 64);
        assert_eq!(dev.geometry().bytes(), 1 << 20);
        let r = detach(h, bus, w, dev);
        assert_eq!(r.refused, 0);
        assert_eq!(r.backend, Some(XenbusState::Closed));
        assert_eq!(w.borrow().live_grants(), 0, "every grant revoked");
        assert_eq!(
            r.made,
            w.borrow().xen().grants_made,
            "the report counts every grant, rings too"
        );
        assert_eq!(r.revoked_in_all, r.made);
        assert!(w.borrow().xen().open_ports.is_empty());
        assert_eq!(fe_key(h, "state").as_deref(), Some("6"));
    });
}

#[test]
fn single_page_ring_without_features_still_works() {
    let offer = Offer {
        max_ring_order: None,
        indirect: None,
        persistent: false,
        flush: false,
        discard: false,
        ..Offer::default()
    };
    with_device(offer, Config::default(), |h, bus, w, mut dev| {
        assert_eq!(dev.ring_slots(), 32);
        assert!(fe_key(h, "ring-ref").is_some());
        let data = pattern(200 * 1024, 1);
        dev.write_at(4096, &data).unwrap();
        let mut back = vec![0; data.len()];
        dev.read_at(4096, &mut back).unwrap();
        assert_eq!(back, data);
        // Without persistent grants every page is granted and revoked per use.
        let s = dev.stats();
        assert_eq!(s.grants.granted, s.grants.revoked);
        assert!(s.grants.granted >= 100);
        assert_eq!(dev.discard(0, 8), Err(BlkError::NotSupported("discard")));
        dev.flush().unwrap();
        assert_eq!(w.borrow().flushes, 0, "nothing to flush without a cache");
        assert!(w.borrow().seen.iter().all(|r| !matches!(r, RingRequest::Indirect(_))));
        let r = detach(h, bus, w, dev);
        assert_eq!(w.borrow().live_grants(), 0);
        assert_eq!(
            (r.made, r.revoked_in_all),
            (w.borrow().xen().grants_made, w.borrow().xen().revokes)
        );
        assert_eq!(r.made, r.revoked_in_all, "granted per use, revoked per use and at close");
    });
}

#[test]
fn any_offset_and_length_round_trips_and_touches_nothing_else() {
    with_device(Offer::default(), Config::default(), |_, _, w, mut dev| {
        let before = pattern(1 << 20, 9);
        dev.write_at(0, &before).unwrap();
        let mut model = before.clone();
        for (i, &(off, len)) in
            [(1, 1), (511, 2), (513, 4000), (4095, 70_001), (12_345, 511), (1_000_000, 48_576)]
                .iter()
                .enumerate()
        {
            let data = pattern(len, 100 + i as u64);
            dev.write_at(off, &data).unwrap();
            model[off as usize..off as usize + len].copy_from_slice(&data);
            let mut back = vec![0; len];
            dev.read_at(off, &mut back).unwrap();
            assert_eq!(back, data, "at {off}+{len}");
        }
        assert_eq!(w.borrow().disk, model, "the disk holds exactly what was written");
        assert!(w.borrow().violations.is_empty(), "{:?}", w.borrow().violations);
        assert_eq!(
            dev.write_at((1 << 20) - 1, &[0, 0]),
            Err(BlkError::OutOfRange { offset: (1 << 20) - 1, len: 2, size: 1 << 20 })
        );
        assert!(matches!(dev.read_sectors(1, &mut [0; 100]), Err(BlkError::Unaligned { .. })));
    });
}

#[test]
fn large_transfers_use_indirect_requests_many_in_flight_and_persistent_grants() {
    with_device(Offer::default(), Config::default(), |_, _, w, mut dev| {
        let data = pattern(1 << 20, 3);
        dev.write_sectors(0, &data).unwrap();
        let granted = dev.stats().grants.granted;
        for _ in 0..3 {
            let mut back = vec![0; data.len()];
            dev.read_sectors(0, &mut back).unwrap();
            assert_eq!(back, data);
        }
        let s = dev.stats();
        assert!(s.indirect_requests >= 4, "{s:?}");
        assert!(s.max_in_flight >= 4, "{s:?}");
        // Told once per publish, with this call's requests outstanding.
        let published = w.borrow().published.clone();
        assert!(!published.is_empty() && published.iter().all(|&n| n > 0), "{published:?}");
        assert!(published.iter().any(|&n| n >= 4), "{published:?}");
        assert_eq!(s.grants.granted, granted, "hot pages are not granted again");
        assert_eq!(s.grants.revoked, 0);
        assert!(w.borrow().seen.iter().any(|r| matches!(r, RingRequest::Indirect(_))));
    });
}

#[test]
fn large_writes_are_published_while_the_rest_is_copied_reads_at_once() {
    with_device(Offer::default(), Config::default(), |_, _, w, mut dev| {
        // 1 MiB: four requests of 64 segments.
        let data = pattern(1 << 20, 5);
        dev.write_sectors(0, &data).unwrap();
        // The backend was told after each 256 KiB request was copied in,
        // not once after all four.
        assert_eq!(w.borrow().published, [1, 2, 3, 4]);
        w.borrow_mut().published.clear();
        let mut back = vec![0; data.len()];
        dev.read_sectors(0, &mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(w.borrow().published, [4], "nothing to copy before a read");
        // Small scattered writes still go as one batch, however many.
        w.borrow_mut().published.clear();
        let sectors: Vec<u64> = (0..32).map(|k| k * 24).collect();
        dev.write_blocks(&sectors, &data[..32 * 4096]).unwrap();
        assert_eq!(w.borrow().published, [32]);
    });
}

#[test]
fn flush_reaches_the_backend_and_discard_zeroes() {
    with_device(Offer::default(), Config::default(), |_, _, w, mut dev| {
        dev.write_at(0, &[0xaa; 8192]).unwrap();
        dev.flush().unwrap();
        assert_eq!(w.borrow().flushes, 1);
        dev.discard(8, 8).unwrap();
        let mut back = [1u8; 8192];
        dev.read_at(0, &mut back).unwrap();
        assert!(back[..4096].iter().all(|&b| b == 0xaa));
        assert!(back[4096..].iter().all(|&b| b == 0));
    });
}

#[test]
fn reordered_and_partial_completions_are_fine() {
    for hostile in [Hostile::Reverse, Hostile::Partial] {
        with_device(Offer::default(), Config::default(), |_, _, w, mut dev| {
            w.borrow_mut().hostile = hostile;
            let data = pattern(700 * 1024 + 512, 5);
            dev.write_at(512, &data).unwrap();
            let mut back = vec![0; data.len()];
            dev.read_at(512, &mut back).unwrap();
            assert_eq!(back, data, "{hostile:?}");
            let s = dev.stats();
            assert_eq!(s.bad_ids + s.bad_ops + s.bad_producer, 0);
        });
    }
}

#[test]
fn a_write_error_reaches_the_caller() {
    with_device(Offer::default(), Config::default(), |_, _, w, mut dev| {
        w.borrow_mut().hostile = Hostile::FailWrites;
        let e = dev.write_at(0, &[1; 100_000]).unwrap_err();
        assert!(matches!(e, BlkError::Io { op: Operation::Write, status: -1, .. }), "{e:?}");
        assert_eq!(dev.stats().errors, 1);
        // The device is still usable for reads.
        w.borrow_mut().hostile = Hostile::None;
        dev.read_at(0, &mut [0; 4096]).unwrap();
    });
}

#[test]
fn repeated_and_out_of_range_ids_fail_the_call_promptly_and_the_device_lives_on() {
    for hostile in [Hostile::DuplicateId, Hostile::IdOutOfRange] {
        with_device(Offer::default(), Config::default(), |h, bus, w, mut dev| {
            w.borrow_mut().hostile = hostile;
            // The request whose answer carried another id is never
            // answered; once the ring has answered all it took, it fails
            // at once, not at the I/O timeout.
            let t0 = w.borrow().now;
            let e = dev.write_at(0, &pattern(300 * 1024, 8)).unwrap_err();
            assert!(matches!(e, BlkError::Protocol(_)), "{hostile:?}: {e:?}");
            let waited = w.borrow().now - t0;
            assert!(waited < 1_000_000, "{hostile:?}: failed after {waited} ns, not promptly");
            let s = dev.stats();
            assert_eq!(s.bad_ids, 1, "{hostile:?}: {s:?}");
            assert_eq!(s.orphaned, 1, "{hostile:?}: {s:?}");
            assert_eq!(dev.in_flight(), 0);
            let problems = dev.take_problems();
            assert!(problems.iter().any(|p| p.contains("not a request in flight")), "{problems:?}");
            assert!(problems.iter().any(|p| p.contains("lost its answer")), "{problems:?}");
            // The ring is consistent again: the device keeps working.
            w.borrow_mut().hostile = Hostile::None;
            let data = pattern(300 * 1024, 9);
            dev.write_at(0, &data).unwrap();
            let mut back = vec![0; data.len()];
            dev.read_at(0, &mut back).unwrap();
            assert_eq!(back, data);
            let r = detach(h, bus, w, dev);
            assert_eq!(r.refused, 0);
            assert_eq!(w.borrow().live_grants(), 0);
        });
    }
}

/// Issue 18 item 4 (the same class in blkfront): bogus ids were failed
/// and survived for ever. Now a backend that keeps sending them is
/// declared broken: every call fails at once, and close still revokes.
#[test]
fn a_disk_whose_backend_keeps_lying_is_declared_broken() {
    use super::device::BROKEN_AFTER_FAULTS;
    with_device(Offer::default(), Config::default(), |h, bus, w, mut dev| {
        w.borrow_mut().hostile = Hostile::DuplicateId;
        let mut calls = 0;
        let mut problems = Vec::new();
        while dev.stats().bad_ids + dev.stats().orphaned < BROKEN_AFTER_FAULTS {
            assert!(dev.write_at(0, &pattern(300 * 1024, 8)).is_err());
            problems.extend(dev.take_problems());
            calls += 1;
            assert!(calls < 1000);
        }
        assert!(problems.iter().any(|p| p.contains("declared broken")), "{problems:?}");
        // Even an honest backend gets nothing more from it.
        w.borrow_mut().hostile = Hostile::None;
        let requests = w.borrow().seen.len();
        assert!(dev.write_at(0, &[1; 512]).is_err());
        assert!(dev.read_at(0, &mut [0; 512]).is_err());
        assert_eq!(w.borrow().seen.len(), requests);
        let r = detach(h, bus, w, dev);
        assert_eq!(r.refused, 0);
    });
}

#[test]
fn a_stale_id_of_a_reused_slot_never_completes_the_new_request() {
    // The backend replays the answer of the slot's previous request
    // instead of answering the new one: the new request must not be
    // completed by it (its data may not be there yet).
    with_device(Offer::default(), Config::default(), |_, _, w, mut dev| {
        dev.write_at(0, &[5; 4096]).unwrap();
        w.borrow_mut().hostile = Hostile::ReplayStale;
        let e = dev.read_at(0, &mut [0; 4096]).unwrap_err();
        assert!(matches!(e, BlkError::Protocol(_)), "{e:?}");
        let s = dev.stats();
        assert_eq!((s.bad_ids, s.orphaned), (1, 1), "{s:?}");
        let world = w.borrow();
        let n = world.seen.len();
        let (old, new) = (world.seen[n - 2].id(), world.seen[n - 1].id());
        assert_eq!(new & 0xffff, old & 0xffff, "the slot was reused");
        assert_ne!(new, old, "with a different id");
    });
}

#[test]
fn multi_queue_handshake_writes_per_queue_rings_and_event_channels() {
    let offer = Offer { queues: Some(2), ..Offer::default() };
    with_device(offer, Config::default(), |h, bus, w, dev| {
        let f = dev.features();
        assert_eq!((f.max_queues, f.queues), (2, 2));
        assert_eq!(fe_key(h, "multi-queue-num-queues").as_deref(), Some("2"));
        assert_eq!(fe_key(h, "ring-page-order").as_deref(), Some("2"));
        let ports: Vec<String> =
            (0..2).map(|i| fe_key(h, &format!("queue-{i}/event-channel")).unwrap()).collect();
        assert_ne!(ports[0], ports[1], "one event channel per queue");
        for i in 0..2 {
            for r in 0..4 {
                assert!(fe_key(h, &format!("queue-{i}/ring-ref{r}")).is_some());
            }
        }
        assert_eq!(w.borrow().xen().open_ports.len(), 2);
        let r = detach(h, bus, w, dev);
        assert_eq!(r.refused, 0);
        assert_eq!(r.revoked, 8, "both rings' pages");
        assert_eq!(w.borrow().live_grants(), 0);
        assert!(w.borrow().xen().open_ports.is_empty());
    });
    // Capped by our config, and a single-page ring per queue.
    let offer = Offer { queues: Some(8), max_ring_order: None, ..Offer::default() };
    let config = Config { max_queues: 3, ..Config::default() };
    with_device(offer, config, |h, _, _, dev| {
        assert_eq!(dev.features().queues, 3);
        assert!(fe_key(h, "queue-2/ring-ref").is_some());
        assert!(fe_key(h, "ring-page-order").is_none());
    });
    // Offered but not wanted: the plain single-ring keys.
    let config = Config { max_queues: 1, ..Config::default() };
    with_device(Offer { queues: Some(4), ..Offer::default() }, config, |h, _, _, dev| {
        assert_eq!(dev.features().queues, 1);
        assert!(fe_key(h, "multi-queue-num-queues").is_none());
        assert!(fe_key(h, "ring-ref0").is_some());
    });
}

#[test]
fn multi_queue_spreads_requests_and_routes_each_completion_to_its_queue() {
    for hostile in [Hostile::None, Hostile::Reverse, Hostile::Partial] {
        let offer = Offer { queues: Some(2), ..Offer::default() };
        with_device(offer, Config::default(), |_, _, w, mut dev| {
            w.borrow_mut().hostile = hostile;
            let data = pattern(1 << 20, 11);
            dev.write_sectors(0, &data).unwrap();
            let mut back = vec![0; data.len()];
            dev.read_sectors(0, &mut back).unwrap();
            assert_eq!(back, data, "{hostile:?}");
            // Small requests one at a time alternate between the queues.
            for k in 0..8u64 {
                dev.write_at(k * 4096, &[k as u8; 4096]).unwrap();
            }
            let s = dev.stats();
            let q = s.queue_requests;
            assert!(q[0] > 0 && q[1] > 0 && q[2] == 0, "{hostile:?}: {q:?}");
            assert!(q[0].abs_diff(q[1]) <= 2, "{hostile:?}: spread evenly, {q:?}");
            let world = w.borrow();
            assert_eq!(world.seen_queue.iter().filter(|&&x| x == 1).count() as u64, q[1]);
            // Ids name their queue.
            for (r, &qq) in world.seen.iter().zip(&world.seen_queue) {
                assert_eq!((r.id() >> 16) & 0xffff, qq as u64);
            }
            assert_eq!(s.bad_ids + s.bad_ops + s.bad_producer + s.orphaned, 0);
        });
    }
}

#[test]
fn a_split_device_runs_each_queue_as_its_own_part_and_closes_as_one() {
    let offer = Offer { queues: Some(2), ..Offer::default() };
    with_device(offer, Config::default(), |h, bus, w, dev| {
        let ports = dev.queue_ports();
        let mut parts = dev.split();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].queue_numbers(), vec![0]);
        assert_eq!(parts[1].queue_numbers(), vec![1]);
        assert_eq!(parts[1].queue_ports(), vec![ports[1]]);
        assert_eq!(w.borrow().split_ports, vec![ports[1].0], "queue 1's port moved");
        // What part 1 writes (on queue 1 only), part 0 reads (on queue 0).
        let data = pattern(256 << 10, 21);
        parts[1].write_at(4096, &data).unwrap();
        let mut back = vec![0; data.len()];
        parts[0].read_at(4096, &mut back).unwrap();
        assert_eq!(back, data);
        let (s0, s1) = (parts[0].stats(), parts[1].stats());
        assert!(s0.queue_requests[0] > 0 && s0.queue_requests[1] == 0, "{s0:?}");
        assert!(s1.queue_requests[1] > 0 && s1.queue_requests[0] == 0, "{s1:?}");
        {
            let world = w.borrow();
            // Every request carried its queue's number in its id, and
            // went on that queue's ring.
            for (r, &q) in world.seen.iter().zip(&world.seen_queue) {
                assert_eq!((r.id() >> 16) & 0xffff, q as u64);
            }
            assert_eq!(world.seen_queue.iter().filter(|&&q| q == 1).count() as u64, s1.requests);
        }
        // Joined again: one device over both queues, the parts' figures
        // summed; split again, the same.
        let requests = parts.iter().map(|p| p.stats().requests).sum::<u64>();
        let mut dev = BlkFront::join(parts).unwrap();
        assert_eq!(w.borrow().joined, 1);
        assert_eq!(dev.queue_numbers(), vec![0, 1]);
        assert_eq!(dev.queue_ports(), ports);
        assert_eq!(dev.stats().requests, requests);
        assert!(!dev.follow_domain().unwrap(), "same domain: nothing to do");
        for k in 0..8u64 {
            dev.write_at(k * 4096, &[k as u8; 4096]).unwrap();
        }
        let q = dev.stats().queue_requests;
        assert!(q[0] > 0 && q[1] > 0, "both queues again: {q:?}");
        let mut back = vec![0; data.len()];
        dev.read_at(4096 * 8, &mut back[..4096]).unwrap();
        let parts = dev.split();
        assert_eq!(parts.len(), 2);
        // Closing: one handshake, then every part's grants and ports.
        dom0_put(h, &format!("{BACKEND}/state"), "5");
        w.borrow_mut().disconnect();
        dom0_put(h, &format!("{BACKEND}/state"), "6");
        let r = BlkFront::close_parts(parts, bus);
        assert_eq!(r.refused, 0);
        assert_eq!(w.borrow().live_grants(), 0);
        assert!(w.borrow().xen().open_ports.is_empty(), "both queues' ports closed");
    });
    // An environment that cannot split keeps every queue in one part.
    let offer = Offer { queues: Some(2), ..Offer::default() };
    with_device(offer, Config::default(), |_, _, w, dev| {
        w.borrow_mut().refuse_split = true;
        let mut parts = dev.split();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].queue_numbers(), vec![0, 1]);
        assert_eq!(parts[0].take_problems().len(), 1);
        parts[0].write_at(0, &[5; 8192]).unwrap();
    });
}

#[test]
fn a_response_on_the_wrong_queue_completes_nothing() {
    let offer = Offer { queues: Some(2), ..Offer::default() };
    with_device(offer, Config::default(), |h, bus, w, mut dev| {
        w.borrow_mut().hostile = Hostile::CrossQueue;
        let t0 = w.borrow().now;
        let e = dev.write_sectors(0, &pattern(1 << 20, 12)).unwrap_err();
        assert!(matches!(e, BlkError::Protocol(_)), "{e:?}");
        assert!(w.borrow().now - t0 < 1_000_000, "promptly");
        let s = dev.stats();
        assert_eq!((s.bad_ids, s.orphaned), (2, 2), "{s:?}");
        assert_eq!(dev.in_flight(), 0);
        w.borrow_mut().hostile = Hostile::None;
        dev.read_at(0, &mut [0; 8192]).unwrap();
        let r = detach(h, bus, w, dev);
        assert_eq!(r.refused, 0);
        assert_eq!(w.borrow().live_grants(), 0);
    });
}

#[test]
fn a_wrong_operation_fails_that_request() {
    with_device(Offer::default(), Config::default(), |_, _, w, mut dev| {
        w.borrow_mut().hostile = Hostile::BadOp;
        assert!(matches!(dev.write_at(0, &[1; 4096]), Err(BlkError::Protocol(_))));
        assert_eq!(dev.stats().bad_ops, 1);
    });
}

#[test]
fn a_producer_index_beyond_the_ring_fails_in_flight_io_and_closes_cleanly() {
    with_device(Offer::default(), Config::default(), |h, bus, w, mut dev| {
        w.borrow_mut().hostile = Hostile::ProducerBeyond;
        assert!(dev.write_at(0, &[1; 300_000]).is_err());
        assert_eq!(dev.stats().bad_producer, 1);
        assert_eq!(dev.read_at(0, &mut [0; 10]), Err(BlkError::Gone));
        let r = detach(h, bus, w, dev);
        assert_eq!(r.refused, 0);
        assert_eq!(w.borrow().live_grants(), 0);
    });
}

#[test]
fn a_silent_backend_is_a_timeout_not_a_hang() {
    with_device(Offer::default(), Config::default(), |_, _, w, mut dev| {
        w.borrow_mut().hostile = Hostile::Silent;
        let e = dev.read_at(0, &mut [0; 4096]).unwrap_err();
        assert!(matches!(e, BlkError::Timeout { .. }), "{e:?}");
    });
}

#[test]
fn a_read_only_disk_refuses_writes_clearly() {
    let offer = Offer { info: VdiskInfo::READONLY.bits(), ..Offer::default() };
    with_device(offer, Config::default(), |_, _, w, mut dev| {
        assert!(dev.geometry().read_only);
        assert_eq!(dev.write_at(0, &[1]), Err(BlkError::ReadOnly));
        assert_eq!(dev.discard(0, 1), Err(BlkError::ReadOnly));
        assert!(BlkError::ReadOnly.to_string().contains("read-only"));
        assert!(w.borrow().seen.is_empty());
        dev.read_at(0, &mut [0; 10]).unwrap();
    });
}

#[test]
fn persistent_grants_still_mapped_at_close_are_counted_not_reused() {
    with_device(Offer::default(), Config::default(), |h, bus, w, mut dev| {
        dev.write_at(0, &[3; 65536]).unwrap();
        // The backend "forgets" to unmap: close must count, not pretend.
        dom0_put(h, &format!("{BACKEND}/state"), "6");
        let r = dev.close(bus);
        assert!(r.refused > 0);
        assert_eq!(r.refused as usize, w.borrow().live_grants());
        assert_eq!(r.made - r.revoked_in_all, r.refused, "the report shows what is still mapped");
    });
}

/// The handshake of a one-page, featureless disk whose backend writes
/// `sectors` as given; the geometry, or why the connection was refused.
fn connect_with_sectors(sectors: &str) -> Result<Geometry, BlkError> {
    let h = Harness::new(GUEST);
    let w = fake::world(1 << 20);
    guest_put(&h, "device/vbd/51712/backend", BACKEND);
    guest_put(&h, "device/vbd/51712/backend-id", "0");
    dom0_put(&h, &format!("{BACKEND}/state"), "2");
    let mut bus = Bus::new(h.client());
    let dev = describe(&mut bus, "vbd", "51712").unwrap();
    let connecting = start(&mut bus, FakeBlkEnv::new(&w), dev, Config::default()).unwrap();
    let gref = GrantRef(fe_key(&h, "ring-ref").unwrap().parse().unwrap());
    w.borrow_mut().map_ring(&[gref]);
    dom0_put(&h, &format!("{BACKEND}/sectors"), sectors);
    dom0_put(&h, &format!("{BACKEND}/state"), "4");
    connecting.finish(&mut bus).map(|d| d.geometry())
}

/// Issue 18 item 2: `sectors` had no upper bound, so `sectors * 512`
/// overflowed (a panic in debug builds, a wrapped size in release ones).
#[test]
fn absurd_sector_counts_are_refused_and_zero_is_an_empty_disk() {
    assert_eq!(connect_with_sectors("2048").unwrap().bytes(), 1 << 20);
    assert_eq!(connect_with_sectors("0").unwrap().bytes(), 0);
    let most = u64::MAX / 512;
    assert_eq!(connect_with_sectors(&most.to_string()).unwrap().bytes(), most * 512);
    for bad in [(most + 1).to_string(), u64::MAX.to_string(), "-1".into(), "1e9".into()] {
        match connect_with_sectors(&bad) {
            Err(BlkError::Protocol(why)) => assert!(why.contains("sectors"), "{bad}: {why}"),
            other => panic!("sectors={bad}: {other:?}"),
        }
    }
}

/// Fuzz target `blk-negotiation`: whatever blkback writes for `sectors`,
/// `sector-size`, `info`, the ring order, the queue count, indirect
/// segments and the feature flags, the handshake answers (a disk or an
/// error) without a panic, and a disk's figures are within bounds.
#[test]
fn fuzz_blk_negotiation() {
    use fuzzkit::{Arbitrary, Unstructured};
    fuzzkit::fuzz_n("blk-negotiation", 300, |u: &mut Unstructured<'_>| {
        let value = |u: &mut Unstructured<'_>| -> fuzzkit::arbitrary::Result<String> {
            Ok(match u.int_in_range(0..=5)? {
                0 => u64::arbitrary(u)?.to_string(),
                1 => u.int_in_range(0..=70_000u32)?.to_string(),
                2 => (u64::MAX / 512 + u64::from(u8::arbitrary(u)?)).to_string(),
                3 => "1".into(),
                4 => String::new(),
                _ => String::arbitrary(u)?,
            })
        };
        let h = Harness::new(GUEST);
        let w = fake::world(1 << 16);
        guest_put(&h, "device/vbd/51712/backend", BACKEND);
        guest_put(&h, "device/vbd/51712/backend-id", "0");
        dom0_put(&h, &format!("{BACKEND}/state"), "2");
        for key in
            ["max-ring-page-order", "feature-max-indirect-segments", "multi-queue-max-queues"]
        {
            if bool::arbitrary(u)? {
                dom0_put(&h, &format!("{BACKEND}/{key}"), &value(u)?);
            }
        }
        let mut bus = Bus::new(h.client());
        let dev = describe(&mut bus, "vbd", "51712").unwrap();
        let config =
            Config { xenbus_timeout: core::time::Duration::from_millis(50), ..Config::default() };
        let Ok(connecting) = start(&mut bus, FakeBlkEnv::new(&w), dev, config) else {
            return Ok(());
        };
        for key in ["sectors", "sector-size", "info", "feature-persistent", "feature-flush-cache"] {
            if key == "sectors" || bool::arbitrary(u)? {
                dom0_put(&h, &format!("{BACKEND}/{key}"), &value(u)?);
            }
        }
        dom0_put(&h, &format!("{BACKEND}/state"), "4");
        if let Ok(d) = connecting.finish(&mut bus) {
            let g = d.geometry();
            assert!(g.sectors <= u64::MAX / 512);
            assert!(g.sector_size.is_power_of_two() && (512..=65536).contains(&g.sector_size));
            assert_eq!(g.bytes(), g.sectors * 512);
            let f = d.features();
            assert!(f.queues >= 1 && f.queues as usize <= super::queue::MAX_QUEUES);
        }
        Ok(())
    });
}

/// Fuzz target `blk-responses`: the chaos backend (responses random,
/// mutated, stale, repeated, dropped, reordered, producer indices moved)
/// with its seed and rate, the device's shape and the calls all chosen by
/// `arbitrary`. Every call returns; an Ok read holds the disk's bytes.
#[test]
fn fuzz_blk_responses() {
    use super::fake::Rng;
    use fuzzkit::{Arbitrary, Unstructured};
    fuzzkit::fuzz_n("blk-responses", 150, |u: &mut Unstructured<'_>| {
        let offer = Offer {
            bytes: 256 << 10,
            max_ring_order: *u.choose(&[None, Some(0), Some(2)])?,
            indirect: *u.choose(&[None, Some(32)])?,
            persistent: bool::arbitrary(u)?,
            queues: *u.choose(&[None, Some(2)])?,
            ..Offer::default()
        };
        let chaos_seed = u64::arbitrary(u)? | 1;
        let rate = u.int_in_range(0..=200u64)?;
        let mut calls = Vec::new();
        for _ in 0..u.int_in_range(1..=12)? {
            calls.push((
                u.int_in_range(0..=3u8)?,
                u.int_in_range(0..=(255u64 << 10))?,
                u.int_in_range(1..=(64u64 << 10))?,
            ));
        }
        with_device(offer, Config::default(), |_h, _bus, w, mut dev| {
            {
                let mut world = w.borrow_mut();
                world.hostile = Hostile::Chaos;
                world.chaos = Rng(chaos_seed);
                world.chaos_rate = rate;
            }
            let size = dev.geometry().bytes();
            for (op, off, len) in calls {
                let len = len.min(size - off);
                let r = match op {
                    0 => {
                        let mut buf = vec![0u8; len as usize];
                        let r = dev.read_at(off, &mut buf);
                        if r.is_ok() {
                            let disk = &w.borrow().disk;
                            assert!(buf[..] == disk[off as usize..(off + len) as usize]);
                        }
                        r
                    }
                    1 => dev.write_at(off, &pattern(len as usize, off)),
                    2 => dev.flush(),
                    _ => dev.discard(off / 512, len.div_ceil(512).min(size / 512 - off / 512)),
                };
                let _ = dev.take_problems();
                if r == Err(BlkError::Gone) {
                    break;
                }
            }
        });
        Ok(())
    });
}

#[test]
fn vbd_names() {
    assert_eq!(vbd_name(51712), "xvda");
    assert_eq!(vbd_name(51728), "xvdb");
    assert_eq!(vbd_name((1 << 28) | (27 << 8)), "xvdab");
    assert_eq!(vbd_name(768), "vbd768");
    // Issue 18 item 2: extended ids past 26 * 257 disks overflowed a u8.
    assert_eq!(vbd_name((1 << 28) | (701 << 8)), "xvdzz");
    assert_eq!(vbd_name((1 << 28) | (702 << 8)), "xvdaaa");
    assert_eq!(vbd_name((1 << 28) | ((26 * 257) << 8)), "xvdiwa");
    assert_eq!(vbd_name(u32::MAX), "xvdbgqcv");
    for id in (0..=u32::MAX).step_by(65_521) {
        assert!(vbd_name(id).len() <= 13);
    }
}

/// Fixed-seed fuzzing of response handling: a backend answering with
/// random and mutated responses (ids random, plausible or stale;
/// statuses; operations; responses dropped, delayed, duplicated,
/// reordered; producer indices moved), under random reads, writes,
/// flushes and discards of any offset and length, on devices of random
/// shapes (1-3 queues, ring order, indirect or not, persistent or not).
/// Nothing may panic or index out of bounds; every call returns Ok or an
/// error; no request outlives its call unless the ring was abandoned; a
/// read that returns Ok holds exactly the disk's bytes and a write that
/// returns Ok is on the disk; when the backend lets go, every grant is
/// revoked and every event channel closed.
#[test]
fn fuzz_responses() {
    use super::fake::Rng;
    let seeds = 32u64;
    let ops_per_seed = 300u32;
    let (mut total_ops, mut oks, mut errs, mut devices) = (0u64, 0u64, 0u64, 0u64);
    let mut chaos = fake::ChaosCounts::default();
    let mut stats = Stats::default();
    for seed in 1..=seeds {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut ops = 0u32;
        while ops < ops_per_seed {
            let offer = Offer {
                bytes: 2 << 20,
                max_ring_order: [None, Some(0), Some(1), Some(4)][rng.below(4) as usize],
                indirect: [None, Some(32), Some(256)][rng.below(3) as usize],
                persistent: rng.below(2) == 0,
                queues: [None, Some(2), Some(3)][rng.below(3) as usize],
                ..Offer::default()
            };
            let config = Config { pool_pages: 64 + rng.below(512) as usize, ..Config::default() };
            devices += 1;
            with_device(offer, config, |h, bus, w, mut dev| {
                {
                    let mut world = w.borrow_mut();
                    world.hostile = Hostile::Chaos;
                    world.chaos = Rng(rng.next() | 1);
                }
                while ops < ops_per_seed {
                    ops += 1;
                    total_ops += 1;
                    // Stretches of good behaviour between the chaos.
                    w.borrow_mut().chaos_rate =
                        if rng.below(4) == 0 { 0 } else { 1 + rng.below(150) };
                    let size = dev.geometry().bytes();
                    let len = match rng.below(10) {
                        0 => 1 + rng.below(400 * 1024),
                        1..=3 => 1 + rng.below(48 * 1024),
                        _ => 1 + rng.below(8 * 1024),
                    }
                    .min(size);
                    let off = rng.below(size - len + 1);
                    let r = match rng.below(10) {
                        0..=3 => {
                            // Any offset, or whole sectors straight in.
                            let (o, l) = if rng.below(2) == 0 {
                                (off, len)
                            } else {
                                let o = off / 512 * 512;
                                (o, (len.div_ceil(512) * 512).min(size - o))
                            };
                            let mut buf = vec![0u8; l as usize];
                            let r = if l == len && o == off {
                                dev.read_at(o, &mut buf)
                            } else {
                                dev.read_sectors(o / 512, &mut buf)
                            };
                            if r.is_ok() {
                                let disk = &w.borrow().disk;
                                assert!(
                                    buf[..] == disk[o as usize..(o + l) as usize],
                                    "seed {seed}: an Ok read returned wrong bytes at {o}+{l}"
                                );
                            }
                            r
                        }
                        4..=7 => {
                            let data = pattern(len as usize, rng.next());
                            let r = dev.write_at(off, &data);
                            if r.is_ok() {
                                let disk = &w.borrow().disk;
                                assert!(
                                    data[..] == disk[off as usize..(off + len) as usize],
                                    "seed {seed}: an Ok write is not on the disk at {off}+{len}"
                                );
                            }
                            r
                        }
                        8 => dev.flush(),
                        _ => dev.discard(off / 512, len.div_ceil(512).min(size / 512 - off / 512)),
                    };
                    match &r {
                        Ok(()) => oks += 1,
                        Err(_) => errs += 1,
                    }
                    let _ = dev.take_problems();
                    if r == Err(BlkError::Gone) {
                        break;
                    }
                    if !matches!(r, Err(BlkError::Timeout { .. }))
                        && dev.read_at(0, &mut []).is_ok()
                    {
                        assert_eq!(dev.in_flight(), 0, "seed {seed}: a request outlived its call");
                    }
                }
                let s = dev.stats();
                stats.requests += s.requests;
                stats.bad_ids += s.bad_ids;
                stats.bad_ops += s.bad_ops;
                stats.bad_producer += s.bad_producer;
                stats.orphaned += s.orphaned;
                stats.errors += s.errors;
                let c = w.borrow().chaos_counts;
                chaos.ids += c.ids;
                chaos.statuses += c.statuses;
                chaos.ops += c.ops;
                chaos.dropped += c.dropped;
                chaos.duplicated += c.duplicated;
                chaos.producers += c.producers;
                chaos.steps += c.steps;
                let r = detach(h, bus, w, dev);
                assert_eq!(r.refused, 0, "seed {seed}");
                assert_eq!(w.borrow().live_grants(), 0, "seed {seed}: every grant revoked");
                assert!(w.borrow().xen().open_ports.is_empty(), "seed {seed}");
            });
        }
    }
    eprintln!(
        "fuzz: {total_ops} calls on {devices} devices ({oks} ok, {errs} failed); {stats:?}; {chaos:?}"
    );
    assert!(total_ops >= seeds * u64::from(ops_per_seed));
    assert!(chaos.steps > 20_000, "{chaos:?}");
    assert!(stats.bad_ids > 100 && stats.orphaned > 10 && stats.bad_ops > 10, "{stats:?}");
    assert!(stats.bad_producer > 10, "{stats:?}");
    assert!(oks > errs / 4, "most calls get through the chaos: {oks} ok, {errs} failed");
}

#[test]
fn scattered_blocks_go_out_together_on_every_queue() {
    let offer = Offer { queues: Some(2), ..Offer::default() };
    with_device(offer, Config::default(), |_, _, w, mut dev| {
        // 32 blocks of 4 KiB at scattered places, then two of 12 KiB.
        let sectors: Vec<u64> = (0..32u64).map(|k| (k * 37 % 32) * 64 + 8).collect();
        let data = pattern(32 * 4096, 21);
        dev.write_blocks(&sectors, &data).unwrap();
        let s = dev.stats();
        assert_eq!(s.requests, 32);
        assert!(s.max_in_flight >= 32, "{s:?}");
        assert!(s.queue_requests[0] == 16 && s.queue_requests[1] == 16, "{s:?}");
        for (k, &sec) in sectors.iter().enumerate() {
            let at = sec as usize * 512;
            assert_eq!(w.borrow().disk[at..at + 4096], data[k * 4096..(k + 1) * 4096]);
        }
        let mut back = vec![0; data.len()];
        dev.read_blocks(&sectors, &mut back).unwrap();
        assert_eq!(back, data);
        let mut big = vec![0; 2 * 12288];
        dev.read_blocks(&[3, 1000], &mut big).unwrap();
        assert_eq!(big[..12288], w.borrow().disk[3 * 512..3 * 512 + 12288]);
        assert_eq!(big[12288..], w.borrow().disk[1000 * 512..1000 * 512 + 12288]);
        assert!(dev.read_blocks(&[], &mut []).is_err());
        assert!(dev.read_blocks(&[1, 2], &mut [0; 1000]).is_err());
        assert!(matches!(
            dev.read_blocks(&[2047], &mut [0; 1024]),
            Err(BlkError::OutOfRange { .. })
        ));
    });
}

#[test]
fn pages_lost_to_a_hostile_backend_make_calls_fail_never_succeed_empty() {
    // Orphaned requests' pages are never reused; once too few are left
    // for a request, a call fails with PoolExhausted instead of returning Ok
    // for bytes it never sent.
    let config = Config { pool_pages: 16, ..Config::default() };
    with_device(Offer::default(), config, |h, bus, w, mut dev| {
        w.borrow_mut().hostile = Hostile::DuplicateId;
        let sectors = [0u64, 8, 16, 24];
        for _ in 0..20 {
            let _ = dev.write_blocks(&sectors, &[1; 4 * 4096]);
        }
        assert!(dev.stats().orphaned >= 12, "{:?}", dev.stats());
        w.borrow_mut().hostile = Hostile::None;
        let data = pattern(64 * 1024, 30);
        match dev.write_at(0, &data) {
            Err(BlkError::PoolExhausted { usable, capacity }) => {
                assert!(usable < capacity, "{usable} of {capacity}")
            }
            Ok(()) => assert_eq!(w.borrow().disk[..data.len()], data[..], "Ok means written"),
            Err(e) => panic!("{e:?}"),
        }
        assert!(matches!(dev.write_at(0, &data), Err(BlkError::PoolExhausted { .. })));
        let r = detach(h, bus, w, dev);
        assert_eq!(r.refused, 0);
        assert_eq!(w.borrow().live_grants(), 0, "lost pages are revoked at close");
    });
}

/// What a new domain's toolstack does to the device: `device/vbd/51712`
/// made again (Initialising, pointing at `backend`), and, if `offer` is
/// given, a blkback there that is up (it answers `Connected` at once;
/// the frontend only reads its keys after advertising its own).
fn new_domain_device(h: &Harness, backend: &str, offer: Option<&Offer>) {
    if let Some(o) = offer {
        dom0_put(h, &format!("{backend}/max-ring-page-order"), "4");
        dom0_put(h, &format!("{backend}/feature-max-indirect-segments"), "256");
        if let Some(n) = o.queues {
            dom0_put(h, &format!("{backend}/multi-queue-max-queues"), &n.to_string());
        }
        dom0_put(h, &format!("{backend}/sectors"), &(o.bytes / 512).to_string());
        dom0_put(h, &format!("{backend}/info"), "0");
        dom0_put(h, &format!("{backend}/sector-size"), "512");
        dom0_put(h, &format!("{backend}/feature-persistent"), "1");
        dom0_put(h, &format!("{backend}/feature-flush-cache"), "1");
        dom0_put(h, &format!("{backend}/state"), "4");
    }
    guest_put(h, "device/vbd/51712/backend", backend);
    guest_put(h, "device/vbd/51712/state", "1");
}

/// The rings the frontend advertised, as (grefs per queue).
fn advertised_rings(h: &Harness) -> Vec<Vec<GrantRef>> {
    let order: u32 = fe_key(h, "ring-page-order").map_or(0, |o| o.parse().unwrap());
    let dirs: Vec<String> = match fe_key(h, "multi-queue-num-queues") {
        Some(n) => (0..n.parse::<u32>().unwrap()).map(|i| format!("queue-{i}/")).collect(),
        None => vec![String::new()],
    };
    dirs.iter()
        .map(|dir| {
            if order == 0 {
                vec![GrantRef(fe_key(h, &format!("{dir}ring-ref")).unwrap().parse().unwrap())]
            } else {
                (0..1 << order)
                    .map(|i| {
                        let k = fe_key(h, &format!("{dir}ring-ref{i}")).unwrap();
                        GrantRef(k.parse().unwrap())
                    })
                    .collect()
            }
        })
        .collect()
}

/// A device that follows suspends, connected to `BACKEND` through a bus
/// its environment shares (on a leaked harness), and the world.
fn following_device(
    offer: &Offer,
    config: Config,
    env_hooks: impl FnOnce(&mut FakeBlkEnv, &'static Harness, &Shared),
) -> (
    &'static Harness,
    std::rc::Rc<std::cell::RefCell<fake::StaticBus>>,
    Shared,
    BlkFront<FakeBlkEnv>,
) {
    let h: &'static Harness = Box::leak(Box::new(Harness::new(GUEST)));
    let w = fake::world(offer.bytes);
    guest_put(h, "device/vbd/51712/backend", BACKEND);
    guest_put(h, "device/vbd/51712/backend-id", "0");
    dom0_put(h, &format!("{BACKEND}/state"), "2");
    dom0_put(h, &format!("{BACKEND}/max-ring-page-order"), "4");
    dom0_put(h, &format!("{BACKEND}/feature-max-indirect-segments"), "256");
    if let Some(n) = offer.queues {
        dom0_put(h, &format!("{BACKEND}/multi-queue-max-queues"), &n.to_string());
    }
    let bus = std::rc::Rc::new(std::cell::RefCell::new(Bus::new(h.client())));
    let dev = describe(&mut bus.borrow_mut(), "vbd", "51712").unwrap();
    let mut env = FakeBlkEnv::new(&w);
    env.bus = Some(bus.clone());
    env_hooks(&mut env, h, &w);
    let connecting = start(&mut bus.borrow_mut(), env, dev, config).unwrap();
    for grefs in advertised_rings(h) {
        w.borrow_mut().map_ring(&grefs);
    }
    w.borrow_mut().persistent = true;
    dom0_put(h, &format!("{BACKEND}/sectors"), &(offer.bytes / 512).to_string());
    dom0_put(h, &format!("{BACKEND}/info"), "0");
    dom0_put(h, &format!("{BACKEND}/sector-size"), "512");
    dom0_put(h, &format!("{BACKEND}/feature-persistent"), "1");
    dom0_put(h, &format!("{BACKEND}/feature-flush-cache"), "1");
    dom0_put(h, &format!("{BACKEND}/state"), "4");
    let d = connecting.finish(&mut bus.borrow_mut()).unwrap();
    (h, bus, w, d)
}

#[test]
fn a_new_domain_reconnects_and_reissues_every_request_in_flight() {
    let offer = Offer { bytes: 4 << 20, queues: Some(2), ..Offer::default() };
    // Inline requests of 11 segments: a 512 KiB call is 12 requests at once.
    let config = Config { max_indirect_segments: 8, follow_suspend: true, ..Config::default() };
    let o2 = offer.clone();
    // Armed before a call: its first wait is where the toolstack saves
    // the domain and restores it.
    let armed = std::rc::Rc::new(std::cell::Cell::new(false));
    let arm = armed.clone();
    let (h, _bus, w, mut d) = following_device(&offer, config, move |env, h, w| {
        let w1 = w.clone();
        env.at_suspend_point = Some(Box::new(move |in_flight| {
            if in_flight == 0 || !arm.replace(false) {
                return;
            }
            let mut world = w1.borrow_mut();
            if world.generation > 0 {
                // The second time the old backend had done every read and
                // answered one of each ring (answers the guest never
                // read); the first time it had seen nothing at all.
                world.hostile = Hostile::Partial;
                world.step();
                world.hostile = Hostile::None;
            }
            world.disconnect();
            world.generation += 1;
            let be = format!("/local/domain/0/backend/vbd/{}/51712", 8 + world.generation);
            drop(world);
            new_domain_device(h, &be, Some(&o2));
        }));
        let w2 = w.clone();
        env.at_reconnected = Some(Box::new(move |_| {
            // The new blkback maps the new rings.
            for grefs in advertised_rings(h) {
                w2.borrow_mut().map_ring(&grefs);
            }
        }));
    });
    let data = pattern(512 << 10, 3);
    let before = w.borrow().seen.len();
    armed.set(true);
    d.write_at(4096, &data).unwrap();
    assert_eq!(&w.borrow().disk[4096..4096 + data.len()], &data[..], "every byte on the disk");
    let s = d.stats();
    assert_eq!(s.reconnects, 1);
    assert_eq!(w.borrow().published, vec![12], "12 requests went out at once");
    assert_eq!(s.reissued, 12);
    assert_eq!(w.borrow().seen.len() - before, 12, "only the new backend saw them");
    let mut back = vec![0u8; data.len()];
    armed.set(true);
    d.read_at(4096, &mut back).unwrap();
    assert_eq!(back, data, "reads re-issued in the second new domain land in the buffer");
    let s = d.stats();
    assert_eq!(s.reconnects, 2);
    assert_eq!(s.reissued, 24, "answered or not, every read the guest had not taken");
    let r = &w.borrow().reconnects;
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].backend, "/local/domain/0/backend/vbd/10/51712");
    assert_eq!(r[0].queues, (2, 2));
    assert_eq!(fe_key(h, "state").as_deref(), Some("4"), "Connected to the new backend");
    assert!(w.borrow().violations.is_empty(), "{:?}", w.borrow().violations);
    assert!(d.take_problems().is_empty());
}

#[test]
fn a_backend_that_does_not_come_back_fails_the_call_and_the_device() {
    let offer = Offer { bytes: 1 << 20, ..Offer::default() };
    let config = Config { max_indirect_segments: 8, follow_suspend: true, ..Config::default() };
    let (_h, _bus, w, mut d) = following_device(&offer, config, |env, h, w| {
        let w1 = w.clone();
        env.at_suspend_point = Some(Box::new(move |in_flight| {
            if in_flight == 0 || w1.borrow().generation > 0 {
                return;
            }
            let mut world = w1.borrow_mut();
            world.disconnect();
            world.generation += 1;
            drop(world);
            // The device is made again, but no backend ever shows up.
            new_domain_device(h, "/local/domain/0/backend/vbd/9/51712", None);
        }));
    });
    let e = d.write_at(0, &pattern(256 << 10, 1)).unwrap_err();
    assert!(matches!(e, BlkError::Xenbus(_)), "{e:?}");
    let p = d.take_problems();
    assert!(p.iter().any(|l| l.contains("cannot reconnect")), "{p:?}");
    assert!(matches!(d.read_at(0, &mut [0u8; 512]), Err(BlkError::Gone)));
    assert_eq!(w.borrow().reconnects.len(), 0);
}
