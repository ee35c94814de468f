//! `cargo xtask`: build the guest, run it on Xen in QEMU, run all checks.
//! `cargo xtask help` (or `COMMAND --help`) lists every command and option;
//! the arguments are parsed by clap from the types below.

mod ci;
mod faildigest;

use anyhow::{bail, Context, Result};
use clap::{Args as ClapArgs, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Instant;
use xtask::guest;
use xtask::lab::Echo;
use xtask::report::Timings;
use xtask::{GuestMode, GuestResult, Lab, LabOptions, XenRelease};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build the Rust PV guest, boot it on real Xen (in QEMU) as a DomU, test and benchmark it",
    after_help = "Without --xen, $XENPV_XEN picks the release (4.17 when unset)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build the guest; write target/xen/guest.elf and target/xen/guest.cfg.
    Build(GuestArgs),
    /// Build the guest and run it as a DomU on Xen in QEMU; exit 0 only if
    /// it powers off cleanly.
    Run(RunArgs),
    /// fmt, clippy (host and guest), unit tests, the loom model, and the
    /// boot tests: on Xen 4.17 and then on 4.20, or on the one --xen (or
    /// $XENPV_XEN) names; each as PV guests, then as PVH guests.
    Test {
        /// Run the boot tests on this release only.
        #[arg(long, value_parser = parse_release)]
        xen: Option<XenRelease>,
        /// Every check but the boot tests (no QEMU boot).
        #[arg(long, conflicts_with = "xen")]
        no_boot: bool,
    },
    /// Download and extract Xen and dom0 into the cache only.
    Fetch {
        /// The Xen release: 4.17 (Debian 12) or 4.20 (Debian 13).
        #[arg(long, value_parser = parse_release)]
        xen: Option<XenRelease>,
    },
    /// Benchmarks against a Linux PV DomU on the same Xen.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Demonstrations of a mechanism on real Xen (docs/README.md).
    #[command(subcommand)]
    Demo(DemoCmd),
    /// Parses ARGS as a command line of this tool and says what it would
    /// do, without doing it (the docs test checks the chapters' long
    /// commands with it).
    #[command(hide = true)]
    CheckArgs {
        #[arg(last = true, required = true)]
        args: Vec<String>,
    },
    /// Run every fuzz target (the `fuzz_*` host tests, see fuzzkit) for
    /// SECS seconds each from a fresh seed, optimised; a failing input is
    /// saved under target/fuzz-crashes/<target>/.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        secs: u64,
    },
}

/// What the guest runs.
#[derive(Debug, ClapArgs)]
struct GuestArgs {
    /// The app: hello, selftest, idle, bench, blk, echo, http, fault, panic.
    #[arg(long, default_value = "hello")]
    app: String,
    /// The guest's memory in MiB.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(4..=65536))]
    memory: u32,
    /// The kind of domain: pv, pvh (nested paging) or pvh-shadow (hap=0);
    /// default $XENPV_MODE, else pv.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<GuestMode>,
    /// Words for the guest's command line (xl `extra=`), after `--`.
    #[arg(last = true)]
    extra: Vec<String>,
}

/// How the lab boots.
#[derive(Debug, ClapArgs)]
struct LabArgs {
    /// The Xen release: 4.17 (Debian 12) or 4.20 (Debian 13).
    #[arg(long, value_parser = parse_release)]
    xen: Option<XenRelease>,
    /// Try KVM (Xen dies under KVM on the known machines).
    #[arg(long)]
    kvm: bool,
    /// Every serial line, verbose Xen and dom0 logging.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Debug, ClapArgs)]
struct RunArgs {
    #[command(flatten)]
    guest: GuestArgs,
    #[command(flatten)]
    lab: LabArgs,
    /// Seconds the guest may run.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Boot this ELF instead of building the guest.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Run FILE in dom0 (busybox sh, with run_guest etc. from
    /// build/src/dom0/lib.sh) instead of run_guest; the guest's config is
    /// /etc/xen-lab/guests/APP.cfg.
    #[arg(long, value_name = "FILE")]
    dom0_script: Option<PathBuf>,
    /// Give the guest a network interface on dom0's bridge xenbr0.
    #[arg(long)]
    vif: bool,
    /// Give the guest a disk (xvda) of MIB MiB, a zeroed file in dom0.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=1024))]
    disk: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum DemoCmd {
    /// Xen's credit scheduler: two app=spin guests on one CPU of a credit
    /// cpupool, weights 256 and 512, then a 25% cap; prints the share of
    /// the CPU each got (from its runstate) against the promise.
    Sched {
        /// Seconds each guest spins per round.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(5..=600))]
        secs: u64,
        #[command(flatten)]
        lab: LabArgs,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// Hypercall latency of app=bench and of a Linux PV DomU's kernel
    /// module, per QEMU CPU model; writes a table,
    /// target/xen/bench/hypercall.json and hypercall.png.
    Hypercall {
        /// Runs of the guest per CPU model.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        runs: u32,
        /// 300 samples per figure instead of 10,000.
        #[arg(long)]
        quick: bool,
        /// QEMU CPU models.
        #[arg(long, default_value = "both", value_parser = ["amd", "intel", "both"])]
        cpu: String,
        /// Skip the Linux comparator.
        #[arg(long)]
        no_linux: bool,
        /// vCPUs of both guests (2 or more adds an IPI round trip and a
        /// TLB shootdown across vCPUs).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=4))]
        vcpus: u32,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Memory virtualization three ways in one boot: app=bench's paging
    /// suite as PV, PVH (nested paging) and PVH with shadow paging (hap=0;
    /// a row saying so when Xen refuses it), beside a Linux DomU as PV and
    /// PVH (null hypercall, event round trip, PTE update, page-fault round
    /// trip, CR3 reload, a walk larger than the TLB); checks every figure
    /// and the orderings that must hold; writes target/xen/bench/paging.txt,
    /// paging.json and paging.png (paging-quick.* with --quick).
    Paging {
        /// Runs of our guest per mode (and rounds of each Linux DomU).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        runs: u32,
        /// 300 samples per figure and a 16 MiB walk (what `cargo xtask test` runs).
        #[arg(long)]
        quick: bool,
        /// The walk's working set, MiB, at least 16 (larger than any TLB's
        /// reach) [default: 64, quick: 16].
        #[arg(long, value_parser = clap::value_parser!(u64).range(16..=1024))]
        walk_mib: Option<u64>,
        /// Skip the Linux DomUs.
        #[arg(long)]
        no_linux: bool,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// TCP throughput both ways and 64-byte request rate of app=echo and of
    /// a Linux PV DomU, measured from dom0 by nettool; writes
    /// target/xen/bench/net.txt and net.json.
    Net {
        /// MiB per throughput transfer [default: 32].
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
        mib: Option<u64>,
        /// Request/response round trips [default: 2000].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        requests: Option<u32>,
        /// Skip the Linux DomU.
        #[arg(long)]
        no_linux: bool,
        /// More settings for our guest's command line (KEY=VALUE, e.g.
        /// net.rx_batch=1), repeatable.
        #[arg(long = "guest-arg", value_name = "KEY=VALUE")]
        guest_args: Vec<String>,
        /// vCPUs of both guests; writes net-vcpusN.{txt,json} for N > 1.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4))]
        vcpus: u32,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Requests/s and p50/p99/max latency of app=http's GET /bench at 1,
    /// 16, 64 and 256 clients, keep-alive on and off, and of a Linux PV
    /// DomU's epoll server, from dom0 by httptool; writes
    /// target/xen/bench/http.txt and http.json.
    Http {
        /// Requests per point [default: 2000].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        requests: Option<u32>,
        /// Skip the Linux DomU.
        #[arg(long)]
        no_linux: bool,
        /// More settings for our guest's command line (KEY=VALUE, e.g.
        /// net.poll_us=50), repeatable.
        #[arg(long = "guest-arg", value_name = "KEY=VALUE")]
        guest_args: Vec<String>,
        /// vCPUs of both guests (ours: a shard per vCPU; Linux: as many
        /// server workers); writes http-vcpusN.{txt,json} for N > 1.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4))]
        vcpus: u32,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Sequential MiB/s and 4 KiB random IOPS at queue depth 1 and 32 of
    /// app=blk and of a Linux PV DomU on one dom0 loop disk; writes
    /// target/xen/bench/blk.txt and blk.json.
    Blk {
        /// Disk size and sequential span, MiB [default: 32].
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
        mib: Option<u64>,
        /// Random I/Os per test, at least 32 (the deepest queue) [default: 2000].
        #[arg(long, value_parser = clap::value_parser!(u32).range(32..))]
        ios: Option<u32>,
        /// Skip the Linux DomU.
        #[arg(long)]
        no_linux: bool,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Boot time of app=hello, app=http (with a vif) and a Linux PV DomU on
    /// dom0's clock; writes a table and target/xen/bench/boot.json.
    Boot {
        /// Rounds (each kind once per round).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        rounds: u32,
        /// Also find each kind's smallest memory=.
        #[arg(long)]
        min_memory: bool,
        #[command(flatten)]
        lab: LabArgs,
    },
    /// xl save time, image size and xl restore time of app=http (with a
    /// vif) and of a Linux DomU of the same size, each as PV and PVH; for
    /// PVH also xl migrate to this host: total time, downtime (gap in a
    /// 10 ms ping from dom0) and pages per pre-copy round; writes
    /// target/xen/bench/migrate.txt and migrate.json.
    Migrate {
        /// Saves + restores, and migrations, per guest.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
        rounds: u32,
        /// Every guest's memory, MiB (a Linux DomU needs at least 96).
        #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(32..=1024))]
        memory: u32,
        /// Skip the Linux DomUs.
        #[arg(long)]
        no_linux: bool,
        #[command(flatten)]
        lab: LabArgs,
    },
}

fn parse_mode(s: &str) -> Result<GuestMode, String> {
    GuestMode::parse(s).map_err(|e| e.to_string())
}

impl GuestArgs {
    /// --mode, else $XENPV_MODE, else PV.
    fn mode(&self) -> Result<GuestMode> {
        match self.mode {
            Some(m) => Ok(m),
            None => GuestMode::from_env().map_err(anyhow::Error::msg),
        }
    }
}

fn parse_release(s: &str) -> Result<XenRelease, String> {
    XenRelease::parse(s).map_err(|e| e.to_string())
}

/// `cargo xtask fuzz --secs N`: the fuzz targets of every crate, each for
/// N seconds (`XENPV_FUZZ_SECS`), two at a time.
fn cmd_fuzz(secs: u64) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("==> fuzz: every fuzz_* target for {secs} s each (seeds printed; failures saved under target/fuzz-crashes/)");
    let status = std::process::Command::new(cargo)
        .current_dir(xtask::workspace_root())
        .env("XENPV_FUZZ_SECS", secs.to_string())
        .args(["test", "--release", "--workspace", "--exclude", "xen-tests", "fuzz_"])
        .args(["--", "--test-threads=2", "--nocapture"])
        .status()?;
    if !status.success() {
        anyhow::bail!("a fuzz target failed ({status}); see the saved input named above");
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = dispatch(cli.cmd) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Build(g) => cmd_build(&g),
        Cmd::Run(r) => cmd_run(&r),
        Cmd::Test { xen, no_boot } => {
            // --xen, else $XENPV_XEN, else every release. (Not clap's `env`:
            // an empty $XENPV_XEN means unset here, an error to clap.)
            let env = std::env::var(xtask::release::XEN_ENV).ok().filter(|v| !v.trim().is_empty());
            let xen = match (xen, env) {
                (Some(x), _) => Some(x),
                (None, Some(_)) => Some(XenRelease::from_env().map_err(anyhow::Error::msg)?),
                (None, None) => None,
            };
            ci::run(xen, no_boot)
        }
        Cmd::Fetch { xen } => cmd_fetch(xen),
        Cmd::Fuzz { secs } => cmd_fuzz(secs),
        Cmd::Bench(b) => {
            xtask::setup::ensure_packages(xtask::setup::BENCH)?;
            run_bench(b)
        }
        Cmd::Demo(DemoCmd::Sched { secs, lab }) => cmd_demo_sched(secs, &lab),
        Cmd::CheckArgs { args } => {
            let cli = Cli::try_parse_from(std::iter::once("xtask".to_string()).chain(args))
                .map_err(|e| anyhow::anyhow!("{}", e.render()))?;
            println!("would run: {:?}", cli.cmd);
            Ok(())
        }
    }
}

fn run_bench(b: BenchCmd) -> Result<()> {
    match b {
        BenchCmd::Hypercall { runs, quick, cpu, no_linux, vcpus, lab } => {
            xtask::bench::run(&xtask::bench::BenchOptions {
                runs,
                quick,
                cpu,
                kvm: lab.kvm,
                verbose: lab.verbose,
                no_linux,
                xen: lab.xen,
                vcpus,
            })
        }
        BenchCmd::Paging { runs, quick, walk_mib, no_linux, lab } => {
            xtask::pagingbench::run(&xtask::pagingbench::PagingOptions {
                runs,
                quick,
                no_linux,
                walk_mib,
                kvm: lab.kvm,
                verbose: lab.verbose,
                xen: lab.xen,
            })
        }
        BenchCmd::Net { mib, requests, no_linux, guest_args, vcpus, lab } => {
            let d = xtask::netbench::NetBenchOptions::default();
            xtask::netbench::run(&xtask::netbench::NetBenchOptions {
                bytes: mib.map_or(d.bytes, |m| m << 20),
                requests: requests.unwrap_or(d.requests),
                kvm: lab.kvm,
                verbose: lab.verbose,
                no_linux,
                xen: lab.xen,
                vcpus,
                guest_args,
            })
        }
        BenchCmd::Http { requests, no_linux, guest_args, vcpus, lab } => {
            let d = xtask::httpbench::HttpBenchOptions::default();
            xtask::httpbench::run(&xtask::httpbench::HttpBenchOptions {
                requests: requests.unwrap_or(d.requests),
                kvm: lab.kvm,
                verbose: lab.verbose,
                no_linux,
                xen: lab.xen,
                guest_args,
                vcpus,
            })
        }
        BenchCmd::Blk { mib, ios, no_linux, lab } => {
            let d = xtask::blkbench::BlkBenchOptions::default();
            xtask::blkbench::run(&xtask::blkbench::BlkBenchOptions {
                mib: mib.unwrap_or(d.mib),
                ios: ios.unwrap_or(d.ios),
                kvm: lab.kvm,
                verbose: lab.verbose,
                no_linux,
                xen: lab.xen,
            })
        }
        BenchCmd::Migrate { rounds, memory, no_linux, lab } => {
            xtask::migbench::run(&xtask::migbench::MigBenchOptions {
                rounds,
                memory_mib: memory,
                kvm: lab.kvm,
                verbose: lab.verbose,
                no_linux,
                xen: lab.xen,
            })
        }
        BenchCmd::Boot { rounds, min_memory, lab } => {
            xtask::bootbench::run(&xtask::bootbench::BootBenchOptions {
                rounds,
                min_memory,
                kvm: lab.kvm,
                verbose: lab.verbose,
                xen: lab.xen,
            })
        }
    }
}

fn cmd_build(a: &GuestArgs) -> Result<()> {
    xtask::xlcfg::validate_name(&a.app).context("bad --app")?;
    let b = guest::build(false)?;
    let cfg = guest::write_config(&b.stable, &a.app, &a.extra, a.memory, a.mode()?)?;
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
    println!("qemu:   {}", lab.qemu.name);
    Ok(())
}

fn cmd_run(r: &RunArgs) -> Result<()> {
    let a = &r.guest;
    xtask::xlcfg::validate_name(&a.app).context("bad --app")?;
    let total = Instant::now();
    let mut timings = Timings::default();

    let kernel = match &r.kernel {
        Some(k) => {
            if !k.is_file() {
                bail!("--kernel {}: no such file", k.display());
            }
            k.clone()
        }
        None => {
            let t = Instant::now();
            let b = guest::build(true)?;
            guest::write_config(&b.stable, &a.app, &a.extra, a.memory, a.mode()?)?;
            timings.add("guest build", t.elapsed());
            println!("[lab] guest built: {} ({})", b.stable.display(), guest::size_of(&b.stable));
            b.stable
        }
    };

    let opts = LabOptions {
        kvm: r.lab.kvm,
        verbose: r.lab.verbose || LabOptions::default().verbose,
        echo: if r.lab.verbose { Echo::All } else { Echo::Guests },
        to_stdout: true,
        label: "run".into(),
        ..LabOptions::default()
    }
    .with_xen(r.lab.xen);
    let lab = Lab::prepare(opts)?;
    timings.phases.insert(0, ("fetch".to_string(), lab.fetch_time));

    let spec = xtask::run::RunSpec {
        app: a.app.clone(),
        memory: a.memory,
        mode: a.mode()?,
        timeout: r.timeout,
        vif: r.vif,
        disk: r.disk,
        extra: a.extra.clone(),
        dom0_script: r.dom0_script.clone(),
    };
    let scenario = xtask::run::scenario(&a.app, &kernel, &spec)?;
    let report = lab.boot(&[scenario])?;
    timings.add_boot(&report);
    println!("\nphase timings:\n{}", timings.table(total.elapsed()));
    if let Some(p) = &report.serial_log {
        println!("serial log: {}", p.display());
    }

    let run = report.runs.iter().find(|r| r.name == a.app);
    if run.is_none() && r.dom0_script.is_some() && !report.runs.is_empty() {
        // The script ran guests of its own names (build/scripts/bench-repeat.sh):
        // each one's result, and success only if all powered off.
        return script_outcome(&report);
    }
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

/// `cargo xtask demo sched`.
fn cmd_demo_sched(secs: u64, lab: &LabArgs) -> Result<()> {
    let b = guest::build(true)?;
    let opts = LabOptions {
        kvm: lab.kvm,
        verbose: lab.verbose || LabOptions::default().verbose,
        echo: if lab.verbose { Echo::All } else { Echo::Guests },
        to_stdout: true,
        label: "demo-sched".into(),
        ..LabOptions::default()
    }
    .with_xen(lab.xen);
    let lab = Lab::prepare(opts)?;
    let report = lab.boot(&xtask::demo::scenarios(&b.stable, secs))?;
    for run in &report.runs {
        for l in run.xl_output.iter().filter(|l| l.starts_with("[xl sched]")) {
            println!("{l}");
        }
    }
    let rows = xtask::demo::results(&report);
    println!(
        "\nXen's credit scheduler, one physical CPU shared by two app=spin guests at a time ({secs} s each round); got = the share of wall-clock time the guest ran, from its runstate:\n"
    );
    print!("{}", xtask::demo::table(&rows));
    if let Some(f) = &report.failure {
        bail!("the boot failed: {f}");
    }
    let missing: Vec<&str> =
        rows.iter().filter(|(_, r)| r.is_none()).map(|(c, _)| c.name).collect();
    if !missing.is_empty() {
        bail!("no result from {}", missing.join(", "));
    }
    Ok(())
}

/// The outcome of a `--dom0-script` whose guests have their own names.
fn script_outcome(report: &xtask::scenario::BootReport) -> Result<()> {
    let mut bad = Vec::new();
    for g in &report.runs {
        println!("guest {}: {}", g.name, g.result);
        if g.result != GuestResult::Poweroff {
            bad.push(format!("{} ended with {}", g.name, g.result));
        }
    }
    if let Some(f) = &report.failure {
        bad.push(f.clone());
    }
    match bad.first() {
        None => {
            println!(
                "OK: the dom0 script's {} guest(s) all powered off cleanly",
                report.runs.len()
            );
            Ok(())
        }
        Some(_) => bail!("{} of the dom0 script's guests: {}", bad.len(), bad.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Result<Cmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(a.iter().copied())).map(|c| c.cmd)
    }

    #[test]
    fn a_scripts_own_guests_decide_its_outcome() {
        use xtask::scenario::BootReport;
        let run = |name: &str, result| {
            let mut g = xtask::GuestRun::new(name, "script");
            g.result = result;
            g
        };
        let mut r = BootReport {
            runs: vec![run("bench1", GuestResult::Poweroff), run("bench2", GuestResult::Poweroff)],
            ..BootReport::default()
        };
        assert!(script_outcome(&r).is_ok());
        r.runs.push(run("bench3", GuestResult::Crash));
        let e = script_outcome(&r).unwrap_err().to_string();
        assert!(e.contains("bench3 ended with crash"), "{e}");
        r.runs.truncate(2);
        r.failure = Some("QEMU timed out".into());
        assert!(script_outcome(&r).unwrap_err().to_string().contains("QEMU timed out"));
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_guest_lab_and_command_line() {
        let Ok(Cmd::Run(r)) =
            parse(&["run", "--app", "echo", "--xen", "4.20", "--", "ip=1.2.3.4/24"])
        else {
            panic!("run did not parse");
        };
        assert_eq!((r.guest.app.as_str(), r.guest.memory, r.timeout), ("echo", 32, 60));
        assert_eq!(r.lab.xen, Some(XenRelease::V4_20));
        assert_eq!(r.guest.extra, ["ip=1.2.3.4/24"]);
        let Ok(Cmd::Run(r)) = parse(&["run", "--mode", "pvh-shadow"]) else {
            panic!("run --mode did not parse");
        };
        assert_eq!(r.guest.mode, Some(GuestMode::PvhShadow));
        assert!(parse(&["run", "--mode", "hvm"]).unwrap_err().to_string().contains("pvh-shadow"));
    }

    #[test]
    fn check_args_parses_without_running() {
        let Ok(Cmd::CheckArgs { args }) =
            parse(&["check-args", "--", "bench", "net", "--mib", "8"])
        else {
            panic!("check-args did not parse");
        };
        assert_eq!(args, ["bench", "net", "--mib", "8"]);
        assert!(dispatch(Cmd::CheckArgs { args }).is_ok());
        let bad =
            vec!["bench".to_string(), "net".to_string(), "--mib".to_string(), "0".to_string()];
        assert!(dispatch(Cmd::CheckArgs { args: bad }).is_err());
    }

    #[test]
    fn run_takes_devices_and_demo_takes_seconds() {
        let Ok(Cmd::Run(r)) = parse(&["run", "--app", "tour", "--vif", "--disk", "2"]) else {
            panic!("run --vif --disk did not parse");
        };
        assert!(r.vif);
        assert_eq!(r.disk, Some(2));
        assert!(parse(&["run", "--disk", "0"]).is_err());
        let Ok(Cmd::Demo(DemoCmd::Sched { secs, .. })) = parse(&["demo", "sched", "--secs", "10"])
        else {
            panic!("demo sched did not parse");
        };
        assert_eq!(secs, 10);
        assert!(parse(&["demo", "sched", "--secs", "1"]).is_err());
    }

    #[test]
    fn bad_values_are_errors_naming_what_is_accepted() {
        let e = parse(&["run", "--xen", "4.21"]).unwrap_err().to_string();
        assert!(e.contains("4.17, 4.20"), "{e}");
        assert!(parse(&["run", "--xen"]).is_err());
        assert!(parse(&["run", "--memory", "2"]).is_err());
        assert!(parse(&["run", "--timeout", "0"]).is_err());
        assert!(parse(&["run", "--mystery"]).is_err());
        assert!(parse(&["fetch", "--kvm"]).is_err());
        assert!(parse(&["bench", "blk", "--ios", "8"]).is_err());
        assert!(parse(&["bench", "blk", "--mib", "0"]).is_err());
        assert!(parse(&["bench", "hypercall", "--cpu", "arm"]).is_err());
        assert!(parse(&["bench", "hypercall", "--runs", "21"]).is_err());
        assert!(parse(&["bench", "disk"]).is_err());
    }

    #[test]
    fn every_command_takes_the_release() {
        for cmd in [
            &["fetch", "--xen", "4.20"][..],
            &["test", "--xen", "4.20"],
            &["bench", "hypercall", "--xen", "4.20"],
            &["bench", "net", "--xen", "4.20"],
            &["bench", "http", "--xen", "4.20"],
            &["bench", "blk", "--xen", "4.20"],
            &["bench", "boot", "--xen", "4.20"],
            &["demo", "sched", "--xen", "4.20"],
        ] {
            let xen = match parse(cmd).unwrap() {
                Cmd::Fetch { xen } | Cmd::Test { xen, .. } => xen,
                Cmd::Bench(
                    BenchCmd::Hypercall { lab, .. }
                    | BenchCmd::Net { lab, .. }
                    | BenchCmd::Http { lab, .. }
                    | BenchCmd::Blk { lab, .. }
                    | BenchCmd::Boot { lab, .. },
                )
                | Cmd::Demo(DemoCmd::Sched { lab, .. }) => lab.xen,
                other => panic!("{other:?}"),
            };
            assert_eq!(xen, Some(XenRelease::V4_20), "{cmd:?}");
        }
    }
}
