//! `cargo xtask bench net`: TCP throughput dom0→guest and guest→dom0 and
//! the small-packet request rate, our guest (`app=echo`: echo on 7,
//! discard on 9, source on 19) against a Linux PV DomU (Debian's kernel
//! with `xen-netfront`, `nettool serve` on the same ports), one QEMU boot,
//! measured from dom0 by `nettool` ([`crate::nettool`]). Our guest also
//! reports cumulative ring counters on `xl sysrq`; the differences across
//! each phase give the deterministic efficiency figures (notifications,
//! events and data-path hypercalls per 1,000 packets).

use crate::lab::{Lab, LabOptions};
use crate::nettool;
use crate::report::{self, Style, Table};
use crate::scenario::{BootReport, GuestSpec, Scenario};
use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Settings of one benchmark run.
#[derive(Debug, Clone)]
pub struct NetBenchOptions {
    /// Bytes per throughput transfer.
    pub bytes: u64,
    /// Request/response round trips (64 bytes each way).
    pub requests: u32,
    pub kvm: bool,
    pub verbose: bool,
    /// Skip the Linux DomU.
    pub no_linux: bool,
    /// The Xen release (`None`: `$XENPV_XEN`, else 4.17).
    pub xen: Option<crate::release::XenRelease>,
    /// vCPUs of both guests (ours: a shard per vCPU, docs/smp.md; each
    /// phase is one TCP connection, so one shard carries it).
    pub vcpus: u32,
    /// More settings for our guest (`--guest-arg net.rx_batch=1`).
    pub guest_args: Vec<String>,
}

impl Default for NetBenchOptions {
    fn default() -> Self {
        Self {
            bytes: 32 << 20,
            requests: 2000,
            kvm: false,
            verbose: false,
            no_linux: false,
            xen: None,
            vcpus: 1,
            guest_args: Vec::new(),
        }
    }
}

const OURS: &str = "nb-ours";
const LINUX: &str = "nb-linux";
const OURS_IP: &str = "192.0.2.3";
const LINUX_IP: &str = "192.0.2.4";
const RR_SIZE: u32 = 64;

/// The Linux DomU's `/init`: netfront up, `nettool serve` in front.
pub const LINUX_INIT: &str = include_str!("linux-domu/net-init.sh");

/// The Linux DomU's initramfs: busybox, `xen-netfront`, `nettool`, `/init`.
pub fn linux_initramfs(
    bundle: &crate::debs::Dom0Bundle,
    tool: &Path,
) -> Result<crate::cpio::Archive> {
    let mut a = crate::linuxbench::busybox_archive(
        bundle,
        &["sh", "mount", "insmod", "cat", "sleep", "ip", "uname", "ls", "tr"],
    )?;
    crate::linuxbench::add_modules(&mut a, bundle, &["xen-netfront"])?;
    a.file(nettool::DEST, 0o755, crate::cmd::read(tool)?);
    a.file("init", 0o755, LINUX_INIT);
    Ok(a)
}

/// The dom0 call measuring one side: `nb_ours` or `nb_linux` of
/// `dom0/bench-net.sh` with the guest's name, config and address and the
/// run's sizes.
pub fn measure(func: &str, name: &str, cfg: &str, ip: &str, o: &NetBenchOptions) -> String {
    format!(
        ". {}\n{func} {name} {cfg} {ip} {} {} {RR_SIZE}\n",
        crate::dom0::BENCH_NET.0,
        o.bytes,
        o.requests
    )
}

/// Both scenarios (ours, then Linux if `linux_ramdisk`).
pub fn scenarios(
    o: &NetBenchOptions,
    kernel: &Path,
    tool: &Path,
    vmlinuz: &Path,
    linux_ramdisk: Option<&Path>,
) -> Vec<Scenario> {
    let vif = |mac: &str| format!("vif = ['mac={mac},bridge=xenbr0']");
    let mut ours = GuestSpec::new(OURS, kernel, "echo")
        .args(&[&[format!("ip={OURS_IP}/24")], &o.guest_args[..]].concat())
        .vcpus(o.vcpus)
        .memory(64)
        .timeout(Duration::from_secs(900));
    ours.extra_config.push(vif("00:16:3e:0c:00:13"));
    let script = measure("nb_ours", OURS, &ours.cfg_path(), OURS_IP, o);
    let mut v =
        vec![Scenario::script("net-ours", vec![ours], &script).with_file(nettool::DEST, tool)];
    if let Some(rd) = linux_ramdisk {
        let mut g = GuestSpec::new(LINUX, vmlinuz, "none")
            .vcpus(o.vcpus)
            .memory(256)
            .timeout(Duration::from_secs(900))
            .ramdisk(rd);
        g.cmdline = format!("console=hvc0 quiet bench_ip={LINUX_IP}");
        g.extra_config.push(vif("00:16:3e:0c:00:14"));
        let script = measure("nb_linux", LINUX, &g.cfg_path(), LINUX_IP, o);
        v.push(Scenario::script("net-linux", vec![g], &script).with_file(nettool::DEST, tool));
    }
    v
}

/// The Linux DomU at one mark: its vif's event channels (the lines of
/// `/proc/interrupts` netfront named `vif0-q0-tx`, `vif0-q0-rx`, every
/// CPU's column summed) and eth0's packets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinuxMark {
    /// (name, count) per channel, e.g. `("vif0-q0-rx", 812)`.
    pub channels: Vec<(String, u64)>,
    pub rx_pkts: u64,
    pub tx_pkts: u64,
}

impl LinuxMark {
    /// Events on all the vif's channels.
    pub fn events(&self) -> u64 {
        self.channels.iter().map(|(_, n)| n).sum()
    }

    fn minus(&self, o: &Self) -> Self {
        let before = |name: &str| o.channels.iter().find(|(n, _)| n == name).map_or(0, |c| c.1);
        LinuxMark {
            channels: self
                .channels
                .iter()
                .map(|(n, c)| (n.clone(), c.saturating_sub(before(n))))
                .collect(),
            rx_pkts: self.rx_pkts.saturating_sub(o.rx_pkts),
            tx_pkts: self.tx_pkts.saturating_sub(o.tx_pkts),
        }
    }
}

/// The Linux DomU's marks (`linux-irq:` lines, `linux-domu/net-init.sh`),
/// one per `linux-irq: end`, in order.
pub fn linux_marks(console: &[String]) -> Vec<LinuxMark> {
    let mut marks = Vec::new();
    let mut cur = LinuxMark::default();
    for l in console {
        let Some(rest) = l.find("linux-irq: ").map(|i| l[i + 11..].trim()) else { continue };
        let w: Vec<&str> = rest.split_whitespace().collect();
        match w.first().copied() {
            Some("end") => marks.push(std::mem::take(&mut cur)),
            Some("packets") => {
                let get = |k: &str| {
                    w.iter().position(|x| *x == k).and_then(|i| w.get(i + 1)?.parse().ok())
                };
                cur.rx_pkts = get("rx").unwrap_or(0);
                cur.tx_pkts = get("tx").unwrap_or(0);
            }
            // "25:  1234  xen-dyn  -edge  vif0-q0-tx": the counts follow
            // the IRQ number, one per CPU; the name is last.
            Some(irq) if irq.ends_with(':') && w.len() > 2 => {
                let n: u64 = w[1..].iter().map_while(|x| x.parse::<u64>().ok()).sum();
                cur.channels.push((w[w.len() - 1].to_string(), n));
            }
            _ => {}
        }
    }
    marks
}

/// The Linux DomU's counts across each phase (send, recv, rr).
pub fn linux_phases(console: &[String]) -> Vec<LinuxMark> {
    linux_marks(console).windows(2).take(3).map(|w| w[1].minus(&w[0])).collect()
}

/// Our exits against the Linux DomU's events, per 1,000 packets (each
/// side's own packets, both ways) in each phase: issue 17's "fewer
/// notifications plus hypercalls than the Linux DomU's event count".
pub fn events_table(phases: &[Counters], linux: &[LinuxMark]) -> String {
    let mut t = Table::new(Style::Plain)
        .left("phase", 16)
        .right("ours pkts", 10)
        .right("events in", 10)
        .right("hypercalls", 11)
        .right("sum", 8)
        .right("linux pkts", 11)
        .right("linux events", 13)
        .right("fewer?", 7);
    for (i, name) in ["dom0->guest", "guest->dom0", "request/resp."].iter().enumerate() {
        let (Some(c), Some(l)) = (phases.get(i), linux.get(i)) else { continue };
        let ours_pkts = c.rx_pkts + c.tx_pkts;
        let linux_pkts = l.rx_pkts + l.tx_pkts;
        let per = |n: u64, p: u64| (p > 0).then(|| n as f64 * 1000.0 / p as f64);
        let ours = per(c.events_in() + c.hypercalls(), ours_pkts);
        // No vif lines at all: the mark did not see the channels.
        let theirs = per(l.events(), linux_pkts).filter(|_| !l.channels.is_empty());
        let fewer = match (ours, theirs) {
            (Some(a), Some(b)) if a < b => "yes",
            (Some(_), Some(_)) => "no",
            _ => "-",
        };
        t.row([
            name.to_string(),
            ours_pkts.to_string(),
            per_k(c.events_in(), ours_pkts),
            per_k(c.hypercalls(), ours_pkts),
            report::cell(ours, 1),
            linux_pkts.to_string(),
            report::cell(theirs, 1),
            fewer.to_string(),
        ]);
    }
    let channels = linux
        .first()
        .map(|l| l.channels.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!(
        "\nExits per 1,000 packets (each side's packets both ways): ours = events in (rx + tx + \
         timer VIRQs) + hypercalls (traps for EVTCHNOP_send + set_timer_op + SCHEDOP_block, a \
         block's multicall counted once), against the Linux DomU's events \
         (/proc/interrupts of its vif's channels: {channels}):\n{}",
        t.render()
    )
}

/// One side's measurements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Side {
    /// MiB/s dom0→guest, guest→dom0; requests per second.
    pub to_guest: Option<f64>,
    pub from_guest: Option<f64>,
    pub rr: Option<f64>,
    /// Check failures (bad bytes, short transfers) as text.
    pub problems: Vec<String>,
}

/// Reads the `NETTOOL` lines dom0 printed for `name`.
pub fn parse_side(name: &str, lines: &[String]) -> Side {
    let mut s = Side::default();
    let tag = format!("{name} NETTOOL ");
    for l in lines.iter().filter(|l| l.contains(&tag)) {
        let Some((mode, kv)) = nettool::parse_line(l) else { continue };
        let bad = nettool::value(&kv, "bad").unwrap_or(0.0);
        if bad > 0.0 || mode == "error" {
            s.problems.push(l.clone());
        }
        match mode {
            "send" => s.to_guest = nettool::value(&kv, "mibps"),
            "recv" => s.from_guest = nettool::value(&kv, "mibps"),
            "rr" => s.rr = nettool::value(&kv, "per_s"),
            _ => {}
        }
    }
    s
}

/// Our guest's cumulative counters (`net: efficiency ...`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub rx_pkts: u64,
    pub tx_pkts: u64,
    pub tx_notify: u64,
    pub rx_notify: u64,
    pub tx_events: u64,
    pub rx_events: u64,
    pub timer_sets: u64,
    pub blocks: u64,
    /// Of the hypercalls above, those that made no trap into Xen of their
    /// own (in a block's multicall, or covered by another notification).
    pub carried: u64,
    /// `VIRQ_TIMER` upcalls (wake-ups by a deadline: an exit as much as
    /// an event on the vif's channels).
    pub timer_virqs: u64,
}

impl Counters {
    pub fn parse(line: &str) -> Option<Self> {
        let rest = &line[line.find("net: efficiency ")? + 16..];
        let w: Vec<&str> = rest.split_whitespace().collect();
        let get = |k: &str| -> Option<u64> {
            w.iter().position(|x| *x == k).and_then(|i| w.get(i + 1)?.parse().ok())
        };
        Some(Counters {
            rx_pkts: get("rx-pkts")?,
            tx_pkts: get("tx-pkts")?,
            tx_notify: get("tx-notify")?,
            rx_notify: get("rx-notify")?,
            tx_events: get("tx-events")?,
            rx_events: get("rx-events")?,
            timer_sets: get("timer-sets")?,
            blocks: get("blocks")?,
            carried: get("carried")?,
            timer_virqs: get("timer-virqs")?,
        })
    }

    fn minus(&self, o: &Self) -> Self {
        Counters {
            rx_pkts: self.rx_pkts.saturating_sub(o.rx_pkts),
            tx_pkts: self.tx_pkts.saturating_sub(o.tx_pkts),
            tx_notify: self.tx_notify.saturating_sub(o.tx_notify),
            rx_notify: self.rx_notify.saturating_sub(o.rx_notify),
            tx_events: self.tx_events.saturating_sub(o.tx_events),
            rx_events: self.rx_events.saturating_sub(o.rx_events),
            timer_sets: self.timer_sets.saturating_sub(o.timer_sets),
            blocks: self.blocks.saturating_sub(o.blocks),
            carried: self.carried.saturating_sub(o.carried),
            timer_virqs: self.timer_virqs.saturating_sub(o.timer_virqs),
        }
    }

    /// Traps into Xen on the data path: EVTCHNOP_send, set_timer_op and
    /// SCHEDOP_block, less those that rode in another's trap (a block's
    /// multicall carries the notifications and timer change before it).
    /// Upcalls: events on the vif's channels and timer VIRQs.
    pub fn events_in(&self) -> u64 {
        self.rx_events + self.tx_events + self.timer_virqs
    }

    pub fn hypercalls(&self) -> u64 {
        (self.tx_notify + self.rx_notify + self.timer_sets + self.blocks)
            .saturating_sub(self.carried)
    }
}

/// The counters across each phase (send, recv, rr), from the guest's console.
pub fn phase_counters(console: &[String]) -> Vec<Counters> {
    let snaps: Vec<Counters> = console.iter().filter_map(|l| Counters::parse(l)).collect();
    snaps.windows(2).take(3).map(|w| w[1].minus(&w[0])).collect()
}

fn per_k(n: u64, pkts: u64) -> String {
    if pkts == 0 {
        return "-".into();
    }
    format!("{:.1}", n as f64 * 1000.0 / pkts as f64)
}

/// The service loop's figures across each phase (the `net: loop` lines
/// of the same marks, see [`crate::httpbench::snapshots`]).
pub fn loop_phases(console: &[String]) -> Vec<crate::httpbench::Snapshot> {
    let snaps = crate::httpbench::snapshots(console);
    snaps
        .windows(2)
        .take(3)
        .map(|w| {
            w[1].iter()
                .map(|(k, v)| (k.clone(), v.saturating_sub(*w[0].get(k).unwrap_or(&0))))
                .collect()
        })
        .collect()
}

/// Where the loop's time went in each phase, per 1,000 packets (both ways).
pub fn loop_table(loops: &[crate::httpbench::Snapshot]) -> String {
    let mut t = Table::new(Style::Plain)
        .left("phase", 16)
        .right("passes", 8)
        .right("by event", 9)
        .right("by timer", 9)
        .right("us busy/pkt", 12)
        .right("ingress%", 9)
        .right("egress%", 8)
        .right("serve%", 7)
        .right("rx%", 5);
    for (name, d) in ["dom0->guest", "guest->dom0", "request/resp."].iter().zip(loops) {
        let g = |k: &str| *d.get(k).unwrap_or(&0) as f64;
        let pkts = g("rx-pkts") + g("tx-pkts");
        let per_k =
            |x: f64| if pkts > 0.0 { format!("{:.1}", x * 1000.0 / pkts) } else { "-".into() };
        let busy = g("us-total") - g("us-wait") - g("us-report");
        let pct = |x: f64| if busy > 0.0 { format!("{:.0}", x * 100.0 / busy) } else { "-".into() };
        t.row([
            name.to_string(),
            per_k(g("passes")),
            per_k(g("woke-event")),
            per_k(g("woke-timer")),
            if pkts > 0.0 { format!("{:.0}", busy / pkts) } else { "-".into() },
            pct(g("us-ingress")),
            pct(g("us-stack") - g("us-ingress")),
            pct(g("us-serve")),
            pct(g("us-rx")),
        ]);
    }
    format!(
        "\nRust guest service loop (per 1,000 packets both ways; busy = not blocked, and its shares):\n{}",
        t.render()
    )
}

/// The report: throughput and rate side by side, then the counters.
pub fn table(ours: &Side, linux: &Side, phases: &[Counters], o: &NetBenchOptions) -> String {
    let mut s = format!(
        "net benchmark: {} MiB per transfer, {} request/responses of {RR_SIZE} B, dom0 nettool (64 KiB per call); {} vCPU(s) each\n",
        o.bytes >> 20,
        o.requests,
        o.vcpus
    );
    if !o.guest_args.is_empty() {
        s.push_str(&format!("our guest's settings: {}\n", o.guest_args.join(" ")));
    }
    let mut t = Table::new(Style::Plain)
        .left("", 28)
        .right("Rust guest", 12)
        .right("Linux PV DomU", 14)
        .right("ratio", 8);
    for (label, a, b) in [
        ("TCP dom0->guest (MiB/s)", ours.to_guest, linux.to_guest),
        ("TCP guest->dom0 (MiB/s)", ours.from_guest, linux.from_guest),
        ("request/response (per s)", ours.rr, linux.rr),
    ] {
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        t.row([label.to_string(), report::cell(a, 2), report::cell(b, 2), report::cell(ratio, 2)]);
    }
    s.push_str(&t.render());
    s.push_str("\nRust guest ring efficiency (counted in the guest, per 1,000 packets):\n");
    let mut t = Table::new(Style::Plain)
        .left("phase", 16)
        .right("rx pkts", 9)
        .right("tx pkts", 9)
        .right("rx events", 10)
        .right("rx notify", 10)
        .right("tx notify", 10)
        .right("tx events", 10)
        .right("hypercalls", 11);
    for (name, c) in ["dom0->guest", "guest->dom0", "request/resp."].iter().zip(phases) {
        let all = c.rx_pkts + c.tx_pkts;
        t.row([
            name.to_string(),
            c.rx_pkts.to_string(),
            c.tx_pkts.to_string(),
            per_k(c.rx_events, c.rx_pkts),
            per_k(c.rx_notify, c.rx_pkts),
            per_k(c.tx_notify, c.tx_pkts),
            per_k(c.tx_events, c.tx_pkts),
            per_k(c.hypercalls(), all),
        ]);
    }
    s.push_str(&t.render());
    s.push_str(
        "(rx events/notify per 1,000 RX packets, tx notify/events per 1,000 TX packets; hypercalls = \
         traps for EVTCHNOP_send + set_timer_op + SCHEDOP_block, a block's multicall counted once, \
         per 1,000 packets both ways)\n",
    );
    s
}

/// The JSON report (`net.json`).
#[derive(Debug, Serialize)]
pub struct Report {
    pub bytes: u64,
    pub requests: u32,
    pub vcpus: u32,
    pub ours: SideReport,
    pub linux: SideReport,
    pub phases: Vec<PhaseReport>,
    /// The Linux DomU's vif events and packets per phase (send, recv, rr).
    pub linux_phases: Vec<LinuxMark>,
}

/// One side's figures in [`Report`].
#[derive(Debug, Serialize)]
pub struct SideReport {
    pub to_guest_mibps: Option<f64>,
    pub from_guest_mibps: Option<f64>,
    pub rr_per_s: Option<f64>,
    pub problems: Vec<String>,
}

/// Our guest's counters over one phase.
#[derive(Debug, Serialize)]
pub struct PhaseReport {
    /// `to_guest`, `from_guest` or `rr`.
    pub phase: &'static str,
    #[serde(flatten)]
    pub counters: Counters,
}

pub fn to_json(ours: &Side, linux: &Side, phases: &[Counters], o: &NetBenchOptions) -> Report {
    let side = |s: &Side| {
        let r = |v: Option<f64>| v.map(|x| report::round(x, 3));
        SideReport {
            to_guest_mibps: r(s.to_guest),
            from_guest_mibps: r(s.from_guest),
            rr_per_s: r(s.rr),
            problems: s.problems.clone(),
        }
    };
    Report {
        bytes: o.bytes,
        requests: o.requests,
        vcpus: o.vcpus,
        ours: side(ours),
        linux: side(linux),
        phases: ["to_guest", "from_guest", "rr"]
            .iter()
            .zip(phases)
            .map(|(phase, c)| PhaseReport { phase, counters: *c })
            .collect(),
        linux_phases: Vec::new(),
    }
}

/// Runs the benchmark and writes `target/xen/bench/net.{txt,json}`.
pub fn run(o: &NetBenchOptions) -> Result<()> {
    let t = Instant::now();
    let guest = crate::guest::build(true)?;
    let opts = LabOptions::bench("bench-net", o.kvm, o.verbose, o.xen);
    let lab = Lab::prepare(opts)?;
    let tool = nettool::build(&lab.opts.cache_dir)?;
    let out = crate::bench::out_dir();
    crate::cmd::mkdir(&out)?;
    let ramdisk: Option<PathBuf> = if o.no_linux {
        None
    } else {
        let a = linux_initramfs(&lab.bundle, &tool)?;
        Some(crate::bench::write_ramdisk(&out, "net", &a.to_bytes())?)
    };
    let sc = scenarios(o, &guest.stable, &tool, &lab.bundle.vmlinuz, ramdisk.as_deref());
    let report = lab.boot(&sc)?;
    let (ours, linux, phases) = collect(&report);
    let loops = report.run(OURS).map(|r| loop_phases(&r.console)).unwrap_or_default();
    let linux_events = report.run(LINUX).map(|r| linux_phases(&r.console)).unwrap_or_default();
    let mut text = table(&ours, &linux, &phases, o);
    if !linux_events.is_empty() {
        text.push_str(&events_table(&phases, &linux_events));
    }
    if !loops.is_empty() {
        text.push_str(&loop_table(&loops));
    }
    println!("\n{text}");
    // One vCPU: `net.*` as always; more: `net-vcpus2.*`, beside it.
    let stem = if o.vcpus == 1 { "net".to_string() } else { format!("net-vcpus{}", o.vcpus) };
    let mut json = to_json(&ours, &linux, &phases, o);
    json.linux_phases = linux_events;
    report::write(&out, &stem, &text, &json)?;
    println!("total: {:.0} s", t.elapsed().as_secs_f64());
    let incomplete = (ours.to_guest.is_none() || ours.from_guest.is_none() || ours.rr.is_none())
        .then(|| "the Rust guest's measurements are incomplete".to_string());
    crate::bench::first_problem(ours.problems.iter().chain(&linux.problems), &report, incomplete)
}

fn collect(report: &BootReport) -> (Side, Side, Vec<Counters>) {
    let xl: Vec<String> = report.runs.iter().flat_map(|r| r.xl_output.iter().cloned()).collect();
    let ours = parse_side(OURS, &xl);
    let linux = parse_side(LINUX, &xl);
    let phases = report.run(OURS).map(|r| phase_counters(&r.console)).unwrap_or_default();
    (ours, linux, phases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn sides_counters_and_table() {
        let xl = s(&[
            "[xl bench] nb-ours NETTOOL send bytes=100 ns=5 mibps=4.00",
            "[xl bench] nb-ours NETTOOL recv bytes=100 ns=5 mibps=2.00 bad=0",
            "[xl bench] nb-ours NETTOOL rr count=10 size=64 ns=5 per_s=100.0 bad=0",
            "[xl bench] nb-linux NETTOOL send bytes=100 ns=5 mibps=8.00",
            "[xl bench] nb-linux NETTOOL recv bytes=90 ns=5 mibps=2.00 bad=3",
        ]);
        let ours = parse_side(OURS, &xl);
        assert_eq!((ours.to_guest, ours.from_guest, ours.rr), (Some(4.0), Some(2.0), Some(100.0)));
        assert!(ours.problems.is_empty());
        let linux = parse_side(LINUX, &xl);
        assert_eq!(linux.rr, None);
        assert_eq!(linux.problems.len(), 1);
        let line = |k: u64| {
            format!("(d1) net: efficiency rx-pkts {} tx-pkts {} rx-bytes 0 tx-bytes 0 tx-notify {} rx-notify {} tx-events {} rx-events {} timer-sets {} blocks {} carried {} timer-virqs {}", 1000 * k, 500 * k, 10 * k, 20 * k, 30 * k, 40 * k, 5 * k, 6 * k, 4 * k, 3 * k)
        };
        let console: Vec<String> = (0..5).map(line).collect();
        let p = phase_counters(&console);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].rx_pkts, 1000);
        assert_eq!(p[0].hypercalls(), 10 + 20 + 5 + 6 - 4);
        let t = table(&ours, &linux, &p, &NetBenchOptions::default());
        assert!(t.contains("0.50"), "{t}");
        assert!(t.contains("40.0"), "{t}");
        let j =
            serde_json::to_value(to_json(&ours, &linux, &p, &NetBenchOptions::default())).unwrap();
        assert_eq!(j["ours"]["to_guest_mibps"], 4.0);
        assert_eq!(j["linux"]["rr_per_s"], serde_json::Value::Null);
        assert_eq!(
            (j["phases"][0]["phase"].as_str(), j["phases"][0]["rx_pkts"].as_u64()),
            (Some("to_guest"), Some(1000))
        );
    }

    #[test]
    fn linux_events_per_phase_beside_ours() {
        let mark = |k: u64| {
            s(&[
                "irq-mark 1",
                &format!("linux-irq: 25:   {}   xen-dyn    -edge      vif0-q0-tx", 100 * k),
                &format!("linux-irq: 26:   {}   xen-dyn    -edge      vif0-q0-rx", 300 * k),
                &format!("linux-irq: packets rx {} tx {}", 1000 * k, 1000 * k),
                "linux-irq: end irq-mark 1",
            ])
        };
        let console: Vec<String> = (0..4).flat_map(mark).collect();
        let l = linux_phases(&console);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].channels, vec![("vif0-q0-tx".into(), 100), ("vif0-q0-rx".into(), 300)]);
        assert_eq!((l[0].events(), l[0].rx_pkts, l[0].tx_pkts), (400, 1000, 1000));
        // Ours: 1,000 packets, 50 events in, 41 hypercalls: 91 per 1,000
        // against Linux's 200.
        let c = Counters {
            rx_pkts: 600,
            tx_pkts: 400,
            rx_events: 30,
            tx_events: 20,
            tx_notify: 10,
            rx_notify: 20,
            timer_sets: 5,
            blocks: 6,
            carried: 0,
            timer_virqs: 0,
        };
        let t = events_table(&[c; 3], &l);
        let row = t.lines().find(|l| l.starts_with("dom0->guest")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[1..], ["1000", "50.0", "41.0", "91.0", "2000", "200.0", "yes"], "{t}");
        assert!(t.contains("vif0-q0-tx vif0-q0-rx"), "{t}");
    }

    #[test]
    fn loop_figures_per_phase() {
        let line = |k: u64| {
            vec![
                format!("(d1) net: efficiency rx-pkts {} tx-pkts {}", 600 * k, 400 * k),
                format!("(d1) net: loop passes {} woke-event {} woke-timer 0 us-stack {} us-ingress {} us-serve 0 us-rx 0 us-wait {} us-report 0 us-total {}", 100 * k, 90 * k, 300 * k, 100 * k, 1000 * k, 2000 * k),
            ]
        };
        let console: Vec<String> = (0..4).flat_map(line).collect();
        let loops = loop_phases(&console);
        assert_eq!(loops.len(), 3);
        let t = loop_table(&loops);
        // Per 1,000 packets: 100 passes, 90 by event; 1 us busy per packet,
        // 10% ingress, 20% egress.
        let row = t.lines().find(|l| l.starts_with("dom0->guest")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[1..7], ["100.0", "90.0", "0.0", "1", "10", "20"], "{t}");
    }

    #[test]
    fn scripts_measure_and_mark() {
        let o = NetBenchOptions::default();
        let p = measure("nb_ours", OURS, "/c", OURS_IP, &o);
        assert!(p.contains("nb_ours nb-ours /c 192.0.2.3 33554432 2000 64\n"), "{p}");
        assert!(p.starts_with(". /etc/xen-lab/bench-net.sh\n"), "{p}");
        let lib = crate::dom0::BENCH_NET.1;
        assert!(lib.contains("nb_tool \"$1\" send \"$2\" 9 \"$3\""));
        assert_eq!(lib.matches("nb_mark \"$1\" \"$6\"").count(), 4);
        assert!(lib.contains("nb_phases \"$1\" \"$3\" \"$4\" \"$5\" \"$6\" 2"));
        assert!(crate::netbench::LINUX_INIT.contains("done < /dev/hvc0"));
        let sc =
            scenarios(&o, Path::new("k"), Path::new("t"), Path::new("v"), Some(Path::new("r")));
        assert_eq!(sc.len(), 2);
        assert_eq!(sc[0].files[0].0, "bin/nettool");
    }
}
