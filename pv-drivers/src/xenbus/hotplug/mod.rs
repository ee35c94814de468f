//! Hotplug: frontends that come and go (`xl network-attach`/`-detach`,
//! `xl block-attach`/`-detach`), for any driver, without ever missing one.
//!
//! A watch event is only "look again": events may come before, between or
//! after the reads they announce, several changes may come as one event,
//! and an event queue that overflows drops some. So nothing here acts on
//! an event as such. An event (or an overflow of the client's event queue)
//! only marks the manager dirty; [`Hotplug::poll`] then re-reads the whole
//! picture — the ids under `device/<kind>`, each one's `backend`,
//! `backend-id` and own `state`, and its backend's `state` — and moves each
//! device toward where that picture says it should be. Doing it twice is
//! doing it once (every step checks the state it starts from), so extra,
//! late or coalesced events cost a re-read and nothing else.
//!
//! What a device is. An id under `device/<kind>/` is not a device: the
//! toolstack reuses `vif/0` at once for a new one. A connected device is
//! recognised as replaced when its backend path or backend domain changed,
//! when its `state` node no longer holds our Connected (the toolstack
//! writes Initialising into a new device; a 2026 Linux xenbus patch checks
//! the same), when its directory went away, or when its backend's `state` went
//! away or back to Initialising/InitWait (a new backend). The old one is
//! then let go of without a word to XenStore ([`Driver::abandon`]): its
//! nodes belong to the new device.
//!
//! What is watched. `device/<kind>` (new and removed ids, our own writes)
//! and, from the moment an id is seen until it goes, its backend's `state`
//! node: a backend that reaches InitWait after the last `device/` event is
//! seen. A device that is not connected is also re-examined every
//! [`Config::recheck`] whatever the events say, and one that stays in such
//! a state longer than [`Config::stuck_after`] is reported once
//! ([`Happening::Stuck`]); when all are connected, the picture is still
//! re-read every [`Config::idle_recheck`] (xenstored drops watch events of
//! a domain over its quota, and says so to nobody).
//!
//! Every attach and detach is reported ([`Happening`]) with how long the
//! device took to connect since it appeared, and how long after its
//! previous detach.

mod idmap;

use super::bus::Bus;
use super::device::{self, DeviceInfo, XenbusError, XenbusState};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use hypercall::DomId;
use idmap::IdMap;
use xenstore_client::{reply, request, Error, Instant, MsgType, Store, Transport, XsErrno};

/// What a frontend driver does for the manager. Its calls may block (a
/// handshake waits for the backend, with its own timeouts) but must
/// return.
pub trait Driver {
    /// A connected device.
    type Device;
    /// What letting a device go reports (grants revoked and kept...).
    type Closed: fmt::Display;
    /// Why a device did not connect.
    type Error: fmt::Display;

    /// Connects `dev`, whose backend waits in InitWait and whose own
    /// `state` is Initialising. On failure everything it made is undone.
    fn connect<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        dev: &DeviceInfo,
    ) -> Result<Self::Device, Self::Error>;

    /// The backend is leaving (Closing or Closed): the xenbus close (our
    /// state to Closed, unless the node was reset meanwhile, see
    /// [`device::close_state`]), then everything let go.
    fn close<T: Transport>(&mut self, bus: &mut Bus<T>, dev: Self::Device) -> Self::Closed;

    /// The device vanished or its id now names a new device: everything
    /// let go without touching XenStore.
    fn abandon(&mut self, dev: Self::Device) -> Self::Closed;

    /// Pages a let-go device left mapped by its backend (kept, never
    /// reused): counted per id, and an id whose backends keep too many
    /// ([`Config::max_kept`]) is declared broken, so a backend cannot make
    /// the guest leak memory and grants reconnect after reconnect.
    fn kept(closed: &Self::Closed) -> u64 {
        let _ = closed;
        0
    }
}

/// Timings.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// How often a device that is not connected is re-examined without
    /// waiting for an event.
    pub recheck: Duration,
    /// How long a device may stay in one such state before it is reported
    /// (once).
    pub stuck_after: Duration,
    /// The first wait before a failed connect is tried again; it doubles
    /// after each failure, up to `max_retry`.
    pub retry: Duration,
    pub max_retry: Duration,
    /// How often the picture is re-read when every device is connected
    /// (`None`: only on events). xenstored itself may drop watch events
    /// (a domain over its quota of unread messages), which no client can
    /// see: this bounds how long such a loss goes unnoticed.
    pub idle_recheck: Option<Duration>,
    /// Misbehaviour a device may show within `fault_window` (its backend
    /// restarting or vanishing under a connected device, a connect
    /// failing) before it is declared broken and left alone, as Linux
    /// does: a backend that cycles its state for ever must not make the
    /// guest reconnect (and grant pages) for ever. From the third such
    /// fault in the window, reconnects wait `retry` doubled per fault (at
    /// most `max_retry`).
    pub broken_after: u32,
    pub fault_window: Duration,
    /// Pages the backends of one id may leave mapped (see
    /// [`Driver::kept`]) before it is declared broken.
    pub max_kept: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            recheck: Duration::from_secs(1),
            stuck_after: Duration::from_secs(5),
            retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(8),
            idle_recheck: Some(Duration::from_secs(10)),
            broken_after: 16,
            fault_window: Duration::from_secs(600),
            max_kept: 256,
        }
    }
}

/// A `state` node as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Absent,
    State(XenbusState),
    /// Not a state (shown as read).
    Garbage(String),
}

impl Node {
    fn from_value(v: Option<&[u8]>) -> Node {
        match v {
            None => Node::Absent,
            Some(v) => match XenbusState::parse(v) {
                Some(s) => Node::State(s),
                None => Node::Garbage(String::from_utf8_lossy(v).into()),
            },
        }
    }

    fn state(&self) -> Option<XenbusState> {
        match self {
            Node::State(s) => Some(*s),
            _ => None,
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Absent => f.write_str("absent"),
            Node::State(s) => s.fmt(f),
            Node::Garbage(v) => write!(f, "{v:?} (not a state)"),
        }
    }
}

/// What started the scan that did something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A watch event (or the first scan, or lost events).
    Event,
    /// The re-examination timer, with no event since the last scan: a
    /// change no event announced.
    Timer,
    /// The retry of a failed connect, once its wait was over.
    Retry,
}

/// Why a connected device was let go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// The backend is Closing or Closed (`xl ...-detach`): closed with it.
    BackendLeft(XenbusState),
    /// The backend's `state` node went away.
    BackendGone,
    /// The backend is back in an early state: a new backend at the path.
    BackendRestarted(XenbusState),
    /// The device's directory went away.
    Removed,
    /// Our `state` node no longer holds Connected (the toolstack writes
    /// Initialising into a new device under the same id).
    Reset(Node),
    /// The id now names a device with another backend.
    NewBackend { backend: String, backend_id: DomId },
    /// [`Hotplug::shutdown`].
    Shutdown,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::BackendLeft(s) => write!(f, "backend {s}"),
            Why::BackendGone => f.write_str("backend gone"),
            Why::BackendRestarted(s) => write!(f, "backend restarted: {s}"),
            Why::Removed => f.write_str("device removed"),
            Why::Reset(n) => write!(f, "device reset to {n}: a new device under the same id"),
            Why::NewBackend { backend, backend_id } => {
                write!(f, "a new backend {backend} in domain {}", backend_id.0)
            }
            Why::Shutdown => f.write_str("shutdown"),
        }
    }
}

/// What a [`Hotplug::poll`] did or saw, one line each (`Display`).
#[derive(Debug)]
pub enum Happening<C> {
    Attached {
        /// `kind/id`.
        dev: String,
        id: String,
        /// Attachments of this id so far, this one included.
        number: u32,
        backend: String,
        /// Since this device (this incarnation of the id) was first seen.
        took: Duration,
        /// Since the id's previous device was let go.
        since_detach: Option<Duration>,
        cause: Cause,
    },
    Detached {
        dev: String,
        id: String,
        number: u32,
        why: Why,
        connected_for: Duration,
        closed: C,
        cause: Cause,
    },
    ConnectFailed {
        dev: String,
        error: String,
        retry_in: Duration,
    },
    /// Not connected for `waited` already; re-examined every `every`.
    Stuck {
        dev: String,
        phase: &'static str,
        waited: Duration,
        frontend: Node,
        backend: Node,
        every: Duration,
    },
    /// Bad input from XenStore, or a request that failed.
    Problem {
        dev: String,
        what: String,
    },
}

/// Milliseconds, as a `u64` (saturating): a `u128` in a format string
/// brings in the 128-bit formatting and division code (issue 17's size goal).
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<C: fmt::Display> fmt::Display for Happening<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Happening::Attached { dev, number, backend, took, since_detach, cause, .. } => {
                write!(f, "hotplug: {dev}: attached #{number} in {} ms", ms(*took))?;
                if let Some(d) = since_detach {
                    write!(f, ", {} ms after its last detach", ms(*d))?;
                }
                write!(f, "; backend {backend}")?;
                match cause {
                    Cause::Timer => f.write_str(" (found by the re-examination timer, no watch event)"),
                    Cause::Retry => f.write_str(" (on a retry)"),
                    Cause::Event => Ok(()),
                }
            }
            Happening::Detached { dev, number, why, connected_for, closed, cause, .. } => {
                write!(
                    f,
                    "hotplug: {dev}: detached #{number} ({why}) after {} ms connected: {closed}",
                    ms(*connected_for)
                )?;
                if *cause == Cause::Timer {
                    f.write_str(" (found by the re-examination timer, no watch event)")?;
                }
                Ok(())
            }
            Happening::ConnectFailed { dev, error, retry_in } => {
                write!(f, "hotplug: {dev}: cannot connect: {error}; trying again in {} ms", ms(*retry_in))
            }
            Happening::Stuck { dev, phase, waited, frontend, backend, every } => write!(
                f,
                "hotplug: {dev}: still {phase} after {} ms (frontend {frontend}, backend {backend}); re-examining it every {} ms",
                ms(*waited),
                ms(*every)
            ),
            Happening::Problem { dev, what } => write!(f, "hotplug: {dev}: {what}"),
        }
    }
}

/// Counters, for tests and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub scans: u64,
    /// Scans the timer started (no event since the last one).
    pub timer_scans: u64,
    pub attaches: u64,
    pub detaches: u64,
    /// Attaches and detaches a timer scan found (a change no event told).
    pub found_by_timer: u64,
    pub connect_failures: u64,
    /// Guarded state writes xenstored's view refused (the node had moved).
    pub writes_refused: u64,
    /// Reconnects delayed because the backend kept misbehaving.
    pub reconnects_delayed: u64,
    /// Devices declared broken (left alone until removed or replaced).
    pub broken: u64,
}

enum Phase<D> {
    /// For the backend to reach InitWait (and our node Initialising).
    Waiting,
    /// A connect failed; tried again from `retry_at`.
    Failed {
        retry_at: Instant,
        backoff: Duration,
    },
    Connected {
        dev: D,
        since: Instant,
    },
    /// We closed with a leaving backend; waiting for the toolstack to
    /// remove the device (or a backend to come back).
    Closed,
    /// Declared broken after [`Config::broken_after`] faults: left alone
    /// until the toolstack removes it or puts a new device under its id.
    Broken,
}

impl<D> Phase<D> {
    fn name(&self) -> &'static str {
        match self {
            Phase::Waiting => "waiting for its backend",
            Phase::Failed { .. } => "failing to connect",
            Phase::Connected { .. } => "connected",
            Phase::Closed => "closed, waiting for the toolstack to remove it",
            Phase::Broken => "broken, left alone",
        }
    }
}

struct Slot<D> {
    info: DeviceInfo,
    phase: Phase<D>,
    /// When this device (this incarnation of the id) was first seen.
    seen_at: Instant,
    phase_since: Instant,
    stuck_told: bool,
    /// The backend `state` path we watch.
    watched: Option<String>,
    last: (Node, Node),
    /// Problems said about it (each once).
    told: Vec<String>,
    /// When this device's backend misbehaved (restarted or vanished under
    /// it, or a connect failed), within [`Config::fault_window`].
    faults: Vec<Instant>,
}

#[derive(Default)]
struct History {
    attaches: u32,
    last_detach: Option<Instant>,
    /// Pages its devices left mapped by their backends ([`Driver::kept`]).
    kept: u64,
}

/// What one scan read about one id.
struct Seen {
    id: String,
    info: Result<DeviceInfo, String>,
    frontend: Node,
    /// The backend's state and `online` (`None` until read).
    backend: Option<(Node, Online)>,
}

/// The backend's `online` node: 0 while the toolstack removes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Online {
    Yes,
    /// `online` = 0: the toolstack is taking it away.
    No,
    /// Absent or not a number.
    Unknown,
}

impl Online {
    fn from_value(v: Option<&[u8]>) -> Online {
        match v.and_then(text) {
            Some("0") => Online::No,
            Some(t) if t.parse::<u64>().is_ok_and(|n| n != 0) => Online::Yes,
            _ => Online::Unknown,
        }
    }
}

/// The frontends of one kind (`vif`, `vbd`...), driven by one [`Driver`].
pub struct Hotplug<D: Driver> {
    kind: String,
    dir: String,
    token: String,
    backend_token_prefix: String,
    cfg: Config,
    slots: IdMap<Slot<D::Device>>,
    history: IdMap<History>,
    /// Ids whose entry is broken, with what was said about it.
    broken: IdMap<String>,
    dirty: bool,
    next_check: Option<Instant>,
    lost_seen: u64,
    counters: Counters,
    /// The last scan's failure, if it failed (said once).
    scan_error: Option<String>,
}

/// Reads every path in one pipelined round trip. An absent node (or one
/// under a directory we may not see yet) is `None`.
fn read_all<T: Transport>(
    bus: &mut Bus<T>,
    paths: &[String],
) -> Result<Vec<Option<Vec<u8>>>, XenbusError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let reqs = paths
        .iter()
        .map(|p| Ok((MsgType::Read, request::path(p)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let replies = bus.xs.pipeline(reqs)?;
    replies
        .iter()
        .map(|m| match reply::payload_for(MsgType::Read, m) {
            Ok(v) => Ok(Some(v.to_vec())),
            Err(Error::Xs(XsErrno::ENOENT | XsErrno::EACCES)) => Ok(None),
            Err(e) => Err(e.into()),
        })
        .collect()
}

/// [`Hotplug::read_picture`]'s reads, not generic over the driver: one
/// copy for vif and vbd (issue 17's size goal). `known_backend` is the backend
/// path last seen for an id; `dirty` is set when an id vanished between
/// the reads.
fn read_picture<T: Transport>(
    bus: &mut Bus<T>,
    dir: &str,
    kind: &str,
    known_backend: &dyn Fn(&str) -> Option<String>,
    dirty: &mut bool,
) -> Result<Vec<Seen>, XenbusError> {
    let ids = match bus.xs.directory(dir) {
        Ok(v) => v,
        Err(Error::Xs(XsErrno::ENOENT)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut paths = Vec::new();
    for id in &ids {
        for key in ["backend", "backend-id", "state"] {
            paths.push(format!("{}/{id}/{key}", dir));
        }
    }
    // The backend state and `online` of devices we know, read at the
    // same time on the guess that their backend path did not change.
    let guesses: Vec<Option<String>> = ids.iter().map(|id| known_backend(id)).collect();
    for g in guesses.iter().flatten() {
        paths.push(format!("{g}/state"));
        paths.push(format!("{g}/online"));
    }
    let values = read_all(bus, &paths)?;
    let (fronts, mut guessed) = (values.chunks(3), values[3 * ids.len()..].chunks(2));
    let mut seen = Vec::with_capacity(ids.len());
    for ((id, v), guess) in ids.iter().zip(fronts).zip(&guesses) {
        let guessed_value = guess.as_ref().and_then(|_| guessed.next());
        if v.iter().all(Option::is_none) {
            // Removed between the directory and the reads: not there.
            *dirty = true;
            continue;
        }
        let frontend = format!("{}/{id}", dir);
        let info = parse_info(kind, id, frontend, v[0].as_deref(), v[1].as_deref());
        let backend = match (&info, guess, guessed_value) {
            (Ok(i), Some(g), Some([state, online])) if *g == i.backend => {
                Some((Node::from_value(state.as_deref()), Online::from_value(online.as_deref())))
            }
            _ => None,
        };
        seen.push(Seen {
            id: id.clone(),
            info,
            frontend: Node::from_value(v[2].as_deref()),
            backend,
        });
    }
    let missing: Vec<usize> =
        (0..seen.len()).filter(|&i| seen[i].backend.is_none() && seen[i].info.is_ok()).collect();
    let mut paths = Vec::new();
    for &i in &missing {
        if let Ok(d) = &seen[i].info {
            paths.push(format!("{}/state", d.backend));
            paths.push(format!("{}/online", d.backend));
        }
    }
    let values = read_all(bus, &paths)?;
    for (&i, v) in missing.iter().zip(values.chunks(2)) {
        seen[i].backend = Some((
            Node::from_value(v[0].as_deref()),
            Online::from_value(v.get(1).and_then(|o| o.as_deref())),
        ));
    }
    Ok(seen)
}

fn text(v: &[u8]) -> Option<&str> {
    core::str::from_utf8(v).ok().map(|s| s.trim_end_matches('\0').trim())
}

/// A device's `backend` and `backend-id`, checked.
fn parse_info(
    kind: &str,
    id: &str,
    frontend: String,
    backend: Option<&[u8]>,
    backend_id: Option<&[u8]>,
) -> Result<DeviceInfo, String> {
    let backend = match backend.map(text) {
        None => return Err(format!("{frontend}/backend is missing")),
        Some(Some(b)) if b.starts_with('/') && xenstore_client::path::check_path(b).is_ok() => {
            String::from(b)
        }
        Some(_) => {
            return Err(format!(
                "{frontend}/backend = {:?} is not a XenStore path",
                String::from_utf8_lossy(backend.unwrap_or_default())
            ))
        }
    };
    let backend_id = match backend_id.map(|v| text(v).and_then(|t| t.parse::<u16>().ok())) {
        None => return Err(format!("{frontend}/backend-id is missing")),
        Some(Some(n)) if n < 0x7FF0 => DomId(n),
        Some(_) => {
            return Err(format!(
                "{frontend}/backend-id = {:?} is not a domain id",
                String::from_utf8_lossy(backend_id.unwrap_or_default())
            ))
        }
    };
    Ok(DeviceInfo { kind: kind.into(), id: id.into(), frontend, backend, backend_id })
}

/// What to do with a connected device found changed.
enum Release {
    /// The close handshake ([`Driver::close`]).
    Close,
    /// Let go without XenStore ([`Driver::abandon`]).
    Abandon,
}

/// Where a let-go device's slot goes next.
enum Next {
    /// A new device under the id: start over, timed from now.
    Fresh,
    /// Our node is still ours but the backend is new or gone: put our
    /// state back to Initialising for the next backend, then start over.
    Reinit,
    /// Closed with the backend: wait for the toolstack.
    Closed,
}

impl<D: Driver> Hotplug<D> {
    /// A manager of the devices under `device/<kind>`. Nothing happens
    /// until [`Hotplug::start`].
    pub fn new(kind: &str, cfg: Config) -> Self {
        let token = format!("hotplug:{kind}");
        Hotplug {
            kind: kind.into(),
            dir: format!("device/{kind}"),
            backend_token_prefix: format!("{token}:"),
            token,
            cfg,
            slots: IdMap::new(),
            history: IdMap::new(),
            broken: IdMap::new(),
            dirty: true,
            next_check: None,
            lost_seen: 0,
            counters: Counters::default(),
            scan_error: None,
        }
    }

    /// Watches `device/<kind>`; the first [`Hotplug::poll`] finds what is
    /// there already.
    pub fn start<T: Transport>(&mut self, bus: &mut Bus<T>) -> Result<(), XenbusError> {
        bus.watch(&self.dir, &self.token)?;
        self.lost_seen = bus.events_lost();
        self.dirty = true;
        Ok(())
    }

    /// Whether a watch event with `token` is one of ours.
    pub fn wants(&self, token: &str) -> bool {
        token == self.token || token.starts_with(&self.backend_token_prefix)
    }

    /// Takes a watch event: ours (true) marks the picture for re-reading.
    pub fn on_event(&mut self, token: &str) -> bool {
        let ours = self.wants(token);
        self.dirty |= ours;
        ours
    }

    /// Marks the picture for re-reading (events may have been lost).
    pub fn kick(&mut self) {
        self.dirty = true;
    }

    /// When [`Hotplug::poll`] should run next without an event (`None`:
    /// only on events).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.dirty {
            return Some(Instant(0));
        }
        self.next_check
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The connected devices, by id.
    pub fn devices(&self) -> impl Iterator<Item = (&str, &D::Device)> {
        self.slots.iter().filter_map(|(id, s)| match &s.phase {
            Phase::Connected { dev, .. } => Some((id.as_str(), dev)),
            _ => None,
        })
    }

    /// The connected devices, by id.
    pub fn devices_mut(&mut self) -> impl Iterator<Item = (&str, &mut D::Device)> {
        self.slots.iter_mut().filter_map(|(id, s)| match &mut s.phase {
            Phase::Connected { dev, .. } => Some((id.as_str(), dev)),
            _ => None,
        })
    }

    /// The connected device `id`.
    pub fn device_mut(&mut self, id: &str) -> Option<&mut D::Device> {
        match &mut self.slots.get_mut(id)?.phase {
            Phase::Connected { dev, .. } => Some(dev),
            _ => None,
        }
    }

    /// Ids known (seen and not gone), connected or not.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }

    /// Watches this manager holds: `device/<kind>` and one backend each.
    pub fn watches(&self) -> usize {
        1 + self.slots.values().filter(|s| s.watched.is_some()).count()
    }

    /// Re-reads the picture if an event asked for it, events were lost, or
    /// a device that is not connected is due for re-examination; moves
    /// every device toward what it shows. Never panics or waits beyond
    /// the driver's own handshake timeouts.
    pub fn poll<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        driver: &mut D,
    ) -> Vec<Happening<D::Closed>> {
        let mut out = Vec::new();
        let lost = bus.events_lost();
        if lost != self.lost_seen {
            self.lost_seen = lost;
            self.dirty = true;
        }
        let now = bus.now();
        let due = self.next_check.is_some_and(|t| now >= t);
        if !self.dirty && !due {
            return out;
        }
        let cause = if self.dirty { Cause::Event } else { Cause::Timer };
        self.dirty = false;
        self.counters.scans += 1;
        if cause == Cause::Timer {
            self.counters.timer_scans += 1;
        }
        let scanned = match self.read_picture(bus) {
            Ok(seen) => {
                self.reconcile(bus, driver, seen, cause, &mut out);
                true
            }
            Err(e) => {
                // Said once until a scan succeeds again: a store that
                // keeps failing must not flood the console every second.
                let what = format!(
                    "cannot read {}: {e}; trying again every {} ms",
                    self.dir,
                    ms(self.cfg.recheck)
                );
                if self.scan_error.as_ref() != Some(&what) {
                    out.push(Happening::Problem { dev: self.kind.clone(), what: what.clone() });
                    self.scan_error = Some(what);
                }
                false
            }
        };
        if scanned {
            self.scan_error = None;
        }
        let now = bus.now();
        let mut unsettled = !scanned;
        for (id, slot) in self.slots.iter_mut() {
            if matches!(slot.phase, Phase::Connected { .. }) {
                continue;
            }
            unsettled = true;
            let waited = now.since(slot.phase_since);
            if !slot.stuck_told && waited >= self.cfg.stuck_after {
                slot.stuck_told = true;
                out.push(Happening::Stuck {
                    dev: format!("{}/{id}", self.kind),
                    phase: slot.phase.name(),
                    waited,
                    frontend: slot.last.0.clone(),
                    backend: slot.last.1.clone(),
                    every: self.cfg.recheck,
                });
            }
        }
        self.next_check = if unsettled {
            Some(now.after(self.cfg.recheck))
        } else {
            self.cfg.idle_recheck.map(|d| now.after(d))
        };
        out
    }

    /// Lets every connected device go with the close handshake (the
    /// domain is going down) and removes every watch.
    pub fn shutdown<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        driver: &mut D,
    ) -> Vec<Happening<D::Closed>> {
        let mut out = Vec::new();
        for (id, slot) in core::mem::take(&mut self.slots) {
            if let Some(path) = &slot.watched {
                let _ = bus.unwatch(path, &self.backend_token(&id));
            }
            if let Phase::Connected { dev, since } = slot.phase {
                let closed = driver.close(bus, dev);
                let now = bus.now();
                out.push(self.detached(&id, Why::Shutdown, since, closed, now, Cause::Event));
            }
        }
        let _ = bus.unwatch(&self.dir, &self.token);
        self.next_check = None;
        out
    }

    fn backend_token(&self, id: &str) -> String {
        format!("{}{id}", self.backend_token_prefix)
    }

    /// The ids under `device/<kind>`, each one's nodes, and its backend's
    /// state: two pipelined round trips (three when a backend path is new).
    fn read_picture<T: Transport>(&mut self, bus: &mut Bus<T>) -> Result<Vec<Seen>, XenbusError> {
        let slots = &self.slots;
        let known = |id: &str| slots.get(id).map(|s| s.info.backend.clone());
        read_picture(bus, &self.dir, &self.kind, &known, &mut self.dirty)
    }

    fn reconcile<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        driver: &mut D,
        seen: Vec<Seen>,
        cause: Cause,
        out: &mut Vec<Happening<D::Closed>>,
    ) {
        let present = |id: &str| seen.iter().any(|s| s.info.is_ok() && s.id == id);
        let gone: Vec<String> = self.slots.keys().filter(|k| !present(k)).cloned().collect();
        for id in gone {
            if let Some(slot) = self.slots.remove(&id) {
                self.end_slot(bus, driver, &id, slot, Why::Removed, cause, out);
            }
        }
        self.broken.retain(|id, _| seen.iter().any(|s| s.id == id));
        for s in seen {
            let info = match s.info {
                Ok(i) => {
                    self.broken.remove(&s.id);
                    i
                }
                Err(what) => {
                    // Reads of one scan are separate requests: a device
                    // created or removed between them looks broken. Said
                    // only if a consistent read (a transaction) agrees.
                    if self.broken.get(&s.id) != Some(&what) {
                        match self.confirm_broken(bus, &s.id) {
                            Ok(Some(w)) if w == what => {
                                out.push(Happening::Problem {
                                    dev: format!("{}/{}", self.kind, s.id),
                                    what: format!("broken device entry, left alone: {what}"),
                                });
                                self.broken.insert(s.id.clone(), what);
                            }
                            // Changed meanwhile: its event is on its way.
                            _ => self.dirty = true,
                        }
                    }
                    continue;
                }
            };
            let now = bus.now();
            let mut slot = match self.slots.remove(&s.id) {
                Some(old)
                    if old.info.backend != info.backend
                        || old.info.backend_id != info.backend_id =>
                {
                    let why = Why::NewBackend {
                        backend: info.backend.clone(),
                        backend_id: info.backend_id,
                    };
                    self.end_slot(bus, driver, &s.id, old, why, cause, out);
                    self.new_slot(bus, &s.id, info, now, out)
                }
                Some(old) => old,
                None => self.new_slot(bus, &s.id, info, now, out),
            };
            let (backend, online) = s.backend.unwrap_or((Node::Absent, Online::Unknown));
            if let Node::Garbage(v) = &backend {
                let what = format!("{}/state = {v:?} is not a xenbus state", slot.info.backend);
                if !slot.told.contains(&what) {
                    slot.told.push(what.clone());
                    out.push(Happening::Problem {
                        dev: format!("{}/{}", self.kind, s.id),
                        what: format!("{what}; waiting for a valid one"),
                    });
                }
            }
            self.step(bus, driver, &s.id, &mut slot, (&s.frontend, &backend, online), cause, out);
            slot.last = (s.frontend, backend);
            self.slots.insert(s.id, slot);
        }
    }

    /// What is wrong with the entry `id`, read in one transaction
    /// (`None`: nothing, or it is gone).
    fn confirm_broken<T: Transport>(
        &self,
        bus: &mut Bus<T>,
        id: &str,
    ) -> Result<Option<String>, XenbusError> {
        let fe = format!("{}/{id}", self.dir);
        let (b, bid) = bus.xs.transaction(|tx| {
            Ok((tx.read_opt(&format!("{fe}/backend"))?, tx.read_opt(&format!("{fe}/backend-id"))?))
        })?;
        if b.is_none() && bid.is_none() {
            return Ok(None);
        }
        Ok(parse_info(&self.kind, id, fe, b.as_deref(), bid.as_deref()).err())
    }

    fn new_slot<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        id: &str,
        info: DeviceInfo,
        now: Instant,
        out: &mut Vec<Happening<D::Closed>>,
    ) -> Slot<D::Device> {
        // Watched from now until it goes: a backend that moves after the
        // last event under device/ still wakes us.
        let path = format!("{}/state", info.backend);
        let watched = match bus.watch(&path, &self.backend_token(id)) {
            Ok(()) => Some(path),
            Err(e) => {
                out.push(Happening::Problem {
                    dev: format!("{}/{id}", self.kind),
                    what: format!("cannot watch {path}: {e:?}; re-examining on the timer only"),
                });
                None
            }
        };
        Slot {
            info,
            phase: Phase::Waiting,
            seen_at: now,
            phase_since: now,
            stuck_told: false,
            watched,
            last: (Node::Absent, Node::Absent),
            told: Vec::new(),
            faults: Vec::new(),
        }
    }

    /// The id's device is gone for good (removed, or replaced by one with
    /// another backend): let it go without XenStore, stop watching.
    #[expect(
        clippy::too_many_arguments,
        reason = "the driver, its slot and the store each pass their parts; a bundle struct would only rename them"
    )]
    fn end_slot<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        driver: &mut D,
        id: &str,
        slot: Slot<D::Device>,
        why: Why,
        cause: Cause,
        out: &mut Vec<Happening<D::Closed>>,
    ) {
        if let Some(path) = &slot.watched {
            let _ = bus.unwatch(path, &self.backend_token(id));
        }
        if let Phase::Connected { dev, since } = slot.phase {
            let closed = driver.abandon(dev);
            let now = bus.now();
            out.push(self.detached(id, why, since, closed, now, cause));
        }
    }

    fn detached(
        &mut self,
        id: &str,
        why: Why,
        since: Instant,
        closed: D::Closed,
        now: Instant,
        cause: Cause,
    ) -> Happening<D::Closed> {
        let h = self.history.get_or_default(id);
        h.last_detach = Some(now);
        h.kept += D::kept(&closed);
        self.counters.detaches += 1;
        if cause == Cause::Timer {
            self.counters.found_by_timer += 1;
        }
        Happening::Detached {
            dev: format!("{}/{id}", self.kind),
            id: id.into(),
            number: h.attaches,
            why,
            connected_for: now.since(since),
            closed,
            cause,
        }
    }

    fn set_phase(slot: &mut Slot<D::Device>, phase: Phase<D::Device>, now: Instant) {
        slot.phase = phase;
        slot.phase_since = now;
        slot.stuck_told = false;
    }

    /// Moves one device toward what the store shows.
    #[expect(
        clippy::too_many_arguments,
        reason = "the driver, its slot and the store each pass their parts; a bundle struct would only rename them"
    )]
    fn step<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        driver: &mut D,
        id: &str,
        slot: &mut Slot<D::Device>,
        (fe, be, online): (&Node, &Node, Online),
        cause: Cause,
        out: &mut Vec<Happening<D::Closed>>,
    ) {
        use XenbusState::*;
        let now = bus.now();
        if let Phase::Broken = slot.phase {
            // Only a new device under the id (the toolstack writes
            // Initialising into it) ends the quarantine of a broken one.
            if *fe != Node::State(Initialising) || slot.last.0 == *fe {
                return;
            }
            slot.faults.clear();
            slot.seen_at = now;
            Self::set_phase(slot, Phase::Waiting, now);
        }
        let kept = self.history.get(id).map_or(0, |h| h.kept);
        if kept >= self.cfg.max_kept && !matches!(slot.phase, Phase::Connected { .. }) {
            self.counters.broken += 1;
            out.push(Happening::Problem {
                dev: format!("{}/{id}", self.kind),
                what: format!(
                    "declared broken: its backends kept {kept} of our pages mapped (at most {}); left alone",
                    self.cfg.max_kept
                ),
            });
            Self::set_phase(slot, Phase::Broken, now);
            return;
        }
        // 1. A connected device: still the one we connected?
        if let Phase::Connected { .. } = slot.phase {
            let change = match (fe, be) {
                (f, _) if *f != Node::State(Connected) => {
                    Some((Why::Reset(f.clone()), Release::Abandon, Next::Fresh))
                }
                (_, Node::State(s @ (Closing | Closed))) => {
                    Some((Why::BackendLeft(*s), Release::Close, Next::Closed))
                }
                (_, Node::Absent) => Some((Why::BackendGone, Release::Abandon, Next::Reinit)),
                (_, Node::State(s @ (Unknown | Initialising | InitWait | Initialised))) => {
                    Some((Why::BackendRestarted(*s), Release::Abandon, Next::Reinit))
                }
                // Connected, Reconfiguring, Reconfigured, or garbage
                // (reported above): nothing to do.
                _ => None,
            };
            let Some((why, release, next)) = change else { return };
            let Phase::Connected { dev, since } =
                core::mem::replace(&mut slot.phase, Phase::Closed)
            else {
                return;
            };
            let closed = match release {
                Release::Close => driver.close(bus, dev),
                Release::Abandon => driver.abandon(dev),
            };
            let now = bus.now();
            out.push(self.detached(id, why, since, closed, now, cause));
            match next {
                Next::Closed => {
                    Self::set_phase(slot, Phase::Closed, now);
                    return;
                }
                Next::Fresh => {
                    slot.seen_at = now;
                    slot.faults.clear();
                    Self::set_phase(slot, Phase::Waiting, now);
                    // The new device is handled below with what was read.
                }
                Next::Reinit => {
                    slot.seen_at = now;
                    Self::set_phase(slot, Phase::Waiting, now);
                    if self.fault(id, slot, now, "its backend restarted or vanished", out) {
                        return;
                    }
                    self.reinit(bus, id, slot, Connected, out);
                    return;
                }
            }
        }
        // 2. Closed with a leaving backend: the toolstack removes the
        // device next; a reset node or a backend back in an early state
        // means a new device.
        if let Phase::Closed = slot.phase {
            match (fe, be) {
                (Node::State(Initialising) | Node::Absent, _) => {
                    slot.seen_at = now;
                    Self::set_phase(slot, Phase::Waiting, now);
                }
                (_, Node::Absent) => {
                    slot.seen_at = now;
                    Self::set_phase(slot, Phase::Waiting, now);
                    if let Node::State(s) = fe {
                        self.reinit(bus, id, slot, *s, out);
                    }
                    return;
                }
                (_, Node::State(Initialising | InitWait)) => {
                    slot.seen_at = now;
                    Self::set_phase(slot, Phase::Waiting, now);
                }
                // Both closed and the toolstack is not taking the device
                // away (`online` is not 0): the backend failed on its own.
                // After a short wait (a removal in progress would have
                // gone by then), start over: Initialising asks it to wait
                // for us again.
                (Node::State(f @ Closed), Node::State(Closed))
                    if online != Online::No && now >= slot.phase_since.after(self.cfg.retry) =>
                {
                    let f = *f;
                    let guard = |a: Option<XenbusState>, b: Option<XenbusState>| {
                        a == Some(f) && b == Some(Closed)
                    };
                    if self.write_guarded(bus, id, slot, Initialising, &guard, out) {
                        slot.seen_at = now;
                        Self::set_phase(slot, Phase::Waiting, now);
                    }
                    return;
                }
                _ => return,
            }
        }
        // 3. Not connected: connect once the backend waits for us.
        let retry_due = match slot.phase {
            Phase::Failed { retry_at, .. } => now >= retry_at,
            _ => true,
        };
        match (fe.state(), be.state()) {
            // A backend closing before we ever connected (detached early):
            // answer it, as Linux does, unless the node moved meanwhile.
            (Some(f @ (Initialising | InitWait | Initialised)), Some(Closing)) => {
                let guard = |a: Option<XenbusState>, b: Option<XenbusState>| {
                    a == Some(f) && b == Some(Closing)
                };
                self.write_guarded(bus, id, slot, Closed, &guard, out);
                Self::set_phase(slot, Phase::Closed, now);
            }
            (Some(f), Some(InitWait)) if retry_due => {
                if f != Initialising {
                    // Our earlier attempt left the node elsewhere.
                    let guard = |a: Option<XenbusState>, b: Option<XenbusState>| {
                        a == Some(f) && b == Some(InitWait)
                    };
                    if !self.write_guarded(bus, id, slot, Initialising, &guard, out) {
                        self.dirty = true;
                        return;
                    }
                }
                self.connect(bus, driver, id, slot, cause, out);
            }
            // A backend that closed after our failed attempt (or that we
            // closed, below): Initialising asks it to wait for us again
            // (netback, blkback).
            (Some(f), Some(Closed)) if f != Initialising && retry_due && online != Online::No => {
                let guard = |a: Option<XenbusState>, b: Option<XenbusState>| {
                    a == Some(f) && b == Some(Closed)
                };
                self.write_guarded(bus, id, slot, Initialising, &guard, out);
            }
            // A backend Connected while we hold nothing: connected to rings
            // we let go of (a new backend finds our node still Connected
            // and maps what it names, as netback does). Close it, so it
            // starts over with us.
            (Some(f @ (Initialising | InitWait | Initialised | Connected)), Some(Connected)) => {
                let guard = |a: Option<XenbusState>, b: Option<XenbusState>| {
                    a == Some(f) && b == Some(Connected)
                };
                self.write_guarded(bus, id, slot, Closed, &guard, out);
            }
            _ => {}
        }
    }

    /// Counts a fault of the device's backend. At [`Config::broken_after`]
    /// within [`Config::fault_window`] the device is declared broken (one
    /// line) and `true` returned; from the third, the next connect waits
    /// (the slot goes to `Failed` with a backoff that doubles per fault).
    fn fault(
        &mut self,
        id: &str,
        slot: &mut Slot<D::Device>,
        now: Instant,
        what: &str,
        out: &mut Vec<Happening<D::Closed>>,
    ) -> bool {
        let window = self.cfg.fault_window;
        slot.faults.retain(|&t| now.since(t) < window);
        slot.faults.push(now);
        let n = slot.faults.len() as u32;
        if n >= self.cfg.broken_after {
            self.counters.broken += 1;
            out.push(Happening::Problem {
                dev: format!("{}/{id}", self.kind),
                what: format!(
                    "declared broken: {what} ({n} faults in {} s); left alone until the toolstack removes or replaces it",
                    window.as_secs()
                ),
            });
            Self::set_phase(slot, Phase::Broken, now);
            return true;
        }
        if n >= 3 && !matches!(slot.phase, Phase::Failed { .. }) {
            let backoff = (self.cfg.retry * (1 << (n - 2).min(16))).min(self.cfg.max_retry);
            self.counters.reconnects_delayed += 1;
            Self::set_phase(slot, Phase::Failed { retry_at: now.after(backoff), backoff }, now);
        }
        false
    }

    /// Our node back to Initialising, if it still holds `ours` (the
    /// backend is new or gone: the next one must find us at the start).
    fn reinit<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        id: &str,
        slot: &mut Slot<D::Device>,
        ours: XenbusState,
        out: &mut Vec<Happening<D::Closed>>,
    ) {
        // Not under a backend already Connected (to rings we let go of):
        // the waiting logic closes that one first.
        let guard = |a: Option<XenbusState>, b: Option<XenbusState>| {
            a == Some(ours) && b != Some(XenbusState::Connected)
        };
        self.write_guarded(bus, id, slot, XenbusState::Initialising, &guard, out);
    }

    fn write_guarded<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        id: &str,
        slot: &mut Slot<D::Device>,
        to: XenbusState,
        guard: &dyn Fn(Option<XenbusState>, Option<XenbusState>) -> bool,
        out: &mut Vec<Happening<D::Closed>>,
    ) -> bool {
        match device::switch_state(bus, &slot.info, to, guard) {
            Ok(true) => true,
            Ok(false) => {
                // It moved since we read it: the next scan decides again.
                self.counters.writes_refused += 1;
                self.dirty = true;
                false
            }
            Err(e) => {
                out.push(Happening::Problem {
                    dev: format!("{}/{id}", self.kind),
                    what: format!("cannot set {}/state to {to}: {e}", slot.info.frontend),
                });
                false
            }
        }
    }

    fn connect<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        driver: &mut D,
        id: &str,
        slot: &mut Slot<D::Device>,
        cause: Cause,
        out: &mut Vec<Happening<D::Closed>>,
    ) {
        let cause = match slot.phase {
            Phase::Failed { .. } => Cause::Retry,
            _ => cause,
        };
        let result = driver.connect(bus, &slot.info);
        let now = bus.now();
        let dev = format!("{}/{id}", self.kind);
        match result {
            Ok(d) => {
                let h = self.history.get_or_default(id);
                h.attaches += 1;
                self.counters.attaches += 1;
                if cause == Cause::Timer {
                    self.counters.found_by_timer += 1;
                }
                out.push(Happening::Attached {
                    dev,
                    id: id.into(),
                    number: h.attaches,
                    backend: slot.info.backend.clone(),
                    took: now.since(slot.seen_at),
                    since_detach: h.last_detach.map(|t| now.since(t)),
                    cause,
                });
                Self::set_phase(slot, Phase::Connected { dev: d, since: now }, now);
                // Our own writes fire the device/ watch: the next scan
                // confirms what we see as settled.
            }
            Err(e) => {
                self.counters.connect_failures += 1;
                // Whatever made it fail may show in the picture now.
                self.dirty = true;
                let backoff = match slot.phase {
                    Phase::Failed { backoff, .. } => (backoff * 2).min(self.cfg.max_retry),
                    _ => self.cfg.retry,
                };
                out.push(Happening::ConnectFailed {
                    dev,
                    error: format!("{e}"),
                    retry_in: backoff,
                });
                let failed = Phase::Failed { retry_at: now.after(backoff), backoff };
                if let Phase::Failed { .. } = slot.phase {
                    // Still the same trouble: the stuck report counts from
                    // the first failure, and is made once.
                    slot.phase = failed;
                } else {
                    Self::set_phase(slot, failed, now);
                }
                self.fault(id, slot, now, "its connects kept failing", out);
            }
        }
    }
}

#[cfg(test)]
mod tests;
