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

use super::device::NetDev;
use super::loopstats::{Lap, LoopStats};
use crate::app::{AppError, AppResult};
use crate::cmdline::Cmdline;
use crate::driver_env::{EventCount, KernelEnv};
use crate::events::storm::Throttle;
use crate::toolstack as idle;
use crate::xenbus::{self, control};
use crate::{grants, kprintln, timer};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;
use hypercall::EvtchnPort;
use pv_drivers::netfront::connect::{Config as NetConfig, Netfront};
use pv_drivers::netfront::ctrl::{self, CtrlError};
use pv_drivers::netfront::flow::RxSteering;
use pv_drivers::netfront::hotplug::{VifClosed, VifDriver};
use pv_drivers::netfront::mss::MssTable;
use pv_drivers::netfront::Stats;
use pv_drivers::xenbus::hotplug::{self, Happening, Hotplug};
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

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
pub trait Service {
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
}

/// smoltcp's clock: Xen system time (the timer's clock), so its
/// deadlines are timer deadlines as they are.
fn now() -> Instant {
    Instant::from_micros((platform::now_ns() / 1000) as i64)
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

struct Net {
    /// The vifs: attached, detached and re-attached by the hotplug manager.
    vifs: Hotplug<VifDriver<KernelEnv>>,
    drv: VifDriver<KernelEnv>,
    /// The vif the interface uses (the first connected one).
    current: Option<String>,
    iface: Option<Interface>,
    /// The address from `ip=`; `None`: DHCP.
    cidr: Option<IpCidr>,
    gw: Option<core::net::Ipv4Addr>,
    status: Status,
    /// Ports masked by the storm throttle, and until when.
    masked: Vec<EvtchnPort>,
    masked_until: u64,
    mss: MssTable,
    /// The last poll found the TX ring full.
    tx_waiting: bool,
}

impl Net {
    /// Re-reads the vifs if an event, the timer or a lost event asks for
    /// it, and follows what happened.
    fn follow_xenbus(&mut self) {
        let (vifs, drv) = (&mut self.vifs, &mut self.drv);
        let happened = xenbus::with(|bus| vifs.poll(bus, drv)).unwrap_or_default();
        for h in happened {
            self.follow(h);
        }
    }

    /// Lets every vif go (the domain is going down).
    fn shutdown(&mut self) {
        let (vifs, drv) = (&mut self.vifs, &mut self.drv);
        let happened = xenbus::with(|bus| vifs.shutdown(bus, drv)).unwrap_or_default();
        for h in happened {
            self.follow(h);
        }
    }

    fn follow(&mut self, h: Happening<VifClosed>) {
        kprintln!("{h}");
        match h {
            Happening::Attached { id, .. } => {
                self.status.attachments += 1;
                if self.current.is_none() {
                    self.use_vif(&id);
                }
                kprintln!("net: {}", grants::summary_line());
            }
            Happening::Detached { id, closed, .. } => {
                add(&mut self.status.before, &closed.stats);
                if self.current.as_deref() == Some(id.as_str()) {
                    // The live device's counters are in `before` now.
                    self.status.now = Default::default();
                    self.status.connected = false;
                    self.current = None;
                    let next = self.vifs.devices().next().map(|(i, _)| String::from(i));
                    if let Some(next) = next {
                        self.use_vif(&next);
                    }
                }
                kprintln!("net: {}", grants::summary_line());
            }
            _ => {}
        }
    }

    /// Points the interface at the connected vif `id`.
    fn use_vif(&mut self, id: &str) {
        let Some(nf) = self.vifs.device_mut(id) else { return };
        // Before anything is sent: from here on every flow's RX queue is
        // the one the guest predicts (or netback's own choice, if it
        // refuses).
        let steering = steer_rx(nf, &mut self.drv.host);
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
        match steering {
            Ok(s) => kprintln!(
                "net: rss: netback steers RX like TX: Toeplitz (Microsoft key) over {}, {}-entry table over {} queues",
                ctrl::hash_type_names(s.flags), s.table_size, s.queues
            ),
            Err(CtrlError::NoRing) if nf.queues().len() == 1 => {}
            Err(CtrlError::NoRing) => kprintln!(
                "net: rss: no control ring offered (feature-ctrl-ring): netback picks RX queues itself"
            ),
            Err(e) => kprintln!("net: rss: RX steering refused ({e}): netback picks RX queues itself"),
        }
        let (mac, mtu) = (nf.mac, nf.mtu);
        let tso = nf.offloads.tx_gso.then_some(super::device::TSO_MAX_PAYLOAD);
        self.current = Some(id.into());
        self.status.connected = true;
        self.setup_iface(mac, mtu);
        if let Some(iface) = &mut self.iface {
            iface.set_tso_max_payload(tso);
        }
    }

    fn setup_iface(&mut self, mac: [u8; 6], mtu: u32) {
        let hw = HardwareAddress::Ethernet(EthernetAddress(mac));
        if let Some(iface) = &mut self.iface {
            iface.set_hardware_addr(hw);
            return;
        }
        let mut cfg = Config::new(hw);
        cfg.random_seed = platform::now_ns();
        // Interface::new only reads the device's capabilities.
        let mut iface = Interface::new(cfg, &mut CapsOnly(mtu as usize + 14), now());
        if let Some(cidr) = self.cidr {
            iface.update_ip_addrs(|a| {
                let _ = a.push(cidr);
            });
        }
        if let Some(gw) = self.gw {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        self.iface = Some(iface);
    }

    /// Refreshes the status page's figures of the vif in use.
    fn refresh_status(&mut self) {
        let st = &mut self.status;
        st.queues.clear();
        let id = self.current.as_deref();
        let Some((_, nf)) = self.vifs.devices().find(|(i, _)| Some(*i) == id) else {
            st.now = Default::default();
            return;
        };
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
    }

    /// What an event may have been for: packets in, faults, TX answers.
    fn progress(&mut self) -> Option<(u64, u64, u64, u32)> {
        let nf = self.vifs.device_mut(self.current.as_deref()?)?;
        let s = &nf.stats;
        Some((s.rx_packets, s.rx_dropped, s.backend_errors(), nf.tx_in_flight()))
    }

    /// The storm throttle (Linux's lateeoi): after a wake-up by the vif's
    /// events that found no work, from the second in a row, mask its
    /// channels for a while; unmask them when the time is up (a masked
    /// port still becomes pending, so nothing is lost).
    fn throttle(&mut self, woke_by_events: bool, did_work: bool) {
        let now = platform::now_ns();
        if !self.masked.is_empty() && now >= self.masked_until {
            for p in self.masked.drain(..) {
                let _ = crate::events::unmask(p);
            }
        }
        if !woke_by_events || !self.masked.is_empty() {
            return;
        }
        let Some(delay) = self.status.storm.after_events(did_work) else { return };
        let Some(nf) = self.current.as_deref().and_then(|id| self.vifs.device_mut(id)) else {
            return;
        };
        if self.status.storm.throttled == 1 {
            kprintln!(
                "net: {}: events with no work behind them; throttling (lateeoi)",
                nf.dev.frontend
            );
        }
        for q in nf.queues() {
            let (tx, rx) = q.ports();
            for p in [tx, rx] {
                if !self.masked.contains(&p) {
                    crate::events::mask(p);
                    self.masked.push(p);
                }
            }
        }
        self.masked_until = now + delay;
    }

    /// Netfront's RX and TX answers, then every received packet into the
    /// stack, one at a time: after each SYN the service tops its listening
    /// sockets up. Nothing is sent here but what ingress answers at once
    /// (a SYN-ACK, a reset, ARP): ACKs wait for [`Net::egress`], after the
    /// service has answered, so a response carries the ACK.
    fn ingress(
        &mut self,
        sockets: &mut SocketSet<'static>,
        rxq: &mut VecDeque<(Vec<u8>, u16)>,
        svc: &mut dyn Service,
    ) {
        let Some(id) = self.current.as_deref() else { return };
        let (Some(nf), Some(iface)) = (self.vifs.device_mut(id), &mut self.iface) else {
            return;
        };
        let host = &mut self.drv.host;
        let mut lap = Lap::start();
        let dups = &mut self.status.syn_duplicates;
        let _ = nf.poll_rx(host, |p| {
            super::loopstats::note_segment(&p.data, false);
            if is_duplicate_syn(&p.data, sockets) {
                *dups += 1;
            } else {
                rxq.push_back((p.data, p.flags))
            }
        });
        let _ = nf.reclaim_tx();
        nf.watchdog(platform::now_ns());
        lap.lap(&mut self.status.looped.ns_rx);
        let t = now();
        loop {
            let syn = rxq.front().is_some_and(|(f, _)| netsvc::frame::syn_of(f).is_some());
            let mut dev =
                NetDev { nf, host, rxq, tx_busy: &mut self.status.tx_busy, mss: &mut self.mss };
            if iface.poll_ingress_single(t, &mut dev, sockets) == PollIngressSingleResult::None {
                break;
            }
            if syn {
                svc.syn_taken(sockets);
            }
        }
        lap.lap(&mut self.status.looped.ns_ingress);
    }

    /// Every socket's egress (data, ACKs, retransmissions, FINs), then the
    /// TX ring published once.
    fn egress(&mut self, sockets: &mut SocketSet<'static>, rxq: &mut VecDeque<(Vec<u8>, u16)>) {
        let Some(id) = self.current.as_deref() else { return };
        let (Some(nf), Some(iface)) = (self.vifs.device_mut(id), &mut self.iface) else {
            return;
        };
        let host = &mut self.drv.host;
        let mut lap = Lap::start();
        let busy = self.status.tx_busy;
        let mut dev =
            NetDev { nf, host, rxq, tx_busy: &mut self.status.tx_busy, mss: &mut self.mss };
        iface.poll_egress(now(), &mut dev, sockets);
        nf.flush(host);
        self.tx_waiting = self.status.tx_busy != busy;
        self.status.looped.polls += 1;
        lap.lap(&mut self.status.looped.ns_stack);
    }
}

/// A retransmitted SYN of a connection a socket already holds (see
/// `netsvc::frame::syn_of`): dropped before smoltcp could give it to
/// another listening socket.
fn is_duplicate_syn(frame: &[u8], sockets: &SocketSet<'static>) -> bool {
    use smoltcp::socket::{tcp, Socket};
    let Some((src, sport, dport)) = netsvc::frame::syn_of(frame) else { return false };
    let src = IpAddress::v4(src[0], src[1], src[2], src[3]);
    sockets.iter().any(|(_, s)| match s {
        Socket::Tcp(t) => {
            !matches!(t.state(), tcp::State::Listen | tcp::State::Closed | tcp::State::TimeWait)
                && t.local_endpoint().is_some_and(|l| l.port == dport)
                && t.remote_endpoint().is_some_and(|r| r.addr == src && r.port == sport)
        }
        _ => false,
    })
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

/// A device that only answers capabilities (for `Interface::new`).
struct CapsOnly(usize);

impl smoltcp::phy::Device for CapsOnly {
    type RxToken<'a> = super::device::Rx;
    type TxToken<'a> = NoTx;
    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        None
    }
    fn transmit(&mut self, _: Instant) -> Option<NoTx> {
        None
    }
    fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
        super::device::caps(self.0)
    }
}

struct NoTx;
impl smoltcp::phy::TxToken for NoTx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        f(&mut vec![0; len])
    }
}

/// Runs `svc` until the toolstack ends the domain.
pub fn run(cmd: &Cmdline<'_>, svc: &mut dyn Service) -> AppResult {
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
    let rx_buffers = cmd.number("net.rx_buffers").unwrap_or(128) as u32;
    let max_queues = cmd.number("net.queues").unwrap_or(4) as u32;
    let offload = cmd.number("net.offload").unwrap_or(1) == 1;
    let poll_ns = cmd.number("net.poll_us").unwrap_or(0) * 1000;
    let cfg = NetConfig {
        rx_buffers,
        tx_buffers: 128,
        timeout: Duration::from_secs(10),
        max_queues,
        offload,
    };
    // One of the kernel's 17 event counters: the service is the first and
    // only driver environment of a network app.
    let env = KernelEnv::new().expect("a free event counter for the network service");
    let mut net = Net {
        vifs: Hotplug::new("vif", hotplug::Config::default()),
        drv: VifDriver::new(env, cfg),
        current: None,
        iface: None,
        cidr,
        gw,
        status: Status { domid: id.domid.0, ..Status::default() },
        masked: Vec::new(),
        masked_until: 0,
        mss: MssTable::default(),
        tx_waiting: false,
    };
    net.status.mem_kib = platform::nr_pages() * 4;
    kprintln!("net: {} before any vif", grants::summary_line());
    // `xl mem-set` under traffic: the service follows the target too (down
    // to the balloon's reserve).
    if let Some(Err(e)) = xenbus::with(crate::balloon::start) {
        kprintln!("net: cannot watch memory/target: {e:?}");
    }
    if let Some(Err(e)) = xenbus::with(|bus| net.vifs.start(bus)) {
        kprintln!("net: cannot watch device/vif: {e}; vifs are found by re-examination only");
    }
    net.follow_xenbus();
    let mut sockets = SocketSet::new(Vec::new());
    svc.open(&mut sockets);
    let dhcp = cidr.is_none().then(|| sockets.add(dhcpv4::Socket::new()));
    match cidr {
        Some(c) => kprintln!("{}: ready on {c}", svc.name()),
        None => kprintln!("{}: ready; address by DHCP", svc.name()),
    }
    let mut rxq = VecDeque::new();
    let mut next_store = 0u64;
    let mut store_seen = xenbus::store_events();
    let (mut last_traffic, mut last_follow) = (0u64, 0u64);
    let events: EventCount = net.drv.host.event_count();
    let mut last_seen = events.get();
    net.status.looped.start_ns = platform::now_ns();
    loop {
        net.status.looped.passes += 1;
        // Taken before looking at the rings: an event that arrives while we
        // work moves the count past it, so the wait below returns at once
        // instead of sleeping on news it already missed.
        let seen = events.get();
        let woke_by_events = seen != last_seen;
        last_seen = seen;
        let before = net.progress();
        let syns = super::loopstats::syns_in();
        net.ingress(&mut sockets, &mut rxq, svc);
        if net.status.looped.last_wake_timer && super::loopstats::syns_in() != syns {
            net.status.looped.syn_after_timer += 1;
        }
        if net.status.looped.last_wake_timer && net.progress().map(|p| p.0) != before.map(|p| p.0) {
            net.status.looped.rx_after_timer += 1;
        }
        net.status.looped.last_wake_timer = false;
        let mut lap = Lap::start();
        if let (Some(h), Some(iface)) = (dhcp, net.iface.as_mut()) {
            follow_dhcp(iface, sockets.get_mut::<dhcpv4::Socket>(h));
        }
        net.status.uptime_ms = platform::uptime_ns() / 1_000_000;
        net.status.events = events.get();
        net.refresh_status();
        lap.lap(&mut net.status.looped.ns_misc);
        svc.serve(&mut sockets, &net.status);
        lap.lap(&mut net.status.looped.ns_serve);
        net.egress(&mut sockets, &mut rxq);
        let mut lap = Lap::start();
        let did_work = !rxq.is_empty() || net.progress() != before;
        if did_work {
            last_traffic = platform::now_ns();
        }
        net.throttle(woke_by_events, did_work);
        lap.lap(&mut net.status.looped.ns_misc);

        // XenStore is looked at when its channel had an event (a watch
        // fired: the toolstack asks something, a vif comes or goes) and
        // every STORE_TICK_NS (the hotplug manager's re-examinations, kept
        // pages to revoke): the loop no longer wakes every 50 ms for it.
        let unsettled = net.vifs.ids().count() != net.vifs.devices().count()
            || net.vifs.next_deadline().is_some_and(|d| d.0 == 0);
        let vif_due =
            unsettled && net.vifs.next_deadline().is_some_and(|d| d.0 <= platform::now_ns());
        if xenbus::store_events() != store_seen || platform::now_ns() >= next_store || vif_due {
            next_store = platform::now_ns() + STORE_TICK_NS;
            // Before the look: its own requests' replies move the count,
            // which costs one more (empty) look, where taking it after
            // could miss a watch event arriving meanwhile.
            store_seen = xenbus::store_events();
            let looked = platform::now_ns();
            let mut vif_news = false;
            let mut reported = false;
            // Pages a backend kept mapped when its vif was let go: revoked
            // again now and then, freed once it let go (never reused before).
            if !net.drv.quarantine.is_empty() {
                let freed = net.drv.reclaim();
                if freed > 0 {
                    kprintln!(
                        "net: {freed} kept page(s) revoked at last, {} still kept",
                        net.drv.quarantine.len()
                    );
                }
            }
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
                        net.vifs.kick();
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
                            match crate::suspend::suspend() {
                                Ok(platform::suspend::Outcome::Resumed { .. }) => {
                                    net.status.resumes += 1;
                                    if let Some(id) = xenbus::current_domid() {
                                        net.status.domid = id.0;
                                    }
                                    net.vifs.kick();
                                    vif_news = true;
                                }
                                Ok(_) => net.status.checkpoints += 1,
                                Err(e) => kprintln!("net: suspend failed: {e}; carrying on"),
                            }
                        } else if let Some(req) = req {
                            net.shutdown();
                            print_counters(&net.status);
                            let line = net.status.looped.line(sockets.iter().count(), looked);
                            kprintln!("{line}");
                            if let Some(line) = svc.report() {
                                kprintln!("{line}");
                            }
                            idle::obey(req);
                        }
                    }
                    crate::balloon::TARGET_TOKEN => {
                        if let Some(Err(e)) = xenbus::with(crate::balloon::follow_target) {
                            log::warn!("balloon: {e:?}");
                        }
                    }
                    control::SYSRQ_TOKEN => {
                        if let Some(Ok(Some(key))) = xenbus::with(control::take_sysrq) {
                            print_counters(&net.status);
                            // As of the look's start: the look is all
                            // reporting, counted when it ends.
                            let line = net.status.looped.line(sockets.iter().count(), looked);
                            kprintln!("{line}");
                            if let Some(line) = svc.report() {
                                kprintln!("{line}");
                            }
                            idle::sysrq(key);
                            reported = true;
                        }
                    }
                    token => {
                        net.vifs.on_event(token);
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
            l.hotplug_scans = net.vifs.counters().scans;
            if reported {
                // The whole look (the sysrq's round trips, the printing)
                // was for the counters' reader, not the service.
                l.ns_report += took;
            }
        }
        lap.lap(&mut net.status.looped.ns_store);

        // News during the pass: no deadline to compute (smoltcp's is a
        // visit of every socket), the next pass starts at once.
        if !rxq.is_empty() || events.get() != seen || xenbus::store_events() != store_seen {
            net.status.looped.no_wait += 1;
            continue;
        }
        // With the TX ring full, smoltcp has data to send (a delay of 0):
        // sleep until netback's TX answers free room (their event ends the
        // wait) instead of spinning on a ring netback needs the CPU to drain.
        // Otherwise the deadline is absolute: the first of smoltcp's next
        // timer, the service's next timeout and the next XenStore look.
        // Pass after pass it is the same instant, the one Xen's timer
        // already holds, so blocking costs no set_timer_op ("now + the
        // delay" moved it every time: one more hypercall per wake-up).
        let mut until = match net.tx_waiting {
            true => platform::now_ns() + 10_000_000,
            false => {
                let stack = net
                    .iface
                    .as_mut()
                    .and_then(|i| i.poll_at(now(), &sockets))
                    .map(|at| at.total_micros().max(0) as u64 * 1000);
                let service = svc.poll_at().map(super::listener::timer_deadline_ns);
                // A vif being connected is re-examined on the hotplug
                // manager's own schedule.
                let vif = net.vifs.next_deadline().filter(|_| unsettled).map(|d| d.0);
                [stack, service, vif].into_iter().flatten().fold(next_store, u64::min)
            }
        };
        if !net.masked.is_empty() {
            until = until.min(net.masked_until);
        }
        lap.lap(&mut net.status.looped.ns_delay);
        let l = &mut net.status.looped;
        let news = || events.get() != seen || xenbus::store_events() != store_seen;
        // The polling budget (`net.poll_us`): news that comes within it
        // costs no block, no timer and no upcall-driven wake-up.
        if poll_ns > 0 && !net.tx_waiting && !news() {
            let end = platform::now_ns().saturating_add(poll_ns).min(until);
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
        if platform::now_ns() >= until || news() {
            l.no_wait += 1;
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
    // timer sets (set_timer_op) and the blocks (SCHEDOP_block).
    kprintln!(
        "net: efficiency rx-pkts {} tx-pkts {} rx-bytes {} tx-bytes {} tx-notify {} rx-notify {} tx-events {} rx-events {} timer-sets {programmed} blocks {}",
        t.rx_packets, t.tx_packets, t.rx_bytes, t.tx_bytes, t.tx_notifications,
        t.rx_notifications, s.port_events.0, s.port_events.1, timer::blocks()
    );
}
