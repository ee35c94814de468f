//! The loop every network service runs: netfront RX into smoltcp a
//! packet at a time, the service's connections, then one smoltcp egress
//! and the TX ring published once; then a wait for the next event on the
//! vif's or the store's channels, or the first deadline (smoltcp's timers,
//! the service's timeouts, a XenStore look at least once a second).
//! XenStore brings the toolstack's requests: the vif going away (`xl
//! network-detach`: disconnect, revoke every grant), a vif appearing (`xl
//! network-attach`: connect), `xl shutdown` and `xl sysrq` (the idle
//! app's handling). Why it is built this way, measured: docs/services.md
//! ("The service loop, and what made it slow").
//!
//! The packets themselves go through shards (`net::shard`): one for a
//! service on one vCPU, one per netfront queue and vCPU for a service
//! that can run several instances of itself ([`Service::another`]) in a
//! domain with several vCPUs (docs/smp.md). This loop, on vCPU 0, serves
//! shard 0 and any shard whose vCPU is offline; the vif itself (the
//! hotplug manager, netfront) is behind one lock, [`with_vif`], held by a
//! shard only to copy packets off and onto its rings.

use super::device::VifLink;
use super::loopstats::{Lap, LoopStats};
use super::shard::{self, Shard, VifView};
use crate::app::{AppError, AppResult};
use crate::cmdline::Cmdline;
use crate::driver_env::KernelEnv;
use crate::events::storm::Throttle;
use crate::toolstack as idle;
use crate::xenbus::{self, control};
use crate::{events, grants, kprintln, smp, timer};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;
use hypercall::EvtchnPort;
use pv_drivers::netfront::connect::{Config as NetConfig, Netfront};
use pv_drivers::netfront::ctrl::{self, CtrlError};
use pv_drivers::netfront::flow::RxSteering;
use pv_drivers::netfront::hotplug::{VifClosed, VifDriver};
use pv_drivers::netfront::Stats;
use pv_drivers::xenbus::hotplug::{self, Happening, Hotplug};
use smoltcp::iface::{Interface, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::wire::{IpAddress, IpCidr};

/// How often XenStore is looked at without an event on its channel (a
/// vif being connected: on the hotplug manager's own schedule).
const STORE_TICK_NS: u64 = 1_000_000_000;
/// No packet for this long: the hotplug manager may re-read XenStore.
const QUIET_NS: u64 = 1_000_000_000;
/// Under traffic, it still does at least this often.
const FOLLOW_AT_LEAST_NS: u64 = 60_000_000_000;

/// What the status page shows.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub uptime_ms: u64,
    pub domid: u16,
    pub mem_kib: u64,
    /// The current vif's counters (zero while detached).
    pub now: Stats,
    /// Counters of earlier attachments, summed.
    pub before: Stats,
    pub attachments: u32,
    pub connected: bool,
    pub events: u64,
    pub tx_busy: u64,
    /// The current vif's packets per queue (RX, TX).
    pub queues: Vec<(u64, u64)>,
    /// Retransmitted SYNs of connections already held, dropped
    /// ([`is_duplicate_syn`]).
    pub syn_duplicates: u64,
    /// Events delivered on the current vif's TX and RX channels (one
    /// channel per queue unless split: then all count as RX).
    pub port_events: (u64, u64),
    /// Suspends that resumed in a new domain (restore, migration), and
    /// that were cancelled (checkpoints).
    pub resumes: u64,
    pub checkpoints: u64,
    /// Event storms (events with no work behind them): the lateeoi
    /// bookkeeping of the vif's channels (`events::storm`).
    pub storm: Throttle,
    /// The service loop's wake-ups and where its time goes.
    pub looped: LoopStats,
}

/// A service: its sockets, served once per loop.
pub trait Service: Send {
    fn name(&self) -> &'static str;
    fn open(&mut self, sockets: &mut SocketSet<'static>);
    fn serve(&mut self, sockets: &mut SocketSet<'static>, status: &Status);
    /// The stack has just handed a SYN to a socket: called between
    /// received packets, for a listener to keep a socket listening for the
    /// next one (a burst of SYNs in one pass then needs no large backlog).
    fn syn_taken(&mut self, _sockets: &mut SocketSet<'static>) {}
    /// The earliest time (ms, [`super::listener::now_ms`]: the running clock) the
    /// service must be served again if no packet comes (its timeouts);
    /// `None`: only when something happens.
    fn poll_at(&self) -> Option<u64> {
        None
    }
    /// A line of the service's own counters, printed with the network's
    /// (`xl sysrq`, shutdown).
    fn report(&self) -> Option<String> {
        None
    }
    /// Another instance of the service with the same settings and no
    /// connections, for another vCPU's shard; `None` (the default): the
    /// service runs on vCPU 0 only.
    fn another(&self) -> Option<Box<dyn Service>> {
        None
    }
}

fn add(a: &mut Stats, b: &Stats) {
    macro_rules! sum { ($($f:ident),*) => { $(a.$f += b.$f;)* } }
    sum!(
        rx_packets,
        rx_bytes,
        tx_packets,
        tx_bytes,
        rx_multi_slot,
        tx_multi_slot,
        rx_extra_info,
        rx_csum_validated,
        rx_csum_blank,
        rx_gso,
        tx_csum_blank,
        tx_gso,
        rx_csum_sw,
        rx_csum_bad,
        tx_csum_sw,
        rx_dropped,
        rx_bad_id,
        tx_bad_id,
        rx_bad_len,
        rx_error_status,
        tx_error_status,
        rx_bad_prod,
        tx_bad_prod,
        rx_bad_extra,
        rx_long_chain,
        tx_null_status,
        tx_ids_recovered,
        tx_stalled,
        notifications,
        tx_notifications,
        rx_notifications,
        events,
        grants_made,
        grants_revoked,
        grants_kept
    );
}

/// The vif and everything that touches its rings: the hotplug manager
/// and netfront. One lock (see the module text): shards on other vCPUs
/// take it to copy packets, the loop for XenStore's news.
pub(super) struct Driver {
    /// The vifs: attached, detached and re-attached by the hotplug manager.
    vifs: Hotplug<VifDriver<KernelEnv>>,
    drv: VifDriver<KernelEnv>,
    /// The vif the interface uses (the first connected one).
    current: Option<String>,
    /// Bumped whenever the vif in use changes.
    gen: u64,
    /// What the shards see of it.
    view: Option<VifView>,
    /// Each queue its own shard (netback steers RX like TX, and there are
    /// shards for them); otherwise shard 0 serves every queue.
    sharded: bool,
    /// The suspend generation the vif was connected in: its ports mean
    /// nothing in a later domain (another port may have the number).
    resumes: u64,
}

static DRIVER: shard::Lock<Option<Driver>> = shard::lock(None);

/// Runs `f` with the vif (`None` before the service started).
pub(super) fn with_vif<R>(f: impl FnOnce(&mut Driver) -> R) -> Option<R> {
    DRIVER.lock().as_mut().map(f)
}

impl Driver {
    pub(super) fn gen(&self) -> u64 {
        self.gen
    }

    /// Shard `k`'s view of the vif in use, if one is.
    pub(super) fn view(&self, k: usize) -> Option<VifView> {
        let mut v = self.view.clone()?;
        v.queue = match (self.sharded, k) {
            (true, k) => Some(k),
            (false, 0) => None,
            // Idle: no queue of this vif is its.
            (false, _) => Some(usize::MAX),
        };
        Some(v)
    }

    /// The vif in use and the environment its calls need.
    pub(super) fn netfront(&mut self) -> (Option<&mut Netfront<KernelEnv>>, &mut KernelEnv) {
        let nf = match self.current.as_deref() {
            Some(id) => self.vifs.device_mut(id),
            None => None,
        };
        (nf, &mut self.drv.host)
    }

    /// Each queue's channels, with the shard they belong to.
    fn queue_ports(&mut self) -> Vec<(usize, EvtchnPort)> {
        let sharded = self.sharded;
        if self.resumes != crate::suspend::counts().1 {
            return Vec::new();
        }
        let (Some(nf), _) = self.netfront() else { return Vec::new() };
        let mut ports = Vec::new();
        for (q, queue) in nf.queues().iter().enumerate() {
            let k = if sharded { q } else { 0 };
            let (tx, rx) = queue.ports();
            ports.push((k, tx));
            if rx != tx {
                ports.push((k, rx));
            }
        }
        ports
    }

    /// Binds shard `k`'s channels to the vCPU serving it.
    pub(super) fn bind_shard_ports(&mut self, k: usize) {
        let cpu = shard::home(k);
        for (_, p) in self.queue_ports().into_iter().filter(|(s, _)| *s == k) {
            if let Err(e) = crate::events::bind_vcpu(p, cpu) {
                kprintln!("net: shard {k}: port {p} to vCPU {cpu}: {e}");
            }
        }
    }

    /// A new vif in use: its queue channels count for their shards and go
    /// to the vCPUs serving them.
    fn adopt_ports(&mut self) {
        for (k, p) in self.queue_ports() {
            let _ = crate::events::unregister(p);
            if let Err(e) = crate::events::register(p, shard::on_queue_event, k) {
                kprintln!("net: port {p}: {e}");
            }
            let cpu = shard::home(k);
            if cpu != 0 {
                if let Err(e) = crate::events::bind_vcpu(p, cpu) {
                    kprintln!("net: shard {k}: port {p} to vCPU {cpu}: {e}");
                }
            }
        }
    }
}

struct Net {
    cidr: Option<IpCidr>,
    status: Status,
    /// Ports masked by the storm throttle, and until when.
    masked: Vec<EvtchnPort>,
    masked_until: u64,
    /// Shards the service could run (1: it cannot, or one vCPU).
    shards: usize,
}

impl Net {
    /// Re-reads the vifs if an event, the timer or a lost event asks for
    /// it, and follows what happened.
    fn follow_xenbus(&mut self) {
        let happened = with_vif(|d| {
            let (vifs, drv) = (&mut d.vifs, &mut d.drv);
            xenbus::with(|bus| vifs.poll(bus, drv)).unwrap_or_default()
        })
        .unwrap_or_default();
        for h in happened {
            self.follow(h);
        }
    }

    /// Lets every vif go (the domain is going down).
    fn shutdown(&mut self) {
        let happened = with_vif(|d| {
            let (vifs, drv) = (&mut d.vifs, &mut d.drv);
            xenbus::with(|bus| vifs.shutdown(bus, drv)).unwrap_or_default()
        })
        .unwrap_or_default();
        for h in happened {
            self.follow(h);
        }
    }

    fn follow(&mut self, h: Happening<VifClosed>) {
        kprintln!("{h}");
        match h {
            Happening::Attached { id, .. } => {
                self.status.attachments += 1;
                let idle = with_vif(|d| d.current.is_none()).unwrap_or(false);
                if idle {
                    self.use_vif(&id);
                }
                kprintln!("net: {}", grants::summary_line());
            }
            Happening::Detached { id, closed, .. } => {
                add(&mut self.status.before, &closed.stats);
                let next = with_vif(|d| {
                    if d.current.as_deref() != Some(id.as_str()) {
                        return None;
                    }
                    d.current = None;
                    d.view = None;
                    d.gen += 1;
                    Some(d.vifs.devices().next().map(|(i, _)| String::from(i)))
                })
                .flatten();
                if let Some(next) = next {
                    // The live device's counters are in `before` now.
                    self.status.now = Default::default();
                    self.status.connected = false;
                    if let Some(next) = next {
                        self.use_vif(&next);
                    }
                }
                kprintln!("net: {}", grants::summary_line());
            }
            _ => {}
        }
    }

    /// Points the shards at the connected vif `id`.
    fn use_vif(&mut self, id: &str) {
        let shards = self.shards;
        let dhcp = self.cidr.is_none();
        let used = with_vif(|d| {
            let nf = d.vifs.device_mut(id)?;
            // Before anything is sent: from here on every flow's RX queue is
            // the one the guest predicts (or netback's own choice, if it
            // refuses).
            let steering = steer_rx(nf, &mut d.drv.host);
            let m = nf.mac;
            kprintln!(
                "net: {} connected: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} mtu {} {} queue(s) in use of {} offered, {} event channel(s) each, {} RX buffers posted",
                nf.dev.frontend, m[0], m[1], m[2], m[3], m[4], m[5], nf.mtu,
                nf.queues().len(), nf.queues_offered, if nf.split { 2 } else { 1 },
                nf.rx_posted()
            );
            let o = nf.offloads;
            let yn = |b: bool| if b { "on" } else { "off" };
            kprintln!(
                "net: offloads: rx-csum {} rx-gso-tcpv4 {} tx-csum {} tx-gso-tcpv4 {}",
                yn(o.rx_csum),
                yn(o.rx_gso),
                yn(o.tx_csum),
                yn(o.tx_gso)
            );
            let queues = nf.queues().len();
            match steering {
                Ok(s) => kprintln!(
                    "net: rss: netback steers RX like TX: Toeplitz (Microsoft key) over {}, {}-entry table over {} queues",
                    ctrl::hash_type_names(s.flags), s.table_size, s.queues
                ),
                Err(CtrlError::NoRing) if queues == 1 => {}
                Err(CtrlError::NoRing) => kprintln!(
                    "net: rss: no control ring offered (feature-ctrl-ring): netback picks RX queues itself"
                ),
                Err(ref e) => kprintln!("net: rss: RX steering refused ({e}): netback picks RX queues itself"),
            }
            let sharded = shards > 1 && queues > 1 && steering.is_ok() && !dhcp;
            if shards > 1 {
                if sharded {
                    kprintln!(
                        "net: {queues} shards, one per queue: queue k's flows served on vCPU k (while it is online)"
                    );
                } else {
                    kprintln!(
                        "net: one shard serves every queue on vCPU 0 ({})",
                        if dhcp { "DHCP" } else if queues == 1 { "one queue" } else { "no RX steering" }
                    );
                }
            }
            let view = VifView {
                gen: d.gen + 1,
                mac: nf.mac,
                link: VifLink { mtu: nf.mtu, offloads: nf.offloads },
                tso: nf.offloads.tx_gso.then_some(super::device::TSO_MAX_PAYLOAD),
                queue: None,
            };
            d.current = Some(id.into());
            d.gen += 1;
            d.view = Some(view);
            d.sharded = sharded;
            d.resumes = crate::suspend::counts().1;
            d.adopt_ports();
            Some(())
        })
        .flatten();
        if used.is_some() {
            self.status.connected = true;
        }
    }

    /// Refreshes the status page's figures of the vif in use.
    fn refresh_status(&mut self) {
        let st = &mut self.status;
        st.queues.clear();
        let found = with_vif(|d| {
            let (Some(nf), _) = d.netfront() else { return false };
            st.now = nf.stats;
            st.queues.extend(nf.queues().iter().map(|q| (q.rx_packets, q.tx_packets)));
            st.port_events = (0, 0);
            for q in nf.queues() {
                let (tx, rx) = q.ports();
                if tx != rx {
                    st.port_events.0 += crate::events::delivered(tx);
                }
                st.port_events.1 += crate::events::delivered(rx);
            }
            true
        })
        .unwrap_or(false);
        if !found {
            self.status.now = Default::default();
        }
    }

    /// What an event may have been for: packets in, faults, TX answers.
    fn progress(&mut self) -> Option<(u64, u64, u64, u32)> {
        with_vif(|d| {
            let (nf, _) = d.netfront();
            let nf = nf?;
            let s = &nf.stats;
            Some((s.rx_packets, s.rx_dropped, s.backend_errors(), nf.tx_in_flight()))
        })
        .flatten()
    }

    /// The storm throttle (Linux's lateeoi): after a wake-up by the vif's
    /// events that found no work, from the second in a row, mask its
    /// channels for a while; unmask them when the time is up (a masked
    /// port still becomes pending, so nothing is lost). With shards, each
    /// queue's events wake its own vCPU and this is off.
    fn throttle(&mut self, woke_by_events: bool, did_work: bool) {
        let now = platform::now_ns();
        if !self.masked.is_empty() && now >= self.masked_until {
            for p in self.masked.drain(..) {
                let _ = crate::events::unmask(p);
            }
        }
        if !woke_by_events || !self.masked.is_empty() || shard::count() > 1 {
            return;
        }
        let Some(delay) = self.status.storm.after_events(did_work) else { return };
        let first = self.status.storm.throttled == 1;
        let ports = with_vif(|d| {
            let (Some(nf), _) = d.netfront() else { return None };
            if first {
                kprintln!(
                    "net: {}: events with no work behind them; throttling (lateeoi)",
                    nf.dev.frontend
                );
            }
            Some(nf.queues().iter().map(|q| q.ports()).collect::<Vec<_>>())
        })
        .flatten();
        let Some(ports) = ports else { return };
        for (tx, rx) in ports {
            for p in [tx, rx] {
                if !self.masked.contains(&p) {
                    crate::events::mask(p);
                    self.masked.push(p);
                }
            }
        }
        self.masked_until = now + delay;
    }

    /// Every counter line: the vif's, vCPU 0's loop, the service's (shard
    /// 0's), and each shard's with several.
    fn print_all(&mut self, looked: u64) {
        print_counters(&self.status);
        let (sockets, svc_line) =
            shard::with_parked(0, |s| (s.sockets.iter().count(), s.svc.report()))
                .unwrap_or((0, None));
        kprintln!("{}", self.status.looped.line(sockets, looked));
        if let Some(line) = svc_line {
            kprintln!("{line}");
        }
        for l in shard::reports(&self.status.looped) {
            for l in l.lines() {
                kprintln!("{l}");
            }
        }
    }
}

/// Has netback steer RX as the guest steers TX, through the vif's control
/// ring; each answer is waited for at most 2 s in all.
fn steer_rx(nf: &mut Netfront<KernelEnv>, host: &mut KernelEnv) -> Result<RxSteering, CtrlError> {
    let deadline = platform::now_ns() + 2_000_000_000;
    let events = host.event_count();
    nf.steer_rx(host, || {
        let seen = events.get();
        let until = (platform::now_ns() + 1_000_000).min(deadline);
        timer::wait_until(until, || events.get() != seen);
        platform::now_ns() < deadline
    })
}

/// How many shards `svc` runs as: one per vCPU the domain has (SMP
/// started, the toolstack's `cpu/N/availability` followed), if the service
/// can make more instances of itself, `net.shards` allows and the address
/// is static (a DHCP lease is one interface's); else one.
fn plan_shards(cmd: &Cmdline<'_>, svc: &dyn Service, static_ip: bool) -> usize {
    let allowed = cmd.number("net.shards").unwrap_or(shard::MAX_SHARDS as u64) as usize;
    let (vcpus, _) = platform::smp::count();
    if allowed <= 1 || vcpus <= 1 || !static_ip || svc.another().is_none() {
        return 1;
    }
    match xenbus::with(smp::hotplug::start) {
        Some(Ok(_)) => (vcpus as usize).min(allowed).min(shard::MAX_SHARDS),
        Some(Err(e)) => {
            kprintln!("net: cannot start the other vCPUs ({e}); one shard on vCPU 0");
            1
        }
        None => 1,
    }
}

/// Runs `svc` until the toolstack ends the domain.
/// Memory (pages: 64 MiB) from which each RX queue posts a full ring of
/// buffers: 4 queues of 256 pages are then a sixteenth of it.
const RX_FULL_RING_PAGES: u64 = 64 * 256;

pub fn run(cmd: &Cmdline<'_>, svc: Box<dyn Service>) -> AppResult {
    let Some(id) = xenbus::identity() else {
        return Err(AppError::BadSetting("network services need XenStore (a domU)"));
    };
    // No ip= (or ip=dhcp): ask a DHCP server.
    let cidr = match cmd.get("ip").filter(|&v| v != "dhcp") {
        Some(text) => {
            let (addr, prefix) = super::parse_cidr(text).ok_or(AppError::BadSetting(
                "ip= takes ADDR/PREFIX (or dhcp), e.g. ip=192.0.2.2/24",
            ))?;
            Some(IpCidr::new(IpAddress::Ipv4(addr), prefix))
        }
        None => None,
    };
    let gw = match cmd.get("gw") {
        Some(g) => Some(g.parse().map_err(|_| AppError::BadSetting("gw= takes an IPv4 address"))?),
        None => None,
    };
    // Validated at boot (cmdline::SETTINGS): all are in range.
    // A full ring (Linux netfront's 256) when memory allows: with 128, a
    // burst of GSO packets (13-17 slots each) left netback without
    // buffers, waiting for our refill's notification, 8% of them. Not as
    // PVH: two queues of 256 need a second grant frame, put into the
    // physmap, and the PVH runs with it saw a TX stall (docs/exits.md).
    let rx_buffers = cmd.number("net.rx_buffers").unwrap_or(
        if platform::nr_pages() >= RX_FULL_RING_PAGES && !platform::is_pvh() { 256 } else { 128 },
    ) as u32;
    let mut max_queues = cmd.number("net.queues").unwrap_or(4) as u32;
    let offload = cmd.number("net.offload").unwrap_or(1) == 1;
    let rx_batch_max = cmd.number("net.rx_batch").unwrap_or(1) as u32;
    shard::set_rx_hold_ns(cmd.number("net.rx_hold_us").unwrap_or(1000) * 1000);
    let poll_ns = cmd.number("net.poll_us").unwrap_or(0) * 1000;
    let shards = plan_shards(cmd, &*svc, cidr.is_some());
    if shards > 1 {
        // A queue per shard at most: a shard serves one queue.
        max_queues = max_queues.min(shards as u32);
    }
    let cfg = NetConfig {
        rx_buffers,
        tx_buffers: 128,
        timeout: Duration::from_secs(10),
        max_queues,
        offload,
        rx_batch_max,
    };
    // One of the kernel's 17 event counters: the service is the first and
    // only driver environment of a network app.
    let env = KernelEnv::new().expect("a free event counter for the network service");
    *DRIVER.lock() = Some(Driver {
        vifs: Hotplug::new("vif", hotplug::Config::default()),
        drv: VifDriver::new(env, cfg),
        current: None,
        gen: 0,
        view: None,
        sharded: false,
        resumes: 0,
    });
    let mut net = Net {
        cidr,
        status: Status { domid: id.domid.0, ..Status::default() },
        masked: Vec::new(),
        masked_until: 0,
        shards,
    };
    net.status.mem_kib = platform::nr_pages() * 4;
    kprintln!("net: {} before any vif", grants::summary_line());
    // `xl mem-set` under traffic: the service follows the target too (down
    // to the balloon's reserve).
    if let Some(Err(e)) = xenbus::with(crate::balloon::start) {
        kprintln!("net: cannot watch memory/target: {e:?}");
    }
    if let Some(Err(e)) = with_vif(|d| xenbus::with(|bus| d.vifs.start(bus))).flatten() {
        kprintln!("net: cannot watch device/vif: {e}; vifs are found by re-examination only");
    }
    // The shards, each with its own instance of the service, parked
    // until the loop sends them to their vCPUs.
    let mut svcs: Vec<Box<dyn Service>> = Vec::new();
    for _ in 1..shards {
        match svc.another() {
            Some(s) => svcs.push(s),
            None => break,
        }
    }
    svcs.insert(0, svc);
    shard::set_count(svcs.len());
    let name = svcs[0].name();
    for (k, s) in svcs.into_iter().enumerate() {
        shard::park(Box::new(Shard::new(k, s, cidr, gw)));
    }
    if shard::count() > 1 {
        kprintln!("net: {name} runs as {} shards (one per vCPU)", shard::count());
    }
    net.follow_xenbus();
    let dhcp = if cidr.is_none() {
        shard::with_parked(0, |s| s.sockets.add(dhcpv4::Socket::new()))
    } else {
        None
    };
    match cidr {
        Some(c) => kprintln!("{name}: ready on {c}"),
        None => kprintln!("{name}: ready; address by DHCP"),
    }
    let mut next_store = 0u64;
    let mut store_seen = xenbus::store_events();
    let (mut last_traffic, mut last_follow) = (0u64, 0u64);
    let mut last_seen = shard::parked_news();
    let mut last_publish = 0u64;
    net.status.looped.start_ns = platform::now_ns();
    // netfront's notifications (a pass's TX push, RX refills) go out with
    // the pass's block, in its trap, or before the next pass (events::owed).
    let _defer = events::defer_sends();
    // One stopwatch for the whole loop (`Lap`): each pass's laps go on
    // from the last one's, and its last reading is the pass's "now".
    // Under an emulated TSC a clock read is an exit, and a pass read the
    // clock about twenty times.
    let mut lap = Lap::start();
    loop {
        net.status.looped.passes += 1;
        // Taken before looking at the rings: an event that arrives while we
        // work moves the count past it, so the wait below returns at once
        // instead of sleeping on news it already missed.
        let seen = shard::parked_news();
        let woke_by_events = seen != last_seen;
        last_seen = seen;
        let before = net.progress();
        let syns = super::loopstats::syns_in();
        if let Some(h) = dhcp {
            shard::with_parked(0, |s| {
                if let (Some(iface), sockets) = s.parts() {
                    follow_dhcp(iface, sockets.get_mut::<dhcpv4::Socket>(h));
                }
            });
        }
        net.status.uptime_ms = platform::uptime_at(lap.at()) / 1_000_000;
        net.status.events = shard::events_total();
        net.refresh_status();
        net.status.syn_duplicates = shard::with_parked(0, |s| s.syn_duplicates).unwrap_or(0);
        net.status.tx_busy = shard::with_parked(0, |s| s.tx_busy()).unwrap_or(0);
        if net.shards > 1 && lap.at() >= last_publish + 100_000_000 {
            shard::publish_status(&net.status);
            last_publish = lap.at();
        }
        lap.lap(&mut net.status.looped.ns_misc);
        let mut looped = net.status.looped;
        let input = shard::serve_parked(&net.status, &mut looped, &mut lap);
        net.status.looped = looped;
        if net.status.looped.last_wake_timer && super::loopstats::syns_in() != syns {
            net.status.looped.syn_after_timer += 1;
        }
        if net.status.looped.last_wake_timer && net.progress().map(|p| p.0) != before.map(|p| p.0) {
            net.status.looped.rx_after_timer += 1;
        }
        net.status.looped.last_wake_timer = false;
        if net.shards > 1 {
            shard::dispatch();
        }
        let did_work = input || net.progress() != before;
        if did_work {
            last_traffic = lap.at();
        }
        net.throttle(woke_by_events, did_work);
        lap.lap(&mut net.status.looped.ns_misc);

        // XenStore is looked at when its channel had an event (a watch
        // fired: the toolstack asks something, a vif comes or goes) and
        // every STORE_TICK_NS (the hotplug manager's re-examinations, kept
        // pages to revoke): the loop no longer wakes every 50 ms for it.
        let (unsettled, vif_deadline) = with_vif(|d| {
            let next = d.vifs.next_deadline().map(|t| t.0);
            (d.vifs.ids().count() != d.vifs.devices().count() || next == Some(0), next)
        })
        .unwrap_or((false, None));
        let vif_due = unsettled && vif_deadline.is_some_and(|d| d <= lap.at());
        if xenbus::store_events() != store_seen || lap.at() >= next_store || vif_due {
            // The backend hears the pass's requests before a look that may
            // take round trips, or a suspend.
            events::send_owed();
            next_store = lap.at() + STORE_TICK_NS;
            // Before the look: its own requests' replies move the count,
            // which costs one more (empty) look, where taking it after
            // could miss a watch event arriving meanwhile.
            store_seen = xenbus::store_events();
            let looked = platform::now_ns();
            let mut vif_news = false;
            let mut reported = false;
            // Pages a backend kept mapped when its vif was let go: revoked
            // again now and then, freed once it let go (never reused before).
            with_vif(|d| {
                if !d.drv.quarantine.is_empty() {
                    let freed = d.drv.reclaim();
                    if freed > 0 {
                        kprintln!(
                            "net: {freed} kept page(s) revoked at last, {} still kept",
                            d.drv.quarantine.len()
                        );
                    }
                }
            });
            loop {
                let ev = match xenbus::with(|bus| {
                    let now = bus.now();
                    bus.next_event(Some(now))
                }) {
                    Some(Ok(ev)) => ev,
                    Some(Err(xenstore_client::Error::TimedOut)) | None => break,
                    Some(Err(e)) => {
                        // Whatever it was, something may have been missed.
                        xenbus::recover("net", &e);
                        with_vif(|d| d.vifs.kick());
                        vif_news = true;
                        break;
                    }
                };
                match ev.token.as_str() {
                    control::SHUTDOWN_TOKEN => {
                        let req = xenbus::with(control::shutdown_request).flatten();
                        if req == Some(control::ShutdownRequest::Suspend) {
                            // The vifs stay as they are: cancelled, they
                            // carry on; in a new domain the toolstack has
                            // made new ones under the same ids (a new
                            // backend), which the hotplug manager finds
                            // when it looks again, letting the old ones go
                            // without a handshake. TCP connections live in
                            // smoltcp, above the device: they survive.
                            // Secondary vCPUs go down first: their shards
                            // come back to vCPU 0 and leave again after.
                            match crate::suspend::suspend() {
                                Ok(platform::suspend::Outcome::Resumed { .. }) => {
                                    net.status.resumes += 1;
                                    if let Some(id) = xenbus::current_domid() {
                                        net.status.domid = id.0;
                                    }
                                    with_vif(|d| d.vifs.kick());
                                    vif_news = true;
                                }
                                Ok(_) => net.status.checkpoints += 1,
                                Err(e) => kprintln!("net: suspend failed: {e}; carrying on"),
                            }
                        } else if let Some(req) = req {
                            net.shutdown();
                            net.print_all(looked);
                            idle::obey(req);
                        }
                    }
                    crate::balloon::TARGET_TOKEN => {
                        if let Some(Err(e)) = xenbus::with(crate::balloon::follow_target) {
                            log::warn!("balloon: {e:?}");
                        }
                    }
                    smp::hotplug::CPU_TOKEN => {
                        // `xl vcpu-set`: a vCPU going down takes its shard
                        // back to vCPU 0 first (shard::task), one coming
                        // back gets it again (shard::dispatch).
                        xenbus::with(smp::hotplug::follow);
                    }
                    control::SYSRQ_TOKEN => {
                        if let Some(Ok(Some(key))) = xenbus::with(control::take_sysrq) {
                            // As of the look's start: the look is all
                            // reporting, counted when it ends.
                            net.print_all(looked);
                            idle::sysrq(key);
                            reported = true;
                        }
                    }
                    token => {
                        with_vif(|d| d.vifs.on_event(token));
                        vif_news = true;
                    }
                }
            }
            // The hotplug manager's own re-examinations (every 10 s when
            // all is connected, for watch events xenstored may drop) cost
            // two round trips to xenstored, which under load took up to
            // 2.3 s, with the data path stopped: while traffic flows they
            // wait for a quiet moment (no packet for QUIET_NS), or at most
            // FOLLOW_AT_LEAST_NS. Watch events, lost events and vifs not
            // connected are followed at once.
            let now_ns = platform::now_ns();
            let quiet = now_ns.saturating_sub(last_traffic) >= QUIET_NS;
            if vif_news || unsettled || quiet || now_ns >= last_follow + FOLLOW_AT_LEAST_NS {
                net.follow_xenbus();
                last_follow = now_ns;
            }
            let l = &mut net.status.looped;
            let took = platform::now_ns() - looked;
            l.store_looks += 1;
            l.store_slow += u64::from(took >= 10_000_000);
            l.ns_store_max = l.ns_store_max.max(took);
            l.hotplug_scans = with_vif(|d| d.vifs.counters().scans).unwrap_or(0);
            if reported {
                // The whole look (the sysrq's round trips, the printing)
                // was for the counters' reader, not the service.
                l.ns_report += took;
            }
        }
        lap.lap(&mut net.status.looped.ns_store);

        // News during the pass: no deadline to compute (smoltcp's is a
        // visit of every socket), the next pass starts at once.
        if input || shard::parked_news() != seen || xenbus::store_events() != store_seen {
            net.status.looped.no_wait += 1;
            events::send_owed();
            continue;
        }
        // The deadline is absolute: the first of the parked shards' (their
        // smoltcp's next timer, their service's next timeout, 10 ms with
        // the TX ring full: netback's answers end the wait sooner) and
        // the next XenStore look. Pass after pass it is the same instant,
        // the one Xen's timer already holds, so blocking costs no
        // set_timer_op ("now + the delay" moved it every time: one more
        // hypercall per wake-up).
        // A vif being connected is re-examined on the hotplug manager's
        // own schedule.
        let vif = vif_deadline.filter(|_| unsettled);
        let mut until = [shard::parked_deadline(lap.at()), vif]
            .into_iter()
            .flatten()
            .fold(next_store, u64::min);
        if !net.masked.is_empty() {
            until = until.min(net.masked_until);
        }
        lap.lap(&mut net.status.looped.ns_delay);
        let l = &mut net.status.looped;
        let news = || shard::parked_news() != seen || xenbus::store_events() != store_seen;
        // The polling budget (`net.poll_us`): news that comes within it
        // costs no block, no timer and no upcall-driven wake-up.
        if poll_ns > 0 && !news() {
            events::send_owed();
            let end = lap.at().saturating_add(poll_ns).min(until);
            while !news() && platform::now_ns() < end {
                core::hint::spin_loop();
            }
            if news() {
                l.spin_hits += 1;
            } else {
                l.spin_misses += 1;
            }
            lap.lap(&mut l.ns_spin);
        }
        if lap.at() >= until || news() {
            l.no_wait += 1;
            events::send_owed();
        } else if timer::wait_until(until, news) {
            l.woke_event += 1;
        } else {
            l.woke_timer += 1;
            l.last_wake_timer = true;
        }
        lap.lap(&mut l.ns_wait);
    }
}

/// Applies what the DHCP socket learned (or lost) to the interface.
fn follow_dhcp(iface: &mut Interface, socket: &mut dhcpv4::Socket) {
    match socket.poll() {
        Some(dhcpv4::Event::Configured(c)) => {
            iface.update_ip_addrs(|a| {
                a.clear();
                let _ = a.push(IpCidr::Ipv4(c.address));
            });
            match c.router {
                Some(r) => {
                    let _ = iface.routes_mut().add_default_ipv4_route(r);
                }
                None => {
                    iface.routes_mut().remove_default_ipv4_route();
                }
            }
            kprintln!("net: dhcp: address {} router {:?}", c.address, c.router);
        }
        Some(dhcpv4::Event::Deconfigured) => {
            // smoltcp also reports this once at start, with nothing to lose.
            if !iface.ip_addrs().is_empty() {
                kprintln!("net: dhcp: lease lost; no address");
            }
            iface.update_ip_addrs(|a| a.clear());
            iface.routes_mut().remove_default_ipv4_route();
        }
        None => {}
    }
}

/// The efficiency figures: notifications and events per 1,000 packets.
pub fn print_counters(s: &Status) {
    let mut t = s.before;
    add(&mut t, &s.now);
    let packets = (t.rx_packets + t.tx_packets).max(1);
    let (fired, programmed, _) = timer::stats();
    kprintln!(
        "net: counters: rx {} pkts {} B, tx {} pkts {} B; per 1000 packets: {} notifications sent, {} events received, {} timer sets; backend faults {}; grants made {} revoked {} kept {}; tx busy {}; timers fired {fired}",
        t.rx_packets, t.rx_bytes, t.tx_packets, t.tx_bytes,
        t.notifications * 1000 / packets,
        s.events * 1000 / packets,
        programmed * 1000 / packets,
        t.backend_errors(), t.grants_made, t.grants_revoked, t.grants_kept, s.tx_busy
    );
    kprintln!(
        "net: event storms: {} spurious wake-ups, {} times throttled",
        s.storm.spurious,
        s.storm.throttled
    );
    kprintln!(
        "net: offload counters: rx-gso {} rx-multi-slot {} rx-csum-validated {} rx-csum-blank {} rx-csum-sw {} rx-csum-bad {} tx-gso {} tx-multi-slot {} tx-csum-blank {} tx-csum-sw {}",
        t.rx_gso, t.rx_multi_slot, t.rx_csum_validated, t.rx_csum_blank, t.rx_csum_sw,
        t.rx_csum_bad, t.tx_gso, t.tx_multi_slot, t.tx_csum_blank, t.tx_csum_sw
    );
    let mut per_queue = alloc::string::String::new();
    for (i, (rx, tx)) in s.queues.iter().enumerate() {
        per_queue.push_str(&format!(" q{i} rx {rx} tx {tx};"));
    }
    kprintln!("net: queues: {} in use:{}", s.queues.len(), per_queue);
    // Cumulative, for `cargo xtask bench net` to take differences of. The
    // data path's hypercalls are the notifications (EVTCHNOP_send), the
    // timer sets (set_timer_op) and the blocks (SCHEDOP_block); `carried`
    // of them made no trap of their own (a block's multicall took them, or
    // an owed notification covered them: events::owed).
    kprintln!(
        "net: efficiency rx-pkts {} tx-pkts {} rx-bytes {} tx-bytes {} tx-notify {} rx-notify {} tx-events {} rx-events {} timer-sets {programmed} blocks {} carried {} timer-virqs {}",
        t.rx_packets, t.tx_packets, t.rx_bytes, t.tx_bytes, t.tx_notifications,
        t.rx_notifications, s.port_events.0, s.port_events.1, timer::blocks(),
        timer::carried() + events::owed::saved(), timer::virqs().0
    );
}
