//! Every client operation against the fake xenstored, over the real ring
//! code, and every error path.

use hypercall::abi::xenstore::{PAYLOAD_MAX, REL_PATH_MAX, RING_SIZE};
use hypercall::DomId;
use std::sync::atomic::Ordering;
use std::time::Duration;
use xenstore_client::fake::Harness;
use xenstore_client::wire::{Header, HEADER_LEN};
use xenstore_client::{
    Access, Error, Malformed, Message, MsgType, PathError, Perm, ReqId, RingError, Store, TxId,
    WatchEvent, XsErrno,
};

const DOM0: DomId = DomId(0);
const GUEST: DomId = DomId(7);

struct Setup(Harness);

impl std::ops::Deref for Setup {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl Setup {
    fn new() -> Setup {
        Setup(Harness::new(GUEST))
    }

    fn home(&self, rel: &str) -> String {
        format!("/local/domain/{}/{rel}", GUEST.0)
    }
}

fn ev(path: &str, token: &str) -> WatchEvent {
    WatchEvent { path: path.into(), token: token.into() }
}

// --- Operations ---

#[test]
fn read_relative_and_absolute() {
    let s = Setup::new();
    let mut xs = s.client();
    assert_eq!(xs.read_u64("domid"), Ok(u64::from(GUEST.0)));
    assert_eq!(xs.read_string(&s.home("name")), Ok("guest".into()));
    assert_eq!(xs.read("nope"), Err(Error::Xs(XsErrno::ENOENT)));
    assert_eq!(xs.read_opt("nope"), Ok(None));
    assert_eq!(xs.read_opt("name"), Ok(Some(b"guest".to_vec())));
    assert_eq!(xs.read_u64("name"), Err(Error::NotANumber));
}

#[test]
fn write_then_read_any_bytes() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.write("data/bin", b"a\0b\xff").unwrap();
    assert_eq!(xs.read("data/bin"), Ok(b"a\0b\xff".to_vec()));
    assert_eq!(xs.read_string("data/bin"), Err(Error::NotUtf8));
    xs.write("data/empty", b"").unwrap();
    assert_eq!(xs.read("data/empty"), Ok(vec![]));
    // Parents were created, owned by the guest.
    assert_eq!(s.fake().perms(&s.home("data")).unwrap()[0].dom, GUEST);
}

#[test]
fn large_values_cross_the_ring_many_times() {
    let s = Setup::new();
    let mut xs = s.client();
    s.fake().config_mut().max_value_len = PAYLOAD_MAX;
    for i in 0..40usize {
        let len = (i * 997) % (PAYLOAD_MAX - 100);
        let v: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
        xs.write("data/big", &v).unwrap();
        assert_eq!(xs.read("data/big").unwrap(), v, "round {i}");
    }
    // The indices went round the ring many times.
    assert!(s.page.req_prod.load(Ordering::Relaxed) as usize > 20 * RING_SIZE);
}

#[test]
fn mkdir_directory_rm() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.mkdir("device/vif/0").unwrap();
    xs.mkdir("device/vif/0").unwrap(); // exists: fine
    xs.write("device/vif/1/state", b"1").unwrap();
    assert_eq!(xs.read("device/vif/0"), Ok(vec![]));
    assert_eq!(xs.directory("device/vif"), Ok(vec!["0".into(), "1".into()]));
    assert_eq!(xs.directory("device/vif/0"), Ok(vec![]));
    assert_eq!(xs.directory("device/none"), Err(Error::Xs(XsErrno::ENOENT)));
    xs.rm("device/vif").unwrap();
    assert_eq!(xs.directory("device"), Ok(vec![]));
    assert_eq!(xs.read("device/vif/1/state"), Err(Error::Xs(XsErrno::ENOENT)));
    // Already gone, parent there: fine. Parent gone too: ENOENT.
    assert_eq!(xs.rm("device/vif"), Ok(()));
    assert_eq!(xs.rm("device/vif/0"), Err(Error::Xs(XsErrno::ENOENT)));
    assert_eq!(xs.rm("/"), Err(Error::Xs(XsErrno::EINVAL)));
}

#[test]
fn permissions() {
    let s = Setup::new();
    let mut xs = s.client();
    assert_eq!(
        xs.get_perms("domid"),
        Ok(vec![Perm::new(DOM0, Access::None), Perm::new(GUEST, Access::Read)])
    );
    // dom0's keys: readable where granted, never writable.
    assert_eq!(xs.write("domid", b"1"), Err(Error::Xs(XsErrno::EACCES)));
    assert_eq!(xs.read("/tool"), Err(Error::Xs(XsErrno::EACCES)));
    assert_eq!(xs.write("/tool/x", b"1"), Err(Error::Xs(XsErrno::EACCES)));
    assert_eq!(
        xs.set_perms("domid", &[Perm::new(GUEST, Access::Both)]),
        Err(Error::Xs(XsErrno::EACCES))
    );
    // Its own node: the guest owns it and may share it.
    xs.write("data/shared", b"x").unwrap();
    let perms = [Perm::new(GUEST, Access::None), Perm::new(DomId(9), Access::Read)];
    xs.set_perms("data/shared", &perms).unwrap();
    assert_eq!(xs.get_perms("data/shared"), Ok(perms.to_vec()));
    assert_eq!(s.fake().perms(&s.home("data/shared")), Some(perms.to_vec()));
    assert_eq!(xs.set_perms("data/shared", &[]), Err(Error::EmptyPerms));
    // Another domain's node the guest may only read.
    s.fake().write_as(DOM0, &s.home("ro"), b"v").unwrap();
    s.fake().set_perms_as(DOM0, &s.home("ro"), &[Perm::new(DOM0, Access::Read)]).unwrap();
    assert_eq!(xs.read("ro"), Ok(b"v".to_vec()));
    assert_eq!(xs.write("ro", b"w"), Err(Error::Xs(XsErrno::EACCES)));
    assert_eq!(xs.rm("ro"), Err(Error::Xs(XsErrno::EACCES)));
}

#[test]
fn domain_path_and_reset_watches() {
    let s = Setup::new();
    let mut xs = s.client();
    let home = s.fake().home();
    assert_eq!(xs.get_domain_path(GUEST), Ok(home));
    assert_eq!(xs.get_domain_path(DomId(3)), Ok("/local/domain/3".into()));
    xs.watch("data", "w1").unwrap();
    assert_eq!(s.fake().watches().len(), 1);
    xs.reset_watches().unwrap();
    assert!(s.fake().watches().is_empty());
    assert_eq!(xs.pending_events(), 0, "queued events of reset watches are dropped");
}

#[test]
fn toolstack_operations_are_refused() {
    let s = Setup::new();
    let mut xs = s.client();
    let m = xs.request(MsgType::Introduce, b"1\0".to_vec()).unwrap();
    assert_eq!(
        xenstore_client::reply::payload_for(MsgType::Introduce, &m),
        Err(Error::Xs(XsErrno::EACCES))
    );
}

// --- Watches ---

#[test]
fn watch_fires_once_then_on_changes_below() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.watch("control", "ctl").unwrap();
    let now = xs.now();
    assert_eq!(xs.next_event(Some(now)), Ok(ev("control", "ctl")), "initial firing");
    assert_eq!(xs.try_next_event(), Ok(None));

    s.fake().write_as(DOM0, &s.home("control/shutdown"), b"poweroff").unwrap();
    s.fake().write_as(DOM0, &s.home("controlx"), b"no").unwrap(); // not below
    s.fake().write_as(DOM0, &s.home("control"), b"").unwrap();
    assert_eq!(xs.try_next_event(), Ok(Some(ev("control/shutdown", "ctl"))));
    assert_eq!(xs.try_next_event(), Ok(Some(ev("control", "ctl"))));
    assert_eq!(xs.try_next_event(), Ok(None));
}

#[test]
fn absolute_watches_get_absolute_paths_and_rm_fires_children() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.write("device/vbd/0/state", b"1").unwrap();
    let state = s.home("device/vbd/0/state");
    xs.watch(&state, "st").unwrap();
    xs.watch(&s.home("device"), "dev").unwrap();
    assert_eq!(xs.try_next_event(), Ok(Some(ev(&state, "st"))));
    assert_eq!(xs.try_next_event(), Ok(Some(ev(&s.home("device"), "dev"))));
    // Removing an ancestor fires watches on nodes below it, with their own path.
    s.fake().rm_as(DOM0, &s.home("device/vbd")).unwrap();
    let mut got =
        vec![xs.try_next_event().unwrap().unwrap(), xs.try_next_event().unwrap().unwrap()];
    got.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(got, vec![ev(&s.home("device/vbd"), "dev"), ev(&state, "st")]);
    assert_eq!(xs.try_next_event(), Ok(None));
}

#[test]
fn events_arriving_before_a_reply_are_queued_in_order() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.watch("data", "d").unwrap();
    // The guest's own writes fire the watch; the fake sends those events
    // ahead of each reply, so the client must set them aside.
    for i in 0..5 {
        xs.write(&format!("data/k{i}"), b"v").unwrap();
    }
    assert_eq!(xs.pending_events(), 6);
    assert_eq!(xs.next_event(None), Ok(ev("data", "d")));
    for i in 0..5 {
        assert_eq!(xs.next_event(None), Ok(ev(&format!("data/k{i}"), "d")));
    }
}

#[test]
fn events_after_reply_ordering_works_too() {
    let s = Setup::new();
    s.fake().config_mut().events_before_reply = false;
    let mut xs = s.client();
    xs.watch("data", "d").unwrap();
    xs.write("data/a", b"1").unwrap();
    xs.write("data/b", b"1").unwrap();
    assert_eq!(xs.next_event(None), Ok(ev("data", "d")));
    assert_eq!(xs.next_event(None), Ok(ev("data/a", "d")));
    assert_eq!(xs.next_event(None), Ok(ev("data/b", "d")));
}

#[test]
fn unwatch_stops_events_and_drops_queued_ones() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.watch("a", "ta").unwrap();
    xs.watch("b", "tb").unwrap();
    xs.write("a/x", b"1").unwrap();
    xs.unwatch("a", "ta").unwrap();
    xs.write("a/y", b"1").unwrap();
    assert_eq!(xs.next_event(None), Ok(ev("b", "tb")));
    assert_eq!(xs.try_next_event(), Ok(None));
    assert_eq!(xs.unwatch("a", "ta"), Err(Error::Xs(XsErrno::ENOENT)));
    assert_eq!(xs.watch("b", "tb"), Err(Error::Xs(XsErrno::EEXIST)));
}

#[test]
fn rewatch_all_registers_what_is_watched_again() {
    // After a restore the guest talks to a xenstored that has none of its
    // watches; the client remembers them and registers them again.
    let s = Setup::new();
    let mut xs = s.client();
    xs.watch("a", "ta").unwrap();
    xs.watch("b", "tb").unwrap();
    xs.remember_watch("c", "tc");
    xs.unwatch("a", "ta").unwrap();
    let kept: Vec<_> = xs.watches().iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    assert_eq!(kept, vec![("b", "tb"), ("c", "tc")]);
    // The server forgets them (a new xenstored), the client does not.
    let m = xs.request(MsgType::ResetWatches, Vec::new()).unwrap();
    xenstore_client::reply::ok(
        xenstore_client::reply::payload_for(MsgType::ResetWatches, &m).unwrap(),
    )
    .unwrap();
    assert!(s.fake().watches().is_empty());
    assert_eq!(xs.rewatch_all(), Ok(2));
    assert_eq!(s.fake().watches().len(), 2);
    // Each fires once as a new watch does; stale queued events are gone.
    let mut fired = vec![xs.next_event(None).unwrap(), xs.next_event(None).unwrap()];
    fired.sort_by(|x, y| x.token.cmp(&y.token));
    assert_eq!(fired, vec![ev("b", "tb"), ev("c", "tc")]);
    assert_eq!(xs.try_next_event(), Ok(None));
}

#[test]
fn special_watches_register() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.watch("@releaseDomain", "rel").unwrap();
    assert_eq!(xs.next_event(None), Ok(ev("@releaseDomain", "rel")));
}

#[test]
fn next_event_times_out_without_hanging() {
    let s = Setup::new();
    let mut xs = s.client();
    let deadline = xs.now().after(Duration::from_secs(5));
    assert_eq!(xs.next_event(Some(deadline)), Err(Error::TimedOut));
    assert!(xs.now() >= deadline);
}

#[test]
fn event_queue_overflow_is_counted() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.set_event_queue_cap(4);
    xs.watch("data", "d").unwrap();
    for i in 0..10 {
        xs.write(&format!("data/{i}"), b"v").unwrap();
    }
    assert_eq!(xs.pending_events(), 4);
    assert_eq!(xs.events_lost(), 7);
    assert_eq!(xs.next_event(None), Ok(ev("data/6", "d")));
}

// --- Transactions ---

#[test]
fn commit_applies_abort_discards() {
    let s = Setup::new();
    let mut xs = s.client();
    let mut tx = xs.begin().unwrap();
    assert_ne!(tx.id(), TxId::NONE);
    tx.write("data/a", b"1").unwrap();
    tx.write("data/b", b"2").unwrap();
    assert_eq!(tx.read("data/a"), Ok(b"1".to_vec()));
    assert_eq!(s.fake().get(&s.home("data/a")), None, "not visible before commit");
    tx.commit().unwrap();
    assert_eq!(s.fake().get(&s.home("data/b")), Some(b"2".to_vec()));

    let mut tx = xs.begin().unwrap();
    tx.rm("data/a").unwrap();
    tx.abort().unwrap();
    assert_eq!(xs.read("data/a"), Ok(b"1".to_vec()));
    assert_eq!(s.fake().open_transactions(), 0);

    // The transaction id went in every request of it.
    let seen: Vec<Header> = s.fake().requests_seen().to_vec();
    assert!(seen.iter().any(|h| h.ty == MsgType::Write as u32 && h.tx_id != TxId::NONE));
}

#[test]
fn dropping_a_transaction_aborts_it() {
    let s = Setup::new();
    let mut xs = s.client();
    {
        let mut tx = xs.begin().unwrap();
        tx.write("data/a", b"1").unwrap();
    }
    assert_eq!(s.fake().open_transactions(), 0);
    assert_eq!(xs.read("data/a"), Err(Error::Xs(XsErrno::ENOENT)));
}

#[test]
fn conflicting_change_makes_commit_fail_with_eagain() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.write("data/n", b"1").unwrap();
    let mut tx = xs.begin().unwrap();
    assert_eq!(tx.read("data/n"), Ok(b"1".to_vec()));
    tx.write("data/m", b"x").unwrap();
    s.fake().write_as(DOM0, &s.home("data/n"), b"2").unwrap();
    assert_eq!(tx.commit(), Err(Error::Xs(XsErrno::EAGAIN)));
    assert_eq!(xs.read("data/m"), Err(Error::Xs(XsErrno::ENOENT)));

    // A change to something the transaction never touched is no conflict.
    let mut tx = xs.begin().unwrap();
    tx.write("data/m", b"x").unwrap();
    s.fake().write_as(DOM0, &s.home("other"), b"2").unwrap();
    assert_eq!(tx.commit(), Ok(()));

    // Creating a sibling changes the parent's children: a transaction that
    // listed the directory conflicts.
    let mut tx = xs.begin().unwrap();
    assert_eq!(tx.directory("data").unwrap().len(), 2);
    tx.write("data/count", b"2").unwrap();
    s.fake().write_as(DOM0, &s.home("data/new"), b"").unwrap();
    assert_eq!(tx.commit(), Err(Error::Xs(XsErrno::EAGAIN)));
}

#[test]
fn transaction_helper_retries_on_eagain_and_watches_keep_order() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.write("data/counter", b"0").unwrap();
    xs.watch("data/counter", "c").unwrap();
    let mut runs = 0;
    let fake = s.cell();
    let home = s.home("data/counter");
    let result = xs.transaction(|tx| {
        runs += 1;
        let n = tx.read_u64("data/counter")?;
        if runs <= 2 {
            // Someone else bumps the counter under us: our commit must fail.
            fake.borrow_mut().write_as(DOM0, &home, format!("{}", n + 10).as_bytes()).unwrap();
        }
        tx.write("data/counter", format!("{}", n + 1).as_bytes())?;
        Ok(n + 1)
    });
    assert_eq!(result, Ok(21));
    assert_eq!(runs, 3);
    assert_eq!(xs.read_u64("data/counter"), Ok(21));
    assert_eq!(s.fake().open_transactions(), 0);
    // Every firing, in order: the initial one, the two outside writes
    // (which arrived while the transaction was being retried), the commit.
    let got: Vec<_> = std::iter::from_fn(|| xs.try_next_event().unwrap()).collect();
    assert_eq!(got, vec![ev("data/counter", "c"); 4]);
}

#[test]
fn transaction_helper_gives_up_after_its_attempts() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.set_tx_attempts(3);
    s.fake().fail_next_commits(100);
    let mut runs = 0;
    let r = xs.transaction(|tx| {
        runs += 1;
        tx.write("data/x", b"1")
    });
    assert_eq!(r, Err(Error::TransactionConflict { attempts: 3 }));
    assert_eq!(runs, 3);
    assert_eq!(s.fake().open_transactions(), 0);
}

#[test]
fn transaction_helper_aborts_on_other_errors() {
    let s = Setup::new();
    let mut xs = s.client();
    let r: Result<(), Error> = xs.transaction(|tx| {
        tx.write("data/x", b"1")?;
        tx.read("missing")?;
        Ok(())
    });
    assert_eq!(r, Err(Error::Xs(XsErrno::ENOENT)));
    assert_eq!(s.fake().open_transactions(), 0);
    assert_eq!(xs.read("data/x"), Err(Error::Xs(XsErrno::ENOENT)));
}

#[test]
fn transaction_helper_retries_when_an_operation_says_eagain() {
    let s = Setup::new();
    let mut xs = s.client();
    let mut runs = 0;
    let r = xs.transaction(|tx| {
        runs += 1;
        if runs == 1 {
            return Err(Error::Xs(XsErrno::EAGAIN));
        }
        tx.write("data/x", b"1")
    });
    assert_eq!(r, Ok(()));
    assert_eq!(runs, 2);
    assert_eq!(s.fake().open_transactions(), 0);
}

// --- Quotas ---

#[test]
fn quotas() {
    let s = Setup::new();
    {
        let mut f = s.fake();
        let c = f.config_mut();
        c.max_value_len = 16;
        c.max_nodes = 6;
        c.max_watches = 2;
        c.max_transactions = 1;
    }
    let mut xs = s.client();
    assert_eq!(xs.write("data/v", &[b'x'; 17]), Err(Error::Xs(XsErrno::EQUOTA)));
    xs.write("data/v", &[b'x'; 16]).unwrap();
    // The guest owns home, data, data/v: three more fit, not four.
    assert_eq!(xs.write("data/1/2/3/4", b""), Err(Error::Xs(XsErrno::EQUOTA)));
    xs.write("data/1/2/3", b"").unwrap();
    assert_eq!(xs.mkdir("data/more"), Err(Error::Xs(XsErrno::EQUOTA)));
    // dom0 is exempt.
    s.fake().write_as(DOM0, &s.home("data/big"), &[0; 3000]).unwrap();

    xs.watch("a", "1").unwrap();
    xs.watch("b", "2").unwrap();
    assert_eq!(xs.watch("c", "3"), Err(Error::Xs(XsErrno::EQUOTA)));

    // The errno is the daemon's choice (C xenstored: ENOSPC).
    s.fake().config_mut().quota_errno = XsErrno::ENOSPC;
    assert_eq!(xs.watch("c", "3"), Err(Error::Xs(XsErrno::ENOSPC)));
}

#[test]
fn transaction_quota() {
    let s = Setup::new();
    s.fake().config_mut().max_transactions = 1;
    let mut xs = s.client();
    let m = xs.request(MsgType::TransactionStart, b"\0".to_vec()).unwrap();
    assert_eq!(m.header.ty, MsgType::TransactionStart as u32);
    let m = xs.request(MsgType::TransactionStart, b"\0".to_vec()).unwrap();
    assert_eq!(
        xenstore_client::reply::payload_for(MsgType::TransactionStart, &m),
        Err(Error::Xs(XsErrno::EQUOTA))
    );
    // Nested start inside a transaction is refused.
    let m = xs.request_in(TxId(1), MsgType::TransactionStart, b"\0".to_vec()).unwrap();
    assert_eq!(
        xenstore_client::reply::payload_for(MsgType::TransactionStart, &m),
        Err(Error::Xs(XsErrno::EBUSY))
    );
    // An unknown transaction id.
    let m = xs.request_in(TxId(99), MsgType::Read, b"domid\0".to_vec()).unwrap();
    assert_eq!(
        xenstore_client::reply::payload_for(MsgType::Read, &m),
        Err(Error::Xs(XsErrno::ENOENT))
    );
}

// --- Bad input, refused before sending ---

#[test]
fn bad_paths_and_values_are_refused_locally() {
    let s = Setup::new();
    let mut xs = s.client();
    let sent = || s.fake().requests_seen().len();
    let before = sent();
    let long = "a".repeat(REL_PATH_MAX + 1);
    assert_eq!(
        xs.read(&long),
        Err(Error::InvalidPath(PathError::TooLong { len: REL_PATH_MAX + 1, max: REL_PATH_MAX }))
    );
    assert_eq!(xs.write("a\0b", b""), Err(Error::InvalidPath(PathError::ContainsNul)));
    assert_eq!(xs.read(""), Err(Error::InvalidPath(PathError::Empty)));
    assert_eq!(xs.read("a b"), Err(Error::InvalidPath(PathError::BadChar(b' '))));
    assert_eq!(
        xs.write("data/v", &vec![0; PAYLOAD_MAX]),
        Err(Error::PayloadTooLong { len: PAYLOAD_MAX, max: PAYLOAD_MAX - "data/v".len() - 1 })
    );
    assert_eq!(xs.watch("a", ""), Err(Error::InvalidPath(PathError::Empty)));
    assert_eq!(sent(), before, "nothing reached xenstored");
    // The client is fine afterwards.
    assert_eq!(xs.read_u64("domid"), Ok(u64::from(GUEST.0)));
}

// --- Bad input from xenstored ---

fn reencode(mut m: Message, f: impl FnOnce(&mut Message)) -> Vec<u8> {
    f(&mut m);
    m.header.len = m.payload.len() as u32;
    m.encode()
}

#[test]
fn reply_with_unknown_request_id() {
    let s = Setup::new();
    let mut xs = s.client();
    s.fake().mangle_next_reply(|m| reencode(m, |m| m.header.req_id = ReqId(0xdead)));
    assert_eq!(xs.read("domid"), Err(Error::UnknownReqId(ReqId(0xdead))));
    // Later requests work.
    assert_eq!(xs.read_u64("domid"), Ok(u64::from(GUEST.0)));
}

#[test]
fn reply_of_wrong_type() {
    let s = Setup::new();
    let mut xs = s.client();
    s.fake().mangle_next_reply(|m| reencode(m, |m| m.header.ty = MsgType::Write as u32));
    assert_eq!(
        xs.read("domid"),
        Err(Error::Malformed(Malformed::UnexpectedType {
            sent: MsgType::Read as u32,
            got: MsgType::Write as u32
        }))
    );
    assert_eq!(xs.read_u64("domid"), Ok(u64::from(GUEST.0)));
}

#[test]
fn error_reply_without_nul_and_unknown_errno() {
    let s = Setup::new();
    let mut xs = s.client();
    s.fake().mangle_next_reply(|m| {
        reencode(m, |m| {
            m.header.ty = MsgType::Error as u32;
            m.payload = b"ENOENT".to_vec();
        })
    });
    assert_eq!(xs.read("domid"), Err(Error::Malformed(Malformed::MissingNul)));
    s.fake().mangle_next_reply(|m| {
        reencode(m, |m| {
            m.header.ty = MsgType::Error as u32;
            m.payload = b"ENEWTHING\0".to_vec();
        })
    });
    assert_eq!(xs.read("domid"), Err(Error::XsUnknown("ENEWTHING".into())));
}

#[test]
fn ok_reply_and_tx_id_must_be_well_formed() {
    let s = Setup::new();
    let mut xs = s.client();
    s.fake().mangle_next_reply(|m| reencode(m, |m| m.payload = b"OK".to_vec()));
    assert_eq!(xs.write("data/a", b"1"), Err(Error::Malformed(Malformed::ExpectedOk)));
    s.fake().mangle_next_reply(|m| reencode(m, |m| m.payload = b"0\0".to_vec()));
    assert!(matches!(xs.begin(), Err(Error::Malformed(Malformed::BadTxId))));
}

#[test]
fn malformed_watch_event_is_an_error_not_a_panic() {
    let s = Setup::new();
    let mut xs = s.client();
    let bad = Message::new(MsgType::WatchEvent, ReqId(0), TxId(0), b"path-only\0".to_vec())
        .unwrap()
        .encode();
    s.fake().push_raw(&bad);
    assert_eq!(xs.next_event(None), Err(Error::Malformed(Malformed::BadWatchEvent)));
    assert_eq!(xs.read_u64("domid"), Ok(u64::from(GUEST.0)));
}

#[test]
fn oversized_length_breaks_the_connection_clearly() {
    let s = Setup::new();
    let mut xs = s.client();
    s.fake().mangle_next_reply(|m| {
        let mut h = m.header;
        h.len = PAYLOAD_MAX as u32 + 1;
        h.encode().to_vec()
    });
    let err = Error::Malformed(Malformed::PayloadTooLong { len: PAYLOAD_MAX as u32 + 1 });
    assert_eq!(xs.read("domid"), Err(err.clone()));
    // The stream has lost its framing: every later call says so, at once.
    assert_eq!(xs.read("domid"), Err(err.clone()));
    assert_eq!(xs.next_event(None), Err(err.clone()));
    assert_eq!(xs.transport().broken(), Some(&err));
}

#[test]
fn truncated_reply_times_out_and_keeps_the_partial_message() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.set_reply_timeout(Some(Duration::from_secs(1)));
    // The header and two of the five bytes of "guest" arrive, then nothing.
    let rest = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let keep = rest.clone();
    s.fake().mangle_next_reply(move |m| {
        let b = m.encode();
        keep.borrow_mut().extend_from_slice(&b[HEADER_LEN + 2..]);
        b[..HEADER_LEN + 2].to_vec()
    });
    assert_eq!(xs.read("name"), Err(Error::TimedOut));
    // The rest comes late, followed by an event: the client still frames
    // the stream, drops the late reply and delivers the event.
    let mut late = rest.borrow().clone();
    late.extend(
        Message::new(MsgType::WatchEvent, ReqId(0), TxId(0), b"p\0t\0".to_vec()).unwrap().encode(),
    );
    s.fake().push_raw(&late);
    assert_eq!(xs.next_event(None), Ok(ev("p", "t")));
    assert_eq!(xs.read_u64("domid"), Ok(u64::from(GUEST.0)));
}

#[test]
fn half_a_header_then_silence_times_out() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.set_reply_timeout(Some(Duration::from_secs(1)));
    s.fake().mangle_next_reply(|m| m.encode()[..HEADER_LEN / 2].to_vec());
    assert_eq!(xs.read("name"), Err(Error::TimedOut));
}

#[test]
fn stalled_xenstored_times_out_and_late_reply_is_dropped() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.set_reply_timeout(Some(Duration::from_secs(2)));
    s.fake().set_stalled(true);
    let t0 = xs.now();
    assert_eq!(xs.read("domid"), Err(Error::TimedOut));
    assert!(xs.now() >= t0.after(Duration::from_secs(2)));
    s.fake().set_stalled(false);
    // xenstored wakes up, answers the old request, then the new one: the
    // old reply is recognised as late and dropped.
    assert_eq!(xs.read_string("name"), Ok("guest".into()));
}

#[test]
fn full_request_ring_waits_then_times_out() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.set_reply_timeout(Some(Duration::from_secs(1)));
    s.fake().set_stalled(true);
    // A write bigger than the ring cannot go out while nobody reads.
    assert_eq!(xs.write("data/v", &[1; 2000]), Err(Error::TimedOut));
    let prod = s.page.req_prod.load(Ordering::Relaxed);
    let cons = s.page.req_cons.load(Ordering::Relaxed);
    assert_eq!(prod.wrapping_sub(cons) as usize, RING_SIZE, "ring filled, not overrun");
    // Once xenstored reads again, the rest goes out first and the stream
    // stays framed.
    s.fake().set_stalled(false);
    s.fake().config_mut().max_value_len = 4096;
    assert_eq!(xs.read_u64("domid"), Ok(u64::from(GUEST.0)));
    assert_eq!(s.fake().get(&s.home("data/v")), Some(vec![1; 2000]));
}

#[test]
fn corrupt_ring_indices_are_an_error() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.read("domid").unwrap();
    let cons = s.page.rsp_cons.load(Ordering::Relaxed);
    s.page.rsp_prod.store(cons.wrapping_add(RING_SIZE as u32 + 1), Ordering::Relaxed);
    assert_eq!(
        xs.read("domid"),
        Err(Error::Ring(RingError::BadIndices {
            cons,
            prod: cons.wrapping_add(RING_SIZE as u32 + 1)
        }))
    );
}

#[test]
fn server_reported_error_is_an_error() {
    let s = Setup::new();
    let mut xs = s.client();
    s.fake().set_stalled(true);
    s.page.error.store(hypercall::abi::xenstore::ERROR_COMM, Ordering::Relaxed);
    assert_eq!(
        xs.read("domid"),
        Err(Error::Ring(RingError::ServerError(hypercall::abi::xenstore::ERROR_COMM)))
    );
}

#[test]
fn waits_instead_of_spinning() {
    let s = Setup::new();
    let mut xs = s.client();
    s.fake().config_mut().max_value_len = 4096;
    xs.write("data/v", &[1; 4000]).unwrap();
    let events = xs.transport().events();
    // 4 KiB through a 1 KiB ring: a handful of notifications and waits,
    // not thousands of polls.
    assert!(events.notifies() < 40, "{}", events.notifies());
    assert!(events.waits() < 40, "{}", events.waits());
}

// --- Pipelining ---

#[test]
fn pipelined_requests_come_back_in_the_order_asked() {
    use xenstore_client::{reply, request};
    let s = Setup::new();
    let mut xs = s.client();
    let replies = xs
        .pipeline(vec![
            (MsgType::Read, request::path("domid").unwrap()),
            (MsgType::Write, request::write("data/x", b"1").unwrap()),
            (MsgType::Read, request::path("name").unwrap()),
            (MsgType::Watch, request::watch("data", "tok").unwrap()),
            (MsgType::Read, request::path("nope").unwrap()),
        ])
        .unwrap();
    assert_eq!(replies.len(), 5);
    assert_eq!(reply::payload_for(MsgType::Read, &replies[0]).unwrap(), b"7");
    assert_eq!(reply::ok(reply::payload_for(MsgType::Write, &replies[1]).unwrap()), Ok(()));
    assert_eq!(reply::payload_for(MsgType::Read, &replies[2]).unwrap(), b"guest");
    assert_eq!(reply::ok(reply::payload_for(MsgType::Watch, &replies[3]).unwrap()), Ok(()));
    // A failed request is an error reply in its slot, not a failed batch.
    assert_eq!(reply::payload_for(MsgType::Read, &replies[4]), Err(Error::Xs(XsErrno::ENOENT)));
    // The watch's first firing was queued as an event, not lost.
    assert_eq!(xs.next_event(None), Ok(ev("data", "tok")));
    // And the connection goes on as usual.
    assert_eq!(xs.read_string("data/x"), Ok("1".into()));
}

#[test]
fn an_empty_pipeline_is_no_request() {
    let s = Setup::new();
    let mut xs = s.client();
    assert_eq!(xs.pipeline(vec![]), Ok(vec![]));
    assert_eq!(xs.read_u64("domid"), Ok(u64::from(GUEST.0)));
}

#[test]
fn a_stalled_daemon_fails_the_pipeline_and_late_replies_are_dropped() {
    use xenstore_client::request;
    let s = Setup::new();
    let mut xs = s.client();
    xs.set_reply_timeout(Some(Duration::from_millis(50)));
    s.fake().set_stalled(true);
    let r = xs.pipeline(vec![
        (MsgType::Read, request::path("domid").unwrap()),
        (MsgType::Read, request::path("name").unwrap()),
    ]);
    assert_eq!(r, Err(Error::TimedOut));
    s.fake().set_stalled(false);
    // The two late replies are recognised as abandoned, not as strays.
    assert_eq!(xs.read_u64("domid"), Ok(u64::from(GUEST.0)));
}

/// Issue 21's stall: xenstored looks at a domain's ring only when something
/// wakes it. A notification that does not reach it leaves our requests in
/// the ring; the transport notifies again after `LOOK_AGAIN` without news
/// (before, the request timed out and so did every later one until another
/// client happened to wake xenstored).
#[test]
fn requests_xenstored_was_not_told_about_are_notified_again() {
    use xenstore_client::ring_transport::LOOK_AGAIN;
    let s = Setup::new();
    let mut xs = s.client();
    xs.write("a", b"1").unwrap();
    xs.transport_mut().events_mut().lose_notifies(3);
    let t0 = xs.now();
    assert_eq!(xs.read("a"), Ok(b"1".to_vec()));
    let took = xs.now().since(t0);
    assert!(took <= LOOK_AGAIN * 3, "{took:?}");
    assert_eq!(xs.transport().renotified(), 3);
    // Nothing unread, nothing owed: no more notifications than needed.
    assert_eq!(xs.read("a"), Ok(b"1".to_vec()));
    assert_eq!(xs.transport().renotified(), 3);
}

/// A reply whose wake-up is lost is taken at the next look, within
/// `LOOK_AGAIN`, not reported as a timeout at the deadline.
#[test]
fn a_reply_whose_wakeup_was_lost_is_taken_at_the_next_look() {
    use xenstore_client::ring_transport::LOOK_AGAIN;
    let s = Setup::new();
    let mut xs = s.client();
    xs.write("a", b"1").unwrap();
    xs.transport_mut().events_mut().lose_wakeups();
    for _ in 0..3 {
        let t0 = xs.now();
        assert_eq!(xs.read("a"), Ok(b"1".to_vec()));
        let took = xs.now().since(t0);
        assert!(took <= LOOK_AGAIN, "{took:?}");
    }
    // Even with the deadline sooner than a look: the last look is after it.
    xs.set_reply_timeout(Some(Duration::from_millis(10)));
    assert_eq!(xs.read("a"), Ok(b"1".to_vec()));
}

/// xenstored stops reading requests while answers cannot go into the
/// guest's full `rsp` ring (the C xenstored's quota of outstanding
/// requests). A client that waits for `req` room without reading `rsp`
/// then waits for ever: here a pipeline longer than both rings.
#[test]
fn waiting_for_request_room_reads_the_answers_meanwhile() {
    use xenstore_client::request;
    let s = Setup::new();
    s.fake().config_mut().max_unwritten = Some(64);
    let mut xs = s.client();
    xs.set_reply_timeout(Some(Duration::from_secs(5)));
    let reqs: Vec<_> = (0..200).map(|_| (MsgType::Read, request::path("domid").unwrap())).collect();
    let sent: usize = reqs.iter().map(|(_, p)| HEADER_LEN + p.len()).sum();
    assert!(sent > 2 * RING_SIZE, "{sent}");
    let replies = xs.pipeline(reqs).expect("every answer");
    assert_eq!(replies.len(), 200);
    assert!(replies.iter().all(|m| m.payload == GUEST.0.to_string().as_bytes()));
}

/// After a stall xenstored answers every request it finds, also ones given
/// up on longer ago than the client's list of abandoned ids: those answers
/// are dropped (and counted), not reported as strangers' in place of the
/// request waited for now (issue 21: `UnknownReqId(27)` to `(30)` each
/// failed a later request at 378 s).
#[test]
fn answers_to_requests_given_up_on_long_ago_are_dropped() {
    let s = Setup::new();
    let mut xs = s.client();
    xs.set_reply_timeout(Some(Duration::from_millis(10)));
    s.fake().set_stalled(true);
    for _ in 0..40 {
        assert_eq!(xs.read("domid"), Err(Error::TimedOut));
    }
    s.fake().set_stalled(false);
    xs.set_reply_timeout(Some(Duration::from_secs(5)));
    assert_eq!(xs.read_u64("domid"), Ok(u64::from(GUEST.0)));
    assert_eq!(xs.late_replies(), 8, "40 given up on, the last 32 remembered");
    // A reply to a request never sent is still an error.
    s.fake().mangle_next_reply(|m| reencode(m, |m| m.header.req_id = ReqId(0xdead)));
    assert_eq!(xs.read("domid"), Err(Error::UnknownReqId(ReqId(0xdead))));
}
