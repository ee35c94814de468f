//! `cargo xtask bench boot`: boot time of the Rust guest (`app=hello`, and
//! `app=http` with a vif) against a Linux DomU (Debian's kernel, a
//! busybox initramfs that loads `xen-netfront` and brings `eth0` up), each
//! as PV and as PVH (the same image, `type = "pvh"`), all in one Xen boot,
//! measured by a dom0 script on dom0's clock.
//!
//! Each round creates every kind once, one domain at a time (the next is
//! created only once the last is gone). Per run dom0 records, from
//! `/proc/uptime` (10 ms resolution, checked every 20 ms):
//! - `create`: `xl create` (build + unpause) until it returns;
//! - `console`: create until the guest's console log is non-empty;
//! - `ready`: create until `hello` has shut down (the xl monitor's log), or
//!   until the first reply to dom0's ping (every 50 ms, started before the
//!   create; the guest's MAC is a permanent neighbour entry in dom0, so no
//!   ARP round trip is counted on dom0's side) for `http` and Linux.
//!
//! With `--min-memory` the same runs then find the smallest `memory=` each
//! kind reaches ready in (ascending ladders, first success wins).

use crate::debs::Dom0Bundle;
use crate::report::{self, Spread, Style, Table};
use crate::scenario::{BootReport, GuestRun};
use crate::{cmd, GuestMode, GuestSpec, Lab, LabOptions, Scenario};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// The kinds of guest measured, in round order: each as PV, then as PVH
/// (`-pvh`: the same image or kernel with `type = "pvh"`).
pub const KINDS: &[&str] = &["hello", "http", "linux", "hello-pvh", "http-pvh", "linux-pvh"];

/// The kind without its mode (`http-pvh` -> `http`).
pub fn base(kind: &str) -> &str {
    kind.strip_suffix("-pvh").unwrap_or(kind)
}

/// The mode a kind boots in.
pub fn mode(kind: &str) -> GuestMode {
    if kind.ends_with("-pvh") {
        GuestMode::Pvh
    } else {
        GuestMode::Pv
    }
}

/// The Linux kind of the same mode, which `kind` is compared with.
pub fn linux_of(kind: &str) -> &'static str {
    if mode(kind) == GuestMode::Pvh {
        "linux-pvh"
    } else {
        "linux"
    }
}
/// dom0's bridge address; guests use 192.0.2.x (RFC 5737).
pub const BRIDGE_IP: &str = "192.0.2.1/24";
/// `app=http`'s address and MAC.
pub const HTTP_IP: &str = "192.0.2.20";
/// The Linux DomU's address and MAC.
pub const LINUX_IP: &str = "192.0.2.21";
const HTTP_MAC: &str = "00:16:3e:0c:00:20";
const LINUX_MAC: &str = "00:16:3e:0c:00:21";
/// Memory of the measured runs, MiB.
pub const OURS_MIB: u32 = 32;
/// Memory of the Linux DomU in the measured runs, MiB.
pub const LINUX_MIB: u32 = 256;
/// `--min-memory` ladders (MiB, ascending); PVH starts at its 8 MiB minimum.
pub const LADDER_OURS: &[u32] = &[4, 8, 16, 32];
/// Our guest as PVH.
pub const LADDER_OURS_PVH: &[u32] = &[8, 16, 32];
/// The Linux DomU's ladder.
pub const LADDER_LINUX: &[u32] = &[64, 80, 96, 128, 160, 192, 256];

/// Settings of one `bench boot`.
#[derive(Debug, Clone)]
pub struct BootBenchOptions {
    /// Rounds (each kind once per round).
    pub rounds: u32,
    /// Also find each kind's smallest memory.
    pub min_memory: bool,
    /// Try KVM.
    pub kvm: bool,
    /// Echo every serial line.
    pub verbose: bool,
    /// The Xen release (`None`: `$XENPV_XEN`, else 4.17).
    pub xen: Option<crate::release::XenRelease>,
}

/// The Linux DomU's `/init`: netfront up with an address, a ready marker,
/// then idle until destroyed. `bench_ip=` comes from the kernel command line.
pub const LINUX_INIT: &str = include_str!("linux-domu/boot-init.sh");

/// The Linux DomU's initramfs: busybox, `xen-netfront` (and its
/// dependencies) from the lab's module set, `/init`.
pub fn linux_initramfs(bundle: &Dom0Bundle) -> Result<crate::cpio::Archive> {
    let mut a = crate::linuxbench::busybox_archive(
        bundle,
        &["sh", "mount", "insmod", "cat", "cut", "sed", "tr", "ip", "sleep", "echo"],
    )?;
    crate::linuxbench::add_modules(&mut a, bundle, &["xen-netfront"])?;
    a.file("init", 0o755, LINUX_INIT);
    Ok(a)
}

/// The dom0 side's settings, for `dom0/bench-boot.sh`.
fn dom0_settings() -> String {
    format!(
        "BB_BRIDGE_IP={BRIDGE_IP}\nBB_HTTP_IP={HTTP_IP}\nBB_HTTP_MAC={HTTP_MAC}\nBB_LINUX_IP={LINUX_IP}\nBB_LINUX_MAC={LINUX_MAC}\n. {}\nbb_setup\n",
        crate::dom0::BENCH_BOOT.0
    )
}

/// Per-run time limit, seconds.
fn limit(kind: &str) -> u64 {
    if base(kind) == "linux" {
        120
    } else {
        60
    }
}

/// The dom0 script: `rounds` rounds of every kind, then the ladders.
pub fn script(o: &BootBenchOptions) -> String {
    let mut s = dom0_settings();
    for r in 1..=o.rounds {
        for k in KINDS {
            let mem = if base(k) == "linux" { LINUX_MIB } else { OURS_MIB };
            let _ = writeln!(s, "bb_run {k} {k}-{r} {mem} {} \"$(bb_ip {k})\"", limit(k));
        }
    }
    if o.min_memory {
        for k in KINDS {
            let ladder = ladder(k);
            let mems: Vec<String> = ladder.iter().map(|m| m.to_string()).collect();
            let _ = writeln!(
                s,
                "for m in {}; do bb_run {k} {k}-min$m $m {} \"$(bb_ip {k})\" && break; done",
                mems.join(" "),
                limit(k)
            );
        }
    }
    s
}

/// The `--min-memory` ladder of a kind.
fn ladder(kind: &str) -> &'static [u32] {
    match (base(kind), mode(kind)) {
        ("linux", _) => LADDER_LINUX,
        (_, GuestMode::Pv) => LADDER_OURS,
        _ => LADDER_OURS_PVH,
    }
}

/// The guest specs the script clones (`/etc/xen-lab/guests/bb-KIND.cfg`),
/// one per kind. PVH kinds run with `tsc_mode = "native"`: under QEMU's
/// emulated SVM, Xen cannot emulate an intercepted `rdtscp` and Linux as
/// PVH spins on one forever (see `bench migrate`); our PVH guest gets the
/// same, so the two compare like with like.
pub fn guests(kernel: &Path, vmlinuz: &Path, ramdisk: &Path) -> Vec<GuestSpec> {
    let vif = |mac: &str| format!("vif = ['mac={mac},bridge=xenbr0']");
    KINDS
        .iter()
        .map(|&k| {
            let name = format!("bb-{k}");
            let mut g = match base(k) {
                "hello" => GuestSpec::new(&name, kernel, "hello").memory(OURS_MIB),
                "http" => {
                    let mut g = GuestSpec::new(&name, kernel, "http")
                        .memory(OURS_MIB)
                        .args(&[format!("ip={HTTP_IP}/24")]);
                    g.extra_config.push(vif(HTTP_MAC));
                    g
                }
                _ => {
                    let mut g =
                        GuestSpec::new(&name, vmlinuz, "linux").memory(LINUX_MIB).ramdisk(ramdisk);
                    g.cmdline = format!("console=hvc0 quiet bench_ip={LINUX_IP}/24");
                    g.extra_config.push(vif(LINUX_MAC));
                    g
                }
            }
            .mode(mode(k));
            if mode(k) == GuestMode::Pvh {
                g.extra_config.push("tsc_mode = \"native\"".into());
            }
            g
        })
        .collect()
}

/// One measured run, from its `[xl boot]` line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Domain name (`hello-1`, `linux-min96`).
    pub name: String,
    /// `hello`, `http` or `linux`.
    pub kind: String,
    /// Memory, MiB.
    #[serde(rename = "mem_mib")]
    pub mem: u32,
    /// `ready`, `timeout`, `died`, `create-failed`.
    pub result: String,
    /// `xl create` until it returned, ms.
    pub create_ms: Option<u64>,
    /// Create until the first console output, ms.
    pub console_ms: Option<u64>,
    /// Create until ready, ms.
    pub ready_ms: Option<u64>,
}

/// Parses `[xl boot] name=.. kind=.. mem=.. result=.. create_cs=.. console_cs=.. ready_cs=..`.
pub fn parse_sample(line: &str) -> Option<Sample> {
    let at = line.find("[xl boot] ")?;
    let mut s = Sample::default();
    for w in line[at + 10..].split_whitespace() {
        let (k, v) = w.split_once('=').unwrap_or((w, ""));
        let cs = || v.parse::<u64>().ok().map(|c| c * 10);
        match k {
            "name" => s.name = v.to_string(),
            "kind" => s.kind = v.to_string(),
            "mem" => s.mem = v.parse().ok()?,
            "result" => s.result = v.to_string(),
            "create_cs" => s.create_ms = cs(),
            "console_cs" => s.console_ms = cs(),
            "ready_cs" => s.ready_ms = cs(),
            _ => {}
        }
    }
    (!s.name.is_empty() && !s.kind.is_empty()).then_some(s)
}

/// `--min-memory` for one kind: the smallest size that reached ready, and
/// the sizes that failed with why.
pub type MinMemory = (Option<u32>, Vec<(u32, String)>);

/// Reads one figure of a sample.
pub type Figure = fn(&Sample) -> Option<u64>;

/// Everything one `bench boot` found.
#[derive(Debug, Clone, Default)]
pub struct BootBench {
    /// Every run, in order.
    pub samples: Vec<Sample>,
    /// Xen's version.
    pub xen: String,
    /// The CPU model dom0 saw.
    pub cpu: String,
    /// dom0's kernel (also the Linux DomU's).
    pub kernel: String,
    /// First `boot timeline:` and `footprint:` lines of our guests, per kind.
    pub guest_lines: Vec<(String, String)>,
    /// The Linux DomU's `meminfo` line.
    pub linux_meminfo: Option<String>,
    /// Sizes in bytes: our stripped image, Linux's vmlinuz, its initramfs.
    pub sizes: Vec<(String, u64)>,
    /// Runs that did not reach ready, and boot failures.
    pub problems: Vec<String>,
    /// The host's load average during the boot.
    pub load: Option<report::Load>,
}

impl BootBench {
    /// The measured (not `--min-memory`) runs of `kind` that reached ready.
    pub fn measured(&self, kind: &str) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.kind == kind && !s.name.contains("-min") && s.result == "ready")
            .collect()
    }

    /// The spread of one figure of `kind`.
    pub fn spread(&self, kind: &str, f: Figure) -> Option<Spread> {
        Spread::of(&self.measured(kind).iter().filter_map(|s| f(s)).collect::<Vec<_>>())
    }

    /// The smallest memory `kind` reached ready in during `--min-memory`,
    /// and the sizes it failed at.
    pub fn min_memory(&self, kind: &str) -> Option<MinMemory> {
        let v: Vec<&Sample> =
            self.samples.iter().filter(|s| s.kind == kind && s.name.contains("-min")).collect();
        if v.is_empty() {
            return None;
        }
        let ok = v.iter().filter(|s| s.result == "ready").map(|s| s.mem).min();
        let failed =
            v.iter().filter(|s| s.result != "ready").map(|s| (s.mem, s.result.clone())).collect();
        Some((ok, failed))
    }
}

const FIGURES: &[(&str, Figure)] = &[
    ("xl create returns", |s| s.create_ms),
    ("create -> first console output", |s| s.console_ms),
    ("create -> ready", |s| s.ready_ms),
];

fn label(kind: &str) -> &'static str {
    match kind {
        "hello" => "Rust app=hello",
        "http" => "Rust app=http+vif",
        "linux" => "Linux PV DomU",
        "hello-pvh" => "Rust app=hello (PVH)",
        "http-pvh" => "Rust app=http+vif (PVH)",
        _ => "Linux PVH DomU",
    }
}

fn ready_means(kind: &str) -> &'static str {
    match base(kind) {
        "hello" => "powered off",
        _ => "first ping reply",
    }
}

/// Collects the samples and the guests' own lines from a boot.
pub fn collect(report: &BootReport, sizes: Vec<(String, u64)>) -> BootBench {
    let mut b = BootBench {
        xen: report.xen_version.clone().unwrap_or_default(),
        sizes,
        ..Default::default()
    };
    if let Some(f) = &report.failure {
        b.problems.push(format!("boot: {f}"));
    }
    if let Some(log) = report.serial_log.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
        if let Some(l) = log.lines().find(|l| l.contains("BOOTBENCH-ENV ")) {
            if let Some(e) = crate::bench::parse_env(&l.replace("BOOTBENCH-ENV", "BENCH-ENV")) {
                b.cpu = e.get("cpu").cloned().unwrap_or_default();
                b.kernel = e.get("kernel").cloned().unwrap_or_default();
            }
        }
    }
    for run in &report.runs {
        let Some(s) = run.xl_output.iter().find_map(|l| parse_sample(l)) else {
            b.problems.push(format!("{}: no timing line (result {})", run.name, run.result));
            continue;
        };
        if s.result != "ready" && !s.name.contains("-min") {
            b.problems.push(format!("{}: {} ({})", s.name, s.result, console_tail(run)));
        }
        if s.result == "ready"
            && base(&s.kind) != "linux"
            && !b.guest_lines.iter().any(|(k, _)| k == &s.kind)
        {
            let pick = |p: &str| run.console.iter().find(|l| l.contains(p)).cloned();
            if let (Some(t), Some(f)) = (pick("boot timeline:"), pick("footprint:")) {
                b.guest_lines.push((s.kind.clone(), format!("{t}\n{f}")));
            }
        }
        if base(&s.kind) == "linux" && b.linux_meminfo.is_none() {
            b.linux_meminfo = run.console.iter().find_map(|l| {
                l.split_once("linux-boot: meminfo ").map(|(_, m)| m.trim().to_string())
            });
        }
        b.samples.push(s);
    }
    b
}

fn console_tail(run: &GuestRun) -> String {
    let tail: Vec<&str> = run.console.iter().rev().take(2).rev().map(String::as_str).collect();
    if tail.is_empty() {
        "no console output".into()
    } else {
        format!("console ends: {}", tail.join(" | "))
    }
}

fn fmt_spread(s: Option<Spread>) -> String {
    match s {
        None => "-".into(),
        Some(s) => format!("{} [{}-{}]", s.median, s.min, s.max),
    }
}

/// Linux median / ours median.
pub fn ratio(ours: Option<Spread>, linux: Option<Spread>) -> Option<f64> {
    let (o, l) = (ours?, linux?);
    (o.median > 0).then(|| l.median as f64 / o.median as f64)
}

/// One line on where it ran.
pub fn environment(b: &BootBench, o: &BootBenchOptions) -> String {
    format!(
        "Xen {}, {} emulation (QEMU), CPU \"{}\", dom0 and Linux DomU kernel {}, {} round(s); Rust guest {} MiB, Linux DomU {} MiB, 1 vCPU each; host load average (1 min) during the boot {}",
        if b.xen.is_empty() { "?" } else { &b.xen },
        if o.kvm { "KVM (hardware)" } else { "TCG (software)" },
        if b.cpu.is_empty() { "?" } else { &b.cpu },
        if b.kernel.is_empty() { "?" } else { &b.kernel },
        o.rounds,
        OURS_MIB,
        LINUX_MIB,
        b.load.map_or("?".to_string(), |l| l.to_string())
    )
}

/// The console (and README) table.
pub fn table(b: &BootBench, o: &BootBenchOptions) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Boot time, ms on dom0's clock: median [min-max] of the rounds that reached ready"
    );
    let _ = writeln!(s, "{}", environment(b, o));
    let _ = writeln!(s);
    let mut t =
        Table::new(Style::Markdown).left("guest (ms, median [min-max])", 26).left("mode", 4);
    for (name, _) in FIGURES {
        t = t.right(name, 22);
    }
    t = t.right("Linux/this (ready)", 18);
    for k in KINDS {
        let mut cells = vec![label(k).to_string(), mode(k).name().to_uppercase()];
        for (_, f) in FIGURES {
            cells.push(fmt_spread(b.spread(k, *f)));
        }
        let ready = |k: &str| b.spread(k, FIGURES[2].1);
        cells.push(if base(k) == "linux" {
            "-".into()
        } else {
            ratio(ready(k), ready(linux_of(k))).map_or("-".to_string(), |v| format!("{v:.1}x"))
        });
        t.row(cells);
    }
    s.push_str(&t.render());
    let counted: Vec<String> =
        KINDS.iter().map(|k| format!("{} {}", label(k), b.measured(k).len())).collect();
    let _ = writeln!(
        s,
        "\nready = {} (hello), {} (http, Linux: dom0 pings every 50 ms from before the create); PVH guests run with tsc_mode = \"native\"; rounds counted: {}",
        ready_means("hello"),
        ready_means("http"),
        counted.join(", ")
    );
    if !b.sizes.is_empty() {
        let v: Vec<String> =
            b.sizes.iter().map(|(n, z)| format!("{n} {} KiB", z.div_ceil(1024))).collect();
        let _ = writeln!(s, "sizes: {}", v.join(", "));
    }
    for (k, lines) in &b.guest_lines {
        for l in lines.lines() {
            let _ = writeln!(s, "{k}: {l}");
        }
    }
    if let Some(m) = &b.linux_meminfo {
        let _ = writeln!(s, "linux: /proc/meminfo when ready: {m}");
    }
    for k in KINDS {
        if let Some((ok, failed)) = b.min_memory(k) {
            let f: Vec<String> = failed.iter().map(|(m, r)| format!("{m} MiB {r}")).collect();
            let _ = writeln!(
                s,
                "smallest memory, {}: {}{}",
                label(k),
                ok.map_or("none of the sizes tried".to_string(), |m| format!("{m} MiB")),
                if f.is_empty() { String::new() } else { format!(" (failed: {})", f.join(", ")) }
            );
        }
    }
    for p in &b.problems {
        let _ = writeln!(s, "problem: {p}");
    }
    s
}

/// The JSON report (`boot.json`).
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub benchmark: &'static str,
    /// `tcg` or `kvm`.
    pub emulation: &'static str,
    pub xen: &'a str,
    pub cpu: &'a str,
    pub kernel: &'a str,
    pub rounds: u32,
    pub clock: &'static str,
    pub host_load: Option<report::Load>,
    pub environment: String,
    /// By kind (`hello`, `http`, `linux`, and the same with `-pvh`).
    pub kinds: BTreeMap<&'static str, KindReport>,
    pub sizes_bytes: BTreeMap<&'a str, u64>,
    pub guest_lines: BTreeMap<&'a str, &'a str>,
    pub linux_meminfo: Option<&'a str>,
    pub samples: &'a [Sample],
    pub problems: &'a [String],
}

/// One kind's figures in [`Report`].
#[derive(Debug, Serialize)]
pub struct KindReport {
    pub label: &'static str,
    /// `pv` or `pvh`.
    pub mode: &'static str,
    pub ready_means: &'static str,
    /// Rounds that reached ready.
    pub rounds: usize,
    pub create_ms: FigureReport,
    pub console_ms: FigureReport,
    pub ready_ms: FigureReport,
    pub min_memory_mib: Option<u32>,
}

/// One figure of a kind, and Linux's (of the same mode) against it.
#[derive(Debug, Serialize)]
pub struct FigureReport {
    pub spread: Option<Spread>,
    pub linux_over_this: Option<f64>,
}

/// The JSON report.
pub fn to_json<'a>(b: &'a BootBench, o: &BootBenchOptions) -> Report<'a> {
    let kinds = KINDS
        .iter()
        .map(|&k| {
            let fig = |i: usize| {
                let f = FIGURES[i].1;
                let (x, l) = (b.spread(k, f), b.spread(linux_of(k), f));
                FigureReport {
                    spread: x,
                    linux_over_this: ratio(x, l).map(|r| report::round(r, 3)),
                }
            };
            let kind = KindReport {
                label: label(k),
                mode: mode(k).name(),
                ready_means: ready_means(k),
                rounds: b.measured(k).len(),
                create_ms: fig(0),
                console_ms: fig(1),
                ready_ms: fig(2),
                min_memory_mib: b.min_memory(k).and_then(|(ok, _)| ok),
            };
            (k, kind)
        })
        .collect();
    Report {
        benchmark: "boot",
        emulation: if o.kvm { "kvm" } else { "tcg" },
        xen: &b.xen,
        cpu: &b.cpu,
        kernel: &b.kernel,
        rounds: o.rounds,
        clock: "dom0 /proc/uptime, 10 ms resolution, polled every 20 ms",
        host_load: b.load,
        environment: environment(b, o),
        kinds,
        sizes_bytes: b.sizes.iter().map(|(n, z)| (n.as_str(), *z)).collect(),
        guest_lines: b.guest_lines.iter().map(|(k, l)| (k.as_str(), l.as_str())).collect(),
        linux_meminfo: b.linux_meminfo.as_deref(),
        samples: &b.samples,
        problems: &b.problems,
    }
}

fn file_size(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// Runs the benchmark and writes the reports. Errors are one line.
pub fn run(o: &BootBenchOptions) -> Result<()> {
    if o.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let t = Instant::now();
    let guest = crate::guest::build(true)?;
    println!("[bench] guest built: {}", guest.stable.display());
    let out = crate::bench::out_dir();
    cmd::mkdir(&out)?;
    let opts = LabOptions::bench("bench-boot", o.kvm, o.verbose, o.xen);
    let lab = Lab::prepare(opts)?;
    let archive = linux_initramfs(&lab.bundle).context("Linux DomU initramfs")?;
    let rd = crate::bench::write_ramdisk(&out, "boot", &archive.to_bytes())?;
    let guests = guests(&guest.stable, &lab.bundle.vmlinuz, &rd);
    let runs = o.rounds as u64 * KINDS.len() as u64
        + if o.min_memory { KINDS.iter().map(|k| ladder(k).len() as u64).sum() } else { 0 };
    let mut sc = Scenario::script("bench-boot", guests, &script(o));
    // Each run: its limit at most, plus teardown; the guests' own timeouts
    // (60 s each) already count in the budget.
    sc.slack = Duration::from_secs(runs * (limit("linux") + 15));
    println!(
        "[bench] boot: {} round(s) of {}{}",
        o.rounds,
        KINDS.join(", "),
        if o.min_memory { ", then the smallest memory of each" } else { "" }
    );
    let sampler = report::LoadSampler::start();
    let report = lab.boot(&[sc]);
    let load = sampler.finish();
    let report = report?;
    let sizes: Vec<(String, u64)> = [
        ("Rust guest stripped ELF", guest.stripped.as_path()),
        ("Linux vmlinuz", lab.bundle.vmlinuz.as_path()),
        ("Linux initramfs", rd.as_path()),
    ]
    .iter()
    .filter_map(|(n, p)| file_size(p).map(|z| (n.to_string(), z)))
    .collect();
    let mut b = collect(&report, sizes);
    b.load = load;
    let text = table(&b, o);
    println!("\n{text}");
    report::write(&out, "boot", &text, &to_json(&b, o))?;
    println!("total: {:.0} s", t.elapsed().as_secs_f64());
    for k in KINDS {
        if b.measured(k).is_empty() {
            bail!(
                "no run of {} reached ready{}",
                label(k),
                b.problems.first().map_or(String::new(), |p| format!(": {p}"))
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::GuestResult;

    #[test]
    fn parses_samples() {
        let s = parse_sample("[xl boot] name=http-2 kind=http mem=32 result=ready create_cs=45 console_cs=61 ready_cs=310").unwrap();
        assert_eq!((s.create_ms, s.console_ms, s.ready_ms), (Some(450), Some(610), Some(3100)));
        assert_eq!((s.kind.as_str(), s.mem), ("http", 32));
        let s = parse_sample(
            "[xl boot] name=linux-min64 kind=linux mem=64 result=create-failed create_cs=12",
        )
        .unwrap();
        assert_eq!((s.console_ms, s.ready_ms), (None, None));
        let s = parse_sample(
            "[xl boot] name=a kind=hello mem=4 result=timeout create_cs=1 console_cs= ready_cs=",
        )
        .unwrap();
        assert_eq!(s.console_ms, None);
        assert!(parse_sample("[xl boot] garbage").is_none());
        assert!(parse_sample("[xl boot] name=a kind=b mem=x").is_none());
    }

    fn run(name: &str, xl: &str, console: &[&str]) -> GuestRun {
        let mut r = GuestRun::new(name, "bench-boot");
        r.result = GuestResult::Poweroff;
        r.xl_output = vec![xl.to_string()];
        r.console = console.iter().map(|s| s.to_string()).collect();
        r
    }

    #[test]
    fn table_ratios_and_minimum_memory() {
        let report = BootReport {
            runs: vec![
                run("hello-1", "[xl boot] name=hello-1 kind=hello mem=32 result=ready create_cs=50 console_cs=60 ready_cs=100", &["boot timeline: console 0.1 ms", "footprint: image 664 KiB"]),
                run("http-1", "[xl boot] name=http-1 kind=http mem=32 result=ready create_cs=60 console_cs=70 ready_cs=300", &[]),
                run("linux-1", "[xl boot] name=linux-1 kind=linux mem=256 result=ready create_cs=200 console_cs=400 ready_cs=1200", &["linux-boot: meminfo MemTotal 1 kB"]),
                run("linux-2", "[xl boot] name=linux-2 kind=linux mem=256 result=timeout create_cs=200", &["Kernel panic"]),
                run("http-min4", "[xl boot] name=http-min4 kind=http mem=4 result=died create_cs=20", &[]),
                run("http-min8", "[xl boot] name=http-min8 kind=http mem=8 result=ready create_cs=20 console_cs=30 ready_cs=200", &[]),
                run("hello-pvh-1", "[xl boot] name=hello-pvh-1 kind=hello-pvh mem=32 result=ready create_cs=50 console_cs=60 ready_cs=200", &[]),
                run("linux-pvh-1", "[xl boot] name=linux-pvh-1 kind=linux-pvh mem=256 result=ready create_cs=100 console_cs=300 ready_cs=500", &[]),
            ],
            ..BootReport::default()
        };
        let b = collect(&report, vec![("img".into(), 2048)]);
        assert_eq!(b.measured("linux").len(), 1);
        assert_eq!(b.spread("hello", |s| s.ready_ms).unwrap().median, 1000);
        assert_eq!(
            ratio(b.spread("hello", |s| s.ready_ms), b.spread("linux", |s| s.ready_ms)),
            Some(12.0)
        );
        assert_eq!(b.min_memory("http"), Some((Some(8), vec![(4, "died".to_string())])));
        assert_eq!(b.min_memory("hello"), None);
        let o =
            BootBenchOptions { rounds: 2, min_memory: true, kvm: false, verbose: false, xen: None };
        let t = table(&b, &o);
        assert!(t.contains("12.0x"), "{t}");
        // PVH against Linux as PVH: 5000 / 2000 ms.
        assert!(t.contains("| Rust app=hello (PVH)"), "{t}");
        assert!(t.contains("2.5x"), "{t}");
        assert!(
            t.contains("smallest memory, Rust app=http+vif: 8 MiB (failed: 4 MiB died)"),
            "{t}"
        );
        assert!(t.contains("problem: linux-2: timeout (console ends: Kernel panic)"), "{t}");
        assert!(t.contains("hello: footprint: image 664 KiB"), "{t}");
        assert!(b.problems.iter().all(|p| !p.contains('\n')));
        let j = serde_json::to_value(to_json(&b, &o)).unwrap();
        assert_eq!(j["kinds"]["http"]["min_memory_mib"], 8, "{j}");
        assert_eq!(j["kinds"]["hello-pvh"]["mode"], "pvh", "{j}");
        assert_eq!(j["kinds"]["hello-pvh"]["ready_ms"]["linux_over_this"], 2.5, "{j}");
        assert_eq!(j["kinds"]["hello"]["ready_ms"]["linux_over_this"], 12.0, "{j}");
        assert_eq!(j["linux_meminfo"], "MemTotal 1 kB", "{j}");
        assert_eq!(j["samples"][0]["mem_mib"].as_u64(), Some(u64::from(b.samples[0].mem)), "{j}");
    }

    #[test]
    fn script_has_rounds_and_ladders() {
        let o =
            BootBenchOptions { rounds: 2, min_memory: true, kvm: false, verbose: false, xen: None };
        let s = script(&o);
        assert!(s.contains("bb_run linux linux-2 256 120"));
        assert!(s.contains("for m in 4 8 16 32; do bb_run http http-min$m $m 60"));
        assert!(
            s.contains("BB_HTTP_IP=192.0.2.20\n") && s.contains("BB_HTTP_MAC=00:16:3e:0c:00:20\n")
        );
        assert!(s.contains(". /etc/xen-lab/bench-boot.sh\nbb_setup\n"));
        assert!(crate::dom0::BENCH_BOOT.1.contains("bb_run() {"));
        assert!(s.contains("bb_run hello-pvh hello-pvh-2 32 60 \"$(bb_ip hello-pvh)\""));
        assert!(s.contains("bb_run linux-pvh linux-pvh-1 256 120"));
        assert!(s.contains("for m in 8 16 32; do bb_run http-pvh http-pvh-min$m $m 60"));
        let g = guests(Path::new("g.elf"), Path::new("vmlinuz"), Path::new("rd"));
        let names: Vec<&str> = g.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            ["bb-hello", "bb-http", "bb-linux", "bb-hello-pvh", "bb-http-pvh", "bb-linux-pvh"]
        );
        for x in &g {
            let pvh = x.name.ends_with("-pvh");
            assert_eq!(x.mode, if pvh { GuestMode::Pvh } else { GuestMode::Pv }, "{}", x.name);
            assert_eq!(x.extra_config.iter().any(|l| l.contains("tsc_mode")), pvh, "{}", x.name);
        }
        assert!(LINUX_INIT.contains("linux-boot: ready"));
    }
}
