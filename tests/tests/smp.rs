//! Several vCPUs (issue 21), in one QEMU boot (Xen with 2 physical CPUs:
//! the lab runs QEMU with `-smp 2`): the self-test with `vcpus = 4` brings
//! up every vCPU and passes every check, the SMP ones included (IPIs
//! exactly once in every direction, a TLB shootdown seen by every vCPU,
//! per-vCPU timers, the spin-then-poll lock, a vCPU taken down and back);
//! the same with one vCPU skips them; and an app that does not care about
//! SMP runs on vCPU 0 with the others never started. In the mode
//! `$XENPV_MODE` names (PV by default).

use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, expect_run, guest, parse_summary, BootReport,
    GuestResult, GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("smp", || {
            let long = Duration::from_secs(420);
            vec![
                Scenario::single(
                    guest("smp4", "selftest")
                        .vcpus(4)
                        .args(&["selftest.idle_secs=2".to_string()])
                        .timeout(long),
                ),
                Scenario::single(
                    guest("hello4", "hello").vcpus(4).timeout(Duration::from_secs(60)),
                ),
            ]
        })
    })
}

fn passed_selftest(name: &str) -> &'static GuestRun {
    let run = expect_run(lab(), name);
    let fails: Vec<&String> = run.console.iter().filter(|l| l.starts_with("FAIL")).collect();
    for l in &fails {
        eprintln!("{name}: {l}");
    }
    let smp: Vec<&String> = run.console.iter().filter(|l| l.contains(" smp.")).collect();
    for l in &smp {
        eprintln!("{name}: {l}");
    }
    assert_result(run, &GuestResult::Poweroff);
    let summary = run.console.iter().rev().find_map(|l| parse_summary(l));
    let Some((passed, failed)) = summary else {
        panic!("no `N passed, N failed` line in the {name} console\n{}", run.describe());
    };
    assert!(
        failed == 0 && fails.is_empty(),
        "{name}: {failed} failed: {fails:?}\n{}",
        run.describe()
    );
    assert!(passed > 0, "{name} ran no checks\n{}", run.describe());
    run
}

#[test]
fn selftest_with_4_vcpus_passes_every_smp_check() {
    let run = passed_selftest("smp4");
    for check in [
        "PASS smp.bring_up: 4 vCPUs",
        "PASS smp.each_vcpu_runs_with_its_own_clock",
        "PASS smp.ipi_exactly_once_every_direction",
        "PASS smp.tlb_shootdown_seen_by_every_vcpu",
        "PASS smp.per_vcpu_timers",
        "PASS smp.lock_holder_preemption",
        "PASS smp.bind_vcpu_moves_an_event_channel",
        "PASS smp.offline_and_back",
    ] {
        assert_console_contains(run, check);
    }
}

/// An app that never starts SMP runs as it always did: the other vCPUs
/// stay down (never initialised), nothing about them in its console.
#[test]
fn an_app_that_does_not_care_runs_on_vcpu_0() {
    let run = expect_run(lab(), "hello4");
    assert_result(run, &GuestResult::Poweroff);
    let smp: Vec<&String> = run.console.iter().filter(|l| l.contains("smp")).collect();
    assert!(smp.is_empty(), "hello with 4 vCPUs mentions smp: {smp:?}\n{}", run.describe());
}
