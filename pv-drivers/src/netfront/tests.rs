//! The frontend against the fake backend: traffic both ways, multi-slot
//! packets and extra-info slots, a hostile backend (each fault counted and
//! survived), a fixed-seed fuzz of RX responses, grants revoked at the
//! end, and the xenbus handshake against the fake XenStore.

use super::connect::{parse_mac, Config, Netfront};
use super::ctrl::{CtrlError, WANTED_HASH_TYPES};
use super::fake::{CtrlMode, FakeBackend, FakeCtrl, FakeHost, Page};
use super::flow::RSS_KEY;
use super::rx::{new_buffer, RxPacket, RxQueue, MAX_PACKET};
use super::tx::{TxError, TxOffload, TxQueue, TxRoom};
use super::Stats;
use hypercall::abi::netif::{
    extra_type, gso_type, rxf, txf, NetifExtraInfo, NetifRxResponse, EXTRA_FLAG_MORE,
};
use hypercall::{DomId, EvtchnPort};

struct Rig {
    host: FakeHost,
    rx: RxQueue<Page>,
    tx: TxQueue<Page>,
    be: FakeBackend,
    stats: Stats,
}

fn rig(rx_target: u32) -> Rig {
    let mut host = FakeHost::default();
    let mut stats = Stats::default();
    let t = new_buffer(&mut host, DomId(0), false, &mut stats).unwrap();
    let r = new_buffer(&mut host, DomId(0), false, &mut stats).unwrap();
    let tx = TxQueue::new(t.page, t.gref, EvtchnPort(1), DomId(0), 64);
    let mut rx = RxQueue::new(r.page, r.gref, EvtchnPort(2), DomId(0), rx_target);
    rx.refill(&mut host, &mut stats).unwrap();
    let be = FakeBackend::attach(&host, tx.ring_gref, rx.ring_gref);
    Rig { host, rx, tx, be, stats }
}

impl Rig {
    fn poll(&mut self) -> Vec<RxPacket> {
        let mut got = Vec::new();
        let _ = self.rx.poll(&mut self.stats, |p| got.push(p));
        self.rx.refill(&mut self.host, &mut self.stats).unwrap();
        got
    }
}

/// xorshift64*: fixed seeds, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn packet(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next() as u8).collect()
}

#[test]
fn packets_arrive_and_buffers_stay_posted() {
    let mut r = rig(32);
    let mut rng = Rng(1);
    assert_eq!(r.rx.posted(), 32);
    for _ in 0..300 {
        let burst = 1 + rng.below(10) as usize;
        let sent: Vec<Vec<u8>> = (0..burst)
            .map(|_| {
                let n = 14 + rng.below(1500) as usize;
                packet(&mut rng, n)
            })
            .collect();
        for p in &sent {
            assert!(r.be.deliver(p, 4096, &[], rxf::DATA_VALIDATED));
        }
        let got = r.poll();
        assert_eq!(
            got.iter().map(|p| &p.data).collect::<Vec<_>>(),
            sent.iter().collect::<Vec<_>>()
        );
        assert_eq!(r.rx.posted(), 32);
    }
    assert_eq!(r.stats.backend_errors(), 0);
    assert_eq!(r.stats.rx_csum_validated, r.stats.rx_packets);
    // Buffers are reused, not granted anew: 2 rings + 32 buffers.
    assert_eq!(r.stats.grants_made, 2 + 32);
}

#[test]
fn multi_slot_packets_with_extra_info_are_assembled() {
    let mut r = rig(64);
    let mut rng = Rng(2);
    let big = packet(&mut rng, 60_000);
    let gso = NetifExtraInfo {
        kind: extra_type::GSO,
        flags: EXTRA_FLAG_MORE,
        u: [1448, u16::from(gso_type::TCPV4), 0],
    };
    let mcast = NetifExtraInfo { kind: extra_type::MCAST_ADD, flags: 0, u: [1, 2, 3] };
    assert!(r.be.deliver(&big, 4096, &[gso, mcast], rxf::CSUM_BLANK | rxf::DATA_VALIDATED));
    let small = packet(&mut rng, 60);
    assert!(r.be.deliver(&small, 4096, &[], 0));
    let got = r.poll();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].data, big);
    assert_eq!(got[0].gso.map(|g| (g.size, g.kind)), Some((1448, gso_type::TCPV4)));
    assert_eq!(got[1].data, small);
    assert_eq!((r.stats.rx_multi_slot, r.stats.rx_extra_info, r.stats.rx_csum_blank), (1, 2, 1));
    assert_eq!(r.stats.backend_errors(), 0);
}

/// TX answers wake nobody while there is room: the queue collects them
/// on its next look without asking netback for an event; a sender that
/// finds the ring full asks for one, on the next answer only.
#[test]
fn tx_answers_ask_for_an_event_only_when_room_is_short() {
    let mut r = rig(8);
    let mut rng = Rng(7);
    let p = packet(&mut rng, 1514);
    // The ring starts asking for the first answer (rsp_event = 1).
    r.tx.send(&mut r.host, &mut r.stats, &p).unwrap();
    r.tx.flush(&mut r.host, &mut r.stats);
    r.be.take_tx();
    assert_eq!(r.be.tx_events, 1);
    r.tx.reclaim(&mut r.stats, false).unwrap();
    for _ in 0..100 {
        r.tx.send(&mut r.host, &mut r.stats, &p).unwrap();
        r.tx.flush(&mut r.host, &mut r.stats);
        assert_eq!(r.be.take_tx().len(), 1);
        r.tx.reclaim(&mut r.stats, false).unwrap();
        assert_eq!(r.tx.in_flight(), 0);
    }
    assert_eq!(r.be.tx_events, 1, "answers nobody waited for sent no event");
    // Fill the ring's buffers: the sender waits for room, asking for an event.
    while r.tx.send(&mut r.host, &mut r.stats, &p).is_ok() {}
    assert!(!r.tx.has_room(1514));
    r.tx.reclaim(&mut r.stats, true).unwrap();
    r.tx.flush(&mut r.host, &mut r.stats);
    r.be.take_tx();
    assert_eq!(r.be.tx_events, 2, "the waiting sender is woken");
    r.tx.reclaim(&mut r.stats, false).unwrap();
    assert!(r.tx.has_room(1514));
}

#[test]
fn tx_packets_go_out_in_slots_and_completions_free_them() {
    let mut r = rig(8);
    let mut rng = Rng(3);
    for round in 0..50 {
        let sizes = [60usize, 1514, 4096, 4097, 9000, 65535];
        let sent: Vec<Vec<u8>> = sizes.iter().map(|&n| packet(&mut rng, n)).collect();
        for p in &sent {
            r.tx.send(&mut r.host, &mut r.stats, p).unwrap();
        }
        r.tx.flush(&mut r.host, &mut r.stats);
        assert_eq!(r.be.take_tx(), sent, "round {round}");
        r.tx.reclaim(&mut r.stats, true).unwrap();
        assert_eq!(r.tx.in_flight(), 0);
    }
    assert_eq!(r.tx.send(&mut r.host, &mut r.stats, &[]), Err(TxError::BadSize));
    assert_eq!(r.tx.send(&mut r.host, &mut r.stats, &vec![0; 65536]), Err(TxError::BadSize));
    assert_eq!(r.stats.tx_multi_slot, 50 * 3);
    // Buffer pages are reused: at most 64 were ever granted for TX.
    assert!(r.stats.grants_made <= 2 + 8 + 64);
    // One notification per batch at most (the backend re-arms each time).
    assert!(
        r.host.xen.borrow().notifies <= 1 + 50 * 2,
        "{} notifications",
        r.host.xen.borrow().notifies
    );
}

#[test]
fn tx_offloads_go_out_as_flags_and_a_gso_extra() {
    let mut r = rig(8);
    let mut rng = Rng(5);
    let big = packet(&mut rng, 60_000);
    let small = packet(&mut rng, 100);
    let gso = TxOffload { csum_blank: true, gso_size: Some(1448) };
    let csum = TxOffload { csum_blank: true, gso_size: None };
    for _ in 0..20 {
        r.tx.send_offloaded(&mut r.host, &mut r.stats, &big, gso).unwrap();
        r.tx.send_offloaded(&mut r.host, &mut r.stats, &small, csum).unwrap();
        r.tx.send(&mut r.host, &mut r.stats, &small).unwrap();
        r.tx.flush(&mut r.host, &mut r.stats);
        let seen = r.be.take_tx_full();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].data, big);
        let blank = txf::CSUM_BLANK | txf::DATA_VALIDATED;
        assert_eq!(seen[0].flags, blank | txf::EXTRA_INFO | txf::MORE_DATA);
        assert_eq!(
            seen[0].extras,
            [NetifExtraInfo {
                kind: extra_type::GSO,
                flags: 0,
                u: [1448, u16::from(gso_type::TCPV4), 0]
            }]
        );
        assert_eq!((seen[1].data.as_slice(), seen[1].flags), (small.as_slice(), blank));
        assert_eq!((seen[2].data.as_slice(), seen[2].flags), (small.as_slice(), 0));
        assert!(seen[1].extras.is_empty() && seen[2].extras.is_empty());
        // The extra's NULL answer frees nothing; every slot comes back.
        r.tx.reclaim(&mut r.stats, true).unwrap();
        assert_eq!(r.tx.in_flight(), 0);
    }
    assert_eq!((r.stats.tx_gso, r.stats.tx_csum_blank, r.stats.tx_packets), (20, 40, 60));
    assert_eq!(r.stats.backend_errors(), 0);
    let zero = TxOffload { csum_blank: true, gso_size: Some(0) };
    assert_eq!(r.tx.send_offloaded(&mut r.host, &mut r.stats, &big, zero), Err(TxError::BadSize));
}

#[test]
fn a_gso_extra_of_size_zero_or_unknown_type_drops_the_packet() {
    let mut r = rig(64);
    let mut rng = Rng(6);
    let big = packet(&mut rng, 30_000);
    for (size, kind) in [(0, gso_type::TCPV4), (1448, 9)] {
        let gso = NetifExtraInfo { kind: extra_type::GSO, flags: 0, u: [size, u16::from(kind), 0] };
        assert!(r.be.deliver(&big, 4096, &[gso], rxf::CSUM_BLANK));
    }
    let ok = NetifExtraInfo {
        kind: extra_type::GSO,
        flags: 0,
        u: [1448, u16::from(gso_type::TCPV4), 0],
    };
    assert!(r.be.deliver(&big, 4096, &[ok], rxf::CSUM_BLANK));
    let got = r.poll();
    assert_eq!(got.len(), 1, "only the good one");
    assert_eq!(got[0].data, big);
    assert_eq!((r.stats.rx_bad_extra, r.stats.rx_dropped, r.stats.rx_gso), (2, 2, 1));
    // The dropped chains' buffers came back: the ring is full again.
    r.rx.refill(&mut r.host, &mut r.stats).unwrap();
    assert_eq!(r.rx.posted(), 64);
}

#[test]
fn tx_room_says_beforehand_what_send_would_refuse() {
    let mut r = rig(8);
    let big = vec![9u8; 65_535];
    let mut sent = 0;
    while r.tx.has_room(big.len()) {
        let gso = TxOffload { csum_blank: true, gso_size: Some(1460) };
        r.tx.send_offloaded(&mut r.host, &mut r.stats, &big, gso).unwrap();
        sent += 1;
    }
    // 64 buffers, 16 pages a packet: 4 fit, the fifth would not.
    assert_eq!(sent, 4);
    assert_eq!(r.tx.send(&mut r.host, &mut r.stats, &big), Err(TxError::Busy));
    r.tx.flush(&mut r.host, &mut r.stats);
    assert_eq!(r.be.take_tx().len(), sent);
    r.tx.reclaim(&mut r.stats, true).unwrap();
    assert!(r.tx.has_room(big.len()));
}

#[test]
fn tx_is_busy_until_the_backend_answers() {
    let mut r = rig(8);
    let p = vec![7u8; 4096 * 3];
    let mut sent = 0;
    while r.tx.send(&mut r.host, &mut r.stats, &p).is_ok() {
        sent += 1;
    }
    assert_eq!(sent, 64 / 3);
    r.tx.flush(&mut r.host, &mut r.stats);
    assert_eq!(r.be.take_tx().len(), sent);
    r.tx.reclaim(&mut r.stats, true).unwrap();
    assert!(r.tx.send(&mut r.host, &mut r.stats, &p).is_ok());
}

#[test]
fn a_hostile_backend_is_counted_and_survived() {
    let mut r = rig(16);
    let good = vec![0xabu8; 100];
    let check_good = |r: &mut Rig| {
        assert!(r.be.deliver(&good, 4096, &[], 0));
        let got = r.poll();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, good);
    };
    // A response id that is not the slot's.
    assert!(r.be.raw_rx(|q| NetifRxResponse { id: q.id ^ 5, offset: 0, flags: 0, status: 10 }));
    r.be.rx.publish();
    assert!(r.poll().is_empty());
    assert_eq!(r.stats.rx_bad_id, 1);
    check_good(&mut r);
    // A length past the page, and an offset that pushes it past.
    assert!(r.be.raw_rx(|q| NetifRxResponse { id: q.id, offset: 0, flags: 0, status: 5000 }));
    assert!(r.be.raw_rx(|q| NetifRxResponse { id: q.id, offset: 4000, flags: 0, status: 200 }));
    r.be.rx.publish();
    assert!(r.poll().is_empty());
    assert_eq!(r.stats.rx_bad_len, 2);
    check_good(&mut r);
    // An error status in the middle of a chain drops the whole packet.
    assert!(r.be.raw_rx(|q| NetifRxResponse {
        id: q.id,
        offset: 0,
        flags: rxf::MORE_DATA,
        status: 100
    }));
    assert!(r.be.raw_rx(|q| NetifRxResponse { id: q.id, offset: 0, flags: 0, status: -1 }));
    r.be.rx.publish();
    assert!(r.poll().is_empty());
    assert_eq!(r.stats.rx_error_status, 1);
    check_good(&mut r);
    // An extra-info slot of no known type.
    assert!(r.be.raw_rx(|q| NetifRxResponse {
        id: q.id,
        offset: 0,
        flags: rxf::EXTRA_INFO,
        status: 10
    }));
    assert!(r.be.raw_rx(|_| NetifRxResponse { id: 0x00_09, offset: 0, flags: 0, status: 0 }));
    r.be.rx.publish();
    assert!(r.poll().is_empty());
    assert_eq!(r.stats.rx_bad_extra, 1);
    check_good(&mut r);
    // A producer index far past what was posted: counted, nothing read.
    let posted = r.rx.posted();
    r.be.rx.force_rsp_prod(1_000_000);
    assert!(r.poll().is_empty());
    assert_eq!(r.stats.rx_bad_prod, 1);
    assert_eq!(r.rx.posted(), posted);
    // TX: an id never sent and a producer index out of range.
    r.be.tx.push_response(&hypercall::abi::netif::NetifTxResponse { id: 9999, status: 0 });
    r.tx.send(&mut r.host, &mut r.stats, &[1; 60]).unwrap();
    r.tx.flush(&mut r.host, &mut r.stats);
    r.be.tx.publish();
    r.tx.reclaim(&mut r.stats, true).unwrap();
    assert_eq!(r.stats.tx_bad_id, 1);
    r.be.tx.force_rsp_prod(77);
    assert!(r.tx.reclaim(&mut r.stats, true).is_err());
    assert_eq!(r.stats.tx_bad_prod, 1);
    assert_eq!(r.stats.rx_dropped, 5);
}

/// Issue 18 item 4: an endless `XEN_NETIF_EXTRA_FLAG_MORE` chain held RX
/// open for ever (every later slot was taken as one more extra) and no
/// fault was counted. Now the chain is cut after MAX_EXTRAS, counted, and
/// the next packet arrives.
#[test]
fn an_endless_extra_info_chain_is_cut_and_counted() {
    use super::rx::MAX_EXTRAS;
    use super::wire::extra_as_rx;
    let mut r = rig(16);
    let more = NetifExtraInfo { kind: extra_type::MCAST_ADD, flags: EXTRA_FLAG_MORE, u: [0; 3] };
    assert!(r.be.raw_rx(|q| NetifRxResponse {
        id: q.id,
        offset: 0,
        flags: rxf::EXTRA_INFO,
        status: 10
    }));
    // Every other posted buffer answered as one more extra, MORE set.
    for _ in 0..15 {
        assert!(r.be.raw_rx(|_| extra_as_rx(&more)));
    }
    r.be.rx.publish();
    assert!(r.poll().is_empty());
    assert_eq!(r.stats.rx_long_chain, 1);
    assert_eq!(r.stats.rx_extra_info, u64::from(MAX_EXTRAS));
    let good = vec![0x5au8; 300];
    assert!(r.be.deliver(&good, 4096, &[], 0));
    let got = r.poll();
    assert_eq!(got.iter().map(|p| &p.data).collect::<Vec<_>>(), [&good]);
}

/// Issue 18 item 4: a data chain past MAX_SLOTS was dropped without a
/// fault; now it is cut there, counted, and RX goes on.
#[test]
fn a_data_chain_longer_than_a_packet_is_cut_and_counted() {
    let mut r = rig(64);
    // Two chains' worth of MORE_DATA slots, then one that ends: each
    // chain is cut at MAX_SLOTS, and the last slot is a packet of its own.
    for _ in 0..2 * super::rx::MAX_SLOTS {
        assert!(r.be.raw_rx(|q| NetifRxResponse {
            id: q.id,
            offset: 0,
            flags: rxf::MORE_DATA,
            status: 100
        }));
    }
    assert!(r.be.raw_rx(|q| NetifRxResponse { id: q.id, offset: 0, flags: 0, status: 100 }));
    r.be.rx.publish();
    assert_eq!(r.poll().iter().map(|p| p.data.len()).collect::<Vec<_>>(), [100]);
    assert_eq!(r.stats.rx_long_chain, 2);
    let good = vec![0x77u8; 9000];
    assert!(r.be.deliver(&good, 4096, &[], 0));
    assert_eq!(r.poll().len(), 1);
}

/// The backend's TX half answering every request with `make(id)`.
fn answer_tx(
    r: &mut Rig,
    mut make: impl FnMut(u16) -> Vec<hypercall::abi::netif::NetifTxResponse>,
) {
    while let Some(req) = r.be.tx.take_request() {
        for rsp in make(req.id) {
            r.be.tx.push_response(&rsp);
        }
    }
    r.be.tx.publish();
}

/// Issue 18 item 4: a TX answer with status NULL left its id in flight;
/// after 64 of them `send` was busy for ever.
#[test]
fn tx_answers_with_status_null_are_faults_and_leak_nothing() {
    use hypercall::abi::netif::{rsp, NetifTxResponse};
    let mut r = rig(8);
    for i in 0..300 {
        r.tx.send(&mut r.host, &mut r.stats, &[1; 60])
            .unwrap_or_else(|e| panic!("send {i}: {e:?}"));
        r.tx.flush(&mut r.host, &mut r.stats);
        answer_tx(&mut r, |id| vec![NetifTxResponse { id, status: rsp::NULL }]);
        r.tx.reclaim(&mut r.stats, true).unwrap();
    }
    assert_eq!(r.stats.tx_null_status, 300);
    assert_eq!(r.tx.in_flight(), 0);
}

/// Issue 18 item 4: answers that repeat one id in place of another's left
/// the other id in flight for ever (and `send` busy once all leaked).
#[test]
fn tx_answers_with_repeated_ids_leak_no_id() {
    use hypercall::abi::netif::{rsp, NetifTxResponse};
    let mut r = rig(8);
    for i in 0..300 {
        for _ in 0..2 {
            r.tx.send(&mut r.host, &mut r.stats, &[2; 60])
                .unwrap_or_else(|e| panic!("round {i}: {e:?}"));
        }
        r.tx.flush(&mut r.host, &mut r.stats);
        let mut first = None;
        answer_tx(&mut r, |id| {
            // Both slots answered with the first slot's id.
            let id = *first.get_or_insert(id);
            vec![NetifTxResponse { id, status: rsp::OKAY }]
        });
        r.tx.reclaim(&mut r.stats, true).unwrap();
        assert_eq!(r.tx.in_flight(), 0);
    }
    assert_eq!((r.stats.tx_bad_id, r.stats.tx_ids_recovered), (300, 300));
}

/// Fixed-seed fuzzing of RX response handling: random and mutated
/// responses (ids, offsets, flags, statuses, producer indices) mixed with
/// well-formed packets. Nothing may panic or read out of bounds; buffers
/// are never lost; every delivered packet is within limits; at the end
/// every grant is revoked.
#[test]
fn fuzz_rx_responses() {
    for seed in 1..=20u64 {
        let mut r = rig(64);
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut delivered = 0u64;
        for _ in 0..2000 {
            match rng.below(6) {
                0 | 1 => {
                    let len = rng.below(9000) as usize;
                    let p = packet(&mut rng, len);
                    let chunk = 1 + rng.below(4096) as usize;
                    let _ = r.be.deliver(&p, chunk, &[], rng.next() as u16 & 0x1f);
                }
                2 | 3 => {
                    let n = 1 + rng.below(8);
                    for _ in 0..n {
                        let mutate = rng.next();
                        let raw = rng.next();
                        let _ = r.be.raw_rx(|q| {
                            let mut rsp = NetifRxResponse {
                                id: q.id,
                                offset: (raw & 0xfff) as u16,
                                flags: (raw >> 16) as u16 & 0x1f,
                                status: ((raw >> 32) % 5000) as i16 - 100,
                            };
                            match mutate % 4 {
                                0 => rsp.id = (raw >> 48) as u16,
                                1 => rsp.offset = (raw >> 20) as u16,
                                2 => rsp.flags = (raw >> 40) as u16,
                                _ => rsp.status = (raw >> 24) as i16,
                            }
                            rsp
                        });
                    }
                    r.be.rx.publish();
                }
                4 => {
                    if rng.below(10) == 0 {
                        r.be.rx.force_rsp_prod(rng.next() as u32);
                    }
                }
                _ => {
                    let _ = r.rx.poll(&mut r.stats, |p| {
                        assert!(p.data.len() <= MAX_PACKET);
                        delivered += 1;
                    });
                    let _ = r.rx.refill(&mut r.host, &mut r.stats);
                    assert!(r.rx.posted() <= 64);
                }
            }
        }
        assert_eq!(r.stats.rx_packets, delivered);
        // Buffers never leak: ring + posted + spare is all we granted.
        let mut stats = r.stats;
        let kept = r.rx.release(&mut r.host, &mut stats);
        let kept_tx = r.tx.release(&mut r.host, &mut stats);
        assert!(kept.is_empty() && kept_tx.is_empty());
        assert_eq!(stats.grants_active(), 0, "seed {seed}");
        assert!(r.host.xen.borrow().grants.is_empty(), "seed {seed}");
    }
}

/// Fuzz target `netfront-rx`: RX completions as a hostile netback could
/// write them (packets of any size and slot split, extra-info chains of
/// any length and type, raw responses with any id, offset, flags and
/// status, any producer index), shaped by `arbitrary`. Nothing panics,
/// delivered packets are within limits, buffers stay posted, and at the
/// end every grant is revoked.
#[test]
fn fuzz_netfront_rx() {
    use fuzzkit::{Arbitrary, Unstructured};
    fuzzkit::fuzz("netfront-rx", |u: &mut Unstructured<'_>| {
        let mut r = rig(u.int_in_range(1..=64)?);
        let target = r.rx.posted();
        for _ in 0..u.int_in_range(1..=30)? {
            match u.int_in_range(0..=4)? {
                0 => {
                    let len = *u.choose(&[0usize, 1, 60, 1514, 4097, 9000, 65549, 65550])?;
                    let p = vec![u8::arbitrary(u)?; len];
                    let chunk = u.int_in_range(1..=4096usize)?;
                    let extras: Vec<NetifExtraInfo> = (0..u.int_in_range(0..=6)?)
                        .map(|_| {
                            Ok(NetifExtraInfo {
                                kind: u.int_in_range(0..=6)?,
                                flags: u8::arbitrary(u)?,
                                u: <[u16; 3]>::arbitrary(u)?,
                            })
                        })
                        .collect::<fuzzkit::arbitrary::Result<_>>()?;
                    let _ = r.be.deliver(&p, chunk, &extras, u16::arbitrary(u)?);
                }
                1 => {
                    for _ in 0..u.int_in_range(1..=20)? {
                        let keep_id = bool::arbitrary(u)?;
                        let (id, offset, flags, status) = <(u16, u16, u16, i16)>::arbitrary(u)?;
                        let _ = r.be.raw_rx(|q| NetifRxResponse {
                            id: if keep_id { q.id } else { id },
                            offset,
                            flags,
                            status,
                        });
                    }
                    r.be.rx.publish();
                }
                2 => {
                    if u.ratio(1, 4)? {
                        r.be.rx.force_rsp_prod(u32::arbitrary(u)?);
                    }
                }
                _ => {
                    let _ = r.rx.poll(&mut r.stats, |p| assert!(p.data.len() <= MAX_PACKET));
                    let _ = r.rx.refill(&mut r.host, &mut r.stats);
                    assert!(r.rx.posted() <= target);
                }
            }
        }
        let mut stats = r.stats;
        let kept = r.rx.release(&mut r.host, &mut stats);
        let kept_tx = r.tx.release(&mut r.host, &mut stats);
        assert!(kept.is_empty() && kept_tx.is_empty());
        assert_eq!(stats.grants_active(), 0);
        Ok(())
    });
}

/// Fuzz target `netfront-tx`: TX completions as a hostile netback could
/// write them (any id, repeated or unknown, status NULL or any, slots
/// skipped, any producer index) under packets of any size. Nothing
/// panics; once the backend answers honestly again (and the ring was not
/// corrupted), every id comes back: `send` is never busy for ever.
#[test]
fn fuzz_netfront_tx() {
    use fuzzkit::{Arbitrary, Unstructured};
    use hypercall::abi::netif::{rsp, NetifTxResponse};
    fuzzkit::fuzz("netfront-tx", |u: &mut Unstructured<'_>| {
        let mut r = rig(8);
        let mut corrupted = false;
        for _ in 0..u.int_in_range(1..=30)? {
            match u.int_in_range(0..=3)? {
                0 => {
                    let len = *u.choose(&[0usize, 1, 60, 4096, 4097, 9000, 65535, 65536])?;
                    let _ = r.tx.send(&mut r.host, &mut r.stats, &vec![9; len]);
                    r.tx.flush(&mut r.host, &mut r.stats);
                }
                1 => {
                    while let Some(req) = r.be.tx.take_request() {
                        for _ in 0..u.int_in_range(0..=2)? {
                            let id = if bool::arbitrary(u)? { req.id } else { u16::arbitrary(u)? };
                            let status = match u.int_in_range(0..=3)? {
                                0 => rsp::NULL,
                                1 => i16::arbitrary(u)?,
                                _ => rsp::OKAY,
                            };
                            r.be.tx.push_response(&NetifTxResponse { id, status });
                        }
                    }
                    r.be.tx.publish();
                }
                2 => {
                    if u.ratio(1, 6)? {
                        r.be.tx.force_rsp_prod(u32::arbitrary(u)?);
                        corrupted = true;
                    }
                }
                _ => {
                    if r.tx.reclaim(&mut r.stats, true).is_err() {
                        corrupted = true;
                    }
                }
            }
            assert!(r.tx.in_flight() <= 256);
        }
        if !corrupted {
            // Honest from now on: everything in flight is answered once.
            r.tx.flush(&mut r.host, &mut r.stats);
            // (Request slots an over-answering backend overwrote hold
            // garbage: answered by id, their pages are not read.)
            while let Some(req) = r.be.tx.take_request() {
                r.be.tx.push_response(&NetifTxResponse { id: req.id, status: rsp::OKAY });
            }
            r.be.tx.publish();
            if r.tx.reclaim(&mut r.stats, true).is_ok() && r.tx.in_flight() == 0 {
                r.tx.send(&mut r.host, &mut r.stats, &[1; 60]).expect("an id leaked");
            }
        }
        Ok(())
    });
}

#[test]
fn release_revokes_every_grant_and_keeps_mapped_pages() {
    let mut r = rig(16);
    r.tx.send(&mut r.host, &mut r.stats, &[1; 5000]).unwrap();
    r.tx.flush(&mut r.host, &mut r.stats);
    // The backend still maps one RX buffer.
    let mapped = *r.host.xen.borrow().grants.keys().last().unwrap();
    r.host.xen.borrow_mut().mapped.insert(mapped);
    let mut stats = r.stats;
    let made = stats.grants_made;
    let mut kept = r.rx.release(&mut r.host, &mut stats);
    kept.extend(r.tx.release(&mut r.host, &mut stats));
    assert_eq!(kept.len(), 1);
    assert_eq!((stats.grants_revoked, stats.grants_kept), (made - 1, 1));
    assert_eq!(r.host.xen.borrow().grants.len(), 1);
}

#[test]
fn macs_parse() {
    assert_eq!(parse_mac("00:16:3e:0a:bb:FF"), Some([0, 0x16, 0x3e, 0x0a, 0xbb, 0xff]));
    assert_eq!(parse_mac("00:16:3e:0a:bb"), None);
    assert_eq!(parse_mac("00:16:3e:0a:bb:ff:00"), None);
    assert_eq!(parse_mac("0:16:3e:0a:bb:ff"), None);
}

mod handshake {
    use super::*;
    use crate::xenbus::device::{self, XenbusState};
    use crate::xenbus::Bus;
    use std::time::Duration;
    use xenstore_client::fake::Harness;
    use xenstore_client::{Access, Perm, Store, Transport};

    fn put(h: &Harness, path: &str, value: &[u8], guest_owns: bool) {
        let mut fake = h.fake();
        let guest = fake.guest();
        let path = if path.starts_with('/') { path.to_string() } else { fake.abs(path) };
        fake.write_as(DomId(0), &path, value).unwrap();
        let perms = if guest_owns {
            vec![Perm::new(guest, Access::None)]
        } else {
            vec![Perm::new(DomId(0), Access::None), Perm::new(guest, Access::Read)]
        };
        fake.set_perms_as(DomId(0), &path, &perms).unwrap();
    }

    fn vif(split: bool) -> (Harness, String) {
        let h = Harness::new(DomId(9));
        let be = "/local/domain/0/backend/vif/9/0".to_string();
        put(&h, "device/vif/0/backend", be.as_bytes(), true);
        put(&h, "device/vif/0/backend-id", b"0", true);
        put(&h, "device/vif/0/mac", b"00:16:3e:12:34:56", true);
        put(&h, "device/vif/0/state", b"1", true);
        put(&h, &format!("{be}/feature-rx-copy"), b"1", false);
        put(
            &h,
            &format!("{be}/feature-split-event-channels"),
            if split { b"1" } else { b"0" },
            false,
        );
        put(&h, &format!("{be}/multi-queue-max-queues"), b"2", false);
        // The split backend also takes GSO from us; the other does not.
        if split {
            put(&h, &format!("{be}/feature-sg"), b"1", false);
            put(&h, &format!("{be}/feature-gso-tcpv4"), b"1", false);
        }
        // The backend is already Connected: single-threaded, it cannot
        // answer while the frontend waits.
        put(&h, &format!("{be}/state"), b"4", false);
        (h, be)
    }

    #[test]
    fn connect_publishes_rings_channels_and_features() {
        for split in [false, true] {
            let (h, _) = vif(split);
            let mut bus = Bus::new(h.client());
            let mut host = FakeHost::default();
            let dev = device::describe(&mut bus, "vif", "0").unwrap();
            let cfg = Config { max_queues: 1, ..cfg() };
            let nf = Netfront::connect(&mut bus, &mut host, &dev, &cfg).unwrap();
            assert_eq!(nf.mac, [0, 0x16, 0x3e, 0x12, 0x34, 0x56]);
            assert_eq!((nf.mtu, nf.split, nf.queues_offered), (1500, split, 2));
            assert_eq!(nf.rx_posted(), 32);
            let rd = |bus: &mut Bus<_>, k: &str| {
                bus.xs.read_string(&format!("device/vif/0/{k}")).unwrap()
            };
            assert_eq!(rd(&mut bus, "request-rx-copy"), "1");
            assert_eq!(rd(&mut bus, "feature-rx-notify"), "1");
            // Offloads offered on RX; used on TX as far as the backend says.
            assert_eq!(rd(&mut bus, "feature-sg"), "1");
            assert_eq!(rd(&mut bus, "feature-gso-tcpv4"), "1");
            assert_eq!(rd(&mut bus, "feature-no-csum-offload"), "0");
            let o = nf.offloads;
            assert_eq!((o.rx_csum, o.rx_gso, o.tx_csum, o.tx_gso), (true, true, true, split));
            assert_eq!(rd(&mut bus, "state"), "4");
            let tx_ref: u32 = rd(&mut bus, "tx-ring-ref").parse().unwrap();
            assert!(host.xen.borrow().grants.contains_key(&tx_ref));
            if split {
                assert_ne!(rd(&mut bus, "event-channel-tx"), rd(&mut bus, "event-channel-rx"));
                assert_eq!(host.xen.borrow().open_ports.len(), 2);
            } else {
                assert!(bus.xs.read_opt("device/vif/0/event-channel").unwrap().is_some());
                assert_eq!(host.xen.borrow().open_ports.len(), 1);
            }
            // Disconnect: the backend is not there to close, so the wait
            // times out; every grant and port goes anyway.
            put(&h, "/local/domain/0/backend/vif/9/0/state", b"6", false);
            let (stats, kept) = nf.disconnect(&mut bus, &mut host, Duration::from_millis(300));
            assert!(kept.is_empty());
            assert_eq!(stats.grants_active(), 0);
            assert_eq!(stats.grants_revoked, 2 + 32);
            assert!(host.xen.borrow().grants.is_empty());
            assert!(host.xen.borrow().open_ports.is_empty());
            assert_eq!(device::backend_state(&mut bus, &dev).unwrap(), Some(XenbusState::Closed));
            assert_eq!(rd(&mut bus, "state"), "6");
        }
    }

    #[test]
    fn without_offloads_the_frontend_says_so() {
        let (h, _) = vif(true);
        let mut bus = Bus::new(h.client());
        let mut host = FakeHost::default();
        let dev = device::describe(&mut bus, "vif", "0").unwrap();
        let cfg = Config { max_queues: 1, offload: false, ..cfg() };
        let nf = Netfront::connect(&mut bus, &mut host, &dev, &cfg).unwrap();
        let rd =
            |bus: &mut Bus<_>, k: &str| bus.xs.read_string(&format!("device/vif/0/{k}")).unwrap();
        assert_eq!(rd(&mut bus, "feature-no-csum-offload"), "1");
        assert_eq!(rd(&mut bus, "feature-gso-tcpv4"), "0");
        assert_eq!(nf.offloads, super::super::connect::Offloads::default());
    }

    fn cfg() -> Config {
        Config {
            rx_buffers: 32,
            tx_buffers: 64,
            timeout: Duration::from_millis(500),
            max_queues: 4,
            offload: true,
            rx_batch_max: 1,
        }
    }

    /// An Ethernet + IPv4 + TCP frame from `sport` to port 7.
    fn tcp_frame(sport: u16, payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20 + payload];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = 6;
        f[14 + 12..14 + 16].copy_from_slice(&[192, 0, 2, 2]);
        f[14 + 16..14 + 20].copy_from_slice(&[192, 0, 2, 1]);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&7u16.to_be_bytes());
        for (k, b) in f[54..].iter_mut().enumerate() {
            *b = (k as u16 ^ sport) as u8;
        }
        f
    }

    /// A connected single-queue vif and the fake backend on its rings.
    fn connected(h: &Harness, host: &mut FakeHost) -> (Netfront<FakeHost>, FakeBackend) {
        let mut bus = Bus::new(h.client());
        let dev = device::describe(&mut bus, "vif", "0").unwrap();
        let cfg = Config { max_queues: 1, ..cfg() };
        let nf = Netfront::connect(&mut bus, host, &dev, &cfg).unwrap();
        let (t, r) = nf.queues()[0].ring_refs();
        let be = FakeBackend::attach(host, t, r);
        (nf, be)
    }

    /// Issue 18 item 4: faults were only counted, for ever. Now a vif
    /// whose backend keeps faulting is declared broken and left alone.
    #[test]
    fn a_vif_that_keeps_faulting_is_declared_broken() {
        use crate::netfront::BROKEN_AFTER_FAULTS;
        let (h, _) = vif(false);
        let mut host = FakeHost::default();
        let (mut nf, mut be) = connected(&h, &mut host);
        let mut faults = 0;
        while faults < BROKEN_AFTER_FAULTS {
            assert!(!nf.is_broken());
            assert!(be.raw_rx(|q| NetifRxResponse {
                id: q.id ^ 1,
                offset: 0,
                flags: 0,
                status: 9
            }));
            be.rx.publish();
            let _ = nf.poll_rx(&mut host, |_| panic!("a bad slot delivered"));
            faults += 1;
            assert_eq!(nf.stats.backend_errors(), faults);
        }
        assert!(nf.is_broken());
        assert_eq!(nf.send(&mut host, &[0; 60]), Err(TxError::Broken));
        // Left alone: what the backend publishes now is not even read.
        assert!(be.deliver(&[1; 60], 4096, &[], 0));
        let _ = nf.poll_rx(&mut host, |_| panic!("a broken vif delivered"));
        assert_eq!(nf.stats.rx_packets, 0);
    }

    /// Issue 18 item 4: TX slots a backend never answers kept `send` busy
    /// with no watchdog. Now a stall is a fault and the vif is broken.
    #[test]
    fn the_tx_watchdog_declares_a_stalled_vif_broken() {
        use crate::netfront::TX_STALL_NS;
        let (h, _) = vif(false);
        let mut host = FakeHost::default();
        let (mut nf, mut be) = connected(&h, &mut host);
        // Answered traffic never trips it, however long it runs.
        let mut now = 1;
        for _ in 0..5 {
            nf.send(&mut host, &[3; 60]).unwrap();
            nf.flush(&mut host);
            nf.watchdog(now);
            now += TX_STALL_NS;
            assert_eq!(be.take_tx().len(), 1);
            nf.reclaim_tx().unwrap();
            nf.watchdog(now);
        }
        assert!(!nf.is_broken());
        // Now the backend stops answering.
        nf.send(&mut host, &[4; 60]).unwrap();
        nf.flush(&mut host);
        nf.watchdog(now);
        nf.watchdog(now + TX_STALL_NS / 2);
        assert!(!nf.is_broken());
        nf.watchdog(now + TX_STALL_NS);
        assert!(nf.is_broken());
        assert_eq!(nf.stats.tx_stalled, 1);
    }

    /// Fuzz target `net-negotiation`: whatever netback writes for `mtu`,
    /// `multi-queue-max-queues`, the feature flags and the frontend's
    /// `mac`, connecting answers (a vif or an error) without a panic, and
    /// a vif's figures are within bounds.
    #[test]
    fn fuzz_net_negotiation() {
        use crate::netfront::connect::MAX_QUEUES;
        use fuzzkit::{Arbitrary, Unstructured};
        fuzzkit::fuzz_n("net-negotiation", 200, |u: &mut Unstructured<'_>| {
            let value = |u: &mut Unstructured<'_>| -> fuzzkit::arbitrary::Result<Vec<u8>> {
                Ok(match u.int_in_range(0..=4)? {
                    0 => u64::arbitrary(u)?.to_string().into_bytes(),
                    1 => u.int_in_range(0..=70_000u32)?.to_string().into_bytes(),
                    2 => b"1".to_vec(),
                    3 => b"".to_vec(),
                    _ => Vec::<u8>::arbitrary(u)?,
                })
            };
            let (h, be) = vif(bool::arbitrary(u)?);
            for key in ["mtu", "multi-queue-max-queues", "feature-rx-copy", "feature-ctrl-ring"] {
                if bool::arbitrary(u)? {
                    put(&h, &format!("{be}/{key}"), &value(u)?, false);
                }
            }
            if u.ratio(1, 4)? {
                put(&h, "device/vif/0/mac", &value(u)?, true);
            }
            let mut bus = Bus::new(h.client());
            let mut host = FakeHost::default();
            let dev = device::describe(&mut bus, "vif", "0").unwrap();
            let cfg = Config { timeout: Duration::from_millis(50), ..cfg() };
            if let Ok(nf) = Netfront::connect(&mut bus, &mut host, &dev, &cfg) {
                assert!((68..=65535).contains(&nf.mtu));
                assert!(!nf.queues().is_empty() && nf.queues().len() as u32 <= MAX_QUEUES);
                let (stats, kept) = nf.abandon(&mut host);
                assert!(kept.is_empty());
                assert_eq!(stats.grants_active(), 0);
            }
            Ok(())
        });
    }

    #[test]
    fn multi_queue_publishes_each_queue_and_spreads_flows() {
        for split in [false, true] {
            let (h, be) = vif(split);
            let mut bus = Bus::new(h.client());
            let mut host = FakeHost::default();
            let dev = device::describe(&mut bus, "vif", "0").unwrap();
            let mut nf = Netfront::connect(&mut bus, &mut host, &dev, &cfg()).unwrap();
            assert_eq!(nf.queues().len(), 2);
            let rd = |bus: &mut Bus<_>, k: &str| {
                bus.xs.read_string(&format!("device/vif/0/{k}")).unwrap()
            };
            assert_eq!(rd(&mut bus, "multi-queue-num-queues"), "2");
            assert!(bus.xs.read_opt("device/vif/0/tx-ring-ref").unwrap().is_none());
            assert!(bus.xs.read_opt("device/vif/0/event-channel").unwrap().is_none());
            let mut backends = Vec::new();
            for (i, q) in nf.queues().iter().enumerate() {
                let (t, r) = q.ring_refs();
                assert_eq!(rd(&mut bus, &format!("queue-{i}/tx-ring-ref")), t.0.to_string());
                assert_eq!(rd(&mut bus, &format!("queue-{i}/rx-ring-ref")), r.0.to_string());
                let (tp, rp) = q.ports();
                if split {
                    assert_eq!(
                        rd(&mut bus, &format!("queue-{i}/event-channel-tx")),
                        tp.0.to_string()
                    );
                    assert_eq!(
                        rd(&mut bus, &format!("queue-{i}/event-channel-rx")),
                        rp.0.to_string()
                    );
                } else {
                    assert_eq!(rd(&mut bus, &format!("queue-{i}/event-channel")), tp.0.to_string());
                }
                assert_eq!(q.rx_posted(), 32);
                backends.push(FakeBackend::attach(&host, t, r));
            }
            assert_eq!(host.xen.borrow().open_ports.len(), if split { 4 } else { 2 });

            // TX: 16 flows, 3 packets each (one multi-slot); each flow stays
            // on one queue, in order, and both queues carry some.
            let mut sent = Vec::new();
            for round in 0..3 {
                for sport in 40000..40016u16 {
                    let f = tcp_frame(sport, if round == 1 { 6000 } else { 100 + round });
                    nf.send(&mut host, &f).unwrap();
                    sent.push(f);
                }
                // An ARP frame goes to queue 0.
                let mut arp = vec![0u8; 42];
                arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
                nf.send(&mut host, &arp).unwrap();
                nf.flush(&mut host);
            }
            let got: Vec<Vec<Vec<u8>>> = backends.iter_mut().map(|b| b.take_tx()).collect();
            assert!(got.iter().all(|g| g.len() > 3), "both queues carry flows");
            assert_eq!(got[0].iter().filter(|p| p[12..14] == [8, 6]).count(), 3);
            for sport in 40000..40016u16 {
                let mine = |p: &&Vec<u8>| p.len() > 54 && p[34..36] == sport.to_be_bytes();
                let on: Vec<usize> = (0..2).filter(|&q| got[q].iter().any(|p| mine(&p))).collect();
                assert_eq!(on.len(), 1, "flow {sport} on one queue");
                let want: Vec<&Vec<u8>> = sent.iter().filter(mine).collect();
                let have: Vec<&Vec<u8>> = got[on[0]].iter().filter(mine).collect();
                assert_eq!(want, have, "flow {sport} in order, byte for byte");
            }
            nf.reclaim_tx().unwrap();
            assert_eq!(nf.tx_in_flight(), 0);
            let per_queue: Vec<u64> = nf.queues().iter().map(|q| q.tx_packets).collect();
            assert_eq!(per_queue, vec![got[0].len() as u64, got[1].len() as u64]);

            // RX: packets on both queues all arrive; buffers are posted again.
            let mut rng = Rng(7);
            let mut want = Vec::new();
            for k in 0..40 {
                let p = packet(&mut rng, 60 + k * 37);
                assert!(backends[k % 2].deliver(&p, 4096, &[], 0));
                want.push(p);
            }
            let mut got = Vec::new();
            nf.poll_rx(&mut host, |p| got.push(p.data)).unwrap();
            want.sort();
            got.sort();
            assert_eq!(got, want);
            assert!(nf.queues().iter().all(|q| q.rx_packets == 20 && q.rx_posted() == 32));

            put(&h, &format!("{be}/state"), b"6", false);
            let (stats, kept) = nf.disconnect(&mut bus, &mut host, Duration::from_millis(300));
            assert!(kept.is_empty());
            assert_eq!(stats.grants_active(), 0);
            assert!(host.xen.borrow().grants.is_empty());
            assert!(host.xen.borrow().open_ports.is_empty());
        }
    }

    /// RX interrupt moderation (rx.rs `Batch`): a stream's pushes share
    /// events as the ask doubles, up to the cap; fewer than asked (the
    /// sender waits for us) ends in the caller's hold and back at one;
    /// request/response stays at an event per packet. Every packet arrives,
    /// byte for byte.
    #[test]
    fn rx_events_wait_for_a_batch_while_the_backend_streams() {
        let (h, _) = vif(false);
        let mut bus = Bus::new(h.client());
        let mut host = FakeHost::default();
        let dev = device::describe(&mut bus, "vif", "0").unwrap();
        let c = Config { max_queues: 1, rx_batch_max: 8, ..cfg() };
        let mut nf = Netfront::connect(&mut bus, &mut host, &dev, &c).unwrap();
        let (t, r) = nf.queues()[0].ring_refs();
        let mut be = FakeBackend::attach(&host, t, r);
        let mut rng = Rng(5);
        let mut sent = Vec::new();
        let mut got = Vec::new();
        let mut push = |be: &mut FakeBackend, n: usize| {
            for _ in 0..n {
                let p = packet(&mut rng, 100);
                assert!(be.deliver(&p, 4096, &[], 0));
                sent.push(p);
            }
        };
        // Three pushes at one event (rsp_event stays at the first).
        push(&mut be, 3);
        assert_eq!(be.rx_events, 1);
        assert!(!nf.rx_batching(None));
        nf.poll_rx(&mut host, |p| got.push(p.data)).unwrap();
        assert_eq!(nf.rx_batch(0).unwrap().ask, 2, "3 found, 1 asked: doubled");
        assert!(nf.rx_batching(None) && nf.rx_batching(Some(0)));
        // The next event comes with the second push only.
        push(&mut be, 1);
        assert_eq!(be.rx_events, 1);
        push(&mut be, 1);
        assert_eq!(be.rx_events, 2);
        nf.poll_rx(&mut host, |p| got.push(p.data)).unwrap();
        assert_eq!(nf.rx_batch(0).unwrap().ask, 2, "as many as asked: kept");
        // Streaming on: 4, then 8, then capped at 8.
        for want in [4, 8, 8] {
            push(&mut be, 9);
            nf.poll_rx(&mut host, |p| got.push(p.data)).unwrap();
            assert_eq!(nf.rx_batch(0).unwrap().ask, want);
        }
        // One push and the sender waits: no event; the caller's hold ends
        // the batch, which finds it waiting.
        let events = be.rx_events;
        push(&mut be, 1);
        assert_eq!(be.rx_events, events, "1 of 8: no event");
        assert!(nf.rx_end_batch(None));
        assert!(!nf.rx_batching(None));
        nf.poll_rx(&mut host, |p| got.push(p.data)).unwrap();
        assert_eq!(nf.rx_batch(0).unwrap().ask, 1);
        // Request/response: an event for every packet, the ask stays 1.
        for k in 1..=5 {
            push(&mut be, 1);
            assert_eq!(be.rx_events, events + k);
            nf.poll_rx(&mut host, |p| got.push(p.data)).unwrap();
            assert_eq!(nf.rx_batch(0).unwrap().ask, 1);
        }
        // Fewer found than asked takes the ask down to what came.
        push(&mut be, 9);
        nf.poll_rx(&mut host, |p| got.push(p.data)).unwrap();
        assert_eq!(nf.rx_batch(0).unwrap().ask, 2);
        push(&mut be, 9);
        nf.poll_rx(&mut host, |p| got.push(p.data)).unwrap();
        assert_eq!(nf.rx_batch(0).unwrap().ask, 4);
        push(&mut be, 3);
        nf.poll_rx(&mut host, |p| got.push(p.data)).unwrap();
        assert_eq!(nf.rx_batch(0).unwrap().ask, 3);
        assert_eq!(got, sent, "every packet, in order, byte for byte");
        // The cap is at most half the buffers posted.
        let c = Config { rx_batch_max: 1000, ..c };
        let (h2, _) = vif(false);
        let mut bus2 = Bus::new(h2.client());
        let mut host2 = FakeHost::default();
        let dev2 = device::describe(&mut bus2, "vif", "0").unwrap();
        let nf2 = Netfront::connect(&mut bus2, &mut host2, &dev2, &c).unwrap();
        assert_eq!(nf2.rx_batch(0).unwrap().max, 16);
    }

    /// A network shard owns one queue (docs/smp.md): it takes only that
    /// queue's RX, sends every packet on it whatever the flow (ARP too),
    /// publishes only it, and the room it counted beforehand is exactly
    /// what the queue then accepts.
    #[test]
    fn a_shard_owns_one_queue_both_ways_and_its_counted_room_holds() {
        let (h, be) = vif(true);
        let mut bus = Bus::new(h.client());
        let mut host = FakeHost::default();
        let dev = device::describe(&mut bus, "vif", "0").unwrap();
        let mut nf = Netfront::connect(&mut bus, &mut host, &dev, &cfg()).unwrap();
        let mut backends: Vec<FakeBackend> = nf
            .queues()
            .iter()
            .map(|q| {
                let (t, r) = q.ring_refs();
                FakeBackend::attach(&host, t, r)
            })
            .collect();
        let mut rng = Rng(11);
        for k in 0..10 {
            let p = packet(&mut rng, 80 + k);
            assert!(backends[k % 2].deliver(&p, 4096, &[], 0));
        }
        let mut got = Vec::new();
        nf.poll_rx_queues(Some(1), &mut host, |p| got.push(p.data)).unwrap();
        assert_eq!(got.len(), 5, "only queue 1's packets");
        assert_eq!(nf.queues()[0].rx_packets, 0);
        got.clear();
        nf.poll_rx_queues(Some(0), &mut host, |p| got.push(p.data)).unwrap();
        assert_eq!(got.len(), 5);
        // A queue the vif does not have: nothing, and no panic.
        nf.poll_rx_queues(Some(7), &mut host, |_| panic!("no queue 7")).unwrap();
        assert_eq!(
            nf.send_on(Some(7), &mut host, &tcp_frame(1, 10), Default::default()),
            Err(TxError::NoQueue)
        );
        assert_eq!(nf.tx_room_on(Some(7), 100), TxRoom::default());

        // Counted room, spent packet by packet: 64 buffers per queue, big
        // GSO packets of 16 pages and small ones, every one taken is sent.
        let mut room = nf.tx_room_on(Some(1), 65_535);
        assert!(room.fits(65_535, true));
        let gso = TxOffload { csum_blank: true, gso_size: Some(1460) };
        // ARP, which a flow's hash would put on queue 0, goes on queue 1.
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(room.take(arp.len(), false));
        nf.send_on(Some(1), &mut host, &arp, TxOffload::default()).unwrap();
        let (mut sent, mut sport) = (1, 40000u16);
        loop {
            let big = sent % 3 == 0;
            let f = tcp_frame(sport, if big { 60_000 } else { 200 });
            let off = if big { gso } else { TxOffload::default() };
            if !room.take(f.len(), off.gso_size.is_some()) {
                break;
            }
            nf.send_on(Some(1), &mut host, &f, off).unwrap();
            sent += 1;
            sport += 1;
        }
        // The room is spent: the queue is full for a big packet.
        let big = tcp_frame(sport, 60_000);
        assert_eq!(nf.send_on(Some(1), &mut host, &big, gso), Err(TxError::Busy));
        nf.flush_queues(Some(1), &mut host);
        assert!(backends[0].take_tx().is_empty(), "queue 0 carried nothing");
        let on1 = backends[1].take_tx();
        assert_eq!(on1.len(), sent);
        assert!(sent > 5, "{sent}");
        assert_eq!(on1[0], arp);
        nf.reclaim_tx_queues(Some(1)).unwrap();
        assert_eq!(nf.tx_in_flight(), 0);
        put(&h, &format!("{be}/state"), b"6", false);
        let (stats, kept) = nf.disconnect(&mut bus, &mut host, Duration::from_millis(300));
        assert!(kept.is_empty());
        assert_eq!(stats.grants_active(), 0);
    }

    /// A frame from dom0 (192.0.2.1:`sport`) to the guest (192.0.2.3:7).
    fn from_dom0(proto: u8, sport: u16) -> Vec<u8> {
        let mut f = tcp_frame(sport, 10);
        f[14 + 9] = proto;
        f[14 + 12..14 + 16].copy_from_slice(&[192, 0, 2, 1]);
        f[14 + 16..14 + 20].copy_from_slice(&[192, 0, 2, 3]);
        f
    }

    fn ctrl_vif(split: bool) -> (Harness, String) {
        let (h, be) = vif(split);
        put(&h, &format!("{be}/feature-ctrl-ring"), b"1", false);
        (h, be)
    }

    /// Connects a 2-queue vif with a control ring, and the fake netback's
    /// end of that ring.
    fn ctrl_rig(h: &Harness) -> (Bus<impl Transport + '_>, FakeHost, Netfront<FakeHost>, FakeCtrl) {
        let mut bus = Bus::new(h.client());
        let mut host = FakeHost::default();
        let dev = device::describe(&mut bus, "vif", "0").unwrap();
        let nf = Netfront::connect(&mut bus, &mut host, &dev, &cfg()).unwrap();
        let (gref, _) = nf.ctrl_ring().expect("a control ring");
        let ctrl = FakeCtrl::attach(&host, gref, 2);
        (bus, host, nf, ctrl)
    }

    fn close_and_check<T: Transport>(
        h: &Harness,
        bus: &mut Bus<T>,
        host: &mut FakeHost,
        nf: Netfront<FakeHost>,
    ) {
        put(h, "/local/domain/0/backend/vif/9/0/state", b"6", false);
        let (stats, kept) = nf.disconnect(bus, host, Duration::from_millis(300));
        assert!(kept.is_empty());
        assert_eq!(stats.grants_active(), 0);
        assert!(host.xen.borrow().grants.is_empty(), "every grant revoked");
        assert!(host.xen.borrow().open_ports.is_empty(), "every port closed");
    }

    #[test]
    fn rx_steering_through_the_control_ring_matches_netback() {
        let (h, _) = ctrl_vif(true);
        let (mut bus, mut host, mut nf, mut ctrl) = ctrl_rig(&h);
        let (gref, port) = nf.ctrl_ring().unwrap();
        let rd =
            |bus: &mut Bus<_>, k: &str| bus.xs.read_string(&format!("device/vif/0/{k}")).unwrap();
        assert_eq!(rd(&mut bus, "ctrl-ring-ref"), gref.0.to_string());
        assert_eq!(rd(&mut bus, "event-channel-ctrl"), port.0.to_string());
        assert!(host.xen.borrow().open_ports.contains(&port.0));
        // Before: netback steers by itself.
        assert_eq!(ctrl.select_queue(&from_dom0(6, 40000)), None);
        assert_eq!(nf.rx_steering(), None);
        let grants_before = host.xen.borrow().grants.len();

        let s = nf.steer_rx(&mut host, || ctrl.serve() > 0).unwrap();
        use hypercall::abi::netif::ctrl_type as t;
        assert_eq!(
            ctrl.seen,
            vec![
                t::SET_HASH_ALGORITHM,
                t::GET_HASH_FLAGS,
                t::SET_HASH_KEY,
                t::GET_HASH_MAPPING_SIZE,
                t::SET_HASH_MAPPING_SIZE,
                t::SET_HASH_MAPPING,
                t::SET_HASH_FLAGS
            ]
        );
        assert_eq!(ctrl.key, RSS_KEY);
        assert_eq!((s.flags, s.table_size, s.queues), (WANTED_HASH_TYPES, 128, 2));
        assert_eq!((ctrl.flags, ctrl.size), (WANTED_HASH_TYPES, 128));
        assert_eq!(nf.rx_steering(), Some(s));
        // The key and table pages were revoked once answered.
        assert_eq!(host.xen.borrow().grants.len(), grants_before);

        // Netback's choice is ours for every kind of frame, and the flows
        // of dom0's (even) ephemeral ports spread over both queues.
        let mut per_queue = [0u32; 2];
        for k in 0..4000u16 {
            let p = 32768 + 2 * k;
            for proto in [6u8, 17, 1] {
                let f = from_dom0(proto, p);
                let theirs = ctrl.select_queue(&f).unwrap();
                assert_eq!(theirs as usize, s.queue(&f), "proto {proto} port {p}");
                if proto == 6 {
                    per_queue[theirs as usize] += 1;
                    assert_eq!(s.tcp4_queue([192, 0, 2, 1], [192, 0, 2, 3], p, 7), theirs as usize);
                }
            }
            let mut frag = from_dom0(6, p);
            frag[14 + 6] = 0x20;
            assert_eq!(ctrl.select_queue(&frag).unwrap() as usize, s.queue(&frag));
        }
        assert!(per_queue.iter().all(|&n| (1800..=2200).contains(&n)), "{per_queue:?}");
        let mut arp = from_dom0(6, 1);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(ctrl.select_queue(&arp), Some(0));
        assert_eq!(s.queue(&arp), 0);

        // Packets netback puts on the queue it picked arrive there.
        let mut backends: Vec<FakeBackend> = nf
            .queues()
            .iter()
            .map(|q| {
                let (t, r) = q.ring_refs();
                FakeBackend::attach(&host, t, r)
            })
            .collect();
        let mut want = [0u64; 2];
        for p in 50000..50020u16 {
            let f = from_dom0(6, p);
            let q = ctrl.select_queue(&f).unwrap() as usize;
            assert!(backends[q].deliver(&f, 4096, &[], 0));
            want[q] += 1;
        }
        nf.poll_rx(&mut host, |_| {}).unwrap();
        let got: Vec<u64> = nf.queues().iter().map(|q| q.rx_packets).collect();
        assert_eq!(got, want.to_vec());
        close_and_check(&h, &mut bus, &mut host, nf);
    }

    #[test]
    fn without_a_control_ring_the_vif_works_as_before() {
        // The backend does not offer one.
        let (h, _) = vif(true);
        let mut bus = Bus::new(h.client());
        let mut host = FakeHost::default();
        let dev = device::describe(&mut bus, "vif", "0").unwrap();
        let mut nf = Netfront::connect(&mut bus, &mut host, &dev, &cfg()).unwrap();
        assert!(nf.ctrl_ring().is_none());
        assert!(bus.xs.read_opt("device/vif/0/ctrl-ring-ref").unwrap().is_none());
        assert!(bus.xs.read_opt("device/vif/0/event-channel-ctrl").unwrap().is_none());
        assert_eq!(
            nf.steer_rx(&mut host, || panic!("nothing to wait for")),
            Err(CtrlError::NoRing)
        );
        assert_eq!(nf.queues().len(), 2);
        close_and_check(&h, &mut bus, &mut host, nf);
        // One queue: nothing to steer, no ring even if offered.
        let (h, _) = ctrl_vif(false);
        let mut bus = Bus::new(h.client());
        let mut host = FakeHost::default();
        let dev = device::describe(&mut bus, "vif", "0").unwrap();
        let cfg1 = Config { max_queues: 1, ..cfg() };
        let nf = Netfront::connect(&mut bus, &mut host, &dev, &cfg1).unwrap();
        assert!(nf.ctrl_ring().is_none());
        assert!(bus.xs.read_opt("device/vif/0/ctrl-ring-ref").unwrap().is_none());
        close_and_check(&h, &mut bus, &mut host, nf);
    }

    #[test]
    fn smaller_tables_no_table_and_fewer_hash_types_are_followed() {
        for mode in [
            CtrlMode::MappingSize(16),
            CtrlMode::MappingSize(0),
            CtrlMode::MappingSize(1000),
            CtrlMode::Flags(hypercall::abi::netif::hash_type::IPV4_TCP),
            CtrlMode::Flags(hypercall::abi::netif::hash_type::IPV4 | 0x100),
        ] {
            let (h, _) = ctrl_vif(true);
            let (mut bus, mut host, mut nf, mut ctrl) = ctrl_rig(&h);
            ctrl.mode = mode;
            let s = nf.steer_rx(&mut host, || ctrl.serve() > 0).unwrap();
            match mode {
                CtrlMode::MappingSize(n) => assert_eq!(s.table_size, n.min(128), "{mode:?}"),
                CtrlMode::Flags(f) => assert_eq!(s.flags, f & WANTED_HASH_TYPES, "{mode:?}"),
                _ => unreachable!(),
            }
            let mut used = [false; 2];
            for p in 0..2000u16 {
                for proto in [6u8, 17] {
                    // Other hosts too: an address-only hash cannot tell
                    // one host's flows apart.
                    let mut f = from_dom0(proto, 30000 + 3 * p);
                    f[14 + 15] = p as u8;
                    let q = ctrl.select_queue(&f).unwrap();
                    assert_eq!(q as usize, s.queue(&f), "{mode:?} port {p}");
                    used[q as usize] = true;
                }
            }
            assert!(used[0] && used[1], "{mode:?}");
            close_and_check(&h, &mut bus, &mut host, nf);
        }
    }

    #[test]
    fn a_refusing_or_broken_control_backend_is_an_error_not_a_panic() {
        use hypercall::abi::netif::{ctrl_status as st, ctrl_type as t, hash_algorithm};
        for mode in [
            CtrlMode::Refuse(t::SET_HASH_ALGORITHM, st::NOT_SUPPORTED),
            CtrlMode::Refuse(t::SET_HASH_KEY, st::INVALID_PARAMETER),
            CtrlMode::Refuse(t::SET_HASH_MAPPING, st::BUFFER_OVERFLOW),
            CtrlMode::Refuse(t::SET_HASH_FLAGS, 0xdead),
            CtrlMode::Flags(0x100),
            CtrlMode::WrongId,
            CtrlMode::Silent,
            CtrlMode::WildProducer,
        ] {
            let (h, _) = ctrl_vif(true);
            let (mut bus, mut host, mut nf, mut ctrl) = ctrl_rig(&h);
            ctrl.mode = mode;
            let mut waits = 0;
            let err = nf
                .steer_rx(&mut host, || {
                    // Gives up after 5 waits with nothing answered.
                    ctrl.serve() > 0 || {
                        waits += 1;
                        waits < 5
                    }
                })
                .unwrap_err();
            let _ = err.to_string();
            assert_eq!(nf.rx_steering(), None, "{mode:?}");
            match mode {
                CtrlMode::Refuse(kind, status) => {
                    assert_eq!(err, CtrlError::Refused { request: kind, status }, "{mode:?}");
                    // Set back: netback steers by itself again.
                    assert_eq!(ctrl.alg, hash_algorithm::NONE, "{mode:?}");
                    if kind == t::SET_HASH_ALGORITHM {
                        assert_eq!(ctrl.seen, vec![t::SET_HASH_ALGORITHM]);
                    } else {
                        assert_eq!(ctrl.seen.last(), Some(&t::SET_HASH_ALGORITHM), "{mode:?}");
                    }
                }
                CtrlMode::Flags(_) => {
                    assert!(matches!(err, CtrlError::Unusable { .. }), "{err:?}");
                    assert_eq!(ctrl.alg, hash_algorithm::NONE);
                }
                CtrlMode::WrongId => {
                    assert!(matches!(err, CtrlError::BadResponse { .. }), "{err:?}");
                    // Out of step: nothing more was sent.
                    assert_eq!(ctrl.seen, vec![t::SET_HASH_ALGORITHM]);
                }
                CtrlMode::Silent => {
                    assert_eq!(err, CtrlError::Timeout { request: t::SET_HASH_ALGORITHM });
                    assert_eq!(waits, 5);
                }
                CtrlMode::WildProducer => assert!(matches!(err, CtrlError::Ring(_)), "{err:?}"),
                _ => unreachable!(),
            }
            // Asking again on a ring out of step sends nothing.
            if matches!(mode, CtrlMode::WrongId | CtrlMode::Silent | CtrlMode::WildProducer) {
                let n = ctrl.seen.len();
                assert!(nf.steer_rx(&mut host, || true).is_err());
                ctrl.serve();
                assert_eq!(ctrl.seen.len(), n, "{mode:?}");
            }
            // The data path is unaffected.
            let f = tcp_frame(40000, 100);
            nf.send(&mut host, &f).unwrap();
            nf.flush(&mut host);
            close_and_check(&h, &mut bus, &mut host, nf);
        }
    }

    #[test]
    fn queue_offers_are_bounded() {
        for (offer, want) in [(&b"0"[..], 1), (b"1", 1), (b"3", 3), (b"100000", 4), (b"x", 1)] {
            let (h, be) = vif(true);
            put(&h, &format!("{be}/multi-queue-max-queues"), offer, false);
            let mut bus = Bus::new(h.client());
            let mut host = FakeHost::default();
            let dev = device::describe(&mut bus, "vif", "0").unwrap();
            let nf = Netfront::connect(&mut bus, &mut host, &dev, &cfg()).unwrap();
            assert_eq!(nf.queues().len(), want, "offer {offer:?}");
            let multi = bus.xs.read_opt("device/vif/0/multi-queue-num-queues").unwrap();
            assert_eq!(multi.is_some(), want > 1);
        }
    }

    #[test]
    fn a_queue_that_cannot_be_made_undoes_the_others() {
        let (h, _) = vif(true);
        let mut bus = Bus::new(h.client());
        // Two ring pages and the first queue's 32 buffers would fit; the
        // second queue's rings do not.
        let mut host = FakeHost::default();
        host.xen.borrow_mut().pages_left = Some(3);
        let dev = device::describe(&mut bus, "vif", "0").unwrap();
        assert!(Netfront::connect(&mut bus, &mut host, &dev, &cfg()).is_err());
        assert!(host.xen.borrow().grants.is_empty());
        assert!(host.xen.borrow().open_ports.is_empty());
    }

    #[test]
    fn a_backend_without_rx_copy_is_refused_cleanly() {
        let (h, be) = vif(false);
        put(&h, &format!("{be}/feature-rx-copy"), b"0", false);
        let mut bus = Bus::new(h.client());
        let mut host = FakeHost::default();
        let dev = device::describe(&mut bus, "vif", "0").unwrap();
        let err = Netfront::connect(&mut bus, &mut host, &dev, &Config::default()).err().unwrap();
        assert!(err.to_string().contains("feature-rx-copy"));
        assert!(host.xen.borrow().grants.is_empty());
    }
}
