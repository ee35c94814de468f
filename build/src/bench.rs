//! `cargo xtask bench hypercall`: hypercall latency of the Rust guest
//! (`app=bench`) and of a Linux PV DomU (a kernel module, see
//! [`crate::linuxbench`]) on the same Xen in the same boot, per QEMU CPU
//! model (AMD: no XPTI; Intel: Xen isolates PV page tables, XPTI).
//!
//! Both sides print `BENCH name=N iters=I per=K cycles=a/b/c/d ns=a/b/c/d`
//! lines; this module parses them, takes the median of each run's median
//! with the spread across runs, and writes a console table, a JSON file and
//! a PNG chart under `target/xen/bench/`.

use crate::report::{self, Style, Table};
use crate::scenario::{BootReport, GuestResult, GuestRun};
use crate::{GuestSpec, Lab, LabOptions, Scenario};
use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One `BENCH` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Figure {
    /// Measurement name.
    pub name: String,
    /// Samples taken.
    pub iters: u64,
    /// Figures are per item of a batch of this size.
    pub per: u64,
    /// min / median / p99 / max in TSC cycles.
    pub cycles: [u64; 4],
    /// The same in ns.
    pub ns: [u64; 4],
    /// Samples at or below the timer's own median, reported as 0
    /// (`clamped=`; our guest only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clamped: Option<u64>,
    /// Round trip: sends whose handler ran only after the send returned
    /// (`late=`; our guest only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late: Option<u64>,
}

/// One `BENCH-CHECK name=N result=pass|fail detail` line of our guest: a
/// condition that must hold on every run (not a timing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Check name (one of [`CHECKS`]).
    pub name: String,
    /// `result=pass`.
    pub pass: bool,
    /// What was counted.
    pub detail: String,
}

/// One complete run of the suite (one guest console, or one `BENCH-RUN`
/// section of the Linux module's output).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuiteRun {
    /// `key=value` pairs of `BENCH-ENV` (`cpu` unquoted).
    pub env: BTreeMap<String, String>,
    /// The figures in order.
    pub figures: Vec<Figure>,
    /// `BENCH-ERROR` lines.
    pub errors: Vec<String>,
    /// `BENCH-CHECK` lines (our guest).
    pub checks: Vec<Check>,
}

impl SuiteRun {
    /// The figure called `name`.
    pub fn get(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// The measurements `app=bench` must report (the Linux module reports the
/// same names).
pub const EXPECTED: &[&str] = &[
    "tsc_timer_pair",
    "function_call",
    "xen_version",
    "sched_yield",
    "evtchn_send",
    "evtchn_send_upcall_handler_roundtrip",
    "mmu_update_1",
    "mmu_update_64_per_entry",
    "mmu_update_512_per_entry",
    "update_va_mapping_invlpg",
    "mmuext_tlb_flush_local",
    "multicall_32_xen_version_total",
    "separate_32_xen_version_total",
    "xenstore_read_roundtrip",
    "grant_access_end_access",
    "gnttab_copy_4k",
];

/// The `BENCH-CHECK` lines `app=bench` prints (guest/src/bench/run.rs):
/// each call succeeded and had its effect. None of them depends on timing.
pub const CHECKS: &[&str] = &[
    "xen_version_answers",
    "sched_yield_succeeds",
    "evtchn_send_marks_pending",
    "roundtrip_one_handler_run_per_send",
    "mmu_update_applies_every_entry",
    "update_va_mapping_succeeds",
    "mmuext_tlb_flush_succeeds",
    "multicall_runs_all_32",
    "separate_32_answer",
    "grant_access_end_access_succeeds",
    "gnttab_copy_copies",
    "xenstore_read_answers",
];

/// The page-table figures of a PV run, and what a PVH run reports instead
/// (`BENCH-ENV mode=pvh`: native page tables, no `mmu_update`).
pub const PV_PAGING: &[&str] = &[
    "mmu_update_1",
    "mmu_update_64_per_entry",
    "mmu_update_512_per_entry",
    "update_va_mapping_invlpg",
    "mmuext_tlb_flush_local",
];
/// See [`PV_PAGING`].
pub const PVH_PAGING: &[&str] = &["pte_write_invlpg", "cr3_reload"];
/// The page-table checks of a PV run, and their PVH replacements.
pub const PV_PAGING_CHECKS: &[&str] =
    &["mmu_update_applies_every_entry", "update_va_mapping_succeeds", "mmuext_tlb_flush_succeeds"];
/// See [`PV_PAGING_CHECKS`].
pub const PVH_PAGING_CHECKS: &[&str] = &["pte_write_applies", "cr3_reload_keeps_root"];

/// The figures across vCPUs, in a run with a second vCPU (`BENCH-ENV
/// vcpus=2`, issue 21): an IPI round trip, a one-page TLB shootdown, and
/// (PV only: no `mmuext_op` in an HVM container) `MMUEXT_INVLPG_MULTI`
/// alone. The Linux module reports the same names.
pub const SMP: &[&str] = &["ipi_roundtrip", "tlb_shootdown_1_page", "mmuext_invlpg_multi"];
/// The checks of [`SMP`] (our guest), the last one PV only.
pub const SMP_CHECKS: &[&str] = &[
    "ipi_runs_once_on_its_target",
    "tlb_shootdown_reaches_the_other_vcpu",
    "mmuext_invlpg_multi_succeeds",
];

/// Whether a run had a second vCPU (`BENCH-ENV vcpus=N`, N at least 2).
pub fn is_smp_run(run: &SuiteRun) -> bool {
    run.env.get("vcpus").and_then(|v| v.parse::<u32>().ok()).is_some_and(|n| n >= 2)
}

/// [`SMP`] (or [`SMP_CHECKS`]) as `run` reports them: none with one vCPU,
/// the last one not as PVH.
fn smp_for(run: &SuiteRun, all: &[&'static str]) -> Vec<&'static str> {
    if !is_smp_run(run) {
        return Vec::new();
    }
    let n = if is_pvh_run(run) { all.len() - 1 } else { all.len() };
    all[..n].to_vec()
}

/// Every figure name a table shows, in order.
pub fn all_figures() -> impl Iterator<Item = &'static &'static str> {
    EXPECTED.iter().chain(SMP)
}

/// Whether a run came from a PVH guest (`BENCH-ENV mode=pvh`).
pub fn is_pvh_run(run: &SuiteRun) -> bool {
    run.env.get("mode").is_some_and(|m| m == "pvh")
}

/// The figures `run` must have: [`EXPECTED`], with the page-table figures
/// of its mode.
pub fn expected_for(run: &SuiteRun) -> Vec<&'static str> {
    let mut v = swap(EXPECTED, PV_PAGING, PVH_PAGING, is_pvh_run(run));
    v.extend(smp_for(run, SMP));
    v
}

/// The checks `run` must have: [`CHECKS`], with the page-table checks of
/// its mode.
pub fn checks_for(run: &SuiteRun) -> Vec<&'static str> {
    let mut v = swap(CHECKS, PV_PAGING_CHECKS, PVH_PAGING_CHECKS, is_pvh_run(run));
    v.extend(smp_for(run, SMP_CHECKS));
    v
}

fn swap(
    all: &[&'static str],
    pv: &[&'static str],
    pvh: &[&'static str],
    is_pvh: bool,
) -> Vec<&'static str> {
    if !is_pvh {
        return all.to_vec();
    }
    let mut v: Vec<&str> = all.iter().copied().filter(|n| !pv.contains(n)).collect();
    v.extend_from_slice(pvh);
    v
}

/// How many samples figure `name` takes when the guest runs with `iters`
/// (`BENCH-ENV iters=`): the guest's plan (guest/src/bench/stats.rs,
/// `Plan`). `None` for a name not in [`EXPECTED`].
pub fn expected_samples(name: &str, iters: u64) -> Option<u64> {
    let iters = iters.max(1);
    Some(match name {
        "mmu_update_64_per_entry"
        | "multicall_32_xen_version_total"
        | "separate_32_xen_version_total" => iters.div_ceil(4),
        "mmu_update_512_per_entry" => iters.div_ceil(16),
        "xenstore_read_roundtrip" => (iters / 20).max(20),
        n if EXPECTED.contains(&n) || PVH_PAGING.contains(&n) || SMP.contains(&n) => iters,
        _ => return None,
    })
}

/// Timing comparisons, reported (never judged): `(name, numerator,
/// denominator)`, each a figure of [`EXPECTED`]. The guest prints the same
/// as `BENCH-RATIO` lines.
pub const RATIOS: &[(&str, &str, &str)] = &[
    ("mmu_512_per_entry_vs_single", "mmu_update_512_per_entry", "mmu_update_1"),
    ("multicall_vs_separate", "multicall_32_xen_version_total", "separate_32_xen_version_total"),
    ("roundtrip_vs_send", "evtchn_send_upcall_handler_roundtrip", "evtchn_send"),
    ("xenstore_read_vs_null", "xenstore_read_roundtrip", "xen_version"),
];

/// `num / den` of two medians (cycles), `None` if either is missing or the
/// denominator is 0 (at or below the timer's cost).
pub fn median_ratio(num: Option<Across>, den: Option<Across>) -> Option<f64> {
    let (n, d) = (num?, den?);
    (d.cycles.median > 0).then(|| n.cycles.median as f64 / d.cycles.median as f64)
}

fn quad(s: &str) -> Option<[u64; 4]> {
    let v: Vec<u64> = s.split('/').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    <[u64; 4]>::try_from(v).ok()
}

/// Parses a `BENCH name=...` line (possibly after other text).
pub fn parse_figure(line: &str) -> Option<Figure> {
    let at = line.find("BENCH name=")?;
    let mut f = Figure {
        name: String::new(),
        iters: 0,
        per: 1,
        cycles: [0; 4],
        ns: [0; 4],
        clamped: None,
        late: None,
    };
    let (mut c, mut n) = (false, false);
    for w in line[at + 6..].split_whitespace() {
        let (k, v) = w.split_once('=')?;
        match k {
            "name" => f.name = v.to_string(),
            "iters" => f.iters = v.parse().ok()?,
            "per" => f.per = v.parse().ok()?,
            "cycles" => (f.cycles, c) = (quad(v)?, true),
            "ns" => (f.ns, n) = (quad(v)?, true),
            "clamped" => f.clamped = Some(v.parse().ok()?),
            "late" => f.late = Some(v.parse().ok()?),
            _ => {}
        }
    }
    (!f.name.is_empty() && c && n).then_some(f)
}

/// Parses a `BENCH-CHECK name=N result=pass|fail detail...` line.
pub fn parse_check(line: &str) -> Option<Check> {
    let at = line.find("BENCH-CHECK ")?;
    let mut words = line[at + 12..].splitn(3, ' ');
    let name = words.next()?.strip_prefix("name=")?;
    let pass = match words.next()?.strip_prefix("result=")? {
        "pass" => true,
        "fail" => false,
        _ => return None,
    };
    (!name.is_empty()).then(|| Check {
        name: name.to_string(),
        pass,
        detail: words.next().unwrap_or("").to_string(),
    })
}

/// Parses `BENCH-ENV` words; `cpu="..."` may contain spaces.
pub fn parse_env(line: &str) -> Option<BTreeMap<String, String>> {
    let at = line.find("BENCH-ENV ")?;
    let mut rest = &line[at + 10..];
    let mut m = BTreeMap::new();
    while let Some((k, after)) = rest.trim_start().split_once('=') {
        let (v, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.split_once('"') {
                Some((v, t)) => (v, t),
                None => (q, ""),
            }
        } else {
            after.split_once(' ').unwrap_or((after, ""))
        };
        m.insert(k.trim().to_string(), v.to_string());
        rest = tail;
    }
    Some(m)
}

/// Splits a console into suite runs (`BENCH-RUN` starts a new one; without
/// it the whole console is one run). Errors name `who` and say what is
/// missing.
pub fn parse_console(who: &str, lines: &[String]) -> Result<Vec<SuiteRun>> {
    let mut env = None;
    let mut runs: Vec<SuiteRun> = Vec::new();
    let mut done = None;
    for l in lines {
        if let Some(e) = parse_env(l) {
            // Later lines add to the first (the vCPUs, once started).
            env.get_or_insert_with(BTreeMap::new).extend(e);
        } else if l.contains("BENCH-RUN ") {
            runs.push(SuiteRun::default());
        } else if let Some(f) = parse_figure(l) {
            if runs.is_empty() {
                runs.push(SuiteRun::default());
            }
            if let Some(r) = runs.last_mut() {
                r.figures.push(f);
            }
        } else if let Some(c) = parse_check(l) {
            if runs.is_empty() {
                runs.push(SuiteRun::default());
            }
            if let Some(r) = runs.last_mut() {
                r.checks.push(c);
            }
        } else if let Some(at) = l.find("BENCH-ERROR ") {
            if let Some(r) = runs.last_mut() {
                r.errors.push(l[at + 12..].to_string());
            }
        } else if let Some(at) = l.find("BENCH-DONE failures=") {
            done = l[at + 20..].split_whitespace().next().and_then(|v| v.parse::<u32>().ok());
        }
    }
    let Some(env) = env else {
        bail!("{who}: no BENCH-ENV line on its console (did the benchmark start?)");
    };
    if done.is_none() {
        bail!("{who}: no BENCH-DONE line on its console (the benchmark did not finish)");
    }
    runs.retain(|r| !r.figures.is_empty());
    if runs.is_empty() {
        bail!("{who}: no BENCH lines on its console");
    }
    for r in &mut runs {
        r.env = env.clone();
    }
    Ok(runs)
}

/// Checks a run of our guest is complete and correct: every expected
/// figure, each with the samples the plan asks for (from `BENCH-ENV
/// iters=`), and every check, passed.
pub fn check_complete(who: &str, run: &SuiteRun) -> Result<()> {
    check_complete_with(who, run, &expected_for(run), &checks_for(run), expected_samples)
}

/// [`check_complete`] for any suite: the figures `expected` (each with
/// the samples `samples(name, iters)` plans, where it plans any) and the
/// checks `checks`, every one passed, and no `BENCH-ERROR`.
pub fn check_complete_with(
    who: &str,
    run: &SuiteRun,
    expected: &[&str],
    checks: &[&str],
    samples: fn(&str, u64) -> Option<u64>,
) -> Result<()> {
    if let Some(e) = run.errors.first() {
        bail!("{who}: BENCH-ERROR {e}");
    }
    let missing: Vec<&str> = expected.iter().copied().filter(|n| run.get(n).is_none()).collect();
    if !missing.is_empty() {
        bail!("{who}: missing BENCH line(s) for {}", missing.join(", "));
    }
    let Some(iters) = run.env.get("iters").and_then(|v| v.parse::<u64>().ok()) else {
        bail!("{who}: no iters= in BENCH-ENV");
    };
    for f in &run.figures {
        if let Some(want) = samples(&f.name, iters) {
            if f.iters != want {
                bail!("{who}: {} has {} samples, the plan asks for {want}", f.name, f.iters);
            }
        }
    }
    let missing: Vec<&str> = checks.iter().copied().filter(|n| run.check(n).is_none()).collect();
    if !missing.is_empty() {
        bail!("{who}: missing BENCH-CHECK line(s) for {}", missing.join(", "));
    }
    if let Some(c) = run.checks.iter().find(|c| !c.pass) {
        bail!("{who}: check {} failed: {}", c.name, c.detail);
    }
    Ok(())
}

pub use crate::report::Spread;

/// One measurement across runs: the spread of the runs' medians.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Across {
    /// ns.
    pub ns: Spread,
    /// Cycles.
    pub cycles: Spread,
    /// Runs it came from.
    pub runs: usize,
}

/// `name`'s median across `runs`.
pub fn across(runs: &[SuiteRun], name: &str) -> Option<Across> {
    let figs: Vec<&Figure> = runs.iter().filter_map(|r| r.get(name)).collect();
    Some(Across {
        ns: Spread::of(&figs.iter().map(|f| f.ns[1]).collect::<Vec<_>>())?,
        cycles: Spread::of(&figs.iter().map(|f| f.cycles[1]).collect::<Vec<_>>())?,
        runs: figs.len(),
    })
}

/// Everything measured under one CPU model.
#[derive(Debug, Clone, Default)]
pub struct CpuResult {
    /// `amd` or `intel`.
    pub key: String,
    /// QEMU's `-cpu` argument.
    pub qemu_cpu: String,
    /// Xen version (from BENCH-ENV, else dom0's).
    pub xen: String,
    /// CPU brand string the guest saw.
    pub cpu: String,
    /// TSC frequency the guest used.
    pub tsc_hz: u64,
    /// Xen's XPTI line for DomUs: `Some(true)` on, `Some(false)` off.
    pub xpti_domu: Option<bool>,
    /// The raw XPTI line from Xen's boot log.
    pub xpti_line: Option<String>,
    /// Runs of the Rust guest.
    pub ours: Vec<SuiteRun>,
    /// Runs of the Linux module.
    pub linux: Vec<SuiteRun>,
    /// The Linux kernel release.
    pub linux_kernel: Option<String>,
    /// Why the Linux comparator (or a guest run) is missing.
    pub problems: Vec<String>,
    /// The boot's serial log.
    pub serial_log: Option<PathBuf>,
}

/// Xen's boot log line `XPTI (64-bit PV only): Dom0 enabled, DomU enabled`.
pub fn parse_xpti(log: &str) -> Option<(bool, String)> {
    let line = log.lines().find(|l| l.contains("XPTI (64-bit PV only)"))?;
    let domu = line.split("DomU").nth(1)?.trim_start();
    let on = domu.starts_with("enabled");
    let text = line.find("XPTI").map_or(line, |i| &line[i..]).trim().to_string();
    Some((on, text))
}

/// The CPU models `--cpu` selects.
pub fn cpu_models(which: &str) -> Result<Vec<(&'static str, String)>> {
    // -monitor: these models advertise MONITOR/MWAIT, which TCG does not
    // implement (Xen's idle loop takes a #GP in mwait).
    const FLAGS: &str = "-smap,-smep,-pku,-la57,-xsave,-monitor";
    let amd = ("amd", format!("EPYC,{FLAGS}"));
    let intel = ("intel", format!("Skylake-Client-noTSX-IBRS,{FLAGS}"));
    Ok(match which {
        "amd" => vec![amd],
        "intel" => vec![intel],
        "both" => vec![amd, intel],
        o => bail!("--cpu takes amd, intel or both, not {o:?}"),
    })
}

/// Settings of one `bench hypercall`.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Runs of the Rust guest per CPU model (and rounds of the Linux module).
    pub runs: u32,
    /// Quick mode: 300 samples per figure.
    pub quick: bool,
    /// `amd`, `intel` or `both`.
    pub cpu: String,
    /// Try KVM.
    pub kvm: bool,
    /// Echo every serial line.
    pub verbose: bool,
    /// Skip the Linux comparator.
    pub no_linux: bool,
    /// The Xen release (`None`: `$XENPV_XEN`, else 4.17).
    pub xen: Option<crate::release::XenRelease>,
    /// vCPUs of both guests: with 2 or more, the IPI round trip and the
    /// TLB shootdown are measured too ([`SMP`]).
    pub vcpus: u32,
}

/// The output directory, `target/xen/bench/`.
/// Ends a benchmark with the first problem it found, if any: the sides'
/// own (`problems`), then the boot's failure, then `incomplete` (what the
/// Rust guest's measurements lack). The reports are written before this.
pub fn first_problem<'a>(
    problems: impl IntoIterator<Item = &'a String>,
    report: &BootReport,
    incomplete: Option<String>,
) -> Result<()> {
    let boot = report.failure.as_ref().map(|f| format!("boot: {f}"));
    match problems.into_iter().cloned().chain(boot).chain(incomplete).next() {
        Some(p) => bail!("{p}"),
        None => Ok(()),
    }
}

/// Writes a Linux DomU's initramfs (`bytes`) as `out/linux-NAME.cpio`.
pub fn write_ramdisk(out: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let p = out.join(format!("linux-{name}.cpio"));
    std::fs::write(&p, bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    Ok(p)
}

pub fn out_dir() -> PathBuf {
    crate::xen_out_dir().join("bench")
}

/// Runs the whole benchmark and writes the reports. Errors are one line.
pub fn run(o: &BenchOptions) -> Result<()> {
    let models = cpu_models(&o.cpu)?;
    if o.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let t = Instant::now();
    let guest = crate::guest::build(true)?;
    println!("[bench] guest built: {}", guest.stable.display());
    let out = out_dir();
    crate::cmd::mkdir(&out)?;
    let mut results = Vec::new();
    let mut linux_ramdisk: Option<Result<PathBuf, String>> = None;
    for (key, model) in &models {
        let opts = LabOptions {
            cpu: Some(model.clone()),
            ..LabOptions::bench(&format!("bench-{key}"), o.kvm, o.verbose, o.xen)
        };
        let lab = Lab::prepare(opts)?;
        if linux_ramdisk.is_none() && !o.no_linux {
            let mut log = |s: &str| println!("[bench] {s}");
            linux_ramdisk = Some(
                crate::linuxbench::prepare(&lab.opts.cache_dir, &lab.bundle, &out, &mut log)
                    .map_err(|e| format!("Linux comparator unavailable: {e:#}")),
            );
        }
        let scenarios = scenarios(o, &guest.stable, &lab, linux_ramdisk.as_ref());
        println!("[bench] {key}: QEMU -cpu {model}, {} run(s)", o.runs);
        let report = lab.boot(&scenarios)?;
        let mut r = collect(key, model, o, &report);
        if let Some(Err(e)) = &linux_ramdisk {
            r.problems.push(e.clone());
        }
        results.push(r);
    }
    let text = table(&results, o);
    println!("\n{text}");
    report::write(&out, "hypercall", &text, &to_json(&results, o))?;
    let png = out.join("hypercall.png");
    match crate::chart::draw(&results, &png) {
        Ok(()) => println!("chart: {}", png.display()),
        Err(e) => println!("chart: skipped ({e:#})"),
    }
    println!("total: {:.0} s", t.elapsed().as_secs_f64());
    let problems: Vec<String> = results
        .iter()
        .flat_map(|r| r.problems.iter().map(move |p| format!("{}: {p}", r.key)))
        .collect();
    if results.iter().any(|r| r.ours.is_empty()) {
        bail!("no complete run of app=bench: {}", problems.join("; "));
    }
    if let Some(p) = problems.first() {
        bail!(
            "{p}{}",
            if problems.len() > 1 {
                format!(" (+{} more above)", problems.len() - 1)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Our guest `runs` times, then one Linux DomU running the module `runs` rounds.
fn scenarios(
    o: &BenchOptions,
    kernel: &Path,
    lab: &Lab,
    linux: Option<&Result<PathBuf, String>>,
) -> Vec<Scenario> {
    let mut v = Vec::new();
    for i in 1..=o.runs {
        let mut g = GuestSpec::new(&format!("bench-{i}"), kernel, "bench")
            .vcpus(o.vcpus)
            .timeout(Duration::from_secs(if o.quick { 180 } else { 600 }));
        if o.quick {
            g = g.args(&["bench.quick=1".to_string()]);
        }
        g.extra_config.push("tsc_mode = \"native\"".to_string());
        v.push(Scenario::single(g));
    }
    if let Some(Ok(rd)) = linux {
        let mut g = GuestSpec::new("linux-bench", &lab.bundle.vmlinuz, "bench")
            .vcpus(o.vcpus)
            .memory(256)
            .timeout(Duration::from_secs(if o.quick { 300 } else { 900 }))
            .ramdisk(rd);
        g.cmdline = format!(
            "console=hvc0 quiet bench_iters={} bench_runs={}",
            if o.quick { 300 } else { 10_000 },
            o.runs
        );
        g.extra_config.push("tsc_mode = \"native\"".to_string());
        v.push(Scenario::single(g));
    }
    v
}

fn run_problem(run: &GuestRun) -> Option<String> {
    (run.result != GuestResult::Poweroff).then(|| {
        format!(
            "{} ended with {} (domid {})",
            run.name,
            run.result,
            run.domid.map_or("?".into(), |d| d.to_string())
        )
    })
}

/// Parses one boot's consoles.
pub fn collect(key: &str, model: &str, o: &BenchOptions, report: &BootReport) -> CpuResult {
    let mut r = CpuResult {
        key: key.to_string(),
        qemu_cpu: model.to_string(),
        xen: report.xen_version.clone().unwrap_or_default(),
        serial_log: report.serial_log.clone(),
        ..CpuResult::default()
    };
    if let Some(log) = report.serial_log.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
        if let Some((on, line)) = parse_xpti(&log) {
            r.xpti_domu = Some(on);
            r.xpti_line = Some(line);
        }
    }
    if let Some(f) = &report.failure {
        r.problems.push(format!("boot: {f}"));
    }
    for i in 1..=o.runs {
        let name = format!("bench-{i}");
        let Ok(run) = report.run(&name) else {
            r.problems.push(format!("{name} never ran"));
            continue;
        };
        if let Some(p) = run_problem(run) {
            r.problems.push(p);
        }
        match parse_console(&name, &run.console).and_then(|mut v| {
            let s = v.remove(0);
            check_complete(&name, &s)?;
            Ok(s)
        }) {
            Ok(s) => r.ours.push(s),
            Err(e) => r.problems.push(format!("{e:#}")),
        }
    }
    if !o.no_linux {
        match report.run("linux-bench") {
            Err(_) => {}
            Ok(run) => {
                if let Some(p) = run_problem(run) {
                    r.problems.push(format!("Linux DomU: {p}"));
                }
                match parse_console("linux-bench (Linux PV DomU)", &run.console) {
                    Ok(v) => {
                        for e in v.iter().flat_map(|x| &x.errors) {
                            r.problems.push(format!("Linux DomU: BENCH-ERROR {e}"));
                        }
                        r.linux = v
                    }
                    Err(e) => {
                        let tail: Vec<&str> =
                            run.console.iter().rev().take(3).rev().map(String::as_str).collect();
                        r.problems.push(format!("{e:#}; its console ends: {}", tail.join(" | ")))
                    }
                }
            }
        }
    }
    if let Some(env) = r.ours.first().map(|s| &s.env) {
        r.cpu = env.get("cpu").cloned().unwrap_or_default();
        r.tsc_hz = env.get("tsc_hz").and_then(|v| v.parse().ok()).unwrap_or(0);
        if let Some(x) = env.get("xen") {
            r.xen = x.clone();
        }
    }
    r.linux_kernel = r.linux.first().and_then(|s| s.env.get("kernel").cloned());
    r
}

/// `ns` in ns, us or ms, as the tables show it.
pub fn fmt_ns(ns: u64) -> String {
    if ns >= 10_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else if ns >= 10_000 {
        format!("{:.1}us", ns as f64 / 1e3)
    } else {
        format!("{ns}ns")
    }
}

fn fmt_spread(a: Option<Across>) -> (String, String) {
    match a {
        None => ("-".into(), "-".into()),
        Some(a) if a.runs > 1 => (
            format!("{} [{}-{}]", fmt_ns(a.ns.median), fmt_ns(a.ns.min), fmt_ns(a.ns.max)),
            a.cycles.median.to_string(),
        ),
        Some(a) => (fmt_ns(a.ns.median), a.cycles.median.to_string()),
    }
}

/// Linux median / ours median (ns), if both are there and neither is 0.
pub fn ratio(ours: Option<Across>, linux: Option<Across>) -> Option<f64> {
    let (o, l) = (ours?, linux?);
    (o.ns.median > 0 && l.ns.median > 0).then(|| l.ns.median as f64 / o.ns.median as f64)
}

/// Where the runs happened, in one line per CPU model.
pub fn environment(r: &CpuResult, o: &BenchOptions) -> String {
    format!(
        "{}: cpu \"{}\" (QEMU -cpu {}), Xen {}, {} emulation, XPTI for PV DomUs {}, TSC {:.3} GHz, {} run(s){}",
        r.key,
        if r.cpu.is_empty() { "?" } else { &r.cpu },
        r.qemu_cpu,
        if r.xen.is_empty() { "?" } else { &r.xen },
        if o.kvm { "KVM (hardware)" } else { "TCG (software)" },
        match r.xpti_domu {
            Some(true) => "ON",
            Some(false) => "off",
            None => "unknown",
        },
        r.tsc_hz as f64 / 1e9,
        r.ours.len(),
        r.linux_kernel.as_ref().map_or(String::new(), |k| format!(", Linux DomU {k}"))
    )
}

/// The console table.
pub fn table(results: &[CpuResult], o: &BenchOptions) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Hypercall latency: median of each run's median, [min-max across runs]; cycles = median TSC cycles; per = batch size the figure is divided by"
    );
    for r in results {
        let _ = writeln!(s, "\n== {}", environment(r, o));
        if let Some(l) = &r.xpti_line {
            let _ = writeln!(s, "   Xen: {l}");
        }
        let mut t = Table::new(Style::Plain)
            .left("measurement", 38)
            .right("per", 4)
            .bar()
            .right("Rust guest ns", 28)
            .right("cycles", 9)
            .bar()
            .right("Linux PV DomU ns", 28)
            .right("cycles", 9)
            .bar()
            .right("Lx/Rust", 8);
        for name in all_figures() {
            let ours = across(&r.ours, name);
            let linux = across(&r.linux, name);
            if ours.is_none() && linux.is_none() {
                continue;
            }
            let per = r.ours.iter().chain(&r.linux).find_map(|x| x.get(name)).map_or(1, |f| f.per);
            let (on, oc) = fmt_spread(ours);
            let (ln, lc) = fmt_spread(linux);
            let ra = ratio(ours, linux).map_or("-".to_string(), |x| format!("{x:.2}x"));
            t.row([name.to_string(), per.to_string(), on, oc, ln, lc, ra]);
        }
        s.push_str(&t.render());
        let mut t = Table::new(Style::Plain)
            .left("ratios (of median cycles; reported, not judged)", 48)
            .left("of", 68)
            .right("Rust", 8)
            .bar()
            .right("Linux", 8);
        for (name, num, den) in RATIOS {
            let x = |runs: &[SuiteRun]| {
                report::cell(median_ratio(across(runs, num), across(runs, den)), 2)
            };
            t.row([name.to_string(), format!("{num} / {den}"), x(&r.ours), x(&r.linux)]);
        }
        s.push_str(&t.render());
        for line in notes(r) {
            let _ = writeln!(s, "   note: {line}");
        }
        for p in &r.problems {
            let _ = writeln!(s, "   problem: {p}");
        }
    }
    if let (Some(a), Some(i)) =
        (results.iter().find(|r| r.key == "amd"), results.iter().find(|r| r.key == "intel"))
    {
        let _ = writeln!(s, "\nIntel model / AMD model (Rust guest, median cycles; XPTI on the Intel model only if shown ON above):");
        for name in
            ["xen_version", "sched_yield", "evtchn_send", "mmu_update_1", "mmuext_tlb_flush_local"]
        {
            if let (Some(x), Some(y)) = (across(&i.ours, name), across(&a.ours, name)) {
                if y.cycles.median > 0 {
                    let _ = writeln!(
                        s,
                        "  {name:<24} {:.2}x",
                        x.cycles.median as f64 / y.cycles.median as f64
                    );
                }
            }
        }
    }
    s
}

/// What the figures of one CPU model say besides the numbers: figures
/// whose median came out at or below the timer's own cost (reported as 0),
/// and the round trip's late deliveries.
pub fn notes(r: &CpuResult) -> Vec<String> {
    let mut v = Vec::new();
    for (who, runs) in [("Rust guest", &r.ours), ("Linux PV DomU", &r.linux)] {
        let zero: Vec<String> = all_figures()
            .filter_map(|n| {
                let k = runs.iter().filter_map(|x| x.get(n)).filter(|f| f.cycles[1] == 0).count();
                (k > 0).then(|| format!("{n} ({k} of {} runs)", runs.len()))
            })
            .collect();
        if !zero.is_empty() {
            v.push(format!(
                "{who}: median at or below the timer's own cost, reported as 0: {}",
                zero.join(", ")
            ));
        }
    }
    let late: Vec<u64> =
        r.ours.iter().filter_map(|x| x.get("evtchn_send_upcall_handler_roundtrip")?.late).collect();
    if !late.is_empty() {
        let sends: u64 = r
            .ours
            .iter()
            .filter_map(|x| x.get("evtchn_send_upcall_handler_roundtrip"))
            .map(|f| f.iters + f.iters / 10 + 1)
            .sum();
        v.push(format!(
            "Rust guest round trip: {} of {sends} sends ran their handler only after the send returned (waited for; see README)",
            late.iter().sum::<u64>()
        ));
    }
    v
}

/// The JSON report (`hypercall.json`).
#[derive(Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    /// `tcg` or `kvm`.
    pub emulation: &'static str,
    pub quick: bool,
    pub runs: u32,
    pub linux_side: &'static str,
    pub cpus: Vec<CpuReport>,
}

/// One CPU model's part of [`Report`].
#[derive(Debug, Serialize)]
pub struct CpuReport {
    pub key: String,
    pub qemu_cpu: String,
    pub cpu: String,
    pub xen: String,
    pub tsc_hz: u64,
    pub xpti_domu: Option<bool>,
    pub xpti_line: Option<String>,
    pub linux_kernel: Option<String>,
    pub environment: String,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    pub summary: Vec<Summary>,
    pub ratios: Vec<RatioReport>,
    /// Every run's figures.
    pub rust_runs: Vec<Vec<Figure>>,
    pub rust_checks: Vec<Vec<Check>>,
    pub linux_runs: Vec<Vec<Figure>>,
}

/// One measurement on both sides.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub name: &'static str,
    pub rust: Option<Across>,
    pub linux: Option<Across>,
    pub linux_over_rust: Option<f64>,
}

/// One of [`RATIOS`] on both sides.
#[derive(Debug, Serialize)]
pub struct RatioReport {
    pub name: &'static str,
    /// `numerator/denominator`.
    pub of: String,
    pub rust: Option<f64>,
    pub linux: Option<f64>,
}

/// The JSON report.
pub fn to_json(results: &[CpuResult], o: &BenchOptions) -> Report {
    let figures = |runs: &[SuiteRun]| runs.iter().map(|r| r.figures.clone()).collect();
    let cpus = results
        .iter()
        .map(|r| CpuReport {
            key: r.key.clone(),
            qemu_cpu: r.qemu_cpu.clone(),
            cpu: r.cpu.clone(),
            xen: r.xen.clone(),
            tsc_hz: r.tsc_hz,
            xpti_domu: r.xpti_domu,
            xpti_line: r.xpti_line.clone(),
            linux_kernel: r.linux_kernel.clone(),
            environment: environment(r, o),
            problems: r.problems.clone(),
            notes: notes(r),
            summary: all_figures()
                .map(|n| {
                    let (a, b) = (across(&r.ours, n), across(&r.linux, n));
                    Summary {
                        name: n,
                        rust: a,
                        linux: b,
                        linux_over_rust: ratio(a, b).map(|x| report::round(x, 4)),
                    }
                })
                .collect(),
            ratios: RATIOS
                .iter()
                .map(|(name, num, den)| {
                    let x = |runs: &[SuiteRun]| {
                        median_ratio(across(runs, num), across(runs, den))
                            .map(|v| report::round(v, 4))
                    };
                    RatioReport {
                        name,
                        of: format!("{num}/{den}"),
                        rust: x(&r.ours),
                        linux: x(&r.linux),
                    }
                })
                .collect(),
            rust_runs: figures(&r.ours),
            rust_checks: r.ours.iter().map(|run| run.checks.clone()).collect(),
            linux_runs: figures(&r.linux),
        })
        .collect();
    Report {
        benchmark: "hypercall",
        emulation: if o.kvm { "kvm" } else { "tcg" },
        quick: o.quick,
        runs: o.runs,
        linux_side: "kernel module (kernel to kernel)",
        cpus,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pvh_run_swaps_the_page_table_figures_and_checks() {
        let mut run = super::SuiteRun::default();
        assert_eq!(super::expected_for(&run), super::EXPECTED);
        run.env.insert("mode".into(), "pvh".into());
        let e = super::expected_for(&run);
        assert!(e.contains(&"pte_write_invlpg") && e.contains(&"cr3_reload"));
        assert!(!e.iter().any(|n| n.starts_with("mmu_update") || n.starts_with("update_va")));
        let c = super::checks_for(&run);
        // No mmuext_op in an HVM container: one check fewer than PV.
        assert_eq!(c.len(), super::CHECKS.len() - 1);
        assert!(c.contains(&"pte_write_applies") && !c.contains(&"update_va_mapping_succeeds"));
        assert!(!c.contains(&"mmuext_tlb_flush_succeeds"));
    }

    use super::*;

    /// A run with a second vCPU must have the SMP figures and checks (PVH
    /// without the mmuext_op one); the env of a later BENCH-ENV line adds
    /// to the first.
    #[test]
    fn a_run_with_two_vcpus_must_have_the_smp_figures() {
        let lines: Vec<String> = [
            "BENCH-ENV xen=4.17 tsc_hz=1 cpu=\"c\" domain=domU iters=300 mode=pv",
            "BENCH name=xen_version iters=300 per=1 cycles=1/2/3/4 ns=1/2/3/4",
            "BENCH-ENV vcpus=2",
            "BENCH-DONE failures=0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let runs = parse_console("g", &lines).unwrap();
        assert_eq!(runs[0].env.get("mode").map(String::as_str), Some("pv"));
        assert!(is_smp_run(&runs[0]));
        let e = expected_for(&runs[0]);
        assert!(SMP.iter().all(|n| e.contains(n)), "{e:?}");
        assert!(checks_for(&runs[0]).contains(&"mmuext_invlpg_multi_succeeds"));
        let mut pvh = runs[0].clone();
        pvh.env.insert("mode".into(), "pvh".into());
        assert!(!expected_for(&pvh).contains(&"mmuext_invlpg_multi"));
        assert!(expected_for(&pvh).contains(&"tlb_shootdown_1_page"));
        assert!(!checks_for(&pvh).contains(&"mmuext_invlpg_multi_succeeds"));
        let mut one = runs[0].clone();
        one.env.insert("vcpus".into(), "1".into());
        assert!(!expected_for(&one).contains(&"ipi_roundtrip"));
    }

    #[test]
    fn the_first_problem_ends_the_benchmark() {
        let none: [&String; 0] = [];
        let mut r = BootReport::default();
        assert!(first_problem(none, &r, None).is_ok());
        r.failure = Some("qemu".into());
        let side = vec!["side".to_string()];
        let err = |e: Result<()>| e.unwrap_err().to_string();
        assert_eq!(err(first_problem(&side, &r, Some("short".into()))), "side");
        assert_eq!(err(first_problem(none, &r, Some("short".into()))), "boot: qemu");
        r.failure = None;
        assert_eq!(err(first_problem(none, &r, Some("short".into()))), "short");
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_figures_and_env() {
        let f =
            parse_figure("[x] BENCH name=xen_version iters=300 per=1 cycles=1/2/3/4 ns=5/6/7/8")
                .unwrap();
        assert_eq!(f.name, "xen_version");
        assert_eq!((f.iters, f.per, f.cycles, f.ns), (300, 1, [1, 2, 3, 4], [5, 6, 7, 8]));
        assert!(parse_figure("BENCH name=x iters=1 per=1 cycles=1/2/3 ns=1/2/3/4").is_none());
        assert!(parse_figure("BENCH-DONE failures=0").is_none());
        assert_eq!((f.clamped, f.late), (None, None));
        let f = parse_figure(
            "BENCH name=evtchn_send_upcall_handler_roundtrip iters=300 per=1 cycles=1/2/3/4 ns=5/6/7/8 clamped=0 late=2",
        )
        .unwrap();
        assert_eq!((f.clamped, f.late), (Some(0), Some(2)));
        let c = parse_check(
            "[bench] BENCH-CHECK name=gnttab_copy_copies result=pass 331 copies of 4 KiB, 0 failed",
        )
        .unwrap();
        assert_eq!((c.name.as_str(), c.pass), ("gnttab_copy_copies", true));
        assert_eq!(c.detail, "331 copies of 4 KiB, 0 failed");
        assert!(!parse_check("BENCH-CHECK name=x result=fail").unwrap().pass);
        assert!(parse_check("BENCH-CHECK name=x result=maybe y").is_none());
        assert!(parse_check("BENCH-CHECK result=pass x").is_none());
        let e =
            parse_env("BENCH-ENV xen=4.17.5 tsc_hz=2000 cpu=\"AMD EPYC Processor\" domain=domU")
                .unwrap();
        assert_eq!(e["cpu"], "AMD EPYC Processor");
        assert_eq!(e["domain"], "domU");
        assert_eq!(e["tsc_hz"], "2000");
    }

    #[test]
    fn splits_runs_and_reports_missing_lines() {
        let c = lines(&[
            "BENCH-ENV xen=4.17 tsc_hz=1 cpu=\"c\"",
            "BENCH-RUN n=1",
            "BENCH name=a iters=1 per=1 cycles=1/2/3/4 ns=1/2/3/4",
            "BENCH-RUN n=2",
            "BENCH name=a iters=1 per=1 cycles=1/4/5/6 ns=1/4/5/6",
            "BENCH-DONE failures=0",
        ]);
        let r = parse_console("linux", &c).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(across(&r, "a").unwrap().ns, Spread { median: 2, min: 2, max: 4 });
        let e = parse_console("g", &c[..5]).unwrap_err().to_string();
        assert!(e.contains("no BENCH-DONE"), "{e}");
        let e = parse_console("g", &c[1..]).unwrap_err().to_string();
        assert!(e.contains("no BENCH-ENV"), "{e}");
        let e = check_complete("g", &r[0]).unwrap_err().to_string();
        assert!(e.contains("missing BENCH line(s) for tsc_timer_pair"), "{e}");
    }

    /// The console of a complete quick run of our guest (figures of 1 cycle).
    fn quick_console() -> Vec<String> {
        let mut c =
            vec!["BENCH-ENV xen=4.17.7 tsc_hz=2600000000 cpu=\"c\" domain=domU iters=300"
                .to_string()];
        for n in EXPECTED {
            c.push(format!(
                "BENCH name={n} iters={} per=1 cycles=1/1/1/1 ns=1/1/1/1 clamped=0",
                expected_samples(n, 300).unwrap()
            ));
        }
        for n in CHECKS {
            c.push(format!("BENCH-CHECK name={n} result=pass counted"));
        }
        c.push("BENCH-DONE failures=0 checks=12".into());
        c
    }

    #[test]
    fn the_sample_plan_matches_the_guest() {
        // guest/src/bench/stats.rs, Plan: 300 -> 300 / 75 / 19 / 20.
        assert_eq!(expected_samples("xen_version", 300), Some(300));
        assert_eq!(expected_samples("mmu_update_64_per_entry", 300), Some(75));
        assert_eq!(expected_samples("multicall_32_xen_version_total", 300), Some(75));
        assert_eq!(expected_samples("mmu_update_512_per_entry", 300), Some(19));
        assert_eq!(expected_samples("xenstore_read_roundtrip", 300), Some(20));
        assert_eq!(expected_samples("xenstore_read_roundtrip", 10_000), Some(500));
        assert_eq!(expected_samples("no_such_figure", 300), None);
        for (_, num, den) in RATIOS {
            assert!(EXPECTED.contains(num) && EXPECTED.contains(den));
        }
    }

    #[test]
    fn a_run_is_complete_only_with_every_figure_planned_and_every_check_passed() {
        let c = quick_console();
        let run = |c: &[String]| parse_console("g", c).unwrap().remove(0);
        check_complete("g", &run(&c)).unwrap();
        assert_eq!(run(&c).checks.len(), CHECKS.len());

        let mut short = c.clone();
        let at = short.iter().position(|l| l.contains("name=mmu_update_512_per_entry ")).unwrap();
        short[at] = short[at].replace("iters=19", "iters=18");
        let e = check_complete("g", &run(&short)).unwrap_err().to_string();
        assert!(e.contains("mmu_update_512_per_entry has 18 samples, the plan asks for 19"), "{e}");

        let mut failed = c.clone();
        let at = failed.iter().position(|l| l.contains("roundtrip_one_handler")).unwrap();
        failed[at] = "BENCH-CHECK name=roundtrip_one_handler_run_per_send result=fail 330 handler runs for 331 sends".into();
        let e = check_complete("g", &run(&failed)).unwrap_err().to_string();
        assert!(
            e.contains("check roundtrip_one_handler_run_per_send failed: 330 handler runs"),
            "{e}"
        );

        let missing: Vec<String> =
            c.iter().filter(|l| !l.contains("name=gnttab_copy_copies")).cloned().collect();
        let e = check_complete("g", &run(&missing)).unwrap_err().to_string();
        assert!(e.contains("missing BENCH-CHECK line(s) for gnttab_copy_copies"), "{e}");

        let mut error = c.clone();
        error.insert(3, "BENCH-ERROR no scratch pages for the page-table benchmarks".into());
        let e = check_complete("g", &run(&error)).unwrap_err().to_string();
        assert!(e.contains("BENCH-ERROR no scratch pages"), "{e}");
    }

    #[test]
    fn ratios_and_notes_are_reported_not_judged() {
        let mut c = quick_console();
        let set = |c: &mut Vec<String>, name: &str, median: u64, extra: &str| {
            let at = c.iter().position(|l| l.contains(&format!("name={name} "))).unwrap();
            let n = expected_samples(name, 300).unwrap();
            c[at] = format!(
                "BENCH name={name} iters={n} per=1 cycles=0/{median}/9/9 ns=0/{median}/9/9 clamped=0{extra}"
            );
        };
        set(&mut c, "mmu_update_1", 2496, "");
        set(&mut c, "mmu_update_512_per_entry", 670, "");
        // A multicall dearer than its separate calls is a figure, not an error.
        set(&mut c, "multicall_32_xen_version_total", 21000, "");
        set(&mut c, "separate_32_xen_version_total", 18226, "");
        set(&mut c, "evtchn_send_upcall_handler_roundtrip", 4446, " late=3");
        set(&mut c, "evtchn_send", 1690, "");
        set(&mut c, "xen_version", 0, "");
        let ours = parse_console("g", &c).unwrap();
        check_complete("g", &ours[0]).unwrap();
        let r = CpuResult { key: "amd".into(), ours, ..CpuResult::default() };
        let q = |n| across(&r.ours, n);
        let m = median_ratio(q("mmu_update_512_per_entry"), q("mmu_update_1")).unwrap();
        assert!((m - 0.268).abs() < 0.001, "{m}");
        assert_eq!(median_ratio(q("xenstore_read_roundtrip"), q("xen_version")), None);
        let notes = notes(&r).join("\n");
        assert!(notes.contains("reported as 0: xen_version (1 of 1 runs)"), "{notes}");
        assert!(notes.contains("3 of 331 sends ran their handler only after"), "{notes}");
        let o = BenchOptions {
            runs: 1,
            quick: true,
            cpu: "amd".into(),
            kvm: false,
            verbose: false,
            no_linux: true,
            xen: None,
            vcpus: 1,
        };
        let t = table(std::slice::from_ref(&r), &o);
        assert!(t.contains("multicall_vs_separate"), "{t}");
        assert!(t.contains("1.15"), "{t}");
        let j = serde_json::to_value(to_json(&[r], &o)).unwrap();
        let cpu = &j["cpus"][0];
        assert_eq!(cpu["ratios"][0]["name"], "mmu_512_per_entry_vs_single", "{j}");
        let late = |f: &serde_json::Value| f["late"].as_u64();
        let rust_runs = cpu["rust_runs"][0].as_array().unwrap();
        assert!(rust_runs.iter().any(|f| late(f) == Some(3)), "{j}");
        assert!(rust_runs.iter().any(|f| f.get("late").is_none()), "absent, not null: {j}");
        assert_eq!(cpu["rust_checks"][0][0]["name"], "xen_version_answers", "{j}");
        assert_eq!(cpu["rust_checks"][0][0]["pass"], true, "{j}");
    }

    #[test]
    fn failed_guests_become_one_line_problems() {
        let run = |name: &str, result, console: &[&str]| GuestRun {
            name: name.into(),
            scenario: name.into(),
            domid: Some(2),
            result,
            console: lines(console),
            console_complete: true,
            create_at: None,
            up_at: None,
            end_at: None,
            xl_output: Vec::new(),
        };
        let report = BootReport {
            runs: vec![
                run(
                    "bench-1",
                    GuestResult::Poweroff,
                    &["BENCH-ENV xen=4.17 cpu=\"c\"", "BENCH-DONE failures=0"],
                ),
                run("linux-bench", GuestResult::Timeout, &["Kernel panic - not syncing"]),
            ],
            ..BootReport::default()
        };
        let o = BenchOptions {
            runs: 2,
            quick: true,
            cpu: "amd".into(),
            kvm: false,
            verbose: false,
            no_linux: false,
            xen: None,
            vcpus: 2,
        };
        let r = collect("amd", "EPYC", &o, &report);
        assert!(r.ours.is_empty() && r.linux.is_empty());
        let p = r.problems.join("\n");
        assert!(p.contains("bench-1: no BENCH lines"), "{p}");
        assert!(p.contains("bench-2 never ran"), "{p}");
        assert!(p.contains("Linux DomU: linux-bench ended with timeout"), "{p}");
        assert!(p.contains("its console ends: Kernel panic"), "{p}");
        assert!(r.problems.iter().all(|x| !x.contains('\n')), "{p}");
        assert!(table(&[r], &o).contains("problem: bench-2 never ran"));
    }

    #[test]
    fn spread_ratio_xpti_and_json() {
        assert_eq!(Spread::of(&[5, 1, 3]), Some(Spread { median: 3, min: 1, max: 5 }));
        assert_eq!(Spread::of(&[]), None);
        let a = Across {
            ns: Spread { median: 10, min: 9, max: 11 },
            cycles: Spread { median: 1, min: 1, max: 1 },
            runs: 3,
        };
        let b = Across { ns: Spread { median: 25, min: 20, max: 30 }, ..a };
        assert_eq!(ratio(Some(a), Some(b)), Some(2.5));
        assert_eq!(ratio(Some(a), None), None);
        let log = "(XEN)   XPTI (64-bit PV only): Dom0 enabled, DomU enabled (with PCID)\n";
        assert_eq!(parse_xpti(log).map(|x| x.0), Some(true));
        let log = "(XEN)   XPTI (64-bit PV only): Dom0 disabled, DomU disabled (with PCID)\n";
        assert_eq!(parse_xpti(log).map(|x| x.0), Some(false));
        assert!(cpu_models("both").unwrap().len() == 2 && cpu_models("arm").is_err());
    }
}
