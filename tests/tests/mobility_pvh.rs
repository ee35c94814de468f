//! Save, restore, checkpoint and live migration of PVH guests on real Xen
//! (issue 16), one QEMU boot. Every guest here is created as PVH
//! whatever `$XENPV_MODE` says: PVH is the mode in which this Xen can
//! live-migrate (an HVM container's dirty pages are logged through its
//! nested page tables; a PV guest needs shadow paging, which Debian's
//! Xen is built without: see `mobility.rs`).
//! - `app=http` with a vif: dom0 reads the status page, `xl save -c`
//!   (the page then counts one checkpoint), `xl save` + `xl restore`
//!   (a new domain: the page answers with a larger uptime and `resumes
//!   1`), ping and `xl shutdown` afterwards.
//! - `app=echo` with a vif: one TCP connection to its echo port opened
//!   before anything, then ten `xl migrate` to this host in a row under a
//!   ping from dom0 every 10 ms; after each migration a new 512-byte
//!   line goes through the same connection and must come back. The host
//!   compares every echoed byte with what dom0 sent.

use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, expect_run, guest, BootReport, GuestMode,
    GuestResult, GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

/// Migrations of the echo guest in a row.
const MIGRATIONS: u32 = 10;

const HTTP_IP: &str = "192.0.2.7";
const HTTP_MAC: &str = "00:16:3e:0c:00:07";
const ECHO_IP: &str = "192.0.2.8";
const ECHO_MAC: &str = "00:16:3e:0c:00:08";

/// Shell helpers of the network scenarios: dom0's bridge, a clock in ms,
/// waiting for the ping's next reply.
const NET_HELPERS: &str = r#"
if [ ! -d /sys/class/net/xenbr0 ]; then
    ip link add xenbr0 type bridge
    ip addr add 192.0.2.1/24 dev xenbr0
    ip link set xenbr0 up
fi
ms_now() { read _up _ < /proc/uptime; NOW=${_up%.*}${_up#*.}0; }
# Waits until the ping in the background has a reply at or after $1 ms,
# at most $2 s.
wait_answer() {
    ANSWER=
    _n=$(($2 * 20))
    while [ "$_n" -gt 0 ]; do
        read _last < /tmp/ping.last
        if [ "$_last" -ge "$1" ]; then ANSWER=$_last; return 0; fi
        sleep 0.05
        _n=$((_n - 1))
    done
    return 1
}
"#;

fn http_script() -> String {
    format!(
        r#"{NET_HELPERS}
# The status page as "[xl pageN] key value" lines.
page() {{
    timeout 30 wget -q -O /tmp/page "http://{HTTP_IP}/"; echo "[xl check] page$1-rc $?"
    sed "s/^/[xl page$1] /" /tmp/page
}}
run_guest_start phttp /etc/xen-lab/guests/phttp.cfg || exit 1
if wait_console phttp "http: ready" 1 90 && wait_console phttp "connected: mac" 1 120; then
    echo 0 > /tmp/ping.last
    nettool ping {HTTP_IP} 20 /tmp/ping.last > /tmp/ping.log 2>&1 &
    pw=$!
    ms_now; wait_answer $NOW 60; echo "[xl mobility] first-ping rc=$?"
    page 0
    ms_now; t0=$NOW
    lab_save phttp /tmp/phttp.chk -c
    rm -f /tmp/phttp.chk
    wait_console phttp "suspend: cancelled" 1 60
    if wait_answer $t0 60; then ms_now; ans=$((NOW - t0)); else ans=none; fi
    echo "[xl mobility] step name=phttp step=checkpoint ping_answer_ms=$ans"
    page 1
    ms_now; t0=$NOW
    lab_save phttp /tmp/phttp.save && lab_restore phttp /tmp/phttp.save
    rm -f /tmp/phttp.save
    wait_console phttp "resume: running in a new domain (resume 1;" 1 60
    if wait_answer $t0 90; then ms_now; ans=$((NOW - t0)); else ans=none; fi
    echo "[xl mobility] step name=phttp step=restore ping_answer_ms=$ans"
    page 2
    kill -TERM $pw; wait $pw
    sed 's/^/[xl ping] /' /tmp/ping.log
    ping -c 3 -W 5 {HTTP_IP} > /dev/null 2>&1; echo "[xl mobility] last-ping rc=$?"
    xl shutdown phttp
    run_guest_wait phttp 60
else
    run_guest_wait phttp 1
fi
"#
    )
}

fn echo_script() -> String {
    format!(
        r#"{NET_HELPERS}
# Sends line $1 through the held connection; 0 once it came back whole.
echo_line() {{
    echo "$1" >> /tmp/esent
    echo "$1" >&4
    _n=0
    while [ $_n -lt 600 ]; do
        grep -qx -- "$1" /tmp/eout && return 0
        sleep 0.1
        _n=$((_n + 1))
    done
    return 1
}}
# 512 hex characters from /dev/urandom, prefixed with the step.
make_line() {{ LINE="$1-$(od -A n -t x1 -N 256 /dev/urandom | tr -d ' \n')"; }}
run_guest_start pecho /etc/xen-lab/guests/pecho.cfg || exit 1
if wait_console pecho "echo: ready" 1 90 && wait_console pecho "connected: mac" 1 120; then
    echo 0 > /tmp/ping.last
    nettool ping {ECHO_IP} 10 /tmp/ping.last > /tmp/ping.log 2>&1 &
    pw=$!
    ms_now; wait_answer $NOW 60; echo "[xl mobility] first-ping rc=$?"
    rm -f /tmp/ein /tmp/esent; mkfifo /tmp/ein
    nc {ECHO_IP} 7 < /tmp/ein > /tmp/eout 2>/dev/null &
    nw=$!
    exec 4> /tmp/ein
    make_line start; echo_line "$LINE"; echo "[xl mobility] tcp step=0 rc=$?"
    i=1
    while [ $i -le {MIGRATIONS} ]; do
        ms_now; t0=$NOW
        lab_migrate pecho || break
        wait_console pecho "resume: running in a new domain (resume $i;" 1 60
        if wait_answer $t0 90; then ms_now; ans=$((NOW - t0)); else ans=none; fi
        make_line "migration$i"; echo_line "$LINE"; trc=$?
        echo "[xl mobility] step name=pecho step=$i ping_answer_ms=$ans tcp_rc=$trc"
        i=$((i + 1))
    done
    exec 4>&-
    kill -TERM $pw; wait $pw
    sed 's/^/[xl ping] /' /tmp/ping.log
    kill $nw 2>/dev/null
    sed 's/^/[xl tcp-sent] /' /tmp/esent
    sed 's/^/[xl tcp] /' /tmp/eout
    xl sysrq pecho d
    wait_console pecho "suspends: 0 cancelled, {MIGRATIONS} resumed" 1 30
    xl shutdown pecho
    run_guest_wait pecho 60
else
    run_guest_wait pecho 1
fi
"#
    )
}

fn nettool() -> std::path::PathBuf {
    xtask::nettool::build(&xtask::cache::cache_dir()).expect("building nettool")
}

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("mobility-pvh", || {
            let mut http = guest("phttp", "http")
                .mode(GuestMode::Pvh)
                .args(&[format!("ip={HTTP_IP}/24")])
                .memory(32)
                .timeout(Duration::from_secs(900));
            http.extra_config = vec![format!("vif = ['mac={HTTP_MAC},bridge=xenbr0']")];
            let mut echo = guest("pecho", "echo")
                .mode(GuestMode::Pvh)
                // The connection waits through each migration. The time
                // the domain spends suspended does not count against the
                // keep-alive limit (the running clock: docs/migration.md),
                // but the pre-copy runs the guest while the connection
                // waits: on this shared 2-core machine up to a minute per
                // migration (docs/migration.md, "Measured"), so the limit
                // is 2 minutes rather than the default 15 s.
                .args(&[format!("ip={ECHO_IP}/24"), "svc.keepalive_ms=120000".into()])
                .memory(32)
                .timeout(Duration::from_secs(1800));
            echo.extra_config = vec![format!("vif = ['mac={ECHO_MAC},bridge=xenbr0']")];
            vec![
                Scenario::script("mobility-pvh-http", vec![http], &http_script())
                    .with_file(xtask::nettool::DEST, nettool()),
                Scenario::script("mobility-pvh-echo", vec![echo], &echo_script())
                    .with_file(xtask::nettool::DEST, nettool()),
            ]
        })
    })
}

/// The `[xl mobility] WHAT ...` lines, as (what, key=value words).
fn mobility_lines(run: &GuestRun) -> Vec<(String, Vec<(String, String)>)> {
    run.xl_output
        .iter()
        .filter_map(|l| l.split_once("mobility] "))
        .map(|(_, rest)| {
            let mut words = rest.split_whitespace();
            let what = words.next().unwrap_or("").to_string();
            let kv = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (what, kv)
        })
        .collect()
}

fn get<'a>(kv: &'a [(String, String)], key: &str) -> &'a str {
    kv.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
}

/// Figure `key` of status page `n` (0: before, 1: after the checkpoint,
/// 2: after the restore).
fn page(run: &GuestRun, n: u32, key: &str) -> u64 {
    let prefix = format!("[xl page{n}] {key} ");
    run.xl_output
        .iter()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{key}` on status page {n}\n{}", run.describe()))
}

/// Whether a `NETTOOL ping outage` line lasted a second or more.
fn long_outage(line: &str) -> bool {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|ms| ms >= 1000)
}

/// Lines dom0 printed with `[xl TAG] `.
fn tagged<'a>(run: &'a GuestRun, tag: &str) -> Vec<&'a str> {
    let prefix = format!("[xl {tag}] ");
    run.xl_output.iter().filter_map(|l| l.strip_prefix(prefix.as_str())).collect()
}

#[test]
fn http_status_page_across_a_checkpoint_and_a_restore() {
    let run = expect_run(lab(), "phttp");
    let lines = mobility_lines(run);
    for what in ["save-c", "save", "restore"] {
        let l = lines.iter().find(|(w, _)| w == what);
        let rc = l.map_or("missing", |(_, kv)| get(kv, "rc"));
        assert_eq!(rc, "0", "xl {what}\n{}", run.describe());
        if let Some((_, kv)) = l {
            eprintln!("{what}: {} ms, {} bytes", get(kv, "ms"), get(kv, "bytes"));
        }
    }
    for n in 0..3 {
        assert_eq!(
            tagged(run, "check").iter().find(|l| l.starts_with(&format!("page{n}-rc "))),
            Some(&format!("page{n}-rc 0").as_str()),
            "status page {n}\n{}",
            run.describe()
        );
    }
    // Before: a fresh guest.
    assert_eq!((page(run, 0, "resumes"), page(run, 0, "checkpoints")), (0, 0));
    // The checkpoint: the same domain carried on.
    assert_eq!((page(run, 1, "resumes"), page(run, 1, "checkpoints")), (0, 1));
    assert_eq!(page(run, 1, "domid"), page(run, 0, "domid"), "{}", run.describe());
    // The restore: a new domain, the same guest, later.
    assert_eq!((page(run, 2, "resumes"), page(run, 2, "checkpoints")), (1, 1));
    assert_ne!(page(run, 2, "domid"), page(run, 0, "domid"), "{}", run.describe());
    let (u0, u1, u2) =
        (page(run, 0, "uptime_ms"), page(run, 1, "uptime_ms"), page(run, 2, "uptime_ms"));
    assert!(u0 < u1 && u1 < u2, "uptime {u0} -> {u1} -> {u2} ms\n{}", run.describe());
    eprintln!("uptime {u0} -> {u1} -> {u2} ms");
    for (_, kv) in lines.iter().filter(|(w, _)| w == "step") {
        let step = get(kv, "step");
        assert_ne!(get(kv, "ping_answer_ms"), "none", "{step}: no ping\n{}", run.describe());
        eprintln!("{step}: ping answered {} ms after the command began", get(kv, "ping_answer_ms"));
    }
    let last = lines.iter().find(|(w, _)| w == "last-ping").map(|(_, kv)| get(kv, "rc"));
    assert_eq!(last, Some("0"), "ping after the restore\n{}", run.describe());
    assert_console_contains(run, "suspend: cancelled by the toolstack");
    assert_console_contains(run, "resume: running in a new domain (resume 1;");
    assert_result(run, &GuestResult::Poweroff);
}

#[test]
fn ten_live_migrations_keep_one_tcp_connection() {
    let run = expect_run(lab(), "pecho");
    let lines = mobility_lines(run);
    let migs: Vec<_> = lines.iter().filter(|(w, _)| w == "migrate").collect();
    assert_eq!(migs.len() as u32, MIGRATIONS, "{}", run.describe());
    for (_, kv) in &migs {
        assert_eq!(get(kv, "rc"), "0", "xl migrate failed\n{}", run.describe());
    }
    let steps: Vec<_> = lines.iter().filter(|(w, _)| w == "step").collect();
    assert_eq!(steps.len() as u32, MIGRATIONS, "{}", run.describe());
    for ((_, m), (_, s)) in migs.iter().zip(&steps) {
        let step = get(s, "step");
        assert_ne!(get(s, "ping_answer_ms"), "none", "{step}: no ping\n{}", run.describe());
        assert_eq!(get(s, "tcp_rc"), "0", "{step}: the echo\n{}", run.describe());
        eprintln!(
            "migration {step}: {} ms, ping answered {} ms after it began",
            get(m, "ms"),
            get(s, "ping_answer_ms")
        );
    }
    // Every byte dom0 sent came back, in order, on the one connection.
    let sent = tagged(run, "tcp-sent");
    let echoed = tagged(run, "tcp");
    assert_eq!(sent.len() as u32, MIGRATIONS + 1, "{}", run.describe());
    assert!(sent.iter().all(|l| l.len() > 512), "{sent:?}");
    assert_eq!(echoed, sent, "the echoed bytes\n{}", run.describe());
    // The pauses (under TCG replies are late by up to ~0.5 s all along).
    for l in tagged(run, "ping").into_iter().filter(|l| long_outage(l) || l.contains(" sent=")) {
        eprintln!("{l}");
    }
    assert_console_contains(run, &format!("resume: running in a new domain (resume {MIGRATIONS};"));
    assert_console_contains(run, &format!("suspends: 0 cancelled, {MIGRATIONS} resumed"));
    assert_result(run, &GuestResult::Poweroff);
}
