//! blkfront against the fake backend: handshake, data of every shape,
//! features, hostile responses, close.

use super::fake::{self, FakeEnv, Hostile, Shared};
use super::wire::RingRequest;
use super::*;
use crate::xenbus::device::describe;
use crate::xenbus::Bus;
use hypercall::abi::blkif::VDISK_READONLY;
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
    f: impl FnOnce(&Harness, &mut FakeBus<'_>, &Shared, BlkFront<FakeEnv>),
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
    let mut bus = Bus::new(h.client());
    let dev = describe(&mut bus, "vbd", "51712").unwrap();
    let connecting = start(&mut bus, FakeEnv::new(&w), dev, config).unwrap();

    // The backend's half: map what the frontend advertised.
    assert_eq!(fe_key(&h, "state").as_deref(), Some("3"));
    assert_eq!(fe_key(&h, "protocol").as_deref(), Some("x86_64-abi"));
    assert!(fe_key(&h, "event-channel").is_some());
    let grefs: Vec<GrantRef> = match fe_key(&h, "ring-page-order") {
        Some(o) => (0..1 << o.parse::<u32>().unwrap())
            .map(|i| GrantRef(fe_key(&h, &format!("ring-ref{i}")).unwrap().parse().unwrap()))
            .collect(),
        None => vec![GrantRef(fe_key(&h, "ring-ref").unwrap().parse().unwrap())],
    };
    let fe_persistent = fe_key(&h, "feature-persistent").as_deref() == Some("1");
    {
        let mut world = w.borrow_mut();
        world.map_ring(&grefs);
        world.persistent = offer.persistent && fe_persistent;
    }
    dom0_put(&h, &format!("{BACKEND}/sectors"), &(offer.bytes / 512).to_string());
    dom0_put(&h, &format!("{BACKEND}/info"), &offer.info.to_string());
    dom0_put(&h, &format!("{BACKEND}/sector-size"), &offer.sector_size.to_string());
    dom0_put(
        &h,
        &format!("{BACKEND}/feature-persistent"),
        if offer.persistent { "1" } else { "0" },
    );
    dom0_put(&h, &format!("{BACKEND}/feature-flush-cache"), if offer.flush { "1" } else { "0" });
    dom0_put(&h, &format!("{BACKEND}/feature-discard"), if offer.discard { "1" } else { "0" });
    dom0_put(&h, &format!("{BACKEND}/state"), "4");
    let dev = connecting.finish(&mut bus).unwrap();
    assert_eq!(fe_key(&h, "state").as_deref(), Some("4"));
    f(&h, &mut bus, &w, dev);
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
    mut dev: BlkFront<FakeEnv>,
) -> CloseReport {
    dom0_put(h, &format!("{BACKEND}/state"), "5");
    assert!(dev.backend_leaving(bus).unwrap());
    w.borrow_mut().disconnect();
    dom0_put(h, &format!("{BACKEND}/state"), "6");
    dev.close(bus)
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
        assert_eq!(w.borrow().live_grants(), 0, "every grant revoked");
        assert!(!w.borrow().port_open);
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
        detach(h, bus, w, dev);
        assert_eq!(w.borrow().live_grants(), 0);
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
        assert_eq!(s.grants.granted, granted, "hot pages are not granted again");
        assert_eq!(s.grants.revoked, 0);
        assert!(w.borrow().seen.iter().any(|r| matches!(r, RingRequest::Indirect(_))));
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
        assert!(matches!(e, BlkError::Io { op: 1, status: -1, .. }), "{e:?}");
        assert_eq!(dev.stats().errors, 1);
        // The device is still usable for reads.
        w.borrow_mut().hostile = Hostile::None;
        dev.read_at(0, &mut [0; 4096]).unwrap();
    });
}

#[test]
fn repeated_and_out_of_range_ids_are_counted_and_fail_the_call_not_the_guest() {
    for hostile in [Hostile::DuplicateId, Hostile::IdOutOfRange] {
        with_device(Offer::default(), Config::default(), |h, bus, w, mut dev| {
            w.borrow_mut().hostile = hostile;
            // A request whose answer carried another id is never answered:
            // the call fails (after the I/O timeout), nothing hangs.
            let e = dev.write_at(0, &pattern(300 * 1024, 8)).unwrap_err();
            assert!(matches!(e, BlkError::Timeout { .. }), "{hostile:?}: {e:?}");
            let s = dev.stats();
            assert_eq!(s.bad_ids, 1, "{hostile:?}: {s:?}");
            assert!(dev.take_problems().iter().any(|p| p.contains("not a request in flight")));
            // The ring is no longer trusted; the device still closes cleanly.
            assert_eq!(dev.read_at(0, &mut [0; 8]), Err(BlkError::Gone));
            let r = detach(h, bus, w, dev);
            assert_eq!(r.refused, 0);
            assert_eq!(w.borrow().live_grants(), 0);
        });
    }
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
    let offer = Offer { info: VDISK_READONLY, ..Offer::default() };
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
    });
}

#[test]
fn vbd_names() {
    assert_eq!(vbd_name(51712), "xvda");
    assert_eq!(vbd_name(51728), "xvdb");
    assert_eq!(vbd_name((1 << 28) | (27 << 8)), "xvdab");
    assert_eq!(vbd_name(768), "vbd768");
}
