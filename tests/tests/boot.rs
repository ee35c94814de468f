//! The guest's basic runs on Xen 4.17, all in one QEMU boot:
//! `hello` powers off, `selftest` passes its checks, `panic` crashes.

use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_console_line, assert_result, boot, console_pattern_line,
    expect_run, guest, parse_summary, BootReport, GuestResult, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

/// The one boot of this file: every guest below, in sequence.
fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("boot", || {
            let t = Duration::from_secs(60);
            vec![
                Scenario::single(guest("hello", "hello").timeout(t)),
                Scenario::single(guest("selftest", "selftest").timeout(t)),
                Scenario::single(guest("panic", "panic").timeout(t)),
            ]
        })
    })
}

#[test]
fn hello_powers_off_with_banner() {
    let run = expect_run(lab(), "hello");
    assert_result(run, &GuestResult::Poweroff);
    assert_console_contains(run, "Xen 4.17");
    assert_console_line(run, "running app=hello");
}

#[test]
fn selftest_passes() {
    let run = expect_run(lab(), "selftest");
    let fails: Vec<&String> = run.console.iter().filter(|l| l.starts_with("FAIL")).collect();
    for l in &fails {
        eprintln!("selftest: {l}");
    }
    assert_result(run, &GuestResult::Poweroff);
    let panics: Vec<&String> = run.console.iter().filter(|l| l.contains("panic")).collect();
    assert!(panics.is_empty(), "selftest console mentions a panic: {panics:?}\n{}", run.describe());
    let summary = run.console.iter().rev().find_map(|l| parse_summary(l));
    let Some((passed, failed)) = summary else {
        panic!("no `N passed, N failed` line in the selftest console\n{}", run.describe());
    };
    assert!(
        failed == 0 && fails.is_empty(),
        "selftest: {failed} check(s) failed: {fails:?}\n{}",
        run.describe()
    );
    assert!(passed > 0, "selftest ran no checks\n{}", run.describe());
}

#[test]
fn panic_is_reported_as_crash() {
    let run = expect_run(lab(), "panic");
    assert_result(run, &GuestResult::Crash);
    assert_console_contains(run, "panicked at");
}

/// The selftest writes a pattern three times the console ring's size; it
/// must reach the host whole and in order (no loss in the ring, in
/// xenconsoled, or on Xen's serial line).
#[test]
fn selftest_console_pattern_arrives_intact() {
    const LINES: u64 = 48;
    let run = expect_run(lab(), "selftest");
    let got: Vec<&String> =
        run.console.iter().filter(|l| l.starts_with("console-pattern ")).collect();
    assert_eq!(
        got.len() as u64,
        LINES,
        "expected {LINES} console-pattern lines\n{}",
        run.describe()
    );
    for (i, line) in got.iter().enumerate() {
        let want = console_pattern_line(i as u64);
        assert_eq!(line.as_str(), want, "console-pattern line {i} corrupted");
    }
}
