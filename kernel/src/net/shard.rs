//! Network shards: the TCP/IP service spread over vCPUs (issue 21).
//!
//! A shard is one smoltcp interface with its own sockets and its own
//! instance of the service (listener, connections), fed by one netfront
//! queue and sending on it. netback steers every received TCP flow to a
//! queue by the Toeplitz hash and table the guest gave it
//! (docs/netfront-rss.md), so all of a connection's packets arrive on one
//! queue: its socket lives in that queue's shard, which sends every reply
//! on the same queue. Shards share nothing on the data path but the vif
//! itself, held only to copy packets out of the RX ring and onto the TX
//! ring ([`super::service`]'s `DRIVER` lock); smoltcp, the service and
//! the socket buffers run in parallel.
//!
//! Shard 0 runs on vCPU 0 in the service loop (with XenStore, the
//! toolstack's requests and the hotplug manager); shard `k` runs on vCPU
//! `k` as a long task of that vCPU's loop ([`task`]), its queue's event
//! channels bound to that vCPU (`EVTCHNOP_bind_vcpu`), woken by them and
//! by its own timers. A shard whose vCPU goes offline (`xl vcpu-set`, a
//! suspend) is parked: its channels are bound back to vCPU 0, whose loop
//! serves it (its connections, timers and all) until the vCPU is back.
//!
//! What is not per flow: ARP. netback steers non-IP frames to queue 0,
//! and each shard's interface needs the neighbours' addresses, so a shard
//! that receives a non-IPv4 frame hands a copy to every other shard
//! ([`forward`]). Without RX steering (netback refused it, or one queue),
//! or with one vCPU, there is one shard: shard 0 serves every queue and
//! sends each packet on its flow's queue, as the loop always did.

use super::device::{NetDev, Tally, VifLink};
use super::loopstats::{Lap, LoopStats};
use super::service::{Service, Status};
use crate::events::{self, IrqGuard};
use crate::smp::lock::PollLock;
use crate::smp::{self, XEN_WAITERS};
use crate::{kprintln, timer};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use hypercall::EvtchnPort;
use pv_drivers::netfront::mss::MssTable;
use pv_drivers::netfront::tx::{TxOffload, TxRoom};
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketSet};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

/// Shards at most (one per vCPU, as many as netfront queues).
pub const MAX_SHARDS: usize = 8;

/// The largest packet the stack may hand the device, for the TX room.
const MAX_FRAME: usize = super::device::TSO_MAX_PAYLOAD + 14 + 20 + 60;

/// A lock that a vCPU preempted while holding it does not make the others
/// spin on (docs/smp.md: spin a little, then wait in Xen).
pub type Lock<T> = PollLock<T>;

/// Spins before a waiter sleeps in `SCHEDOP_poll`.
pub const SPINS: u32 = 2000;

pub const fn lock<T>(v: T) -> Lock<T> {
    PollLock::new(v, SPINS, 10_000_000_000, &XEN_WAITERS)
}

/// Shards in use (1 until [`super::service::run`] makes more).
static COUNT: AtomicU32 = AtomicU32::new(1);
/// Parked shards, each served by vCPU 0's loop.
static SLOTS: [Lock<Option<Box<Shard>>>; MAX_SHARDS] = [const { lock(None) }; MAX_SHARDS];
/// Which shards are parked (bit k: shard k is in its slot).
static PARKED: AtomicU64 = AtomicU64::new(0);
/// Parkings and takings so far (vCPU 0's loop waits on it too).
static MOVES: AtomicU64 = AtomicU64::new(0);
/// A task to serve shard k is posted to (or running on) vCPU k.
static ASSIGNED: [AtomicBool; MAX_SHARDS] = [const { AtomicBool::new(false) }; MAX_SHARDS];
/// The vCPU serving shard k now: its queue's channels are bound there.
static HOME: [AtomicU32; MAX_SHARDS] = [const { AtomicU32::new(0) }; MAX_SHARDS];
/// Events on shard k's queue channels.
static EVENTS: [AtomicU64; MAX_SHARDS] = [const { AtomicU64::new(0) }; MAX_SHARDS];
/// Events that ran on another vCPU than their shard's (a channel being
/// moved): the shard's vCPU was sent an IPI for each.
static MISROUTED: AtomicU64 = AtomicU64::new(0);
/// Frames another shard handed over (ARP), and how many so far.
static INBOX: [Lock<VecDeque<Vec<u8>>>; MAX_SHARDS] = [const { lock(VecDeque::new()) }; MAX_SHARDS];
static HANDED: [AtomicU64; MAX_SHARDS] = [const { AtomicU64::new(0) }; MAX_SHARDS];
/// Asks the shards running on other vCPUs for their report line.
static REPORT_GEN: AtomicU64 = AtomicU64::new(0);
static REPORTS: [Lock<(u64, String)>; MAX_SHARDS] =
    [const { lock((0, String::new())) }; MAX_SHARDS];
/// vCPU 0's status, as shards on other vCPUs see it.
static SNAPSHOT: Lock<(u64, Option<Status>)> = lock((0, None));
static SNAPSHOT_GEN: AtomicU64 = AtomicU64::new(0);

/// Shards in use.
pub fn count() -> usize {
    COUNT.load(Ordering::Acquire) as usize
}

pub(super) fn set_count(n: usize) {
    COUNT.store(n.clamp(1, MAX_SHARDS) as u32, Ordering::Release);
}

/// The vCPU serving shard `k`.
pub fn home(k: usize) -> u32 {
    HOME.get(k).map_or(0, |h| h.load(Ordering::Acquire))
}

/// The handler of a queue's event channels: counts for its shard, and
/// wakes the shard's vCPU if the event ran elsewhere (a channel moving
/// between vCPUs: an event already queued on the old one).
pub(super) fn on_queue_event(_: EvtchnPort, k: usize) {
    let Some(c) = EVENTS.get(k) else { return };
    c.fetch_add(1, Ordering::SeqCst);
    let h = home(k);
    if h != smp::current() {
        MISROUTED.fetch_add(1, Ordering::Relaxed);
        let _ = smp::send_ipi(h);
    }
}

/// Events on every shard's queue channels so far.
pub fn events_total() -> u64 {
    EVENTS.iter().map(|e| e.load(Ordering::Relaxed)).sum()
}

/// Events misrouted so far (see [`on_queue_event`]).
pub fn misrouted() -> u64 {
    MISROUTED.load(Ordering::Relaxed)
}

/// What moves when shard `k` has news: its events and handed frames.
fn news_of(k: usize) -> u64 {
    EVENTS[k].load(Ordering::SeqCst) + HANDED[k].load(Ordering::SeqCst)
}

/// vCPU 0's news: the parked shards' and every parking or taking.
pub(super) fn parked_news() -> u64 {
    let parked = PARKED.load(Ordering::SeqCst);
    let mut n = MOVES.load(Ordering::SeqCst);
    for k in 0..count() {
        if parked & (1 << k) != 0 {
            n = n.wrapping_add(news_of(k));
        }
    }
    n
}

/// Hands a non-IPv4 frame to every other shard (each interface needs the
/// neighbours netback sends ARP for on queue 0 only). Returns the vCPUs
/// to wake.
fn forward(from: usize, frame: &[u8]) -> u64 {
    let mut wake = 0u64;
    for k in (0..count()).filter(|&k| k != from) {
        let mut q = INBOX[k].lock();
        // Bounded: a flood of non-IP frames must not grow the heap.
        if q.len() < 64 {
            q.push_back(frame.to_vec());
            HANDED[k].fetch_add(1, Ordering::SeqCst);
            wake |= 1 << home(k);
        }
    }
    wake
}

fn is_ipv4(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&[0x08, 0x00])
}

/// What a shard knows of the vif in use, copied from the driver when it
/// changes (`gen`).
#[derive(Clone, Debug)]
pub(super) struct VifView {
    pub gen: u64,
    pub mac: [u8; 6],
    pub link: VifLink,
    pub tso: Option<usize>,
    /// The shard serves queue `Some(q)`, every queue (`None`: one shard),
    /// or nothing (`queue` is `Some` past the vif's queues).
    pub queue: Option<usize>,
}

/// One shard's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShardStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub handed_in: u64,
    pub handed_out: u64,
    /// Passes served on a vCPU other than its own (parked on vCPU 0).
    pub parked_passes: u64,
    pub moves: u64,
}

/// One interface, its sockets and its service.
pub struct Shard {
    pub index: usize,
    iface: Option<Interface>,
    pub sockets: SocketSet<'static>,
    pub svc: Box<dyn Service>,
    rxq: VecDeque<(Vec<u8>, u16)>,
    outq: Vec<(Vec<u8>, TxOffload)>,
    room: TxRoom,
    mss: MssTable,
    tally: Tally,
    pub(super) vif: Option<VifView>,
    cidr: Option<IpCidr>,
    gw: Option<core::net::Ipv4Addr>,
    /// The last pass found no TX room.
    pub tx_waiting: bool,
    pub stats: ShardStats,
    /// Retransmitted SYNs of connections already held, dropped.
    pub syn_duplicates: u64,
    /// The shard's RX queue asks for a batch per event (netfront's RX
    /// moderation): the shard's waits end by [`RX_HOLD_NS`] too.
    rx_batching: bool,
    /// When the current wait for an RX batch runs out.
    hold_until: Option<u64>,
}

/// The longest an RX batch is waited for (`net.rx_hold_us`).
static RX_HOLD_NS: AtomicU64 = AtomicU64::new(1_000_000);

/// Sets the longest wait for an RX batch.
pub fn set_rx_hold_ns(ns: u64) {
    RX_HOLD_NS.store(ns, Ordering::Relaxed);
}

/// smoltcp's time for system time `ns`.
fn instant(ns: u64) -> Instant {
    Instant::from_micros((ns / 1000) as i64)
}

impl Shard {
    pub fn new(
        index: usize,
        mut svc: Box<dyn Service>,
        cidr: Option<IpCidr>,
        gw: Option<core::net::Ipv4Addr>,
    ) -> Self {
        let mut sockets = SocketSet::new(Vec::new());
        svc.open(&mut sockets);
        Shard {
            index,
            iface: None,
            sockets,
            svc,
            rxq: VecDeque::new(),
            outq: Vec::new(),
            room: TxRoom::default(),
            mss: MssTable::default(),
            tally: Tally::default(),
            vif: None,
            cidr,
            gw,
            tx_waiting: false,
            stats: ShardStats::default(),
            syn_duplicates: 0,
            rx_batching: false,
            hold_until: None,
        }
    }

    /// The interface (once a vif connected) and the sockets.
    pub fn parts(&mut self) -> (Option<&mut Interface>, &mut SocketSet<'static>) {
        (self.iface.as_mut(), &mut self.sockets)
    }

    /// Follows a change of vif (its address, MTU, offloads, queue).
    fn follow_vif(&mut self, v: &VifView) {
        let hw = HardwareAddress::Ethernet(EthernetAddress(v.mac));
        match &mut self.iface {
            Some(iface) => iface.set_hardware_addr(hw),
            None => {
                let mut cfg = Config::new(hw);
                // Each shard its own: ISNs and ports must not repeat.
                cfg.random_seed = platform::now_ns() ^ ((self.index as u64) << 56);
                let now = instant(platform::now_ns());
                let mut iface = Interface::new(cfg, &mut CapsOnly(v.link.mtu as usize + 14), now);
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
        }
        if let Some(iface) = &mut self.iface {
            iface.set_tso_max_payload(v.tso);
        }
        self.vif = Some(v.clone());
    }

    /// One pass: RX and TX answers of the shard's queue (holding the vif),
    /// every received packet into the stack, the service's pass over its
    /// connections, one egress, then the packets onto the ring (holding
    /// the vif again). `status` is what the service shows.
    /// `lap` is the loop's stopwatch, running: the pass's laps go on
    /// from it, and its readings are the pass's time.
    pub fn pass(&mut self, status: &Status, looped: &mut LoopStats, lap: &mut Lap) {
        let mut wake = 0u64;
        // Frames other shards handed over.
        {
            let mut inbox = INBOX[self.index].lock();
            self.stats.handed_in += inbox.len() as u64;
            self.rxq.extend(inbox.drain(..).map(|f| (f, 0)));
        }
        let me = self.index;
        let hold_over = self.hold_until.take().is_some_and(|h| lap.at() >= h);
        let started = lap.at();
        let mut batching = false;
        let view = super::service::with_vif(|d| {
            let v = d.view(me)?;
            // With one shard per queue, non-IP frames are everyone's.
            let sharded = v.queue.is_some();
            let (Some(nf), host) = d.netfront() else { return Some(v) };
            // A wait for an RX batch that ran its hold out: the sender
            // waits for us; back to an event per push.
            if hold_over {
                nf.rx_end_batch(v.queue);
            }
            let before = nf.stats.rx_packets;
            let sockets = &self.sockets;
            let rxq = &mut self.rxq;
            let dups = &mut self.syn_duplicates;
            let handed = &mut self.stats.handed_out;
            let _ = nf.poll_rx_queues(v.queue, host, |p| {
                super::loopstats::note_segment(&p.data, false);
                if sharded && !is_ipv4(&p.data) {
                    wake |= forward(me, &p.data);
                    *handed += 1;
                }
                if is_duplicate_syn(&p.data, sockets) {
                    *dups += 1;
                } else {
                    rxq.push_back((p.data, p.flags))
                }
            });
            self.stats.rx_packets += nf.stats.rx_packets - before;
            batching = nf.rx_batching(v.queue);
            let _ = nf.reclaim_tx_queues(v.queue);
            if me == 0 {
                nf.watchdog(started);
            }
            self.room = nf.tx_room_on(v.queue, MAX_FRAME);
            Some(v)
        })
        .flatten();
        self.rx_batching = batching;
        match view {
            Some(v) if self.vif.as_ref().is_none_or(|o| o.gen != v.gen) => self.follow_vif(&v),
            Some(_) => {}
            None => {
                // No vif: nothing can go out (smoltcp keeps its data).
                self.room = TxRoom::default();
            }
        }
        for cpu in 0..64u32 {
            if wake & (1 << cpu) != 0 && cpu != smp::current() {
                let _ = smp::send_ipi(cpu);
            }
        }
        lap.lap(&mut looped.ns_rx);
        let Some(link) = self.vif.as_ref().map(|v| v.link) else {
            self.rxq.clear();
            return;
        };
        let Some(iface) = &mut self.iface else { return };
        let t = instant(lap.at());
        let busy = self.tally.tx_busy;
        loop {
            let syn = self.rxq.front().is_some_and(|(f, _)| netsvc::frame::syn_of(f).is_some());
            let mut dev = NetDev {
                link: &link,
                rxq: &mut self.rxq,
                outq: &mut self.outq,
                room: &mut self.room,
                tally: &mut self.tally,
                mss: &mut self.mss,
            };
            if iface.poll_ingress_single(t, &mut dev, &mut self.sockets)
                == PollIngressSingleResult::None
            {
                break;
            }
            if syn {
                self.svc.syn_taken(&mut self.sockets);
            }
        }
        lap.lap(&mut looped.ns_ingress);
        self.svc.serve(&mut self.sockets, status);
        lap.lap(&mut looped.ns_serve);
        let mut dev = NetDev {
            link: &link,
            rxq: &mut self.rxq,
            outq: &mut self.outq,
            room: &mut self.room,
            tally: &mut self.tally,
            mss: &mut self.mss,
        };
        iface.poll_egress(instant(lap.at()), &mut dev, &mut self.sockets);
        looped.polls += 1;
        self.tx_waiting = self.tally.tx_busy != busy;
        self.transmit();
        lap.lap(&mut looped.ns_stack);
    }

    /// Queues the packets the stack made on the shard's queue (each
    /// packet on its flow's queue with one shard) and publishes them.
    fn transmit(&mut self) {
        let tally = core::mem::take(&mut self.tally);
        if self.outq.is_empty() && tally.rx_csum_sw == 0 && tally.tx_csum_sw == 0 {
            self.tally.tx_busy = tally.tx_busy;
            return;
        }
        let queue = self.vif.as_ref().and_then(|v| v.queue);
        let gen = self.vif.as_ref().map(|v| v.gen);
        let out = &mut self.outq;
        let sent = super::service::with_vif(|d| {
            // The vif changed since the packets were made for it: the
            // stack retransmits what matters.
            if d.gen() != gen.unwrap_or(u64::MAX) {
                return 0;
            }
            let (Some(nf), host) = d.netfront() else { return 0 };
            nf.stats.rx_csum_sw += tally.rx_csum_sw;
            nf.stats.rx_csum_bad += tally.rx_csum_bad;
            nf.stats.tx_csum_sw += tally.tx_csum_sw;
            let mut sent = 0;
            for (p, off) in out.iter() {
                if nf.send_on(queue, host, p, *off).is_ok() {
                    sent += 1;
                }
            }
            nf.flush_queues(queue, host);
            sent
        })
        .unwrap_or(0);
        let made = self.outq.len() as u64;
        self.outq.clear();
        self.stats.tx_packets += sent;
        self.tally.tx_busy = tally.tx_busy + (made - sent);
    }

    pub fn tx_busy(&self) -> u64 {
        self.tally.tx_busy
    }

    /// When the shard must run again if nothing arrives: smoltcp's next
    /// timer and the service's next timeout (ns of system time), as of
    /// system time `now` (the loop's last reading).
    pub fn deadline(&mut self, now: u64) -> Option<u64> {
        if self.tx_waiting {
            return Some(now + 10_000_000);
        }
        // Called as the shard's loop is about to wait: an RX batch is
        // waited for at most the hold.
        let hold = self.rx_batching.then(|| now + RX_HOLD_NS.load(Ordering::Relaxed));
        self.hold_until = hold;
        let stack = self
            .iface
            .as_mut()
            .and_then(|i| i.poll_at(instant(now), &self.sockets))
            .map(|at| at.total_micros().max(0) as u64 * 1000);
        let service = self.svc.poll_at().map(super::listener::timer_deadline_ns);
        [stack, service, hold].into_iter().flatten().min()
    }

    /// Whether received frames wait to go through the stack.
    pub fn has_input(&self) -> bool {
        !self.rxq.is_empty()
    }

    /// The shard's report: its counters and the service's line.
    pub fn report(&self, looped: Option<&LoopStats>) -> String {
        let s = &self.stats;
        let mut line = format!(
            "net: shard {} (queue {}) on vCPU {}: rx {} tx {} pkts, frames handed in {} out {}, passes parked on vCPU 0 {}, moves {}, tx busy {}, syn duplicates {}",
            self.index,
            self.vif.as_ref().and_then(|v| v.queue).map_or(String::from("all"), |q| format!("{q}")),
            smp::current(),
            s.rx_packets,
            s.tx_packets,
            s.handed_in,
            s.handed_out,
            s.parked_passes,
            s.moves,
            self.tally.tx_busy,
            self.syn_duplicates,
        );
        if let Some(l) = looped {
            line.push('\n');
            line.push_str(&format!("net: shard {} ", self.index));
            line.push_str(
                l.line(self.sockets.iter().count(), platform::now_ns()).trim_start_matches("net: "),
            );
        }
        if let Some(r) = self.svc.report() {
            line.push('\n');
            line.push_str(&format!("net: shard {} {r}", self.index));
        }
        line
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

/// Parks shard `k` (vCPU 0's loop serves it from now on).
pub(super) fn park(shard: Box<Shard>) {
    let k = shard.index;
    *SLOTS[k].lock() = Some(shard);
    PARKED.fetch_or(1 << k, Ordering::SeqCst);
    MOVES.fetch_add(1, Ordering::SeqCst);
}

/// Serves every parked shard once (vCPU 0's loop). Returns whether any
/// has received frames left over.
pub(super) fn serve_parked(status: &Status, looped: &mut LoopStats, lap: &mut Lap) -> bool {
    let parked = PARKED.load(Ordering::SeqCst);
    let mut input = false;
    for (k, slot) in SLOTS.iter().enumerate().take(count()) {
        if parked & (1 << k) == 0 {
            continue;
        }
        if let Some(s) = slot.lock().as_mut() {
            if k != 0 {
                s.stats.parked_passes += 1;
            }
            s.pass(status, looped, lap);
            input |= s.has_input();
        }
    }
    input
}

/// The parked shards' earliest deadline, as of system time `now`.
pub(super) fn parked_deadline(now: u64) -> Option<u64> {
    let parked = PARKED.load(Ordering::SeqCst);
    SLOTS
        .iter()
        .enumerate()
        .take(count())
        .filter(|(k, _)| parked & (1 << k) != 0)
        .filter_map(|(_, slot)| slot.lock().as_mut().and_then(|s| s.deadline(now)))
        .min()
}

/// Runs `f` on parked shard `k`, if it is parked.
pub(super) fn with_parked<R>(k: usize, f: impl FnOnce(&mut Shard) -> R) -> Option<R> {
    if PARKED.load(Ordering::SeqCst) & (1 << k) == 0 {
        return None;
    }
    SLOTS.get(k)?.lock().as_mut().map(|s| f(s))
}

/// Publishes vCPU 0's status for the shards on other vCPUs.
pub(super) fn publish_status(status: &Status) {
    let mut s = SNAPSHOT.lock();
    s.0 += 1;
    match &mut s.1 {
        Some(old) => old.clone_from(status),
        None => s.1 = Some(status.clone()),
    }
    SNAPSHOT_GEN.store(s.0, Ordering::Release);
}

/// Sends each parked shard whose vCPU is online back to it (vCPU 0's
/// loop, every pass: after an `xl vcpu-set`, a resume).
pub(super) fn dispatch() {
    let parked = PARKED.load(Ordering::SeqCst);
    for (k, assigned) in ASSIGNED.iter().enumerate().take(count()).skip(1) {
        let cpu = k as u32;
        if parked & (1 << k) == 0
            || assigned.load(Ordering::SeqCst)
            || !smp::is_online(cpu)
            || smp::stop_requested(cpu)
        {
            continue;
        }
        assigned.store(true, Ordering::SeqCst);
        if smp::run_task(cpu, task, k).is_err() {
            assigned.store(false, Ordering::SeqCst);
        }
    }
}

/// Every shard's report lines, vCPU 0's own `looped` for shard 0: the
/// parked ones written here, the others asked of their vCPUs (each
/// answers within its next wake-up; at most half a second is waited).
pub(super) fn reports(looped: &LoopStats) -> Vec<String> {
    let n = count();
    if n == 1 {
        return Vec::new();
    }
    let gen = REPORT_GEN.fetch_add(1, Ordering::SeqCst) + 1;
    let mut lines = Vec::new();
    let mut asked = Vec::new();
    for k in 0..n {
        match with_parked(k, |s| s.report((k == 0).then_some(looped))) {
            Some(l) => lines.push(l),
            None => {
                let _ = smp::send_ipi(home(k));
                asked.push(k);
            }
        }
    }
    for k in asked {
        let ok = smp::spin_until(platform::now_ns() + 500_000_000, || REPORTS[k].lock().0 >= gen);
        let r = REPORTS[k].lock();
        lines.push(if ok {
            r.1.clone()
        } else {
            format!("net: shard {k} on vCPU {} did not report in 500 ms", home(k))
        });
    }
    lines
}

/// Binds shard `k`'s channels to `cpu` and says it serves `k` (under the
/// driver's lock: the vif's ports cannot change meanwhile).
fn move_home(k: usize, cpu: u32) {
    let moved = super::service::with_vif(|d| {
        HOME[k].store(cpu, Ordering::SeqCst);
        d.bind_shard_ports(k)
    });
    if moved.is_none() {
        HOME[k].store(cpu, Ordering::SeqCst);
    }
}

/// Shard `k`'s life on vCPU `k` (a task of that vCPU's loop, posted by
/// [`dispatch`]): takes the shard from its slot, moves its channels here,
/// serves it until the vCPU is asked to go offline, then parks it again
/// with its channels on vCPU 0.
fn task(k: usize) {
    let me = smp::current();
    let Some(mut shard) = SLOTS[k].lock().take() else {
        ASSIGNED[k].store(false, Ordering::SeqCst);
        return;
    };
    PARKED.fetch_and(!(1 << k), Ordering::SeqCst);
    MOVES.fetch_add(1, Ordering::SeqCst);
    shard.stats.moves += 1;
    move_home(k, me);
    let t0 = platform::now_ns();
    let mut looped = LoopStats { start_ns: t0, ..LoopStats::default() };
    let mut status: Option<Status> = None;
    let mut status_gen = 0;
    let mut report_gen = REPORT_GEN.load(Ordering::SeqCst);
    kprintln!("net: shard {k} serves on vCPU {me}");
    // As the service loop does: notifications go out with the block.
    let defer = events::defer_sends();
    // One stopwatch for the whole loop: each pass's laps go on from the
    // last one's, and its readings are the pass's time.
    let mut lap = Lap::start();
    while !smp::stopping() {
        looped.passes += 1;
        let seen = news_of(k);
        let g = SNAPSHOT_GEN.load(Ordering::Acquire);
        if g != status_gen {
            let snap = SNAPSHOT.lock();
            match (&mut status, &snap.1) {
                (Some(mine), Some(s)) => mine.clone_from(s),
                (None, Some(s)) => status = Some(s.clone()),
                _ => {}
            }
            status_gen = snap.0;
        }
        let empty = Status::default();
        shard.pass(status.as_ref().unwrap_or(&empty), &mut looped, &mut lap);
        let rg = REPORT_GEN.load(Ordering::SeqCst);
        if rg != report_gen {
            report_gen = rg;
            let line = shard.report(Some(&looped));
            *REPORTS[k].lock() = (rg, line);
        }
        if shard.has_input() || news_of(k) != seen {
            looped.no_wait += 1;
            events::send_owed();
            continue;
        }
        // Capped: a wake-up lost to a channel moving between vCPUs costs
        // at most this.
        let cap = lap.at() + 1_000_000_000;
        let until = shard.deadline(lap.at()).map_or(cap, |d| d.min(cap));
        lap.lap(&mut looped.ns_delay);
        let woke = timer::wait_until(until, || {
            news_of(k) != seen || smp::stopping() || REPORT_GEN.load(Ordering::SeqCst) != report_gen
        });
        if woke {
            looped.woke_event += 1;
        } else {
            looped.woke_timer += 1;
        }
        lap.lap(&mut looped.ns_wait);
    }
    drop(defer);
    move_home(k, 0);
    kprintln!(
        "net: shard {k} leaves vCPU {me} after {} passes ({} ms); vCPU 0 serves it",
        looped.passes,
        (platform::now_ns() - t0) / 1_000_000
    );
    park(shard);
    ASSIGNED[k].store(false, Ordering::SeqCst);
    // Events already queued on this vCPU before the move: taken here (the
    // handler sends them on to vCPU 0) before it goes down.
    {
        let _masked = IrqGuard::new();
        events::handle_upcall();
    }
    let _ = smp::send_ipi(0);
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
        f(&mut alloc::vec![0; len])
    }
}
