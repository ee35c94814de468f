//! The harness's answer to a PVH triple fault (the emulator's glitch,
//! docs/pvh.md), tested by making one happen: a PVH guest runs
//! `app=fault fault=triple` (an empty IDT, then `ud2`: the CPU shuts
//! down and Xen says `dNvM Triple fault`), then a second scenario runs a
//! PV guest that spins for 20 s. With one retry allowed,
//! [`xen_tests::boot_with_retries`] must:
//! - stop the first boot at the strike (QEMU ended 3 s after Xen's line,
//!   with its register dump, in a serial log of its own that the retry
//!   does not replace; the spinning guest not finished), report it as
//!   such, and boot again;
//! - run the second, last allowed boot to its end although the strike
//!   comes again: the spinning guest finishes there, and the strike is in
//!   that report for the tests to judge.
//!
//! Every guest here sets its own mode: the file runs once, in the PV step
//! (`MODE_FIXED` in `build/src/ci.rs`).

use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot_with_retries, expect_run, guest, triple_faults,
    BootReport, GuestMode, GuestResult, Scenario,
};

/// How long the second scenario's guest spins: far longer than the 3 s a
/// struck boot goes on for.
const SPIN_S: u64 = 20;

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario::single(
            guest("tf", "fault")
                .args(&["fault=triple".to_string()])
                .mode(GuestMode::Pvh)
                .timeout(Duration::from_secs(120)),
        ),
        Scenario::single(
            guest("after", "spin")
                .args(&[format!("spin.secs={SPIN_S}")])
                .timeout(Duration::from_secs(120)),
        ),
    ]
}

#[test]
fn a_struck_boot_stops_at_the_strike_and_the_last_allowed_boot_runs_to_its_end() {
    let boots = boot_with_retries("strike", 1, scenarios);
    let all: Vec<String> = boots.iter().map(BootReport::failure_summary).collect();
    assert_eq!(boots.len(), 2, "one struck boot and its retry: {all:#?}");
    let (first, last) = (&boots[0], &boots[1]);

    // The first boot: stopped at the strike, the rest never run.
    let hits = triple_faults(first);
    assert!(
        hits.len() == 1 && hits[0].starts_with("tf: d") && hits[0].contains("Triple fault"),
        "{hits:?}\n{}",
        first.failure_summary()
    );
    let failure = first.failure.as_deref().unwrap_or("");
    assert!(
        failure.starts_with("boot stopped") && failure.contains("after Xen's triple fault"),
        "{}",
        first.failure_summary()
    );
    let (at, line) = first.stopped_at_triple_fault.clone().expect("stopped at the strike");
    assert_eq!(format!("tf: {line}"), hits[0]);
    assert!(first.all_done_at.is_none(), "{}", first.failure_summary());
    let after_finished = first.run("after").is_ok_and(|r| r.end_at.is_some());
    assert!(!after_finished, "the {SPIN_S} s guest finished in a boot stopped at the strike");
    // QEMU ended 3 s after Xen's line (and the pump's slack), not after
    // the spinning guest: stopped, not run out.
    assert!(
        first.qemu_time < at + Duration::from_secs(SPIN_S / 2),
        "QEMU ran {:?}, the strike came at {at:?}",
        first.qemu_time
    );
    // Xen's dump of the vCPU follows its line, in the struck boot's own log.
    let log = first.serial_log.as_ref().expect("a serial log");
    assert!(log.to_string_lossy().contains(".struck-"), "{}", log.display());
    let serial = std::fs::read_to_string(log).expect("the struck boot's serial log");
    let from = serial.find("Triple fault").expect("Xen's line in the serial log");
    assert!(serial[from..].contains("RIP:"), "no register dump after Xen's line");
    assert_ne!(Some(log), last.serial_log.as_ref(), "the retry's log replaced the struck one");

    // The last boot: the strike again, and the boot ran to its end.
    assert_eq!(triple_faults(last).len(), 1, "{}", last.failure_summary());
    assert!(last.failure.is_none(), "{}", last.failure_summary());
    assert!(last.all_done_at.is_some(), "{}", last.failure_summary());
    // Xen's shutdown action 1 is a reboot, which the lab's guests take
    // as their end (`on_reboot = "destroy"`).
    let tf = expect_run(last, "tf");
    assert_console_contains(tf, "raising TripleFault on purpose");
    assert_result(tf, &GuestResult::Reboot);
    let after = expect_run(last, "after");
    assert_result(after, &GuestResult::Poweroff);
    assert!(last.stopped_at_triple_fault.is_none(), "the last allowed boot is not stopped");
}
