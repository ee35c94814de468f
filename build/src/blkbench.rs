//! `cargo xtask bench blk`: sequential throughput (1 MiB requests) and
//! 4 KiB random IOPS at queue depth 1 and 32, read and write, of our
//! guest (`app=blk blk.mode=bench`) and of a Linux PV DomU (Debian's
//! kernel with `xen-blkfront`, `blktool` from `build/blktool/`: O_DIRECT,
//! native AIO for depth 32), one QEMU boot, the same loop-device disk in
//! dom0 for both, the same random offsets; with the ratio, and our
//! guest's deterministic figures per request: hypercalls (notifications,
//! timer sets, blocks), notifications, grant operations.

use crate::lab::{Lab, LabOptions};
use crate::report::{self, Style, Table};
use crate::scenario::{BootReport, GuestSpec, Scenario};
use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `blktool`'s C source.
pub const BLKTOOL_C: &str = include_str!("../blktool/blktool.c");

/// Settings of one benchmark run.
#[derive(Debug, Clone)]
pub struct BlkBenchOptions {
    /// Disk size and sequential span, MiB.
    pub mib: u64,
    /// Random I/Os per test.
    pub ios: u32,
    pub kvm: bool,
    pub verbose: bool,
    /// Skip the Linux DomU.
    pub no_linux: bool,
    /// The Xen release (`None`: `$XENPV_XEN`, else 4.17).
    pub xen: Option<crate::release::XenRelease>,
}

impl Default for BlkBenchOptions {
    fn default() -> Self {
        Self { mib: 32, ios: 2000, kvm: false, verbose: false, no_linux: false, xen: None }
    }
}

const OURS: &str = "bb-ours";
const LINUX: &str = "bb-linux";
/// The tests, in the order both sides run them.
pub const TESTS: [&str; 6] = [
    "seq-write",
    "seq-read",
    "rand-read-qd1",
    "rand-write-qd1",
    "rand-read-qd32",
    "rand-write-qd32",
];

/// The Linux DomU's `/init`: blkfront up, `blktool` over `/dev/xvda`.
pub const LINUX_INIT: &str = include_str!("linux-domu/blk-init.sh");

/// The Linux DomU's initramfs: busybox, `xen-blkfront`, `blktool`, `/init`.
pub fn linux_initramfs(
    bundle: &crate::debs::Dom0Bundle,
    tool: &Path,
) -> Result<crate::cpio::Archive> {
    let mut a = crate::linuxbench::busybox_archive(
        bundle,
        &["sh", "mount", "insmod", "cat", "sleep", "uname", "ls", "wc", "poweroff"],
    )?;
    crate::linuxbench::add_modules(&mut a, bundle, &["xen-blkfront"])?;
    a.file("bin/blktool", 0o755, crate::cmd::read(tool)?);
    a.file("init", 0o755, LINUX_INIT);
    Ok(a)
}

fn disk_line() -> String {
    "disk = ['format=raw, vdev=xvda, access=rw, backendtype=phy, script=/etc/xen/scripts/block, target=/dev/loop0']".into()
}

/// The boot: a loop disk in dom0, our guest, then the Linux DomU on it.
pub fn scenarios(
    o: &BlkBenchOptions,
    kernel: &Path,
    vmlinuz: &Path,
    linux_ramdisk: Option<&Path>,
) -> Vec<Scenario> {
    let span = o.mib << 20;
    let mut ours = GuestSpec::new(OURS, kernel, "blk")
        .args(&[
            "blk.mode=bench".into(),
            format!("blk.bench_mib={}", o.mib),
            format!("blk.ios={}", o.ios),
        ])
        .memory(64)
        .timeout(Duration::from_secs(1200));
    ours.extra_config.push(disk_line());
    let mut guests = vec![ours.clone()];
    let run = |name: &str, cfg: String| format!("bk_run {name} {cfg} {} 1200\n", o.mib);
    let mut script = format!(". {}\n{}", crate::dom0::BENCH_BLK.0, run(OURS, ours.cfg_path()));
    if let Some(rd) = linux_ramdisk {
        let mut g = GuestSpec::new(LINUX, vmlinuz, "none")
            .memory(256)
            .timeout(Duration::from_secs(1200))
            .ramdisk(rd);
        g.cmdline = format!("console=hvc0 quiet bench_span={span} bench_ios={}", o.ios);
        g.extra_config.push(disk_line());
        script.push_str(&run(LINUX, g.cfg_path()));
        guests.push(g);
    }
    vec![Scenario::script("blk-bench", guests, &script)]
}

/// One test's figures from a `BLKBENCH` or `BLKTOOL` line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figure {
    pub kib_s: f64,
    pub iops: f64,
    /// Ours only: per request.
    pub hcalls_per_req: Option<f64>,
    pub notifies_per_req: Option<f64>,
    pub grant_ops_per_req: Option<f64>,
}

/// The figures of the lines tagged `tag` (`BLKBENCH` or `BLKTOOL`), by test.
pub fn parse_side(tag: &str, lines: &[String]) -> BTreeMap<String, Figure> {
    let mut out = BTreeMap::new();
    let key = format!("{tag} test=");
    for l in lines {
        let Some(at) = l.find(&key) else { continue };
        let kv: BTreeMap<&str, &str> =
            l[at + tag.len() + 1..].split_whitespace().filter_map(|w| w.split_once('=')).collect();
        let Some(&test) = kv.get("test") else { continue };
        let num = |k: &str| kv.get(k).and_then(|v| v.parse::<f64>().ok());
        let (Some(kib_s), Some(iops)) = (num("kib_s"), num("iops")) else { continue };
        out.insert(
            test.to_string(),
            Figure {
                kib_s,
                iops,
                hcalls_per_req: num("hcalls_per_req"),
                notifies_per_req: num("notifies_per_req"),
                grant_ops_per_req: num("grant_ops_per_req"),
            },
        );
    }
    out
}

/// The figure the test is judged by: MiB/s for sequential, IOPS for random.
fn headline(test: &str, f: &Figure) -> f64 {
    if test.starts_with("seq") {
        f.kib_s / 1024.0
    } else {
        f.iops
    }
}

pub fn table(
    ours: &BTreeMap<String, Figure>,
    linux: &BTreeMap<String, Figure>,
    o: &BlkBenchOptions,
) -> String {
    let mut s = format!(
        "blk: {} MiB loop disk in dom0 (blkback), {} random 4 KiB I/Os per test; sequential in MiB/s (1 MiB requests), random in IOPS\n",
        o.mib, o.ios
    );
    let mut t = Table::new(Style::Plain)
        .left("test", 16)
        .right("ours", 10)
        .right("linux", 10)
        .right("ratio", 7)
        .bar()
        .right("ours per request: hcalls", 26)
        .right("notifies", 9)
        .right("grant ops", 10);
    let cell = report::cell;
    for test in TESTS {
        let a = ours.get(test);
        let b = linux.get(test);
        let ha = a.map(|f| headline(test, f));
        let hb = b.map(|f| headline(test, f));
        let ratio = match (ha, hb) {
            (Some(x), Some(y)) if y > 0.0 => Some(x / y),
            _ => None,
        };
        t.row([
            test.to_string(),
            cell(ha, 1),
            cell(hb, 1),
            cell(ratio, 2),
            cell(a.and_then(|f| f.hcalls_per_req), 3),
            cell(a.and_then(|f| f.notifies_per_req), 3),
            cell(a.and_then(|f| f.grant_ops_per_req), 3),
        ]);
    }
    s.push_str(&t.render());
    s.push_str(
        "ratio: ours / Linux (higher is better for us). hcalls: traps for EVTCHNOP_send + set_timer_op + SCHEDOP_block per ring request (a block's multicall counted once);\n\
         grant ops: grants made + revoked per request (persistent grants: hot bounce pages are granted once).\n",
    );
    s
}

/// The JSON report (`blk.json`): every test's figures by name, per side.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub mib: u64,
    pub ios: u32,
    pub ours: &'a BTreeMap<String, Figure>,
    pub linux: &'a BTreeMap<String, Figure>,
}

pub fn to_json<'a>(
    ours: &'a BTreeMap<String, Figure>,
    linux: &'a BTreeMap<String, Figure>,
    o: &BlkBenchOptions,
) -> Report<'a> {
    Report { mib: o.mib, ios: o.ios, ours, linux }
}

/// Runs the benchmark and writes `target/xen/bench/blk.{txt,json}`.
pub fn run(o: &BlkBenchOptions) -> Result<()> {
    let t = Instant::now();
    let guest = crate::guest::build(true)?;
    let opts = LabOptions::bench("bench-blk", o.kvm, o.verbose, o.xen);
    let lab = Lab::prepare(opts)?;
    let out = crate::bench::out_dir();
    crate::cmd::mkdir(&out)?;
    let ramdisk: Option<PathBuf> = if o.no_linux {
        None
    } else {
        let tool = crate::ctool::build_static(&lab.opts.cache_dir, "blktool", BLKTOOL_C)?;
        let a = linux_initramfs(&lab.bundle, &tool)?;
        Some(crate::bench::write_ramdisk(&out, "blk", &a.to_bytes())?)
    };
    let sc = scenarios(o, &guest.stable, &lab.bundle.vmlinuz, ramdisk.as_deref());
    let report = lab.boot(&sc)?;
    let (ours, linux) = collect(&report);
    let text = table(&ours, &linux, o);
    println!("\n{text}");
    report::write(&out, "blk", &text, &to_json(&ours, &linux, o))?;
    println!("total: {:.0} s", t.elapsed().as_secs_f64());
    if let Some(f) = &report.failure {
        bail!("boot: {f}");
    }
    if ours.len() < TESTS.len() {
        bail!("the Rust guest's measurements are incomplete");
    }
    if !o.no_linux && linux.len() < TESTS.len() {
        bail!("the Linux DomU's measurements are incomplete");
    }
    Ok(())
}

fn collect(report: &BootReport) -> (BTreeMap<String, Figure>, BTreeMap<String, Figure>) {
    let console = |n: &str| report.run(n).map(|r| r.console.clone()).unwrap_or_default();
    (parse_side("BLKBENCH", &console(OURS)), parse_side("BLKTOOL", &console(LINUX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn sides_and_table() {
        let ours = parse_side(
            "BLKBENCH",
            &s(&[
                "BLKBENCH test=seq-write bytes=1 ios=1 ns=1 kib_s=20480 iops=20 reqs=9 notifies=3 timer_sets=1 blocks=1 grant_ops=0 hcalls_per_req=0.555 notifies_per_req=0.333 grant_ops_per_req=0.000",
                "BLKBENCH test=rand-read-qd1 bytes=1 ios=1 ns=1 kib_s=4000 iops=1000 reqs=1 notifies=1 timer_sets=1 blocks=1 grant_ops=0 hcalls_per_req=3.000 notifies_per_req=1.000 grant_ops_per_req=0.000",
                "noise",
            ]),
        );
        let linux = parse_side(
            "BLKTOOL",
            &s(&[
                "[bb-linux] BLKTOOL test=seq-write bytes=1 ios=1 ns=1 kib_s=40960 iops=40",
                "BLKTOOL test=rand-read-qd1 bytes=1 ios=1 ns=1 kib_s=8000 iops=2000",
                "BLKTOOL test=done",
            ]),
        );
        assert_eq!(ours.len(), 2);
        assert_eq!(linux.len(), 2);
        assert_eq!(ours["seq-write"].hcalls_per_req, Some(0.555));
        let t = table(&ours, &linux, &BlkBenchOptions::default());
        assert!(t.contains("seq-write"), "{t}");
        assert!(
            t.lines().any(|l| l.starts_with("seq-write")
                && l.contains(" 20.0 ")
                && l.contains(" 40.0 ")
                && l.contains("0.50")),
            "{t}"
        );
        assert!(
            t.lines().any(|l| l.starts_with("rand-read-qd1")
                && l.contains("1000.0")
                && l.contains("3.000")),
            "{t}"
        );
        assert!(t.lines().any(|l| l.starts_with("rand-write-qd32") && l.contains(" - ")), "{t}");
        let j = serde_json::to_value(to_json(&ours, &linux, &BlkBenchOptions::default())).unwrap();
        assert_eq!(j["ours"]["seq-write"]["kib_s"], 20480.0, "{j}");
        assert_eq!(j["linux"]["seq-write"]["hcalls_per_req"], serde_json::Value::Null, "{j}");
    }

    #[test]
    fn scenario_has_both_guests_on_one_disk() {
        let o = BlkBenchOptions::default();
        let sc = scenarios(&o, Path::new("/k"), Path::new("/v"), Some(Path::new("/rd")));
        assert_eq!(sc.len(), 1);
        let sh = sc[0].shell();
        assert!(sh.contains(". /etc/xen-lab/bench-blk.sh\n"), "{sh}");
        assert!(sh.contains("bk_run bb-ours /etc/xen-lab/guests/bb-ours.cfg 32 1200\n"), "{sh}");
        assert!(sh.contains("bk_run bb-linux /etc/xen-lab/guests/bb-linux.cfg 32 1200\n"), "{sh}");
        assert!(crate::dom0::BENCH_BLK.1.contains("losetup /dev/loop0 /tmp/bench.img"));
        assert!(LINUX_INIT.contains("blktool /dev/xvda"));
        assert!(BLKTOOL_C.contains("IOCB_CMD_PREAD"));
    }
}
