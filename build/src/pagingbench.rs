//! `cargo xtask bench paging`: what memory virtualization costs, three ways
//! on one Xen in one boot (docs/pvh.md, "Three ways of virtualizing
//! memory"): our guest's `bench.suite=paging` (guest/src/bench/paging.rs)
//! as PV (Xen validates its page tables), as PVH with hardware-assisted
//! paging (nested page tables) and as PVH with shadow paging (`hap = 0`),
//! and beside it the same Linux kernel booted as a PV and as a PVH DomU,
//! measuring what it can of the same rows from kernel context
//! (`build/linux-bench/xen_paging_bench.c`) and from a user process for
//! the page fault (`build/linux-bench/pfbench.c`).
//!
//! A mode Xen refuses (Debian's 4.17 is built without shadow paging:
//! `hap = 0` fails with EOPNOTSUPP) gets a row saying so with Xen's error,
//! never a silent gap. Every figure of our guest must be there with its
//! planned samples and every check must pass; the orderings
//! [`orderings`] lists must hold in the medians (`--quick` is what
//! `cargo xtask test` runs). Writes `target/xen/bench/paging.{txt,json,png}`
//! (`paging-quick.*` in quick mode, so CI does not overwrite a full run).

use crate::bench::{across, check_complete_with, fmt_ns, parse_console, Across, SuiteRun};
use crate::mode::GuestMode;
use crate::report::{self, load_now, Load, Style, Table};
use crate::scenario::{BootReport, GuestResult, GuestRun};
use crate::{cmd, GuestSpec, Lab, LabOptions, Scenario};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The Linux module's C source and its Kbuild line.
pub const MODULE_C: &str = include_str!("../linux-bench/xen_paging_bench.c");
/// The module's name.
pub const MODULE: &str = "xen_paging_bench";
/// The user-space page-fault timer.
pub const PFBENCH_C: &str = include_str!("../linux-bench/pfbench.c");
/// The Linux DomU's `/init`.
pub const INIT_SH: &str = include_str!("linux-domu/paging-init.sh");

/// One column of the table: who, and how Xen runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Column {
    /// `rust-pv`, `rust-pvh`, `rust-pvh-shadow`, `linux-pv`, `linux-pvh`.
    pub key: &'static str,
    /// The header.
    pub label: &'static str,
    /// Linux (`true`) or our guest.
    pub linux: bool,
    #[serde(serialize_with = "ser_mode")]
    pub mode: GuestMode,
}

fn ser_mode<S: serde::Serializer>(m: &GuestMode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}

/// Every column, in table order.
pub const COLUMNS: [Column; 5] = [
    Column { key: "rust-pv", label: "Rust PV", linux: false, mode: GuestMode::Pv },
    Column { key: "rust-pvh", label: "Rust PVH (HAP)", linux: false, mode: GuestMode::Pvh },
    Column {
        key: "rust-pvh-shadow",
        label: "Rust PVH shadow",
        linux: false,
        mode: GuestMode::PvhShadow,
    },
    Column { key: "linux-pv", label: "Linux PV", linux: true, mode: GuestMode::Pv },
    Column { key: "linux-pvh", label: "Linux PVH (HAP)", linux: true, mode: GuestMode::Pvh },
];

impl Column {
    /// The domain name of run `i` (1-based; Linux runs once, its rounds inside).
    pub fn domain(&self, i: u32) -> String {
        if self.linux {
            format!("pg-{}", self.key)
        } else {
            format!("pg-{}-{i}", self.key)
        }
    }
}

/// The figures our guest reports in every mode (guest/src/bench/paging.rs).
pub const RUST_COMMON: &[&str] = &[
    "tsc_timer_pair",
    "xen_version",
    "evtchn_send_upcall_handler_roundtrip",
    "page_fault_roundtrip",
    "cr3_reload",
    "walk_4k_per_page",
];
/// Its PV page-table figures.
pub const RUST_PV: &[&str] = &[
    "mmu_update_1",
    "mmu_update_64_per_entry",
    "mmu_update_512_per_entry",
    "update_va_mapping_invlpg",
];
/// Its PVH page-table figures (native PTE store; the direct map's 2 MiB pages).
pub const RUST_PVH: &[&str] = &["pte_write_invlpg", "walk_2m_per_page"];
/// The checks it prints in every mode.
pub const CHECKS_COMMON: &[&str] = &[
    "xen_version_answers",
    "roundtrip_one_handler_run_per_send",
    "page_fault_maps_and_resumes",
    "cr3_reload_keeps_root",
    "walk_4k_per_page_reads_every_page",
];
/// Its PV checks.
pub const CHECKS_PV: &[&str] = &["mmu_update_applies_every_entry", "update_va_mapping_succeeds"];
/// Its PVH checks.
pub const CHECKS_PVH: &[&str] = &["pte_write_applies", "walk_2m_per_page_reads_every_page"];
/// What the Linux DomU reports (module and pfbench); PV adds [`RUST_PV`].
pub const LINUX_COMMON: &[&str] = &[
    "tsc_timer_pair",
    "xen_version",
    "evtchn_send_upcall_handler_roundtrip",
    "kernel_set_pte_flush",
    "cr3_reload",
    "walk_4k_per_page",
    "page_fault_roundtrip",
];

/// The figures a column must have.
pub fn expected(c: &Column) -> Vec<&'static str> {
    let mut v = if c.linux { LINUX_COMMON.to_vec() } else { RUST_COMMON.to_vec() };
    match (c.mode, c.linux) {
        (GuestMode::Pv, _) => v.extend_from_slice(RUST_PV),
        (_, false) => v.extend_from_slice(RUST_PVH),
        (_, true) => {}
    }
    v
}

/// The checks our guest must print in mode `m`.
pub fn expected_checks(m: GuestMode) -> Vec<&'static str> {
    let mut v = CHECKS_COMMON.to_vec();
    v.extend_from_slice(if m == GuestMode::Pv { CHECKS_PV } else { CHECKS_PVH });
    v
}

/// Passes of the walk for `iters` (guest/src/bench/stats.rs, `walk_passes`).
pub fn walk_passes(iters: u64) -> u64 {
    (iters / 500).clamp(5, 20)
}

/// Pages per sample of a walk (guest/src/bench/paging.rs, `WALK_PIECE`;
/// the Linux module's `WALK_PIECE`): `per=` of its figures.
pub const WALK_PIECE: u64 = 256;
/// The fewest samples of a pass: 16 x 256 pages = 16 MiB, larger than the
/// reach of any TLB of 4 KiB entries (1536-2048 entries, 6-8 MiB).
pub const WALK_MIN_PIECES: u64 = 16;

/// Samples figure `name` takes in our guest's paging suite with `iters`
/// (`None` for the walks, whose samples depend on the set's size: see
/// [`check_walk`]).
pub fn expected_samples(name: &str, iters: u64) -> Option<u64> {
    let iters = iters.max(1);
    Some(match name {
        "mmu_update_64_per_entry" => iters.div_ceil(4),
        "mmu_update_512_per_entry" => iters.div_ceil(16),
        "walk_4k_per_page" | "walk_2m_per_page" => return None,
        n if RUST_COMMON.contains(&n) || RUST_PV.contains(&n) || RUST_PVH.contains(&n) => iters,
        _ => return None,
    })
}

/// A walk's figure: `per=` [`WALK_PIECE`], and whole passes
/// ([`walk_passes`] of them) of at least [`WALK_MIN_PIECES`] samples.
pub fn check_walk(who: &str, f: &crate::bench::Figure, iters: u64) -> Result<()> {
    let passes = walk_passes(iters);
    if f.per != WALK_PIECE || !f.iters.is_multiple_of(passes) || f.iters / passes < WALK_MIN_PIECES
    {
        bail!(
            "{who}: {} has {} samples of {} pages: want {passes} passes of at least {WALK_MIN_PIECES} samples of {WALK_PIECE} pages (a set of 16 MiB or more)",
            f.name,
            f.iters,
            f.per
        );
    }
    Ok(())
}

/// A row of the table: a label, and the figure each column shows in it.
pub struct Row {
    pub key: &'static str,
    pub label: &'static str,
    pub pick: fn(&Column) -> Option<&'static str>,
}

fn pv_only(c: &Column, name: &'static str) -> Option<&'static str> {
    (c.mode == GuestMode::Pv).then_some(name)
}

/// The rows, in order.
pub const ROWS: &[Row] = &[
    Row {
        key: "null_hypercall",
        label: "null hypercall (xen_version)",
        pick: |_| Some("xen_version"),
    },
    Row {
        key: "event_roundtrip",
        label: "event: send, upcall, handler, return",
        pick: |_| Some("evtchn_send_upcall_handler_roundtrip"),
    },
    Row {
        key: "pte_update",
        label: "one PTE update + its flush (1)",
        pick: |c| {
            Some(if c.linux {
                "kernel_set_pte_flush"
            } else if c.mode == GuestMode::Pv {
                "update_va_mapping_invlpg"
            } else {
                "pte_write_invlpg"
            })
        },
    },
    Row {
        key: "update_va_mapping",
        label: "update_va_mapping + invlpg (raw)",
        pick: |c| pv_only(c, "update_va_mapping_invlpg"),
    },
    Row { key: "mmu_update_1", label: "mmu_update, 1 entry", pick: |c| pv_only(c, "mmu_update_1") },
    Row {
        key: "mmu_update_64",
        label: "mmu_update, per entry of 64",
        pick: |c| pv_only(c, "mmu_update_64_per_entry"),
    },
    Row {
        key: "mmu_update_512",
        label: "mmu_update, per entry of 512",
        pick: |c| pv_only(c, "mmu_update_512_per_entry"),
    },
    Row {
        key: "page_fault",
        label: "page-fault round trip (2)",
        pick: |_| Some("page_fault_roundtrip"),
    },
    Row { key: "cr3_reload", label: "CR3 reload (3)", pick: |_| Some("cr3_reload") },
    Row {
        key: "walk_4k",
        label: "walk, 4 KiB pages, per page (4)",
        pick: |_| Some("walk_4k_per_page"),
    },
    Row {
        key: "walk_2m",
        label: "walk, 2 MiB pages, per page (4)",
        pick: |c| (!c.linux && c.mode != GuestMode::Pv).then_some("walk_2m_per_page"),
    },
];

/// What the numbered footnotes of the table say.
pub const FOOTNOTES: &[&str] = &[
    "(1) PV: update_va_mapping with UVMF_INVLPG (one hypercall); PVH: a PTE store and invlpg (no hypercall); Linux: set_pte() and __flush_tlb_one_user(), its own pv_ops (PV: mmu_update, then MMUEXT_INVLPG_LOCAL)",
    "(2) touch an unmapped page, the guest's #PF handler maps it, return, the touch completes. PV: Xen bounces the fault to the guest's trap table, the handler maps with update_va_mapping and returns with HYPERVISOR_iret; PVH: the guest's own IDT, a PTE store, iretq. Linux: a user process's minor fault on a zapped page of a memfd (pfbench), through Linux's fault handler",
    "(3) PV: MMUEXT_NEW_BASEPTR with the current root (Xen reloads CR3); PVH: mov to CR3; Linux: write_cr3(__read_cr3()) (PV: Xen's pv_ops, kernel and user roots)",
    "(4) one word of every page of the working set, in a scattered order, each pass after a TLB flush (not timed), ns per page touched; Linux: a vmalloc area. PVH's direct map is 2 MiB pages: our guest walks it as it is, then splits those pages into 4 KiB pages and walks again",
];

/// An ordering the medians must show, with why it must hold.
#[derive(Debug, Clone, Serialize)]
pub struct OrderingCheck {
    /// The column.
    pub column: &'static str,
    /// `a < b`.
    pub what: String,
    /// Why it must hold.
    pub why: &'static str,
    /// Whether it held (`None`: a figure is missing or a median is 0).
    pub holds: Option<bool>,
    /// The two medians (ns).
    pub values: Option<(u64, u64)>,
}

/// `(column, smaller, larger, why)`: orderings that follow from what each
/// operation does, not from timing luck: one side contains the other's
/// work plus more, or avoids an exit to Xen the other takes.
pub const ORDERINGS: &[(&str, &str, &str, &str)] = &[
    (
        "rust-pv",
        "mmu_update_64_per_entry",
        "mmu_update_1",
        "a batch pays the guest-Xen round trip once for 64 entries",
    ),
    (
        "rust-pv",
        "mmu_update_512_per_entry",
        "mmu_update_1",
        "a batch pays the guest-Xen round trip once for 512 entries",
    ),
    (
        "rust-pv",
        "xen_version",
        "mmu_update_1",
        "a hypercall that also validates and writes an entry",
    ),
    (
        "rust-pv",
        "xen_version",
        "page_fault_roundtrip",
        "the fault's bounce through Xen, then two hypercalls (update_va_mapping, iret)",
    ),
    (
        "rust-pv",
        "xen_version",
        "evtchn_send_upcall_handler_roundtrip",
        "a send hypercall, then the upcall and HYPERVISOR_iret",
    ),
    (
        "rust-pvh",
        "xen_version",
        "evtchn_send_upcall_handler_roundtrip",
        "a send hypercall (an exit), then an injected interrupt and iretq",
    ),
    (
        "rust-pvh",
        "pte_write_invlpg",
        "xen_version",
        "with nested paging a PTE store and invlpg stay in the guest; a hypercall exits to Xen",
    ),
];

/// The orderings, judged on the medians of `results`.
pub fn orderings(results: &[ColumnResult]) -> Vec<OrderingCheck> {
    ORDERINGS
        .iter()
        .filter_map(|&(col, a, b, why)| {
            let r = results.iter().find(|r| r.column.key == col)?;
            if r.refused.is_some() {
                return None;
            }
            let (x, y) = (across(&r.runs, a), across(&r.runs, b));
            let values = x.zip(y).map(|(x, y)| (x.ns.median, y.ns.median));
            let holds = values.and_then(|(x, y)| (x > 0 && y > 0).then_some(x < y));
            Some(OrderingCheck { column: col, what: format!("{a} < {b}"), why, holds, values })
        })
        .collect()
}

/// Settings of one `bench paging`.
#[derive(Debug, Clone)]
pub struct PagingOptions {
    /// Runs of our guest per mode (and rounds of the Linux DomUs).
    pub runs: u32,
    /// Quick mode: 300 samples, a 16 MiB walk, no Linux unless asked.
    pub quick: bool,
    /// Skip the Linux DomUs.
    pub no_linux: bool,
    /// The walk's working set, MiB (`None`: 64, quick 16).
    pub walk_mib: Option<u64>,
    /// Try KVM.
    pub kvm: bool,
    /// Echo every serial line.
    pub verbose: bool,
    /// The Xen release (`None`: `$XENPV_XEN`, else 4.17).
    pub xen: Option<crate::release::XenRelease>,
}

impl PagingOptions {
    /// Samples per figure.
    pub fn iters(&self) -> u64 {
        if self.quick {
            300
        } else {
            10_000
        }
    }

    /// The walk's working set, MiB.
    pub fn walk(&self) -> u64 {
        self.walk_mib.unwrap_or(if self.quick { 16 } else { 64 })
    }

    /// Our guest's memory: twice the walk (the guest walks at most half
    /// its free frames) and room for the rest.
    pub fn memory_mib(&self) -> u32 {
        (self.walk() * 2 + 48) as u32
    }

    /// The report's base name.
    pub fn name(&self) -> &'static str {
        if self.quick {
            "paging-quick"
        } else {
            "paging"
        }
    }
}

/// Memory of the Linux DomUs, MiB (the walk's vmalloc area included).
pub fn linux_memory_mib(o: &PagingOptions) -> u32 {
    (256 + o.walk() * 2) as u32
}

/// One column's outcome.
#[derive(Debug, Clone)]
pub struct ColumnResult {
    pub column: Column,
    /// Complete runs.
    pub runs: Vec<SuiteRun>,
    /// Xen refused to create the domain: its error.
    pub refused: Option<String>,
    /// What went wrong otherwise.
    pub problems: Vec<String>,
    /// The walk's size as the guest reported it (`BENCH-INFO walk`).
    pub walk: Option<String>,
    /// What the reader should know that is not a problem (a Linux DomU's
    /// second boot).
    pub notes: Vec<String>,
}

/// The Linux DomU's initramfs: busybox, the module, pfbench, `/init`.
pub fn linux_initramfs(
    bundle: &crate::debs::Dom0Bundle,
    ko: &Path,
    pfbench: &Path,
) -> Result<crate::cpio::Archive> {
    let mut a = crate::linuxbench::busybox_archive(
        bundle,
        &[
            "sh", "mount", "insmod", "rmmod", "dmesg", "sed", "grep", "tail", "uname", "poweroff",
            "cat",
        ],
    )?;
    a.file(&format!("{MODULE}.ko"), 0o644, cmd::read(ko)?);
    a.file("pfbench", 0o755, cmd::read(pfbench)?);
    a.file("init", 0o755, INIT_SH);
    Ok(a)
}

/// Builds the module and pfbench and writes the Linux DomUs' initramfs.
pub fn prepare_linux(lab: &Lab, out: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let bundle = &lab.bundle;
    if !bundle.release.uses_host_apt() {
        bail!(
            "the module needs linux-headers-{} from {}, which this host's apt sources lack: run with --no-linux, or with --xen 4.17",
            bundle.kernel_version,
            bundle.release.debian()
        );
    }
    let kbuild = format!(
        "# Kbuild for the Linux side of `cargo xtask bench paging`.\nobj-m := {MODULE}.o\n"
    );
    let ko = crate::linuxbench::build_kmod(
        &lab.opts.cache_dir,
        &bundle.kernel_version,
        MODULE,
        MODULE_C,
        &kbuild,
        log,
    )?;
    let pf = crate::ctool::build_static(&lab.opts.cache_dir, "pfbench", PFBENCH_C)?;
    let a = linux_initramfs(bundle, &ko, &pf)?;
    crate::bench::write_ramdisk(out, "paging", &a.to_bytes())
}

/// The guests of one boot: `runs` rounds of our guest in each mode (modes
/// alternate, so a change of load touches all alike), then each Linux DomU.
pub fn scenarios(
    o: &PagingOptions,
    kernel: &Path,
    vmlinuz: &Path,
    linux: Option<&Path>,
) -> Vec<Scenario> {
    let mut v = Vec::new();
    let args = |o: &PagingOptions| {
        let mut a = vec!["bench.suite=paging".to_string(), format!("bench.walk_mib={}", o.walk())];
        if o.quick {
            a.push("bench.quick=1".into());
        }
        a
    };
    for i in 1..=o.runs {
        for c in COLUMNS.iter().filter(|c| !c.linux) {
            let mut g = GuestSpec::new(&c.domain(i), kernel, "bench")
                .args(&args(o))
                .mode(c.mode)
                .memory(o.memory_mib())
                .timeout(Duration::from_secs(if o.quick { 240 } else { 900 }));
            // Native TSC: the timer is rdtsc/rdtscp, and under QEMU's SVM
            // Xen cannot emulate an intercepted rdtscp for a PVH guest.
            g.extra_config.push("tsc_mode = \"native\"".into());
            v.push(Scenario::single(g));
        }
    }
    if let Some(rd) = linux {
        for c in COLUMNS.iter().filter(|c| c.linux) {
            let spec = |name: &str| {
                let mut g = GuestSpec::new(name, vmlinuz, "none")
                    .mode(c.mode)
                    .memory(linux_memory_mib(o))
                    .ramdisk(rd)
                    .timeout(Duration::from_secs(if o.quick { 600 } else { 2400 }));
                g.cmdline = format!(
                    "console=hvc0 quiet bench_iters={} bench_runs={} bench_walk_mib={} bench_passes={}",
                    o.iters(),
                    o.runs,
                    o.walk(),
                    walk_passes(o.iters())
                );
                g.extra_config.push("tsc_mode = \"native\"".into());
                g
            };
            let (first, again) = (spec(&c.domain(1)), spec(&retry_name(c)));
            // Linux as PVH under QEMU's emulated SVM has been seen to
            // triple-fault in its PIT calibration before any console
            // output; a Linux DomU that never reached BENCH-DONE gets one
            // more boot, and the report says so.
            let script = format!(
                "run_guest {n} {cfg} {t}\n\
                 if ! grep -q 'BENCH-DONE' \"$LAB_CONSOLE_DIR/guest-{n}.log\" 2>/dev/null; then\n\
                 echo \"[xl paging] {n} did not reach BENCH-DONE: booting it once more as {r}\"\n\
                 run_guest {r} {cfg2} {t}\n\
                 fi\n",
                n = first.name,
                cfg = first.cfg_path(),
                t = first.timeout.as_secs(),
                r = again.name,
                cfg2 = again.cfg_path(),
            );
            let mut sc = Scenario::script(&first.name.clone(), vec![first, again], &script);
            // The retry's own time is in the budget already (its guest's
            // timeout); the first attempt's too.
            sc.slack = Duration::from_secs(60);
            v.push(sc);
        }
    }
    v
}

/// The domain name of a Linux column's second boot.
pub fn retry_name(c: &Column) -> String {
    format!("{}-retry", c.domain(1))
}

/// Xen's reason in a failed `xl create`'s output: the first error line
/// (libxl reports the cause first, then what gave up because of it).
pub fn refusal(run: &GuestRun) -> String {
    let lines: Vec<&str> = run.xl_output.iter().map(String::as_str).collect();
    lines
        .iter()
        .find(|l| l.contains("fail") || l.contains("rror"))
        .or(lines.last())
        .map_or("xl create failed (no output)".to_string(), |l| {
            l.trim_start_matches("[xl]").trim().to_string()
        })
}

/// What Xen's build configuration (`boot/xen-*.config` in the extracted
/// packages) says of shadow paging: the `CONFIG_SHADOW_PAGING` line and
/// the file, if there is one.
pub fn shadow_config(root: &Path) -> Option<String> {
    let boot = root.join("boot");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&boot)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            n.starts_with("xen-") && n.ends_with(".config")
        })
        .collect();
    files.sort();
    let f = files.pop()?;
    let text = std::fs::read_to_string(&f).ok()?;
    let line = text.lines().find(|l| l.contains("CONFIG_SHADOW_PAGING"))?;
    Some(format!(
        "{}: {}",
        f.strip_prefix(root).unwrap_or(&f).display(),
        line.trim_start_matches("# ").trim()
    ))
}

/// Xen's word on how a domain ended (`Triple fault`, `domain_crash`),
/// from the `[xen] ...` lines the run collected if one names its domid:
/// Xen's serial lines while a guest runs go with it (scenario::Parser),
/// and these boots' Linux DomUs run alone under `run_guest`.
fn serial_hint(run: &GuestRun) -> String {
    let Some(d) = run.domid else {
        return String::new();
    };
    let tag = format!("d{d}v0 ");
    let mut lines = run
        .xl_output
        .iter()
        .filter_map(|l| l.strip_prefix("[xen] "))
        .skip_while(|l| !l.contains(&tag));
    match lines.next() {
        Some(l) => {
            let what = l.split_once(&tag).map_or(l, |(_, w)| w).trim();
            let at = lines.take(6).find(|l| l.contains("RIP:")).map(str::trim);
            format!("; Xen: {what}{}", at.map_or(String::new(), |a| format!(", {a}")))
        }
        None => String::new(),
    }
}

/// Checks one run of our guest: every figure of its mode with its planned
/// samples, every check there and passed.
pub fn check_rust_run(who: &str, mode: GuestMode, run: &SuiteRun) -> Result<()> {
    check_complete_with(
        who,
        run,
        &expected(&rust(mode)),
        &expected_checks(mode),
        expected_samples,
    )?;
    let iters = run.env.get("iters").and_then(|v| v.parse().ok()).unwrap_or(0);
    for f in run.figures.iter().filter(|f| f.name.starts_with("walk_")) {
        check_walk(who, f, iters)?;
    }
    Ok(())
}

fn rust(mode: GuestMode) -> Column {
    *COLUMNS.iter().find(|c| !c.linux && c.mode == mode).expect("a column per mode")
}

fn run_problem(run: &GuestRun) -> Option<String> {
    (run.result != GuestResult::Poweroff).then(|| {
        let tail: Vec<&str> = run.console.iter().rev().take(3).rev().map(String::as_str).collect();
        format!("{} ended with {}; its console ends: {}", run.name, run.result, tail.join(" | "))
    })
}

/// Parses one boot's consoles into the columns.
pub fn collect(o: &PagingOptions, report: &BootReport) -> Vec<ColumnResult> {
    let mut out = Vec::new();
    for c in COLUMNS {
        let mut r = ColumnResult {
            column: c,
            runs: Vec::new(),
            refused: None,
            problems: Vec::new(),
            walk: None,
            notes: Vec::new(),
        };
        if c.linux && (o.no_linux || report.runs.iter().all(|x| x.name != c.domain(1))) {
            if !o.no_linux {
                r.problems.push(format!("{} never ran", c.domain(1)));
            }
            out.push(r);
            continue;
        }
        let names: Vec<String> =
            if c.linux { vec![c.domain(1)] } else { (1..=o.runs).map(|i| c.domain(i)).collect() };
        for name in names {
            let Ok(mut run) = report.run(&name) else {
                r.problems.push(format!("{name} never ran"));
                continue;
            };
            if c.linux {
                if let Ok(again) = report.run(&retry_name(&c)) {
                    r.notes.push(format!(
                        "{name} ended with {} before BENCH-DONE ({} console lines{}); its second boot {} ran instead",
                        run.result,
                        run.console.len(),
                        serial_hint(run),
                        again.name
                    ));
                    run = again;
                }
            }
            if run.result == GuestResult::CreateFailed {
                r.refused = Some(refusal(run));
                continue;
            }
            if r.walk.is_none() {
                r.walk = run.console.iter().find_map(|l| {
                    l.split_once("BENCH-INFO walk pages=")
                        .map(|(_, w)| format!("pages={}", w.trim()))
                });
            }
            let parsed = parse_console(&name, &run.console);
            match parsed {
                Ok(runs) if c.linux => {
                    for e in runs.iter().flat_map(|x| &x.errors) {
                        r.problems.push(format!("{name}: BENCH-ERROR {e}"));
                    }
                    for (k, x) in runs.iter().enumerate() {
                        let missing: Vec<&str> =
                            expected(&c).into_iter().filter(|n| x.get(n).is_none()).collect();
                        if !missing.is_empty() {
                            r.problems.push(format!(
                                "{name} round {}: missing BENCH line(s) for {}",
                                k + 1,
                                missing.join(", ")
                            ));
                        }
                        let iters = x.env.get("iters").and_then(|v| v.parse().ok()).unwrap_or(0);
                        for f in x.figures.iter().filter(|f| f.name.starts_with("walk_")) {
                            if let Err(e) = check_walk(&format!("{name} round {}", k + 1), f, iters)
                            {
                                r.problems.push(format!("{e:#}"));
                            }
                        }
                    }
                    r.runs = runs;
                }
                Ok(mut runs) => match check_rust_run(&name, c.mode, &runs[0]) {
                    Ok(()) => r.runs.push(runs.remove(0)),
                    Err(e) => r.problems.push(format!("{e:#}")),
                },
                Err(e) => r.problems.push(format!("{e:#}")),
            }
            if let Some(p) = run_problem(run) {
                r.problems.push(p);
            }
        }
        // Refused in some runs and not in others would be news: say so.
        if r.refused.is_some() && !r.runs.is_empty() {
            r.problems.push(format!(
                "{}: xl create failed in some runs and not others: {}",
                c.label,
                r.refused.clone().unwrap_or_default()
            ));
        }
        out.push(r);
    }
    out
}

/// Everything a run found, for the text and JSON.
#[derive(Debug, Clone)]
pub struct Paging {
    pub columns: Vec<ColumnResult>,
    pub xen: String,
    pub cpu: String,
    pub tsc_hz: u64,
    pub linux_kernel: Option<String>,
    pub load: Option<Load>,
    /// Xen's build configuration on shadow paging ([`shadow_config`]).
    pub xen_shadow: Option<String>,
    pub problems: Vec<String>,
}

/// Collects the environment around the columns.
pub fn summarise(columns: Vec<ColumnResult>, report: &BootReport, load: Option<Load>) -> Paging {
    let env = columns.iter().flat_map(|c| c.runs.first()).map(|r| &r.env).next();
    let get = |k: &str| env.and_then(|e| e.get(k)).cloned().unwrap_or_default();
    let mut problems: Vec<String> = columns
        .iter()
        .flat_map(|c| c.problems.iter().map(move |p| format!("{}: {p}", c.column.label)))
        .collect();
    if let Some(f) = &report.failure {
        problems.insert(0, format!("boot: {f}"));
    }
    let linux_kernel = columns
        .iter()
        .filter(|c| c.column.linux)
        .flat_map(|c| c.runs.first())
        .find_map(|r| r.env.get("kernel").cloned());
    Paging {
        xen: if get("xen").is_empty() {
            report.xen_version.clone().unwrap_or_default()
        } else {
            get("xen")
        },
        cpu: get("cpu"),
        tsc_hz: get("tsc_hz").parse().unwrap_or(0),
        linux_kernel,
        load,
        xen_shadow: None,
        problems,
        columns,
    }
}

fn cell(a: Option<Across>) -> String {
    match a {
        None => "-".into(),
        Some(a) if a.runs > 1 => {
            format!("{} [{}-{}]", fmt_ns(a.ns.median), fmt_ns(a.ns.min), fmt_ns(a.ns.max))
        }
        Some(a) => fmt_ns(a.ns.median),
    }
}

/// The figure of `row` in column `r`, across its runs.
pub fn figure(r: &ColumnResult, row: &Row) -> Option<Across> {
    across(&r.runs, (row.pick)(&r.column)?)
}

/// One line on where it ran.
pub fn environment(p: &Paging, o: &PagingOptions) -> String {
    format!(
        "Xen {}, {} emulation (QEMU), CPU \"{}\", TSC {:.3} GHz, {} run(s) of our guest per mode ({} samples per figure, walk {} MiB), Linux DomU {}; host load average (1 min) during the boot {}",
        if p.xen.is_empty() { "?" } else { &p.xen },
        if o.kvm { "KVM (hardware)" } else { "TCG (software)" },
        if p.cpu.is_empty() { "?" } else { &p.cpu },
        p.tsc_hz as f64 / 1e9,
        o.runs,
        o.iters(),
        o.walk(),
        p.linux_kernel.as_deref().unwrap_or(if o.no_linux { "skipped" } else { "?" }),
        p.load.map_or("?".to_string(), |l| l.to_string())
    )
}

/// `a / b` of two medians, if both are there and `b` is not 0.
fn over(a: Option<Across>, b: Option<Across>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b.ns.median > 0).then(|| a.ns.median as f64 / b.ns.median as f64)
}

/// The text report.
pub fn table(p: &Paging, o: &PagingOptions) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Paging: median ns of each run's median [min-max across runs]; Linux: its rounds"
    );
    let _ = writeln!(s, "{}", environment(p, o));
    let _ = writeln!(s);
    let mut t = Table::new(Style::Plain).left("measurement (ns)", 34);
    for c in &p.columns {
        t = t.bar().right(c.column.label, 20);
    }
    for row in ROWS {
        let mut cells = vec![row.label.to_string()];
        for c in &p.columns {
            cells.push(if c.refused.is_some() {
                "refused".into()
            } else if (row.pick)(&c.column).is_none() {
                "n/a".into()
            } else {
                cell(figure(c, row))
            });
        }
        t.row(cells);
    }
    s.push_str(&t.render());
    for c in p.columns.iter().filter(|c| c.refused.is_some()) {
        let _ = writeln!(
            s,
            "{}: refused by this Xen: {}{}",
            c.column.label,
            c.refused.as_deref().unwrap_or(""),
            match (&p.xen_shadow, c.column.mode) {
                (Some(cfg), GuestMode::PvhShadow) => format!(" (Xen's build, {cfg})"),
                _ => String::new(),
            }
        );
    }
    for f in FOOTNOTES {
        let _ = writeln!(s, "{f}");
    }

    let _ =
        writeln!(s, "\nIn null hypercalls (each column's median / its own xen_version median):");
    let mut t = Table::new(Style::Plain).left("measurement", 34);
    for c in &p.columns {
        t = t.bar().right(c.column.label, 20);
    }
    let null = &ROWS[0];
    for row in ROWS.iter().skip(1) {
        let mut cells = vec![row.label.to_string()];
        for c in &p.columns {
            cells.push(report::cell(over(figure(c, row), figure(c, null)), 2));
        }
        t.row(cells);
    }
    s.push_str(&t.render());

    let _ = writeln!(s, "\nMode against PV, same guest (median / PV median):");
    let mut t = Table::new(Style::Plain)
        .left("measurement", 34)
        .bar()
        .right("Rust PVH (HAP)/PV", 18)
        .bar()
        .right("Rust shadow/PV", 18)
        .bar()
        .right("Linux PVH/PV", 18);
    let col = |k: &str| p.columns.iter().find(|c| c.column.key == k);
    for row in ROWS {
        let x = |a: &str, b: &str| match (col(a), col(b)) {
            (Some(a), Some(b)) => report::cell(over(figure(a, row), figure(b, row)), 2),
            _ => "-".into(),
        };
        t.row([
            row.label.to_string(),
            x("rust-pvh", "rust-pv"),
            x("rust-pvh-shadow", "rust-pv"),
            x("linux-pvh", "linux-pv"),
        ]);
    }
    s.push_str(&t.render());

    let _ = writeln!(s, "\nOrderings (checked; each follows from what the operations do):");
    for c in orderings(&p.columns) {
        let _ = writeln!(
            s,
            "  {:<7} {:<14} {:<64} {}",
            match c.holds {
                Some(true) => "holds",
                Some(false) => "FAILS",
                None => "missing",
            },
            c.column,
            c.what,
            c.values.map_or(String::new(), |(a, b)| format!("({a} ns < {b} ns?) {}", c.why))
        );
    }
    for c in &p.columns {
        if let Some(w) = &c.walk {
            let _ = writeln!(s, "{} walk: {w}", c.column.label);
        }
        for n in &c.notes {
            let _ = writeln!(s, "note: {}: {n}", c.column.label);
        }
    }
    for pr in &p.problems {
        let _ = writeln!(s, "problem: {pr}");
    }
    s
}

/// The JSON report (`paging.json`).
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub benchmark: &'static str,
    pub emulation: &'static str,
    pub quick: bool,
    pub runs: u32,
    pub iters: u64,
    pub walk_mib: u64,
    pub xen: &'a str,
    pub cpu: &'a str,
    pub tsc_hz: u64,
    pub linux_kernel: Option<&'a str>,
    pub host_load: Option<Load>,
    pub xen_shadow_config: Option<&'a str>,
    pub environment: String,
    pub footnotes: &'static [&'static str],
    pub columns: Vec<ColumnReport<'a>>,
    /// Per row, per column key: the figure's name and its spread.
    pub rows: Vec<RowReport>,
    pub orderings: Vec<OrderingCheck>,
    pub problems: &'a [String],
}

/// One column in [`Report`].
#[derive(Debug, Serialize)]
pub struct ColumnReport<'a> {
    pub column: Column,
    pub refused: Option<&'a str>,
    pub notes: &'a [String],
    pub walk: Option<&'a str>,
    /// Every run's (Linux: every round's) figures.
    pub runs: Vec<&'a [crate::bench::Figure]>,
    pub checks: Vec<&'a [crate::bench::Check]>,
}

/// One row in [`Report`].
#[derive(Debug, Serialize)]
pub struct RowReport {
    pub key: &'static str,
    pub label: &'static str,
    pub cells: Vec<CellReport>,
}

/// One cell of a row.
#[derive(Debug, Serialize)]
pub struct CellReport {
    pub column: &'static str,
    pub figure: Option<&'static str>,
    pub ns: Option<Across>,
    pub over_null_hypercall: Option<f64>,
}

/// The JSON report.
pub fn to_json<'a>(p: &'a Paging, o: &PagingOptions) -> Report<'a> {
    Report {
        benchmark: "paging",
        emulation: if o.kvm { "kvm" } else { "tcg" },
        quick: o.quick,
        runs: o.runs,
        iters: o.iters(),
        walk_mib: o.walk(),
        xen: &p.xen,
        cpu: &p.cpu,
        tsc_hz: p.tsc_hz,
        linux_kernel: p.linux_kernel.as_deref(),
        host_load: p.load,
        xen_shadow_config: p.xen_shadow.as_deref(),
        environment: environment(p, o),
        footnotes: FOOTNOTES,
        columns: p
            .columns
            .iter()
            .map(|c| ColumnReport {
                column: c.column,
                refused: c.refused.as_deref(),
                notes: &c.notes,
                walk: c.walk.as_deref(),
                runs: c.runs.iter().map(|r| r.figures.as_slice()).collect(),
                checks: c.runs.iter().map(|r| r.checks.as_slice()).collect(),
            })
            .collect(),
        rows: ROWS
            .iter()
            .map(|row| RowReport {
                key: row.key,
                label: row.label,
                cells: p
                    .columns
                    .iter()
                    .map(|c| CellReport {
                        column: c.column.key,
                        figure: (row.pick)(&c.column),
                        ns: figure(c, row),
                        over_null_hypercall: over(figure(c, row), figure(c, &ROWS[0]))
                            .map(|x| report::round(x, 3)),
                    })
                    .collect(),
            })
            .collect(),
        orderings: orderings(&p.columns),
        problems: &p.problems,
    }
}

/// What ends the benchmark with an error (after the reports are
/// written): a problem, a column of our guest with no complete run that
/// Xen did not refuse, or an ordering that fails or cannot be judged.
pub fn verdict(p: &Paging) -> Result<()> {
    if let Some(pr) = p.problems.first() {
        bail!(
            "{pr}{}",
            if p.problems.len() > 1 {
                format!(" (+{} more in the report)", p.problems.len() - 1)
            } else {
                String::new()
            }
        );
    }
    for c in p.columns.iter().filter(|c| !c.column.linux) {
        if c.runs.is_empty() && c.refused.is_none() {
            bail!("{}: no complete run", c.column.label);
        }
    }
    if p.columns.iter().filter(|c| !c.column.linux).all(|c| c.refused.is_some()) {
        bail!("Xen refused every mode");
    }
    for c in orderings(&p.columns) {
        match c.holds {
            Some(true) => {}
            Some(false) => bail!(
                "ordering {} fails for {}: {:?} ns ({})",
                c.what,
                c.column,
                c.values.unwrap_or_default(),
                c.why
            ),
            None => bail!("ordering {} for {}: a figure is missing or 0", c.what, c.column),
        }
    }
    Ok(())
}

/// Runs the benchmark and writes the reports. Errors are one line.
pub fn run(o: &PagingOptions) -> Result<()> {
    if o.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let t = Instant::now();
    let guest = crate::guest::build(true)?;
    println!("[bench] guest built: {}", guest.stable.display());
    let out = crate::bench::out_dir();
    cmd::mkdir(&out)?;
    let lab = Lab::prepare(LabOptions::bench("bench-paging", o.kvm, o.verbose, o.xen))?;
    let mut linux_problem = None;
    let linux = if o.no_linux {
        None
    } else {
        let mut log = |s: &str| println!("[bench] {s}");
        match prepare_linux(&lab, &out, &mut log) {
            Ok(p) => Some(p),
            Err(e) => {
                linux_problem = Some(format!("Linux comparator unavailable: {e:#}"));
                None
            }
        }
    };
    let sc = scenarios(o, &guest.stable, &lab.bundle.vmlinuz, linux.as_deref());
    println!(
        "[bench] paging: {} run(s) of our guest as PV, PVH and PVH with shadow paging{}; host load now {}",
        o.runs,
        if linux.is_some() { ", then Linux as PV and PVH" } else { "" },
        load_now().map_or("?".into(), |l| format!("{l:.2}"))
    );
    let sampler = report::LoadSampler::start();
    let report = lab.boot(&sc);
    let load = sampler.finish();
    let report = report?;
    let mut columns = collect(o, &report);
    if let Some(p) = linux_problem {
        for c in columns.iter_mut().filter(|c| c.column.linux) {
            c.problems = vec![p.clone()];
        }
    }
    let mut p = summarise(columns, &report, load);
    p.xen_shadow = shadow_config(&lab.bundle.root);
    let text = table(&p, o);
    println!("\n{text}");
    report::write(&out, o.name(), &text, &to_json(&p, o))?;
    let png = out.join(format!("{}.png", o.name()));
    match crate::pagingchart::draw(&p, &png) {
        Ok(()) => println!("chart: {}", png.display()),
        Err(e) => println!("chart: skipped ({e:#})"),
    }
    println!("total: {:.0} s", t.elapsed().as_secs_f64());
    verdict(&p).context("bench paging")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(mode: GuestMode, tweak: &dyn Fn(&str) -> u64) -> Vec<String> {
        let m = if mode == GuestMode::Pv { "pv" } else { "pvh" };
        let mut c = vec![format!(
            "BENCH-ENV xen=4.17.7 tsc_hz=2600000000 cpu=\"c\" domain=domU iters=300 mode={m} suite=paging"
        )];
        for n in expected(&rust(mode)) {
            let v = tweak(n);
            let (iters, per) = match expected_samples(n, 300) {
                Some(k) => (k, 1),
                None => (walk_passes(300) * 16, WALK_PIECE),
            };
            c.push(format!(
                "BENCH name={n} iters={iters} per={per} cycles=1/{v}/1/1 ns=1/{v}/{v}/{v} clamped=0"
            ));
        }
        for n in expected_checks(mode) {
            c.push(format!("BENCH-CHECK name={n} result=pass counted"));
        }
        c.push("BENCH-INFO walk pages=4096 mib=16".into());
        c.push(format!("BENCH-DONE failures=0 checks={}", expected_checks(mode).len()));
        c
    }

    /// Medians that respect every ordering.
    fn sane(n: &str) -> u64 {
        match n {
            "xen_version" => 300,
            "mmu_update_1" => 900,
            "mmu_update_64_per_entry" | "mmu_update_512_per_entry" => 250,
            "pte_write_invlpg" => 100,
            "page_fault_roundtrip" => 2500,
            "evtchn_send_upcall_handler_roundtrip" => 1700,
            _ => 400,
        }
    }

    fn guest_run(name: &str, result: GuestResult, console: Vec<String>) -> GuestRun {
        let mut r = GuestRun::new(name, name);
        r.result = result;
        r.console = console;
        r
    }

    fn boot(pv: &dyn Fn(&str) -> u64) -> BootReport {
        let mut refused = guest_run("pg-rust-pvh-shadow-1", GuestResult::CreateFailed, vec![]);
        refused.xl_output = vec![
            "[xl] Parsing config from /etc/xen-lab/guests/x.cfg".into(),
            "[xl] libxl: error: libxl_create.c:720:libxl__domain_make: Domain 3:create: Operation not supported".into(),
            "[xl] libxl: error: libxl_create.c:1270:initiate_domain_create: cannot make domain: -3".into(),
        ];
        BootReport {
            runs: vec![
                guest_run("pg-rust-pv-1", GuestResult::Poweroff, console(GuestMode::Pv, pv)),
                guest_run("pg-rust-pvh-1", GuestResult::Poweroff, console(GuestMode::Pvh, &sane)),
                refused,
            ],
            ..BootReport::default()
        }
    }

    fn opts() -> PagingOptions {
        PagingOptions {
            runs: 1,
            quick: true,
            no_linux: true,
            walk_mib: None,
            kvm: false,
            verbose: false,
            xen: None,
        }
    }

    #[test]
    fn plans_and_names_match_the_guest() {
        assert_eq!(expected_samples("walk_4k_per_page", 300), None);
        assert_eq!((walk_passes(300), walk_passes(10_000)), (5, 20));
        let f = |iters, per| crate::bench::Figure {
            name: "walk_4k_per_page".into(),
            iters,
            per,
            cycles: [1; 4],
            ns: [1; 4],
            clamped: None,
            late: None,
        };
        assert!(check_walk("g", &f(80, 256), 300).is_ok());
        assert!(check_walk("g", &f(64 * 20, 256), 10_000).is_ok());
        let e = check_walk("g", &f(40, 256), 300).unwrap_err().to_string();
        assert!(e.contains("want 5 passes of at least 16 samples"), "{e}");
        assert!(check_walk("g", &f(81, 256), 300).is_err());
        assert!(check_walk("g", &f(80, 1), 300).is_err());
        assert_eq!(expected_samples("mmu_update_512_per_entry", 300), Some(19));
        assert_eq!(expected_samples("page_fault_roundtrip", 300), Some(300));
        assert_eq!(expected_samples("kernel_set_pte_flush", 300), None);
        assert!(expected(&COLUMNS[0]).contains(&"mmu_update_1"));
        assert!(!expected(&COLUMNS[1]).contains(&"mmu_update_1"));
        assert!(expected(&COLUMNS[2]).contains(&"walk_2m_per_page"));
        assert!(expected(&COLUMNS[3]).contains(&"mmu_update_1"));
        assert!(!expected(&COLUMNS[4]).contains(&"walk_2m_per_page"));
        for (col, a, b, _) in ORDERINGS {
            let c = COLUMNS.iter().find(|c| c.key == *col).unwrap();
            assert!(expected(c).contains(a) && expected(c).contains(b), "{col}: {a} {b}");
        }
        let o = PagingOptions { quick: false, ..opts() };
        assert_eq!((o.iters(), o.walk(), o.memory_mib(), o.name()), (10_000, 64, 176, "paging"));
        assert_eq!((opts().walk(), opts().name()), (16, "paging-quick"));
        let s = scenarios(&opts(), Path::new("g.elf"), Path::new("vmlinuz"), Some(Path::new("rd")));
        let names: Vec<&str> = s.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "pg-rust-pv-1",
                "pg-rust-pvh-1",
                "pg-rust-pvh-shadow-1",
                "pg-linux-pv",
                "pg-linux-pvh"
            ]
        );
        assert_eq!(s[2].guests[0].mode, GuestMode::PvhShadow);
        assert!(s[0].guests[0]
            .cmdline
            .contains("bench.suite=paging bench.walk_mib=16 bench.quick=1"));
        assert!(s[4].guests[0]
            .cmdline
            .contains("bench_iters=300 bench_runs=1 bench_walk_mib=16 bench_passes=5"));
        assert!(s.iter().all(|x| x.guests[0].extra_config.iter().any(|l| l.contains("native"))));
        assert!(INIT_SH.contains("BENCH-DONE failures=") && INIT_SH.contains("/pfbench"));
        assert!(
            MODULE_C.contains("kernel_set_pte_flush") && PFBENCH_C.contains("page_fault_roundtrip")
        );
    }

    #[test]
    fn a_sane_quick_run_passes_and_a_refused_mode_is_a_row_not_a_gap() {
        let o = opts();
        let p = summarise(collect(&o, &boot(&sane)), &BootReport::default(), None);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        verdict(&p).unwrap();
        let shadow = p.columns.iter().find(|c| c.column.key == "rust-pvh-shadow").unwrap();
        assert!(
            shadow.refused.as_deref().unwrap().contains("Operation not supported"),
            "{shadow:?}"
        );
        let mut p = p;
        p.xen_shadow = Some("boot/xen-4.17-amd64.config: CONFIG_SHADOW_PAGING is not set".into());
        let t = table(&p, &o);
        assert!(t.contains("Rust PVH shadow: refused by this Xen: libxl: error"), "{t}");
        assert!(
            t.contains(
                "(Xen's build, boot/xen-4.17-amd64.config: CONFIG_SHADOW_PAGING is not set)"
            ),
            "{t}"
        );
        assert!(t.contains("refused"), "{t}");
        assert!(!t.contains("FAILS"), "{t}");
        let j = serde_json::to_value(to_json(&p, &o)).unwrap();
        assert_eq!(j["columns"][2]["column"]["mode"], "pvh-shadow", "{j}");
        assert!(j["columns"][2]["refused"].as_str().unwrap().contains("not supported"), "{j}");
        assert_eq!(j["rows"][0]["cells"][0]["ns"]["ns"]["median"], 300, "{j}");
        assert_eq!(j["rows"][7]["cells"][0]["over_null_hypercall"], 8.333, "{j}");
    }

    #[test]
    fn a_broken_ordering_or_a_missing_figure_fails_the_run() {
        let o = opts();
        // A batched update dearer per entry than a single one.
        let bad = |n: &str| if n == "mmu_update_512_per_entry" { 1000 } else { sane(n) };
        let p = summarise(collect(&o, &boot(&bad)), &BootReport::default(), None);
        let e = verdict(&p).unwrap_err().to_string();
        assert!(e.contains("mmu_update_512_per_entry < mmu_update_1 fails for rust-pv"), "{e}");
        assert!(table(&p, &o).contains("FAILS"));
        // A page fault measured as nothing cannot be judged.
        let zero = |n: &str| if n == "page_fault_roundtrip" { 0 } else { sane(n) };
        let p = summarise(collect(&o, &boot(&zero)), &BootReport::default(), None);
        let e = verdict(&p).unwrap_err().to_string();
        assert!(e.contains("a figure is missing or 0"), "{e}");
        // A run without its fault figure is a problem of the report.
        let mut b = boot(&sane);
        b.runs[0].console.retain(|l| !l.contains("name=page_fault_roundtrip "));
        let p = summarise(collect(&o, &b), &BootReport::default(), None);
        let e = verdict(&p).unwrap_err().to_string();
        assert!(e.contains("missing BENCH line(s) for page_fault_roundtrip"), "{e}");
        // A failed check too.
        let mut b = boot(&sane);
        for l in b.runs[1].console.iter_mut().filter(|l| l.contains("pte_write_applies")) {
            *l = "BENCH-CHECK name=pte_write_applies result=fail 3 read another frame".into();
        }
        let p = summarise(collect(&o, &b), &BootReport::default(), None);
        let e = verdict(&p).unwrap_err().to_string();
        assert!(e.contains("check pte_write_applies failed"), "{e}");
        // Every mode refused.
        let mut b = boot(&sane);
        for r in b.runs.iter_mut() {
            r.result = GuestResult::CreateFailed;
        }
        let p = summarise(collect(&o, &b), &BootReport::default(), None);
        assert!(verdict(&p).unwrap_err().to_string().contains("refused every mode"));
    }

    /// A Linux DomU's console: `rounds` rounds of every figure of its mode.
    fn linux_console(mode: GuestMode, rounds: u32) -> Vec<String> {
        let col = COLUMNS.iter().find(|c| c.linux && c.mode == mode).unwrap();
        let mut c = vec!["linux-paging: 6.1.0-56-amd64".to_string()];
        for r in 1..=rounds {
            c.push(format!("BENCH-RUN n={r}"));
            c.push(format!("BENCH-ENV xen=4.17.7 tsc_hz=2600000000 cpu=\"c\" domain=domU iters=300 kernel=linux-6.1.0-56-amd64 mode={} suite=paging", mode.name()));
            for n in expected(col) {
                let (k, per) = if n.starts_with("walk_") { (80, 256) } else { (300, 1) };
                c.push(format!(
                    "BENCH name={n} iters={k} per={per} cycles=1/{r}00/1/1 ns=1/{r}00/1/1"
                ));
            }
        }
        c.push("BENCH-DONE failures=0".into());
        c
    }

    #[test]
    fn a_linux_domu_that_died_in_boot_is_booted_once_more_and_noted() {
        let o = PagingOptions { no_linux: false, runs: 2, ..opts() };
        let mut b = boot(&sane);
        b.runs.retain(|r| r.name.ends_with("-1"));
        for n in ["pg-rust-pv-2", "pg-rust-pvh-2"] {
            let mode = if n.contains("pvh") { GuestMode::Pvh } else { GuestMode::Pv };
            b.runs.push(guest_run(n, GuestResult::Poweroff, console(mode, &sane)));
        }
        let mut r = guest_run("pg-rust-pvh-shadow-2", GuestResult::CreateFailed, vec![]);
        r.xl_output =
            vec!["[xl] libxl: error: domain creation fail: Operation not supported".into()];
        b.runs.push(r);
        b.runs.push(guest_run(
            "pg-linux-pv",
            GuestResult::Poweroff,
            linux_console(GuestMode::Pv, 2),
        ));
        let mut dead = guest_run("pg-linux-pvh", GuestResult::Reboot, vec![]);
        dead.domid = Some(5);
        // As the parser collects them: Xen's lines while it ran, one of
        // another domain's first.
        dead.xl_output = [
            "[xl list] pg-linux-pvh 5 512 1 r----- 0.0",
            "[xen] d4v0 Triple fault - invoking HVM shutdown action 1",
            "[xen] d5v0 Triple fault - invoking HVM shutdown action 1",
            "[xen] *** Dumping Dom5 vcpu#0 state: ***",
            "[xen] ----[ Xen-4.17.7  x86_64  debug=n  Not tainted ]----",
            "[xen] CPU:    1",
            "[xen] RIP:    e008:[<ffff82d0402044a5>] svm_stgi_label+0x8/0x18",
            "[xen] RFLAGS: 0000000000000046   CONTEXT: hvm guest (d5v0)",
        ]
        .map(String::from)
        .to_vec();
        b.runs.push(dead);
        b.runs.push(guest_run(
            "pg-linux-pvh-retry",
            GuestResult::Poweroff,
            linux_console(GuestMode::Pvh, 2),
        ));
        let p = summarise(collect(&o, &b), &BootReport::default(), None);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let l = p.columns.iter().find(|c| c.column.key == "linux-pvh").unwrap();
        assert_eq!(l.runs.len(), 2);
        assert_eq!(
            l.notes[0],
            "pg-linux-pvh ended with reboot before BENCH-DONE (0 console lines; Xen: Triple \
             fault - invoking HVM shutdown action 1, RIP:    e008:[<ffff82d0402044a5>] \
             svm_stgi_label+0x8/0x18); its second boot pg-linux-pvh-retry ran instead",
        );
        let t = table(&p, &o);
        assert!(t.contains("note: Linux PVH (HAP): pg-linux-pvh ended with reboot"), "{t}");
        // Two rounds of 100 and 200 ns: the median of the two is the lower.
        let pv = p.columns.iter().find(|c| c.column.key == "linux-pv").unwrap();
        assert_eq!(figure(pv, &ROWS[0]).unwrap().ns.median, 100);
        assert_eq!(figure(pv, &ROWS[0]).unwrap().runs, 2);
        verdict(&p).unwrap();
        // Without the second boot, the dead one is a problem.
        b.runs.retain(|r| r.name != "pg-linux-pvh-retry");
        let p = summarise(collect(&o, &b), &BootReport::default(), None);
        assert!(verdict(&p).unwrap_err().to_string().contains("pg-linux-pvh"), "{:?}", p.problems);
    }

    #[test]
    fn reads_xen_build_config() {
        let d = std::env::temp_dir().join(format!("pg-cfg-{}", std::process::id()));
        std::fs::create_dir_all(d.join("boot")).unwrap();
        assert_eq!(shadow_config(&d), None);
        std::fs::write(
            d.join("boot/xen-4.20-amd64.config"),
            "CONFIG_HVM=y\n# CONFIG_SHADOW_PAGING is not set\n",
        )
        .unwrap();
        assert_eq!(
            shadow_config(&d).as_deref(),
            Some("boot/xen-4.20-amd64.config: CONFIG_SHADOW_PAGING is not set")
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
