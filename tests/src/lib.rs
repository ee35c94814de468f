//! Boot tests on real Xen.
//!
//! Each test file boots QEMU + Xen + dom0 ONCE (a boot costs tens of seconds
//! under TCG) and runs all its guests in that boot, in sequence: a
//! `static LAB: OnceLock<BootReport>` is filled by the first test that needs
//! it, then every `#[test]` asserts on its own guest run.
//!
//! ```no_run
//! use std::sync::OnceLock;
//! use xen_tests::{boot, guest, BootReport, Scenario};
//!
//! static LAB: OnceLock<BootReport> = OnceLock::new();
//! fn lab() -> &'static BootReport {
//!     LAB.get_or_init(|| boot("example", || vec![Scenario::single(guest("hello", "hello"))]))
//! }
//! #[test]
//! fn hello() {
//!     let run = xen_tests::expect_run(lab(), "hello");
//!     xen_tests::assert_result(run, &xen_tests::GuestResult::Poweroff);
//! }
//! ```
//!
//! Environment: `XENPV_XEN=4.17|4.20` picks the Xen release (default 4.17,
//! Debian 12; 4.20 comes from Debian 13); `XENPV_MODE=pv|pvh|pvh-shadow`
//! the kind of domain every guest is created as (default PV: the same
//! test bodies run in each mode); `XENPV_GUEST_ELF` uses a prebuilt
//! guest instead of building it; `XENPV_LAB_VERBOSE=1` shows every serial
//! line; `XENPV_LAB_CACHE` moves the package cache.

use std::path::PathBuf;

pub mod docs;
use std::sync::OnceLock;

pub use xtask::scenario::GuestRun;
pub use xtask::{
    BootReport, GuestMode, GuestResult, GuestSpec, Lab, LabOptions, Scenario, XenRelease,
};

/// The Xen release the boot tests run on: `$XENPV_XEN` (`4.17`, the
/// default, or `4.20`). A misspelt value fails every boot with a message
/// listing the accepted values; here it falls back to the default only for
/// assertions that the failed boot never reaches.
pub fn xen_release() -> XenRelease {
    LabOptions::default().xen.unwrap_or_default()
}

/// The mode the boot tests create their guests in: `$XENPV_MODE` (PV when
/// unset). A misspelt value fails every boot (`scenario::validate`).
pub fn guest_mode() -> GuestMode {
    GuestMode::from_env().unwrap_or_default()
}

/// The smallest `memory=` the current mode boots (4 MiB PV, 8 MiB PVH).
pub fn min_memory_mib() -> u32 {
    guest_mode().min_memory_mib()
}

/// The guest ELF: `$XENPV_GUEST_ELF`, or built once per test binary with
/// `cargo build -p guest --release --target x86_64-unknown-none`.
pub fn guest_elf() -> Result<PathBuf, String> {
    static ELF: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ELF.get_or_init(|| {
        if let Some(p) = std::env::var_os("XENPV_GUEST_ELF").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(format!("XENPV_GUEST_ELF={} does not exist", p.display()))
            };
        }
        xtask::guest::build(true)
            .map(|b| b.stable)
            .map_err(|e| format!("building the guest failed: {e:#}"))
    })
    .clone()
}

/// A guest spec named `name` running `app=APP` from [`guest_elf`] (the
/// kernel path is checked when the boot starts).
pub fn guest(name: &str, app: &str) -> GuestSpec {
    let elf = guest_elf().unwrap_or_else(|_| PathBuf::from("/nonexistent/guest.elf"));
    GuestSpec::new(name, elf, app)
}

/// Boots once and runs the scenarios. Never panics: a failure to build,
/// fetch or start is recorded in [`BootReport::failure`], so each test
/// reports it with its own name.
pub fn boot(label: &str, scenarios: impl FnOnce() -> Vec<Scenario>) -> BootReport {
    let failed = |msg: String| BootReport { failure: Some(msg), ..BootReport::default() };
    if let Err(e) = guest_elf() {
        return failed(e);
    }
    let opts = LabOptions { label: label.to_string(), ..LabOptions::default() };
    let lab = match Lab::prepare(opts) {
        Ok(l) => l,
        Err(e) => return failed(format!("{e:#}")),
    };
    match lab.boot(&scenarios()) {
        Ok(r) => {
            print_timings(label, &lab, &r);
            r
        }
        Err(e) => failed(format!("{e:#}")),
    }
}

fn print_timings(label: &str, lab: &Lab, r: &BootReport) {
    let mut t = xtask::report::Timings::default();
    t.add("fetch (cached)", lab.fetch_time);
    t.add_boot(r);
    // Straight to stderr: libtest does not capture it, so CI logs show it.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "[lab] {label}: phase timings\n{}",
        t.table(lab.fetch_time + r.initramfs_time + r.qemu_time)
    );
}

/// The run of guest `name`; panics with the boot's failure and the last
/// serial lines if it never ran. Every run it hands out has been checked by
/// [`assert_no_panic`]: no boot test accepts a guest panic it did not ask for.
pub fn expect_run<'a>(report: &'a BootReport, name: &str) -> &'a GuestRun {
    match report.run(name) {
        Ok(r) => {
            assert_no_panic(r);
            r
        }
        Err(e) => panic!("{e}"),
    }
}

/// Asserts the guest's console has no `panicked at` line, unless the guest
/// ran `app=panic` (the one app that panics on purpose; its console says
/// `running app=panic`).
pub fn assert_no_panic(run: &GuestRun) {
    if run.console.iter().any(|l| l.trim() == "running app=panic") {
        return;
    }
    let panics: Vec<&String> = run.console.iter().filter(|l| l.contains("panicked at")).collect();
    assert!(panics.is_empty(), "{} panicked: {panics:?}\n{}", run.name, run.describe());
}

/// Asserts how the guest ended, a DomU domid, and a complete console.
pub fn assert_result(run: &GuestRun, want: &GuestResult) {
    assert!(&run.result == want, "expected result {want}, got {}\n{}", run.result, run.describe());
    assert!(
        run.domid.is_some_and(|d| d >= 1),
        "expected a DomU domain id >= 1\n{}",
        run.describe()
    );
    assert!(
        run.console_complete,
        "the console log did not reach the host complete\n{}",
        run.describe()
    );
}

/// Asserts some console line contains `needle`.
pub fn assert_console_contains(run: &GuestRun, needle: &str) {
    assert!(
        run.console.iter().any(|l| l.contains(needle)),
        "no console line contains {needle:?}\n{}",
        run.describe()
    );
}

/// Asserts some console line is exactly `line` (surrounding space ignored).
pub fn assert_console_line(run: &GuestRun, line: &str) {
    assert!(
        run.console.iter().any(|l| l.trim() == line),
        "no console line is exactly {line:?}\n{}",
        run.describe()
    );
}

/// Parses `N passed, M failed` (the whole line).
pub fn parse_summary(line: &str) -> Option<(u64, u64)> {
    let (p, rest) = line.trim().split_once(" passed, ")?;
    let f = rest.strip_suffix(" failed")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(p) || !digits(f) {
        return None;
    }
    Some((p.parse().ok()?, f.parse().ok()?))
}

/// SplitMix64, as the guest's console self-test computes it.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Line `i` of the guest's console test pattern:
/// `console-pattern III` + six SplitMix64 values in hex.
pub fn console_pattern_line(i: u64) -> String {
    let mut s = format!("console-pattern {i:03} ");
    for k in 0..6 {
        s.push_str(&format!("{:016x}", splitmix64(i * 6 + k)));
    }
    s
}

/// The value after `[xl check] KEY ` in `run`'s toolstack output, the
/// last one if a script checked more than once: how the dom0 scripts
/// report what they saw.
pub fn check_value<'a>(run: &'a GuestRun, key: &str) -> Option<&'a str> {
    let prefix = format!("[xl check] {key} ");
    run.xl_output.iter().rev().find_map(|l| l.strip_prefix(prefix.as_str()))
}

/// As [`check_value`], failing the test (with the run's record) when the
/// script never reported `key`.
pub fn check<'a>(run: &'a GuestRun, key: &str) -> &'a str {
    check_value(run, key)
        .unwrap_or_else(|| panic!("no `{key}` check in the toolstack output\n{}", run.describe()))
}

/// A dom0 script made of shell variables and parts (`include_str!` of the
/// `.sh` files beside the test, which `cargo xtask test` lints with
/// shellcheck): `VAR='value'` lines first, then the parts in order. A
/// value with a single quote or a line break is refused (it could not be
/// quoted as one word).
pub fn shell(vars: &[(&str, &str)], parts: &[&str]) -> String {
    let mut s = String::new();
    for (name, value) in vars {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
            "shell variable {name:?}: upper case and underscores only"
        );
        assert!(!value.contains(['\'', '\n']), "shell variable {name}={value:?}: cannot quote it");
        s.push_str(&format!("{name}='{value}'\n"));
    }
    for p in parts {
        s.push_str(p);
        if !p.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_scripts_get_their_variables_first() {
        let s = shell(&[("IP", "192.0.2.3"), ("DISK", "a, b=c")], &["x\n", "y"]);
        assert_eq!(s, "IP='192.0.2.3'\nDISK='a, b=c'\nx\ny\n");
        assert!(std::panic::catch_unwind(|| shell(&[("A", "it's")], &[])).is_err());
        assert!(std::panic::catch_unwind(|| shell(&[("a", "1")], &[])).is_err());
    }

    #[test]
    fn summary_lines() {
        assert_eq!(parse_summary("12 passed, 0 failed"), Some((12, 0)));
        assert_eq!(parse_summary("3 passed, 1 failed\r"), Some((3, 1)));
        assert_eq!(parse_summary("x passed, 1 failed"), None);
        assert_eq!(parse_summary("3 passed, 1 failed!"), None);
        assert_eq!(parse_summary("PASS a"), None);
    }

    #[test]
    fn splitmix_reference_values() {
        // First outputs of SplitMix64 seeded with 0 (state advanced once).
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert!(console_pattern_line(7).starts_with("console-pattern 007 "));
        assert_eq!(console_pattern_line(0).len(), 20 + 96);
    }
}
