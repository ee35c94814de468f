//! The lab: fetch Xen and dom0 (cached), assemble dom0's initramfs with the
//! scenarios' guests, boot QEMU, follow the serial console, and return a
//! [`BootReport`].

use crate::cpio::Archive;
use crate::debs::{self, Dom0Bundle};
use crate::initramfs;
use crate::qemu::{Next, QemuChoice, QemuConfig, QemuProgram, Running};
use crate::release::XenRelease;
use crate::scenario::{
    self, live_guest_line, xl_line, BootReport, GuestResult, Marker, Parser, Scenario,
};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What to show live while a boot runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// Nothing but the final report.
    Quiet,
    /// Guest consoles, `xl` output, phase lines and errors (default).
    Guests,
    /// Every serial line (Xen, dom0 kernel, markers).
    All,
}

/// Lab settings.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Try KVM (off by default: Xen dies under KVM on the known machines).
    pub kvm: bool,
    /// Verbose Xen and dom0 kernel logging (and echo everything).
    pub verbose: bool,
    /// Live output.
    pub echo: Echo,
    /// Live output to stdout (else stderr, which test harnesses don't capture).
    pub to_stdout: bool,
    /// dom0's memory, MiB.
    pub dom0_mem_mib: u32,
    /// From QEMU start to dom0 ready.
    pub boot_timeout: Duration,
    /// The cache of packages.
    pub cache_dir: PathBuf,
    /// Names this boot's files under `target/xen/logs/`.
    pub label: String,
    /// QEMU's `-cpu` model (`None`: `$XENPV_QEMU_CPU` or the TCG default).
    pub cpu: Option<String>,
    /// The Xen release to boot; by default from `$XENPV_XEN` (unset: 4.17).
    /// An `Err` (a misspelt `$XENPV_XEN`) fails [`Lab::prepare`] with
    /// this message: never a silent default.
    pub xen: Result<XenRelease, String>,
    /// Which QEMU; by default from `$XENPV_QEMU` (unset: the host's). An
    /// `Err` (a misspelt value) fails [`Lab::prepare`] with this message.
    pub qemu: Result<QemuChoice, String>,
}

impl LabOptions {
    /// A benchmark's boot: live output on stdout (the guests', or all of
    /// it with `verbose`), labelled `label`, on `xen` if given.
    pub fn bench(label: &str, kvm: bool, verbose: bool, xen: Option<XenRelease>) -> Self {
        let d = LabOptions::default();
        LabOptions {
            kvm,
            verbose: verbose || d.verbose,
            echo: if verbose { Echo::All } else { Echo::Guests },
            to_stdout: true,
            label: label.into(),
            ..d
        }
        .with_xen(xen)
    }

    /// These options with `release` if given (else as they are: from
    /// `$XENPV_XEN`).
    pub fn with_xen(mut self, release: Option<XenRelease>) -> Self {
        if let Some(r) = release {
            self.xen = Ok(r);
        }
        self
    }
}

impl Default for LabOptions {
    fn default() -> Self {
        let verbose = std::env::var_os("XENPV_LAB_VERBOSE").is_some_and(|v| !v.is_empty());
        Self {
            kvm: false,
            verbose,
            echo: if verbose { Echo::All } else { Echo::Guests },
            to_stdout: false,
            dom0_mem_mib: 512,
            boot_timeout: Duration::from_secs(300),
            cache_dir: crate::cache::cache_dir(),
            label: "boot".to_string(),
            cpu: None,
            xen: XenRelease::from_env(),
            qemu: QemuChoice::from_env(),
        }
    }
}

/// A prepared lab: packages fetched and extracted.
#[derive(Debug)]
pub struct Lab {
    /// Settings.
    pub opts: LabOptions,
    /// The extracted packages.
    pub bundle: Dom0Bundle,
    /// The QEMU that boots it.
    pub qemu: QemuProgram,
    /// How long fetching took.
    pub fetch_time: Duration,
}

/// Serializes `prepare` within one process (tests share the cache).
static PREPARE: Mutex<()> = Mutex::new(());

fn say(to_stdout: bool, s: &str) {
    if to_stdout {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    } else {
        let mut e = std::io::stderr().lock();
        let _ = writeln!(e, "{s}");
        let _ = e.flush();
    }
}

/// Removes `LABEL.PID.serial.log` files of processes that are gone
/// (runs that were killed before renaming their log).
fn prune_stale_logs(dir: &std::path::Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".serial.log") else {
            continue;
        };
        let Some((_, pid)) = stem.rsplit_once('.') else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl Lab {
    /// Fetches (or reuses from the cache) Xen, dom0's kernel and toolstack.
    pub fn prepare(opts: LabOptions) -> Result<Self> {
        let _g = PREPARE.lock().unwrap_or_else(|e| e.into_inner());
        let t = Instant::now();
        let to_stdout = opts.to_stdout;
        let quiet = opts.echo == Echo::Quiet;
        let mut log = |s: &str| {
            if !quiet {
                say(to_stdout, &format!("[lab] {s}"));
            }
        };
        let release = opts.xen.clone().map_err(anyhow::Error::msg)?;
        let choice = opts.qemu.clone().map_err(anyhow::Error::msg)?;
        let needs: Vec<crate::setup::Need> = crate::setup::LAB
            .iter()
            .filter(|n| choice.needs_host_qemu() || n.package != crate::setup::HOST_QEMU_PACKAGE)
            .copied()
            .collect();
        crate::setup::ensure_packages(&needs)?;
        if release.uses_host_apt() {
            crate::setup::refresh_package_lists()?;
        }
        crate::cmd::mkdir(&opts.cache_dir)?;
        let bundle = debs::fetch(&opts.cache_dir, release, &mut log).with_context(|| {
            format!("fetching {release} and dom0 from {} failed", release.debian())
        })?;
        let qemu = crate::qemu::resolve(&choice, &opts.cache_dir, &mut log)?;
        log(&format!(
            "{release} from {} + dom0 Linux {} ready in {}",
            release.debian(),
            bundle.kernel_version,
            secs(t.elapsed())
        ));
        Ok(Self { opts, bundle, qemu, fetch_time: t.elapsed() })
    }

    fn say(&self, s: &str) {
        if self.opts.echo != Echo::Quiet {
            say(self.opts.to_stdout, s);
        }
    }

    /// QEMU memory for these scenarios: dom0 + the largest scenario + slack.
    pub fn machine_memory_mib(&self, scenarios: &[Scenario]) -> u32 {
        let guests = scenarios.iter().map(Scenario::memory_mib).max().unwrap_or(0);
        let total = self.opts.dom0_mem_mib + guests + 256;
        total.div_ceil(128) * 128
    }

    /// Xen's command line.
    pub fn xen_cmdline(&self) -> String {
        let m = self.opts.dom0_mem_mib;
        let mut s = format!(
            "console=com1 com1=115200,8n1 serial_tx_buffer=256k dom0_mem={m}M,max:{m}M dom0_max_vcpus=2"
        );
        if self.opts.verbose {
            s.push_str(" loglvl=all guest_loglvl=all");
        }
        if let Ok(extra) = std::env::var("XENPV_XEN_ARGS") {
            if !extra.trim().is_empty() {
                s.push(' ');
                s.push_str(extra.trim());
            }
        }
        s
    }

    /// dom0's command line (`LAB_*=` words become `/init`'s environment).
    pub fn dom0_cmdline(&self) -> String {
        let mut s = String::from("console=hvc0 earlyprintk=xen panic=-1 rdinit=/init");
        if self.opts.verbose {
            s.push_str(" loglevel=7 LAB_VERBOSE=1");
        } else {
            s.push_str(" loglevel=4");
        }
        s
    }

    /// Builds dom0's initramfs with these scenarios.
    pub fn initramfs(&self, scenarios: &[Scenario]) -> Result<Archive> {
        let mut a = initramfs::base(&self.bundle)?;
        initramfs::add_scenarios(&mut a, scenarios)?;
        Ok(a)
    }

    /// Boots once and runs all `scenarios` in order.
    ///
    /// `Err` only when nothing could be started (bad scenarios, missing
    /// QEMU, initramfs failure); a boot that started and went wrong returns
    /// a report with [`BootReport::failure`] set and the runs so far.
    pub fn boot(&self, scenarios: &[Scenario]) -> Result<BootReport> {
        self.boot_inner(scenarios, false)
    }

    /// As [`boot`](Self::boot), but a boot in which Xen ends a guest with
    /// a triple fault (the emulator's PVH glitch, docs/pvh.md) is stopped
    /// a few seconds after Xen's line, with [`BootReport::failure`] saying
    /// so: for a caller that boots again after a triple fault, the rest of
    /// the struck boot is waiting (every later console wait and load
    /// against the dead guest runs out its timeout: over 10 minutes in
    /// `smp_net`).
    pub fn boot_stopping_at_triple_fault(&self, scenarios: &[Scenario]) -> Result<BootReport> {
        self.boot_inner(scenarios, true)
    }

    fn boot_inner(&self, scenarios: &[Scenario], stop_at_triple_fault: bool) -> Result<BootReport> {
        scenario::validate(scenarios)?;
        let t_init = Instant::now();
        let archive = self.initramfs(scenarios)?;
        let out = crate::xen_out_dir();
        let logs = out.join("logs");
        crate::cmd::mkdir(&logs)?;
        let work = out.join("work");
        crate::cmd::mkdir(&work)?;
        let initrd = work.join(format!("{}-{}.cpio", self.opts.label, std::process::id()));
        std::fs::write(&initrd, archive.to_bytes())
            .with_context(|| format!("cannot write {}", initrd.display()))?;
        let initramfs_time = t_init.elapsed();
        self.say(&format!(
            "[lab] dom0 initramfs: {} entries, {:.1} MiB, built in {}",
            archive.len(),
            archive.data_bytes() as f64 / (1024.0 * 1024.0),
            secs(initramfs_time)
        ));

        let cfg = QemuConfig {
            xen: self.bundle.xen.clone(),
            xen_cmdline: self.xen_cmdline(),
            dom0_kernel: self.bundle.vmlinuz.clone(),
            dom0_cmdline: self.dom0_cmdline(),
            initrd: initrd.clone(),
            memory_mib: self.machine_memory_mib(scenarios),
            smp: 2,
            kvm: self.opts.kvm,
            cpu: self.opts.cpu.clone(),
            qemu: self.qemu.clone(),
        };
        // Written under a private name (several runs may share a target
        // dir), then renamed to LABEL.serial.log: the latest finished run.
        prune_stale_logs(&logs);
        let running = logs.join(format!("{}.{}.serial.log", self.opts.label, std::process::id()));
        let mut report = self.run_qemu(&cfg, scenarios, &running, stop_at_triple_fault);
        self.name_crash_sites(scenarios, &mut report);
        // A struck boot's log keeps Xen's register dump: the retry's log
        // must not replace it.
        let serial_path = match report.stopped_at_triple_fault {
            Some(_) => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                logs.join(format!("{}.struck-{stamp}.serial.log", self.opts.label))
            }
            None => logs.join(format!("{}.serial.log", self.opts.label)),
        };
        let _ = std::fs::remove_file(&initrd);
        report.serial_log = Some(match std::fs::rename(&running, &serial_path) {
            Ok(()) => serial_path,
            Err(_) => running,
        });
        report.initramfs_time = initramfs_time;
        Ok(report)
    }

    /// Each crashed guest's `[crash site]` lines (crashsite.rs), from
    /// dom0's dump of its vCPUs and its image's symbols: in its toolstack
    /// lines, and said.
    fn name_crash_sites(&self, scenarios: &[Scenario], report: &mut BootReport) {
        for run in report.runs.iter_mut().filter(|r| r.result == GuestResult::Crash) {
            let sites = crate::crashsite::parse(&run.xl_output);
            let Some(spec) = scenarios.iter().flat_map(|s| &s.guests).find(|g| g.name == run.name)
            else {
                continue;
            };
            for line in crate::crashsite::describe_with_image(&sites, &spec.kernel) {
                self.say(&format!("[{}] {line}", run.name));
                run.xl_output.push(line);
            }
        }
    }

    fn run_qemu(
        &self,
        cfg: &QemuConfig,
        scenarios: &[Scenario],
        serial_path: &PathBuf,
        stop_at_triple_fault: bool,
    ) -> BootReport {
        let mut parser = Parser::new();
        let mut serial = std::fs::File::create(serial_path).ok();
        if let (Some(f), Ok(c)) = (serial.as_mut(), cfg.command()) {
            let _ = writeln!(f, "# {c:?}");
        }
        self.say(&format!(
            "[lab] booting Xen + dom0 in QEMU ({}, {} MiB){}",
            if cfg.kvm { "KVM" } else { "TCG" },
            cfg.memory_mib,
            match self.opts.qemu {
                Ok(QemuChoice::Host) => String::new(),
                _ => format!(" with {}", cfg.qemu.name),
            }
        ));
        let mut q = match Running::start(cfg) {
            Ok(q) => q,
            Err(e) => {
                parser.report.failure = Some(format!("{e:#}"));
                return parser.report;
            }
        };
        let guests: Vec<String> =
            scenarios.iter().flat_map(|s| s.guests.iter().map(|g| g.name.clone())).collect();
        let start = q.started;
        // Xen prints within seconds under TCG: silence means it died early
        // (e.g. under KVM, see --kvm), so don't wait the whole boot timeout.
        let first_output = Duration::from_secs(60).min(self.opts.boot_timeout);
        let mut deadline = start + first_output;
        let mut waiting_for = format!("Xen's first message (none in {})", secs(first_output));
        let mut seen_output = false;
        let mut tail: std::collections::VecDeque<String> = Default::default();
        let mut done = false;
        let mut shown: std::collections::HashMap<String, usize> = Default::default();
        let mut killed = false;
        loop {
            match q.next(deadline) {
                Next::Line(t, line) => {
                    let at = t.saturating_duration_since(start);
                    if !seen_output && line.contains("(XEN)") {
                        seen_output = true;
                        deadline = start + self.opts.boot_timeout;
                        waiting_for = format!(
                            "dom0 to come up (boot timeout {})",
                            secs(self.opts.boot_timeout)
                        );
                    }
                    if let Some(f) = serial.as_mut() {
                        let _ = writeln!(f, "[{:9.3}] {line}", at.as_secs_f64());
                    }
                    tail.push_back(line.clone());
                    if tail.len() > 40 {
                        tail.pop_front();
                    }
                    let marker = parser.line(at, &line);
                    self.echo_line(&line, marker.as_ref(), &guests, at, &parser.report, &mut shown);
                    if stop_at_triple_fault && parser.report.stopped_at_triple_fault.is_none() {
                        if let Some(x) = xen_triple_fault(&line, &parser.report) {
                            parser.report.stopped_at_triple_fault = Some((at, x));
                            // Xen's register dump follows at once: kept
                            // in the serial log, then QEMU is stopped.
                            deadline = Instant::now() + Duration::from_secs(3);
                            waiting_for = "Xen's dump after the triple fault".into();
                            continue;
                        }
                    }
                    if parser.report.stopped_at_triple_fault.is_some() {
                        continue;
                    }
                    match marker {
                        Some(Marker::Dom0Ready(_)) => {
                            deadline = Instant::now() + Duration::from_secs(60);
                            waiting_for = "the first scenario to start".into();
                        }
                        Some(Marker::ScenarioBegin(n)) => {
                            let budget = scenarios
                                .iter()
                                .find(|s| s.name == n)
                                .map_or(Duration::from_secs(120), Scenario::budget);
                            deadline = Instant::now() + budget;
                            waiting_for = format!("scenario {n} (budget {})", secs(budget));
                        }
                        Some(Marker::ScenarioEnd(n, _)) => {
                            deadline = Instant::now() + Duration::from_secs(60);
                            waiting_for = format!("the next scenario after {n}");
                        }
                        Some(Marker::Dom0Error(_)) => {
                            deadline = Instant::now() + Duration::from_secs(30);
                            waiting_for = "dom0 to power off after its error".into();
                        }
                        Some(Marker::AllDone) => {
                            done = true;
                            deadline = Instant::now() + Duration::from_secs(60);
                            waiting_for = "dom0 to power off".into();
                        }
                        _ => {}
                    }
                }
                Next::Eof => break,
                Next::Timeout => {
                    killed = true;
                    if let Some((_, x)) = parser.report.stopped_at_triple_fault.clone() {
                        parser.report.failure = Some(format!(
                            "boot stopped {} into QEMU, 3 s after Xen's triple fault ({x}), \
                             to boot again",
                            secs(start.elapsed())
                        ));
                    } else if parser.report.failure.is_none() {
                        let hint = if cfg.kvm && !seen_output {
                            " (Xen is known to die early under KVM on some machines: run without --kvm)"
                        } else {
                            ""
                        };
                        let dumps = parser.report.budget_dumps();
                        let dumped = if dumps.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (dom0 dumped the vCPUs before: [xl ctx] lines of {})",
                                dumps.join(", ")
                            )
                        };
                        parser.report.failure = Some(format!(
                            "timeout after {}: waiting for {waiting_for}; QEMU killed{hint}{dumped}",
                            secs(start.elapsed())
                        ));
                    }
                    break;
                }
            }
        }
        // QEMU ends by itself when dom0 powers off; one given up on is
        // killed at once.
        let grace = if killed { Duration::ZERO } else { Duration::from_secs(10) };
        let (status, stderr) = q.finish(grace);
        parser.report.qemu_time = start.elapsed();
        parser.report.tail = tail.into_iter().collect();
        if parser.report.failure.is_none() {
            if !done {
                let what = if parser.report.dom0_ready_at.is_none() {
                    "before dom0 was ready"
                } else {
                    "before all scenarios finished"
                };
                let why = match status {
                    Some(s) if !s.success() => {
                        format!(" ({s}: {})", crate::cmd::last_lines(&stderr, 2))
                    }
                    _ => String::new(),
                };
                parser.report.failure = Some(format!("QEMU exited {what}{why}"));
            } else if let Some(s) = status.filter(|s| !s.success()) {
                parser.report.failure =
                    Some(format!("QEMU failed ({s}): {}", crate::cmd::last_lines(&stderr, 2)));
            }
        }
        if let Some(f) = &parser.report.failure {
            self.say(&format!("[lab] boot failed: {f}"));
        }
        parser.report
    }

    /// Shows a serial line live. `shown` counts each guest's console lines
    /// already displayed, so the final dump only adds what the live view missed.
    fn echo_line(
        &self,
        line: &str,
        marker: Option<&Marker>,
        guests: &[String],
        at: Duration,
        r: &BootReport,
        shown: &mut std::collections::HashMap<String, usize>,
    ) {
        match self.opts.echo {
            Echo::Quiet => {}
            Echo::All => self.say(line),
            Echo::Guests => {
                if let Some(m) = marker {
                    let msg = match m {
                        Marker::Dom0Ready(_) => Some(format!(
                            "[lab] dom0 ready after {} (Xen {})",
                            secs(at),
                            r.xen_version.as_deref().unwrap_or("?")
                        )),
                        Marker::Dom0Error(e) => Some(format!("[lab] dom0 error: {e}")),
                        Marker::Console(n, text) => {
                            let idx =
                                r.runs.iter().find(|x| &x.name == n).map_or(0, |x| x.console.len());
                            let seen = shown.entry(n.clone()).or_default();
                            if idx > *seen {
                                *seen = idx;
                                Some(format!("[{n}] {}", text.trim_end_matches('\r')))
                            } else {
                                None
                            }
                        }
                        Marker::ScenarioBegin(n) => Some(format!("[lab] scenario {n}")),
                        Marker::GuestUp(n, d) => {
                            let run = r.runs.iter().find(|x| &x.name == n);
                            Some(format!(
                                "[lab] guest {n}: domain {} built in {}",
                                d.map_or("?".into(), |d| d.to_string()),
                                run.and_then(|x| x.create_time()).map_or("?".into(), secs)
                            ))
                        }
                        Marker::Guest(n, _, res) => {
                            let run = r.runs.iter().find(|x| &x.name == n);
                            Some(format!(
                                "[lab] guest {n}: {res} after {}",
                                run.and_then(|x| x.run_time()).map_or("?".into(), secs)
                            ))
                        }
                        _ => None,
                    };
                    if let Some(m) = msg {
                        self.say(&m);
                    }
                } else if let Some((name, text)) = live_guest_line(line, guests) {
                    *shown.entry(name.to_string()).or_default() += 1;
                    self.say(&format!("[{name}] {text}"));
                } else if xl_line(line).is_some()
                    || line.contains("characters lost")
                    || line.contains("Panic")
                    || line.contains("Kernel panic")
                    || line.contains("FATAL")
                {
                    self.say(line);
                }
            }
        }
    }
}

/// Xen's own line saying it ended a guest with a triple fault, once dom0
/// is up (the line as `xen_tests::triple_faults` finds it later).
fn xen_triple_fault(line: &str, report: &BootReport) -> Option<String> {
    let at = line.find("(XEN) ")?;
    let rest = &line[at + "(XEN) ".len()..];
    (report.dom0_ready_at.is_some() && rest.contains("Triple fault"))
        .then(|| rest.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_triple_fault_is_xens_own_line_once_dom0_is_up() {
        use super::xen_triple_fault;
        let line = "(XEN) d3v1 Triple fault - invoking HVM shutdown action 1";
        let mut r = BootReport::default();
        assert_eq!(xen_triple_fault(line, &r), None, "before dom0 is up");
        r.dom0_ready_at = Some(Duration::from_secs(20));
        assert_eq!(
            xen_triple_fault(line, &r).as_deref(),
            Some("d3v1 Triple fault - invoking HVM shutdown action 1")
        );
        // Cut into a line of dom0's, as the parser sees it.
        let cut = format!("[xl check] vcpus-1{line}");
        assert!(xen_triple_fault(&cut, &r).is_some());
        assert_eq!(xen_triple_fault("[xl check] seen 'Triple fault' x1 in shttp", &r), None);
        assert_eq!(xen_triple_fault("(XEN) d3v0 Dumping state", &r), None);
    }

    use super::*;
    use crate::GuestSpec;

    fn lab(verbose: bool) -> Lab {
        Lab {
            opts: LabOptions { verbose, ..LabOptions::default() },
            bundle: Dom0Bundle {
                root: "/x".into(),
                xen: "/x/xen.elf".into(),
                vmlinuz: "/x/vmlinuz".into(),
                kernel_version: "6.1.0-1-amd64".into(),
                debs: Vec::new(),
                key: "k".into(),
                release: XenRelease::V4_17,
            },
            qemu: QemuProgram::binary("/usr/bin/qemu-system-x86_64".into(), "test"),
            fetch_time: Duration::ZERO,
        }
    }

    #[test]
    fn memory_covers_dom0_and_the_largest_scenario() {
        let l = lab(false);
        let small = Scenario::single(GuestSpec::new("a", "/k", "hello"));
        let big = Scenario::single(GuestSpec::new("b", "/k", "hello").memory(1024));
        assert_eq!(l.machine_memory_mib(std::slice::from_ref(&small)), 896);
        let m = l.machine_memory_mib(&[small, big]);
        assert!(m >= 512 + 1024 + 8 && m.is_multiple_of(128), "{m}");
    }

    #[test]
    fn command_lines() {
        let quiet = lab(false);
        assert!(quiet.dom0_cmdline().contains("loglevel=4"));
        assert!(quiet.xen_cmdline().contains("dom0_mem=512M,max:512M"));
        assert!(!quiet.xen_cmdline().contains("loglvl=all"));
        let verbose = lab(true);
        assert!(verbose.dom0_cmdline().contains("LAB_VERBOSE=1"));
        assert!(verbose.xen_cmdline().contains("loglvl=all"));
    }
}
