//! `cargo xtask test`: every check, in order, stopping at the first failure.

use anyhow::{bail, Result};
use std::process::Command;
use std::time::{Duration, Instant};

/// The `no_std` crates checked for the guest target (add new ones here).
pub const GUEST_CRATES: &[&str] =
    &["kernel", "hypercall", "pv-drivers", "grant-tables", "xenstore-client"];

struct Step {
    name: &'static str,
    args: Vec<String>,
    /// Environment for this step only.
    env: Vec<(&'static str, &'static str)>,
}

fn steps() -> Vec<Step> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut guest_clippy = s(&["clippy"]);
    for c in GUEST_CRATES {
        guest_clippy.push("-p".into());
        guest_clippy.push(c.to_string());
    }
    guest_clippy.extend(s(&["--target", xtask::guest::GUEST_TARGET, "--", "-D", "warnings"]));
    let step = |name, args: &[&str]| Step { name, args: s(args), env: Vec::new() };
    vec![
        step("format", &["fmt", "--all", "--", "--check"]),
        step("clippy (host)", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        Step { name: "clippy (guest)", args: guest_clippy, env: Vec::new() },
        step("unit tests", &["test", "--workspace", "--exclude", "xen-tests"]),
        // The revoke race of grant-tables, every interleaving. `--cfg loom`
        // changes every crate's flags: its own target directory keeps the
        // other steps' builds intact.
        Step {
            env: vec![("RUSTFLAGS", "--cfg loom"), ("CARGO_TARGET_DIR", LOOM_TARGET_DIR)],
            ..step("loom model", &["test", "-p", "grant-tables", "--release", "loom_model"])
        },
        Step { env: vec![(XEN_ENV, "4.17")], ..step("boot tests (Xen 4.17)", BOOT_TESTS) },
        // The second release: every boot test file again, on Debian 13's
        // Xen 4.20 and Linux 6.12 dom0.
        Step { env: vec![(XEN_ENV, "4.20")], ..step("boot tests (Xen 4.20)", BOOT_TESTS) },
    ]
}

/// Every boot test file, one QEMU boot each, one test thread.
const BOOT_TESTS: &[&str] =
    &["test", "-p", "xen-tests", "--no-fail-fast", "--", "--test-threads=1"];
const XEN_ENV: &str = xtask::release::XEN_ENV;

/// Where the loom build goes, relative to the workspace root.
const LOOM_TARGET_DIR: &str = "target/loom";

pub fn run() -> Result<()> {
    println!(
        "==> setup: the guest's target, rustfmt, clippy and the Debian packages the tests use"
    );
    xtask::setup::ensure_rust(true)?;
    let needs: Vec<_> = xtask::setup::LAB.iter().chain(xtask::setup::TEST).copied().collect();
    xtask::setup::ensure_packages(&needs)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = xtask::workspace_root();
    let mut done: Vec<(&str, Duration)> = Vec::new();
    let total = Instant::now();
    for step in steps() {
        println!("\n==> {}: cargo {}", step.name, step.args.join(" "));
        let t = Instant::now();
        let status = Command::new(&cargo)
            .args(&step.args)
            .envs(step.env.iter().copied())
            .current_dir(&root)
            .stdin(std::process::Stdio::null())
            .status();
        let ok = matches!(&status, Ok(s) if s.success());
        if !ok {
            print_summary(&done, Some(step.name), total.elapsed());
            match status {
                Err(e) => bail!("{} failed: cannot run cargo: {e}", step.name),
                Ok(s) => bail!("{} failed ({s}): see its output above", step.name),
            }
        }
        done.push((step.name, t.elapsed()));
    }
    print_summary(&done, None, total.elapsed());
    Ok(())
}

fn print_summary(done: &[(&str, Duration)], failed: Option<&str>, total: Duration) {
    println!("\n==> summary");
    for (n, d) in done {
        println!("  ok    {n:<22} {:>7.1}s", d.as_secs_f64());
    }
    if let Some(f) = failed {
        println!("  FAIL  {f}");
    }
    println!("  total {:>30.1}s", total.as_secs_f64());
}
