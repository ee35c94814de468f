//! The client: numbers requests, sends them one at a time, matches each
//! reply to its request by id, and sets watch events aside (in order) while
//! it waits.
//!
//! The operations themselves live in [`Store`], shared with
//! [`crate::Transaction`] so code can be written once for both.

use crate::errors::{Error, XsErrno};
use crate::perms::{parse_decimal, Perm};
use crate::reply;
use crate::request;
use crate::transport::Transport;
use crate::types::{Instant, ReqId, TxId};
use crate::watch::{EventQueue, WatchEvent};
use crate::wire::{Message, MsgType};
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;
use hypercall::DomId;

/// How long a request may take, by default. xenstored answers in
/// microseconds; seconds mean it is stuck or gone, and the guest should say
/// so rather than hang.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times [`Client::transaction`] starts over on `EAGAIN`.
pub const DEFAULT_TX_ATTEMPTS: u32 = 16;
/// How many abandoned request ids are remembered, so their late replies
/// are dropped quietly instead of being reported as unknown.
const ABANDONED_MAX: usize = 32;

/// The operations that work both outside and inside a transaction.
pub trait Store {
    /// Sends one request of type `ty` and returns the reply that answers
    /// it (which may be `XS_ERROR`; see [`reply::payload_for`]).
    fn request(&mut self, ty: MsgType, payload: Vec<u8>) -> Result<Message, Error>;

    /// The value of `path`, raw bytes.
    fn read(&mut self, path: &str) -> Result<Vec<u8>, Error> {
        let m = self.request(MsgType::Read, request::path(path)?)?;
        Ok(reply::payload_for(MsgType::Read, &m)?.to_vec())
    }

    /// The value of `path`, or `None` if there is no such node.
    fn read_opt(&mut self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.read(path) {
            Ok(v) => Ok(Some(v)),
            Err(Error::Xs(XsErrno::ENOENT)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The value of `path` as text.
    fn read_string(&mut self, path: &str) -> Result<String, Error> {
        String::from_utf8(self.read(path)?).map_err(|_| Error::NotUtf8)
    }

    /// The value of `path` as an unsigned decimal number (`domid`,
    /// `memory/target`, `state`...).
    fn read_u64(&mut self, path: &str) -> Result<u64, Error> {
        parse_decimal(&self.read(path)?).ok_or(Error::NotANumber)
    }

    /// Sets `path` to `value`, creating it and any missing parents.
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), Error> {
        let m = self.request(MsgType::Write, request::write(path, value)?)?;
        Ok(reply::ok(reply::payload_for(MsgType::Write, &m)?)?)
    }

    /// Creates `path` (empty) if it does not exist.
    fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        let m = self.request(MsgType::Mkdir, request::path(path)?)?;
        Ok(reply::ok(reply::payload_for(MsgType::Mkdir, &m)?)?)
    }

    /// Removes `path` and everything below it.
    fn rm(&mut self, path: &str) -> Result<(), Error> {
        let m = self.request(MsgType::Rm, request::path(path)?)?;
        Ok(reply::ok(reply::payload_for(MsgType::Rm, &m)?)?)
    }

    /// The names of the children of `path`.
    fn directory(&mut self, path: &str) -> Result<Vec<String>, Error> {
        let m = self.request(MsgType::Directory, request::path(path)?)?;
        Ok(reply::directory(reply::payload_for(MsgType::Directory, &m)?)?)
    }

    /// The permissions of `path`; the first entry is the owner's.
    fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, Error> {
        let m = self.request(MsgType::GetPerms, request::path(path)?)?;
        Ok(reply::perms(reply::payload_for(MsgType::GetPerms, &m)?)?)
    }

    /// Replaces the permissions of `path`; the first entry is the owner.
    fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), Error> {
        let m = self.request(MsgType::SetPerms, request::set_perms(path, perms)?)?;
        Ok(reply::ok(reply::payload_for(MsgType::SetPerms, &m)?)?)
    }
}

/// A connection to xenstored over some [`Transport`].
pub struct Client<T> {
    transport: T,
    next_req: u32,
    events: EventQueue,
    /// Requests given up on (timed out, or answered by a stranger): their
    /// replies may still come and are then dropped.
    abandoned: VecDeque<ReqId>,
    /// Replies dropped because they answer a request given up on longer
    /// ago than `abandoned` remembers (or answered already).
    late_replies: u64,
    reply_timeout: Option<Duration>,
    tx_attempts: u32,
    /// The watches registered (path, token), to register again with a
    /// new xenstored after a restore.
    watches: Vec<(String, String)>,
}

impl<T: Transport> Client<T> {
    pub fn new(transport: T) -> Client<T> {
        Client {
            transport,
            next_req: 1,
            events: EventQueue::new(EventQueue::DEFAULT_CAP),
            abandoned: VecDeque::new(),
            late_replies: 0,
            reply_timeout: Some(DEFAULT_REPLY_TIMEOUT),
            tx_attempts: DEFAULT_TX_ATTEMPTS,
            watches: Vec::new(),
        }
    }

    /// How long one request may take (`None`: forever).
    pub fn set_reply_timeout(&mut self, t: Option<Duration>) {
        self.reply_timeout = t;
    }

    /// How many times [`Client::transaction`] tries before giving up.
    pub fn set_tx_attempts(&mut self, n: u32) {
        self.tx_attempts = n.max(1);
    }

    /// How many watch events may wait to be handed out before the oldest
    /// are dropped (and counted in [`Client::events_lost`]).
    pub fn set_event_queue_cap(&mut self, cap: usize) {
        let mut q = EventQueue::new(cap);
        while let Some(e) = self.events.pop() {
            q.push(e);
        }
        self.events = q;
    }

    pub(crate) fn tx_attempts(&self) -> u32 {
        self.tx_attempts
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The current time of the transport's clock, for deadlines.
    pub fn now(&self) -> Instant {
        self.transport.now()
    }

    fn alloc_req_id(&mut self) -> ReqId {
        // 0 is what xenstored puts in watch events; never use it.
        if self.next_req == 0 {
            self.next_req = 1;
        }
        let id = ReqId(self.next_req);
        self.next_req = self.next_req.wrapping_add(1);
        id
    }

    fn abandon(&mut self, id: ReqId) {
        if self.abandoned.len() == ABANDONED_MAX {
            self.abandoned.pop_front();
        }
        self.abandoned.push_back(id);
    }

    /// Whether `id` was abandoned; forgets it (one reply per request).
    fn was_abandoned(&mut self, id: ReqId) -> bool {
        match self.abandoned.iter().position(|&a| a == id) {
            Some(i) => {
                self.abandoned.remove(i);
                true
            }
            None => false,
        }
    }

    /// Handles a message that is not the awaited reply: queues events,
    /// drops late replies, reports anything else.
    fn stray(&mut self, msg: Message) -> Result<(), Error> {
        if msg.header.ty == MsgType::WatchEvent as u32 {
            self.events.push(reply::watch_event(&msg.payload)?);
            return Ok(());
        }
        if self.was_abandoned(msg.header.req_id) {
            return Ok(());
        }
        if self.issued(msg.header.req_id) {
            // Given up on long ago: after a stall xenstored answers every
            // request it finds, and one of those must not fail the request
            // waited for now (each stale answer would fail the next one).
            self.late_replies += 1;
            return Ok(());
        }
        Err(Error::UnknownReqId(msg.header.req_id))
    }

    /// Whether `id` is one this client sent (among the last 2^31 ids; 0
    /// never is): a reply to anything else is a stranger's.
    fn issued(&self, id: ReqId) -> bool {
        let back = self.next_req.wrapping_sub(id.0);
        id.0 != 0 && back != 0 && back <= 1 << 31
    }

    /// Replies dropped as answering a request given up on long ago.
    pub fn late_replies(&self) -> u64 {
        self.late_replies
    }

    /// Sends a request in transaction `tx` and waits for its reply.
    pub fn request_in(
        &mut self,
        tx: TxId,
        ty: MsgType,
        payload: Vec<u8>,
    ) -> Result<Message, Error> {
        let id = self.alloc_req_id();
        let bytes = Message::new(ty, id, tx, payload)?.encode();
        let deadline = self.reply_timeout.map(|t| self.transport.now().after(t));
        let result = self.exchange(id, &bytes, deadline);
        if result.is_err() {
            // Whatever went wrong, a reply to `id` may still arrive.
            self.abandon(id);
        }
        result
    }

    /// Sends every request before waiting for any reply, so `n` requests
    /// cost about one round trip to xenstored instead of `n` (at boot,
    /// when a guest reads who it is and sets up its watches). Replies are
    /// matched by request id; each is returned as a single request's would
    /// be, in the order asked. Watch events that arrive meanwhile are
    /// queued as usual. On an error every unanswered request is abandoned
    /// (its late reply is dropped).
    pub fn pipeline(&mut self, reqs: Vec<(MsgType, Vec<u8>)>) -> Result<Vec<Message>, Error> {
        let deadline = self.reply_timeout.map(|t| self.transport.now().after(t));
        let mut ids = Vec::with_capacity(reqs.len());
        let mut result = Ok(());
        for (ty, payload) in reqs {
            let id = self.alloc_req_id();
            let sent = Message::new(ty, id, TxId::NONE, payload)
                .and_then(|m| self.transport.send(&m.encode(), deadline));
            if let Err(e) = sent {
                result = Err(e);
                break;
            }
            ids.push(id);
        }
        let mut replies: Vec<Option<Message>> = ids.iter().map(|_| None).collect();
        let mut left = ids.len();
        while result.is_ok() && left > 0 {
            match self.transport.recv(deadline) {
                Ok(msg) => {
                    let slot = (msg.header.ty != MsgType::WatchEvent as u32)
                        .then(|| ids.iter().position(|&id| id == msg.header.req_id))
                        .flatten()
                        .filter(|&i| replies[i].is_none());
                    match slot {
                        Some(i) => {
                            replies[i] = Some(msg);
                            left -= 1;
                        }
                        None => result = self.stray(msg),
                    }
                }
                Err(e) => result = Err(e),
            }
        }
        if let Err(e) = result {
            for (id, r) in ids.iter().zip(&replies) {
                if r.is_none() {
                    self.abandon(*id);
                }
            }
            return Err(e);
        }
        Ok(replies.into_iter().map(|m| m.expect("every id answered")).collect())
    }

    fn exchange(
        &mut self,
        id: ReqId,
        bytes: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Message, Error> {
        self.transport.send(bytes, deadline)?;
        loop {
            let msg = self.transport.recv(deadline)?;
            if msg.header.req_id == id && msg.header.ty != MsgType::WatchEvent as u32 {
                return Ok(msg);
            }
            self.stray(msg)?;
        }
    }

    /// Registers a watch on `path` (and everything below it). xenstored
    /// fires it once right away, then on every change; events carry
    /// `token`, which should be unique per watch.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        let m = self.request(MsgType::Watch, request::watch(path, token)?)?;
        reply::ok(reply::payload_for(MsgType::Watch, &m)?)?;
        self.remember_watch(path, token);
        Ok(())
    }

    /// Records a watch registered by other means (a pipelined request).
    pub fn remember_watch(&mut self, path: &str, token: &str) {
        if !self.watches.iter().any(|(p, t)| p == path && t == token) {
            self.watches.push((path.into(), token.into()));
        }
    }

    /// The watches registered, as (path, token).
    pub fn watches(&self) -> &[(String, String)] {
        &self.watches
    }

    /// After the domain was restored (or migrated): the xenstored that
    /// serves it now has none of our watches and can have sent no reply to
    /// anything pending. Forgets requests in flight and queued events, then
    /// registers every watch again, in one pipelined round trip (each then
    /// fires once, as a new watch does, so its owner looks again).
    pub fn rewatch_all(&mut self) -> Result<usize, Error> {
        self.abandoned.clear();
        self.events.clear();
        let reqs = self
            .watches
            .iter()
            .map(|(p, t)| Ok((MsgType::Watch, request::watch(p, t)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        let n = reqs.len();
        for m in self.pipeline(reqs)? {
            reply::ok(reply::payload_for(MsgType::Watch, &m)?)?;
        }
        Ok(n)
    }

    /// Removes a watch; queued events of its token are dropped too.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        let m = self.request(MsgType::Unwatch, request::watch(path, token)?)?;
        reply::ok(reply::payload_for(MsgType::Unwatch, &m)?)?;
        self.watches.retain(|(p, t)| !(p == path && t == token));
        self.events.forget_token(token);
        Ok(())
    }

    /// Removes every watch of this connection (what a guest does at boot,
    /// in case an earlier kernel in this domain left some).
    pub fn reset_watches(&mut self) -> Result<(), Error> {
        let m = self.request(MsgType::ResetWatches, request::empty())?;
        reply::ok(reply::payload_for(MsgType::ResetWatches, &m)?)?;
        self.watches.clear();
        self.events.clear();
        Ok(())
    }

    /// The home path of domain `dom` (`/local/domain/<dom>`).
    pub fn get_domain_path(&mut self, dom: DomId) -> Result<String, Error> {
        let m = self.request(MsgType::GetDomainPath, request::domid(dom))?;
        Ok(reply::domain_path(reply::payload_for(MsgType::GetDomainPath, &m)?)?)
    }

    /// The next watch event, waiting for one until `deadline` (`None`:
    /// forever; a past deadline: only what already arrived).
    pub fn next_event(&mut self, deadline: Option<Instant>) -> Result<WatchEvent, Error> {
        loop {
            if let Some(e) = self.events.pop() {
                return Ok(e);
            }
            let msg = self.transport.recv(deadline)?;
            self.stray(msg)?;
        }
    }

    /// The next watch event if one has arrived, without waiting.
    pub fn try_next_event(&mut self) -> Result<Option<WatchEvent>, Error> {
        let now = self.transport.now();
        match self.next_event(Some(now)) {
            Ok(e) => Ok(Some(e)),
            Err(Error::TimedOut) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Events received and not yet handed out.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Resets the connection to xenstored ([`Transport::reconnect`]):
    /// after it, no watch of this client exists (re-register them) and no
    /// reply to an earlier request will come.
    pub fn reconnect(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        self.transport.reconnect(deadline)?;
        self.abandoned.clear();
        self.events.clear();
        Ok(())
    }

    /// Events dropped because the queue was full.
    pub fn events_lost(&self) -> u64 {
        self.events.lost()
    }
}

impl<T: Transport> Store for Client<T> {
    fn request(&mut self, ty: MsgType, payload: Vec<u8>) -> Result<Message, Error> {
        self.request_in(TxId::NONE, ty, payload)
    }
}
