//! Fuzzing the reply side without cargo-fuzz (which needs nightly): fixed
//! seeds, a bounded number of inputs, plain `#[test]`s that CI runs.
//!
//! - the framing and reply parsers over random bytes and over mutations of
//!   valid replies: an answer (`Ok` or `Err`) for every input, no panic;
//! - structure-aware: valid headers with hostile payloads, for every
//!   request type;
//! - the whole client fed hostile streams through the ring: every call
//!   returns (no hang: the fake's clock runs to each deadline), no panic.
//!
//! `XS_FUZZ_ITERS` scales the effort (default 1: a few seconds in debug).

use hypercall::abi::xenstore::PAYLOAD_MAX;
use hypercall::DomId;
use std::time::Duration;
use xenstore_client::fake::Harness;
use xenstore_client::reply::{self, Reply};
use xenstore_client::testutil::Rng;
use xenstore_client::wire::{Header, HEADER_LEN};
use xenstore_client::{Error, Malformed, Message, MsgType, ReqId, Store, TxId, XsErrno};

fn scale() -> u64 {
    std::env::var("XS_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

/// Valid replies of every shape, to mutate.
fn corpus() -> Vec<Message> {
    let m = |ty: MsgType, p: &[u8]| Message::new(ty, ReqId(1), TxId(0), p.to_vec()).unwrap();
    vec![
        m(MsgType::Read, b"value"),
        m(MsgType::Read, b""),
        m(MsgType::Write, b"OK\0"),
        m(MsgType::Directory, b"a\0bb\0ccc\0"),
        m(MsgType::GetPerms, b"n0\0r7\0b12\0"),
        m(MsgType::TransactionStart, b"42\0"),
        m(MsgType::GetDomainPath, b"/local/domain/7\0"),
        m(MsgType::WatchEvent, b"device/vif\0tok\0"),
        m(MsgType::Error, b"ENOENT\0"),
        m(MsgType::Error, b"EAGAIN\0"),
    ]
}

fn mutate(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len() as u64) as usize;
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let n = rng.below(b.len() as u64) as usize;
                b.truncate(n);
            }
            2 => {
                let i = rng.below(b.len() as u64 + 1) as usize;
                b.insert(i, *rng.pick(&[0u8, b'/', 0xff, b'9', b'r']));
            }
            3 if !b.is_empty() => {
                let i = rng.below(b.len() as u64) as usize;
                b.remove(i);
            }
            4 if b.len() >= HEADER_LEN => {
                // A lying length.
                let len = *rng.pick(&[
                    0u32,
                    1,
                    (b.len() - HEADER_LEN) as u32 + 1,
                    PAYLOAD_MAX as u32,
                    PAYLOAD_MAX as u32 + 1,
                    u32::MAX,
                ]);
                b[12..16].copy_from_slice(&len.to_le_bytes());
            }
            5 if b.len() >= HEADER_LEN => {
                let ty = rng.below(32) as u32;
                b[0..4].copy_from_slice(&ty.to_le_bytes());
            }
            6 => b.extend((0..rng.below(8)).map(|_| rng.next_u64() as u8)),
            _ => {
                if let Some(x) = b.last_mut() {
                    *x = 0;
                }
            }
        }
    }
    b
}

/// Every parser over one datagram. Returns whether it decoded.
fn parse_all(bytes: &[u8]) -> bool {
    let _ = Message::decode(bytes);
    let Ok(msg) = Message::decode_exact(bytes) else {
        return false;
    };
    assert_eq!(msg.payload.len(), msg.header.len as usize);
    assert!(msg.payload.len() <= PAYLOAD_MAX);
    for sent in MsgType::ALL {
        match reply::parse(sent, &msg) {
            Ok(Reply::Tx(id)) => assert_ne!(id, TxId::NONE),
            Ok(Reply::Perms(p)) => assert!(!p.is_empty()),
            _ => {}
        }
    }
    let _ = reply::watch_event(&msg.payload);
    let _ = reply::error(&msg.payload);
    true
}

#[test]
fn fuzz_random_bytes() {
    let mut rng = Rng::new(1);
    for _ in 0..20_000 * scale() {
        let len = rng.below(64) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if b.len() >= HEADER_LEN && rng.one_in(2) {
            // Make the length plausible half the time, or nothing decodes.
            let l = (b.len() - HEADER_LEN) as u32;
            b[12..16].copy_from_slice(&l.to_le_bytes());
        }
        parse_all(&b);
    }
}

#[test]
fn fuzz_mutated_valid_replies() {
    let corpus = corpus();
    let mut rng = Rng::new(2);
    let mut decoded = 0;
    for _ in 0..50_000 * scale() {
        let base = rng.pick(&corpus).encode();
        if parse_all(&mutate(&mut rng, base)) {
            decoded += 1;
        }
    }
    // Most mutations still frame, so the payload parsers got exercised.
    assert!(decoded > 5_000, "{decoded}");
}

#[test]
fn structure_aware_payloads_for_every_type() {
    let mut rng = Rng::new(3);
    let atoms: &[&[u8]] = &[
        b"",
        b"\0",
        b"OK",
        b"OK\0",
        b"ENOENT",
        b"\xff",
        b"r0",
        b"b65535",
        b"w65536",
        b"0",
        b"4294967295",
        b"4294967296",
        b"/local/domain/7",
        b"tok",
        b"-1",
        b"a/b",
    ];
    for _ in 0..20_000 * scale() {
        let mut payload = Vec::new();
        for _ in 0..rng.below(5) {
            let atom = *rng.pick(atoms);
            payload.extend_from_slice(atom);
            if !rng.one_in(4) {
                payload.push(0);
            }
        }
        let ty = if rng.one_in(3) { MsgType::Error } else { *rng.pick(&MsgType::ALL) };
        let msg = Message::new(ty, ReqId(rng.next_u64() as u32), TxId(0), payload).unwrap();
        assert!(parse_all(&msg.encode()));
    }
}

#[test]
fn every_valid_corpus_entry_parses_as_itself() {
    for m in corpus() {
        let ty = MsgType::from_raw(m.header.ty).unwrap();
        let sent = if ty == MsgType::Error { MsgType::Read } else { ty };
        let r = reply::parse(sent, &m);
        assert!(
            r.is_ok() || matches!(r, Err(Error::Xs(XsErrno::ENOENT | XsErrno::EAGAIN))),
            "{m:?}: {r:?}"
        );
    }
}

/// The whole client over hostile streams: garbage pushed into the response
/// ring between requests, lying replies, and the client must answer every
/// call without panicking or hanging. Afterwards its state is consistent:
/// either it reports the stream broken, or a fresh request works.
#[test]
fn fuzz_client_over_hostile_streams() {
    let corpus = corpus();
    let mut rng = Rng::new(4);
    let mut broken = 0;
    for round in 0..1000 * scale() {
        let h = Harness::new(DomId(7));
        let mut xs = h.client();
        xs.set_reply_timeout(Some(Duration::from_millis(10)));
        for _ in 0..5 {
            match rng.below(4) {
                0 => {
                    let base = rng.pick(&corpus).encode();
                    let b = mutate(&mut rng, base);
                    h.fake().push_raw(&b);
                }
                1 => {
                    let seed = rng.next_u64();
                    h.fake().mangle_next_reply(move |m| mutate(&mut Rng::new(seed), m.encode()));
                }
                2 => {
                    let n = rng.below(40) as usize;
                    let b: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                    h.fake().push_raw(&b);
                }
                _ => {}
            }
            let _ = match rng.below(5) {
                0 => xs.read("domid").map(drop),
                1 => xs.write("data/x", b"1"),
                2 => xs.directory("data").map(drop),
                3 => xs.try_next_event().map(drop),
                _ => xs.transaction(|tx| tx.write("data/y", b"2")),
            };
        }
        // Give late bytes a chance to arrive, then check consistency.
        h.fake().set_stalled(false);
        let _ = xs.try_next_event();
        match xs.transport().broken().cloned() {
            Some(e) => {
                broken += 1;
                assert_eq!(xs.read("domid"), Err(e), "round {round}");
            }
            None => {
                // Drain whatever garbage is left, then the client works,
                // unless what remains is a half message that never ends.
                let mut tries = 0;
                while xs.try_next_event().is_err() && tries < 50 {
                    tries += 1;
                }
                let r = xs.read("name");
                assert!(r == Ok(b"guest".to_vec()) || r.is_err(), "round {round}: {r:?}");
            }
        }
    }
    assert!(broken > 0, "some streams should have been beyond repair");
}

#[test]
fn header_encoding_round_trips() {
    let mut rng = Rng::new(5);
    for _ in 0..10_000 {
        let h = Header {
            ty: rng.next_u64() as u32,
            req_id: ReqId(rng.next_u64() as u32),
            tx_id: TxId(rng.next_u64() as u32),
            len: rng.below(PAYLOAD_MAX as u64 + 1) as u32,
        };
        assert_eq!(Header::decode(&h.encode()), Ok(h));
    }
    let mut b = [0u8; HEADER_LEN];
    b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(Header::decode(&b), Err(Malformed::PayloadTooLong { len: u32::MAX }));
}
