//! Host set-up: what `cargo xtask run` and `cargo xtask test` need on this
//! machine, installed by the commands themselves.
//!
//! A fresh Debian 12 machine with a Rust toolchain lacks the guest's target
//! (rustup does not add the targets of `rust-toolchain.toml` to a toolchain
//! that is already installed) and QEMU, among others. Each missing piece is
//! installed with a line saying what and why: Rust pieces through rustup,
//! Debian packages through `apt-get` as root or through `sudo` when it works
//! without a password. Where neither is possible, one line gives the exact
//! command to run and the caller fails.

use crate::cmd;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// Set to `1` to never install anything: missing pieces become an error
/// that names the command to run.
pub const NO_INSTALL_ENV: &str = "XENPV_NO_INSTALL";

/// One Debian package the harness needs, how to tell it is there, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// The Debian package.
    pub package: &'static str,
    /// Present when this program is on `$PATH` (or, starting with `/`, this
    /// file exists).
    pub probe: &'static str,
    /// Why the harness needs it (shown when it is installed).
    pub why: &'static str,
}

const fn need(package: &'static str, probe: &'static str, why: &'static str) -> Need {
    Need { package, probe, why }
}

/// The host's QEMU package (not needed with `XENPV_QEMU` naming another).
pub const HOST_QEMU_PACKAGE: &str = "qemu-system-x86";

/// Booting Xen in QEMU: every `run`, `fetch`, `bench` and boot test.
pub const LAB: &[Need] = &[
    need(HOST_QEMU_PACKAGE, "qemu-system-x86_64", "QEMU boots Xen and dom0"),
    need("binutils", "readelf", "readelf reads the guest's ELF notes and dom0's libraries"),
    need("binutils", "strip", "strip makes the guest image small"),
    need("xz-utils", "xz", "Debian ships some dom0 kernel modules xz-compressed"),
    need("zstd", "zstd", "Debian ships some dom0 kernel modules zstd-compressed"),
    need("gzip", "gzip", "Xen's hypervisor image is gzip-compressed"),
];

/// `cargo xtask test`, besides [`LAB`].
pub const TEST: &[Need] = &[
    need(
        "libxen-dev",
        "/usr/include/xen/xen.h",
        "the ABI layout test compares against Xen's C headers",
    ),
    need("gcc", "gcc", "nettool and blktool are built as static C programs for dom0"),
    need("libc6-dev", "/usr/lib/x86_64-linux-gnu/libc.a", "static C programs link against libc.a"),
    need("cpio", "cpio", "the initramfs writer's test reads its archives back with cpio"),
    need("shellcheck", "shellcheck", "every shell script (dom0's, the DomUs', CI's) is linted"),
];

/// `cargo xtask bench`, besides [`LAB`].
pub const BENCH: &[Need] = &[
    need("gcc", "gcc", "nettool and blktool are built as static C programs for dom0"),
    need("libc6-dev", "/usr/lib/x86_64-linux-gnu/libc.a", "static C programs link against libc.a"),
    need("make", "make", "the Linux comparator module is built with kbuild"),
];

/// The packages among `needs` that are missing on this host, in order,
/// each once, with all its reasons.
pub fn missing(needs: &[Need], present: impl Fn(&str) -> bool) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for n in needs.iter().filter(|n| !present(n.probe)) {
        match out.iter_mut().find(|(p, _)| *p == n.package) {
            Some((_, why)) if !why.contains(n.why) => {
                why.push_str("; ");
                why.push_str(n.why);
            }
            Some(_) => {}
            None => out.push((n.package, n.why.to_string())),
        }
    }
    out
}

fn present_on_host(probe: &str) -> bool {
    if probe.starts_with('/') {
        Path::new(probe).exists()
    } else {
        cmd::which(probe).is_some()
    }
}

/// How this process can install Debian packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Running as root: `apt-get` directly.
    Root,
    /// `sudo -n` works (no password needed).
    Sudo,
    /// Neither (or [`NO_INSTALL_ENV`] is set): only say what to run.
    None,
}

/// Is this process root?
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn privilege() -> Privilege {
    if std::env::var_os(NO_INSTALL_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
        return Privilege::None;
    }
    if is_root() {
        return Privilege::Root;
    }
    let sudo_works = cmd::which("sudo").is_some()
        && Command::new("sudo")
            .args(["-n", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if sudo_works {
        Privilege::Sudo
    } else {
        Privilege::None
    }
}

/// The exact command a user runs to install `packages`.
pub fn install_command(packages: &[&str]) -> String {
    format!("sudo apt-get install -y --no-install-recommends {}", packages.join(" "))
}

fn apt(privilege: Privilege, args: &[&str]) -> Command {
    let mut c = if privilege == Privilege::Sudo {
        let mut c = Command::new("sudo");
        c.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        c
    } else {
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    c.args(args);
    c
}

/// When this harness last refreshed apt's lists (apt stamps its list files
/// with the archive's own dates, not the time they were fetched).
fn update_stamp() -> std::path::PathBuf {
    crate::cache::cache_dir().join("apt-lists-updated")
}

/// Time since the harness last refreshed apt's package lists (`None`:
/// never, or the host has no lists at all).
fn lists_age() -> Option<Duration> {
    let has_lists = std::fs::read_dir("/var/lib/apt/lists")
        .ok()?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains("_Packages"));
    if !has_lists {
        return None;
    }
    let stamped = std::fs::metadata(update_stamp()).ok()?.modified().ok()?;
    Some(SystemTime::now().duration_since(stamped).unwrap_or_default())
}

/// Lists older than this are refreshed before the lab resolves dom0's
/// kernel from them (Debian's mirror drops superseded kernel packages).
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

fn say(s: &str) {
    println!("[setup] {s}");
}

/// Refreshes apt's package lists when they are missing or older than a
/// day and this process may; otherwise leaves them (the lab retries a
/// query that finds nothing).
pub fn refresh_package_lists() -> Result<()> {
    let age = lists_age();
    if age.is_some_and(|a| a < LISTS_MAX_AGE) {
        return Ok(());
    }
    let p = privilege();
    if p == Privilege::None {
        return Ok(());
    }
    say(&match age {
        None => "apt-get update: the lab resolves dom0's kernel from apt's package lists, and this harness has not refreshed them yet".to_string(),
        Some(a) => format!(
            "apt-get update: the package lists were refreshed {} hours ago, and the lab resolves dom0's kernel from them",
            a.as_secs() / 3600
        ),
    });
    apt_update(p)
}

fn apt_update(p: Privilege) -> Result<()> {
    cmd::status(&mut apt(p, &["update", "-q"])).context("`apt-get update` failed")?;
    let stamp = update_stamp();
    if let Some(dir) = stamp.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(stamp, b"");
    Ok(())
}

/// Installs the missing packages among `needs` (or fails with the command
/// to run).
pub fn ensure_packages(needs: &[Need]) -> Result<()> {
    let missing = missing(needs, present_on_host);
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
    let p = privilege();
    if p == Privilege::None || cmd::which("apt-get").is_none() {
        let list: Vec<String> = missing.iter().map(|(p, why)| format!("{p} ({why})")).collect();
        bail!("this host lacks {}; run: {}", list.join(", "), install_command(&names));
    }
    let how = if p == Privilege::Root { "as root" } else { "through sudo" };
    for (pkg, why) in &missing {
        say(&format!("installing {pkg} with apt-get {how}: {why}"));
    }
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(&names);
    if cmd::status(&mut apt(p, &args)).is_err() {
        // Missing or stale lists: "Unable to locate package", or a 404.
        say("apt-get install failed; refreshing the package lists and trying once more");
        apt_update(p)?;
        cmd::status(&mut apt(p, &args)).with_context(|| {
            format!("installing {} failed; try: {}", names.join(" "), install_command(&names))
        })?;
    }
    let still = self::missing(needs, present_on_host);
    if !still.is_empty() {
        let names: Vec<&str> = still.iter().map(|(p, _)| *p).collect();
        bail!("apt-get installed {} but they are still missing", names.join(" "));
    }
    Ok(())
}

/// The guest's target (and, with `components`, rustfmt and clippy) in the
/// toolchain this workspace uses, added through rustup when missing.
pub fn ensure_rust(components: bool) -> Result<()> {
    let root = crate::workspace_root();
    let target = crate::guest::GUEST_TARGET;
    let sysroot =
        cmd::stdout(Command::new("rustc").args(["--print", "sysroot"]).current_dir(&root))
            .context("cannot ask rustc for its sysroot")?;
    let have_target = Path::new(sysroot.trim()).join("lib/rustlib").join(target).is_dir();
    let mut add: Vec<(&str, &str, &str)> = Vec::new();
    if !have_target {
        add.push(("target", target, "the guest kernel is built for it"));
    }
    if components {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        for (sub, comp, why) in [
            ("fmt", "rustfmt", "`cargo xtask test` checks formatting"),
            ("clippy", "clippy", "`cargo xtask test` runs clippy"),
        ] {
            let ok = Command::new(&cargo)
                .args([sub, "--version"])
                .current_dir(&root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                add.push(("component", comp, why));
            }
        }
    }
    for (kind, name, why) in add {
        let run = format!("rustup {kind} add {name}");
        if cmd::which("rustup").is_none() {
            bail!("the Rust {kind} {name} is missing and there is no rustup to add it ({why}); install it for this toolchain, e.g. `{run}`");
        }
        if std::env::var_os(NO_INSTALL_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
            bail!("the Rust {kind} {name} is missing ({why}); run: {run}");
        }
        say(&format!("{run}: {why}"));
        cmd::status(Command::new("rustup").args([kind, "add", name]).current_dir(&root))
            .with_context(|| format!("`{run}` failed"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_missing_when_every_probe_is_present() {
        assert!(missing(LAB, |_| true).is_empty());
    }

    #[test]
    fn a_package_is_listed_once_with_every_reason() {
        let m = missing(LAB, |p| p != "readelf" && p != "strip" && p != "zstd");
        let names: Vec<&str> = m.iter().map(|(p, _)| *p).collect();
        assert_eq!(names, ["binutils", "zstd"]);
        assert!(m[0].1.contains("readelf") && m[0].1.contains("strip"), "{}", m[0].1);
    }

    #[test]
    fn file_probes_and_program_probes_both_count() {
        let m = missing(TEST, |p| !p.starts_with('/'));
        let names: Vec<&str> = m.iter().map(|(p, _)| *p).collect();
        assert_eq!(names, ["libxen-dev", "libc6-dev"]);
    }

    #[test]
    fn the_command_to_run_names_every_package() {
        assert_eq!(
            install_command(&["qemu-system-x86", "zstd"]),
            "sudo apt-get install -y --no-install-recommends qemu-system-x86 zstd"
        );
    }
}
