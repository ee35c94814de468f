//! Scenarios (what one boot runs) and their results.
//!
//! One QEMU boot costs tens of seconds under TCG, so a boot runs a list of
//! [`Scenario`]s in sequence. Each is a dom0 shell snippet (by default one
//! `run_guest` per guest) using the library in `dom0/lib.sh`. The host parses
//! the marker lines dom0 prints into a [`BootReport`].

use crate::dom0::{GUEST_CFG_DIR, GUEST_KERNEL_DIR};
use crate::mode::GuestMode;
use crate::xlcfg::{validate_name, XlConfig};
use anyhow::{bail, Result};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// One guest domain to create.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    /// Domain name; also the `[NAME]` prefix of its console lines. Unique in a boot.
    pub name: String,
    /// The guest ELF on the host.
    pub kernel: PathBuf,
    /// The guest command line (xl `extra=`).
    pub cmdline: String,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// How long the guest may run before `xl destroy`.
    pub timeout: Duration,
    /// xl `on_reboot` (the lab default is `destroy`, so a reboot is reported).
    pub on_reboot: String,
    /// xl `on_crash`; the lab's default `preserve` keeps a crashed domain
    /// until dom0's `run_guest_wait` has read its vCPUs and destroyed it
    /// ([`crate::crashsite`]).
    pub on_crash: String,
    /// Further raw xl config lines.
    pub extra_config: Vec<String>,
    /// An initial ramdisk on the host (xl `ramdisk=`), e.g. for a Linux DomU.
    pub ramdisk: Option<PathBuf>,
    /// PV, PVH or PVH with shadow paging; by default `$XENPV_MODE` (a
    /// misspelt value fails [`validate`]).
    pub mode: GuestMode,
}

impl GuestSpec {
    /// A guest running `kernel` with `app=APP`, 32 MiB, 60 s timeout.
    pub fn new(name: &str, kernel: impl Into<PathBuf>, app: &str) -> Self {
        Self {
            name: name.to_string(),
            kernel: kernel.into(),
            cmdline: format!("app={app}"),
            memory_mib: 32,
            vcpus: 1,
            timeout: Duration::from_secs(60),
            on_reboot: "destroy".into(),
            on_crash: "preserve".into(),
            extra_config: Vec::new(),
            ramdisk: None,
            mode: GuestMode::from_env().unwrap_or_default(),
        }
    }

    /// Sets the initial ramdisk (copied into dom0 next to the kernel).
    pub fn ramdisk(mut self, path: impl Into<PathBuf>) -> Self {
        self.ramdisk = Some(path.into());
        self
    }

    /// Appends words to the command line.
    pub fn args(mut self, extra: &[String]) -> Self {
        for a in extra {
            self.cmdline.push(' ');
            self.cmdline.push_str(a);
        }
        self
    }

    /// Sets the memory size.
    pub fn memory(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Sets the number of vCPUs (xl `vcpus=`).
    pub fn vcpus(mut self, n: u32) -> Self {
        self.vcpus = n;
        self
    }

    /// Sets the mode (PV or PVH).
    pub fn mode(mut self, mode: GuestMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The xl config as used inside dom0 (kernel under `/guests`).
    pub fn xl_config(&self, kernel_in_dom0: &str) -> XlConfig {
        let mut c = XlConfig::new(&self.name, kernel_in_dom0, &self.cmdline);
        c.memory_mib = self.memory_mib;
        c.vcpus = self.vcpus;
        c.on_reboot = self.on_reboot.clone();
        c.on_crash = self.on_crash.clone();
        c.extra_lines = self.extra_config.clone();
        c.mode = self.mode;
        c
    }

    /// Path of this guest's config inside dom0.
    pub fn cfg_path(&self) -> String {
        format!("{GUEST_CFG_DIR}/{}.cfg", self.name)
    }
}

/// How long before a scenario's budget runs out dom0 dumps its domains'
/// vCPUs ([`Scenario::watch`]): one domain's dump takes at most 27 s
/// (`lab_vcpu_dump` in dom0/lib.sh: 5 s for `xl domid`, twice 10 s of
/// `xenctx` and a 1 s pause), `xl list` before it 5 s.
pub const WATCH_MARGIN: Duration = Duration::from_secs(40);

/// What `lab_budget_watch` (dom0/lib.sh) says before its dump.
const WATCH_WORDS: &str = "near its budget: the vCPUs of its domains";

/// A dom0 shell snippet and the guests it uses.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Scenario name.
    pub name: String,
    /// Guests whose configs (`/etc/xen-lab/guests/NAME.cfg`) and kernels
    /// are put in dom0.
    pub guests: Vec<GuestSpec>,
    /// The snippet; `None` runs each guest in turn with `run_guest`.
    pub script: Option<String>,
    /// Extra time the script needs besides the guests' timeouts.
    pub slack: Duration,
    /// Host files put into dom0 as well: (path in dom0, host path).
    pub files: Vec<(String, PathBuf)>,
}

impl Scenario {
    /// A scenario running one guest.
    pub fn single(guest: GuestSpec) -> Self {
        Self {
            name: guest.name.clone(),
            guests: vec![guest],
            script: None,
            slack: Duration::from_secs(60),
            files: Vec::new(),
        }
    }

    /// A scenario running a custom snippet.
    pub fn script(name: &str, guests: Vec<GuestSpec>, script: &str) -> Self {
        Self {
            name: name.to_string(),
            guests,
            script: Some(script.to_string()),
            slack: Duration::from_secs(60),
            files: Vec::new(),
        }
    }

    /// Puts the host file `src` at `dest` in dom0 (mode 0755).
    pub fn with_file(mut self, dest: &str, src: impl Into<PathBuf>) -> Self {
        self.files.push((dest.trim_start_matches('/').to_string(), src.into()));
        self
    }

    /// The shell text dom0 runs for this scenario.
    pub fn shell(&self) -> String {
        let body = match &self.script {
            Some(s) => s.clone(),
            None => self
                .guests
                .iter()
                .map(|g| {
                    format!(
                        "run_guest {} {} {}\n",
                        g.name,
                        g.cfg_path(),
                        g.timeout.as_secs().max(1)
                    )
                })
                .collect(),
        };
        // The host kills QEMU when the budget runs out: a watch in dom0
        // dumps the vCPUs of the domains still there a little before
        // (`lab_budget_watch`, dom0/lib.sh), and is killed if the
        // scenario ends first.
        format!(
            "echo \"@@SCENARIO-BEGIN name={n}\"\n\
             lab_budget_watch {n} {w} &\nLAB_WATCH=$!\n\
             (\n{body}\n)\nLAB_RC=$?\n\
             kill \"$LAB_WATCH\" 2>/dev/null\n\
             echo \"@@SCENARIO-END name={n} rc=$LAB_RC\"\n",
            n = self.name,
            w = self.watch().as_secs()
        )
    }

    /// How long the host waits for this scenario.
    pub fn budget(&self) -> Duration {
        self.guests.iter().map(|g| g.timeout + Duration::from_secs(30)).sum::<Duration>()
            + self.slack
    }

    /// When dom0 dumps the vCPUs of the domains still there: [`WATCH_MARGIN`]
    /// before the [`budget`](Self::budget) runs out (or halfway through a
    /// budget shorter than twice that), so the dump is over before the
    /// host kills QEMU.
    pub fn watch(&self) -> Duration {
        let b = self.budget();
        b.saturating_sub(WATCH_MARGIN).max(b / 2)
    }

    /// Memory all its guests need at once, MiB (plus per-domain overhead).
    pub fn memory_mib(&self) -> u32 {
        self.guests.iter().map(|g| g.memory_mib + 8).sum()
    }
}

/// Checks names are valid and unique, and kernels exist.
pub fn validate(scenarios: &[Scenario]) -> Result<()> {
    if scenarios.is_empty() {
        bail!("no scenarios to run");
    }
    // GuestSpec::new falls back to PV on a misspelt $XENPV_MODE; refuse it here.
    GuestMode::from_env().map_err(anyhow::Error::msg)?;
    let mut names = std::collections::BTreeSet::new();
    let mut snames = std::collections::BTreeSet::new();
    for s in scenarios {
        validate_name(&s.name)?;
        if !snames.insert(s.name.clone()) {
            bail!("scenario name {:?} used twice", s.name);
        }
        for g in &s.guests {
            validate_name(&g.name)?;
            if !names.insert(g.name.clone()) {
                bail!("guest name {:?} used twice in one boot", g.name);
            }
            if !g.kernel.is_file() {
                bail!(
                    "guest kernel {} not found (build it first: `cargo xtask build`)",
                    g.kernel.display()
                );
            }
            if let Some(rd) = g.ramdisk.as_ref().filter(|rd| !rd.is_file()) {
                bail!("ramdisk {} of guest {} not found", rd.display(), g.name);
            }
            g.xl_config(&format!("{GUEST_KERNEL_DIR}/x.elf")).validate()?;
        }
    }
    Ok(())
}

/// How a guest run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestResult {
    /// SCHEDOP_shutdown(poweroff): the clean end.
    Poweroff,
    /// Shutdown reason reboot.
    Reboot,
    /// Shutdown reason suspend.
    Suspend,
    /// Shutdown reason crash.
    Crash,
    /// The watchdog fired.
    Watchdog,
    /// Soft reset.
    SoftReset,
    /// Still running at its timeout (destroyed).
    Timeout,
    /// `xl create` failed.
    CreateFailed,
    /// The run never finished (the boot ended first).
    Incomplete,
    /// Anything else dom0 reported.
    Other(String),
}

impl GuestResult {
    /// From the `result=` word dom0 prints.
    pub fn parse(s: &str) -> Self {
        match s {
            "poweroff" => Self::Poweroff,
            "reboot" => Self::Reboot,
            "suspend" => Self::Suspend,
            "crash" => Self::Crash,
            "watchdog" => Self::Watchdog,
            "soft_reset" => Self::SoftReset,
            "timeout" => Self::Timeout,
            "create-failed" => Self::CreateFailed,
            o => Self::Other(o.to_string()),
        }
    }
}

impl fmt::Display for GuestResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Poweroff => "poweroff",
            Self::Reboot => "reboot",
            Self::Suspend => "suspend",
            Self::Crash => "crash",
            Self::Watchdog => "watchdog",
            Self::SoftReset => "soft_reset",
            Self::Timeout => "timeout",
            Self::CreateFailed => "create-failed",
            Self::Incomplete => "incomplete",
            Self::Other(o) => o,
        };
        f.write_str(s)
    }
}

/// One guest run's outcome.
#[derive(Debug, Clone)]
pub struct GuestRun {
    /// Domain name.
    pub name: String,
    /// Scenario it ran in.
    pub scenario: String,
    /// Domain id (≥ 1 for a DomU).
    pub domid: Option<u32>,
    /// How it ended.
    pub result: GuestResult,
    /// The complete console log (from xenconsoled's file), `\r` stripped.
    pub console: Vec<String>,
    /// Did the whole console log reach the host (line count checked)?
    pub console_complete: bool,
    /// `xl create` started (since QEMU start).
    pub create_at: Option<Duration>,
    /// Domain built and paused (since QEMU start).
    pub up_at: Option<Duration>,
    /// Domain gone (since QEMU start).
    pub end_at: Option<Duration>,
    /// Toolstack messages (`[xl] ...`) seen for this guest.
    pub xl_output: Vec<String>,
}

impl GuestRun {
    /// A run of guest `name` in `scenario`, not yet seen to end.
    pub fn new(name: &str, scenario: &str) -> Self {
        Self {
            name: name.to_string(),
            scenario: scenario.to_string(),
            domid: None,
            result: GuestResult::Incomplete,
            console: Vec::new(),
            console_complete: false,
            create_at: None,
            up_at: None,
            end_at: None,
            xl_output: Vec::new(),
        }
    }

    /// Time from `xl create` to the domain being built.
    pub fn create_time(&self) -> Option<Duration> {
        Some(self.up_at?.saturating_sub(self.create_at?))
    }

    /// Time from the domain being built to its end.
    pub fn run_time(&self) -> Option<Duration> {
        Some(self.end_at?.saturating_sub(self.up_at?))
    }

    /// The console as one string.
    pub fn console_text(&self) -> String {
        self.console.join("\n")
    }

    /// A failure description with the console, for assertion messages.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "guest {} (domid {}): result {}, {} console lines{}",
            self.name,
            self.domid.map_or("none".to_string(), |d| d.to_string()),
            self.result,
            self.console.len(),
            if self.console_complete { "" } else { " (console INCOMPLETE)" }
        );
        for l in &self.xl_output {
            s.push_str(&format!("\n  {l}"));
        }
        s.push_str("\n--- console ---");
        for l in &self.console {
            s.push_str(&format!("\n  {l}"));
        }
        s.push_str("\n--- end ---");
        s
    }
}

/// One scenario's outcome.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    /// Name.
    pub name: String,
    /// Exit status of its snippet (`None`: did not finish).
    pub rc: Option<i32>,
    /// Start and end, since QEMU start.
    pub begin_at: Option<Duration>,
    /// End, since QEMU start.
    pub end_at: Option<Duration>,
}

/// Everything one boot produced.
#[derive(Debug, Clone, Default)]
pub struct BootReport {
    /// Guest runs in the order they started.
    pub runs: Vec<GuestRun>,
    /// Scenarios in order.
    pub scenarios: Vec<ScenarioRun>,
    /// Xen version dom0 saw (`4.17.x`).
    pub xen_version: Option<String>,
    /// dom0 `/init` started (since QEMU start).
    pub dom0_init_at: Option<Duration>,
    /// dom0 toolstack ready (since QEMU start).
    pub dom0_ready_at: Option<Duration>,
    /// All scenarios done.
    pub all_done_at: Option<Duration>,
    /// QEMU ran this long.
    pub qemu_time: Duration,
    /// Building the initramfs took this long.
    pub initramfs_time: Duration,
    /// Why the boot failed, if it did (timeout, QEMU died, dom0 error...).
    pub failure: Option<String>,
    /// The full serial log on disk.
    pub serial_log: Option<PathBuf>,
    /// Serial lines mentioning lost characters.
    pub lost_output: Vec<String>,
    /// The last serial lines (for failure messages).
    pub tail: Vec<String>,
    /// Xen's triple-fault line and when it came (since QEMU start), if the
    /// boot was stopped at it (`Lab::boot_stopping_at_triple_fault`).
    pub stopped_at_triple_fault: Option<(Duration, String)>,
}

impl BootReport {
    /// The run of guest `name`, or an error that explains what happened.
    pub fn run(&self, name: &str) -> Result<&GuestRun, String> {
        match self.runs.iter().find(|r| r.name == name) {
            Some(r) => Ok(r),
            None => Err(format!("guest {name} never ran: {}", self.failure_summary())),
        }
    }

    /// The guests with a vCPU dump of dom0's budget watch (`[xl check]
    /// scenario ... near its budget`, then `[xl ctx N]` lines), by name:
    /// what a scenario's timeout leaves of where its guests were.
    pub fn budget_dumps(&self) -> Vec<&str> {
        let watch = |l: &String| l.starts_with("[xl check] scenario ") && l.contains(WATCH_WORDS);
        self.runs
            .iter()
            .filter(|r| r.xl_output.iter().any(watch))
            .map(|r| r.name.as_str())
            .collect()
    }

    /// One paragraph on why the boot went wrong (or "boot completed").
    pub fn failure_summary(&self) -> String {
        let mut s = self.failure.clone().unwrap_or_else(|| "boot completed".to_string());
        if let Some(p) = &self.serial_log {
            s.push_str(&format!(" (serial log: {})", p.display()));
        }
        if self.failure.is_some() && !self.tail.is_empty() {
            s.push_str("\n--- last serial lines ---\n");
            s.push_str(&self.tail.join("\n"));
        }
        s
    }
}

/// A parsed marker line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// dom0 /init started.
    Dom0Init,
    /// Toolstack up.
    Dom0Ready(Vec<(String, String)>),
    /// dom0 gave up.
    Dom0Error(String),
    /// Scenario start.
    ScenarioBegin(String),
    /// Scenario end with status.
    ScenarioEnd(String, Option<i32>),
    /// `xl create` started.
    GuestCreate(String),
    /// Domain built.
    GuestUp(String, Option<u32>),
    /// Domain ended.
    Guest(String, Option<u32>, String),
    /// Console dump start.
    ConsoleBegin(String),
    /// One console line.
    Console(String, String),
    /// Console dump end with line count.
    ConsoleEnd(String, Option<usize>),
    /// Everything done.
    AllDone,
}

fn kv(s: &str) -> Vec<(String, String)> {
    s.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn get(kvs: &[(String, String)], k: &str) -> Option<String> {
    kvs.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone())
}

/// Parses a serial line holding a marker (possibly after other output).
pub fn parse_marker(line: &str) -> Option<Marker> {
    let at = line.find("@@")?;
    let m = &line[at + 2..];
    if let Some(rest) = m.strip_prefix("C|") {
        let (name, text) = rest.split_once('|')?;
        return Some(Marker::Console(name.to_string(), text.to_string()));
    }
    let (word, rest) = m.split_once(' ').unwrap_or((m, ""));
    let a = kv(rest);
    let name = || get(&a, "name").unwrap_or_default();
    Some(match word {
        "DOM0-INIT" => Marker::Dom0Init,
        "DOM0-READY" => Marker::Dom0Ready(a.clone()),
        "DOM0-ERROR" => Marker::Dom0Error(rest.to_string()),
        "SCENARIO-BEGIN" => Marker::ScenarioBegin(name()),
        "SCENARIO-END" => Marker::ScenarioEnd(name(), get(&a, "rc").and_then(|v| v.parse().ok())),
        "GUEST-CREATE" => Marker::GuestCreate(name()),
        "GUEST-UP" => Marker::GuestUp(name(), get(&a, "domid").and_then(|v| v.parse().ok())),
        "GUEST" => Marker::Guest(
            name(),
            get(&a, "domid").and_then(|v| v.parse().ok()),
            get(&a, "result").unwrap_or_default(),
        ),
        "CONSOLE-BEGIN" => Marker::ConsoleBegin(name()),
        "CONSOLE-END" => Marker::ConsoleEnd(name(), get(&a, "lines").and_then(|v| v.parse().ok())),
        "ALL-DONE" => Marker::AllDone,
        _ => return None,
    })
}

/// Builds a [`BootReport`] from serial lines as they arrive.
#[derive(Debug, Default)]
pub struct Parser {
    /// The report so far.
    pub report: BootReport,
    current_scenario: String,
    /// The start of a line Xen's console cut in two: Xen and dom0 share
    /// the serial port, and a message of Xen's own (`(XEN) uart interrupt
    /// taking more than 4ms, switched to polling`) can land in the middle
    /// of a line of dom0's. The line's rest comes on the next line.
    cut: Option<String>,
}

impl Parser {
    /// A fresh parser.
    pub fn new() -> Self {
        Self::default()
    }

    fn run_mut(&mut self, name: &str) -> &mut GuestRun {
        if let Some(i) = self.report.runs.iter().position(|r| r.name == name) {
            return &mut self.report.runs[i];
        }
        let sc = self.current_scenario.clone();
        self.report.runs.push(GuestRun::new(name, &sc));
        let last = self.report.runs.len() - 1;
        &mut self.report.runs[last]
    }

    /// Feeds one line (without its newline) that arrived `at` after QEMU
    /// started; returns the marker it held, if any.
    pub fn line(&mut self, at: Duration, line: &str) -> Option<Marker> {
        let line = line.trim_end_matches(['\r', '\n']);
        // Xen's messages start a line of their own; one that starts
        // within a line cut dom0's line there (no line of dom0's, the
        // guests' or the lab's contains "(XEN) ").
        if let Some(i) = line.find("(XEN) ").filter(|&i| i > 0) {
            let head = format!("{}{}", self.cut.take().unwrap_or_default(), &line[..i]);
            self.cut = Some(head);
            return self.whole_line(at, &line[i..]);
        }
        match self.cut.take() {
            Some(head) if !line.starts_with("(XEN) ") => {
                let joined = format!("{head}{line}");
                self.whole_line(at, &joined)
            }
            head => {
                self.cut = head;
                self.whole_line(at, line)
            }
        }
    }

    fn whole_line(&mut self, at: Duration, line: &str) -> Option<Marker> {
        if line.contains("chars lost") || line.contains("characters lost") {
            self.report.lost_output.push(line.to_string());
        }
        // What Xen itself says while guests run (a PVH triple fault, a
        // domain crashed by Xen, its register dump) reaches only the
        // serial console at the default log level: it goes with the
        // running guest, as `[xen] ...`.
        // (`line` split a message of Xen's off the line it cut: here one
        // starts the line or there is none.)
        let xen = line
            .strip_prefix("(XEN) ")
            .filter(|_| self.report.dom0_ready_at.is_some())
            .map(|rest| ("xen", rest));
        if let Some((name, rest)) = xl_line(line).or(xen) {
            if !name.is_empty() {
                // The running guest's; between guests (a check dom0 makes
                // after a guest ended, such as hashing its disk), the last
                // guest of the scenario's.
                let sc = &self.current_scenario;
                let runs = &mut self.report.runs;
                let i = match runs.iter().rposition(|r| r.end_at.is_none()) {
                    Some(i) => Some(i),
                    None => runs.iter().rposition(|r| &r.scenario == sc),
                };
                if let Some(i) = i {
                    runs[i].xl_output.push(format!("[{name}] {rest}"));
                }
            }
        }
        let m = parse_marker(line)?;
        match &m {
            Marker::Dom0Init => self.report.dom0_init_at = Some(at),
            Marker::Dom0Ready(a) => {
                self.report.dom0_ready_at = Some(at);
                self.report.xen_version = get(a, "xen");
            }
            Marker::Dom0Error(e) => {
                self.report.failure = Some(format!("dom0 failed: {e}"));
            }
            Marker::ScenarioBegin(n) => {
                self.current_scenario = n.clone();
                self.report.scenarios.push(ScenarioRun {
                    name: n.clone(),
                    rc: None,
                    begin_at: Some(at),
                    end_at: None,
                });
            }
            Marker::ScenarioEnd(n, rc) => {
                if let Some(s) = self.report.scenarios.iter_mut().rev().find(|s| &s.name == n) {
                    s.rc = *rc;
                    s.end_at = Some(at);
                }
            }
            Marker::GuestCreate(n) => self.run_mut(n).create_at = Some(at),
            Marker::GuestUp(n, d) => {
                let r = self.run_mut(n);
                r.up_at = Some(at);
                r.domid = *d;
            }
            Marker::Guest(n, d, res) => {
                let r = self.run_mut(n);
                r.end_at = Some(at);
                if d.is_some() {
                    r.domid = *d;
                }
                r.result = GuestResult::parse(res);
            }
            Marker::ConsoleBegin(n) => self.run_mut(n).console.clear(),
            Marker::Console(n, text) => {
                let t = text.trim_end_matches('\r').to_string();
                self.run_mut(n).console.push(t);
            }
            Marker::ConsoleEnd(n, count) => {
                let r = self.run_mut(n);
                r.console_complete = *count == Some(r.console.len());
            }
            Marker::AllDone => self.report.all_done_at = Some(at),
        }
        Some(m)
    }
}

/// A `[xl] ...`/`[xl list] ...`-style toolstack line: (tag, rest).
pub fn xl_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("[xl")?;
    let end = rest.find(']')?;
    Some((line[1..end + 3].trim_end_matches(']'), rest[end + 1..].trim_start()))
}

/// A live console line `[NAME] text` for a known guest: (name, text).
pub fn live_guest_line<'a>(line: &'a str, guests: &[String]) -> Option<(&'a str, &'a str)> {
    let rest = line.strip_prefix('[')?;
    let (name, text) = rest.split_once("] ")?;
    guests.iter().any(|g| g == name).then_some((name, text.trim_end_matches('\r')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut Parser, lines: &[&str]) {
        for (i, l) in lines.iter().enumerate() {
            p.line(Duration::from_secs(i as u64), l);
        }
    }

    #[test]
    fn full_run() {
        let mut p = Parser::new();
        feed(
            &mut p,
            &[
                "(XEN) noise",
                "@@DOM0-INIT 1.2",
                "@@DOM0-READY xen=4.17.7 free_memory=900 uptime=3",
                "@@SCENARIO-BEGIN name=s1",
                "@@GUEST-CREATE name=hello uptime=4",
                "@@GUEST-UP name=hello domid=1 uptime=5",
                "[xl list] Name ID",
                "[hello] Xen 4.17",
                "@@GUEST name=hello domid=1 result=poweroff uptime=6",
                "@@CONSOLE-BEGIN name=hello",
                "@@C|hello|Xen 4.17.7 banner\r",
                "@@C|hello|a|b",
                "@@CONSOLE-END name=hello lines=2",
                "@@SCENARIO-END name=s1 rc=0",
                "@@ALL-DONE",
            ],
        );
        let r = &p.report;
        assert_eq!(r.xen_version.as_deref(), Some("4.17.7"));
        assert_eq!(r.dom0_ready_at, Some(Duration::from_secs(2)));
        let g = r.run("hello").unwrap();
        assert_eq!(g.domid, Some(1));
        assert_eq!(g.result, GuestResult::Poweroff);
        assert_eq!(g.console, vec!["Xen 4.17.7 banner", "a|b"]);
        assert!(g.console_complete);
        assert_eq!(g.create_time(), Some(Duration::from_secs(1)));
        assert_eq!(g.run_time(), Some(Duration::from_secs(3)));
        assert_eq!(g.scenario, "s1");
        assert_eq!(g.xl_output, vec!["[xl list] Name ID"]);
        assert_eq!(r.scenarios[0].rc, Some(0));
        assert!(r.all_done_at.is_some());
        assert!(r.run("nope").is_err());
    }

    #[test]
    fn xl_lines_after_a_guest_ended_go_to_the_scenario_s_last_guest() {
        let mut p = Parser::default();
        let t = Duration::from_secs(1);
        p.line(t, "@@SCENARIO-BEGIN name=s");
        p.line(t, "@@GUEST-CREATE name=a uptime=1.0");
        p.line(t, "@@GUEST name=a domid=1 result=poweroff uptime=2.0");
        p.line(t, "[xl check] a-sha 1234");
        p.line(t, "@@SCENARIO-END name=s rc=0");
        let a = p.report.runs.iter().find(|r| r.name == "a").unwrap();
        assert_eq!(a.xl_output, vec!["[xl check] a-sha 1234"]);
    }

    #[test]
    fn xen_lines_once_dom0_is_up_go_to_the_running_guest() {
        let mut p = Parser::default();
        let t = Duration::from_secs(1);
        p.line(t, "(XEN) Scrubbing Free RAM");
        p.line(t, "@@DOM0-READY xen=4.17.7 uptime=3");
        p.line(t, "@@SCENARIO-BEGIN name=s");
        p.line(t, "@@GUEST-CREATE name=a uptime=1.0");
        p.line(t, "(XEN) d2v0 Triple fault - invoking HVM shutdown action 1");
        p.line(t, "@@GUEST name=a domid=2 result=reboot uptime=2.0");
        let a = p.report.runs.iter().find(|r| r.name == "a").unwrap();
        assert_eq!(a.xl_output, vec!["[xen] d2v0 Triple fault - invoking HVM shutdown action 1"]);
    }

    #[test]
    fn a_line_xen_cut_in_two_is_put_back_together() {
        let mut p = Parser::default();
        let t = Duration::from_secs(1);
        p.line(t, "@@DOM0-READY xen=4.17.7 uptime=3");
        p.line(t, "@@SCENARIO-BEGIN name=s");
        p.line(t, "@@GUEST-CREATE name=q uptime=1.0");
        p.line(t, "@@GUEST name=q domid=1 result=poweroff uptime=2.0");
        p.line(t, "@@CONSOLE-BEGIN name=q");
        p.line(t, "@@C|q|events by vCPU [485, (XEN) uart interrupt taking more than 4ms, switched to polling");
        p.line(t, "(XEN) another message of Xen's");
        p.line(t, "0], calls 150");
        p.line(t, "@@CONSOLE-END name=q lines=1");
        let q = p.report.run("q").unwrap();
        assert_eq!(q.console, vec!["events by vCPU [485, 0], calls 150"]);
        assert!(q.console_complete);
        assert_eq!(
            q.xl_output,
            vec![
                "[xen] uart interrupt taking more than 4ms, switched to polling",
                "[xen] another message of Xen's"
            ]
        );
    }

    #[test]
    fn incomplete_console_and_results() {
        let mut p = Parser::new();
        feed(
            &mut p,
            &[
                "@@GUEST name=p domid=2 result=crash",
                "@@CONSOLE-BEGIN name=p",
                "@@C|p|one",
                "@@CONSOLE-END name=p lines=2",
                "@@DOM0-ERROR insmod xenfs failed",
            ],
        );
        let g = p.report.run("p").unwrap();
        assert_eq!(g.result, GuestResult::Crash);
        assert!(!g.console_complete);
        assert!(g.describe().contains("INCOMPLETE"));
        assert!(p.report.failure.as_deref().unwrap().contains("insmod xenfs"));
    }

    #[test]
    fn markers_after_noise() {
        assert_eq!(
            parse_marker("[   1.0] x @@GUEST-UP name=a domid=3"),
            Some(Marker::GuestUp("a".into(), Some(3)))
        );
        assert_eq!(parse_marker("no marker"), None);
        assert_eq!(parse_marker("@@UNKNOWN x"), None);
        assert_eq!(GuestResult::parse("timeout"), GuestResult::Timeout);
        assert_eq!(GuestResult::parse("weird").to_string(), "weird");
    }

    #[test]
    fn live_lines() {
        let g = vec!["hello".to_string()];
        assert_eq!(live_guest_line("[hello] hi\r", &g), Some(("hello", "hi")));
        assert_eq!(live_guest_line("[other] hi", &g), None);
        assert_eq!(xl_line("[xl list] Name"), Some(("xl list", "Name")));
        assert_eq!(xl_line("[xl] error"), Some(("xl", "error")));
    }

    #[test]
    fn shell_and_budget() {
        let g = GuestSpec::new("hello", "/k", "hello").timeout(Duration::from_secs(20));
        let s = Scenario::single(g);
        let sh = s.shell();
        assert!(sh.contains("run_guest hello /etc/xen-lab/guests/hello.cfg 20"));
        assert!(sh.contains("@@SCENARIO-END name=hello rc=$LAB_RC"));
        assert_eq!(s.budget(), Duration::from_secs(110));
        assert_eq!(s.memory_mib(), 40);
    }

    #[test]
    fn dom0_dumps_the_vcpus_before_the_host_kills_qemu_and_not_after_the_scenario() {
        let g = GuestSpec::new("hello", "/k", "hello").timeout(Duration::from_secs(20));
        let s = Scenario::single(g);
        // 110 s of budget: the watch fires 40 s before.
        assert_eq!(s.watch(), Duration::from_secs(70));
        let sh = s.shell();
        let (watch, kill) = (
            sh.find("lab_budget_watch hello 70 &\nLAB_WATCH=$!\n").expect(&sh),
            sh.find("kill \"$LAB_WATCH\"").expect(&sh),
        );
        let (body, end) = (sh.find("run_guest hello").unwrap(), sh.find("@@SCENARIO-END").unwrap());
        assert!(watch < body && body < kill && kill < end, "{sh}");
        // The scenario's status, not kill's.
        assert!(sh.contains(")\nLAB_RC=$?\n"), "{sh}");
        // A budget shorter than twice the margin: halfway, still before it.
        let mut short = Scenario::script("s", vec![], "true");
        short.slack = Duration::from_secs(60);
        assert_eq!(short.watch(), Duration::from_secs(30));
        short.slack = Duration::ZERO;
        assert_eq!(short.watch(), Duration::ZERO);
        for secs in [1, 59, 60, 61, 90, 10_000] {
            let mut x = Scenario::script("x", vec![], "true");
            x.slack = Duration::from_secs(secs);
            assert!(x.watch() < x.budget() && x.watch() >= x.budget() / 2, "{secs}");
        }
    }

    #[test]
    fn a_vcpu_dump_goes_with_the_running_guest() {
        let mut p = Parser::default();
        let t = Duration::from_secs(1);
        p.line(t, "@@DOM0-READY xen=4.17.7 uptime=3");
        p.line(t, "@@SCENARIO-BEGIN name=s");
        p.line(t, "@@GUEST-CREATE name=a uptime=1.0");
        p.line(t, "@@GUEST-UP name=a domid=1 uptime=1.5");
        p.line(t, "[xl check] a still running after 3 s: its vCPUs before xl destroy");
        p.line(t, "[xl ctx 1] rip: 0000000000401308");
        p.line(t, "[xl ctx 2] rip: 0000000000401310");
        p.line(t, "@@GUEST name=a domid=1 result=timeout uptime=9.0");
        assert!(p.report.budget_dumps().is_empty());
        p.line(t, "@@GUEST-CREATE name=b uptime=10.0");
        p.line(t, &format!("[xl check] scenario s still running after 70 s, {WATCH_WORDS}"));
        p.line(t, "[xl ctx 1] rip: 0000000000401308");
        assert_eq!(p.report.budget_dumps(), ["b"]);
        assert!(crate::dom0::LIB_SH.contains(WATCH_WORDS));
        let a = p.report.run("a").unwrap();
        assert_eq!(a.result, GuestResult::Timeout);
        assert_eq!(
            a.xl_output[1..],
            ["[xl ctx 1] rip: 0000000000401308", "[xl ctx 2] rip: 0000000000401310"]
        );
    }
}
