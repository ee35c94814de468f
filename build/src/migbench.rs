//! `cargo xtask bench migrate`: what saving, restoring and live-migrating
//! costs, for our guest (`app=http` with a vif) and a Linux DomU of the
//! same memory size (Debian's kernel, the lab's dom0 kernel, with
//! `xen-netfront` and an address: `bench boot`'s initramfs), in one QEMU
//! boot, each as PV and as PVH:
//! - `xl save` time and image size, `xl restore` time (`--rounds` times;
//!   medians and spreads);
//! - PVH only (a PV guest's live migration needs shadow paging, which
//!   Debian's Xen is built without: the one attempt per PV guest reports
//!   xl's error): `xl migrate` to this host, total time, downtime (the
//!   longest gap in a ping from dom0 every 10 ms, next to the longest gap
//!   in the 3 s before, which is what this machine does to such a ping
//!   anyway) and pages sent in each pre-copy round (counted by
//!   [`crate::migcount`] on the stream).
//!
//! dom0's steps are `dom0/bench-migrate.sh`. Writes
//! `target/xen/bench/migrate.{txt,json}`.

use crate::lab::{Echo, Lab, LabOptions};
use crate::mode::GuestMode;
use crate::report::{Spread, Style, Table};
use crate::scenario::{BootReport, GuestSpec, Scenario};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Settings of one benchmark run.
#[derive(Debug, Clone)]
pub struct MigBenchOptions {
    /// Saves + restores, and migrations, per guest.
    pub rounds: u32,
    /// Every guest's memory, MiB (Linux needs 96 or more).
    pub memory_mib: u32,
    pub kvm: bool,
    pub verbose: bool,
    /// Skip the Linux DomUs.
    pub no_linux: bool,
    pub xen: Option<crate::release::XenRelease>,
}

impl Default for MigBenchOptions {
    fn default() -> Self {
        Self { rounds: 3, memory_mib: 128, kvm: false, verbose: false, no_linux: false, xen: None }
    }
}

const SCRIPT: &str = include_str!("dom0/bench-migrate.sh");

/// One guest of the benchmark.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub name: &'static str,
    pub linux: bool,
    pub mode: GuestMode,
    pub ip: &'static str,
    pub mac: &'static str,
}

pub const KINDS: [Kind; 4] = [
    Kind {
        name: "mb-ours-pvh",
        linux: false,
        mode: GuestMode::Pvh,
        ip: "192.0.2.41",
        mac: "00:16:3e:0c:00:41",
    },
    Kind {
        name: "mb-ours-pv",
        linux: false,
        mode: GuestMode::Pv,
        ip: "192.0.2.42",
        mac: "00:16:3e:0c:00:42",
    },
    Kind {
        name: "mb-linux-pvh",
        linux: true,
        mode: GuestMode::Pvh,
        ip: "192.0.2.43",
        mac: "00:16:3e:0c:00:43",
    },
    Kind {
        name: "mb-linux-pv",
        linux: true,
        mode: GuestMode::Pv,
        ip: "192.0.2.44",
        mac: "00:16:3e:0c:00:44",
    },
];

/// The scenarios: one per guest kind (the Linux ones if `linux_ramdisk`).
pub fn scenarios(
    o: &MigBenchOptions,
    kernel: &Path,
    vmlinuz: &Path,
    linux_ramdisk: Option<&Path>,
    nettool: &Path,
    migcount: &Path,
) -> Vec<Scenario> {
    let mut v = Vec::new();
    for k in KINDS {
        let g = if k.linux {
            let Some(rd) = linux_ramdisk else { continue };
            let mut g = GuestSpec::new(k.name, vmlinuz, "none").ramdisk(rd);
            g.cmdline = format!("console=hvc0 quiet bench_ip={}/24", k.ip);
            g
        } else {
            GuestSpec::new(k.name, kernel, "http").args(&[format!("ip={}/24", k.ip)])
        };
        let mut g = g.mode(k.mode).memory(o.memory_mib).timeout(Duration::from_secs(7200));
        g.extra_config.push(format!("vif = ['mac={},bridge=xenbr0']", k.mac));
        if k.mode.is_pvh() {
            // Under QEMU's emulated SVM, Xen cannot emulate an intercepted
            // `rdtscp` (no next-RIP from QEMU: "SVM Insn len emulation
            // failed ... 0f 01 f9"), and Linux as PVH spins on one forever
            // with the default TSC mode. Native TSC is not intercepted;
            // both PVH guests get it, so they compare like with like.
            g.extra_config.push("tsc_mode = \"native\"".into());
        }
        let ready = if k.linux {
            "wait_console {n} 'linux-boot: ready' 1 400".to_string()
        } else {
            "wait_console {n} 'http: ready' 1 120 && wait_console {n} 'connected: mac' 1 120"
                .to_string()
        };
        let migrations = if k.mode.is_pvh() { o.rounds } else { 0 };
        let script = format!(
            "{SCRIPT}run_guest_start {n} {cfg} || exit 1\n\
             if {ready}; then\n\
             mb_guest {n} {ip} {rounds} {migrations}\n\
             fi\n\
             xl destroy {n}\nrun_guest_wait {n} 60\n",
            n = k.name,
            ready = ready.replace("{n}", k.name),
            cfg = g.cfg_path(),
            ip = k.ip,
            rounds = o.rounds,
        );
        v.push(
            Scenario::script(&format!("migrate-{}", k.name), vec![g], &script)
                .with_file(crate::nettool::DEST, nettool)
                .with_file(crate::migcount::DEST, migcount),
        );
    }
    v
}

/// One migration's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Migration {
    pub ok: bool,
    pub total_ms: u64,
    /// The longest ping gap from 3 s before the migration on.
    pub downtime_ms: Option<u64>,
    /// The longest ping gap in the 3 s before it.
    pub baseline_gap_ms: Option<u64>,
    /// Pages with data per round, the last after the guest suspended.
    pub pages_per_round: Vec<u64>,
}

/// One guest's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Guest {
    pub name: String,
    pub save_ms: Vec<u64>,
    pub image_bytes: Vec<u64>,
    pub restore_ms: Vec<u64>,
    /// Failed saves, restores or pings after a restore.
    pub failures: Vec<String>,
    pub migrations: Vec<Migration>,
    /// xl's error when a migration was refused (PV).
    pub refused: Option<String>,
}

fn kv(words: &str) -> Vec<(&str, &str)> {
    words.split_whitespace().filter_map(|w| w.split_once('=')).collect()
}

fn num(kv: &[(&str, &str)], k: &str) -> Option<u64> {
    kv.iter().find(|(key, _)| *key == k).and_then(|(_, v)| v.parse().ok())
}

/// Reads one guest's figures from the lines dom0 printed.
pub fn parse_guest(name: &str, lines: &[String]) -> Guest {
    let mut g = Guest { name: name.into(), ..Guest::default() };
    let mine = format!(" name={name} ");
    let tag = format!("[xl mig] {name} ");
    // (round, start, end, rc, total) and outages per round.
    let mut windows: Vec<(u64, u64, u64, bool)> = Vec::new();
    let mut outages: Vec<(u64, u64, u64, u64)> = Vec::new();
    let mut counts: Vec<(u64, Vec<u64>)> = Vec::new();
    let mut totals: Vec<u64> = Vec::new();
    for l in lines {
        if let Some(rest) = l.split_once("[xl mobility] ").map(|(_, r)| r) {
            if !format!(" {rest} ").contains(&mine) {
                continue;
            }
            let (what, words) = rest.split_once(' ').unwrap_or((rest, ""));
            let k = kv(words);
            let ok = num(&k, "rc") == Some(0);
            match what {
                "save" if ok => {
                    g.save_ms.extend(num(&k, "ms"));
                    g.image_bytes.extend(num(&k, "bytes"));
                }
                "restore" if ok => g.restore_ms.extend(num(&k, "ms")),
                "migrate" if ok => totals.extend(num(&k, "ms")),
                "save" | "restore" => g.failures.push(rest.to_string()),
                _ => {}
            }
        } else if let Some(rest) = l.split_once(&tag).map(|(_, r)| r) {
            let (what, words) = rest.split_once(' ').unwrap_or((rest, ""));
            let k = kv(words);
            match what {
                "window" => windows.push((
                    num(&k, "round").unwrap_or(0),
                    num(&k, "start_ms").unwrap_or(0),
                    num(&k, "end_ms").unwrap_or(0),
                    num(&k, "rc") == Some(0),
                )),
                "outage" => outages.push((
                    num(&k, "round").unwrap_or(0),
                    num(&k, "from_ms").unwrap_or(0),
                    num(&k, "to_ms").unwrap_or(0),
                    num(&k, "ms").unwrap_or(0),
                )),
                "refused" => g.refused = Some(words.trim().to_string()),
                "restore-ping" if num(&k, "rc") != Some(0) => {
                    g.failures.push(format!("no ping after restore: {rest}"))
                }
                w if w.starts_with("round=") => {
                    let r = w.trim_start_matches("round=").parse().unwrap_or(0);
                    if let Some((pages, _)) = crate::migcount::parse_line(rest) {
                        counts.push((r, pages));
                    }
                }
                _ => {}
            }
        }
    }
    let mut total = totals.into_iter();
    for (round, start, end, ok) in windows {
        let mine = outages.iter().filter(|o| o.0 == round);
        let before = mine.clone().filter(|o| o.2 < start).map(|o| o.3).max();
        let during = mine.filter(|o| o.2 >= start).map(|o| o.3).max();
        g.migrations.push(Migration {
            ok,
            total_ms: if ok { total.next().unwrap_or(0) } else { end.saturating_sub(start) },
            downtime_ms: during,
            baseline_gap_ms: Some(before.unwrap_or(0)),
            pages_per_round: counts
                .iter()
                .find(|(r, _)| *r == round)
                .map(|(_, p)| p.clone())
                .unwrap_or_default(),
        });
    }
    g
}

fn spread(v: &[u64]) -> String {
    match Spread::of(v) {
        Some(s) if s.min == s.max => format!("{}", s.median),
        Some(s) => format!("{} [{}-{}]", s.median, s.min, s.max),
        None => "-".into(),
    }
}

fn mib(v: &[u64]) -> Vec<u64> {
    v.iter().map(|b| b / (1 << 20)).collect()
}

/// The table: a row per guest kind, then each migration's rounds.
pub fn table(guests: &[Guest], o: &MigBenchOptions, env: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "migrate benchmark: {} MiB guests with a vif, {} round(s) each; {env}; ms on dom0's clock, median [min-max]",
        o.memory_mib, o.rounds
    );
    let mut t = Table::new(Style::Plain)
        .left("guest", 12)
        .bar()
        .right("xl save ms", 10)
        .right("image MiB", 9)
        .right("xl restore ms", 13)
        .bar()
        .right("xl migrate ms", 13)
        .right("downtime ms", 11)
        .right("ping gap before", 15)
        .right("pages, round 1", 14)
        .right("last round", 10);
    for g in guests {
        let ok: Vec<&Migration> = g.migrations.iter().filter(|m| m.ok).collect();
        let col = |f: &dyn Fn(&Migration) -> Option<u64>| -> String {
            spread(&ok.iter().filter_map(|m| f(m)).collect::<Vec<_>>())
        };
        let (mig, down, base, first, last) = if ok.is_empty() {
            let why = if g.refused.is_some() { "refused" } else { "-" };
            (why.to_string(), "-".into(), "-".into(), "-".into(), "-".into())
        } else {
            (
                col(&|m| Some(m.total_ms)),
                col(&|m| m.downtime_ms),
                col(&|m| m.baseline_gap_ms),
                col(&|m| m.pages_per_round.first().copied()),
                col(&|m| m.pages_per_round.last().copied()),
            )
        };
        t.row([
            g.name.clone(),
            spread(&g.save_ms),
            spread(&mib(&g.image_bytes)),
            spread(&g.restore_ms),
            mig,
            down,
            base,
            first,
            last,
        ]);
    }
    s.push_str(&t.render());
    let _ = writeln!(
        s,
        "\npages sent in each round (pre-copy rounds, the last one after the guest suspended):"
    );
    for g in guests {
        for (i, m) in g.migrations.iter().enumerate() {
            let rounds: Vec<String> = m.pages_per_round.iter().map(u64::to_string).collect();
            let _ = writeln!(
                s,
                "  {} migration {}: {} ({} round(s)){}",
                g.name,
                i + 1,
                rounds.join(" + "),
                rounds.len(),
                if m.ok { "" } else { ", FAILED" }
            );
        }
        if let Some(r) = &g.refused {
            let _ = writeln!(s, "  {}: xl migrate refused: {r}", g.name);
        }
        for f in &g.failures {
            let _ = writeln!(s, "  {}: problem: {f}", g.name);
        }
    }
    s
}

/// The JSON report (`target/xen/bench/migrate.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub memory_mib: u32,
    pub rounds: u32,
    pub environment: String,
    pub guests: Vec<Guest>,
}

/// Runs the benchmark and writes `target/xen/bench/migrate.{txt,json}`.
pub fn run(o: &MigBenchOptions) -> Result<()> {
    let t = Instant::now();
    if o.rounds == 0 || o.memory_mib < 32 {
        bail!("--rounds must be at least 1 and --memory at least 32 (MiB)");
    }
    let guest = crate::guest::build(true)?;
    let opts = LabOptions {
        kvm: o.kvm,
        verbose: o.verbose || LabOptions::default().verbose,
        echo: if o.verbose { Echo::All } else { Echo::Guests },
        to_stdout: true,
        label: "bench-migrate".into(),
        ..LabOptions::default()
    }
    .with_xen(o.xen);
    let lab = Lab::prepare(opts)?;
    let nettool = crate::nettool::build(&lab.opts.cache_dir)?;
    let migcount = crate::migcount::build(&lab.opts.cache_dir)?;
    let out = crate::bench::out_dir();
    crate::cmd::mkdir(&out)?;
    let ramdisk = if o.no_linux {
        None
    } else {
        let a = crate::bootbench::linux_initramfs(&lab.bundle).context("Linux DomU initramfs")?;
        let p = out.join("linux-migrate.cpio");
        std::fs::write(&p, a.to_bytes())
            .with_context(|| format!("cannot write {}", p.display()))?;
        Some(p)
    };
    let sc =
        scenarios(o, &guest.stable, &lab.bundle.vmlinuz, ramdisk.as_deref(), &nettool, &migcount);
    let report = lab.boot(&sc)?;
    let guests = collect(&report, o);
    let env = format!(
        "Xen {}, TCG (software) emulation in QEMU on a shared 2-core machine (noisy), dom0 and Linux DomU kernel {}",
        report.xen_version.as_deref().unwrap_or("?"),
        lab.bundle.kernel_version
    );
    let mut text = table(&guests, o, &env);
    for k in KINDS {
        if let Ok(run) = report.run(k.name) {
            if guests.iter().all(|g| g.name != k.name || g.save_ms.is_empty()) {
                let _ = writeln!(
                    text,
                    "  {}: {} (console ends: {})",
                    k.name,
                    run.result,
                    run.console.iter().rev().take(3).cloned().collect::<Vec<_>>().join(" / ")
                );
            }
        }
    }
    println!("\n{text}");
    let json = Report { memory_mib: o.memory_mib, rounds: o.rounds, environment: env, guests };
    crate::report::write(&out, "migrate", &text, &json)?;
    println!("total: {:.0} s", t.elapsed().as_secs_f64());
    if let Some(f) = &report.failure {
        bail!("boot: {f}");
    }
    let ours = json.guests.iter().find(|g| g.name == KINDS[0].name);
    if ours.is_none_or(|g| g.save_ms.is_empty() || g.migrations.iter().all(|m| !m.ok)) {
        bail!("our PVH guest's figures are incomplete (see the table)");
    }
    Ok(())
}

fn collect(report: &BootReport, o: &MigBenchOptions) -> Vec<Guest> {
    let xl: Vec<String> = report.runs.iter().flat_map(|r| r.xl_output.iter().cloned()).collect();
    KINDS.iter().filter(|k| !(o.no_linux && k.linux)).map(|k| parse_guest(k.name, &xl)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn figures_table_and_json() {
        let lines = s(&[
            "[xl mobility] save name=mb-ours-pvh rc=0 ms=1500 bytes=134217728",
            "[xl mobility] restore name=mb-ours-pvh rc=0 ms=900 domid=2",
            "[xl mobility] save name=mb-ours-pvh rc=0 ms=1700 bytes=134217728",
            "[xl mobility] restore name=mb-ours-pvh rc=1 ms=10 domid=2",
            "[xl mobility] migrate name=mb-ours-pvh rc=0 ms=4000 domid=3",
            "[xl mig] mb-ours-pvh window round=1 rc=0 start_ms=10000 end_ms=14000",
            "[xl mig] mb-ours-pvh outage round=1 from_ms=9000 to_ms=9200 ms=200",
            "[xl mig] mb-ours-pvh outage round=1 from_ms=13000 to_ms=13700 ms=700",
            "[xl mig] mb-ours-pvh round=1 MIGCOUNT rounds=3 pages=32768,40,7 pfns=33000,40,7 bytes=1",
            "[xl mobility] save name=mb-ours-pv rc=0 ms=2000 bytes=134217728",
            "[xl mig] mb-ours-pv refused xc: error: Failed to enable logdirty: 95,22,0",
        ]);
        let g = parse_guest("mb-ours-pvh", &lines);
        assert_eq!(g.save_ms, vec![1500, 1700]);
        assert_eq!(g.restore_ms, vec![900]);
        assert_eq!(g.failures.len(), 1);
        assert_eq!(
            g.migrations,
            vec![Migration {
                ok: true,
                total_ms: 4000,
                downtime_ms: Some(700),
                baseline_gap_ms: Some(200),
                pages_per_round: vec![32768, 40, 7],
            }]
        );
        let pv = parse_guest("mb-ours-pv", &lines);
        assert!(pv.refused.as_deref().unwrap().contains("logdirty"));
        assert!(pv.migrations.is_empty());
        let o = MigBenchOptions::default();
        let t = table(&[g.clone(), pv], &o, "test");
        assert!(t.contains("1500 [1500-1700]") || t.contains("1500 ["), "{t}");
        assert!(t.contains("32768 + 40 + 7 (3 round(s))"), "{t}");
        assert!(t.contains("refused"), "{t}");
        let j = serde_json::to_value(&g).unwrap();
        assert_eq!(j["migrations"][0]["downtime_ms"], 700);
    }
}
