//! `cargo xtask test`: every check, in order, stopping at the first failure.

use anyhow::{bail, Result};
use std::process::Command;
use std::time::{Duration, Instant};
use xtask::XenRelease;

/// The `no_std` crates checked for the guest target (add new ones here).
pub const GUEST_CRATES: &[&str] =
    &["platform", "kernel", "hypercall", "pv-drivers", "grant-tables", "xenstore-client"];

struct Step {
    name: String,
    args: Vec<String>,
    /// Environment for this step only.
    env: Vec<(&'static str, &'static str)>,
}

/// The checks, with the boot tests on `releases`.
fn steps(releases: &[XenRelease]) -> Vec<Step> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut guest_clippy = s(&["clippy"]);
    for c in GUEST_CRATES {
        guest_clippy.push("-p".into());
        guest_clippy.push(c.to_string());
    }
    guest_clippy.extend(s(&["--target", xtask::guest::GUEST_TARGET, "--", "-D", "warnings"]));
    let step =
        |name: &str, args: &[&str]| Step { name: name.into(), args: s(args), env: Vec::new() };
    let mut steps = vec![
        step("format", &["fmt", "--all", "--", "--check"]),
        step("clippy (host)", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        Step { name: "clippy (guest)".into(), args: guest_clippy, env: Vec::new() },
        step("unit tests", &["test", "--workspace", "--exclude", "xen-tests"]),
        // The revoke race of grant-tables, every interleaving. `--cfg loom`
        // changes every crate's flags: its own target directory keeps the
        // other steps' builds intact.
        Step {
            env: vec![("RUSTFLAGS", "--cfg loom"), ("CARGO_TARGET_DIR", LOOM_TARGET_DIR)],
            ..step("loom model", &["test", "-p", "grant-tables", "--release", "loom_model"])
        },
    ];
    for &r in releases {
        steps.push(Step {
            env: vec![(XEN_ENV, r.version())],
            ..step(&format!("boot tests ({r})"), BOOT_TESTS)
        });
    }
    steps
}

/// Every boot test file, one QEMU boot each, one test thread.
const BOOT_TESTS: &[&str] =
    &["test", "-p", "xen-tests", "--no-fail-fast", "--", "--test-threads=1"];
const XEN_ENV: &str = xtask::release::XEN_ENV;

/// Where the loom build goes, relative to the workspace root.
const LOOM_TARGET_DIR: &str = "target/loom";

/// Every check; the boot tests on `xen` only, or on every release (the
/// full suite on 4.17 first, then the boot tests on 4.20).
pub fn run(xen: Option<XenRelease>) -> Result<()> {
    let releases = xen.map_or_else(|| XenRelease::ALL.to_vec(), |r| vec![r]);
    println!(
        "==> setup: the guest's target, rustfmt, clippy and the Debian packages the tests use"
    );
    xtask::setup::ensure_rust(true)?;
    let needs: Vec<_> = xtask::setup::LAB.iter().chain(xtask::setup::TEST).copied().collect();
    xtask::setup::ensure_packages(&needs)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = xtask::workspace_root();
    println!(
        "\n==> no test fakes in the guest: cargo tree -p {} -e normal,features",
        xtask::guest::GUEST_PACKAGE
    );
    no_fakes_in_guest(&cargo, &root)?;
    let mut done: Vec<(String, Duration)> = Vec::new();
    let total = Instant::now();
    for step in steps(&releases) {
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
            print_summary(&done, Some(&step.name), total.elapsed());
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

/// Test doubles (`xenstore-client`'s `fake` feature) are for host tests
/// only: the guest's dependency tree must not enable them.
fn no_fakes_in_guest(cargo: &str, root: &std::path::Path) -> Result<()> {
    let tree = xtask::cmd::stdout(Command::new(cargo).current_dir(root).args([
        "tree",
        "-p",
        xtask::guest::GUEST_PACKAGE,
        "--target",
        xtask::guest::GUEST_TARGET,
        "-e",
        "normal,features",
    ]))?;
    let fakes = fake_features(&tree);
    if !fakes.is_empty() {
        bail!("the guest is built with test fakes: {}", fakes.join(", "));
    }
    Ok(())
}

/// The lines of `cargo tree -e features` output that enable a `fake` feature.
fn fake_features(tree: &str) -> Vec<&str> {
    tree.lines().filter(|l| l.contains("feature \"fake\"")).map(str::trim).collect()
}

fn print_summary(done: &[(String, Duration)], failed: Option<&str>, total: Duration) {
    println!("\n==> summary");
    for (n, d) in done {
        println!("  ok    {n:<22} {:>7.1}s", d.as_secs_f64());
    }
    if let Some(f) = failed {
        println!("  FAIL  {f}");
    }
    println!("  total {:>30.1}s", total.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_feature_in_the_tree_is_found() {
        let tree = "kernel v0.1.0\n├── xenstore-client feature \"default\"\n│   └── xenstore-client v0.1.0\n";
        assert!(fake_features(tree).is_empty());
        let tree = format!("{tree}├── xenstore-client feature \"fake\"\n");
        assert_eq!(fake_features(&tree), ["├── xenstore-client feature \"fake\""]);
    }
}
