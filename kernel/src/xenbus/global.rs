//! The guest's one connection to xenstored, over the store page from
//! `start_info`, waiting on the store event channel.

use super::control;
use crate::events;
use crate::timer;
use crate::trace::xenstore::Traced;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;
use hypercall::abi::xenstore::XenstoreDomainInterface;
use hypercall::{DomId, EvtchnPort};
use pv_drivers::xenbus::Bus;
use spin::{Mutex, Once};
use xenstore_client::{
    reply, request, Client, Error, Instant, MsgType, RingEvents, RingTransport, Store, TimedOut,
};

/// Wakes the ring transport: every store event bumps a counter, and a
/// waiter sleeps until the counter moves past what it last saw.
pub struct StoreEvents {
    port: EvtchnPort,
    seen: u64,
    /// The store page, for the report a timed-out wait gives.
    page: &'static XenstoreDomainInterface,
}

static STORE_EVENTS: AtomicU64 = AtomicU64::new(0);
/// Waits for xenstored that ended by their deadline, and `EVTCHNOP_send`s
/// on the store port that Xen refused.
static WAIT_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
static SEND_ERRORS: AtomicU64 = AtomicU64::new(0);
/// `xenstore.lose_notify=N`: notifications still to skip once a second
/// vCPU runs (a notification that never reaches xenstored, made to
/// happen: docs/smp.md), and how many were.
static LOSE_LEFT: AtomicU32 = AtomicU32::new(0);
static LOST: AtomicU32 = AtomicU32::new(0);

fn on_store_event(_: EvtchnPort, _: usize) {
    STORE_EVENTS.fetch_add(1, Ordering::SeqCst);
}

/// Events on the store's channel so far (a watch event or a reply has
/// arrived since the count last moved): a loop that waits on its own
/// events too can wake for the toolstack's requests at once instead of
/// polling XenStore on a tick.
pub fn store_events() -> u64 {
    STORE_EVENTS.load(Ordering::SeqCst)
}

impl RingEvents for StoreEvents {
    fn notify(&mut self) {
        if LOSE_LEFT.load(Ordering::Relaxed) > 0 && crate::smp::count() > 1 {
            LOSE_LEFT.fetch_sub(1, Ordering::Relaxed);
            let n = LOST.fetch_add(1, Ordering::Relaxed) + 1;
            crate::kprintln!("xenstore: notification {n} not sent (xenstore.lose_notify)");
            return;
        }
        if let Err(e) = events::send(self.port) {
            if SEND_ERRORS.fetch_add(1, Ordering::Relaxed) < 3 {
                log::warn!("xenstore: notifying port {}: {e}", self.port);
            }
        }
    }

    fn wait(&mut self, deadline: Option<Instant>) -> Result<(), TimedOut> {
        let seen = self.seen;
        let moved = || STORE_EVENTS.load(Ordering::SeqCst) != seen;
        let woke = match deadline {
            Some(d) => timer::wait_until(d.0, moved),
            None => {
                timer::block_until(moved);
                true
            }
        };
        self.seen = STORE_EVENTS.load(Ordering::SeqCst);
        if woke {
            Ok(())
        } else {
            // A wait lasts at most the transport's LOOK_AGAIN while a reply
            // is due. The first few that end without news, then every
            // 16th: what the rings and the store port looked like when
            // xenstored seemed silent.
            let n = WAIT_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
            if n < 4 || n.is_multiple_of(16) {
                crate::kprintln!(
                    "xenstore: no news from xenstored (wait #{}): {}",
                    n + 1,
                    snapshot(self.port, self.page)
                );
            }
            Err(TimedOut)
        }
    }

    fn now(&self) -> Instant {
        Instant(platform::now_ns())
    }
}

/// The store rings' indices, the store port's state (ours and Xen's) and
/// the event counts: what tells a silent xenstored (requests unread) from
/// a lost wake-up (a reply unread), and where the port's events go.
fn snapshot(port: EvtchnPort, page: &XenstoreDomainInterface) -> String {
    let ld = |a: &core::sync::atomic::AtomicU32| a.load(Ordering::SeqCst);
    let xen = match hypercall::ops::event_channel::status(DomId::SELF, port) {
        Ok((state, vcpu)) => alloc::format!("state {state} vCPU {vcpu}"),
        Err(e) => alloc::format!("status refused: {e}"),
    };
    let upcalls: String = (0..crate::smp::count())
        .map(|n| alloc::format!(" {n}:{}", events::upcalls_on(n)))
        .collect();
    alloc::format!(
        "req prod {} cons {}, rsp prod {} cons {}; port {port}: {} (word {:#x}), Xen: {xen}; \
         store events {}, upcalls{upcalls}, sends {} ({} refused), on vCPU {}",
        ld(&page.req_prod),
        ld(&page.req_cons),
        ld(&page.rsp_prod),
        ld(&page.rsp_cons),
        if events::is_pending(port) { "pending" } else { "not pending" },
        events::word(port),
        STORE_EVENTS.load(Ordering::SeqCst),
        events::sends(),
        SEND_ERRORS.load(Ordering::Relaxed),
        platform::smp::current(),
    )
}

/// The bus over the store ring, with `trace=xenstore` around the transport.
pub type GuestBus = Bus<Traced<RingTransport<'static, StoreEvents>>>;

/// What the store says about this domain.
#[derive(Clone, Debug)]
pub struct Identity {
    pub domid: DomId,
    pub name: String,
    pub vm: String,
}

static BUS: Once<Mutex<GuestBus>> = Once::new();
static IDENTITY: Once<Identity> = Once::new();

/// How long one request may wait for xenstored before it is an error.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to xenstored, learns who we are, and starts answering the
/// toolstack's control requests. `Ok(None)` in dom0 (no store page).
pub fn init() -> Result<Option<&'static Identity>, Error> {
    let Some((page, port)) = platform::store_page() else {
        return Ok(None);
    };
    let lose = crate::cmdline::Cmdline::new(platform::cmdline()).number("xenstore.lose_notify");
    LOSE_LEFT.store(lose.unwrap_or(0) as u32, Ordering::Relaxed);
    if let Err(e) = events::register(port, on_store_event, 0) {
        log::warn!("store port {port}: {e}");
    }
    let seen = STORE_EVENTS.load(Ordering::SeqCst);
    crate::trace::label(port, "xenstore");
    let mut client =
        Client::new(Traced::new(RingTransport::new(page, StoreEvents { port, seen, page })));
    client.set_reply_timeout(Some(REPLY_TIMEOUT));
    let mut bus = Bus::new(client);
    // Who we are, in one pipelined round trip to xenstored.
    let reqs = ["domid", "name", "vm"]
        .iter()
        .map(|p| Ok((MsgType::Read, request::path(p)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let replies = bus.xs.pipeline(reqs)?;
    let text = |m: &xenstore_client::Message| -> Result<String, Error> {
        let v = reply::payload_for(MsgType::Read, m)?;
        String::from_utf8(v.to_vec()).map_err(|_| Error::NotUtf8)
    };
    let domid: u64 =
        text(&replies[0])?.trim_end_matches('\0').parse().map_err(|_| Error::NotANumber)?;
    let name = text(&replies[1]).unwrap_or_default();
    let vm = text(&replies[2]).unwrap_or_default();
    control::start(&mut bus)?;
    BUS.call_once(|| Mutex::new(bus));
    Ok(Some(IDENTITY.call_once(|| Identity { domid: DomId(domid as u16), name, vm })))
}

/// Runs `f` with the bus if nobody holds it now (`None` otherwise, or
/// without a store): for looks that may be skipped, from code that may be
/// running under a caller holding the bus.
pub fn try_with<R>(f: impl FnOnce(&mut GuestBus) -> R) -> Option<R> {
    assert!(!events::in_upcall(), "xenstore used from an event handler");
    BUS.get().and_then(|b| b.try_lock()).map(|mut g| f(&mut g))
}

/// This domain's identity, once [`init`] ran.
pub fn identity() -> Option<&'static Identity> {
    IDENTITY.get()
}

/// Runs `f` with the bus; `None` if there is no store (dom0, or before init).
/// Never call it from an event handler: requests block.
pub fn with<R>(f: impl FnOnce(&mut GuestBus) -> R) -> Option<R> {
    assert!(!events::in_upcall(), "xenstore used from an event handler");
    BUS.get().map(|b| f(&mut b.lock()))
}

/// In a restored domain: the store page is where it was (the toolstack
/// keeps its pfn), its event channel is new, and the xenstored serving us
/// has none of our watches. Binds the new port, restarts the ring stream
/// and registers every watch again. Call with upcalls on.
pub fn resume(port: EvtchnPort) -> Result<usize, Error> {
    let Some(bus) = BUS.get() else { return Ok(0) };
    if let Err(e) = events::register(port, on_store_event, 0) {
        log::warn!("store port {port}: {e}");
    }
    let mut bus = bus.lock();
    let seen = STORE_EVENTS.load(Ordering::SeqCst);
    let page = bus.xs.transport_mut().inner_mut().events().page;
    bus.xs.transport_mut().inner_mut().resume(StoreEvents { port, seen, page });
    let n = bus.xs.rewatch_all()?;
    // A new domain, a new id.
    if let Some(v) = bus.xs.read_opt("domid")? {
        if let Some(id) =
            core::str::from_utf8(&v).ok().and_then(|t| t.trim_end_matches('\0').parse().ok())
        {
            DOMID_NOW.store(id, Ordering::Relaxed);
        }
    }
    Ok(n)
}

/// This domain's id now (it changes with a restore or a migration).
static DOMID_NOW: core::sync::atomic::AtomicU16 = core::sync::atomic::AtomicU16::new(0);

/// This domain's id now, once [`init`] ran.
pub fn current_domid() -> Option<DomId> {
    let id = IDENTITY.get()?;
    match DOMID_NOW.load(Ordering::Relaxed) {
        0 => Some(id.domid),
        n => Some(DomId(n)),
    }
}

/// After a XenStore error in a service loop: if the connection is broken
/// (bogus ring indices, a malformed message, xenstored's error report),
/// resets it with the ring reconnection protocol and watches again, so the
/// toolstack's requests still arrive. Says what happened in one line;
/// returns whether the store works (again).
pub fn recover(who: &str, e: &Error) -> bool {
    match with(|bus| bus.recover_if_broken(core::time::Duration::from_secs(5))) {
        None | Some(None) => {
            log::warn!("{who}: xenstore: {e:?}");
            true
        }
        Some(Some(Ok(()))) => {
            crate::kprintln!("{who}: xenstore connection broken ({e:?}); reset and watching again");
            true
        }
        Some(Some(Err(r))) => {
            crate::kprintln!("{who}: xenstore connection broken ({e:?}); cannot reset it: {r:?}");
            false
        }
    }
}
