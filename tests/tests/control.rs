//! The toolstack drives an `app=idle` guest, all in one QEMU boot:
//! `xenstore-ls` shows its keys, `xl mem-set` down and up is honoured,
//! `xl sysrq` gets a dump, a hotplugged device whose backend never comes
//! is reported (not a hang), `xl reboot` brings it back, and `xl shutdown`
//! ends it cleanly within seconds. Then `app=bench` runs in quick mode and
//! its figures are checked for presence and the orderings that must hold.

use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, expect_run, guest, BootReport, GuestResult,
    GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

/// Shell helpers for the script besides the lab's (`wait_console`, in
/// build/src/dom0/lib.sh); checks are reported as `[xl check] ...` lines,
/// collected with the guest's toolstack output.
const HELPERS: &str = r#"
mem_kib() { # NAME: the domain's current memory in KiB, from xl list
    xl list "$1" | sed -n '2p' | awk '{print $3 * 1024}'
}
"#;

/// `app=idle` at its documented minimum memory (README): up, then
/// `xl shutdown`.
const IDLE_MIN: &str = r#"
run_guest_start idle-4m /etc/xen-lab/guests/idle-4m.cfg || exit 1
wait_console idle-4m "idle: ready" 1 60
xl shutdown idle-4m
run_guest_wait idle-4m 60
"#;

const CONTROL: &str = r#"
run_guest_start ctl /etc/xen-lab/guests/ctl.cfg || exit 1
if wait_console ctl "idle: ready" 1 90; then
    d=$(cat /tmp/lab-domid-ctl)
    xenstore-ls /local/domain/$d | sed 's/^/[xl xenstore-ls] /'

    # An idle guest blocks: its CPU time in xl list hardly moves.
    echo "[xl check] cpu-before $(xl list ctl | sed -n '2p' | awk '{print $6}')"
    sleep 5
    echo "[xl check] cpu-after $(xl list ctl | sed -n '2p' | awk '{print $6}')"

    xl mem-set ctl 24m
    wait_console ctl "balloon: target 24576 KiB" 1 60
    echo "[xl check] mem-after-down $(mem_kib ctl)"
    xl mem-set ctl 32m
    wait_console ctl "balloon: target 32768 KiB" 1 60
    echo "[xl check] mem-after-up $(mem_kib ctl)"

    xl sysrq ctl t
    wait_console ctl "sysrq 't'" 1 30
    # Xen's 'q' key dumps every domain and raises VIRQ_DEBUG in each.
    xl debug-keys q
    wait_console ctl "debug VIRQ: uptime" 1 30

    # A frontend whose backend never comes: backend and backend-id in one
    # transaction, then handed to the guest as libxl does (it owns it).
    xenstore-write /local/domain/$d/device/vfake/0/backend /local/domain/0/backend/vfake/$d/0 \
                   /local/domain/$d/device/vfake/0/backend-id 0
    xenstore-chmod -r /local/domain/$d/device/vfake n$d
    wait_console ctl "device/vfake/0: backend" 1 60

    xl reboot ctl
    wait_console ctl "idle: ready" 2 120
    xl domid ctl > /tmp/lab-domid-ctl
    echo "[xl check] rebooted-domid $(cat /tmp/lab-domid-ctl)"

    echo "[xl check] shutdown-at $(lab_uptime)"
    xl shutdown ctl
    # Until libxl has torn the domain down (its xenstore directory goes).
    _d=$(cat /tmp/lab-domid-ctl)
    _tries=600
    while xenstore-exists /local/domain/$_d 2>/dev/null && [ $_tries -gt 0 ]; do
        _tries=$((_tries - 1))
        sleep 0.1
    done
    echo "[xl check] shutdown-done $(lab_uptime)"
    run_guest_wait ctl 60
else
    run_guest_wait ctl 1
fi
"#;

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("control", || {
            let mut ctl = guest("ctl", "idle")
                .args(&["xenbus.timeout_ms=3000".to_string()])
                .timeout(Duration::from_secs(400));
            ctl.on_reboot = "restart".into();
            vec![
                Scenario::script("control", vec![ctl], &format!("{HELPERS}{CONTROL}")),
                Scenario::script(
                    "idle-4m",
                    vec![guest("idle-4m", "idle").memory(4).timeout(Duration::from_secs(120))],
                    IDLE_MIN,
                ),
                Scenario::single({
                    let mut b = guest("bench", "bench")
                        .args(&["bench.quick=1".to_string()])
                        .timeout(Duration::from_secs(180));
                    // Without it Xen may trap and emulate rdtsc (when it
                    // does not trust the emulated CPU's TSC), and every
                    // timer read costs more than what it measures.
                    b.extra_config.push("tsc_mode = \"native\"".to_string());
                    b
                }),
            ]
        })
    })
}

/// The value after `[xl check] KEY ` in the guest's toolstack output.
fn check_value<'a>(run: &'a GuestRun, key: &str) -> Option<&'a str> {
    let prefix = format!("[xl check] {key} ");
    run.xl_output.iter().rev().find_map(|l| l.strip_prefix(prefix.as_str()))
}

fn ctl() -> &'static GuestRun {
    expect_run(lab(), "ctl")
}

#[test]
fn xl_shutdown_ends_the_guest_cleanly_within_seconds() {
    let run = ctl();
    assert_result(run, &GuestResult::Poweroff);
    assert_console_contains(run, "control: Poweroff requested by the toolstack");
    let at: f64 = check_value(run, "shutdown-at")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the script never asked for the shutdown\n{}", run.describe()));
    let done: f64 = check_value(run, "shutdown-done")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no end of shutdown recorded\n{}", run.describe()));
    assert!(done - at < 15.0, "xl shutdown took {:.1} s\n{}", done - at, run.describe());
}

#[test]
fn xl_reboot_brings_the_guest_back() {
    let run = ctl();
    assert_console_contains(run, "control: Reboot requested by the toolstack");
    let readies = run.console.iter().filter(|l| l.contains("idle: ready")).count();
    assert!(readies >= 2, "the guest came up {readies} time(s)\n{}", run.describe());
    let again: u32 = check_value(run, "rebooted-domid")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no domain after the reboot\n{}", run.describe()));
    assert!(again >= 1, "rebooted domain id {again}\n{}", run.describe());
}

#[test]
fn xl_mem_set_down_and_up_is_honoured() {
    let run = ctl();
    assert_console_contains(run, "balloon: target 24576 KiB; 8192 -> 6144 pages");
    assert_console_contains(run, "balloon: target 32768 KiB; 6144 -> 8192 pages");
    let kib = |key| -> u64 {
        check_value(run, key)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in the toolstack output\n{}", run.describe()))
    };
    assert_eq!(kib("mem-after-down"), 24 * 1024, "xl list after mem-set 24m\n{}", run.describe());
    assert_eq!(kib("mem-after-up"), 32 * 1024, "xl list after mem-set 32m\n{}", run.describe());
}

#[test]
fn dom0_sees_the_guests_keys() {
    let run = ctl();
    for key in ["feature-poweroff = \"1\"", "feature-reboot = \"1\""] {
        assert!(
            run.xl_output.iter().any(|l| l.starts_with("[xl xenstore-ls]") && l.contains(key)),
            "xenstore-ls does not show {key}\n{}",
            run.describe()
        );
    }
    assert_console_contains(run, "domain: id ");
}

#[test]
fn an_idle_guest_accrues_almost_no_cpu_time() {
    let run = ctl();
    let secs = |key| -> f64 {
        check_value(run, key)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in the toolstack output\n{}", run.describe()))
    };
    let used = secs("cpu-after") - secs("cpu-before");
    // Five seconds of wall time; xl list rounds to 0.1 s.
    assert!(used <= 0.2, "the idle guest used {used:.1} s of CPU in 5 s\n{}", run.describe());
}

#[test]
fn idle_runs_and_obeys_at_its_documented_minimum_of_4_mib() {
    let run = expect_run(lab(), "idle-4m");
    assert_result(run, &GuestResult::Poweroff);
    assert_console_contains(run, "memory: 1024 pages (4 MiB)");
    assert_console_contains(run, "control: Poweroff requested by the toolstack");
}

#[test]
fn xens_debug_key_raises_the_debug_virq() {
    assert_console_contains(ctl(), "debug VIRQ: uptime");
}

#[test]
fn sysrq_gets_a_debug_dump() {
    let run = ctl();
    assert_console_contains(run, "sysrq 't': uptime");
    assert_console_contains(run, "  events: ");
}

#[test]
fn a_backend_that_never_comes_is_reported_not_waited_for_forever() {
    let run = ctl();
    assert_console_contains(run, "device/vfake/0: backend /local/domain/0/backend/vfake/");
    assert_console_contains(run, "did not answer within 3");
    // And the guest went on serving the toolstack afterwards.
    assert_console_contains(run, "control: Reboot requested by the toolstack");
}

#[test]
fn bench_quick_reports_every_figure_with_sane_orderings() {
    let run = expect_run(lab(), "bench");
    assert_result(run, &GuestResult::Poweroff);
    let figures: Vec<xtask::bench::Figure> =
        run.console.iter().filter_map(|l| xtask::bench::parse_figure(l)).collect();
    let figure = |name: &str| -> [u64; 4] {
        let f = figures
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no BENCH line for {name}\n{}", run.describe()));
        let v = f.cycles;
        assert!(v[0] <= v[1] && v[1] <= v[2] && v[2] <= v[3], "min<=median<=p99<=max: {f:?}");
        v
    };
    // Every figure the harness expects is there and costs something; a
    // plain call minus the timer can honestly come out as 0 cycles.
    for &name in xtask::bench::EXPECTED.iter().filter(|&&n| n != "function_call") {
        assert!(figure(name)[1] > 0, "{name} measured as free\n{}", run.describe());
    }
    // Orderings that must hold whatever the emulation speed, on minimums
    // (noise from the host only ever adds time).
    assert!(figure("mmu_update_512_per_entry")[0] < figure("mmu_update_1")[0]);
    // A multicall is no dearer than the calls it replaces (10% margin):
    // cheaper on Xen 4.17 (0.6x-0.9x under TCG), even on Xen 4.20, whose
    // hypercall round trip costs what its multicall spends per entry (the
    // guest's own check, kernel/src/bench/stats.rs, says the same).
    let (multi, separate) =
        (figure("multicall_32_xen_version_total")[0], figure("separate_32_xen_version_total")[0]);
    assert!(multi * 100 <= separate * 110, "multicall {multi} vs separate {separate} cycles");
    assert!(figure("evtchn_send")[0] < figure("evtchn_send_upcall_handler_roundtrip")[0]);
    assert!(figure("xen_version")[0] < figure("xenstore_read_roundtrip")[0]);
    assert_console_contains(run, "BENCH-DONE failures=0");
}
