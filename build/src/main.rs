//! `cargo xtask`: build the guest, run it on Xen in QEMU, run all checks.
//!
//! ```text
//! cargo xtask build [--app NAME] [--memory MIB] [-- extra cmdline...]
//! cargo xtask run   [--app NAME] [--memory MIB] [--timeout SECS] [--kvm] [--verbose]
//!                   [--xen 4.17|4.20] [--kernel ELF] [-- extra cmdline...]
//! cargo xtask test
//! cargo xtask fetch [--xen 4.17|4.20]
//! cargo xtask bench blk [--mib N] [--ios N] [--kvm] [--verbose] [--no-linux] [--xen 4.17|4.20]
//! cargo xtask bench net [--mib N] [--requests N] [--kvm] [--verbose] [--no-linux] [--xen 4.17|4.20]
//! cargo xtask bench hypercall [--runs N] [--quick] [--cpu amd|intel|both] [--kvm] [--verbose] [--no-linux] [--xen 4.17|4.20]
//! cargo xtask bench boot [--rounds N] [--min-memory] [--kvm] [--verbose] [--xen 4.17|4.20]
//! ```

mod ci;

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use xtask::guest;
use xtask::lab::Echo;
use xtask::report::Timings;
use xtask::{GuestResult, GuestSpec, Lab, LabOptions, Scenario, XenRelease};

const USAGE: &str = "usage:
  cargo xtask build [--app NAME] [--memory MIB] [-- extra cmdline...]
      build the guest; write target/xen/guest.elf and target/xen/guest.cfg
  cargo xtask run [--app NAME] [--memory MIB] [--timeout SECS] [--kvm] [--verbose]
                  [--xen 4.17|4.20] [--kernel ELF] [--dom0-script FILE] [-- extra cmdline...]
      build the guest and run it as a DomU on Xen in QEMU; exit 0 only
      if it powers off cleanly. --xen picks the release: 4.17 (Debian 12,
      the default) or 4.20 (Debian 13); without it $XENPV_XEN decides.
      --dom0-script runs FILE in dom0 (busybox sh, with run_guest etc. from
      build/src/dom0/lib.sh) instead of run_guest; the guest's config is
      /etc/xen-lab/guests/APP.cfg
  cargo xtask test
      fmt, clippy (host and guest), unit tests, boot tests (on the Xen
      release $XENPV_XEN names, default 4.17)
  cargo xtask fetch [--xen 4.17|4.20]
      download and extract Xen and dom0 into the cache only
  every bench command also takes --xen 4.17|4.20
  cargo xtask bench hypercall [--runs N] [--quick] [--cpu amd|intel|both] [--kvm]
                              [--verbose] [--no-linux]
      hypercall latency of app=bench (N runs, default 3) and of a Linux PV
      DomU's kernel module, per QEMU CPU model (default both); writes a
      table, target/xen/bench/hypercall.json and hypercall.png
  cargo xtask bench net [--mib N] [--requests N] [--kvm] [--verbose] [--no-linux]
      TCP throughput both ways (N MiB, default 32) and 64-byte request rate
      of app=echo and of a Linux PV DomU with xen-netfront, measured from
      dom0 by nettool, plus the guest's notifications, events and hypercalls
      per 1,000 packets; writes target/xen/bench/net.txt and net.json
  cargo xtask bench blk [--mib N] [--ios N] [--kvm] [--verbose] [--no-linux]
      sequential MiB/s and 4 KiB random IOPS at queue depth 1 and 32, read and
      write, of app=blk (blk.mode=bench) and of a Linux PV DomU (xen-blkfront,
      blktool) on one dom0 loop disk, with the ratio and our hypercalls,
      notifications and grant operations per request; writes
      target/xen/bench/blk.txt and blk.json
  cargo xtask bench boot [--rounds N] [--min-memory] [--kvm] [--verbose]
      boot time of app=hello, app=http (with a vif) and a Linux PV DomU (N
      rounds, default 3) on dom0's clock; --min-memory also finds the
      smallest memory= of each; writes a table and target/xen/bench/boot.json";

#[derive(Debug)]
struct Args {
    app: String,
    memory: u32,
    timeout: u64,
    kvm: bool,
    verbose: bool,
    kernel: Option<PathBuf>,
    script: Option<PathBuf>,
    xen: Option<XenRelease>,
    extra: Vec<String>,
}

/// The value of `--xen`.
fn parse_xen(v: Option<&String>) -> Result<XenRelease> {
    let v = v.with_context(|| format!("--xen needs a value: {}", XenRelease::accepted()))?;
    XenRelease::parse(v).context("bad --xen")
}

/// `fetch [--xen R]`.
fn parse_fetch(args: &[String]) -> Result<Option<XenRelease>> {
    match args {
        [] => Ok(None),
        [flag, v] if flag == "--xen" => parse_xen(Some(v)).map(Some),
        _ => bail!("unknown arguments {args:?}\n{USAGE}"),
    }
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args {
        app: "hello".into(),
        memory: 32,
        timeout: 60,
        kvm: false,
        verbose: false,
        kernel: None,
        script: None,
        xen: None,
        extra: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next().cloned().with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--app" => a.app = value("--app")?,
            "--memory" => {
                a.memory = value("--memory")?
                    .parse()
                    .ok()
                    .filter(|m| (4..=65536).contains(m))
                    .context("--memory takes MiB between 4 and 65536")?
            }
            "--timeout" => {
                a.timeout = value("--timeout")?
                    .parse()
                    .ok()
                    .filter(|t| *t > 0)
                    .context("--timeout takes a positive number of seconds")?
            }
            "--kernel" => a.kernel = Some(PathBuf::from(value("--kernel")?)),
            "--dom0-script" => a.script = Some(PathBuf::from(value("--dom0-script")?)),
            "--xen" => a.xen = Some(parse_xen(Some(&value("--xen")?))?),
            "--kvm" => a.kvm = true,
            "--verbose" | "-v" => a.verbose = true,
            "--" => {
                a.extra = it.by_ref().cloned().collect();
            }
            "-h" | "--help" => bail!("{USAGE}"),
            o => bail!("unknown argument {o:?}\n{USAGE}"),
        }
    }
    xtask::xlcfg::validate_name(&a.app).context("bad --app")?;
    Ok(a)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("bench") {
        if let Err(e) = xtask::setup::ensure_packages(xtask::setup::BENCH) {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
    let res = match args.first().map(String::as_str) {
        Some("build") => parse(&args[1..]).and_then(|a| cmd_build(&a)),
        Some("run") => parse(&args[1..]).and_then(|a| cmd_run(&a)),
        Some("test") if args.len() == 1 => ci::run(),
        Some("fetch") => parse_fetch(&args[1..]).and_then(cmd_fetch),
        Some("bench") if args.get(1).map(String::as_str) == Some("boot") => {
            parse_boot_bench(&args[2..]).and_then(|o| xtask::bootbench::run(&o))
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("blk") => {
            parse_blk_bench(&args[2..]).and_then(|o| xtask::blkbench::run(&o))
        }
        Some("bench") if args.get(1).map(String::as_str) == Some("net") => {
            parse_net_bench(&args[2..]).and_then(|o| xtask::netbench::run(&o))
        }
        Some("bench") => parse_bench(&args[1..]).and_then(|o| xtask::bench::run(&o)),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(anyhow::anyhow!("{USAGE}")),
    };
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn parse_blk_bench(args: &[String]) -> Result<xtask::blkbench::BlkBenchOptions> {
    let mut o = xtask::blkbench::BlkBenchOptions::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut num = |what: &str| -> Result<u64> {
            it.next().and_then(|v| v.parse().ok()).with_context(|| format!("{arg} takes {what}"))
        };
        match arg.as_str() {
            "--mib" => o.mib = num("a number of MiB")?.max(1),
            "--ios" => o.ios = num("a count")?.max(32) as u32,
            "--xen" => o.xen = Some(parse_xen(it.next())?),
            "--kvm" => o.kvm = true,
            "--verbose" => o.verbose = true,
            "--no-linux" => o.no_linux = true,
            _ => bail!("unknown option {arg:?}\n{USAGE}"),
        }
    }
    Ok(o)
}

fn parse_net_bench(args: &[String]) -> Result<xtask::netbench::NetBenchOptions> {
    let mut o = xtask::netbench::NetBenchOptions::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut num = |what: &str| -> Result<u64> {
            it.next().and_then(|v| v.parse().ok()).with_context(|| format!("{arg} takes {what}"))
        };
        match arg.as_str() {
            "--mib" => o.bytes = num("a number of MiB")? << 20,
            "--requests" => o.requests = num("a count")? as u32,
            "--xen" => o.xen = Some(parse_xen(it.next())?),
            "--kvm" => o.kvm = true,
            "--verbose" => o.verbose = true,
            "--no-linux" => o.no_linux = true,
            _ => bail!("unknown option {arg:?}\n{USAGE}"),
        }
    }
    Ok(o)
}

fn parse_bench(args: &[String]) -> Result<xtask::bench::BenchOptions> {
    let mut o = xtask::bench::BenchOptions {
        runs: 3,
        quick: false,
        cpu: "both".into(),
        kvm: false,
        verbose: false,
        no_linux: false,
        xen: None,
    };
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("hypercall") => {}
        Some(o) => bail!("unknown benchmark {o:?}: `hypercall` or `boot`\n{USAGE}"),
        None => bail!("which benchmark? `cargo xtask bench hypercall` or `boot`\n{USAGE}"),
    }
    while let Some(arg) = it.next() {
        let mut value =
            |name: &str| it.next().cloned().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--runs" => {
                o.runs = value("--runs")?
                    .parse()
                    .ok()
                    .filter(|n| (1..=20).contains(n))
                    .context("--runs takes a number from 1 to 20")?
            }
            "--cpu" => {
                o.cpu = value("--cpu")?;
                xtask::bench::cpu_models(&o.cpu)?;
            }
            "--quick" => o.quick = true,
            "--xen" => o.xen = Some(parse_xen(value("--xen").ok().as_ref())?),
            "--kvm" => o.kvm = true,
            "--verbose" | "-v" => o.verbose = true,
            "--no-linux" => o.no_linux = true,
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(o)
}

fn parse_boot_bench(args: &[String]) -> Result<xtask::bootbench::BootBenchOptions> {
    let mut o = xtask::bootbench::BootBenchOptions {
        rounds: 3,
        min_memory: false,
        kvm: false,
        verbose: false,
        xen: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rounds" => {
                o.rounds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| (1..=20).contains(n))
                    .context("--rounds takes a number from 1 to 20")?
            }
            "--min-memory" => o.min_memory = true,
            "--xen" => o.xen = Some(parse_xen(it.next())?),
            "--kvm" => o.kvm = true,
            "--verbose" | "-v" => o.verbose = true,
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(o)
}

fn cmd_build(a: &Args) -> Result<()> {
    let b = guest::build(false)?;
    let cfg = guest::write_config(&b.stable, &a.app, &a.extra, a.memory)?;
    println!("guest ELF:      {} ({})", b.stable.display(), guest::size_of(&b.stable));
    println!("stripped ELF:   {} ({})", b.stripped.display(), guest::size_of(&b.stripped));
    println!("xl config:      {}", cfg.display());
    if !guest::has_xen_notes(&b.stable) {
        eprintln!("warning: {} has no Xen ELF notes: Xen will refuse it", b.stable.display());
    }
    println!("on a Xen host:  xl create -c {}", cfg.display());
    Ok(())
}

fn cmd_fetch(xen: Option<XenRelease>) -> Result<()> {
    let lab = Lab::prepare(LabOptions { to_stdout: true, ..LabOptions::default() }.with_xen(xen))?;
    println!("release: {} from {}", lab.bundle.release, lab.bundle.release.debian());
    println!("tree:   {}", lab.bundle.root.display());
    println!("xen:    {}", lab.bundle.xen.display());
    println!("kernel: {} ({})", lab.bundle.vmlinuz.display(), lab.bundle.kernel_version);
    Ok(())
}

fn cmd_run(a: &Args) -> Result<()> {
    let total = Instant::now();
    let mut timings = Timings::default();

    let kernel = match &a.kernel {
        Some(k) => {
            if !k.is_file() {
                bail!("--kernel {}: no such file", k.display());
            }
            k.clone()
        }
        None => {
            let t = Instant::now();
            let b = guest::build(true)?;
            guest::write_config(&b.stable, &a.app, &a.extra, a.memory)?;
            timings.add("guest build", t.elapsed());
            println!("[lab] guest built: {} ({})", b.stable.display(), guest::size_of(&b.stable));
            b.stable
        }
    };

    let opts = LabOptions {
        kvm: a.kvm,
        verbose: a.verbose || LabOptions::default().verbose,
        echo: if a.verbose { Echo::All } else { Echo::Guests },
        to_stdout: true,
        label: "run".into(),
        ..LabOptions::default()
    }
    .with_xen(a.xen);
    let lab = Lab::prepare(opts)?;
    timings.phases.insert(0, ("fetch".to_string(), lab.fetch_time));

    let spec = GuestSpec::new(&a.app, &kernel, &a.app)
        .args(&a.extra)
        .memory(a.memory)
        .timeout(Duration::from_secs(a.timeout));
    let scenario = match &a.script {
        None => Scenario::single(spec),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --dom0-script {}", p.display()))?;
            let mut s = Scenario::script("script", vec![spec], &text);
            s.slack = Duration::from_secs(a.timeout);
            s
        }
    };
    let report = lab.boot(&[scenario])?;
    timings.add_boot(&report);
    println!("\nphase timings:\n{}", timings.table(total.elapsed()));
    if let Some(p) = &report.serial_log {
        println!("serial log: {}", p.display());
    }

    let run = report.runs.iter().find(|r| r.name == a.app);
    match run {
        Some(r) if r.result == GuestResult::Poweroff && report.failure.is_none() => {
            println!(
                "OK: guest {} (domid {}) powered off cleanly",
                r.name,
                r.domid.map_or("?".into(), |d| d.to_string())
            );
            if !r.console_complete {
                eprintln!("warning: the guest's console log did not reach the host complete");
            }
            Ok(())
        }
        Some(r) if r.result != GuestResult::Incomplete => bail!(
            "guest {} ended with {} (domid {}){}",
            r.name,
            r.result,
            r.domid.map_or("?".into(), |d| d.to_string()),
            report.failure.as_ref().map_or(String::new(), |f| format!("; {f}"))
        ),
        _ => bail!("{}", report.failure.clone().unwrap_or_else(|| "the guest never ran".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn xen_release_options() {
        assert_eq!(parse(&args(&[])).unwrap().xen, None);
        assert_eq!(parse(&args(&["--xen", "4.20"])).unwrap().xen, Some(XenRelease::V4_20));
        let e = format!("{:#}", parse(&args(&["--xen", "4.21"])).unwrap_err());
        assert!(e.contains("4.17, 4.20"), "{e}");
        assert!(parse(&args(&["--xen"])).is_err());
        assert_eq!(parse_fetch(&args(&[])).unwrap(), None);
        assert_eq!(parse_fetch(&args(&["--xen", "4.17"])).unwrap(), Some(XenRelease::V4_17));
        assert!(parse_fetch(&args(&["--xen"])).is_err());
        assert!(parse_fetch(&args(&["--kvm"])).is_err());
        assert_eq!(
            parse_boot_bench(&args(&["--xen", "4.20"])).unwrap().xen,
            Some(XenRelease::V4_20)
        );
        assert_eq!(
            parse_bench(&args(&["hypercall", "--xen", "4.20"])).unwrap().xen,
            Some(XenRelease::V4_20)
        );
        assert_eq!(
            parse_net_bench(&args(&["--xen", "4.20"])).unwrap().xen,
            Some(XenRelease::V4_20)
        );
        assert_eq!(
            parse_blk_bench(&args(&["--xen", "4.20"])).unwrap().xen,
            Some(XenRelease::V4_20)
        );
    }
}
