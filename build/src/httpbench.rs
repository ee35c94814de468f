//! `cargo xtask bench http`: requests per second and latency (p50, p99,
//! max) of `GET /bench` (a 128-byte body) at 1, 16, 64 and 256 concurrent
//! clients, keep-alive on and off, from `httptool load` in dom0
//! ([`crate::httptool`], epoll, one process), against our guest
//! (`app=http`, 64 MiB) and against a Linux PV DomU (Debian's kernel with
//! `xen-netfront`, `httptool serve`: an epoll HTTP/1.1 server sending the
//! same body), one after the other in one QEMU boot. dom0's shell is in
//! `build/src/dom0/bench-http.sh`, the Linux DomU's `/init` in
//! `build/src/linux-domu/http-init.sh`. Our guest's status page after the load
//! gives its memory (heap, socket buffers) and connection counters.

use crate::httptool;
use crate::lab::{Lab, LabOptions};
use crate::scenario::{BootReport, GuestSpec, Scenario};
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Settings of one benchmark run.
#[derive(Debug, Clone)]
pub struct HttpBenchOptions {
    /// Requests per point.
    pub requests: u32,
    pub kvm: bool,
    pub verbose: bool,
    /// Skip the Linux DomU.
    pub no_linux: bool,
    pub xen: Option<crate::release::XenRelease>,
    /// More settings for our guest (`--guest-arg net.poll_us=50`).
    pub guest_args: Vec<String>,
    /// vCPUs of both guests: ours runs a shard per vCPU (docs/smp.md),
    /// the Linux DomU's server as many workers (SO_REUSEPORT).
    pub vcpus: u32,
}

impl Default for HttpBenchOptions {
    fn default() -> Self {
        Self {
            requests: 2000,
            kvm: false,
            verbose: false,
            no_linux: false,
            xen: None,
            guest_args: Vec::new(),
            vcpus: 1,
        }
    }
}

const OURS: &str = "hb-ours";
const LINUX: &str = "hb-linux";
const OURS_IP: &str = "192.0.2.5";
const LINUX_IP: &str = "192.0.2.6";
/// The concurrencies measured, with keep-alive and without.
pub const CLIENTS: [u32; 4] = [1, 16, 64, 256];

const PHASES_SH: &str = include_str!("dom0/bench-http.sh");
const LINUX_INIT: &str = include_str!("linux-domu/http-init.sh");

/// The Linux DomU's initramfs: busybox, `xen-netfront`, `httptool`, `/init`.
pub fn linux_initramfs(
    bundle: &crate::debs::Dom0Bundle,
    tool: &Path,
) -> Result<crate::cpio::Archive> {
    let mut a = crate::linuxbench::busybox_archive(
        bundle,
        &["sh", "mount", "insmod", "cat", "sleep", "ip", "uname", "ls", "tr"],
    )?;
    crate::linuxbench::add_modules(&mut a, bundle, &["xen-netfront"])?;
    a.file(httptool::DEST, 0o755, crate::cmd::read(tool)?);
    a.file("init", 0o755, LINUX_INIT);
    Ok(a)
}

/// Both scenarios (ours, then Linux if `linux_ramdisk`).
pub fn scenarios(
    o: &HttpBenchOptions,
    kernel: &Path,
    tool: &Path,
    vmlinuz: &Path,
    linux_ramdisk: Option<&Path>,
) -> Vec<Scenario> {
    let vif = |mac: &str| format!("vif = ['mac={mac},bridge=xenbr0']");
    let mut args = vec![format!("ip={OURS_IP}/24")];
    args.extend(o.guest_args.iter().cloned());
    let mut ours = GuestSpec::new(OURS, kernel, "http")
        .args(&args)
        .vcpus(o.vcpus)
        .memory(64)
        .timeout(Duration::from_secs(3600));
    ours.extra_config.push(vif("00:16:3e:0c:00:15"));
    let script = format!(
        "{PHASES_SH}run_guest_start {OURS} {cfg} || exit 1\n\
         if wait_console {OURS} 'http: ready' 1 90 && wait_console {OURS} 'connected: mac' 1 30; then\n\
         http_points {OURS} {OURS_IP} {n} 1\nhttp_memory {OURS} {OURS_IP}\n\
         xl shutdown {OURS}\nrun_guest_wait {OURS} 60\nelse\nrun_guest_wait {OURS} 1\nfi\n",
        cfg = ours.cfg_path(),
        n = o.requests,
    );
    let mut v =
        vec![Scenario::script("http-ours", vec![ours], &script).with_file(httptool::DEST, tool)];
    if let Some(rd) = linux_ramdisk {
        let mut g = GuestSpec::new(LINUX, vmlinuz, "none")
            .vcpus(o.vcpus)
            .memory(256)
            .timeout(Duration::from_secs(3600))
            .ramdisk(rd);
        g.cmdline = format!("console=hvc0 quiet bench_ip={LINUX_IP} bench_workers={}", o.vcpus);
        g.extra_config.push(vif("00:16:3e:0c:00:16"));
        let script = format!(
            "{PHASES_SH}run_guest_start {LINUX} {cfg} || exit 1\n\
             if wait_console {LINUX} 'HTTPTOOL serve port' 1 240; then\n\
             http_points {LINUX} {LINUX_IP} {n}\nfi\n\
             xl destroy {LINUX}\nrun_guest_wait {LINUX} 30\n",
            cfg = g.cfg_path(),
            n = o.requests,
        );
        v.push(Scenario::script("http-linux", vec![g], &script).with_file(httptool::DEST, tool));
    }
    v
}

/// One load point of one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Point {
    pub per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub ok: f64,
    pub failed: f64,
    pub non200: f64,
}

/// One side's points, by (keep-alive, clients).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Side {
    pub points: Vec<((bool, u32), Point)>,
    pub problems: Vec<String>,
    /// Xen's account of the guest's vCPU time over every point, and the
    /// requests of those points.
    pub cpu: Option<(f64, f64)>,
    /// That time per vCPU (s).
    pub per_vcpu: Vec<f64>,
}

impl Side {
    pub fn get(&self, keep: bool, clients: u32) -> Option<&Point> {
        self.points.iter().find(|(k, _)| *k == (keep, clients)).map(|(_, p)| p)
    }
}

/// Reads the `HTTPTOOL load` lines dom0 printed for `name`.
pub fn parse_side(name: &str, lines: &[String]) -> Side {
    let mut s = Side::default();
    let vcpu = format!("{name} VCPU ");
    for l in lines {
        let Some((_, kv)) = l.split_once(&vcpu) else { continue };
        let get = |k: &str| -> Option<f64> {
            kv.split_whitespace().find_map(|w| w.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
        };
        s.cpu = get("cpu_s").zip(get("requests"));
        s.per_vcpu = kv
            .split_whitespace()
            .find_map(|w| w.strip_prefix("per_vcpu="))
            .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_default();
    }
    let tag = format!("{name} HTTPTOOL ");
    for l in lines.iter().filter(|l| l.contains(&tag)) {
        let Some((mode, kv)) = httptool::parse_line(l) else { continue };
        if mode == "error" {
            s.problems.push(l.clone());
            continue;
        }
        if mode != "load" {
            continue;
        }
        let v = |k| httptool::value(&kv, k).unwrap_or(0.0);
        let p = Point {
            per_s: v("per_s"),
            p50_us: v("p50_us"),
            p99_us: v("p99_us"),
            max_us: v("max_us"),
            ok: v("ok"),
            failed: v("failed"),
            non200: v("non200"),
        };
        if p.failed > 0.0 || p.non200 > 0.0 {
            s.problems.push(format!("{name}: failed requests: {l}"));
        }
        s.points.push(((v("keepalive") == 1.0, v("conns") as u32), p));
    }
    s
}

/// Our guest's status page figures after the load (`heap_kib`, `conn_peak`...).
pub fn parse_page(name: &str, lines: &[String]) -> Vec<(String, u64)> {
    let tag = format!("[xl page] {name} ");
    lines
        .iter()
        .filter_map(|l| l.split_once(&tag).map(|(_, r)| r))
        .filter_map(|r| {
            let (k, v) = r.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// One snapshot of our guest's cumulative counters: every `key value`
/// pair of its `net: loop` line, and the packet counts of the
/// `net: efficiency` line printed just before it.
pub type Snapshot = std::collections::BTreeMap<String, u64>;

fn pairs(rest: &str, into: &mut Snapshot) {
    let w: Vec<&str> = rest.split_whitespace().collect();
    for kv in w.chunks(2) {
        if let [k, v] = kv {
            if let Ok(v) = v.parse() {
                into.insert(k.to_string(), v);
            }
        }
    }
}

/// The snapshots our guest printed on each `xl sysrq` (before the first
/// point and after each), in order.
pub fn snapshots(console: &[String]) -> Vec<Snapshot> {
    let mut out = Vec::new();
    let mut eff = Snapshot::new();
    for l in console {
        if let Some(i) = l.find("net: efficiency ") {
            eff.clear();
            pairs(&l[i + 16..], &mut eff);
        } else if let Some(i) = l.find("net: loop ") {
            let mut snap = eff.clone();
            pairs(&l[i + 10..], &mut snap);
            out.push(snap);
        }
    }
    out
}

/// The counters' differences across each point (in the order the points
/// ran: keep-alive on, then off, each at every [`CLIENTS`]).
pub fn point_counters(snaps: &[Snapshot]) -> Vec<((bool, u32), Snapshot)> {
    let order = [true, false].into_iter().flat_map(|k| CLIENTS.map(|c| (k, c)));
    order
        .zip(snaps.windows(2))
        .map(|(p, w)| {
            let d = w[1]
                .iter()
                .map(|(k, v)| (k.clone(), v.saturating_sub(*w[0].get(k).unwrap_or(&0))))
                .collect();
            (p, d)
        })
        .collect()
}

/// The guest's figures per 1,000 requests at each point.
pub fn counters_table(points: &[((bool, u32), Snapshot)], ours: &Side) -> String {
    use crate::report::{Style, Table};
    let mut t = Table::new(Style::Plain)
        .left("keep-alive", 10)
        .right("clients", 7)
        .right("passes", 8)
        .right("by event", 9)
        .right("by timer", 9)
        .right("polls", 8)
        .right("sends", 8)
        .right("timer sets", 10)
        .right("blocks", 8)
        .right("hcalls", 8)
        .right("pkts", 8)
        .right("us busy/req", 11)
        .right("stack%", 7)
        .right("serve%", 7)
        .right("rx%", 5)
        .right("misc%", 6)
        .right("store%", 7)
        .right("delay%", 7)
        .right("run%", 5);
    for ((keep, c), d) in points {
        // The requests of the point, and the status page fetch of the mark
        // (none: the marks use xl sysrq).
        let reqs = ours.get(*keep, *c).map_or(0.0, |p| p.ok + p.failed + p.non200);
        let g = |k: &str| *d.get(k).unwrap_or(&0) as f64;
        let per_k =
            |x: f64| if reqs > 0.0 { format!("{:.0}", x * 1000.0 / reqs) } else { "-".into() };
        // The marks' own printing is not the loop's work.
        let busy = g("us-total") - g("us-wait") - g("us-report");
        let pct = |x: f64| if busy > 0.0 { format!("{:.0}", x * 100.0 / busy) } else { "-".into() };
        t.row([
            if *keep { "on".to_string() } else { "off".to_string() },
            c.to_string(),
            per_k(g("passes")),
            per_k(g("woke-event")),
            per_k(g("woke-timer")),
            per_k(g("polls")),
            per_k(g("sends")),
            per_k(g("timer-sets")),
            per_k(g("blocks")),
            // Less the calls that rode in a block's multicall.
            per_k((g("sends") + g("timer-sets") + g("blocks") - g("carried")).max(0.0)),
            per_k(g("rx-pkts") + g("tx-pkts")),
            if reqs > 0.0 { format!("{:.0}", busy / reqs) } else { "-".into() },
            pct(g("us-stack")),
            pct(g("us-serve")),
            pct(g("us-rx")),
            pct(g("us-misc")),
            pct(g("us-store") - g("us-report")),
            pct(g("us-delay")),
            // Xen's running time against the loop's busy time: the rest
            // was runnable (dom0 had the CPU) or not in the loop.
            pct(g("us-running")),
        ]);
    }
    format!(
        "\nRust guest per 1,000 requests (counted in the guest; hcalls = traps for EVTCHNOP_send + set_timer_op + SCHEDOP_block, a block's multicall counted once; \
         busy = time not blocked, per request, and its shares):\n{}",
        t.render()
    )
}

fn ms(us: f64) -> String {
    format!("{:.1}", us / 1000.0)
}

/// The table: one line per point, both sides and the ratio of rates.
pub fn table(
    ours: &Side,
    linux: &Side,
    page: &[(String, u64)],
    counters: &[((bool, u32), Snapshot)],
    o: &HttpBenchOptions,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "http benchmark: GET /bench (128-byte body), {} requests per point, dom0 httptool load (epoll); latency in ms",
        o.requests
    );
    if !o.guest_args.is_empty() {
        let _ = writeln!(s, "our guest's settings: {}", o.guest_args.join(" "));
    }
    let _ = writeln!(
        s,
        "{} vCPU(s) each (ours: a shard per vCPU; Linux: as many httptool serve workers)",
        o.vcpus
    );
    let _ = writeln!(
        s,
        "{:<10} {:>7} | {:>9} {:>7} {:>7} {:>7} {:>6} | {:>9} {:>7} {:>7} {:>7} {:>6} | {:>6}",
        "keep-alive",
        "clients",
        "ours/s",
        "p50",
        "p99",
        "max",
        "failed",
        "linux/s",
        "p50",
        "p99",
        "max",
        "failed",
        "ratio"
    );
    for keep in [true, false] {
        for c in CLIENTS {
            let side = |sd: &Side| match sd.get(keep, c) {
                Some(p) => format!(
                    "{:>9.1} {:>7} {:>7} {:>7} {:>6}",
                    p.per_s,
                    ms(p.p50_us),
                    ms(p.p99_us),
                    ms(p.max_us),
                    p.failed + p.non200
                ),
                None => format!("{:>9} {:>7} {:>7} {:>7} {:>6}", "-", "-", "-", "-", "-"),
            };
            let ratio = match (ours.get(keep, c), linux.get(keep, c)) {
                (Some(a), Some(b)) if b.per_s > 0.0 => format!("{:.2}", a.per_s / b.per_s),
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "{:<10} {:>7} | {} | {} | {:>6}",
                if keep { "on" } else { "off" },
                c,
                side(ours),
                side(linux),
                ratio
            );
        }
    }
    if let Some(o) = cpu_per_request(ours) {
        let _ = write!(
            s,
            "\nvCPU time per request (Xen's account, xl vcpu-list, over every point, all vCPUs): ours {o:.0} us"
        );
        if let Some(l) = cpu_per_request(linux) {
            let _ = write!(s, ", Linux {l:.0} us ({:.2}x)", o / l);
        }
        s.push('\n');
        for (who, sd) in [("ours", ours), ("Linux", linux)] {
            if sd.per_vcpu.len() > 1 {
                let v: Vec<String> = sd.per_vcpu.iter().map(|t| format!("{t:.1}")).collect();
                let _ = writeln!(
                    s,
                    "  {who}: vCPU seconds over every point, each vCPU: {}",
                    v.join(", ")
                );
            }
        }
    }
    if !counters.is_empty() {
        s.push_str(&counters_table(counters, ours));
    }
    let f = |k: &str| page.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    if let (Some(heap), Some(sockets), Some(buf), Some(peak), Some(mem)) =
        (f("heap_kib"), f("conn_sockets"), f("conn_buffer_kib"), f("conn_peak"), f("memory_kib"))
    {
        let _ = writeln!(
            s,
            "\nRust guest after the load ({mem} KiB domain): heap {heap} KiB, {sockets} sockets allocated ({buf} KiB of socket buffers), peak {peak} connections at once, max {} (svc.max_conns), refused {}, timed out {}",
            f("conn_max").unwrap_or(0),
            f("conn_refused").unwrap_or(0),
            f("conn_timed_out").unwrap_or(0)
        );
    }
    s
}

/// One point of the JSON report: both sides at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct JsonPoint {
    pub keepalive: bool,
    pub clients: u32,
    pub ours: Option<Point>,
    pub linux: Option<Point>,
}

/// The JSON report (`target/xen/bench/http.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub requests: u32,
    pub vcpus: u32,
    pub body_bytes: u32,
    pub points: Vec<JsonPoint>,
    /// Our guest's status page after the load.
    pub ours_status: std::collections::BTreeMap<String, u64>,
    /// Our guest's counters across each point (differences).
    pub ours_counters: Vec<JsonCounters>,
    /// vCPU µs per request over every point (Xen's account).
    pub ours_cpu_us_per_request: Option<f64>,
    pub linux_cpu_us_per_request: Option<f64>,
}

/// Our guest's counters across one point.
#[derive(Debug, Clone, Serialize)]
pub struct JsonCounters {
    pub keepalive: bool,
    pub clients: u32,
    pub counters: Snapshot,
}

pub fn to_json(
    ours: &Side,
    linux: &Side,
    page: &[(String, u64)],
    counters: &[((bool, u32), Snapshot)],
    o: &HttpBenchOptions,
) -> Report {
    let mut points = Vec::new();
    for keep in [true, false] {
        for c in CLIENTS {
            points.push(JsonPoint {
                keepalive: keep,
                clients: c,
                ours: ours.get(keep, c).copied(),
                linux: linux.get(keep, c).copied(),
            });
        }
    }
    Report {
        requests: o.requests,
        vcpus: o.vcpus,
        body_bytes: 128,
        points,
        ours_status: page.iter().cloned().collect(),
        ours_counters: counters
            .iter()
            .map(|((k, c), d)| JsonCounters { keepalive: *k, clients: *c, counters: d.clone() })
            .collect(),
        ours_cpu_us_per_request: cpu_per_request(ours),
        linux_cpu_us_per_request: cpu_per_request(linux),
    }
}

/// vCPU µs per request over every point, from the side's `VCPU` line.
fn cpu_per_request(sd: &Side) -> Option<f64> {
    sd.cpu.filter(|c| c.1 > 0.0).map(|(s, n)| s * 1e6 / n)
}

/// Runs the benchmark and writes `target/xen/bench/http.{txt,json}`.
pub fn run(o: &HttpBenchOptions) -> Result<()> {
    let t = Instant::now();
    let guest = crate::guest::build(true)?;
    let opts = LabOptions::bench("bench-http", o.kvm, o.verbose, o.xen);
    let lab = Lab::prepare(opts)?;
    let tool = httptool::build(&lab.opts.cache_dir)?;
    let out = crate::bench::out_dir();
    crate::cmd::mkdir(&out)?;
    let ramdisk: Option<PathBuf> = if o.no_linux {
        None
    } else {
        let a = linux_initramfs(&lab.bundle, &tool)?;
        Some(crate::bench::write_ramdisk(&out, "http", &a.to_bytes())?)
    };
    let sc = scenarios(o, &guest.stable, &tool, &lab.bundle.vmlinuz, ramdisk.as_deref());
    let report = lab.boot(&sc)?;
    let (ours, linux, page) = collect(&report);
    let counters =
        report.run(OURS).map(|r| point_counters(&snapshots(&r.console))).unwrap_or_default();
    let text = table(&ours, &linux, &page, &counters, o);
    println!("\n{text}");
    // One vCPU: `http.*` as always; more: `http-vcpus2.*`, beside it.
    let stem = if o.vcpus == 1 { "http".to_string() } else { format!("http-vcpus{}", o.vcpus) };
    crate::report::write(&out, &stem, &text, &to_json(&ours, &linux, &page, &counters, o))?;
    println!("total: {:.0} s", t.elapsed().as_secs_f64());
    let incomplete = (ours.points.len() != 2 * CLIENTS.len()).then(|| {
        format!(
            "the Rust guest's measurements are incomplete: {} of {} points",
            ours.points.len(),
            2 * CLIENTS.len()
        )
    });
    crate::bench::first_problem(ours.problems.iter().chain(&linux.problems), &report, incomplete)
}

fn collect(report: &BootReport) -> (Side, Side, Vec<(String, u64)>) {
    let xl: Vec<String> = report.runs.iter().flat_map(|r| r.xl_output.iter().cloned()).collect();
    (parse_side(OURS, &xl), parse_side(LINUX, &xl), parse_page(OURS, &xl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn sides_page_table_and_json() {
        let lines = s(&[
            "[xl bench] hb-ours HTTPTOOL load conns=16 keepalive=1 requests=10 ok=10 failed=0 non200=0 status503=0 connects=16 ns=1 per_s=500.0 p50_us=1000 p99_us=3000 max_us=4000",
            "[xl bench] hb-linux HTTPTOOL load conns=16 keepalive=1 requests=10 ok=10 failed=0 non200=0 status503=0 connects=16 ns=1 per_s=250.0 p50_us=2000 p99_us=3000 max_us=4000",
            "[xl bench] hb-linux HTTPTOOL load conns=1 keepalive=0 requests=10 ok=9 failed=1 non200=0 status503=0 connects=10 ns=1 per_s=25.0 p50_us=2000 p99_us=3000 max_us=4000",
            "[xl bench] hb-ours VCPU cpu_s=0.8 requests=80",
            "[xl bench] hb-linux VCPU cpu_s=1.6 requests=80",
            "[xl page] hb-ours heap_kib 2048",
            "[xl page] hb-ours conn_peak 16",
        ]);
        let ours = parse_side(OURS, &lines);
        let linux = parse_side(LINUX, &lines);
        assert_eq!(ours.get(true, 16).unwrap().per_s, 500.0);
        assert!(ours.problems.is_empty());
        assert_eq!(linux.problems.len(), 1, "a failed request is a problem");
        assert_eq!((ours.cpu, linux.cpu), (Some((0.8, 80.0)), Some((1.6, 80.0))));
        let page = parse_page(OURS, &lines);
        assert_eq!(page, vec![("heap_kib".into(), 2048), ("conn_peak".into(), 16)]);
        let o = HttpBenchOptions { requests: 10, ..Default::default() };
        let t = table(&ours, &linux, &page, &[], &o);
        assert!(
            t.lines().any(|l| l.starts_with("on") && l.contains("500.0") && l.ends_with("2.00")),
            "{t}"
        );
        assert!(t.contains("ours 10000 us, Linux 20000 us (0.50x)"), "{t}");
        let j = serde_json::to_value(to_json(&ours, &linux, &page, &[], &o)).unwrap();
        assert_eq!(j["points"][1]["clients"], 16);
        assert_eq!(j["points"][1]["ours"]["per_s"], 500.0);
        assert_eq!(j["points"][0]["ours"], serde_json::Value::Null);
        assert_eq!(j["ours_status"]["heap_kib"], 2048);
    }

    #[test]
    fn counters_per_point() {
        let console = s(&[
            "(d1) net: efficiency rx-pkts 10 tx-pkts 10 rx-bytes 0",
            "(d1) net: loop passes 5 polls 10 sends 1 timer-sets 2 blocks 3 us-wait 100 us-total 200",
            "(d1) other",
            "(d1) net: efficiency rx-pkts 2010 tx-pkts 2010 rx-bytes 0",
            "(d1) net: loop passes 1005 polls 2010 sends 501 timer-sets 2 blocks 1003 us-wait 1100 us-total 3200",
        ]);
        let snaps = snapshots(&console);
        assert_eq!(snaps.len(), 2);
        let p = point_counters(&snaps);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, (true, 1));
        assert_eq!(p[0].1["passes"], 1000);
        assert_eq!(p[0].1["rx-pkts"], 2000);
        let lines = s(&["[xl bench] hb-ours HTTPTOOL load conns=1 keepalive=1 requests=1000 ok=1000 failed=0 non200=0 per_s=1.0 p50_us=1 p99_us=1 max_us=1"]);
        let t = counters_table(&p, &parse_side(OURS, &lines));
        // Per 1,000 requests: 1000 passes, 2000 polls, 1500 hypercalls,
        // 4000 packets; 2 us busy per request (3000 us less 1000 waited).
        let row = t.lines().find(|l| l.starts_with("on")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            &cells[2..12],
            ["1000", "0", "0", "2000", "500", "0", "1000", "1500", "4000", "2"],
            "{t}"
        );
    }
}
