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

/// `vcpus NAME`: "VCPU:STATE ..." from xl vcpu-list (`-b-` blocked,
/// `r--` running, `--p` down).
const VCPUS_FN: &str = r#"
vcpus() {
    xl vcpu-list "$1" | tail -n +2 | awk '{printf "%s:%s ", $3, $5}'
}
"#;

/// An idle guest with `smp=1` and 3 vCPUs through a checkpoint (`xl save
/// -c`: the secondaries come back with VCPUOP_up), a save and restore and
/// a live migration (new domains: they are initialised anew), each time
/// followed by `xl vcpu-list`; after the restore the secondaries must still
/// obey `xl vcpu-set` (which needs their IPIs and timers working).
const MOBILITY: &str = r#"
run_guest_start msmp /etc/xen-lab/guests/msmp.cfg || exit 1
if wait_console msmp "idle: ready" 1 120; then
    echo "[xl check] vcpus-start $(vcpus msmp)"
    lab_save msmp /tmp/msmp.chk -c
    rm -f /tmp/msmp.chk
    wait_console msmp "secondary vCPUs back (VCPUOP_up)" 1 60
    echo "[xl check] vcpus-checkpoint $(vcpus msmp)"
    lab_save msmp /tmp/msmp.save && lab_restore msmp /tmp/msmp.save; src=$?
    rm -f /tmp/msmp.save
    if [ $src -eq 0 ]; then
        wait_console msmp "secondary vCPUs back (initialised anew)" 1 60
        echo "[xl check] vcpus-restored $(vcpus msmp)"
        xl vcpu-set -i msmp 1 || echo "[xl check] vcpu-set 1 failed"
        wait_console msmp "smp: vCPU 2 offline" 1 60
        echo "[xl check] vcpus-restored-1 $(vcpus msmp)"
        xl vcpu-set -i msmp 3 || echo "[xl check] vcpu-set 3 failed"
        wait_console msmp "smp: vCPU 2 online" 1 60
        echo "[xl check] vcpus-restored-3 $(vcpus msmp)"
        echo "[xl check] caps $(xl info | sed -n 's/^virt_caps *: *//p' | tr ' ' ',')"
        if lab_migrate msmp; then
            wait_console msmp "secondary vCPUs back (initialised anew)" 2 60
            echo "[xl check] vcpus-migrated $(vcpus msmp)"
        fi
    fi
fi
xl shutdown msmp
run_guest_wait msmp 60
"#;

/// `xl vcpu-set` on an idle guest with `smp=1`, 2 of at most 4 vCPUs
/// online at creation: up to 4 (vCPUs 2 and 3 started for the first
/// time), down to 1, back to 3 (vCPUs 1 and 2 brought back with
/// `VCPUOP_up` only). `xl vcpu-list` after each step.
const HOTPLUG: &str = r#"
run_guest_start hot /etc/xen-lab/guests/hot.cfg || exit 1
if wait_console hot "idle: ready" 1 120; then
    echo "[xl check] vcpus-created $(vcpus hot)"
    xl vcpu-set -i hot 4 || echo "[xl check] vcpu-set 4 failed"
    wait_console hot "smp: vCPU 3 online" 1 60
    echo "[xl check] vcpus-4 $(vcpus hot)"
    xl vcpu-set -i hot 1 || echo "[xl check] vcpu-set 1 failed"
    wait_console hot "smp: vCPU 3 offline" 1 60
    echo "[xl check] vcpus-1 $(vcpus hot)"
    xl vcpu-set -i hot 3 || echo "[xl check] vcpu-set 3 failed"
    wait_console hot "smp: vCPU 2 online" 2 60
    echo "[xl check] vcpus-3 $(vcpus hot)"
    xl sysrq hot t
    wait_console hot "  wake-ups: " 1 30
fi
xl shutdown hot
run_guest_wait hot 60
"#;

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("smp", || {
            let long = Duration::from_secs(420);
            let mut v = vec![
                Scenario::single(
                    guest("smp4", "selftest")
                        .vcpus(4)
                        .args(&["selftest.idle_secs=2".to_string()])
                        .timeout(long),
                ),
                // The same on the 2-level event ABI: every vCPU's selector
                // names words of the one shared pending bitmap, and each
                // vCPU must take only the ports bound to it.
                Scenario::single(
                    guest("smp4-2l", "selftest")
                        .vcpus(4)
                        .args(&["selftest.idle_secs=2".to_string(), "evtchn=2l".to_string()])
                        .timeout(long),
                ),
                Scenario::single(
                    guest("hello4", "hello").vcpus(4).timeout(Duration::from_secs(60)),
                ),
                Scenario::script("hotplug", vec![hot()], &format!("{VCPUS_FN}{HOTPLUG}")),
            ];
            // PVH suspend is not implemented yet (docs/migration.md).
            if !xen_tests::guest_mode().is_pvh() {
                v.push(Scenario::script(
                    "mobility",
                    vec![msmp()],
                    &format!("{VCPUS_FN}{MOBILITY}"),
                ));
            }
            v
        })
    })
}

fn hot() -> xen_tests::GuestSpec {
    let mut g = guest("hot", "idle")
        .vcpus(2)
        .args(&["smp=1".to_string()])
        .timeout(Duration::from_secs(300));
    g.extra_config.push("maxvcpus = 4".into());
    g
}

fn msmp() -> xen_tests::GuestSpec {
    guest("msmp", "idle").vcpus(3).args(&["smp=1".to_string()]).timeout(Duration::from_secs(400))
}

fn check_value<'a>(run: &'a GuestRun, key: &str) -> Option<&'a str> {
    let prefix = format!("[xl check] {key} ");
    run.xl_output.iter().rev().find_map(|l| l.strip_prefix(prefix.as_str()))
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
    assert_console_contains(run, "PASS smp.bring_up: 4 vCPUs");
    assert_console_contains(run, "PASS smp.secondary_stacks_have_a_guard_page: 3 secondary stacks");
    for check in CHECKS_ON_EVERY_ABI {
        assert_console_contains(run, check);
    }
}

/// The self-test's SMP checks that run the same on FIFO and 2-level.
const CHECKS_ON_EVERY_ABI: [&str; 7] = [
    "PASS smp.each_vcpu_runs_with_its_own_clock",
    "PASS smp.ipi_exactly_once_every_direction",
    "PASS smp.tlb_shootdown_seen_by_every_vcpu",
    "PASS smp.per_vcpu_timers",
    "PASS smp.lock_holder_preemption",
    "PASS smp.bind_vcpu_moves_an_event_channel",
    "PASS smp.offline_and_back",
];

/// The same self-test forced onto the 2-level event channel ABI: the
/// IPI, timer, lock and bind_vcpu checks count every delivery per vCPU, so
/// a vCPU taking another's port (a shared pending word) fails them.
#[test]
fn selftest_with_4_vcpus_passes_every_smp_check_on_the_two_level_abi() {
    let run = passed_selftest("smp4-2l");
    assert_console_contains(run, "PASS evtchn.abi: 2-level");
    assert_console_contains(run, "PASS smp.bring_up: 4 vCPUs");
    assert_console_contains(run, "2-level ABI: own selector, scan of its own ports");
    for check in CHECKS_ON_EVERY_ABI {
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

/// `xl vcpu-set` 4, 1, 3 on a guest created with 2 of 4 vCPUs: the guest
/// brings vCPUs up (the first time with VCPUOP_initialise, later with
/// VCPUOP_up only) and takes them down, each logged, and xl sees it.
#[test]
fn xl_vcpu_set_takes_vcpus_down_and_brings_them_up() {
    let run = expect_run(lab(), "hot");
    for l in run.xl_output.iter().filter(|l| l.starts_with("[xl check]")) {
        eprintln!("hot: {l}");
    }
    for l in run.console.iter().filter(|l| l.contains("smp:")) {
        eprintln!("hot: {l}");
    }
    assert_result(run, &GuestResult::Poweroff);
    assert_console_contains(run, "smp: 2 of 4 vCPUs online (cpu/N/availability)");
    for line in [
        "smp: vCPU 2 online (xl vcpu-set)",
        "smp: vCPU 3 online (xl vcpu-set)",
        "smp: vCPU 1 offline (xl vcpu-set)",
        "smp: vCPU 2 offline (xl vcpu-set)",
        "smp: vCPU 3 offline (xl vcpu-set)",
    ] {
        assert_console_contains(run, line);
    }
    let ups =
        |n| run.console.iter().filter(|l| l.contains(&format!("smp: vCPU {n} online"))).count();
    assert_eq!((ups(1), ups(2), ups(3)), (1, 2, 1), "online lines\n{}", run.describe());
    // xl's view after each step: VCPU:STATE, a vCPU down shows "--p".
    let running = |key: &str| up_at(run, key);
    assert_eq!(running("vcpus-created"), vec![0, 1], "{}", run.describe());
    assert_eq!(running("vcpus-4"), vec![0, 1, 2, 3], "{}", run.describe());
    assert_eq!(running("vcpus-1"), vec![0], "{}", run.describe());
    assert_eq!(running("vcpus-3"), vec![0, 1, 2], "{}", run.describe());
}

/// Which vCPUs `xl vcpu-list` showed up (blocked or running) at `key`.
fn up_at(run: &GuestRun, key: &str) -> Vec<u32> {
    let v = check_value(run, key).unwrap_or_else(|| panic!("no {key}\n{}", run.describe()));
    v.split_whitespace()
        .filter_map(|w| w.split_once(':'))
        .filter(|(_, st)| st.contains('r') || st.contains('b'))
        .filter_map(|(n, _)| n.parse().ok())
        .collect()
}

/// A 3-vCPU guest through a checkpoint, a save and restore and a live
/// migration: its secondary vCPUs go down before each suspend and come
/// back after (with VCPUOP_up after the checkpoint, initialised anew in
/// the new domains), and after the restore they still obey xl vcpu-set.
#[test]
fn secondary_vcpus_come_back_after_checkpoint_restore_and_migration() {
    if xen_tests::guest_mode().is_pvh() {
        eprintln!("PVH: suspend is not implemented (docs/migration.md); nothing to check");
        return;
    }
    let run = expect_run(lab(), "msmp");
    for l in run.xl_output.iter().filter(|l| l.starts_with("[xl")) {
        eprintln!("msmp: {l}");
    }
    for l in run.console.iter().filter(|l| l.contains("smp:") || l.contains("resume")) {
        eprintln!("msmp: {l}");
    }
    assert_result(run, &GuestResult::Poweroff);
    assert_console_contains(run, "smp: 3 of 3 vCPUs online");
    assert_console_contains(run, "resume: 2 secondary vCPUs back (VCPUOP_up)");
    let anew = run
        .console
        .iter()
        .filter(|l| l.contains("resume: 2 secondary vCPUs back (initialised anew)"))
        .count();
    // Live migration of a PV guest needs log-dirty paging, which Debian's
    // Xen (no shadow paging) lacks: there it fails before the guest is
    // asked anything (tests/tests/mobility.rs), and the guest carries on.
    let shadow = check_value(run, "caps").is_some_and(|c| c.split(',').any(|c| c == "shadow"));
    let migrated = usize::from(shadow);
    if !shadow {
        assert!(
            run.xl_output.iter().any(|l| l.contains("Failed to enable logdirty")),
            "no shadow paging, yet migration did not fail on log-dirty\n{}",
            run.describe()
        );
        eprintln!("no shadow paging in this Xen: the migration with 3 vCPUs is not proven here");
    }
    assert_eq!(anew, 1 + migrated, "restore (and migration) bring 2 back\n{}", run.describe());
    assert_eq!(up_at(run, "vcpus-start"), vec![0, 1, 2]);
    assert_eq!(up_at(run, "vcpus-checkpoint"), vec![0, 1, 2]);
    assert_eq!(up_at(run, "vcpus-restored"), vec![0, 1, 2]);
    assert_eq!(up_at(run, "vcpus-restored-1"), vec![0]);
    assert_eq!(up_at(run, "vcpus-restored-3"), vec![0, 1, 2]);
    if shadow {
        assert_eq!(up_at(run, "vcpus-migrated"), vec![0, 1, 2]);
    }
}
