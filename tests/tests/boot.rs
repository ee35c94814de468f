//! The guest's basic runs on Xen (4.17, or `$XENPV_XEN`), all in one QEMU boot:
//! `hello` powers off, `selftest` passes its checks under both event
//! channel ABIs and at 32 MiB and 1 GiB, `panic` and a page fault crash the
//! domain with a report, a misspelt and a malformed setting each stop the
//! boot with the line that names them. In the mode `$XENPV_MODE` names (PV
//! by default).

use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_console_line, assert_result, boot, console_pattern_line,
    expect_run, guest, parse_summary, BootReport, GuestMode, GuestResult, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

/// The one boot of this file: every guest below, in sequence.
fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("boot", || {
            let t = Duration::from_secs(60);
            let long = Duration::from_secs(240);
            vec![
                Scenario::single(guest("hello", "hello").timeout(t)),
                Scenario::single(
                    guest("hello-min", "hello").memory(xen_tests::min_memory_mib()).timeout(t),
                ),
                // Issue 18, item 6: a misspelt key and a malformed value
                // each stop the boot with one line naming the setting
                // (early in the list: short, and independent of the long ones).
                Scenario::single(
                    guest("bad-key", "idle").args(&["net.queus=2".to_string()]).timeout(t),
                ),
                Scenario::single(
                    guest("bad-value", "http").args(&["net.queues=abc".to_string()]).timeout(t),
                ),
                Scenario::single(guest("selftest", "selftest").timeout(long)),
                Scenario::single(
                    guest("selftest-2l", "selftest").args(&["evtchn=2l".to_string()]).timeout(long),
                ),
                Scenario::single(guest("selftest-1g", "selftest").memory(1024).timeout(long)),
                Scenario::single(guest("panic", "panic").timeout(t)),
                Scenario::single(
                    guest("fault", "fault").args(&["fault=pf".to_string()]).timeout(t),
                ),
                Scenario::single(
                    guest("fault-stack", "fault").args(&["fault=stack".to_string()]).timeout(t),
                ),
            ]
        })
    })
}

/// The boot stops before any app or device: the domain crashes with the
/// one line that names the setting, what it got and what it accepts.
fn assert_refused(name: &str, line: &str) {
    let run = expect_run(lab(), name);
    assert_result(run, &GuestResult::Crash);
    assert_console_contains(run, line);
    let started: Vec<&String> = run
        .console
        .iter()
        .filter(|l| l.contains("running app=") || l.contains("domain: id"))
        .collect();
    assert!(
        started.is_empty(),
        "{name}: went on after the bad setting: {started:?}\n{}",
        run.describe()
    );
}

#[test]
fn a_misspelt_setting_stops_the_boot() {
    assert_refused(
        "bad-key",
        "bad command line: setting \"net.queus\": unknown; accepts only app=",
    );
}

#[test]
fn a_malformed_setting_stops_the_boot() {
    assert_refused(
        "bad-value",
        "bad command line: setting net.queues=\"abc\": malformed; accepts a whole number from 1 to 8; stopping the boot",
    );
}

#[test]
fn hello_powers_off_with_banner() {
    let run = expect_run(lab(), "hello");
    assert_result(run, &GuestResult::Poweroff);
    // The banner names the release this boot runs (`Xen 4.20.5-pre`).
    assert_console_contains(run, &format!("{}.", xen_tests::xen_release()));
    assert_console_line(run, "running app=hello");
}

/// Every check passed and the summary line is there.
fn assert_selftest_passed(name: &str) -> &'static xen_tests::GuestRun {
    let run = expect_run(lab(), name);
    let fails: Vec<&String> = run.console.iter().filter(|l| l.starts_with("FAIL")).collect();
    for l in &fails {
        eprintln!("{name}: {l}");
    }
    assert_result(run, &GuestResult::Poweroff);
    let panics: Vec<&String> = run.console.iter().filter(|l| l.contains("panic")).collect();
    assert!(panics.is_empty(), "{name} console mentions a panic: {panics:?}\n{}", run.describe());
    let summary = run.console.iter().rev().find_map(|l| parse_summary(l));
    let Some((passed, failed)) = summary else {
        panic!("no `N passed, N failed` line in the {name} console\n{}", run.describe());
    };
    assert!(
        failed == 0 && fails.is_empty(),
        "{name}: {failed} check(s) failed: {fails:?}\n{}",
        run.describe()
    );
    assert!(passed > 0, "{name} ran no checks\n{}", run.describe());
    run
}

#[test]
fn selftest_passes() {
    let run = assert_selftest_passed("selftest");
    assert_console_contains(run, "PASS evtchn.abi: FIFO");
}

#[test]
fn selftest_passes_on_the_two_level_event_abi() {
    let run = assert_selftest_passed("selftest-2l");
    assert_console_contains(run, "PASS evtchn.abi: 2-level");
}

#[test]
fn selftest_passes_with_1_gib() {
    let run = assert_selftest_passed("selftest-1g");
    if xen_tests::guest_mode().is_pvh() {
        assert_console_contains(run, "MiB RAM, nr_pages 262144");
    } else {
        assert_console_contains(run, "PASS start_info.nr_pages: 262144 pages = 1024 MiB");
    }
}

#[test]
fn a_page_fault_is_reported_then_the_domain_crashes() {
    let run = expect_run(lab(), "fault");
    assert_result(run, &GuestResult::Crash);
    assert_console_contains(run, "FATAL: #PF page fault (vector 14)");
    assert_console_contains(
        run,
        "fault address (cr2) 0x0000000000000008: page not present on read",
    );
    assert_console_contains(run, "backtrace (frame pointers):");
}

#[test]
fn a_stack_overflow_crashes_the_domain_with_a_report() {
    let run = expect_run(lab(), "fault-stack");
    assert_result(run, &GuestResult::Crash);
    assert_console_contains(run, "raising StackOverflow on purpose");
    // The lab keeps a crashed domain until dom0 has dumped its vCPUs; the
    // host names where vCPU 0 stopped (build/src/crashsite.rs).
    let site = run
        .xl_output
        .iter()
        .find(|l| l.starts_with("[crash site] vCPU 0: rip "))
        .unwrap_or_else(|| panic!("no crash site for vCPU 0\n{}", run.describe()));
    if xen_tests::guest_mode() == GuestMode::Pv {
        // Xen cannot write the bounce frame into the guard page: it
        // crashes the domain itself, and the guest prints nothing more.
        // The dump is the report: vCPU 0 in the recursion, its stack
        // pointer in the guard page.
        assert!(
            site.contains("platform::x86::recurse")
                && site.contains("(in the boot stack's guard page")
                && site.contains(": a stack overflow)"),
            "{site}\n{}",
            run.describe()
        );
        assert!(
            !run.console.iter().any(|l| l.contains("FATAL")),
            "a PV guest cannot report this itself\n{}",
            run.describe()
        );
        return;
    }
    // PVH reports it itself (below) and then asks Xen to crash it: vCPU 0
    // stopped in that request, on the double fault's own stack.
    assert!(!site.contains("guard page"), "{site}\n{}", run.describe());
    // PVH: the #PF's frame cannot be pushed either; the double fault runs
    // on its own stack (IST 1) and reports. Without it: a triple fault,
    // which Xen turns into a reboot with no report.
    assert_console_contains(run, "FATAL: #DF double fault (vector 8)");
    assert_console_contains(run, "is the stack it was pushing on");
    assert_console_contains(run, "backtrace (frame pointers):");
}

#[test]
fn hello_runs_at_its_documented_minimum_memory() {
    // 4 MiB as PV; 8 MiB as PVH (the image loads at its 4 MiB link address).
    let run = expect_run(lab(), "hello-min");
    assert_result(run, &GuestResult::Poweroff);
    assert_console_contains(
        run,
        &format!("Hello from RustPV: {} MiB", xen_tests::min_memory_mib()),
    );
}

#[test]
fn boot_timeline_is_printed() {
    let run = expect_run(lab(), "hello");
    let line = run
        .console
        .iter()
        .find(|l| l.starts_with("boot timeline: "))
        .unwrap_or_else(|| panic!("no boot timeline\n{}", run.describe()));
    for phase in ["console", "memory", "banner", "events", "grants", "xenstore"] {
        assert!(line.contains(&format!(" {phase} ")), "phase {phase} missing from {line:?}");
    }
    assert_console_contains(run, "footprint: image ");
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
