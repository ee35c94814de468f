//! An in-memory xenstored for host tests: a tree of nodes with
//! permissions, watches that fire on changes (for children too, and for
//! nodes below a removed one), transactions that fail with `EAGAIN` when
//! something they touched changed meanwhile, and quotas. It speaks the real
//! wire protocol over a real store page ([`FakeEvents`] plugs it into
//! [`crate::RingTransport`]), so the guest's whole path is what is tested.
//!
//! One guest connection (domain [`FakeXenstored::guest`]); changes by other
//! domains (the toolstack, a backend) are made directly with the `*_as`
//! methods. Faults are injected with [`FakeXenstored::mangle_next_reply`],
//! [`FakeXenstored::push_raw`], [`FakeXenstored::fail_next_commits`] and
//! [`FakeXenstored::set_stalled`]. Races are staged with
//! [`FakeXenstored::set_interleave`] (other domains act between any two
//! requests of the guest) and [`FakeXenstored::set_event_filter`] (watch
//! events delivered, held back and coalesced, or lost).

mod events;
mod harness;
mod ops;
mod tree;

pub use events::FakeEvents;
pub use harness::{FakeClient, FakeGuard, Harness};

use crate::errors::XsErrno;
use crate::perms::{Access, Perm};
use crate::ring::Ring;
use crate::types::{ReqId, TxId};
use crate::wire::{Header, Message, MsgType};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use hypercall::abi::xenstore::{
    XenstoreDomainInterface, CONNECTED, ERROR_NONE, ERROR_PROTO, ERROR_RINGIDX, RECONNECT,
    SERVER_FEATURE_ERROR, SERVER_FEATURE_RECONNECTION,
};
use hypercall::DomId;
use tree::{Node, Tree};

/// Limits the fake enforces on the guest (dom0 is exempt, as in xenstored).
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// Nodes the guest may own.
    pub max_nodes: usize,
    /// Bytes in one value.
    pub max_value_len: usize,
    /// Watches of the connection.
    pub max_watches: usize,
    /// Transactions open at once.
    pub max_transactions: usize,
    /// What a quota violation answers. oxenstored says `EQUOTA`; the C
    /// xenstored says `ENOSPC` or `E2BIG` depending on the quota.
    pub quota_errno: XsErrno,
    /// Send watch events caused by the guest's own request before the reply
    /// to it (what xenstored may do, and the harder case for a client).
    pub events_before_reply: bool,
    /// Offer `XENSTORE_SERVER_FEATURE_RECONNECTION` (as xenstored does):
    /// the guest may ask for a reset of its connection.
    pub reconnection: bool,
    /// Stop reading the guest's requests while this many bytes of replies
    /// wait for room in its `rsp` ring. The C xenstored (4.17 on, XSA-326)
    /// stops reading a domain with 20 requests "outstanding" (answered, the
    /// answer not yet in the domain's ring); counted in bytes here.
    pub max_unwritten: Option<usize>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            max_nodes: 1000,
            max_value_len: 2048,
            max_watches: 128,
            max_transactions: 10,
            quota_errno: XsErrno::EQUOTA,
            events_before_reply: true,
            reconnection: true,
            max_unwritten: None,
        }
    }
}

/// One registered watch.
#[derive(Clone, Debug)]
struct Watch {
    /// As the guest gave it (relative paths get relative events).
    path: String,
    /// Resolved to absolute (or `@special`).
    abs: String,
    token: String,
}

/// A change that fires watches: a node written (created, changed, perms
/// set) or removed with everything below it.
#[derive(Clone, Debug)]
enum Change {
    Write(String),
    Rm(String),
}

/// What a transaction did, to check and apply it at commit.
#[derive(Clone, Debug, Default)]
struct TxLog {
    /// Generation of every node it looked at or changed, as of its start
    /// (`None`: did not exist).
    accessed: BTreeMap<String, Option<u64>>,
    /// Nodes it created, changed or removed.
    modified: BTreeSet<String>,
    /// Watches to fire if it commits.
    changes: Vec<Change>,
}

#[derive(Clone, Debug)]
struct Tx {
    tree: Tree,
    log: TxLog,
}

type Mangler = Box<dyn FnOnce(Message) -> Vec<u8>>;
type Interleave = Box<dyn FnMut(&mut FakeXenstored)>;
type EventFilter = Box<dyn FnMut(&str, &str) -> EventFate>;

/// What becomes of one watch event ([`FakeXenstored::set_event_filter`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventFate {
    /// Sent now.
    Deliver,
    /// Kept back until [`FakeXenstored::release_held`]; an event equal to
    /// one already held is merged into it (coalesced).
    Hold,
    /// Never sent (lost).
    Drop,
}

/// The fake daemon. See the module docs.
pub struct FakeXenstored {
    tree: Tree,
    /// Source of node generations, shared by the tree and transactions.
    gen: u64,
    guest: DomId,
    watches: Vec<Watch>,
    txs: BTreeMap<u32, Tx>,
    next_tx: u32,
    /// Changes made outside transactions, not yet turned into events.
    changes: Vec<Change>,
    /// Bytes for the `rsp` ring.
    out: VecDeque<u8>,
    /// Bytes from the `req` ring, not yet a whole message.
    inbuf: Vec<u8>,
    config: FakeConfig,
    force_eagain: u32,
    stalled: bool,
    broken: bool,
    mangler: Option<Mangler>,
    seen: Vec<Header>,
    interleave: Option<Interleave>,
    event_filter: Option<EventFilter>,
    /// Events held back, as (path, token).
    held: Vec<(String, String)>,
    events_dropped: u64,
    events_coalesced: u64,
    reconnections: u64,
}

impl FakeXenstored {
    /// A store with the usual layout for `guest`: `/local/domain/<guest>`
    /// owned by the guest, with `domid` and `name` keys owned by dom0 and
    /// readable by the guest, and `/tool` private to dom0.
    pub fn new(guest: DomId) -> FakeXenstored {
        let mut fake = FakeXenstored {
            tree: Tree::default(),
            gen: 0,
            guest,
            watches: Vec::new(),
            txs: BTreeMap::new(),
            next_tx: 1,
            changes: Vec::new(),
            out: VecDeque::new(),
            inbuf: Vec::new(),
            config: FakeConfig::default(),
            force_eagain: 0,
            stalled: false,
            broken: false,
            mangler: None,
            seen: Vec::new(),
            interleave: None,
            event_filter: None,
            held: Vec::new(),
            events_dropped: 0,
            events_coalesced: 0,
            reconnections: 0,
        };
        let dom0_only = [Perm::new(DomId(0), Access::None)];
        fake.tree.insert("/".into(), Node { value: Vec::new(), perms: dom0_only.to_vec(), gen: 0 });
        let home = fake.home();
        let readable = [Perm::new(DomId(0), Access::None), Perm::new(guest, Access::Read)];
        let setup: Result<(), XsErrno> = (|| {
            fake.mkdir_as(DomId(0), "/local/domain")?;
            fake.mkdir_as(DomId(0), "/tool")?;
            fake.mkdir_as(DomId(0), &home)?;
            fake.set_perms_as(DomId(0), &home, &[Perm::new(guest, Access::None)])?;
            fake.write_as(DomId(0), &format!("{home}/domid"), format!("{}", guest.0).as_bytes())?;
            fake.set_perms_as(DomId(0), &format!("{home}/domid"), &readable)?;
            fake.write_as(DomId(0), &format!("{home}/name"), b"guest")?;
            fake.set_perms_as(DomId(0), &format!("{home}/name"), &readable)
        })();
        debug_assert_eq!(setup, Ok(()));
        fake.changes.clear();
        fake
    }

    /// The guest's domain id.
    pub fn guest(&self) -> DomId {
        self.guest
    }

    /// The guest's home, where relative paths point.
    pub fn home(&self) -> String {
        format!("/local/domain/{}", self.guest.0)
    }

    /// `rel` under the guest's home, as an absolute path.
    pub fn abs(&self, rel: &str) -> String {
        format!("/local/domain/{}/{rel}", self.guest.0)
    }

    pub fn config_mut(&mut self) -> &mut FakeConfig {
        &mut self.config
    }

    /// Headers of every request the guest sent, in order.
    pub fn requests_seen(&self) -> &[Header] {
        &self.seen
    }

    /// Registered watches as `(path, token)`.
    pub fn watches(&self) -> Vec<(String, String)> {
        self.watches.iter().map(|w| (w.path.clone(), w.token.clone())).collect()
    }

    /// Transactions open now.
    pub fn open_transactions(&self) -> usize {
        self.txs.len()
    }

    /// The next `n` commits fail with `EAGAIN` even without a conflict.
    pub fn fail_next_commits(&mut self, n: u32) {
        self.force_eagain = n;
    }

    /// A stalled fake reads and answers nothing (a hung xenstored).
    pub fn set_stalled(&mut self, stalled: bool) {
        self.stalled = stalled;
    }

    /// The next reply is replaced by the bytes `f` makes of it (a wrong
    /// request id, a bad length, garbage, nothing at all...).
    pub fn mangle_next_reply(&mut self, f: impl FnOnce(Message) -> Vec<u8> + 'static) {
        self.mangler = Some(Box::new(f));
    }

    /// Runs `f` before each request of the guest is answered: what another
    /// domain (the toolstack, a backend) does there lands between any two
    /// of the guest's requests, transactions included.
    pub fn set_interleave(&mut self, f: impl FnMut(&mut FakeXenstored) + 'static) {
        self.interleave = Some(Box::new(f));
    }

    /// Stops running the interleave hook.
    pub fn clear_interleave(&mut self) {
        self.interleave = None;
    }

    /// Decides the fate of every watch event from now on, given its path
    /// (as the watcher sees it) and token.
    pub fn set_event_filter(&mut self, f: impl FnMut(&str, &str) -> EventFate + 'static) {
        self.event_filter = Some(Box::new(f));
    }

    /// Delivers every event again, now, and stops filtering.
    pub fn clear_event_filter(&mut self) {
        self.event_filter = None;
    }

    /// Sends the held events, oldest first; returns how many.
    pub fn release_held(&mut self) -> usize {
        let held = core::mem::take(&mut self.held);
        for (p, t) in &held {
            self.send_event(p, t);
        }
        held.len()
    }

    /// Events held back now.
    pub fn held_events(&self) -> usize {
        self.held.len()
    }

    /// Events dropped by the filter, and merged into a held one.
    pub fn events_dropped(&self) -> (u64, u64) {
        (self.events_dropped, self.events_coalesced)
    }

    /// Raw bytes for the response stream, as if xenstored sent them.
    pub fn push_raw(&mut self, bytes: &[u8]) {
        self.out.extend(bytes);
    }

    // --- Direct access, as another domain (no wire, events fire) ---

    /// The value of `path` (absolute), ignoring permissions.
    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        self.tree.get(path).map(|n| n.value.clone())
    }

    /// The permissions of `path` (absolute).
    pub fn perms(&self, path: &str) -> Option<Vec<Perm>> {
        self.tree.get(path).map(|n| n.perms.clone())
    }

    /// Writes `path` (absolute) as domain `dom`, firing watches.
    pub fn write_as(&mut self, dom: DomId, path: &str, value: &[u8]) -> Result<(), XsErrno> {
        let r = self.ctx(TxId::NONE)?.write(dom, path, value);
        self.fire_changes();
        r
    }

    /// Creates `path` (absolute) as domain `dom`, firing watches.
    pub fn mkdir_as(&mut self, dom: DomId, path: &str) -> Result<(), XsErrno> {
        let r = self.ctx(TxId::NONE)?.mkdir(dom, path);
        self.fire_changes();
        r
    }

    /// Removes `path` (absolute) as domain `dom`, firing watches.
    pub fn rm_as(&mut self, dom: DomId, path: &str) -> Result<(), XsErrno> {
        let r = self.ctx(TxId::NONE)?.rm(dom, path);
        self.fire_changes();
        r
    }

    /// Sets the permissions of `path` (absolute) as domain `dom`.
    pub fn set_perms_as(&mut self, dom: DomId, path: &str, perms: &[Perm]) -> Result<(), XsErrno> {
        let r = self.ctx(TxId::NONE)?.set_perms(dom, path, perms);
        self.fire_changes();
        r
    }

    // --- The ring side ---

    /// Announces the fake's features on the page (it reports errors in the
    /// page's `error` field, and resets a connection on request if
    /// [`FakeConfig::reconnection`]).
    pub fn attach(&self, page: &XenstoreDomainInterface) {
        let reconnect = if self.config.reconnection { SERVER_FEATURE_RECONNECTION } else { 0 };
        page.server_features.store(SERVER_FEATURE_ERROR | reconnect, Ordering::Release);
    }

    /// Times the guest's connection was reset on its request.
    pub fn reconnections(&self) -> u64 {
        self.reconnections
    }

    /// Makes the `rsp` ring's indices claim more than the ring holds, as a
    /// buggy or hostile xenstored (or a stray write) could.
    pub fn corrupt_rsp_indices(&mut self, page: &XenstoreDomainInterface) {
        let cons = page.rsp_cons.load(Ordering::Relaxed);
        page.rsp_prod.store(cons.wrapping_add(0x8000_0000), Ordering::Release);
        self.stalled = true;
    }

    /// The reconnection protocol (xs_wire.h, docs/misc/xenstore-ring.txt):
    /// the guest set `connection` to RECONNECT; drop everything of the
    /// connection (watches, transactions, partial messages), zero the
    /// indices and the error, and say CONNECTED.
    fn reconnect(&mut self, page: &XenstoreDomainInterface) {
        self.watches.clear();
        self.txs.clear();
        self.out.clear();
        self.inbuf.clear();
        self.held.clear();
        self.broken = false;
        self.stalled = false;
        for idx in [&page.req_cons, &page.req_prod, &page.rsp_cons, &page.rsp_prod] {
            idx.store(0, Ordering::Relaxed);
        }
        page.error.store(ERROR_NONE, Ordering::Relaxed);
        page.connection.store(CONNECTED, Ordering::Release);
        self.reconnections += 1;
    }

    /// Does what xenstored does when the guest notifies it: takes requests
    /// from the `req` ring, answers them, and puts as much output as fits
    /// in the `rsp` ring. Returns whether any byte moved.
    pub fn serve(&mut self, page: &XenstoreDomainInterface) -> bool {
        if self.config.reconnection && page.connection.load(Ordering::Acquire) == RECONNECT {
            self.reconnect(page);
            return true;
        }
        if self.stalled || self.broken {
            return false;
        }
        let mut moved = false;
        let mut chunk = [0u8; 1024];
        // As xenstored's loop: read what may be read, write what fits, and
        // again while that made progress (writing may lift the quota).
        loop {
            let mut progress = false;
            loop {
                if self.config.max_unwritten.is_some_and(|m| self.out.len() >= m) {
                    break;
                }
                match Ring::requests(page).read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        progress = true;
                        self.inbuf.extend_from_slice(&chunk[..n]);
                    }
                    Err(_) => return self.break_connection(page, ERROR_RINGIDX),
                }
                loop {
                    match Message::decode(&self.inbuf) {
                        Ok(Some((msg, used))) => {
                            self.inbuf.drain(..used);
                            self.handle(msg);
                        }
                        Ok(None) => break,
                        Err(_) => return self.break_connection(page, ERROR_PROTO),
                    }
                }
            }
            while !self.out.is_empty() {
                let (a, _) = self.out.as_slices();
                match Ring::responses(page).write(a) {
                    Ok(0) => break,
                    Ok(n) => {
                        progress = true;
                        self.out.drain(..n);
                    }
                    Err(_) => return self.break_connection(page, ERROR_RINGIDX),
                }
            }
            moved |= progress;
            if !progress {
                break moved;
            }
        }
    }

    fn break_connection(&mut self, page: &XenstoreDomainInterface, error: u32) -> bool {
        self.broken = true;
        page.error.store(error, Ordering::Release);
        true
    }

    /// Turns queued changes into watch events.
    fn fire_changes(&mut self) {
        for change in core::mem::take(&mut self.changes) {
            let (path, recursive) = match &change {
                Change::Write(p) => (p.as_str(), false),
                Change::Rm(p) => (p.as_str(), true),
            };
            let mut events = Vec::new();
            for w in &self.watches {
                if w.abs.starts_with('@') {
                    continue;
                }
                let hit = if tree::is_at_or_below(path, &w.abs) {
                    Some(path)
                } else if recursive && tree::is_at_or_below(&w.abs, path) {
                    Some(w.abs.as_str())
                } else {
                    None
                };
                if let Some(p) = hit {
                    events.push((self.as_given(p, &w.path), w.token.clone()));
                }
            }
            for (p, t) in events {
                self.emit_event(&p, &t);
            }
        }
    }

    /// `abs` as the watcher sees it: relative if it registered a relative path.
    fn as_given(&self, abs: &str, watch_path: &str) -> String {
        let home = self.home();
        if !watch_path.starts_with('/') && !watch_path.starts_with('@') {
            if let Some(rest) = abs.strip_prefix(&home).and_then(|r| r.strip_prefix('/')) {
                return rest.into();
            }
        }
        abs.into()
    }

    fn emit_event(&mut self, path: &str, token: &str) {
        let fate = match self.event_filter.as_mut() {
            Some(f) => f(path, token),
            None => EventFate::Deliver,
        };
        match fate {
            EventFate::Deliver => self.send_event(path, token),
            EventFate::Hold => {
                if self.held.iter().any(|(p, t)| p == path && t == token) {
                    self.events_coalesced += 1;
                } else {
                    self.held.push((path.into(), token.into()));
                }
            }
            EventFate::Drop => self.events_dropped += 1,
        }
    }

    fn send_event(&mut self, path: &str, token: &str) {
        let mut payload = Vec::with_capacity(path.len() + token.len() + 2);
        payload.extend_from_slice(path.as_bytes());
        payload.push(0);
        payload.extend_from_slice(token.as_bytes());
        payload.push(0);
        if let Ok(m) = Message::new(MsgType::WatchEvent, ReqId(0), TxId::NONE, payload) {
            self.out.extend(m.encode());
        }
    }

    /// Answers one request from the guest.
    fn handle(&mut self, req: Message) {
        if let Some(mut f) = self.interleave.take() {
            f(self);
            if self.interleave.is_none() {
                self.interleave = Some(f);
            }
        }
        self.seen.push(req.header);
        let h = req.header;
        let mut after_reply = Vec::new();
        let result = match h.msg_type() {
            Some(ty) => self.dispatch(ty, h.tx_id, &req.payload, &mut after_reply),
            None => Err(XsErrno::EINVAL),
        };
        let (ty, payload) = match result {
            Ok(p) => (h.ty, p),
            Err(e) => {
                let mut p = Vec::from(e.as_str().as_bytes());
                p.push(0);
                (MsgType::Error as u32, p)
            }
        };
        let reply = Message {
            header: Header { ty, req_id: h.req_id, tx_id: h.tx_id, len: payload.len() as u32 },
            payload,
        };
        if self.config.events_before_reply {
            self.fire_changes();
        }
        match self.mangler.take() {
            Some(f) => self.out.extend(f(reply)),
            None => self.out.extend(reply.encode()),
        }
        self.fire_changes();
        for (p, t) in after_reply {
            self.emit_event(&p, &t);
        }
    }
}
