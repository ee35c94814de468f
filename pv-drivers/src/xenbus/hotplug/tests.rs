//! The hotplug manager against the fake xenstored. A simulated toolstack
//! (libxl's order of writes: a device's frontend and backend directories
//! in one go, the backend's Closing on detach, both removed once the
//! backend is Closed or after its timeout) and a simulated backend
//! (netback's state machine) act between any two requests of the guest —
//! inside its scans, its transactions and its drivers' handshakes — while
//! watch events are delivered, held back and merged, or lost. Whatever the
//! order, the guest must end connected to the device that exists, with
//! nothing of the earlier ones left, and must never close a device it
//! did not connect to (a Closed meant for the old device landing on the
//! new one).

use super::*;
use crate::xenbus::Bus;
use hypercall::abi::grant_table::GrantRef;
use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;
use xenstore_client::fake::{EventFate, FakeXenstored, Harness};
use xenstore_client::{Access, Perm};

const GUEST: DomId = DomId(7);

/// The backend path of `vif/0` in domain `dom`.
fn be_path(dom: u16) -> String {
    format!("/local/domain/{dom}/backend/vif/7/0")
}

/// Which backend the world plays.
enum Sim {
    /// netback's states, for [`TestDriver`]'s one `ring-ref`.
    Test,
    /// netback for the real netfront: maps `tx-ring-ref` and
    /// `rx-ring-ref` (revokes of mapped grants fail).
    Net { xen: crate::env::fake::SharedXen },
    /// blkback for the real blkfront: on Initialised, maps the ring and
    /// publishes the disk.
    Blk { w: crate::blkfront::fake::Shared },
}

/// xorshift64*, fixed seeds.
#[derive(Clone)]
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// True `per_mille` times in 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

/// What the toolstack or the backend's driver does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    /// A new device: frontend and backend directories, both Initialising,
    /// at once (libxl writes them in one transaction).
    Create { be_dom: u16 },
    /// The backend's driver probes it: InitWait.
    Probe,
    /// `xl ...-detach`: backend `online` 0 and Closing; then waits for the
    /// backend to be Closed (at most 10 s, then goes ahead anyway) and
    /// removes both directories at once.
    Detach,
    /// Both directories removed at once (a crashed backend, `-f`).
    ForceRemove,
    /// The backend directory alone removed.
    RemoveBackend,
    /// A new backend directory at the same path, Initialising.
    RecreateBackend,
    /// The toolstack waits (between the guest's polls only).
    Sleep(u64),
}

fn state_of(fake: &FakeXenstored, path: &str) -> Option<XenbusState> {
    fake.get(&format!("{path}/state")).and_then(|v| XenbusState::parse(&v))
}

/// The toolstack and the backend, for one id.
struct World {
    sim: Sim,
    kind: &'static str,
    id: &'static str,
    fe: String,
    be_dom: u16,
    fe_exists: bool,
    be_exists: bool,
    online: bool,
    /// Detach begun: when it gives up waiting.
    detach_deadline: Option<Instant>,
    /// The ring the live backend mapped.
    mapped: Option<String>,
    script: VecDeque<Act>,
    sleep_until: Option<Instant>,
    now: Instant,
    rng: Rng,
    /// Chance (per mille) that the next act happens at one interleaving
    /// point (the guest's requests), and that the backend reacts there.
    p_act: u64,
    p_react: u64,
    /// Frontend node incarnation facts, for the "never close a new
    /// device" check.
    fe_connected_once: bool,
    /// The guest wrote Connected on this node (a later Closed is its own
    /// failed connect, not a close meant for an older device).
    fe_said_connected: bool,
    be_left_once: bool,
    last_fe: Option<XenbusState>,
    violations: Vec<String>,
    log: Vec<String>,
    creates: u32,
}

impl World {
    fn new(seed: u64, script: &[Act]) -> World {
        World::with_sim(seed, script, Sim::Test, "vif", "0")
    }

    fn with_sim(
        seed: u64,
        script: &[Act],
        sim: Sim,
        kind: &'static str,
        id: &'static str,
    ) -> World {
        World {
            sim,
            kind,
            id,
            fe: format!("/local/domain/7/device/{kind}/{id}"),
            be_dom: 0,
            fe_exists: false,
            be_exists: false,
            online: false,
            detach_deadline: None,
            mapped: None,
            script: script.iter().copied().collect(),
            sleep_until: None,
            now: Instant(0),
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            p_act: 0,
            p_react: 1000,
            fe_connected_once: false,
            fe_said_connected: false,
            be_left_once: false,
            last_fe: None,
            violations: Vec::new(),
            log: Vec::new(),
            creates: 0,
        }
    }

    fn be(&self) -> String {
        format!("/local/domain/{}/backend/{}/7/{}", self.be_dom, self.kind, self.id)
    }

    /// What a backend's driver writes before InitWait.
    fn backend_keys(&self) -> Vec<(&'static str, String)> {
        let mut keys = vec![
            ("frontend", self.fe.clone()),
            ("frontend-id", "7".into()),
            ("online", "1".into()),
        ];
        if let Sim::Net { .. } = self.sim {
            keys.push(("feature-rx-copy", "1".into()));
        }
        keys
    }

    /// The backend lets go of what it mapped.
    fn unmap(&mut self) {
        self.mapped = None;
        match &self.sim {
            Sim::Test => {}
            Sim::Net { xen } => xen.borrow_mut().mapped.clear(),
            Sim::Blk { w } => w.borrow_mut().disconnect(),
        }
    }

    /// Maps what the frontend published; `false`: it names nothing live
    /// (the backend fails the device, as a real one would).
    fn map(&mut self, fake: &FakeXenstored) -> Option<bool> {
        let key = |k: &str| {
            fake.get(&format!("{}/{k}", self.fe))
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|t| t.parse::<u32>().ok())
        };
        match &self.sim {
            Sim::Test => {
                let r = key("ring-ref")?;
                self.mapped = Some(r.to_string());
            }
            Sim::Net { xen } => {
                let (tx, rx) = (key("tx-ring-ref")?, key("rx-ring-ref")?);
                let mut x = xen.borrow_mut();
                let (tx_ref, rx_ref) = (GrantRef(tx), GrantRef(rx));
                if !x.granted(tx_ref) || !x.granted(rx_ref) {
                    return Some(false);
                }
                x.map(tx_ref);
                x.map(rx_ref);
                self.mapped = Some(tx.to_string());
            }
            Sim::Blk { w } => {
                let r = key("ring-ref")?;
                let g = GrantRef(r);
                let mut w = w.borrow_mut();
                if !w.granted(g) {
                    return Some(false);
                }
                w.map_ring(&[g]);
                self.mapped = Some(r.to_string());
            }
        }
        Some(true)
    }

    fn set_be_state(&mut self, fake: &mut FakeXenstored, s: XenbusState) {
        let path = format!("{}/state", self.be());
        fake.write_as(DomId(0), &path, format!("{}", s as u8).as_bytes()).unwrap();
        self.log.push(format!("backend -> {s}"));
    }

    fn create(&mut self, fake: &mut FakeXenstored, be_dom: u16) {
        assert!(!self.fe_exists, "script error: create over a device");
        self.be_dom = be_dom;
        let be = self.be();
        fake.mkdir_as(DomId(0), &be).unwrap();
        fake.set_perms_as(
            DomId(0),
            &be,
            &[Perm::new(DomId(be_dom), Access::None), Perm::new(GUEST, Access::Read)],
        )
        .unwrap();
        for (k, v) in self.backend_keys() {
            fake.write_as(DomId(0), &format!("{be}/{k}"), v.as_bytes()).unwrap();
        }
        fake.write_as(DomId(0), &format!("{be}/state"), b"1").unwrap();
        let fe = self.fe.clone();
        fake.mkdir_as(DomId(0), &fe).unwrap();
        fake.set_perms_as(
            DomId(0),
            &fe,
            &[Perm::new(GUEST, Access::None), Perm::new(DomId(be_dom), Access::Read)],
        )
        .unwrap();
        let id = be_dom.to_string();
        let mut keys = vec![("backend", be.as_str()), ("backend-id", id.as_str()), ("state", "1")];
        if let Sim::Net { .. } = self.sim {
            keys.push(("mac", "00:16:3e:00:00:01"));
        }
        for (k, v) in keys {
            fake.write_as(DomId(0), &format!("{fe}/{k}"), v.as_bytes()).unwrap();
        }
        self.fe_exists = true;
        self.be_exists = true;
        self.online = true;
        self.mapped = None;
        self.fe_connected_once = false;
        self.fe_said_connected = false;
        self.be_left_once = false;
        self.last_fe = Some(XenbusState::Initialising);
        self.creates += 1;
        self.log.push(format!("create #{} (backend domain {be_dom})", self.creates));
    }

    fn remove_backend(&mut self, fake: &mut FakeXenstored) {
        let _ = fake.rm_as(DomId(0), &self.be());
        self.be_exists = false;
        self.unmap();
        self.be_left_once = true;
    }

    fn remove_all(&mut self, fake: &mut FakeXenstored) {
        let _ = fake.rm_as(DomId(0), &self.fe);
        self.remove_backend(fake);
        self.fe_exists = false;
        self.detach_deadline = None;
        self.log.push("removed".into());
    }

    /// The backend's state machine (netback's), one step.
    fn react(&mut self, fake: &mut FakeXenstored) {
        use XenbusState::*;
        let fe = if self.fe_exists { state_of(fake, &self.fe) } else { None };
        if fe != self.last_fe {
            self.log.push(format!("frontend -> {fe:?}"));
            if fe == Some(Connected) {
                self.fe_said_connected = true;
            }
            if matches!(fe, Some(Closing | Closed))
                && self.fe_exists
                && !self.fe_said_connected
                && !self.be_left_once
            {
                self.violations.push(format!(
                    "the frontend closed device #{} before connecting to it while its backend was not leaving",
                    self.creates
                ));
            }
            self.last_fe = fe;
        }
        if !self.be_exists {
            return;
        }
        let be = state_of(fake, &self.be());
        if matches!(be, Some(Closing | Closed)) {
            self.be_left_once = true;
        }
        // netback maps on the frontend's Connected, blkback on Initialised.
        let ready = match self.sim {
            Sim::Blk { .. } => Initialised,
            _ => Connected,
        };
        match (be, fe) {
            (Some(InitWait), Some(f)) if f == ready => match self.map(fake) {
                Some(true) => {
                    if let Sim::Blk { w } = &self.sim {
                        let bytes = w.borrow().disk.len();
                        let be = self.be();
                        for (k, v) in [("sectors", bytes / 512), ("info", 0), ("sector-size", 512)]
                        {
                            let v = v.to_string();
                            fake.write_as(DomId(0), &format!("{be}/{k}"), v.as_bytes()).unwrap();
                        }
                    }
                    self.set_be_state(fake, Connected);
                    self.fe_connected_once = true;
                }
                // Names grants no longer there: the backend fails it.
                Some(false) => self.set_be_state(fake, Closing),
                None => {}
            },
            (Some(Connected | Closing), Some(Closing | Closed)) => {
                self.unmap();
                self.set_be_state(fake, Closed);
            }
            (Some(Closed), Some(Initialising)) if self.online => {
                self.set_be_state(fake, InitWait);
            }
            _ => {}
        }
    }

    /// Whether the act at the head of the script can happen now; does it.
    fn act(&mut self, fake: &mut FakeXenstored, outside: bool) -> bool {
        let Some(&a) = self.script.front() else { return false };
        match a {
            Act::Create { be_dom } => self.create(fake, be_dom),
            Act::Probe => {
                if self.be_exists && state_of(fake, &self.be()) == Some(XenbusState::Initialising) {
                    self.set_be_state(fake, XenbusState::InitWait);
                }
            }
            Act::Detach => match self.detach_deadline {
                None => {
                    let be = self.be();
                    fake.write_as(DomId(0), &format!("{be}/online"), b"0").unwrap();
                    self.online = false;
                    self.set_be_state(fake, XenbusState::Closing);
                    self.be_left_once = true;
                    self.detach_deadline = Some(self.now.after(Duration::from_secs(10)));
                    self.log.push("detach begun".into());
                    return true; // stays at the head until Closed
                }
                Some(deadline) => {
                    let closed = state_of(fake, &self.be()) == Some(XenbusState::Closed);
                    if !(closed || (outside && self.now >= deadline)) {
                        return false;
                    }
                    if !closed {
                        self.log.push("detach timed out: removed anyway".into());
                    }
                    self.remove_all(fake);
                }
            },
            Act::ForceRemove => self.remove_all(fake),
            Act::RemoveBackend => {
                self.remove_backend(fake);
                self.log.push("backend removed".into());
            }
            Act::RecreateBackend => {
                let be = self.be();
                fake.mkdir_as(DomId(0), &be).unwrap();
                fake.set_perms_as(
                    DomId(0),
                    &be,
                    &[Perm::new(DomId(self.be_dom), Access::None), Perm::new(GUEST, Access::Read)],
                )
                .unwrap();
                for (k, v) in self.backend_keys() {
                    fake.write_as(DomId(0), &format!("{be}/{k}"), v.as_bytes()).unwrap();
                }
                self.be_exists = true;
                self.online = true;
                self.be_left_once = true;
                self.set_be_state(fake, XenbusState::Initialising);
            }
            Act::Sleep(ms) => {
                if !outside {
                    return false;
                }
                match self.sleep_until {
                    None => {
                        self.sleep_until = Some(self.now.after(Duration::from_millis(ms)));
                        return false;
                    }
                    Some(t) if self.now < t => return false,
                    Some(_) => self.sleep_until = None,
                }
            }
        }
        self.script.pop_front();
        true
    }

    /// At one of the guest's requests.
    fn interleave(&mut self, fake: &mut FakeXenstored) {
        if self.rng.chance(self.p_react) {
            self.react(fake);
        }
        if self.rng.chance(self.p_act) {
            self.act(fake, false);
            self.react_if(fake);
        }
    }

    fn react_if(&mut self, fake: &mut FakeXenstored) {
        if self.rng.chance(self.p_react) {
            self.react(fake);
        }
    }

    /// Between two polls of the guest: the backend always catches up, the
    /// script moves one act with even odds.
    fn outside(&mut self, fake: &mut FakeXenstored, now: Instant) {
        self.now = now;
        self.react(fake);
        if self.rng.chance(500) || self.p_act == 0 {
            while self.act(fake, true) {
                self.react(fake);
                if self.p_act > 0 {
                    break;
                }
            }
        }
        self.react(fake);
    }

    fn finished(&self) -> bool {
        self.script.is_empty()
    }

    /// When the world wants the clock to have moved (a sleep or a detach
    /// that times out).
    fn wake(&self) -> Option<Instant> {
        self.sleep_until.or(self.detach_deadline)
    }
}

/// A driver with netfront's handshake and a fake resource: a "ring"
/// number per connection, live until let go.
struct TestDriver {
    next_ring: u32,
    live: BTreeSet<u32>,
    timeout: Duration,
    /// Pages each let-go device reports left mapped (`Driver::kept`).
    keeps: u64,
}

#[derive(Debug)]
struct TestDev {
    ring: u32,
    info: DeviceInfo,
}

impl Driver for TestDriver {
    type Device = TestDev;
    type Closed = String;
    type Error = String;

    fn connect<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        dev: &DeviceInfo,
    ) -> Result<TestDev, String> {
        use XenbusState::*;
        let e = |e: XenbusError| e.to_string();
        device::set_state(bus, dev, Initialising).map_err(e)?;
        device::wait_for_backend(bus, dev, |s| s >= InitWait, self.timeout).map_err(e)?;
        self.next_ring += 1;
        let ring = self.next_ring;
        self.live.insert(ring);
        let r = (|| {
            // Keys and state in one transaction, as the real drivers do.
            device::publish(bus, dev, &[("ring-ref".into(), format!("{ring}"))], Connected)?;
            let s = device::wait_for_backend(bus, dev, |s| s >= Connected, self.timeout)?;
            Ok::<_, XenbusError>(s)
        })();
        match r {
            Ok(Connected) => Ok(TestDev { ring, info: dev.clone() }),
            other => {
                let _ = device::close_state(bus, dev, Closed);
                self.live.remove(&ring);
                Err(match other {
                    Ok(s) => format!("backend went {s}"),
                    Err(err) => err.to_string(),
                })
            }
        }
    }

    fn close<T: Transport>(&mut self, bus: &mut Bus<T>, dev: TestDev) -> String {
        if let Ok(true) = device::close_state(bus, &dev.info, XenbusState::Closed) {
            let _ = device::wait_for_backend(
                bus,
                &dev.info,
                |s| s == XenbusState::Closed,
                self.timeout,
            );
        }
        self.live.remove(&dev.ring);
        format!("ring {} closed", dev.ring)
    }

    fn abandon(&mut self, dev: TestDev) -> String {
        self.live.remove(&dev.ring);
        format!("ring {} abandoned, kept {}", dev.ring, self.keeps)
    }

    fn kept(closed: &String) -> u64 {
        closed.rsplit_once("kept ").and_then(|(_, n)| n.parse().ok()).unwrap_or(0)
    }
}

fn test_driver() -> TestDriver {
    TestDriver { next_ring: 0, live: BTreeSet::new(), timeout: Duration::from_secs(10), keeps: 0 }
}

/// How watch events fare in a run.
#[derive(Clone, Copy, Debug)]
enum Events {
    Clean,
    /// Per mille held back (and merged), and lost.
    Lossy {
        hold: u64,
        drop: u64,
    },
}

struct Run {
    lines: Vec<String>,
    attached: Vec<(u32, Cause)>,
    detached: Vec<Why>,
    stuck: usize,
    problems: Vec<String>,
    end: Instant,
}

/// Polls the manager as the kernel does (events drained, then a poll,
/// then a wait for the next event or deadline) while the world acts,
/// until the script is done and everything settled. Panics with the
/// story if it does not settle within 10 minutes of virtual time.
fn drive<D: Driver>(
    h: &Harness,
    world: &Rc<RefCell<World>>,
    mgr: &mut Hotplug<D>,
    drv: &mut D,
    bus: &mut Bus<impl Transport>,
    events_rng: Option<Rc<RefCell<Rng>>>,
) -> Run
where
    D::Closed: fmt::Display,
{
    let mut run = Run {
        lines: Vec::new(),
        attached: Vec::new(),
        detached: Vec::new(),
        stuck: 0,
        problems: Vec::new(),
        end: Instant(0),
    };
    let limit = bus.now().after(Duration::from_secs(600));
    let mut quiet = 0;
    loop {
        loop {
            match bus.next_event(Some(bus.now())) {
                Ok(ev) => {
                    mgr.on_event(&ev.token);
                }
                Err(Error::TimedOut) => break,
                Err(e) => panic!("event: {e:?}"),
            }
        }
        for hp in mgr.poll(bus, drv) {
            run.lines.push(format!("[{} ms] {hp}", bus.now().0 / 1_000_000));
            match hp {
                Happening::Attached { number, cause, .. } => run.attached.push((number, cause)),
                Happening::Detached { why, .. } => run.detached.push(why),
                Happening::Stuck { .. } => run.stuck += 1,
                Happening::Problem { what, .. } => run.problems.push(what),
                Happening::ConnectFailed { .. } => {}
            }
        }
        let now = bus.now();
        {
            let mut fake = h.fake();
            if let Some(r) = &events_rng {
                if r.borrow_mut().chance(300) || world.borrow().finished() {
                    fake.release_held();
                }
            }
            world.borrow_mut().outside(&mut fake, now);
        }
        let settled = {
            let w = world.borrow();
            let fake = h.fake();
            w.finished()
                && fake.held_events() == 0
                && state_of(&fake, &w.fe) == Some(XenbusState::Connected)
                && state_of(&fake, &w.be()) == Some(XenbusState::Connected)
                && mgr.devices().count() == 1
        };
        quiet = if settled { quiet + 1 } else { 0 };
        if quiet == 1 {
            run.end = now;
        }
        if quiet > 3 {
            break;
        }
        if now >= limit {
            let w = world.borrow();
            panic!(
                "did not settle in 600 s of virtual time\nworld: {:#?}\nguest:\n{}",
                w.log,
                run.lines.join("\n")
            );
        }
        if quiet > 0 {
            // Settled: look again at once (nothing should move).
            continue;
        }
        let wake = [mgr.next_deadline(), world.borrow().wake()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now.after(Duration::from_secs(1)))
            .min(now.after(Duration::from_secs(1)));
        match bus.next_event(Some(wake)) {
            Ok(ev) => {
                mgr.on_event(&ev.token);
            }
            Err(Error::TimedOut) => {}
            Err(e) => panic!("event: {e:?}"),
        }
    }
    run
}

/// Everything a run must end with.
fn check_end(h: &Harness, world: &World, mgr: &Hotplug<TestDriver>, drv: &TestDriver, run: &Run) {
    check_end_of(h, world, mgr, drv, run, "")
}

fn check_end_of(
    h: &Harness,
    world: &World,
    mgr: &Hotplug<TestDriver>,
    drv: &TestDriver,
    run: &Run,
    label: &str,
) {
    let story = || format!("{label}\nworld: {:#?}\nguest:\n{}", world.log, run.lines.join("\n"));
    assert!(world.violations.is_empty(), "{:?}\n{}", world.violations, story());
    let (id, dev) = mgr.devices().next().expect("connected");
    assert_eq!(id, "0");
    assert_eq!(world.mapped.as_deref(), Some(dev.ring.to_string().as_str()), "{}", story());
    assert_eq!(drv.live, BTreeSet::from([dev.ring]), "earlier connections let go\n{}", story());
    let mut watches = h.fake().watches();
    watches.sort();
    assert_eq!(
        watches,
        [
            (format!("{}/state", world.be()), "hotplug:vif:0".to_string()),
            ("device/vif".to_string(), "hotplug:vif".to_string()),
        ],
        "{}",
        story()
    );
    let c = mgr.counters();
    assert_eq!(c.attaches, c.detaches + 1, "every attach but the last was detached\n{}", story());
    assert!(run.problems.is_empty(), "{:?}\n{}", run.problems, story());
}

fn setup(h: &Harness, world: &Rc<RefCell<World>>) {
    let w = world.clone();
    h.fake().set_interleave(move |fake| w.borrow_mut().interleave(fake));
}

fn manager(bus: &mut Bus<impl Transport>) -> Hotplug<TestDriver> {
    let mut mgr = Hotplug::new("vif", Config::default());
    mgr.start(bus).unwrap();
    mgr
}

/// A detach/attach cycle as `xl network-detach` + `xl network-attach`.
fn cycle(sleep_ms: u64) -> Vec<Act> {
    let mut v = vec![Act::Detach];
    if sleep_ms > 0 {
        v.push(Act::Sleep(sleep_ms));
    }
    v.extend([Act::Create { be_dom: 0 }, Act::Probe]);
    v
}

#[test]
fn a_backend_reaching_initwait_after_the_last_device_event_is_seen() {
    // The miss of issue 22: the device appears (one event under device/),
    // the guest looks while the backend is still Initialising, and the
    // backend's InitWait comes later with no further event under device/.
    let h = Harness::new(GUEST);
    let world = Rc::new(RefCell::new(World::new(1, &[])));
    setup(&h, &world);
    let mut bus = Bus::new(h.client());
    let mut mgr = manager(&mut bus);
    let mut drv = test_driver();
    world.borrow_mut().create(&mut h.fake(), 0);
    // Drain the device/ events, scan: the backend is not ready.
    while let Ok(ev) = bus.next_event(Some(bus.now())) {
        mgr.on_event(&ev.token);
    }
    let first = mgr.poll(&mut bus, &mut drv);
    assert!(first.is_empty(), "{first:?}");
    assert_eq!(mgr.ids().collect::<Vec<_>>(), ["0"]);
    while let Ok(ev) = bus.next_event(Some(bus.now())) {
        mgr.on_event(&ev.token);
    }
    assert!(mgr.poll(&mut bus, &mut drv).is_empty());
    // The backend's driver probes it: only its own state changes.
    let before = h.fake().requests_seen().len();
    {
        let mut fake = h.fake();
        let mut w = world.borrow_mut();
        w.script.push_back(Act::Probe);
        w.act(&mut fake, true);
    }
    let ev = bus.next_event(Some(bus.now())).expect("the backend's state is watched");
    assert_eq!(ev.token, "hotplug:vif:0");
    assert!(mgr.on_event(&ev.token));
    let got = mgr.poll(&mut bus, &mut drv);
    assert!(
        matches!(got.as_slice(), [Happening::Attached { number: 1, cause: Cause::Event, .. }]),
        "{got:?}"
    );
    assert!(h.fake().requests_seen().len() > before);
    let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    check_end(&h, &world.borrow(), &mgr, &drv, &run);
}

#[test]
fn when_every_event_is_lost_the_timer_still_finds_the_backend() {
    let h = Harness::new(GUEST);
    let world = Rc::new(RefCell::new(World::new(2, &[Act::Probe])));
    setup(&h, &world);
    let mut bus = Bus::new(h.client());
    let mut mgr = manager(&mut bus);
    let mut drv = test_driver();
    world.borrow_mut().create(&mut h.fake(), 0);
    while let Ok(ev) = bus.next_event(Some(bus.now())) {
        mgr.on_event(&ev.token);
    }
    assert!(mgr.poll(&mut bus, &mut drv).is_empty());
    // From here on xenstored sends nothing at all.
    h.fake().set_event_filter(|_, _| EventFate::Drop);
    let t0 = bus.now();
    let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    assert_eq!(run.attached, [(1, Cause::Timer)], "{}", run.lines.join("\n"));
    assert!(run.lines[0].contains("found by the re-examination timer"), "{}", run.lines[0]);
    // Found within one re-examination period of the InitWait.
    assert!(run.end.since(t0) <= Duration::from_secs(3), "{:?}", run.end.since(t0));
    check_end(&h, &world.borrow(), &mgr, &drv, &run);
}

#[test]
fn a_device_created_while_its_events_are_lost_is_found_by_the_idle_recheck() {
    // "Event before the write is visible": the guest is told before the
    // device exists (it finds nothing), and the device's own events never
    // come. Only the idle re-examination can find it.
    let h = Harness::new(GUEST);
    let world = Rc::new(RefCell::new(World::new(3, &[Act::Create { be_dom: 0 }, Act::Probe])));
    setup(&h, &world);
    let mut bus = Bus::new(h.client());
    let mut mgr = manager(&mut bus);
    let mut drv = test_driver();
    while let Ok(ev) = bus.next_event(Some(bus.now())) {
        mgr.on_event(&ev.token);
    }
    assert!(mgr.poll(&mut bus, &mut drv).is_empty());
    h.fake().set_event_filter(|_, _| EventFate::Drop);
    let t0 = bus.now();
    let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    assert_eq!(run.attached, [(1, Cause::Timer)], "{}", run.lines.join("\n"));
    assert!(run.end.since(t0) <= Duration::from_secs(13), "{:?}", run.end.since(t0));
    check_end(&h, &world.borrow(), &mgr, &drv, &run);
}

/// Connects the first device (clean events) and returns the pieces.
fn connected(seed: u64) -> (Harness, Rc<RefCell<World>>, TestDriver) {
    let h = Harness::new(GUEST);
    let world = Rc::new(RefCell::new(World::new(seed, &[Act::Create { be_dom: 0 }, Act::Probe])));
    setup(&h, &world);
    (h, world, test_driver())
}

/// Runs `acts` at once (no request of the guest in between), then lets
/// the guest catch up.
fn at_once(h: &Harness, world: &Rc<RefCell<World>>, acts: &[Act]) {
    let mut fake = h.fake();
    let mut w = world.borrow_mut();
    w.script.extend(acts.iter().copied());
    while w.act(&mut fake, true) {}
    assert!(w.script.is_empty(), "{:?}", w.script);
}

#[test]
fn a_device_id_reused_at_once_is_recognised_as_new() {
    let (h, world, mut drv) = connected(4);
    let mut bus = Bus::new(h.client());
    let mut mgr = manager(&mut bus);
    let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    assert_eq!(run.attached, [(1, Cause::Event)]);
    // Removed and created again, same id, same backend path, before the
    // guest reads anything: only the reset state node tells.
    at_once(&h, &world, &[Act::ForceRemove, Act::Create { be_dom: 0 }, Act::Probe]);
    let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    assert_eq!(
        run.detached,
        [Why::Reset(Node::State(XenbusState::Initialising))],
        "{}",
        run.lines.join("\n")
    );
    assert_eq!(run.attached, [(2, Cause::Event)]);
    assert!(run.lines[1].contains("after its last detach"), "{}", run.lines[1]);
    check_end(&h, &world.borrow(), &mgr, &drv, &run);
}

#[test]
fn a_device_id_reused_with_another_backend_domain_is_new() {
    let (h, world, mut drv) = connected(5);
    let mut bus = Bus::new(h.client());
    let mut mgr = manager(&mut bus);
    drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    at_once(&h, &world, &[Act::ForceRemove, Act::Create { be_dom: 3 }, Act::Probe]);
    let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    assert_eq!(
        run.detached,
        [Why::NewBackend { backend: be_path(3), backend_id: DomId(3) }],
        "{}",
        run.lines.join("\n")
    );
    check_end(&h, &world.borrow(), &mgr, &drv, &run);
}

#[test]
fn a_backend_removed_and_recreated_is_connected_again() {
    for (seed, acts) in [
        // Seen gone, then seen back.
        (6, vec![vec![Act::RemoveBackend], vec![Act::RecreateBackend, Act::Probe]]),
        // Gone and back before the guest looks: back in InitWait.
        (7, vec![vec![Act::RemoveBackend, Act::RecreateBackend, Act::Probe]]),
        // Back but not probed yet when the guest looks.
        (8, vec![vec![Act::RemoveBackend, Act::RecreateBackend], vec![Act::Probe]]),
    ] {
        let (h, world, mut drv) = connected(seed);
        let mut bus = Bus::new(h.client());
        let mut mgr = manager(&mut bus);
        drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
        let mut all = Vec::new();
        for step in acts {
            at_once(&h, &world, &step);
            let run = drive_until_quiet(&h, &world, &mut mgr, &mut drv, &mut bus);
            all.extend(run);
        }
        let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
        all.extend(run.lines.clone());
        // A new backend that finds our node Connected maps the rings it
        // names (netback does): if it did so before the guest looked,
        // nothing changed for the guest.
        let attaches = mgr.counters().attaches;
        assert!(attaches == 2 || (seed == 7 && attaches == 1), "seed {seed}\n{}", all.join("\n"));
        if attaches == 2 {
            assert!(
                all.iter().any(|l| l.contains("detached #1 (backend gone)")
                    || l.contains("detached #1 (backend restarted")),
                "seed {seed}\n{}",
                all.join("\n")
            );
        }
        check_end(&h, &world.borrow(), &mgr, &drv, &run);
    }
}

/// A few polls with clean events and nothing scripted (no settling
/// required): what the guest makes of an intermediate picture.
fn drive_until_quiet<D: Driver>(
    h: &Harness,
    world: &Rc<RefCell<World>>,
    mgr: &mut Hotplug<D>,
    drv: &mut D,
    bus: &mut Bus<impl Transport>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..5 {
        while let Ok(ev) = bus.next_event(Some(bus.now())) {
            mgr.on_event(&ev.token);
        }
        for hp in mgr.poll(bus, drv) {
            lines.push(hp.to_string());
        }
        let now = bus.now();
        world.borrow_mut().now = now;
        world.borrow_mut().react(&mut h.fake());
    }
    lines
}

#[test]
fn coalesced_events_of_a_whole_cycle_still_lead_to_the_new_device() {
    let (h, world, mut drv) = connected(9);
    let mut bus = Bus::new(h.client());
    let mut mgr = manager(&mut bus);
    drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    // Every event of a forced cycle held, duplicates merged, then sent
    // together after the device already changed twice.
    h.fake().set_event_filter(|_, _| EventFate::Hold);
    at_once(&h, &world, &[Act::ForceRemove, Act::Create { be_dom: 0 }, Act::Probe]);
    let (_, merged) = h.fake().events_dropped();
    assert!(merged > 0, "some events were merged");
    h.fake().clear_event_filter();
    assert!(h.fake().release_held() > 0);
    let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    assert_eq!(run.attached, [(2, Cause::Event)], "{}", run.lines.join("\n"));
    check_end(&h, &world.borrow(), &mgr, &drv, &run);
}

#[test]
fn a_detach_before_the_device_ever_connected_is_answered() {
    // The backend never reached InitWait; the toolstack detaches: the
    // guest answers its Closing with Closed, so the toolstack need not
    // wait out its timeout; then a new device connects.
    let h = Harness::new(GUEST);
    let world = Rc::new(RefCell::new(World::new(10, &[])));
    setup(&h, &world);
    let mut bus = Bus::new(h.client());
    let mut mgr = manager(&mut bus);
    let mut drv = test_driver();
    world.borrow_mut().create(&mut h.fake(), 0);
    drive_until_quiet(&h, &world, &mut mgr, &mut drv, &mut bus);
    {
        let mut w = world.borrow_mut();
        w.script.extend([Act::Detach, Act::Create { be_dom: 0 }, Act::Probe]);
    }
    let t0 = bus.now();
    let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    assert!(
        !world.borrow().log.iter().any(|l| l.contains("timed out")),
        "{:?}",
        world.borrow().log
    );
    assert!(
        run.end.since(t0) < Duration::from_secs(2),
        "{:?}\n{}\n{:#?}",
        run.end.since(t0),
        run.lines.join("\n"),
        world.borrow().log
    );
    assert_eq!(run.attached, [(1, Cause::Event)]);
    check_end(&h, &world.borrow(), &mgr, &drv, &run);
}

#[test]
fn a_backend_that_never_comes_is_reported_once_and_reexamined() {
    let h = Harness::new(GUEST);
    let world = Rc::new(RefCell::new(World::new(11, &[Act::Sleep(12_000), Act::Probe])));
    setup(&h, &world);
    let mut bus = Bus::new(h.client());
    let mut mgr = manager(&mut bus);
    let mut drv = test_driver();
    world.borrow_mut().create(&mut h.fake(), 0);
    let scans0 = mgr.counters().scans;
    let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    assert_eq!(run.stuck, 1, "{}", run.lines.join("\n"));
    assert!(
        run.lines[0].contains(
            "hotplug: vif/0: still waiting for its backend after 5000 ms (frontend Initialising (1), backend Initialising (1)); re-examining it every 1000 ms"
        ),
        "{}",
        run.lines[0]
    );
    assert!(run.lines[1].contains("attached #1 in 12"), "{}", run.lines[1]);
    // Re-examined about once a second meanwhile, not more.
    let scans = mgr.counters().scans - scans0;
    assert!((10..=40).contains(&scans), "{scans} scans");
    check_end(&h, &world.borrow(), &mgr, &drv, &run);
}

#[test]
fn broken_entries_are_reported_clearly_and_do_not_stop_the_others() {
    let h = Harness::new(GUEST);
    let mut bus = Bus::new(h.client());
    let mut mgr = manager(&mut bus);
    let mut drv = test_driver();
    {
        let mut fake = h.fake();
        for (id, key, v) in [
            ("1", "backend", &b"not/absolute"[..]),
            ("1", "backend-id", b"0"),
            ("2", "backend", b"/local/domain/0/backend/vif/7/2"),
            ("2", "backend-id", b"banana"),
            ("3", "backend-id", b"0"),
            ("4", "backend", b"/local/domain/0/backend/vif/7/4"),
            ("4", "backend-id", b"0"),
        ] {
            let p = format!("/local/domain/7/device/vif/{id}/{key}");
            fake.write_as(DomId(0), &p, v).unwrap();
        }
        fake.write_as(DomId(0), "/local/domain/0/backend/vif/7/4/state", b"\xff\xfe").unwrap();
        fake.set_perms_as(
            DomId(0),
            "/local/domain/0/backend/vif/7/4/state",
            &[Perm::new(DomId(0), Access::None), Perm::new(GUEST, Access::Read)],
        )
        .unwrap();
    }
    let mut lines = Vec::new();
    for _ in 0..3 {
        while let Ok(ev) = bus.next_event(Some(bus.now())) {
            mgr.on_event(&ev.token);
        }
        mgr.kick();
        lines.extend(mgr.poll(&mut bus, &mut drv).into_iter().map(|h| h.to_string()));
    }
    let text = lines.join("\n");
    assert!(text.contains("vif/1: broken device entry, left alone: device/vif/1/backend = \"not/absolute\" is not a XenStore path"), "{text}");
    assert!(text.contains("vif/2: broken device entry, left alone: device/vif/2/backend-id = \"banana\" is not a domain id"), "{text}");
    assert!(
        text.contains("vif/3: broken device entry, left alone: device/vif/3/backend is missing"),
        "{text}"
    );
    assert!(text.contains("vif/4: /local/domain/0/backend/vif/7/4/state = \"\u{fffd}\u{fffd}\" is not a xenbus state; waiting for a valid one"), "{text}");
    // Each said once, though scanned three times.
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(mgr.devices().count(), 0);
    assert_eq!(mgr.ids().collect::<Vec<_>>(), ["4"]);
}

#[test]
fn a_store_that_keeps_failing_is_said_once_and_retried() {
    let h = Harness::new(GUEST);
    let world = Rc::new(RefCell::new(World::new(12, &[Act::Create { be_dom: 0 }, Act::Probe])));
    setup(&h, &world);
    let mut bus = Bus::new(h.client());
    let mut mgr = manager(&mut bus);
    let mut drv = test_driver();
    // The guest may not read its device directory for a while.
    world.borrow_mut().act(&mut h.fake(), true);
    let dir = "/local/domain/7/device/vif";
    let perms = h.fake().perms(dir).unwrap();
    h.fake().set_perms_as(DomId(0), dir, &[Perm::new(DomId(0), Access::None)]).unwrap();
    let mut lines = Vec::new();
    for _ in 0..5 {
        mgr.kick();
        lines.extend(mgr.poll(&mut bus, &mut drv).into_iter().map(|h| h.to_string()));
        let deadline = mgr.next_deadline().expect("a failed scan is retried on the timer");
        assert!(deadline > bus.now());
    }
    assert_eq!(
        lines,
        ["hotplug: vif: cannot read device/vif: xenstore: Xs(EACCES); trying again every 1000 ms"]
    );
    h.fake().set_perms_as(DomId(0), dir, &perms).unwrap();
    let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    check_end(&h, &world.borrow(), &mgr, &drv, &run);
}

/// A random script: a first device, then 3 to 6 changes of every kind
/// (with `other_domain`, also to a backend in another domain).
fn random_script(rng: &mut Rng, other_domain: bool) -> Vec<Act> {
    let mut script = vec![Act::Create { be_dom: 0 }, Act::Probe];
    let mut be_dom = 0;
    for _ in 0..(3 + rng.next() % 4) {
        match rng.next() % 7 {
            0 | 1 => script.extend(cycle(0)),
            2 => script.extend(cycle(2000)),
            3 => script.extend([Act::ForceRemove, Act::Create { be_dom }, Act::Probe]),
            4 if other_domain => {
                be_dom = if be_dom == 0 { 3 } else { 0 };
                script.extend([Act::ForceRemove, Act::Create { be_dom }, Act::Probe]);
            }
            4 | 5 => script.extend([Act::RemoveBackend, Act::RecreateBackend, Act::Probe]),
            _ => script.extend([Act::Detach, Act::Create { be_dom }, Act::Sleep(300), Act::Probe]),
        }
    }
    script
}

/// Random scripts of detach/attach cycles of every kind, random points
/// for every act, random event fates. Fixed seeds.
fn explore(seeds: core::ops::Range<u64>, events: Events, p_react: u64) {
    for seed in seeds {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let script = random_script(&mut rng, true);
        let h = Harness::new(GUEST);
        let world = Rc::new(RefCell::new(World::new(seed, &script)));
        {
            let mut w = world.borrow_mut();
            w.p_act = 20 + rng.next() % 200;
            w.p_react = p_react;
        }
        setup(&h, &world);
        let events_rng = match events {
            Events::Clean => None,
            Events::Lossy { hold, drop } => {
                let r = Rc::new(RefCell::new(Rng(seed ^ 0x5555)));
                let f = r.clone();
                h.fake().set_event_filter(move |_, _| {
                    let mut r = f.borrow_mut();
                    if r.chance(drop) {
                        EventFate::Drop
                    } else if r.chance(hold) {
                        EventFate::Hold
                    } else {
                        EventFate::Deliver
                    }
                });
                Some(r)
            }
        };
        let mut bus = Bus::new(h.client());
        let mut mgr = manager(&mut bus);
        let mut drv = test_driver();
        let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, events_rng);
        let w = world.borrow();
        if p_react < 1000 {
            // A slow backend makes connects time out and close: allowed.
            let mut w2 = World::new(0, &[]);
            w2.log = w.log.clone();
            w2.be_dom = w.be_dom;
            w2.mapped = w.mapped.clone();
            check_end_of(&h, &w2, &mgr, &drv, &run, &format!("seed {seed}"));
        } else {
            check_end_of(&h, &w, &mgr, &drv, &run, &format!("seed {seed}"));
        }
    }
}

/// `n` seeds from `first`, or `$HOTPLUG_SEEDS` of them (a longer hunt).
fn seeds(first: u64, n: u64) -> core::ops::Range<u64> {
    let n = std::env::var("HOTPLUG_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    first..first + n
}

#[test]
fn random_orders_with_clean_events_always_end_connected() {
    explore(seeds(0, 300), Events::Clean, 1000);
}

#[test]
fn random_orders_with_events_held_merged_and_lost_always_end_connected() {
    explore(seeds(1_000_000, 300), Events::Lossy { hold: 200, drop: 100 }, 1000);
}

#[test]
fn random_orders_with_a_slow_backend_always_end_connected() {
    explore(seeds(2_000_000, 150), Events::Lossy { hold: 100, drop: 50 }, 600);
}

/// A world playing `sim`, started; random interleaving from `rng`.
fn sim_world(
    seed: u64,
    rng: &mut Rng,
    script: &[Act],
    sim: Sim,
    kind: &'static str,
    id: &'static str,
) -> (Harness, Rc<RefCell<World>>) {
    let h = Harness::new(GUEST);
    let world = Rc::new(RefCell::new(World::with_sim(seed, script, sim, kind, id)));
    // The real drivers make tens of requests per handshake: fewer acts
    // per request, or few devices would live long enough to connect.
    world.borrow_mut().p_act = 5 + rng.next() % 40;
    setup(&h, &world);
    (h, world)
}

#[test]
fn netfront_under_the_manager_ends_connected_with_no_grant_left_behind() {
    use crate::env::fake::FakeEnv;
    use crate::netfront::connect::Config as NetConfig;
    use crate::netfront::hotplug::VifDriver;
    let mut total = Counters::default();
    for seed in seeds(3_000_000, 60) {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let script = random_script(&mut rng, true);
        let host = FakeEnv::default();
        let xen = host.xen.clone();
        let sim = Sim::Net { xen: xen.clone() };
        let (h, world) = sim_world(seed, &mut rng, &script, sim, "vif", "0");
        let mut bus = Bus::new(h.client());
        let cfg = NetConfig { rx_buffers: 8, tx_buffers: 8, max_queues: 1, ..NetConfig::default() };
        let mut drv = VifDriver::new(host, cfg);
        let mut mgr = Hotplug::new("vif", Config::default());
        mgr.start(&mut bus).unwrap();
        let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
        let w = world.borrow();
        let story =
            || format!("seed {seed}\nworld: {:#?}\nguest:\n{}", w.log, run.lines.join("\n"));
        assert!(w.violations.is_empty(), "{:?}\n{}", w.violations, story());
        drv.reclaim();
        let (_, nf) = mgr.devices().next().unwrap();
        let (tx, rx) = nf.queues()[0].ring_refs();
        let x = xen.borrow();
        // The live backend maps the live rings; every grant still active
        // is the live device's (2 rings and the posted RX buffers): every
        // earlier device revoked all of its own.
        assert_eq!(x.mapped, BTreeSet::from([tx.0, rx.0]), "{}", story());
        assert_eq!(
            x.live_grants(),
            2 + nf.rx_posted() as usize,
            "active {:?} mapped {:?} rings {tx:?} {rx:?} quarantine {}\n{}",
            x.grants.keys().collect::<Vec<_>>(),
            x.mapped,
            drv.quarantine.len(),
            story()
        );
        // Kept only while their backend still maps them: the live one maps
        // nothing of earlier devices, so the next reclaim frees them all.
        drv.reclaim();
        assert!(drv.quarantine.is_empty(), "{}", story());
        assert_eq!(x.open_ports.len(), 1, "one event channel left: {}", story());
        let c = mgr.counters();
        assert_eq!(c.attaches, c.detaches + 1, "{}", story());
        assert_eq!(h.fake().watches().len(), 2, "{}", story());
        total.attaches += c.attaches;
        total.found_by_timer += c.found_by_timer;
        total.writes_refused += c.writes_refused;
        total.connect_failures += c.connect_failures;
    }
    eprintln!("netfront under the manager, all seeds: {total:?}");
    // The scripts did make the driver reconnect, many times.
    assert!(total.attaches >= 3 * 60, "{total:?}");
}

#[test]
fn blkfront_under_the_manager_reads_what_the_previous_device_wrote() {
    use crate::blkfront::fake::{world as disk_world, FakeBlkEnv};
    use crate::blkfront::hotplug::VbdDriver;
    use crate::blkfront::Config as BlkConfig;
    for seed in seeds(4_000_000, 40) {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let disk = disk_world(64 * 1024);
        let sim = Sim::Blk { w: disk.clone() };
        // First device only; the cycles come one at a time below.
        let (h, world) = sim_world(
            seed,
            &mut rng,
            &[Act::Create { be_dom: 0 }, Act::Probe],
            sim,
            "vbd",
            "51712",
        );
        let mut bus = Bus::new(h.client());
        let d2 = disk.clone();
        let cfg = BlkConfig { max_queues: 1, ..BlkConfig::default() };
        let mut drv = VbdDriver::new(move || Ok(FakeBlkEnv::new(&d2)), cfg);
        let mut mgr = Hotplug::new("vbd", Config::default());
        mgr.start(&mut bus).unwrap();
        let mut lines = Vec::new();
        for round in 0..6u64 {
            let run = drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
            lines.extend(run.lines);
            let story = || format!("seed {seed} round {round}\n{}", lines.join("\n"));
            assert!(world.borrow().violations.is_empty(), "{}", story());
            let (_, d) = mgr.devices_mut().next().expect("connected");
            // What the previous device wrote is there; then this one's.
            let mut buf = vec![0u8; 8192];
            if round > 0 {
                d.read_at(4096 + round, &mut buf).unwrap();
                assert_eq!(buf, pattern(round - 1), "{}", story());
            }
            d.write_at(4096 + round + 1, &pattern(round)).unwrap();
            d.flush().ok();
            assert_eq!(disk.borrow().violations, Vec::<String>::new(), "{}", story());
            // The ring is the only grant left (no persistent grants here).
            assert_eq!(disk.borrow().live_grants(), 1, "{}", story());
            let next: Vec<Act> = match rng.next() % 4 {
                0 => cycle(0),
                1 => cycle(2000),
                2 => vec![Act::ForceRemove, Act::Create { be_dom: 0 }, Act::Probe],
                _ => vec![Act::RemoveBackend, Act::RecreateBackend, Act::Probe],
            };
            world.borrow_mut().script.extend(next);
        }
        let c = mgr.counters();
        assert_eq!(c.attaches, c.detaches + 1, "seed {seed}\n{}", lines.join("\n"));
        assert!(c.attaches >= 4, "seed {seed}: {c:?}\n{}", lines.join("\n"));
    }

    fn pattern(round: u64) -> Vec<u8> {
        (0..8192u64).map(|i| (i.wrapping_mul(31) ^ round.wrapping_mul(0x9d)) as u8).collect()
    }
}

/// Issue 18 item 1: a backend that restarts under the device for ever
/// made the guest reconnect (and grant its pages again) for ever. From the
/// third restart the reconnects wait, and at `broken_after` faults the
/// device is declared broken and left alone.
#[test]
fn a_backend_that_keeps_restarting_is_slowed_then_declared_broken() {
    let (h, world, mut drv) = connected(11);
    let mut bus = Bus::new(h.client());
    let mut mgr = Hotplug::new("vif", Config { broken_after: 5, ..Config::default() });
    mgr.start(&mut bus).unwrap();
    drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    let mut lines = Vec::new();
    // The backend vanishes (seen), then comes back.
    let restart =
        |lines: &mut Vec<String>, drv: &mut TestDriver, mgr: &mut Hotplug<_>, bus: &mut Bus<_>| {
            at_once(&h, &world, &[Act::RemoveBackend]);
            lines.extend(drive_until_quiet(&h, &world, mgr, drv, bus));
            at_once(&h, &world, &[Act::RecreateBackend, Act::Probe]);
        };
    for _ in 0..4 {
        restart(&mut lines, &mut drv, &mut mgr, &mut bus);
        lines.extend(drive(&h, &world, &mut mgr, &mut drv, &mut bus, None).lines);
    }
    assert_eq!(mgr.counters().attaches, 5, "{}", lines.join("\n"));
    assert!(mgr.counters().reconnects_delayed >= 1, "{}", lines.join("\n"));
    assert_eq!(mgr.counters().broken, 0);
    // The fifth restart: broken, and nothing connects it again.
    restart(&mut lines, &mut drv, &mut mgr, &mut bus);
    for _ in 0..20 {
        lines.extend(drive_until_quiet(&h, &world, &mut mgr, &mut drv, &mut bus));
        let later = bus.now().after(Duration::from_secs(10));
        world.borrow_mut().now = later;
        bus.xs.transport_mut().events_mut().advance(Duration::from_secs(10));
    }
    assert_eq!(mgr.counters().broken, 1, "{}", lines.join("\n"));
    assert_eq!(mgr.counters().attaches, 5, "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("declared broken")), "{}", lines.join("\n"));
}

/// Issue 18 item 1: a backend that maps every page and restarts made the
/// guest leak them cycle after cycle (refused revokes, a new connect that
/// grants afresh). Now what each let-go device left mapped is counted per
/// id, and at `max_kept` pages the id is declared broken: no new grants.
#[test]
fn an_id_whose_backends_keep_our_pages_is_declared_broken() {
    let (h, world, mut drv) = connected(12);
    drv.keeps = 60;
    let mut bus = Bus::new(h.client());
    let mut mgr = Hotplug::new("vif", Config { max_kept: 100, ..Config::default() });
    mgr.start(&mut bus).unwrap();
    drive(&h, &world, &mut mgr, &mut drv, &mut bus, None);
    let mut lines = Vec::new();
    // Restarted once: 60 pages kept, reconnected.
    at_once(&h, &world, &[Act::RemoveBackend]);
    lines.extend(drive_until_quiet(&h, &world, &mut mgr, &mut drv, &mut bus));
    at_once(&h, &world, &[Act::RecreateBackend, Act::Probe]);
    lines.extend(drive(&h, &world, &mut mgr, &mut drv, &mut bus, None).lines);
    assert_eq!(mgr.counters().attaches, 2, "{}", lines.join("\n"));
    // Again: 120 kept, past 100: broken, never connected again.
    at_once(&h, &world, &[Act::RemoveBackend]);
    lines.extend(drive_until_quiet(&h, &world, &mut mgr, &mut drv, &mut bus));
    at_once(&h, &world, &[Act::RecreateBackend, Act::Probe]);
    for _ in 0..10 {
        lines.extend(drive_until_quiet(&h, &world, &mut mgr, &mut drv, &mut bus));
        bus.xs.transport_mut().events_mut().advance(Duration::from_secs(10));
    }
    assert_eq!(mgr.counters().attaches, 2, "{}", lines.join("\n"));
    assert_eq!(mgr.counters().broken, 1, "{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("kept 120 of our pages")), "{}", lines.join("\n"));
}
