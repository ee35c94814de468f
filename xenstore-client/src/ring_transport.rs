//! [`Transport`] over the store page: messages go through the `req` ring
//! and come back through the `rsp` ring, with waits on the event channel
//! (through [`RingEvents`]) instead of spinning when a ring is full or
//! empty.

use crate::errors::{Error, RingError};
use crate::ring::Ring;
use crate::transport::Transport;
use crate::types::Instant;
use crate::wire::{Message, MESSAGE_MAX};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use core::time::Duration;
use hypercall::abi::xenstore::{
    XenstoreDomainInterface, CONNECTED, ERROR_NONE, RECONNECT, RING_SIZE, SERVER_FEATURE_ERROR,
    SERVER_FEATURE_RECONNECTION,
};

/// How long one wait for xenstored lasts before the transport looks at
/// both rings again (and, if xenstored has not taken requests we wrote,
/// notifies it again). An event lost in either direction then costs at
/// most this instead of the whole reply timeout, and a reply that is in
/// the ring when the deadline comes is taken, not reported as a timeout.
pub const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// The deadline passed while waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

/// How the ring transport signals xenstored and waits for it: in the guest,
/// the store event channel from `start_info` and `SCHEDOP_poll`.
pub trait RingEvents {
    /// Tells xenstored the rings changed (`EVTCHNOP_send` on the store port).
    fn notify(&mut self);

    /// Blocks until xenstored may have changed the rings (the store port is
    /// pending) or `deadline` passes. Returning early is harmless: the
    /// caller looks at the rings again and waits again. To lose no wakeup,
    /// clear the port's pending bit *after* it fired and *before*
    /// returning, never before blocking.
    fn wait(&mut self, deadline: Option<Instant>) -> Result<(), TimedOut>;

    /// The clock deadlines are in (Xen system time in the guest).
    fn now(&self) -> Instant;
}

/// The guest's end of the store page.
pub struct RingTransport<'a, E> {
    page: &'a XenstoreDomainInterface,
    events: E,
    /// Bytes of messages accepted by `send` and not yet in the ring.
    out: VecDeque<u8>,
    /// Bytes copied out of the `rsp` ring, not yet a whole message.
    inbuf: Vec<u8>,
    /// Set once the stream is beyond repair (bad indices, a header that
    /// lies about its length): every later call returns it.
    broken: Option<Error>,
    /// Waits that ended by [`LOOK_AGAIN`] with requests still unread by
    /// xenstored, each followed by another notification.
    renotified: u64,
}

impl<'a, E: RingEvents> RingTransport<'a, E> {
    pub fn new(page: &'a XenstoreDomainInterface, events: E) -> Self {
        RingTransport {
            page,
            events,
            out: VecDeque::new(),
            inbuf: Vec::new(),
            broken: None,
            renotified: 0,
        }
    }

    /// The event mechanism (e.g. for a test to reach its fake server).
    pub fn events(&self) -> &E {
        &self.events
    }

    pub fn events_mut(&mut self) -> &mut E {
        &mut self.events
    }

    /// After a restore: the same page, a new event channel and a new
    /// xenstored. Drops half-sent and half-received bytes (there are none
    /// when the guest suspended between requests) and any reply the old
    /// xenstored left unread, so the next request starts a clean stream.
    pub fn resume(&mut self, events: E) {
        self.events = events;
        self.out.clear();
        self.inbuf.clear();
        self.broken = None;
        let prod = self.page.rsp_prod.load(Ordering::Acquire);
        self.page.rsp_cons.store(prod, Ordering::Release);
    }

    /// Times a wait went a whole [`LOOK_AGAIN`] without news while
    /// xenstored had not taken requests from the ring, and it was notified
    /// again.
    pub fn renotified(&self) -> u64 {
        self.renotified
    }

    /// Whether the `req` ring holds bytes xenstored has not taken yet.
    fn requests_unread(&self) -> bool {
        Ring::requests(self.page).pending().is_ok_and(|n| n > 0)
    }

    /// The error that broke the stream, if one did.
    pub fn broken(&self) -> Option<&Error> {
        self.broken.as_ref()
    }

    fn fail<T>(&mut self, e: Error) -> Result<T, Error> {
        self.broken = Some(e.clone());
        Err(e)
    }

    /// xenstored's own report of a broken connection, where it has the
    /// `error` field.
    fn server_error(&self) -> Option<Error> {
        let features = self.page.server_features.load(Ordering::Acquire);
        let error = self.page.error.load(Ordering::Acquire);
        (features & SERVER_FEATURE_ERROR != 0 && error != ERROR_NONE)
            .then_some(Error::Ring(RingError::ServerError(error)))
    }

    /// Moves queued output into the `req` ring. Returns whether any moved.
    fn flush(&mut self) -> Result<bool, Error> {
        let ring = Ring::requests(self.page);
        let mut moved = false;
        while !self.out.is_empty() {
            let (a, _) = self.out.as_slices();
            let n = match ring.write(a) {
                Ok(n) => n,
                Err(e) => return self.fail(e.into()),
            };
            if n == 0 {
                break;
            }
            self.out.drain(..n);
            moved = true;
        }
        if moved {
            self.events.notify();
        }
        Ok(moved)
    }

    /// Copies whatever the `rsp` ring holds into `inbuf`. Returns whether
    /// anything came.
    fn fill(&mut self) -> Result<bool, Error> {
        let ring = Ring::responses(self.page);
        // Never hold more than one whole message plus one ring's worth.
        let room = (MESSAGE_MAX + RING_SIZE).saturating_sub(self.inbuf.len());
        let mut chunk = [0u8; RING_SIZE];
        let want = room.min(RING_SIZE);
        let n = match ring.read(&mut chunk[..want]) {
            Ok(n) => n,
            Err(e) => return self.fail(e.into()),
        };
        if n > 0 {
            self.inbuf.extend_from_slice(&chunk[..n]);
            // xenstored may be waiting for space to write the rest.
            self.events.notify();
        }
        Ok(n > 0)
    }

    /// Waits for the other side, or says the deadline passed. Returning
    /// `Ok` means "look at the rings again": the caller does, and calls
    /// again, so the last look comes after the deadline's wait and a reply
    /// already there is never reported as a timeout.
    ///
    /// While xenstored owes us something (a deadline is set: a reply or
    /// ring space is awaited; or requests sit unread in the ring), a wait
    /// lasts at most [`LOOK_AGAIN`]; if it ends without news and xenstored
    /// has still not taken our requests, it is notified again. xenstored
    /// looks at a ring only when something wakes it, so a notification
    /// that did not reach it would otherwise leave the requests there
    /// until some other client happens to wake it. An idle wait (no
    /// deadline, nothing unread) sleeps until an event, as before.
    fn wait(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        if let Some(e) = self.server_error() {
            return self.fail(e);
        }
        let now = self.events.now();
        if now.reached(deadline) {
            return Err(Error::TimedOut);
        }
        let until = if deadline.is_none() && !self.requests_unread() {
            None
        } else {
            let slice = now.after(LOOK_AGAIN);
            Some(deadline.map_or(slice, |d| d.min(slice)))
        };
        match self.events.wait(until) {
            Ok(()) => Ok(()),
            Err(TimedOut) => {
                if self.requests_unread() {
                    self.renotified += 1;
                    self.events.notify();
                }
                Ok(())
            }
        }
    }
}

impl<E: RingEvents> Transport for RingTransport<'_, E> {
    fn send(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<(), Error> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        self.out.extend(msg);
        loop {
            self.flush()?;
            if self.out.is_empty() {
                return Ok(());
            }
            // No room for the rest: take what xenstored wrote meanwhile
            // before waiting. xenstored stops reading requests while the
            // answers to earlier ones cannot go into our full `rsp` ring
            // (the C xenstored's quota of outstanding requests), so waiting
            // for `req` room without reading would wait for ever.
            if self.fill()? {
                continue;
            }
            self.wait(deadline)?;
        }
    }

    fn recv(&mut self, deadline: Option<Instant>) -> Result<Message, Error> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        loop {
            // Earlier sends that timed out still go out, or the request
            // stream would stay cut in the middle of a message.
            self.flush()?;
            match Message::decode(&self.inbuf) {
                Ok(Some((msg, used))) => {
                    self.inbuf.drain(..used);
                    return Ok(msg);
                }
                Ok(None) => {}
                Err(m) => return self.fail(m.into()),
            }
            if !self.fill()? {
                self.wait(deadline)?;
            }
        }
    }

    fn now(&self) -> Instant {
        self.events.now()
    }

    fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// The XenStore ring reconnection protocol (xs_wire.h,
    /// `XENSTORE_SERVER_FEATURE_RECONNECTION`; docs/misc/xenstore-ring.txt):
    /// set `connection` to RECONNECT, notify, and wait until xenstored,
    /// having zeroed the indices and dropped the connection's watches and
    /// transactions, sets it back to CONNECTED. Then the stream starts
    /// afresh: nothing half-sent or half-received survives.
    fn reconnect(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let features = self.page.server_features.load(Ordering::Acquire);
        if features & SERVER_FEATURE_RECONNECTION == 0 {
            return Err(Error::Ring(RingError::NoReconnect));
        }
        self.page.connection.store(RECONNECT, Ordering::Release);
        self.events.notify();
        while self.page.connection.load(Ordering::Acquire) != CONNECTED {
            if self.events.now().reached(deadline) {
                return Err(Error::TimedOut);
            }
            self.events.wait(deadline).map_err(|TimedOut| Error::TimedOut)?;
        }
        self.out.clear();
        self.inbuf.clear();
        self.broken = None;
        Ok(())
    }
}
