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

/// The checks, with the boot tests on `releases` (none: no boot tests)
/// as PV guests, then on `pvh_releases` as PVH guests; `scripts` are the
/// shell scripts to lint, `boot_files` the boot test files
/// (`tests/tests/*.rs` stems).
fn steps(
    releases: &[XenRelease],
    pvh_releases: &[XenRelease],
    scripts: &[PathBuf],
    boot_files: &[String],
) -> Vec<Step> {
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
    // The first release runs every file; a later one (only the run
    // without `--xen` has two) the files of [`LATER_RELEASE_FILES`].
    for (i, &r) in releases.iter().enumerate() {
        let mut args = s(BOOT_TESTS);
        if i > 0 {
            let at = args.iter().position(|a| a == "--").expect("BOOT_TESTS has a --");
            let named = LATER_RELEASE_FILES.iter().filter(|f| boot_files.iter().any(|b| b == *f));
            let tests: Vec<String> =
                named.flat_map(|f| ["--test".to_string(), f.to_string()]).collect();
            args.splice(at..at, tests);
        }
        steps.push(Step {
            env: vec![(XEN_ENV, r.version()), (MODE_ENV, GuestMode::Pv.name())],
            args,
            ..step(&format!("boot tests ({r}, {})", GuestMode::Pv), &[])
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
    // One test body, each mode: the PVH steps run every file whose guests
    // follow `$XENPV_MODE`; a file whose guests have a fixed mode
    // ([`MODE_FIXED`]) already ran them in the PV step.
    let mut pvh = s(&["test", "-p", "xen-tests", "--no-fail-fast"]);
    for f in boot_files.iter().filter(|f| !MODE_FIXED.contains(&f.as_str())) {
        pvh.push("--test".into());
        pvh.push(f.clone());
    }
    pvh.extend(s(&["--", "--test-threads=1"]));
    for &r in pvh_releases {
        steps.push(Step {
            env: vec![(XEN_ENV, r.version()), (MODE_ENV, GuestMode::Pvh.name())],
            args: pvh.clone(),
            ..step(&format!("boot tests ({r}, {})", GuestMode::Pvh), &[])
        });
    }
    steps
}

/// Every boot test file, one QEMU boot each, one test thread.
const BOOT_TESTS: &[&str] =
    &["test", "-p", "xen-tests", "--no-fail-fast", "--", "--test-threads=1"];
/// The boot test files the run without `--xen` runs on its second release
/// (Xen 4.20), beside every file on 4.17 in both modes: the boot and
/// self-test, the control path and both drivers, as issue 13 set it.
/// Every file on 4.17 takes ~15 minutes as PV on an idle machine and 30
/// or more as PVH; every file on 4.20 too would not fit in CI's 90
/// minutes.
/// `cargo xtask test --xen 4.20` runs all of them there, in both modes.
pub const LATER_RELEASE_FILES: &[&str] = &["blk", "boot", "control", "net"];
/// Boot test files whose guests have a mode of their own whatever
/// `$XENPV_MODE` says: they run once, in the PV step.
/// `mobility_pvh`: PVH guests only (live migration works only as PVH on
/// this Xen); `mobility_blk`: a PV guest and two PVH guests;
/// `mobility_balloon`: PVH guests only; `strike`: a PVH guest that
/// triple-faults on purpose and a PV one. (`smp_net` fixes one guest's mode,
/// PVH for its migration, and its others follow `$XENPV_MODE`: it runs
/// in both steps.)
pub const MODE_FIXED: &[&str] = &["mobility_balloon", "mobility_blk", "mobility_pvh", "strike"];
/// `cargo xtask bench paging` as CI runs it (no Linux DomUs: their kernel
/// takes a minute to boot and they are the comparison, not the check).
const PAGING_QUICK: &[&str] = &["xtask", "bench", "paging", "--quick", "--runs", "1", "--no-linux"];
const XEN_ENV: &str = xtask::release::XEN_ENV;
const MODE_ENV: &str = xtask::mode::MODE_ENV;

/// Where the loom build goes, relative to the workspace root.
const LOOM_TARGET_DIR: &str = "target/loom";

/// The release the PVH boot tests run on when no release is asked for.
/// Every file passes as PVH on 4.20 too (docs/pvh.md), but a PVH step
/// costs about what a PV step does without the mode-fixed files (20-40
/// minutes at this machine's usual load, each): with it the whole run
/// would not stay well inside CI's 90 minutes. `cargo xtask test --xen
/// 4.20` runs 4.20 in both modes.
pub const PVH_DEFAULT_RELEASE: XenRelease = XenRelease::V4_17;

/// The releases of the PV and of the PVH boot tests: `xen` only, in both
/// modes; or, without it, every release as PV (4.17 first) and
/// [`PVH_DEFAULT_RELEASE`] as PVH; none with `no_boot`.
fn boot_releases(xen: Option<XenRelease>, no_boot: bool) -> (Vec<XenRelease>, Vec<XenRelease>) {
    match (no_boot, xen) {
        (true, _) => (Vec::new(), Vec::new()),
        (false, Some(r)) => (vec![r], vec![r]),
        (false, None) => (XenRelease::ALL.to_vec(), vec![PVH_DEFAULT_RELEASE]),
    }
}

/// Every check, with the boot tests of [`boot_releases`].
pub fn run(xen: Option<XenRelease>, no_boot: bool) -> Result<()> {
    let (releases, pvh_releases) = boot_releases(xen, no_boot);
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
    let boot_files = boot_test_files(&root)?;
    let logs = xtask::xen_out_dir().join("logs");
    xtask::cmd::mkdir(&logs)?;
    for step in steps(&releases, &pvh_releases, &scripts, &boot_files) {
        let program = step.program.as_deref().unwrap_or(&cargo);
        let shown = step.program.as_deref().unwrap_or("cargo");
        println!("\n==> {}: {shown} {}", step.name, step.args.join(" "));
        let t = Instant::now();
        let output = logs.join(format!("ci-step-{}.log", done.len() + 1));
        let tee = std::fs::File::create(&output)
            .with_context(|| format!("cannot create {}", output.display()))?;
        let started = std::time::SystemTime::now();
        let run = crate::faildigest::run(
            Command::new(program)
                .args(&step.args)
                .envs(step.env.iter().copied())
                .current_dir(&root)
                .stdin(std::process::Stdio::null()),
            tee,
        );
        match run {
            Ok((s, _)) if s.success() => {}
            Err(e) => {
                print_summary(&done, Some(&step.name), total.elapsed());
                bail!("{} failed: cannot run {program}: {e}", step.name)
            }
            Ok((s, digest)) => {
                print_summary(&done, Some(&step.name), total.elapsed());
                // Last, so that CI's tail of the output keeps it.
                let kept = xtask::cache::cache_dir().join("failed-runs");
                match keep_evidence(&kept, &logs, &output, started, &step.name) {
                    Ok(dir) => println!("output and serial logs kept in {}", dir.display()),
                    Err(e) => println!("output and serial logs not kept: {e:#}"),
                }
                println!("==> why {} failed", step.name);
                for l in digest.lines() {
                    println!("  {l}");
                }
                bail!("{} failed ({s}): see its output above", step.name)
            }
        }
        done.push((step.name, t.elapsed()));
    }
    print_summary(&done, None, total.elapsed());
    Ok(())
}

/// Failed runs whose evidence [`keep_evidence`] keeps, newest first.
const KEPT_FAILURES: usize = 6;

/// Copies a failed step's whole output and the serial logs written since
/// it started to a directory of the lab cache, which outlives CI's clone
/// (CI shows only the tail of the output); keeps the newest
/// [`KEPT_FAILURES`]. Returns the directory.
fn keep_evidence(
    base: &Path,
    logs: &Path,
    output: &Path,
    since: std::time::SystemTime,
    step: &str,
) -> Result<PathBuf> {
    let stamp = since.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let slug: String =
        step.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
    let dir = base.join(format!("{stamp}-{slug}"));
    xtask::cmd::mkdir(&dir)?;
    std::fs::copy(output, dir.join("output.log"))
        .with_context(|| format!("cannot copy {}", output.display()))?;
    for e in std::fs::read_dir(logs).with_context(|| format!("cannot list {}", logs.display()))? {
        let path = e?.path();
        let fresh = path.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since);
        let serial = path.file_name().is_some_and(|n| n.to_string_lossy().ends_with(".serial.log"));
        if fresh && serial {
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, dir.join(name))
                    .with_context(|| format!("cannot copy {}", path.display()))?;
            }
        }
    }
    let mut old: Vec<PathBuf> = std::fs::read_dir(base)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    // Names start with the Unix time: the newest sort last.
    old.sort();
    let excess = old.len().saturating_sub(KEPT_FAILURES);
    for p in &old[..excess] {
        let _ = std::fs::remove_dir_all(p);
    }
    Ok(dir)
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

/// The boot test files: the stems of `tests/tests/*.rs`, sorted.
pub fn boot_test_files(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("tests/tests");
    let entries =
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut out = Vec::new();
    for e in entries {
        let path = e?.path();
        if path.is_file() && path.extension().is_some_and(|x| x == "rs") {
            if let Some(stem) = path.file_stem() {
                out.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
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
        let st = steps(&[], &[], &scripts, &[]);
        let sc = st.iter().find(|s| s.name == "shellcheck").unwrap();
        assert_eq!(sc.program.as_deref(), Some("shellcheck"));
        assert!(sc.args.iter().any(|a| a == ".ci/run"));
        assert!(st.iter().all(|s| !s.name.starts_with("boot tests")), "no releases, no boots");
        assert!(st.iter().all(|s| !s.name.starts_with("paging")), "no releases, no boots");
        let st = steps(&[XenRelease::V4_17, XenRelease::V4_20], &[], &scripts, &[]);
        let pg: Vec<&Step> = st.iter().filter(|s| s.name.starts_with("paging")).collect();
        assert_eq!(pg.len(), 1, "once, on the first release");
        assert_eq!(pg[0].env, [(XEN_ENV, "4.17")]);
        assert!(pg[0].args.join(" ").starts_with("xtask bench paging --quick"));
    }

    #[test]
    fn every_boot_file_runs_in_both_modes_a_mode_fixed_one_once_a_later_release_its_files() {
        let root = xtask::workspace_root();
        let files = boot_test_files(&root).unwrap();
        assert!(
            files.iter().any(|f| f == "boot") && files.iter().any(|f| f == "tour"),
            "{files:?}"
        );
        for f in LATER_RELEASE_FILES {
            assert!(files.iter().any(|b| b == f), "{f} is not a boot test file");
        }
        let st = steps(&XenRelease::ALL, &XenRelease::ALL, &[], &files);
        for (i, r) in XenRelease::ALL.into_iter().enumerate() {
            let pv = st.iter().find(|s| s.name == format!("boot tests ({r}, pv)")).unwrap();
            let pv_named: Vec<&String> =
                pv.args.windows(2).filter(|w| w[0] == "--test").map(|w| &w[1]).collect();
            if i == 0 {
                assert!(pv_named.is_empty(), "the first release's PV step runs every file");
            } else {
                assert_eq!(pv_named, LATER_RELEASE_FILES, "a later release's PV step");
                let dash = pv.args.iter().position(|a| a == "--").unwrap();
                assert!(pv.args[..dash].iter().any(|a| a == "--no-fail-fast"));
                assert_eq!(pv.args[dash + 1..], ["--test-threads=1"]);
            }
            assert!(pv.env.contains(&(MODE_ENV, "pv")) && pv.env.contains(&(XEN_ENV, r.version())));
            let pvh = st.iter().find(|s| s.name == format!("boot tests ({r}, pvh)")).unwrap();
            assert!(
                pvh.env.contains(&(MODE_ENV, "pvh")) && pvh.env.contains(&(XEN_ENV, r.version()))
            );
            let named: Vec<&String> =
                pvh.args.windows(2).filter(|w| w[0] == "--test").map(|w| &w[1]).collect();
            for f in &files {
                let fixed = MODE_FIXED.contains(&f.as_str());
                assert_eq!(named.contains(&f), !fixed, "{f} in the PVH step: {named:?}");
            }
        }
        // PV steps first (every file), then PVH.
        let boots: Vec<&str> = st
            .iter()
            .filter(|s| s.name.starts_with("boot tests"))
            .map(|s| s.name.as_str())
            .collect();
        let [a, b] = XenRelease::ALL;
        let want = [
            format!("boot tests ({a}, pv)"),
            format!("boot tests ({b}, pv)"),
            format!("boot tests ({a}, pvh)"),
            format!("boot tests ({b}, pvh)"),
        ];
        assert_eq!(boots, want);
    }

    #[test]
    fn pvh_runs_on_the_release_asked_for_or_the_default_one() {
        assert_eq!(boot_releases(None, true), (vec![], vec![]));
        assert_eq!(
            boot_releases(None, false),
            (XenRelease::ALL.to_vec(), vec![PVH_DEFAULT_RELEASE])
        );
        for r in XenRelease::ALL {
            assert_eq!(boot_releases(Some(r), false), (vec![r], vec![r]));
        }
        let (pv, pvh) = boot_releases(None, false);
        let st = steps(&pv, &pvh, &[], &["boot".to_string()]);
        let boots: Vec<&str> = st
            .iter()
            .filter(|s| s.name.starts_with("boot tests"))
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(boots.len(), XenRelease::ALL.len() + 1, "{boots:?}");
        assert_eq!(*boots.last().unwrap(), format!("boot tests ({PVH_DEFAULT_RELEASE}, pvh)"));
    }

    /// A file is mode-fixed exactly when it sets its guests' mode itself
    /// and never asks for `$XENPV_MODE`'s: the others follow it (all their
    /// guests or some), so the PVH step must run them.
    #[test]
    fn the_mode_fixed_files_are_the_ones_that_set_their_guests_mode() {
        let root = xtask::workspace_root();
        for f in boot_test_files(&root).unwrap() {
            let text = std::fs::read_to_string(root.join(format!("tests/tests/{f}.rs"))).unwrap();
            let sets_mode = text.contains(".mode(") && !text.contains("guest_mode()");
            let fixed = MODE_FIXED.contains(&f.as_str());
            assert_eq!(
                sets_mode, fixed,
                "tests/tests/{f}.rs: sets its guests' mode {sets_mode}; listed in MODE_FIXED {fixed}"
            );
        }
    }

    #[test]
    fn a_failed_step_keeps_its_output_and_fresh_serial_logs_and_only_the_newest_runs() {
        let tmp = std::env::temp_dir().join(format!("xenpv-keep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let (base, logs) = (tmp.join("failed-runs"), tmp.join("logs"));
        std::fs::create_dir_all(&logs).unwrap();
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        let stale = logs.join("net.serial.log");
        std::fs::write(&stale, "old boot").unwrap();
        std::fs::File::options().write(true).open(&stale).unwrap().set_modified(hour_ago).unwrap();
        let since = std::time::SystemTime::now() - Duration::from_secs(60);
        std::fs::write(logs.join("blk.123.serial.log"), "the failed boot").unwrap();
        std::fs::write(logs.join("ci-step-10.log"), "test blk ... FAILED").unwrap();
        for i in 0..KEPT_FAILURES + 2 {
            std::fs::create_dir_all(base.join(format!("100000000{i}-older"))).unwrap();
        }
        let dir = keep_evidence(
            &base,
            &logs,
            &logs.join("ci-step-10.log"),
            since,
            "boot tests (Xen 4.17, pvh)",
        )
        .unwrap();
        assert!(dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with("-boot-tests--Xen-4.17--pvh-"));
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        assert_eq!(read("output.log"), "test blk ... FAILED");
        assert_eq!(read("blk.123.serial.log"), "the failed boot");
        assert!(
            !dir.join("net.serial.log").exists(),
            "a log from before the step is not its evidence"
        );
        let mut left: Vec<String> = std::fs::read_dir(&base)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), KEPT_FAILURES);
        assert_eq!(left.last().unwrap(), &dir.file_name().unwrap().to_string_lossy());
        assert!(!left.contains(&"1000000000-older".to_string()), "{left:?}");
        std::fs::remove_dir_all(&tmp).unwrap();
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
