//! The chapters in `docs/` as data, for the docs test (tests/tests/docs.rs):
//! their shape, the files they name, and every command their `sh` blocks
//! tell the reader to run, classified by how a test runs it.
//!
//! A chapter's command is a line of a ```` ```sh ```` block (a trailing
//! `# comment` is dropped; `expect: crash|timeout|create-failed` in it says
//! how the guest ends, poweroff otherwise). A ```` ```look-for ```` block
//! holds lines the last `cargo xtask run` command before it must print; `...`
//! in a line stands for anything.

use std::path::{Path, PathBuf};
use xtask::run::RunSpec;
use xtask::{GuestMode, GuestResult, XenRelease};

/// The headings every chapter has, in this order (a prefix of the heading).
pub const SHAPE: [&str; 6] = [
    "## The problem",
    "## How native",
    "## How this guest does it",
    "## The Xen interface",
    "## The files",
    "## Run it",
];

/// One command of a chapter.
#[derive(Debug, Clone)]
pub struct Command {
    pub chapter: String,
    /// 1-based line in the chapter.
    pub line: usize,
    /// The command without its comment.
    pub text: String,
    /// How the guest of a `cargo xtask run` should end.
    pub expect: GuestResult,
    /// Lines the run must print (`...` matches anything).
    pub look_for: Vec<String>,
}

/// How the docs test runs a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `cargo xtask run`: a guest in the docs test's boot of `xen`.
    Run { spec: RunSpec, xen: XenRelease },
    /// `cargo test -p xen-tests --test FILE [-- ARGS]`: a boot test file the
    /// suite runs; the docs test checks that it selects tests.
    BootTest { file: String, args: Vec<String> },
    /// `cargo test -p CRATE ...` (host tests): run as written.
    HostTest { args: Vec<String>, env: Vec<(String, String)> },
    /// `cargo xtask demo sched`: what tests/tests/sched.rs runs.
    DemoSched,
    /// `cargo xtask build ...`: run as written (it only builds).
    Build { args: Vec<String> },
    /// A long command (`bench`, `fuzz`, `test`, ...) or one with a `...`
    /// placeholder: its arguments are checked (`cargo xtask check-args`),
    /// it is not run, for the reason given.
    ParseOnly { args: Vec<String>, why: &'static str },
}

/// The chapters: every `*.md` in `docs/` but the index.
pub fn chapters(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "md") && !p.ends_with("README.md"));
    v.sort();
    v
}

/// Headings of `SHAPE` the chapter lacks or has out of order.
pub fn shape_problems(text: &str) -> Vec<String> {
    let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("## ")).collect();
    let mut at = 0;
    let mut bad = Vec::new();
    for want in SHAPE {
        match headings[at..].iter().position(|h| h.starts_with(want)) {
            Some(i) => at += i + 1,
            None => bad.push(format!("no {want:?} heading after the previous ones")),
        }
    }
    bad
}

/// The text of the section under the heading starting with `heading`.
pub fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let Some(start) = text.find(&format!("\n{heading}")) else { return "" };
    let body = &text[start + 1..];
    let body = &body[body.find('\n').map_or(body.len(), |i| i + 1)..];
    match body.find("\n## ") {
        Some(end) => &body[..end],
        None => body,
    }
}

/// Repository paths a text names in backquotes: words with a `/` that
/// start with a top-level directory of the repository. `{a,b}.rs` lists
/// are expanded.
pub fn named_paths(text: &str, root: &Path) -> Vec<String> {
    let tops: Vec<String> = std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, chunk) in text.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        let word = chunk.split_whitespace().next().unwrap_or("");
        let word = word.trim_end_matches([':', ',', ')']);
        let Some(top) = word.split('/').next() else { continue };
        if !word.contains('/') || !tops.iter().any(|t| t == top) || word.contains("..") {
            continue;
        }
        // `dir/{a,b}.rs`
        if let (Some(open), Some(close)) = (word.find('{'), word.find('}')) {
            let (head, tail) = (&word[..open], &word[close + 1..]);
            for alt in word[open + 1..close].split(',') {
                out.push(format!("{head}{alt}{tail}"));
            }
            continue;
        }
        // `file.rs` (`fn_name`) style mentions are fine; drop `::item` tails.
        let word = word.split("::").next().unwrap_or(word);
        out.push(word.to_string());
    }
    out
}

/// Every command of a chapter, with its expectations.
pub fn commands(chapter: &str, text: &str) -> Vec<Command> {
    let mut out: Vec<Command> = Vec::new();
    let mut fence: Option<String> = None;
    let mut pending = String::new();
    let mut pending_line = 0;
    let mut last_run: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim_end();
        if let Some(kind) = t.trim_start().strip_prefix("```") {
            fence = match fence {
                None => Some(kind.trim().to_string()),
                Some(_) => None,
            };
            continue;
        }
        match fence.as_deref() {
            Some("sh") => {
                let (code, comment) = match t.find(" #") {
                    Some(at) => (&t[..at], Some(t[at + 2..].trim())),
                    None if t.trim_start().starts_with('#') => {
                        ("", Some(t.trim_start()[1..].trim()))
                    }
                    None => (t, None),
                };
                let code = code.trim();
                if pending.is_empty() {
                    pending_line = i + 1;
                }
                if let Some(c) = code.strip_suffix('\\') {
                    pending.push_str(c.trim());
                    pending.push(' ');
                    continue;
                }
                pending.push_str(code);
                let full = std::mem::take(&mut pending).trim().to_string();
                if full.is_empty() {
                    continue;
                }
                let expect = comment
                    .and_then(|c| c.split("expect: ").nth(1))
                    .and_then(|e| e.split_whitespace().next())
                    .map(|e| e.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '_'))
                    .map_or(GuestResult::Poweroff, GuestResult::parse);
                if full.contains("cargo xtask run") {
                    last_run = Some(out.len());
                }
                out.push(Command {
                    chapter: chapter.to_string(),
                    line: pending_line,
                    text: full,
                    expect,
                    look_for: Vec::new(),
                });
            }
            Some("look-for") => {
                if let (Some(r), false) = (last_run, t.trim().is_empty()) {
                    out[r].look_for.push(t.trim().to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether `line` matches `pattern`: the pieces between `...` appear in
/// it, in order.
pub fn matches(pattern: &str, line: &str) -> bool {
    let mut rest = line;
    for p in pattern.split("...").map(str::trim).filter(|p| !p.is_empty()) {
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    true
}

/// How the docs test runs `cmd`.
pub fn classify(cmd: &Command) -> Result<Kind, String> {
    let words: Vec<&str> = cmd.text.split_whitespace().collect();
    let mut env = Vec::new();
    let mut i = 0;
    while let Some((k, v)) = words.get(i).and_then(|w| w.split_once('=')) {
        if !k.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()) {
            break;
        }
        env.push((k.to_string(), v.to_string()));
        i += 1;
    }
    let rest: Vec<String> = words[i..].iter().map(|s| s.to_string()).collect();
    let env_of = |k: &str| env.iter().find(|(e, _)| e == k).map(|(_, v)| v.clone());
    let placeholder = cmd.text.contains("...");
    match rest.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["cargo", "xtask", "run", args @ ..] => {
            parse_run(args, env_of("XENPV_XEN"), env_of("XENPV_MODE"))
        }
        ["cargo", "xtask", "demo", "sched", ..] => Ok(Kind::DemoSched),
        ["cargo", "xtask", "build", args @ ..] => {
            Ok(Kind::Build { args: args.iter().map(|s| s.to_string()).collect() })
        }
        ["cargo", "xtask", sub @ ("bench" | "fuzz" | "test" | "fetch"), args @ ..] => {
            let mut all = vec![sub.to_string()];
            all.extend(args.iter().map(|s| s.to_string()));
            Ok(Kind::ParseOnly {
                args: all,
                why: match *sub {
                    "bench" => "a benchmark takes 5-30 minutes",
                    "fuzz" => "fuzzing runs for minutes by design",
                    "test" => "the whole suite is what runs this test",
                    _ => "downloads and unpacks packages",
                },
            })
        }
        ["cargo", "test", "-p", "xen-tests", "--test", file, args @ ..] => Ok(Kind::BootTest {
            file: file.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }),
        ["cargo", "test", ..] if placeholder => Ok(Kind::ParseOnly {
            args: rest.clone(),
            why: "it names a value the reader fills in (`...`)",
        }),
        ["cargo", "test", args @ ..] => {
            Ok(Kind::HostTest { args: args.iter().map(|s| s.to_string()).collect(), env })
        }
        _ => Err(format!(
            "{}:{}: `{}`: a command form the docs test does not know (teach tests/src/docs.rs)",
            cmd.chapter, cmd.line, cmd.text
        )),
    }
}

/// `cargo xtask run`'s options (build/src/main.rs `RunArgs`), parsed the
/// way clap does for the ones the chapters use.
fn parse_run(
    args: &[&str],
    env_xen: Option<String>,
    env_mode: Option<String>,
) -> Result<Kind, String> {
    let mut spec = RunSpec {
        app: "hello".into(),
        memory: 32,
        mode: env_mode
            .map_or(Ok(GuestMode::Pv), |m| GuestMode::parse(&m).map_err(|e| e.to_string()))?,
        timeout: 60,
        vif: false,
        disk: None,
        extra: Vec::new(),
        dom0_script: None,
    };
    let mut xen = env_xen
        .map_or(Ok(XenRelease::V4_17), |x| XenRelease::parse(&x).map_err(|e| e.to_string()))?;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().map(|s| s.to_string()).ok_or(format!("{a} needs a value"));
        match *a {
            "--app" => spec.app = val()?,
            "--memory" => spec.memory = val()?.parse().map_err(|e| format!("--memory: {e}"))?,
            "--mode" => spec.mode = GuestMode::parse(&val()?).map_err(|e| e.to_string())?,
            "--timeout" => spec.timeout = val()?.parse().map_err(|e| format!("--timeout: {e}"))?,
            "--xen" => xen = XenRelease::parse(&val()?).map_err(|e| e.to_string())?,
            "--disk" => spec.disk = Some(val()?.parse().map_err(|e| format!("--disk: {e}"))?),
            "--dom0-script" => spec.dom0_script = Some(PathBuf::from(val()?)),
            "--vif" => spec.vif = true,
            "-v" | "--verbose" => {}
            "--" => {
                spec.extra = it.by_ref().map(|s| s.to_string()).collect();
            }
            other => {
                return Err(format!(
                    "cargo xtask run {other}: an option the docs test does not know"
                ))
            }
        }
    }
    Ok(Kind::Run { spec, xen })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAPTER: &str = "# T\n\n## The problem\nx\n## How native kernels do it\n## How this guest does it\n## The Xen interface\n## The files\n`kernel/src/lib.rs`, `pv-drivers/src/netfront/{rx,tx}.rs`, `nothing/here`\n## Run it\n\n```sh\ncargo xtask run --app tour --disk 1 --timeout 300 -- trace=events   # the tour\ncargo xtask run --app idle -- net.queus=2   # expect: crash\nXENPV_XEN=4.20 cargo test -p xen-tests --test net -- --test-threads=1\ncargo test -p pv-drivers hotplug\n```\n\n```look-for\ntour: [rings] ... notify: true\n```\n";

    #[test]
    fn a_chapter_is_parsed_into_shape_paths_and_commands() {
        assert!(shape_problems(CHAPTER).is_empty(), "{:?}", shape_problems(CHAPTER));
        assert_eq!(shape_problems("## Run it\n## The problem\n").len(), 5);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let files = named_paths(section(CHAPTER, "## The files"), root);
        assert_eq!(
            files,
            ["kernel/src/lib.rs", "pv-drivers/src/netfront/rx.rs", "pv-drivers/src/netfront/tx.rs"]
        );
        let cmds = commands("t.md", CHAPTER);
        assert_eq!(cmds.len(), 4);
        // A look-for block belongs to the last run command before it.
        assert!(cmds[0].look_for.is_empty());
        assert_eq!(cmds[1].look_for, ["tour: [rings] ... notify: true"]);
        assert_eq!(cmds[1].expect, GuestResult::Crash);
        let Ok(Kind::Run { spec, xen }) = classify(&cmds[0]) else {
            panic!("{:?}", classify(&cmds[0]))
        };
        assert_eq!(
            (spec.app.as_str(), spec.disk, spec.timeout, xen),
            ("tour", Some(1), 300, XenRelease::V4_17)
        );
        assert_eq!(spec.extra, ["trace=events"]);
        assert!(matches!(classify(&cmds[2]), Ok(Kind::BootTest { ref file, .. }) if file == "net"));
        assert!(matches!(classify(&cmds[3]), Ok(Kind::HostTest { .. })));
        let odd = Command { text: "make world".into(), ..cmds[0].clone() };
        assert!(classify(&odd).unwrap_err().contains("does not know"));
        let bad = Command { text: "cargo xtask run --frobnicate".into(), ..cmds[0].clone() };
        assert!(classify(&bad).is_err());
    }

    #[test]
    fn look_for_patterns_skip_what_varies() {
        assert!(matches(
            "tour: [rings] ... notify: true",
            "[g] tour: [rings] 3 requests, notify: true"
        ));
        assert!(matches("trace: hc #... mmu_update(", "trace: hc #2 mmu_update(2048 reqs"));
        assert!(!matches("trace: hc #... mmu_update(", "trace: hc #2 multicall("));
        assert!(matches("plain text", "a line with plain text in it"));
        assert!(!matches("plain text", "a line without it"));
    }
}
