//! Structure-aware fuzz targets (`fuzzkit`, stable Rust, plain tests):
//! XenStore replies and watch events as xenstored could send them, shaped
//! by `arbitrary`, with seeds in `fuzz/corpus/<target>/` and every input
//! that ever failed kept in `fuzz/regressions/<target>/`.
//! `cargo xtask fuzz --secs N` runs them longer.

use fuzzkit::{Arbitrary, Unstructured};
use hypercall::DomId;
use std::time::Duration;
use xenstore_client::fake::Harness;
use xenstore_client::reply;
use xenstore_client::wire::{Header, HEADER_LEN};
use xenstore_client::{Message, MsgType, ReqId, Store, Transport, TxId};

/// A message xenstored could send: a known or unknown type, an id that is
/// pending, stale or random, a payload of strings or bytes, a length that
/// may lie.
fn hostile_message(u: &mut Unstructured<'_>, next_req: u32) -> fuzzkit::arbitrary::Result<Vec<u8>> {
    let ty = match u.int_in_range(0..=3)? {
        0 => MsgType::WatchEvent as u32,
        1 => MsgType::Read as u32,
        2 => MsgType::Error as u32,
        _ => u32::arbitrary(u)?,
    };
    let req_id = match u.int_in_range(0..=2)? {
        0 => next_req,
        1 => next_req.wrapping_sub(1),
        _ => u32::arbitrary(u)?,
    };
    let mut payload = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        match u.int_in_range(0..=3)? {
            0 => payload.extend_from_slice(b"control/shutdown"),
            1 => payload.extend_from_slice(b"EAGAIN"),
            2 => payload.extend_from_slice(&Vec::<u8>::arbitrary(u)?),
            _ => {}
        }
        if bool::arbitrary(u)? {
            payload.push(0);
        }
    }
    payload.truncate(4096);
    let len = if u.ratio(1, 8)? { u32::arbitrary(u)? } else { payload.len() as u32 };
    let h = Header { ty, req_id: ReqId(req_id), tx_id: TxId(u32::arbitrary(u)?), len };
    let mut bytes = h.encode().to_vec();
    assert_eq!(bytes.len(), HEADER_LEN);
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// `xs-replies`: hostile messages between the client's requests. Every
/// call returns; a broken stream says so on every later call until the
/// reconnection protocol resets it, after which the client works again.
#[test]
fn fuzz_xs_replies() {
    fuzzkit::fuzz("xs-replies", |u| {
        let h = Harness::new(DomId(7));
        let mut xs = h.client();
        xs.set_reply_timeout(Some(Duration::from_millis(10)));
        xs.set_event_queue_cap(u.int_in_range(1..=64)?);
        for step in 0..u.int_in_range(1..=12)? {
            if bool::arbitrary(u)? {
                let raw = hostile_message(u, step + 1)?;
                h.fake().push_raw(&raw);
            }
            let _ = match u.int_in_range(0..=4)? {
                0 => xs.read("domid").map(drop),
                1 => xs.write("data/x", b"1"),
                2 => xs.directory("data").map(drop),
                3 => xs.try_next_event().map(drop),
                _ => xs.transaction(|tx| tx.write("data/y", b"2")),
            };
            assert!(xs.pending_events() <= 64);
        }
        if let Some(e) = xs.transport().broken().cloned() {
            assert_eq!(xs.read("domid"), Err(e));
            xs.reconnect(Some(xs.now().after(Duration::from_secs(1)))).unwrap();
            assert!(!xs.transport().is_broken());
            assert_eq!(xs.read("domid"), Ok(b"7".to_vec()));
        }
        Ok(())
    });
}

/// `xs-watch-events`: watch event payloads of any shape parse to an event
/// or a clear error, and a parsed event's path and token are what the
/// payload held.
#[test]
fn fuzz_xs_watch_events() {
    fuzzkit::fuzz("xs-watch-events", |u| {
        let payload: Vec<u8> = if bool::arbitrary(u)? {
            let mut p = String::arbitrary(u)?.into_bytes();
            p.push(0);
            p.extend_from_slice(String::arbitrary(u)?.as_bytes());
            if bool::arbitrary(u)? {
                p.push(0);
            }
            p
        } else {
            u.bytes(u.len())?.to_vec()
        };
        if let Ok(ev) = reply::watch_event(&payload) {
            assert!(payload.starts_with(ev.path.as_bytes()));
            assert!(!ev.path.contains('\0') && !ev.token.contains('\0'));
        }
        let m = Message::new(MsgType::WatchEvent, ReqId(0), TxId(0), payload.clone());
        if let Ok(m) = m {
            let _ = reply::parse(MsgType::WatchEvent, &m);
        }
        Ok(())
    });
}
