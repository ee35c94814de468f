//! The TCP/IP service on two vCPUs (issue 21), one QEMU boot (Xen with 2
//! physical CPUs, dom0 on the bridge `xenbr0`, the clients `httptool`):
//! `app=http` with `vcpus = 2` runs one shard per netfront queue and
//! vCPU (docs/smp.md), and
//! - under load from dom0 (3,000 requests, one connection each, then
//!   3,000 on 32 keep-alive connections) every request is answered and
//!   each vCPU's time in `xl vcpu-list` grows by a real amount, and shard
//!   1 (on vCPU 1) served a real share of the packets;
//! - `xl vcpu-set` 2 -> 1 -> 2 under a load that runs through both: no
//!   request fails, shard 1 leaves vCPU 1 for vCPU 0 and comes back;
//! - `shttp` (in `$XENPV_MODE`): `xl save` + `xl restore`; `mhttp`
//!   (always PVH, the mode in which this Xen can live-migrate:
//!   docs/migration.md): `xl migrate`; after each the secondary vCPU and
//!   its shard are back and a load is served in full.
//!
//! Every condition is made to happen, then asserted: each load's requests
//! are new connections from fresh ports, so both queues carry flows (the
//! chance that 3,000 flows all hash to one queue is 2^-3000).

use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, check_value, expect_run, guest, shell,
    BootReport, GuestMode, GuestResult, GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

/// Notifications to xenstored `lhttp` does not send once its second vCPU
/// runs: each cost a request its whole 10 s wait (and failed it) before
/// the ring transport looked again; now about a second each, 6 s for the
/// one request they hit, under its 10 s.
const LOSE: u32 = 6;

const BRIDGE: &str = include_str!("common/bridge.sh");
const GUEST: &str = include_str!("common/guest.sh");
const HELPERS: &str = include_str!("http/helpers.sh");
const SHTTP: &str = include_str!("smp_net/shttp.sh");
const LOST: &str = include_str!("smp_net/lost.sh");

fn httptool() -> std::path::PathBuf {
    xtask::httptool::build(&xtask::cache::cache_dir()).expect("building httptool")
}

fn http_guest(name: &str, ip: &str, mac: &str) -> xen_tests::GuestSpec {
    let mut g = guest(name, "http")
        .vcpus(2)
        .args(&[format!("ip={ip}/24")])
        .memory(64)
        .timeout(Duration::from_secs(1800));
    g.extra_config = vec![format!("vif = ['mac={mac},bridge=xenbr0']")];
    g
}

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("smp-net", || {
            let tool = httptool();
            let shttp = http_guest("shttp", "192.0.2.20", "00:16:3e:0c:00:20");
            let mhttp = http_guest("mhttp", "192.0.2.21", "00:16:3e:0c:00:21").mode(GuestMode::Pvh);
            let mut lost = http_guest("lhttp", "192.0.2.22", "00:16:3e:0c:00:22")
                .timeout(Duration::from_secs(600));
            lost.cmdline.push_str(&format!(" xenstore.lose_notify={LOSE}"));
            let script = |vars: &[(&str, &str)]| shell(vars, &[BRIDGE, GUEST, HELPERS, SHTTP]);
            vec![
                Scenario::script(
                    "shttp",
                    vec![shttp],
                    &script(&[("NAME", "shttp"), ("IP", "192.0.2.20"), ("MOBILE", "1")]),
                )
                .with_file(xtask::httptool::DEST, &tool),
                Scenario::script(
                    "mhttp",
                    vec![mhttp],
                    &script(&[("NAME", "mhttp"), ("IP", "192.0.2.21"), ("MIGRATE", "1")]),
                )
                .with_file(xtask::httptool::DEST, &tool),
                Scenario::script(
                    "lhttp",
                    vec![lost],
                    &shell(
                        &[("NAME", "lhttp"), ("IP", "192.0.2.22")],
                        &[BRIDGE, GUEST, HELPERS, LOST],
                    ),
                )
                .with_file(xtask::httptool::DEST, &tool),
            ]
        })
    })
}

/// The `key=value` words of an `HTTPTOOL` line checked as `key`.
fn tool(run: &GuestRun, key: &str) -> Vec<(String, f64)> {
    let line = check_value(run, key).unwrap_or_else(|| panic!("no {key}\n{}", run.describe()));
    let (_, kv) = xtask::httptool::parse_line(line)
        .unwrap_or_else(|| panic!("`{key}`: not an HTTPTOOL line: {line}"));
    kv.into_iter().filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?))).collect()
}

fn get(kv: &[(String, f64)], key: &str) -> f64 {
    kv.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {key} in {kv:?}"))
}

/// Every request of load `key` answered: `ok` = `requests`, none failed.
fn all_served(run: &GuestRun, key: &str, requests: f64) {
    let kv = tool(run, key);
    assert_eq!(get(&kv, "failed"), 0.0, "{key}: {kv:?}\n{}", run.describe());
    assert_eq!(get(&kv, "ok"), requests, "{key}: {kv:?}\n{}", run.describe());
}

/// `xl vcpu-list` at `key`: (vCPU, state, seconds).
fn vtimes(run: &GuestRun, key: &str) -> Vec<(u32, String, f64)> {
    let v = check_value(run, key).unwrap_or_else(|| panic!("no {key}\n{}", run.describe()));
    v.split_whitespace()
        .filter_map(|w| {
            let mut p = w.split(':');
            Some((p.next()?.parse().ok()?, p.next()?.to_string(), p.next()?.parse().ok()?))
        })
        .collect()
}

/// Each vCPU's time growth between two `xl vcpu-list`s.
fn growth(run: &GuestRun, from: &str, to: &str) -> Vec<f64> {
    let (a, b) = (vtimes(run, from), vtimes(run, to));
    assert_eq!(a.len(), 2, "{from}: {a:?}");
    assert_eq!(b.len(), 2, "{to}: {b:?}");
    a.iter().zip(&b).map(|(x, y)| y.2 - x.2).collect()
}

/// The up vCPUs at `key` (running `r--`, blocked `-b-` or waiting for a
/// CPU `---`; a down one shows `--p`).
fn up(run: &GuestRun, key: &str) -> Vec<u32> {
    vtimes(run, key).into_iter().filter(|(_, st, _)| !st.contains('p')).map(|(n, _, _)| n).collect()
}

/// The last report of shard 1: (rx, tx) packets.
fn shard1_packets(run: &GuestRun) -> (u64, u64) {
    let line = run
        .console
        .iter()
        .rev()
        .find(|l| l.contains("net: shard 1 (queue 1) on vCPU"))
        .unwrap_or_else(|| panic!("no report of shard 1\n{}", run.describe()));
    let word = |w: &str| -> u64 {
        let rest = &line[line.find(&format!(" {w} ")).expect(w) + w.len() + 2..];
        rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    (word("rx"), word("tx"))
}

fn print(run: &GuestRun, name: &str) {
    for l in run.xl_output.iter().filter(|l| l.starts_with("[xl")) {
        eprintln!("{name}: {l}");
    }
    for l in run.console.iter().filter(|l| {
        l.contains("net: shard") || l.contains("smp:") || l.contains("resume") || l.contains("rss")
    }) {
        eprintln!("{name}: {l}");
    }
}

/// Both vCPUs work under load, and every request is answered.
fn both_vcpus_serve(name: &str) {
    let run = expect_run(lab(), name);
    print(run, name);
    assert_console_contains(run, "smp: 2 of 2 vCPUs online");
    assert_console_contains(run, "net: 2 shards, one per queue");
    all_served(run, "load1", 3000.0);
    all_served(run, "load2", 3000.0);
    let g = growth(run, "vtime-0", "vtime-2");
    eprintln!("{name}: vCPU time growth over the loads: {g:?} s");
    // A real share each: at least 0.5 s, and a fifth of the other's.
    for (n, &t) in g.iter().enumerate() {
        let other = g[1 - n];
        assert!(
            t >= 0.5 && t >= other / 5.0,
            "vCPU {n} grew {t} s under load (the other {other} s)\n{}",
            run.describe()
        );
    }
    let (rx, tx) = shard1_packets(run);
    assert!(rx >= 3000 && tx >= 3000, "shard 1: rx {rx} tx {tx}\n{}", run.describe());
}

#[test]
fn http_on_2_vcpus_uses_both_and_answers_every_request() {
    both_vcpus_serve("shttp");
}

#[test]
fn pvh_http_on_2_vcpus_uses_both_and_answers_every_request() {
    both_vcpus_serve("mhttp");
}

/// `xl vcpu-set` 2 -> 1 -> 2 under traffic: no request lost; shard 1
/// moves to vCPU 0 and back.
fn vcpu_set_under_traffic(name: &str) {
    let run = expect_run(lab(), name);
    print(run, name);
    assert_eq!(check_value(run, "hot-running-after"), Some("1"), "{}", run.describe());
    let loads: usize = check_value(run, "hot-loads").and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(loads >= 2, "{loads} loads through the vcpu-sets\n{}", run.describe());
    for i in 1..=loads {
        all_served(run, &format!("hot-{i}"), 400.0);
    }
    assert_console_contains(run, "smp: vCPU 1 offline (xl vcpu-set)");
    assert_console_contains(run, "smp: vCPU 1 online (xl vcpu-set)");
    assert_console_contains(run, "net: shard 1 leaves vCPU 1");
    assert_eq!(up(run, "vcpus-1"), vec![0], "{}", run.describe());
    assert_eq!(up(run, "vcpus-2"), vec![0, 1], "{}", run.describe());
    let serves = run.console.iter().filter(|l| l.contains("net: shard 1 serves on vCPU 1")).count();
    assert!(serves >= 2, "shard 1 came back to vCPU 1 ({serves} times)\n{}", run.describe());
    // vCPU 0 served shard 1 while vCPU 1 was down.
    let parked = run
        .console
        .iter()
        .filter_map(|l| l.split("passes parked on vCPU 0 ").nth(1))
        .filter_map(|r| r.split(',').next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    assert!(parked > 0, "vCPU 0 never served shard 1\n{}", run.describe());
}

#[test]
fn xl_vcpu_set_2_1_2_under_traffic_loses_no_request() {
    vcpu_set_under_traffic("shttp");
}

#[test]
fn pvh_xl_vcpu_set_2_1_2_under_traffic_loses_no_request() {
    vcpu_set_under_traffic("mhttp");
}

/// `xl mem-set` 48 MiB and back with both vCPUs serving: the balloon
/// moves, every request of the loads after each is answered, and (PV) the
/// kernel's unmaps and remaps were flushed on every vCPU (`UVMF_ALL`,
/// `MMUEXT_TLB_FLUSH_ALL`: docs/smp.md), which the balloon line counts.
fn balloon_on_two_vcpus(name: &str, pv: bool) {
    let run = expect_run(lab(), name);
    print(run, name);
    all_served(run, "balloon-load", 400.0);
    all_served(run, "balloon-back", 400.0);
    let line = |kib: &str| {
        run.console
            .iter()
            .find(|l| l.contains(&format!("balloon: target {kib} KiB;")))
            .unwrap_or_else(|| panic!("no balloon line for {kib} KiB\n{}", run.describe()))
    };
    for kib in ["49152", "65536"] {
        let l = line(kib);
        let wide = l
            .split("page-table flushes on every vCPU so far: ")
            .nth(1)
            .and_then(|v| v.trim().parse::<u64>().ok());
        if pv {
            assert!(wide.is_some_and(|n| n > 0), "{l}\n{}", run.describe());
        }
    }
}

#[test]
fn balloon_with_2_vcpus_flushes_every_vcpu_and_keeps_serving() {
    balloon_on_two_vcpus("shttp", !xen_tests::guest_mode().is_pvh());
}

#[test]
fn pvh_balloon_with_2_vcpus_keeps_serving() {
    balloon_on_two_vcpus("mhttp", false);
}

#[test]
fn a_2_vcpu_http_guest_serves_after_save_and_restore() {
    let run = expect_run(lab(), "shttp");
    print(run, "shttp");
    assert_result(run, &GuestResult::Poweroff);
    assert!(
        run.xl_output.iter().any(|l| l.contains("[xl mobility] restore name=shttp rc=0")),
        "{}",
        run.describe()
    );
    assert_console_contains(run, "resume: 1 secondary vCPUs back (initialised anew)");
    assert_eq!(up(run, "vcpus-restored"), vec![0, 1], "{}", run.describe());
    all_served(run, "after-restore", 1000.0);
    let g = growth(run, "vcpus-restored", "vtime-4");
    // `xl vcpu-list` counts tenths of a second, and vCPU 1 starts anew at
    // 0.0 in the new domain: a vCPU 1 that served none of the load stays
    // there, while its share of 1,000 requests has cost 0.2-0.7 s (0.2 on
    // an idle host, where a bound of "more than 0.2" failed a good run).
    assert!(g[1] >= 0.1 - 1e-9, "vCPU 1 after the restore: {g:?}\n{}", run.describe());
}

#[test]
fn a_2_vcpu_pvh_http_guest_serves_after_live_migration() {
    let run = expect_run(lab(), "mhttp");
    print(run, "mhttp");
    assert_result(run, &GuestResult::Poweroff);
    assert!(
        run.xl_output.iter().any(|l| l.contains("[xl mobility] migrate name=mhttp rc=0")),
        "{}",
        run.describe()
    );
    assert_console_contains(run, "resume: 1 secondary vCPUs back (initialised anew)");
    assert_eq!(up(run, "vcpus-migrated"), vec![0, 1], "{}", run.describe());
    all_served(run, "after-migrate", 1000.0);
    let g = growth(run, "vcpus-migrated", "vtime-5");
    // `xl vcpu-list` counts tenths of a second, and vCPU 1 starts anew at
    // 0.0 in the new domain: a vCPU 1 that served none of the load stays
    // there, while its share of 1,000 requests has cost 0.2-0.7 s (0.2 on
    // an idle host, where a bound of "more than 0.2" failed a good run).
    assert!(g[1] >= 0.1 - 1e-9, "vCPU 1 after the migration: {g:?}\n{}", run.describe());
}

/// The XenStore stall of docs/smp.md, made to happen: once vCPU 1 runs,
/// `xenstore.lose_notify` keeps 6 notifications from reaching xenstored,
/// which sleeps with the vif connect's requests in the ring (nothing in
/// dom0 wakes it meanwhile). The ring transport looks again and notifies
/// again after 1 s without news: the vif connects, no request fails, and
/// the guest serves. Before, each lost notification cost a request its
/// 10 s and failed it (`cannot connect: xenstore: TimedOut`).
#[test]
fn lost_notifications_to_xenstored_cost_a_second_each_not_a_request() {
    let run = expect_run(lab(), "lhttp");
    for l in run.console.iter().filter(|l| l.contains("xenstore") || l.contains("connected")) {
        eprintln!("lhttp: {l}");
    }
    assert_console_contains(run, "smp: 2 of 2 vCPUs online");
    assert_console_contains(run, &format!("xenstore: notification {LOSE} not sent"));
    assert_console_contains(run, "xenstore: no news from xenstored");
    assert_console_contains(run, "connected: mac");
    let failed: Vec<_> = run
        .console
        .iter()
        .filter(|l| l.contains("TimedOut") || l.contains("cannot connect"))
        .collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}\n{}", run.describe());
    all_served(run, "lost-load", 200.0);
    assert_result(run, &GuestResult::Poweroff);
}
