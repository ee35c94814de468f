//! Why a step of `cargo xtask test` failed, in a few lines printed last.
//!
//! CI keeps only the tail of the run's output: the last twenty-odd lines
//! or 900-odd characters, the summary and the `error:` line. A failed boot test's own words (its
//! panic message, the strikes the harness retried) scroll out of it, so
//! the step's output is read as it passes and the lines that say why are
//! printed again after the summary.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

/// Lines printed at most, and characters per line: the last of them
/// (the most telling: failures come after the retries) fit in CI's tail.
pub const MAX_LINES: usize = 6;
pub const MAX_WIDTH: usize = 200;
/// How long the output's readers may go on after the step ended.
const READERS_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// One failed test: its file, name, where it panicked and the first line
/// of the panic's message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Failure {
    target: String,
    test: String,
    at: String,
    message: String,
    /// The block's lines that name a triple fault (Xen's, in the report).
    triple_faults: usize,
}

/// What was read of one step's output.
#[derive(Debug, Default, Clone)]
pub struct Digest {
    target: String,
    failures: Vec<Failure>,
    /// In a `---- NAME stdout ----` block: its failure's index.
    block: Option<usize>,
    /// The next line is the panic's message.
    message_next: bool,
    /// The harness's retries after a strike, by file label.
    retries: Vec<String>,
    /// cargo's and rustc's `error` lines (a build that failed).
    errors: Vec<String>,
}

impl Digest {
    /// One line of the step's output (both streams, in the order the
    /// step wrote them: a file's `Running` line precedes its report).
    pub fn line(&mut self, line: &str) {
        // Inside a failed test's block every line is the test's own.
        if self.block.is_none() && self.cargo_line(line) {
            return;
        }
        if let Some(name) = line.strip_prefix("---- ").and_then(|l| l.strip_suffix(" stdout ----"))
        {
            self.failures.push(Failure {
                target: self.target.clone(),
                test: name.to_string(),
                ..Failure::default()
            });
            self.block = Some(self.failures.len() - 1);
            self.message_next = false;
            return;
        }
        let Some(i) = self.block else { return };
        if line == "failures:" || line.starts_with("test result:") {
            self.block = None;
            return;
        }
        let f = &mut self.failures[i];
        if self.message_next {
            self.message_next = false;
            if f.message.is_empty() {
                f.message = line.trim().to_string();
            }
        } else if let Some(at) = panic_location(line) {
            if f.at.is_empty() {
                f.at = at.to_string();
                // Since Rust 1.73 the message follows on the next line;
                // before, it followed the location and a colon on this one.
                match at.split_once(": ") {
                    Some((loc, msg)) => {
                        f.at = loc.to_string();
                        f.message = msg.trim_matches('\'').to_string();
                    }
                    None => self.message_next = true,
                }
            }
        }
        if line.contains("Triple fault") {
            f.triple_faults += 1;
        }
    }

    /// A line of cargo's or the harness's (their standard error): a test
    /// binary starting, a retried strike, an error. Whether it was one.
    fn cargo_line(&mut self, line: &str) -> bool {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("Running ") {
            // `Running tests/blk.rs (target/debug/deps/blk-…)`, `Running
            // unittests src/lib.rs (target/debug/deps/grant_tables-…)`
            let path = rest.split(" (").next().unwrap_or("");
            let bin = rest.rsplit('/').next().unwrap_or("").trim_end_matches(')');
            let krate = bin.rsplit_once('-').map_or(bin, |(k, _)| k);
            self.target = match path.strip_prefix("unittests ") {
                Some(src) => format!("{krate} {src}"),
                None => path.to_string(),
            };
        } else if t.starts_with("[lab] ") && t.contains("triple fault") && t.contains("new boot") {
            let label = t["[lab] ".len()..].split(':').next().unwrap_or("").to_string();
            self.retries.push(label);
        } else if t.starts_with("error") {
            if self.errors.len() < MAX_LINES {
                self.errors.push(t.to_string());
            }
        } else {
            return false;
        }
        true
    }

    /// The lines to print after the summary: each failed test with its
    /// panic, the retried strikes, else cargo's errors; at most
    /// [`MAX_LINES`], each cut to [`MAX_WIDTH`] characters.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if !self.retries.is_empty() {
            let mut counted: Vec<(String, usize)> = Vec::new();
            for r in &self.retries {
                match counted.iter_mut().find(|(l, _)| l == r) {
                    Some((_, n)) => *n += 1,
                    None => counted.push((r.clone(), 1)),
                }
            }
            let each: Vec<String> = counted.iter().map(|(l, n)| format!("{l} x{n}")).collect();
            out.push(format!("boots retried after a PVH triple fault: {}", each.join(", ")));
        }
        out.extend(self.failures.iter().map(|f| {
            let mut s = format!("{} {}", f.target, f.test);
            if !f.at.is_empty() {
                s.push_str(&format!(" at {}", f.at));
            }
            if !f.message.is_empty() {
                s.push_str(&format!(": {}", f.message));
            }
            if f.triple_faults > 0 {
                s.push_str(&format!(" [{} triple-fault lines]", f.triple_faults));
            }
            s
        }));
        if self.failures.is_empty() {
            out.extend(self.errors.iter().cloned());
        }
        // The last lines are the ones CI keeps: drop from the front.
        if out.len() > MAX_LINES {
            let more = out.len() - (MAX_LINES - 1);
            out.drain(..more);
            out.insert(0, format!("{more} more before these"));
        }
        out.into_iter().map(|l| cut(&l, MAX_WIDTH)).collect()
    }
}

/// `thread 'x' panicked at FILE:L:C:` -> `FILE:L:C` (with a message after
/// it on older Rusts).
fn panic_location(line: &str) -> Option<&str> {
    // Newer Rusts put the thread's id after its name: `thread 'x' (123) panicked at`.
    let t = line.strip_prefix("thread '")?;
    let (_, rest) = t.split_once(" panicked at ")?;
    Some(rest.strip_suffix(':').unwrap_or(rest))
}

fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut c: String = s.chars().take(width - 3).collect();
    c.push_str("...");
    c
}

/// Runs `cmd` with its output passed through as it comes, copied to
/// `tee` (both streams, in the order read) and read into a [`Digest`] on
/// the way.
pub fn run(cmd: &mut Command, mut tee: std::fs::File) -> std::io::Result<(ExitStatus, Digest)> {
    // One pipe for both streams, so lines come in the order written (a
    // test file's `Running` line, on stderr, before its report, on
    // stdout); all of it is passed on to standard output.
    let (reader, writer) = std::io::pipe()?;
    let spawned = cmd.stdout(writer.try_clone()?).stderr(writer).spawn();
    // The command keeps what it was given: our write ends, which would
    // hold the pipe open after the step ended.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child: Child = spawned?;
    let digest = Arc::new(Mutex::new(Digest::default()));
    let (done_tx, done) = std::sync::mpsc::channel::<()>();
    let d = digest.clone();
    std::thread::spawn(move || {
        pass(reader, std::io::stdout(), |l| {
            let _ = writeln!(tee, "{l}");
            d.lock().unwrap_or_else(|e| e.into_inner()).line(l)
        });
        let _ = done_tx.send(());
    });
    let status = child.wait()?;
    // The pipe ends when every process holding it has: a process the
    // step left behind (a QEMU not killed) would keep the reader waiting
    // for ever, so it gets a few seconds after the step ends.
    let _ = done.recv_timeout(READERS_GRACE);
    let digest = digest.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok((status, digest))
}

/// Copies `from` to `to` line by line (bytes as they are), handing each
/// line, lossily decoded, to `each`.
fn pass(from: impl Read, mut to: impl Write, mut each: impl FnMut(&str)) {
    let mut r = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let _ = to.write_all(&buf);
                let _ = to.flush();
                let line = String::from_utf8_lossy(&buf);
                each(line.trim_end_matches(['\n', '\r']));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PVH step as cargo and libtest print it: two files, one failed test
    /// in each, one retried strike.
    #[test]
    fn a_failed_step_is_told_in_a_line_per_test() {
        let mut d = Digest::default();
        d.line("     Running tests/blk.rs (target/debug/deps/blk-0123)");
        d.line("[lab] blk: Xen ended a PVH guest with a triple fault (b: d2v0 Triple fault - invoking HVM shutdown action 1): the emulator's known glitch; every scenario of this file runs again, in a new boot (1 of at most 3), and the tests judge the last boot");
        for l in [
            "running 2 tests",
            "test blk_reads ... FAILED",
            "test blk_writes ... ok",
            "",
            "failures:",
            "",
            "---- blk_reads stdout ----",
            "[xen] (XEN) d2v0 Triple fault - invoking HVM shutdown action 1",
            "",
            "thread 'blk_reads' panicked at tests/tests/blk.rs:42:5:",
            "guest b never ran: QEMU timed out",
            "--- last serial lines ---",
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
            "",
            "",
            "failures:",
            "    blk_reads",
            "",
            "test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        ] {
            d.line(l);
        }
        d.line("     Running tests/mobility.rs (target/debug/deps/mobility-4567)");
        d.line("---- saves_and_restores stdout ----");
        d.line("thread 'saves_and_restores' panicked at tests/tests/mobility.rs:7:9: 'old style'");
        d.line("test result: FAILED. 0 passed; 1 failed");
        d.line("     Running unittests src/lib.rs (target/debug/deps/grant_tables-89ab)");
        d.line("---- refs::a stdout ----");
        d.line("thread 'refs::a' (29819) panicked at grant-tables/src/refs.rs:303:9:");
        d.line("assertion `left == right` failed: two");
        d.line("error: 2 targets failed:");
        assert_eq!(
            d.lines(),
            [
                "boots retried after a PVH triple fault: blk x1",
                "tests/blk.rs blk_reads at tests/tests/blk.rs:42:5: guest b never ran: QEMU timed out [1 triple-fault lines]",
                "tests/mobility.rs saves_and_restores at tests/tests/mobility.rs:7:9: old style",
                "grant_tables src/lib.rs refs::a at grant-tables/src/refs.rs:303:9: assertion `left == right` failed: two",
            ]
        );
    }

    #[test]
    fn a_build_that_failed_is_told_by_its_errors_and_every_line_is_bounded() {
        let mut d = Digest::default();
        d.line("error[E0425]: cannot find value `x` in this scope");
        d.line("warning: unused");
        d.line("error: could not compile `kernel`");
        assert_eq!(
            d.lines(),
            [
                "error[E0425]: cannot find value `x` in this scope",
                "error: could not compile `kernel`"
            ]
        );
        let mut d = Digest::default();
        for i in 0..15 {
            d.line(&format!("---- t{i} stdout ----"));
            d.line(&format!("thread 't{i}' panicked at a.rs:1:1:"));
            d.line(&"x".repeat(1000));
        }
        let lines = d.lines();
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines[0], format!("{} more before these", 15 - (MAX_LINES - 1)));
        assert!(lines[MAX_LINES - 1].starts_with(" t14 at a.rs:1:1: xxx"), "{lines:?}");
        assert!(lines.iter().all(|l| l.chars().count() <= MAX_WIDTH), "{lines:?}");
        assert!(lines[1].ends_with("..."));
    }

    /// A step that leaves a process holding its output (here a `sleep`
    /// in the background) ends when the step does, not when that process
    /// does.
    #[test]
    fn a_process_left_behind_does_not_hold_the_step() {
        let tee = std::fs::File::create(
            std::env::temp_dir().join(format!("xenpv-digest-{}.log", std::process::id())),
        )
        .unwrap();
        let t = std::time::Instant::now();
        let (status, d) = run(
            Command::new("sh").args(["-c", "echo 'error: one' >&2; sleep 60 & echo left"]),
            tee,
        )
        .unwrap();
        assert!(status.success());
        assert!(t.elapsed() < std::time::Duration::from_secs(30), "{:?}", t.elapsed());
        assert_eq!(d.lines(), ["error: one"], "read from the one pipe of both streams");
    }

    #[test]
    fn output_passes_through_whole_and_is_read() {
        let mut seen = Vec::new();
        let mut to = Vec::new();
        pass(&b"one\ntwo\r\nthree"[..], &mut to, |l| seen.push(l.to_string()));
        assert_eq!(to, b"one\ntwo\r\nthree");
        assert_eq!(seen, ["one", "two", "three"]);
    }
}
