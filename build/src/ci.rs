//! `cargo xtask test`: every check, in order, stopping at the first failure.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use xtask::{GuestMode, XenRelease};

/// The `no_std` crates checked for the guest target (add new ones here).
pub const GUEST_CRATES: &[&str] = &[
    "platform",
    "kernel",
    "guest",
    "hypercall",
    "pv-drivers",
    "grant-tables",
    "xenstore-client",
    "netsvc",
];

struct Step {
    name: String,
    /// The program: cargo unless set.
    program: Option<String>,
    args: Vec<String>,
    /// Environment for this step only.
    env: Vec<(&'static str, &'static str)>,
}

/// The checks, with the boot tests on `releases` (none: no boot tests);
/// `scripts` are the shell scripts to lint.
fn steps(releases: &[XenRelease], scripts: &[PathBuf]) -> Vec<Step> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut guest_clippy = s(&["clippy"]);
    for c in GUEST_CRATES {
        guest_clippy.push("-p".into());
        guest_clippy.push(c.to_string());
    }
    guest_clippy.extend(s(&["--target", xtask::guest::GUEST_TARGET, "--", "-D", "warnings"]));
    let step = |name: &str, args: &[&str]| Step {
        name: name.into(),
        program: None,
        args: s(args),
        env: Vec::new(),
    };
    let mut shellcheck = s(&["--external-sources"]);
    shellcheck.extend(scripts.iter().map(|p| p.display().to_string()));
    let mut steps = vec![
        step("format", &["fmt", "--all", "--", "--check"]),
        Step { program: Some("shellcheck".into()), args: shellcheck, ..step("shellcheck", &[]) },
        step("clippy (host)", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        Step { args: guest_clippy, ..step("clippy (guest)", &[]) },
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
            env: vec![(XEN_ENV, r.version()), (MODE_ENV, GuestMode::Pv.name())],
            ..step(&format!("boot tests ({r}, {})", GuestMode::Pv), BOOT_TESTS)
        });
    }
    // The paging benchmark, quick, on the first release: every figure of
    // every mode there with its planned samples, every check passed, the
    // orderings that follow from the mechanisms (docs/pvh.md) held, and a
    // mode Xen refuses reported as refused; ~2 minutes.
    if let Some(&r) = releases.first() {
        steps.push(Step {
            env: vec![(XEN_ENV, r.version())],
            ..step(&format!("paging benchmark, quick ({r})"), PAGING_QUICK)
        });
    }
    // One test body, each mode: PVH runs the files it is proven on so far
    // (docs/pvh.md says what else has run as PVH, and how it went), on the
    // release it was proven on.
    if releases.contains(&PVH_RELEASE) {
        steps.push(Step {
            env: vec![(XEN_ENV, PVH_RELEASE.version()), (MODE_ENV, GuestMode::Pvh.name())],
            ..step(&format!("boot tests ({PVH_RELEASE}, {})", GuestMode::Pvh), PVH_BOOT_TESTS)
        });
    }
    steps
}

/// Every boot test file, one QEMU boot each, one test thread.
const BOOT_TESTS: &[&str] =
    &["test", "-p", "xen-tests", "--no-fail-fast", "--", "--test-threads=1"];
/// The boot test files that run as PVH too, and where.
const PVH_BOOT_TESTS: &[&str] = &[
    "test",
    "-p",
    "xen-tests",
    "--no-fail-fast",
    "--test",
    "boot",
    "--test",
    "control",
    "--test",
    "smp",
    "--",
    "--test-threads=1",
];
/// `cargo xtask bench paging` as CI runs it (no Linux DomUs: their kernel
/// takes a minute to boot and they are the comparison, not the check).
const PAGING_QUICK: &[&str] = &["xtask", "bench", "paging", "--quick", "--runs", "1", "--no-linux"];
const PVH_RELEASE: XenRelease = XenRelease::V4_17;
const XEN_ENV: &str = xtask::release::XEN_ENV;
const MODE_ENV: &str = xtask::mode::MODE_ENV;

/// Where the loom build goes, relative to the workspace root.
const LOOM_TARGET_DIR: &str = "target/loom";

/// Every check; the boot tests on `xen` only, or on every release (the
/// full suite on 4.17 first, then the boot tests on 4.20), or, with
/// `no_boot`, none.
pub fn run(xen: Option<XenRelease>, no_boot: bool) -> Result<()> {
    let releases = match (no_boot, xen) {
        (true, _) => Vec::new(),
        (false, Some(r)) => vec![r],
        (false, None) => XenRelease::ALL.to_vec(),
    };
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
    let scripts = shell_scripts(&root)?;
    for step in steps(&releases, &scripts) {
        let program = step.program.as_deref().unwrap_or(&cargo);
        let shown = step.program.as_deref().unwrap_or("cargo");
        println!("\n==> {}: {shown} {}", step.name, step.args.join(" "));
        let t = Instant::now();
        let status = Command::new(program)
            .args(&step.args)
            .envs(step.env.iter().copied())
            .current_dir(&root)
            .stdin(std::process::Stdio::null())
            .status();
        let ok = matches!(&status, Ok(s) if s.success());
        if !ok {
            print_summary(&done, Some(&step.name), total.elapsed());
            match status {
                Err(e) => bail!("{} failed: cannot run {program}: {e}", step.name),
                Ok(s) => bail!("{} failed ({s}): see its output above", step.name),
            }
        }
        done.push((step.name, t.elapsed()));
    }
    print_summary(&done, None, total.elapsed());
    Ok(())
}

/// Every shell script of the workspace: `*.sh` files outside `target/`
/// and hidden directories, and CI's entry point `.ci/run`; sorted.
pub fn shell_scripts(root: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for e in entries {
            let path = e?.path();
            let name = path.file_name().map_or(String::new(), |n| n.to_string_lossy().into());
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    walk(&path, out)?;
                }
            } else if name.ends_with(".sh") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, &mut out)?;
    let ci = root.join(".ci/run");
    if ci.is_file() {
        out.push(ci);
    }
    out.sort();
    Ok(out.into_iter().map(|p| p.strip_prefix(root).map_or(p.clone(), Path::to_path_buf)).collect())
}

/// Test doubles (the `fake` features: `xenstore-client`'s in-memory
/// xenstored, `pv-drivers`' pretend hypervisor) are for host tests only:
/// the guest's dependency tree must not enable them.
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
    fn every_shell_script_is_linted() {
        let scripts = shell_scripts(&xtask::workspace_root()).unwrap();
        let has = |p: &str| scripts.iter().any(|s| s == Path::new(p));
        for p in [
            "build/src/dom0/init.sh",
            "build/src/dom0/lib.sh",
            "build/src/dom0/bench-net.sh",
            "build/scripts/bench-repeat.sh",
            ".ci/run",
        ] {
            assert!(has(p), "{p} not in {scripts:?}");
        }
        assert!(scripts.iter().all(|s| !s.starts_with("target")));
        let st = steps(&[], &scripts);
        let sc = st.iter().find(|s| s.name == "shellcheck").unwrap();
        assert_eq!(sc.program.as_deref(), Some("shellcheck"));
        assert!(sc.args.iter().any(|a| a == ".ci/run"));
        assert!(st.iter().all(|s| !s.name.starts_with("boot tests")), "no releases, no boots");
        assert!(st.iter().all(|s| !s.name.starts_with("paging")), "no releases, no boots");
        let st = steps(&[XenRelease::V4_17, XenRelease::V4_20], &scripts);
        let pg: Vec<&Step> = st.iter().filter(|s| s.name.starts_with("paging")).collect();
        assert_eq!(pg.len(), 1, "once, on the first release");
        assert_eq!(pg[0].env, [(XEN_ENV, "4.17")]);
        assert!(pg[0].args.join(" ").starts_with("xtask bench paging --quick"));
    }

    #[test]
    fn a_fake_feature_in_the_tree_is_found() {
        let tree = "kernel v0.1.0\n├── xenstore-client feature \"default\"\n│   └── xenstore-client v0.1.0\n";
        assert!(fake_features(tree).is_empty());
        let tree = format!("{tree}├── xenstore-client feature \"fake\"\n");
        assert_eq!(fake_features(&tree), ["├── xenstore-client feature \"fake\""]);
        let tree = format!("{tree}│   ├── pv-drivers feature \"fake\"\n");
        assert_eq!(fake_features(&tree).len(), 2);
        assert_eq!(fake_features(&tree)[1], "│   ├── pv-drivers feature \"fake\"");
    }
}
