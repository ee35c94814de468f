//! Hotplug on real Xen (issue 22), one QEMU boot:
//! - `app=http` at 192.0.2.5 with a vif, under a running ping (`nettool
//!   ping`, every 20 ms, from dom0): `xl network-detach` / `xl
//!   network-attach` cycles back to back, first with no pause, then with
//!   2 s between the detach and the attach. Every cycle must answer
//!   again; the time from the attach command to the first reply is each
//!   cycle's reconnect time (median and max printed). The guest logs
//!   every attach and detach with its own reconnect time, and the grants
//!   in use in its table after each: after every detach exactly what was
//!   in use before the first attach (no grant left behind).
//!   One more cycle makes issue 22's miss certain: netback probes the new
//!   device (InitWait) only 2 s after the attach created it, long after
//!   the last event under the guest's `device/`.
//! - `app=blk blk.mode=hotplug` with one disk: `xl block-detach` / `xl
//!   block-attach` cycles, the same two ways; after each attach the guest
//!   checks that the data its previous attach wrote is there, writes the
//!   next pattern and reads it back.
//!
//! The cycle counts keep the file within its time budget under TCG
//! (see [`vif_cycles`]); `XENPV_HOTPLUG_VIF_CYCLES` and
//! `XENPV_HOTPLUG_VBD_CYCLES` set other counts (per pause mode).

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, expect_run, guest, shell, xen_release,
    BootReport, GuestResult, GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

/// Pauses between detach and attach, in seconds: none, then 2 s.
const PAUSES: [u32; 2] = [0, 2];
const VIF_MAC: &str = "00:16:3e:0c:00:05";
const VIF_IP: &str = "192.0.2.5";
/// Bytes of the disk each attach checks and rewrites.
const SPAN: u64 = 256 * 1024;

/// vif detach/attach cycles per pause mode. The issue asks for 50; under
/// TCG on a 2-core machine shared with other boots a cycle takes 5-12 s
/// (xl's detach and attach with their hotplug scripts, the guest's
/// handshake, the 2 s pause in the second mode), so 50 of each would keep
/// this file busy for 10-20 minutes per release. 8 of each keeps it near
/// 4 minutes; `XENPV_HOTPLUG_VIF_CYCLES=25` (and `..._VBD_CYCLES=10`) is
/// the long run (README, "Hotplug").
fn vif_cycles() -> u32 {
    env_count("XENPV_HOTPLUG_VIF_CYCLES", 8)
}

/// vbd detach/attach cycles per pause mode (the issue asks for 20 in all).
fn vbd_cycles() -> u32 {
    env_count("XENPV_HOTPLUG_VBD_CYCLES", 3)
}

fn env_count(var: &str, default: u32) -> u32 {
    match std::env::var(var) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{var}={v:?} is not a count")),
        Err(_) => default,
    }
}

const BRIDGE: &str = include_str!("common/bridge.sh");
const PING: &str = include_str!("common/ping.sh");

fn vif_script(cycles: u32) -> String {
    let pauses = PAUSES.map(|p| p.to_string()).join(" ");
    shell(
        &[
            ("VIF_IP", VIF_IP),
            ("VIF_MAC", VIF_MAC),
            ("PAUSES", &pauses),
            ("CYCLES", &cycles.to_string()),
        ],
        &[BRIDGE, PING, include_str!("hotplug/vif.sh")],
    )
}

fn vbd_script(cycles: u32) -> String {
    let pauses = PAUSES.map(|p| p.to_string()).join(" ");
    shell(
        &[("DISK", DISK), ("PAUSES", &pauses), ("CYCLES", &cycles.to_string())],
        &[PING, include_str!("hotplug/vbd.sh")],
    )
}

const DISK: &str =
    "format=raw, vdev=xvda, access=rw, backendtype=phy, script=/etc/xen/scripts/block, target=/dev/loop0";

fn nettool() -> std::path::PathBuf {
    xtask::nettool::build(&xtask::cache::cache_dir()).expect("building nettool")
}

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("hotplug", || {
            let (nv, nb) = (vif_cycles(), vbd_cycles());
            let per_cycle = Duration::from_secs(40);
            let mut vif = guest("hotvif", "http")
                .args(&[format!("ip={VIF_IP}/24")])
                .memory(32)
                .timeout(Duration::from_secs(120) + per_cycle * 2 * nv);
            vif.extra_config = vec![format!("vif = ['mac={VIF_MAC},bridge=xenbr0']")];
            let mut vbd = guest("hotvbd", "blk")
                .args(&[
                    "blk.mode=hotplug".into(),
                    "blk.seed=100".into(),
                    "blk.soak_s=3000".into(),
                    format!("blk.hotplug_kib={}", SPAN / 1024),
                ])
                .memory(64)
                .timeout(Duration::from_secs(180) + per_cycle * 2 * nb);
            vbd.extra_config = vec![format!("disk = ['{DISK}']")];
            vec![
                Scenario::script("hotvif", vec![vif], &vif_script(nv))
                    .with_file(xtask::nettool::DEST, nettool()),
                Scenario::script("hotvbd", vec![vbd], &vbd_script(nb)),
            ]
        })
    })
}

/// The `[xl cycle] KIND ...` lines: each one's `key=value` pairs.
fn cycles<'a>(run: &'a GuestRun, kind: &str) -> Vec<Vec<(&'a str, &'a str)>> {
    let prefix = format!("[xl cycle] {kind} ");
    run.xl_output
        .iter()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|l| l.split_whitespace().filter_map(|w| w.split_once('=')).collect())
        .collect()
}

fn get<'a>(kv: &[(&'a str, &'a str)], key: &str) -> &'a str {
    kv.iter().find(|(k, _)| *k == key).map_or("", |(_, v)| v)
}

/// Median and max.
fn spread(mut v: Vec<u64>) -> (u64, u64) {
    v.sort_unstable();
    if v.is_empty() {
        return (0, 0);
    }
    (v[v.len() / 2], v[v.len() - 1])
}

fn report(line: String) {
    // Straight to stderr: libtest does not capture it, so CI logs show it.
    let _ = writeln!(std::io::stderr(), "[hotplug] {}: {line}", xen_release());
}

/// Checks every cycle of `kind` for each pause and reports the spread of
/// `time_key`.
fn check_cycles(run: &GuestRun, kind: &str, per_pause: u32, time_key: &str) {
    let all = cycles(run, kind);
    assert_eq!(
        all.len() as u32,
        per_pause * PAUSES.len() as u32,
        "{kind} cycles run\n{}",
        run.describe()
    );
    for pause in PAUSES {
        let these: Vec<_> = all.iter().filter(|c| get(c, "pause") == pause.to_string()).collect();
        assert_eq!(these.len() as u32, per_pause, "{kind} cycles with pause {pause}");
        let mut times = Vec::new();
        for c in &these {
            let n = get(c, "n");
            assert_eq!(get(c, "detach_rc"), "0", "{kind} cycle {n}: {c:?}\n{}", run.describe());
            assert_eq!(get(c, "attach_rc"), "0", "{kind} cycle {n}: {c:?}\n{}", run.describe());
            let t: u64 = get(c, time_key).parse().unwrap_or_else(|_| {
                panic!("{kind} cycle {n} never came back: {c:?}\n{}", run.describe())
            });
            times.push(t);
        }
        let (med, max) = spread(times);
        let ms = |key: &str| {
            spread(these.iter().filter_map(|c| get(c, key).parse().ok()).collect::<Vec<u64>>())
        };
        let (dmed, dmax) = ms("detach_ms");
        let (amed, amax) = ms("attach_ms");
        report(format!(
            "{kind} x{per_pause}, pause {pause} s: {time_key} median {med} max {max} (xl detach median {dmed} max {dmax}, xl attach median {amed} max {amax})"
        ));
    }
}

/// The guest's own `hotplug: DEV: attached #N in X ms[, Y ms after its
/// last detach]` lines: (N, X, Y).
fn guest_attaches(run: &GuestRun, dev: &str) -> Vec<(u32, u64, Option<u64>)> {
    let prefix = format!("hotplug: {dev}: attached #");
    run.console
        .iter()
        .filter_map(|l| l.split(prefix.as_str()).nth(1))
        .map(|rest| {
            let n = |s: &str| -> u64 {
                s.split(|c: char| !c.is_ascii_digit())
                    .find(|w| !w.is_empty())
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            let number = n(rest) as u32;
            let took = n(rest.split(" in ").nth(1).unwrap());
            let after =
                rest.split(", ").nth(1).filter(|s| s.contains("after its last detach")).map(n);
            (number, took, after)
        })
        .collect()
}

/// Checks the guest logged every attach and detach of `dev`, numbered, and
/// reports its own reconnect times.
fn check_guest_log(run: &GuestRun, dev: &str, cycles: u32) {
    let attaches = guest_attaches(run, dev);
    let numbers: Vec<u32> = attaches.iter().map(|a| a.0).collect();
    assert_eq!(numbers, (1..=cycles + 1).collect::<Vec<_>>(), "{dev} attaches\n{}", run.describe());
    for k in 1..=cycles {
        assert_console_contains(run, &format!("hotplug: {dev}: detached #{k} (backend "));
    }
    // Every re-attach says how long after its detach it came.
    assert!(attaches[1..].iter().all(|a| a.2.is_some()), "{attaches:?}");
    let (tmed, tmax) = spread(attaches.iter().map(|a| a.1).collect());
    let (amed, amax) = spread(attaches[1..].iter().filter_map(|a| a.2).collect());
    let timer =
        run.console.iter().filter(|l| l.contains("found by the re-examination timer")).count();
    let stuck =
        run.console.iter().filter(|l| l.contains(&format!("hotplug: {dev}: still "))).count();
    report(format!(
        "{dev} as the guest saw it: device seen to connected median {tmed} ms max {tmax} ms; detach to re-attach median {amed} ms max {amax} ms; {timer} change(s) found by the re-examination timer, {stuck} stuck report(s)"
    ));
}

/// The `... grant table: N in use, Q quarantined` lines after the guest's
/// attach and detach lines of `dev`: all after-detach counts equal the
/// count before the first attach (nothing quarantined), all after-attach
/// counts are above it and, with `same_each_attach`, equal each other
/// (a vif's grants are its rings and posted buffers; a disk's persistent
/// grants depend on which bounce pages its I/O happened to use).
fn check_grants(run: &GuestRun, dev: &str, before_marker: &str, same_each_attach: bool) {
    let parse = |l: &str| -> (u64, u64) {
        let rest = l.split("grant table: ").nth(1).unwrap();
        let v: Vec<u64> =
            rest.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
        (v[0], v[1])
    };
    let base = run
        .console
        .iter()
        .find(|l| l.contains(before_marker))
        .map(|l| parse(l))
        .unwrap_or_else(|| panic!("no {before_marker:?} line\n{}", run.describe()));
    let (mut after_attach, mut after_detach) = (Vec::new(), Vec::new());
    let mut last: Option<bool> = None;
    for l in &run.console {
        if l.contains(&format!("hotplug: {dev}: attached #")) {
            last = Some(true);
        } else if l.contains(&format!("hotplug: {dev}: detached #")) {
            last = Some(false);
        } else if l.contains("grant table: ") && !l.contains(before_marker) {
            match last.take() {
                Some(true) => after_attach.push(parse(l)),
                Some(false) => after_detach.push(parse(l)),
                None => {}
            }
        }
    }
    assert!(!after_attach.is_empty() && !after_detach.is_empty(), "{}", run.describe());
    assert_eq!(base.1, 0, "nothing quarantined before the first attach");
    for g in &after_detach {
        assert_eq!(
            *g,
            base,
            "after a detach, every grant of the device is gone\n{}",
            run.describe()
        );
    }
    assert!(
        after_attach.iter().all(|g| g.0 > base.0 && (!same_each_attach || *g == after_attach[0])),
        "grants held with the device: {after_attach:?}\n{}",
        run.describe()
    );
    report(format!(
        "{dev}: grants in use {} before the first attach and after each of {} detaches; with the device {:?} ({} attaches)",
        base.0,
        after_detach.len(),
        spread(after_attach.iter().map(|g| g.0).collect()),
        after_attach.len()
    ));
}

fn hotvif() -> &'static GuestRun {
    expect_run(lab(), "hotvif")
}

fn hotvbd() -> &'static GuestRun {
    expect_run(lab(), "hotvbd")
}

#[test]
fn every_vif_cycle_answers_the_running_ping_again() {
    let run = hotvif();
    assert!(
        run.xl_output.iter().any(|l| l == "[xl check] first-answer-rc 0"),
        "{}",
        run.describe()
    );
    check_cycles(run, "vif", vif_cycles(), "answer_ms");
    let summary = run
        .xl_output
        .iter()
        .find_map(|l| l.strip_prefix("[xl ping] NETTOOL ping sent="))
        .unwrap_or_else(|| panic!("no ping summary\n{}", run.describe()));
    report(format!("running ping: sent={summary}"));
    assert_result(run, &GuestResult::Poweroff);
}

/// Issue 22's miss, made certain: the backend reaches InitWait 2 s after
/// the device appeared, with no event under `device/` left to come. The
/// guest must see it through the backend's own state (its watch, or the
/// re-examination timer) and connect.
#[test]
fn a_backend_probed_after_the_last_device_event_still_connects() {
    let run = hotvif();
    let before = run
        .xl_output
        .iter()
        .find_map(|l| l.strip_prefix("[xl check] delayed-probe-state-before "))
        .unwrap_or_else(|| panic!("no delayed-probe cycle\n{}", run.describe()));
    // Still Initialising 2 s into the attach: netback had not probed it.
    assert_eq!(before, "1", "{}", run.describe());
    let c = cycles(run, "delayed-probe");
    assert_eq!(c.len(), 1, "{}", run.describe());
    for key in ["detach_rc", "probe_rc", "attach_rc"] {
        assert_eq!(get(&c[0], key), "0", "{key}: {:?}\n{}", c[0], run.describe());
    }
    let ms: u64 = get(&c[0], "answer_ms")
        .parse()
        .unwrap_or_else(|_| panic!("never came back: {:?}\n{}", c[0], run.describe()));
    report(format!("vif with netback probing 2 s late: answered {ms} ms after the attach began"));
}

#[test]
fn the_guest_logs_every_vif_attach_and_detach_with_its_reconnect_time() {
    let run = hotvif();
    // The cycles and the delayed-probe one.
    check_guest_log(run, "vif/0", 2 * vif_cycles() + 1);
    // The toolstack's detach is answered by the close handshake.
    assert_console_contains(run, "hotplug: vif/0: detached #1 (backend Closing (5))");
    // The interface follows each new vif.
    let connected = run.console.iter().filter(|l| l.contains("connected: mac")).count();
    assert_eq!(connected as u32, 2 * vif_cycles() + 2, "{}", run.describe());
    assert_console_contains(run, "hotplug: vif/0: detached #");
}

#[test]
fn no_vif_grant_is_left_behind() {
    check_grants(hotvif(), "vif/0", "before any vif", true);
}

#[test]
fn every_vbd_cycle_finds_the_data_of_the_previous_attach() {
    let run = hotvbd();
    check_cycles(run, "vbd", vbd_cycles(), "verified_ms");
    let attaches = 2 * vbd_cycles() + 1;
    for k in 2..=attaches {
        let seed = 100 + u64::from(k);
        assert_console_contains(
            run,
            &format!(
                "blk: hotplug: xvda: attach #{k}: previous attach's pattern (seed {}) intact over {SPAN} bytes; wrote seed {seed} and read it back",
                seed - 1
            ),
        );
    }
    assert!(!run.console.iter().any(|l| l.contains("FAILED")), "{}", run.describe());
    assert_console_contains(
        run,
        &format!("blk: hotplug: done, {attaches} attach(es) verified, 0 failed"),
    );
    check_guest_log(run, "vbd/51712", 2 * vbd_cycles());
    assert_result(run, &GuestResult::Poweroff);
}

#[test]
fn no_vbd_grant_is_left_behind() {
    check_grants(hotvbd(), "vbd/51712", "before any disk", false);
}
