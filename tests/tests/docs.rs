//! The chapters in docs/ cannot rot: every chapter has the shape
//! docs/README.md promises and names files that exist, and every command a
//! chapter tells the reader to run is run (tests/src/docs.rs extracts and
//! classifies them):
//! - `cargo xtask run ...`: all of them for the current release (the one a
//!   command names with `--xen`, 4.17 when it names none) and the current
//!   kind of mode (`$XENPV_MODE`: a command naming `--mode pvh` or
//!   `pvh-shadow` runs in the PVH pass, the others, PV, in the PV pass) in ONE QEMU boot,
//!   through the same code `cargo xtask run` uses (`xtask::run`); each
//!   guest must end as its chapter says (poweroff unless `# expect: ...`)
//!   and print every line of the chapter's `look-for` block;
//! - `cargo test -p xen-tests --test FILE ...`: the file must exist and
//!   the filter select tests (the suite runs every file);
//! - `cargo test -p CRATE ...` (host tests) and `cargo xtask build ...`: run;
//! - `cargo xtask demo sched`: tests/tests/sched.rs runs its scenario;
//! - `cargo xtask bench|fuzz|test ...` and commands with a `...`
//!   placeholder: too long (or not literal) to run here; their arguments
//!   are checked by `cargo xtask check-args`.
//!
//! The slow checks that do not depend on the guest's mode (host tests
//! and builds, boot-test selections, long commands' arguments) run in
//! the PV pass only; the PVH pass (`XENPV_MODE=pvh`) runs the chapters'
//! PVH commands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::OnceLock;
use xen_tests::docs::{self, Command, Kind};
use xen_tests::{boot, expect_run, guest_elf, guest_mode, xen_release, BootReport};

fn root() -> PathBuf {
    xtask::workspace_root()
}

fn all_commands() -> Vec<Command> {
    docs::chapters(&root())
        .iter()
        .flat_map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            docs::commands(&name, &std::fs::read_to_string(p).unwrap())
        })
        .collect()
}

fn kinds() -> Vec<(Command, Kind)> {
    all_commands()
        .into_iter()
        .map(|c| {
            let k = docs::classify(&c).unwrap_or_else(|e| panic!("{e}"));
            (c, k)
        })
        .collect()
}

#[test]
fn every_chapter_has_the_shape_of_the_others() {
    let mut bad = Vec::new();
    for p in docs::chapters(&root()) {
        let text = std::fs::read_to_string(&p).unwrap();
        for problem in docs::shape_problems(&text) {
            bad.push(format!("{}: {problem}", p.display()));
        }
    }
    assert!(bad.is_empty(), "chapters out of shape:\n{}", bad.join("\n"));
}

#[test]
fn every_file_a_chapter_names_exists() {
    let root = root();
    let mut missing = Vec::new();
    for p in docs::chapters(&root) {
        let text = std::fs::read_to_string(&p).unwrap();
        for f in docs::named_paths(docs::section(&text, "## The files"), &root) {
            if !root.join(&f).exists() {
                missing.push(format!("{}: {f}", p.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files named in The files sections that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_index_lists_every_chapter_and_the_readme_starts_there() {
    let index = std::fs::read_to_string(root().join("docs/README.md")).expect("docs/README.md");
    for p in docs::chapters(&root()) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(index.contains(&format!("({name})")), "docs/README.md does not link {name}");
    }
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("(docs/README.md)"), "README.md does not link docs/README.md");
}

#[test]
fn every_command_has_a_form_the_docs_test_runs() {
    let k = kinds();
    assert!(
        k.iter().any(|(_, k)| matches!(k, Kind::Run { .. })),
        "no cargo xtask run command at all?"
    );
    for (c, k) in &k {
        eprintln!("{}:{}: {:?}", c.chapter, c.line, k);
    }
}

/// Whether this is the PVH pass, which checks only what depends on the
/// mode (its `cargo xtask run` commands); says so when it is.
fn pvh_pass(what: &str) -> bool {
    let pvh = guest_mode().is_pvh();
    if pvh {
        eprintln!("{what}: does not depend on the guest's mode: checked in the PV pass");
    }
    pvh
}

fn cargo() -> Process {
    let mut p = Process::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    p.current_dir(root());
    p
}

#[test]
fn boot_test_commands_name_files_and_tests_that_exist() {
    if pvh_pass("boot_test_commands_name_files_and_tests_that_exist") {
        return;
    }
    for (c, k) in kinds() {
        let Kind::BootTest { file, args } = k else { continue };
        let path = root().join(format!("tests/tests/{file}.rs"));
        assert!(path.is_file(), "{}:{}: no {}", c.chapter, c.line, path.display());
        // libtest's filters: what follows `--`, flags aside (or a filter
        // given before `--`).
        let filters: Vec<String> = args.iter().filter(|a| !a.starts_with('-')).cloned().collect();
        let out = cargo()
            .args(["test", "-p", "xen-tests", "--test", &file, "--", "--list"])
            .args(&filters)
            .output()
            .expect("cargo test --list");
        let listed =
            String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.ends_with(": test")).count();
        assert!(
            out.status.success() && listed > 0,
            "{}:{}: `{}` selects no test",
            c.chapter,
            c.line,
            c.text
        );
    }
}

#[test]
fn host_test_and_build_commands_succeed() {
    if pvh_pass("host_test_and_build_commands_succeed") {
        return;
    }
    for (c, k) in kinds() {
        let (args, env, xtask) = match k {
            Kind::HostTest { args, env } => (args, env, false),
            Kind::Build { args } => (args, Vec::new(), true),
            _ => continue,
        };
        let mut p = cargo();
        if xtask {
            p.args(["xtask", "build"]);
        } else {
            p.arg("test");
        }
        let status = p.args(&args).envs(env).status().expect("cargo");
        assert!(status.success(), "{}:{}: `{}` failed: {status}", c.chapter, c.line, c.text);
    }
}

#[test]
fn long_commands_have_arguments_xtask_accepts() {
    if pvh_pass("long_commands_have_arguments_xtask_accepts") {
        return;
    }
    for (c, k) in kinds() {
        let Kind::ParseOnly { args, why } = k else { continue };
        if args[0] != "bench" && args[0] != "fuzz" && args[0] != "test" && args[0] != "fetch" {
            eprintln!("{}:{}: `{}`: not run ({why})", c.chapter, c.line, c.text);
            continue;
        }
        let out =
            cargo().args(["xtask", "check-args", "--"]).args(&args).output().expect("cargo xtask");
        assert!(
            out.status.success(),
            "{}:{}: `{}`: {}",
            c.chapter,
            c.line,
            c.text,
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{}:{}: `{}`: arguments checked, not run ({why})", c.chapter, c.line, c.text);
    }
}

#[test]
fn demo_sched_is_what_the_sched_boot_test_runs() {
    if !kinds().iter().any(|(_, k)| *k == Kind::DemoSched) {
        return;
    }
    let sched = std::fs::read_to_string(root().join("tests/tests/sched.rs")).unwrap();
    assert!(
        sched.contains("demo::scenarios("),
        "tests/tests/sched.rs no longer runs the demo's scenario"
    );
}

/// The run commands of this release, each once, with the guest name
/// they run under.
fn runs() -> Vec<(String, Command, xtask::run::RunSpec)> {
    let release = xen_release();
    let pvh = guest_mode().is_pvh();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<(String, Command, xtask::run::RunSpec)> = Vec::new();
    for (c, k) in kinds() {
        let Kind::Run { spec, xen } = k else { continue };
        if xen != release {
            eprintln!(
                "{}:{}: `{}` names Xen {xen}: runs in the {xen} pass",
                c.chapter, c.line, c.text
            );
            continue;
        }
        if spec.mode.is_pvh() != pvh {
            let pass = if spec.mode.is_pvh() { "PVH" } else { "PV" };
            eprintln!("{}:{}: `{}` runs in the {pass} pass", c.chapter, c.line, c.text);
            continue;
        }
        match seen.get(&c.text) {
            Some(&i) => out[i].1.look_for.extend(c.look_for.clone()),
            None => {
                seen.insert(c.text.clone(), out.len());
                out.push((format!("docs-{}", out.len() + 1), c, spec));
            }
        }
    }
    out
}

static LAB: OnceLock<BootReport> = OnceLock::new();

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("docs", || {
            let elf = guest_elf().unwrap_or_default();
            runs()
                .iter()
                .map(|(name, c, spec)| {
                    eprintln!("[docs] {name}: {}:{}: {}", c.chapter, c.line, c.text);
                    xtask::run::scenario(name, Path::new(&elf), spec)
                        .unwrap_or_else(|e| panic!("{}: {e:#}", c.text))
                })
                .collect()
        })
    })
}

#[test]
fn every_run_command_ends_as_its_chapter_says_and_prints_what_it_promises() {
    let runs = runs();
    if runs.is_empty() {
        eprintln!(
            "no chapter command runs on Xen {} in mode {}: nothing to boot",
            xen_release(),
            guest_mode()
        );
        return;
    }
    let mut bad = Vec::new();
    for (name, c, _) in runs {
        let run = expect_run(lab(), &name);
        if run.result != c.expect {
            bad.push(format!(
                "{}:{}: `{}` ended with {}, the chapter says {}",
                c.chapter, c.line, c.text, run.result, c.expect
            ));
        }
        for pattern in &c.look_for {
            if !run.console.iter().any(|l| docs::matches(pattern, l)) {
                bad.push(format!(
                    "{}:{}: `{}` printed no line like {pattern:?}",
                    c.chapter, c.line, c.text
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
