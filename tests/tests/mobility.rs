//! Save, restore, checkpoint, live migration and ballooning up to maxmem
//! on real Xen (issue 16), one QEMU boot:
//! - `app=idle` with `memory=32, maxmem=64`: `xl mem-set` to 64 MiB (past
//!   the boot size), down to 24 and up to 64 again, `xl list` agreeing each
//!   time; then `xl save -c` (a checkpoint: the suspend is cancelled and
//!   the guest carries on), `xl save` + `xl restore` (a new domain: the
//!   guest rebuilds its events, timer, grant table, console and XenStore
//!   and answers the toolstack), `xl migrate` to this host, and a clean
//!   `xl shutdown` at the end. Between the steps `xl sysrq` makes the
//!   guest print its counters, which must be right after each.
//! - `app=echo` with a vif, under a ping from dom0 every 20 ms and with
//!   one TCP connection to its echo port opened before anything: `xl save
//!   -c`, then `xl save` + `xl restore`; after each the ping is answered
//!   again and the same connection echoes a new line back. The pings lost
//!   in each outage are printed.
//! - `app=blk blk.mode=hotplug` with a disk: attach #1 writes a pattern;
//!   `xl save -c`, then `xl save` + `xl restore`: the disk comes back on a
//!   new backend as attach #2, which must read attach #1's pattern intact.
//!
//! In the mode `$XENPV_MODE` names (PV by default). Live migration needs
//! log-dirty paging, which Xen implements for PV guests with shadow
//! paging and for PVH guests (with hardware-assisted paging) in their
//! nested page tables; Debian's Xen 4.17 and 4.20 are built without shadow
//! paging (`CONFIG_SHADOW_PAGING` unset, `xl info` has no `shadow` in
//! `virt_caps`), so there `xl migrate` of any PV guest stops with "Failed
//! to enable logdirty" before the guest is asked anything. The test reads
//! `virt_caps`: where the mode's log-dirty is there (`shadow` for PV,
//! `hap` for PVH) it demands migrations that work; without, that the
//! failure is that one and the guest carries on untouched.

use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, expect_run, guest, guest_mode, BootReport,
    GuestMode, GuestResult, GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

/// Migrations of the idle guest in a row.
const IDLE_MIGRATIONS: u32 = 3;

fn idle_script() -> String {
    format!(
        r#"
run_guest_start mobile /etc/xen-lab/guests/mobile.cfg || exit 1
if wait_console mobile "idle: ready" 1 90; then
    n64=0
    for m in 64 24 64; do
        xl mem-set mobile ${{m}}m
        [ $m = 64 ] && n64=$((n64 + 1))
        if [ $m = 64 ]; then c=$n64; else c=1; fi
        wait_console mobile "balloon: target $((m * 1024)) KiB" $c 60
        echo "[xl mobility] mem-set name=mobile mib=$m list=$(xl list mobile | sed -n '2p' | awk '{{print $3}}')"
    done
    lab_save mobile /tmp/mobile.chk -c
    # dom0's /tmp is memory: keep one image at a time.
    rm -f /tmp/mobile.chk
    wait_console mobile "suspend: cancelled" 1 60
    xl sysrq mobile d
    wait_console mobile "suspends: 1 cancelled, 0 resumed" 1 30
    lab_save mobile /tmp/mobile.save && lab_restore mobile /tmp/mobile.save; src=$?
    rm -f /tmp/mobile.save
    if [ $src -eq 0 ]; then
        wait_console mobile "resume: running in a new domain (resume 1;" 1 60
        xl sysrq mobile d
        wait_console mobile "suspends: 1 cancelled, 1 resumed" 1 30
    fi
    echo "[xl mobility] caps $(xl info | sed -n 's/^virt_caps *: */virt_caps=/p' | tr ' ' ',')"
    i=0
    while [ $i -lt {IDLE_MIGRATIONS} ]; do
        lab_migrate mobile || break
        i=$((i + 1))
        wait_console mobile "resume: running in a new domain (resume $((i + 1));" 1 60
    done
    xl sysrq mobile d
    wait_console mobile "suspends: 1 cancelled, $((i + 1)) resumed" 1 30
    xl shutdown mobile
    run_guest_wait mobile 60
else
    run_guest_wait mobile 1
fi
"#
    )
}

/// The echo guest's keep-alive limit, ms (`svc.keepalive_ms`): the
/// connection's idle time while the guest runs must stay below it, and
/// on this shared machine that is up to ~20 s a step (`xl save -c`
/// prepares for ~10 s before it asks the guest to suspend, the vif comes
/// back after a restore in ~7 s).
const KEEPALIVE_MS: u64 = 60_000;
/// Seconds the echo guest stays saved before its restore: longer than
/// its keep-alive limit.
const PAUSE_S: u64 = 65;

const ECHO_IP: &str = "192.0.2.6";
const ECHO_MAC: &str = "00:16:3e:0c:00:06";

/// The echo guest's steps: a line through one long-lived TCP connection
/// and the ping's recovery after a checkpoint and after a save + restore.
fn echo_script() -> String {
    format!(
        r#"
ms_now() {{ read _up _ < /proc/uptime; NOW=${{_up%.*}}${{_up#*.}}0; }}
# Waits until the ping has a reply at or after $1 ms, at most $2 s.
wait_answer() {{
    ANSWER=
    _n=$(($2 * 20))
    while [ "$_n" -gt 0 ]; do
        read _last < /tmp/pe.last
        if [ "$_last" -ge "$1" ]; then ANSWER=$_last; return 0; fi
        sleep 0.05
        _n=$((_n - 1))
    done
    return 1
}}
# A connection the guest closed makes echo_line fail, not the script.
trap '' PIPE
# Sends line $1 through the held connection; 0 once it came back.
echo_line() {{
    echo "$1" >&4
    _n=0
    while [ $_n -lt 100 ]; do
        grep -qx -- "$1" /tmp/eout && return 0
        sleep 0.1
        _n=$((_n + 1))
    done
    return 1
}}
if [ ! -d /sys/class/net/xenbr0 ]; then
    ip link add xenbr0 type bridge
    ip addr add 192.0.2.1/24 dev xenbr0
    ip link set xenbr0 up
fi
run_guest_start mecho /etc/xen-lab/guests/mecho.cfg || exit 1
if wait_console mecho "echo: ready" 1 90 && wait_console mecho "connected: mac" 1 60; then
    echo 0 > /tmp/pe.last
    nettool ping {ECHO_IP} 20 /tmp/pe.last > /tmp/pe.log 2>&1 &
    pw=$!
    ms_now; wait_answer $NOW 30; echo "[xl mobility] first-ping rc=$?"
    rm -f /tmp/ein; mkfifo /tmp/ein
    nc {ECHO_IP} 7 < /tmp/ein > /tmp/eout 2>/dev/null &
    nw=$!
    exec 4> /tmp/ein
    echo_line "line-before-anything"; echo "[xl mobility] tcp step=start rc=$?"
    for step in checkpoint restore; do
        ms_now; t0=$NOW
        if [ $step = checkpoint ]; then
            lab_save mecho /tmp/mecho.chk -c; src=$?
            rm -f /tmp/mecho.chk
        else
            # The domain stays saved longer than the listener's keep-alive
            # limit (svc.keepalive_ms): the running clock its timeouts
            # use leaves that time out.
            lab_save mecho /tmp/mecho.save && sleep {PAUSE_S} && lab_restore mecho /tmp/mecho.save; src=$?
            rm -f /tmp/mecho.save
        fi
        # A reply after the command returned: one between t0 and the
        # suspend (xl prepares for a while first) says nothing of the
        # guest after it.
        ms_now; t1=$NOW
        if wait_answer $t1 180; then ms_now; ans=$((NOW - t0)); else ans=none; fi
        echo_line "line-after-$step"; trc=$?
        echo "[xl mobility] step name=mecho step=$step rc=$src ping_answer_ms=$ans tcp_rc=$trc"
    done
    exec 4>&-
    kill -TERM $pw; wait $pw
    sed 's/^/[xl ping] /' /tmp/pe.log
    kill $nw 2>/dev/null
    sed 's/^/[xl tcp] /' /tmp/eout
    xl shutdown mecho
    run_guest_wait mecho 60
else
    run_guest_wait mecho 1
fi
"#
    )
}

const DISK: &str =
    "format=raw, vdev=xvda, access=rw, backendtype=phy, script=/etc/xen/scripts/block, target=/dev/loop0";
/// Bytes each attach of the disk checks and rewrites.
const SPAN_KIB: u64 = 256;

/// The disk guest: attach #1 writes its pattern; a checkpoint; a save +
/// restore, after which the disk comes back as attach #2 on a new backend
/// and must hold attach #1's pattern.
fn blk_script() -> String {
    r#"
dd if=/dev/zero of=/tmp/mob.img bs=1M count=2 2>/dev/null
losetup -d /dev/loop0 2>/dev/null
losetup /dev/loop0 /tmp/mob.img
run_guest_start mblk /etc/xen-lab/guests/mblk.cfg || exit 1
if wait_console mblk "xvda: attach #1: " 1 120; then
    lab_save mblk /tmp/mblk.chk -c
    rm -f /tmp/mblk.chk
    wait_console mblk "suspend: cancelled" 1 60
    if lab_save mblk /tmp/mblk.save; then
        # The block script let go of the loop device with the domain.
        losetup /dev/loop0 /tmp/mob.img 2>/dev/null
        lab_restore mblk /tmp/mblk.save
        rm -f /tmp/mblk.save
        wait_console mblk "xvda: attach #2: " 1 120
    fi
    xl shutdown mblk
    run_guest_wait mblk 60
else
    run_guest_wait mblk 1
fi
"#
    .to_string()
}

fn nettool() -> std::path::PathBuf {
    xtask::nettool::build(&xtask::cache::cache_dir()).expect("building nettool")
}

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("mobility", || {
            let mut idle = guest("mobile", "idle").memory(32).timeout(Duration::from_secs(1200));
            idle.extra_config = vec!["maxmem = 64".into()];
            // The one connection waits through a save, a pause longer
            // than its keep-alive limit and a restore, which the
            // listener's running clock leaves out.
            let mut echo = guest("mecho", "echo")
                .args(&[format!("ip={ECHO_IP}/24"), format!("svc.keepalive_ms={KEEPALIVE_MS}")])
                .memory(32)
                .timeout(Duration::from_secs(1200));
            echo.extra_config = vec![format!("vif = ['mac={ECHO_MAC},bridge=xenbr0']")];
            let mut blk = guest("mblk", "blk")
                .args(&[
                    "blk.mode=hotplug".into(),
                    "blk.seed=200".into(),
                    "blk.soak_s=3000".into(),
                    format!("blk.hotplug_kib={SPAN_KIB}"),
                ])
                .memory(32)
                .timeout(Duration::from_secs(1200));
            blk.extra_config = vec![format!("disk = ['{DISK}']")];
            vec![
                Scenario::script("mobility-idle", vec![idle], &idle_script()),
                Scenario::script("mobility-blk", vec![blk], &blk_script()),
                Scenario::script("mobility-echo", vec![echo], &echo_script())
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

#[test]
fn balloon_grows_past_the_boot_size_and_back() {
    let run = expect_run(lab(), "mobile");
    let sizes: Vec<(String, String)> = mobility_lines(run)
        .into_iter()
        .filter(|(w, _)| w == "mem-set")
        .map(|(_, kv)| (get(&kv, "mib").to_string(), get(&kv, "list").to_string()))
        .collect();
    assert_eq!(sizes.len(), 3, "three mem-set steps\n{}", run.describe());
    for (want, listed) in &sizes {
        let listed: u32 = listed.parse().unwrap_or(0);
        let want: u32 = want.parse().unwrap();
        // xl list rounds; the P2M pages and page tables count as the guest's.
        assert!(
            listed.abs_diff(want) <= 1,
            "xl list shows {listed} MiB after mem-set {want}\n{}",
            run.describe()
        );
    }
    assert_console_contains(run, "balloon: target 65536 KiB; 8192 -> 16384 pages");
}

#[test]
fn checkpoint_is_cancelled_and_the_guest_carries_on() {
    let run = expect_run(lab(), "mobile");
    let saves: Vec<_> = mobility_lines(run).into_iter().filter(|(w, _)| w == "save-c").collect();
    assert_eq!(saves.len(), 1, "{}", run.describe());
    assert_eq!(get(&saves[0].1, "rc"), "0", "xl save -c failed\n{}", run.describe());
    assert_console_contains(run, "suspend: cancelled by the toolstack");
    assert_console_contains(run, "suspends: 1 cancelled, 0 resumed");
}

#[test]
fn save_and_restore_resume_in_a_new_domain() {
    let run = expect_run(lab(), "mobile");
    let lines = mobility_lines(run);
    let save = lines.iter().find(|(w, _)| w == "save").expect("an xl save");
    let restore = lines.iter().find(|(w, _)| w == "restore").expect("an xl restore");
    assert_eq!(get(&save.1, "rc"), "0", "xl save failed\n{}", run.describe());
    assert_eq!(get(&restore.1, "rc"), "0", "xl restore failed\n{}", run.describe());
    eprintln!(
        "save {} ms, {} bytes; restore {} ms",
        get(&save.1, "ms"),
        get(&save.1, "bytes"),
        get(&restore.1, "ms")
    );
    assert_console_contains(run, "resume: running in a new domain (resume 1;");
    assert_console_contains(run, "suspends: 1 cancelled, 1 resumed");
}

/// Whether this Xen can log dirty pages of the guest, which live
/// migration needs: `virt_caps` names shadow paging (a PV guest's
/// log-dirty, and a PVH one's with `hap = 0`) or, for PVH, hardware-
/// assisted paging.
fn can_log_dirty(run: &GuestRun) -> bool {
    let caps = mobility_lines(run).into_iter().find(|(w, _)| w == "caps");
    let caps = caps.expect("the virt_caps line");
    let need = if guest_mode() == GuestMode::Pvh { "hap" } else { "shadow" };
    get(&caps.1, "virt_caps").split(',').any(|c| c == need)
}

#[test]
fn live_migration_to_this_host_and_clean_shutdown() {
    let run = expect_run(lab(), "mobile");
    let migs: Vec<_> = mobility_lines(run).into_iter().filter(|(w, _)| w == "migrate").collect();
    if can_log_dirty(run) {
        assert_eq!(migs.len() as u32, IDLE_MIGRATIONS, "{}", run.describe());
        for (_, kv) in &migs {
            assert_eq!(get(kv, "rc"), "0", "xl migrate failed\n{}", run.describe());
            eprintln!("migration {} ms", get(kv, "ms"));
        }
        assert_console_contains(
            run,
            &format!("suspends: 1 cancelled, {} resumed", IDLE_MIGRATIONS + 1),
        );
    } else {
        // One attempt, refused by Xen before the guest hears of it; the
        // guest carries on in the same domain.
        assert_eq!(migs.len(), 1, "{}", run.describe());
        assert_ne!(get(&migs[0].1, "rc"), "0", "{}", run.describe());
        assert!(
            run.xl_output.iter().any(|l| l.contains("Failed to enable logdirty")),
            "xl migrate failed for another reason than log-dirty\n{}",
            run.describe()
        );
        assert_console_contains(run, "suspends: 1 cancelled, 1 resumed");
        eprintln!(
            "no log-dirty paging for a {} guest in this Xen: no live migration",
            guest_mode()
        );
    }
    assert_result(run, &GuestResult::Poweroff);
}

fn echo_steps(run: &GuestRun) -> Vec<Vec<(String, String)>> {
    mobility_lines(run).into_iter().filter(|(w, _)| w == "step").map(|(_, kv)| kv).collect()
}

#[test]
fn echo_keeps_answering_and_its_tcp_connection_survives() {
    let run = expect_run(lab(), "mecho");
    let steps = echo_steps(run);
    assert_eq!(steps.len(), 2, "a checkpoint and a restore\n{}", run.describe());
    for kv in &steps {
        let step = get(kv, "step");
        assert_eq!(get(kv, "rc"), "0", "{step}: xl failed\n{}", run.describe());
        assert_ne!(get(kv, "ping_answer_ms"), "none", "{step}: no ping answer\n{}", run.describe());
        assert_eq!(get(kv, "tcp_rc"), "0", "{step}: the TCP connection\n{}", run.describe());
        eprintln!("{step}: ping answered {} ms after the command began", get(kv, "ping_answer_ms"));
    }
    for l in run.xl_output.iter().filter(|l| l.contains("[xl ping]")) {
        eprintln!("{l}");
    }
    assert_console_contains(run, "resume: running in a new domain (resume 1;");
    // The domain was suspended for longer than the keep-alive limit, and
    // the connection lived: no timeout closed it.
    let suspended = suspended_ms(run);
    eprintln!("suspended {suspended} ms across the save and restore; the keep-alive limit is {KEEPALIVE_MS} ms");
    assert!(suspended > KEEPALIVE_MS, "suspended only {suspended} ms\n{}", run.describe());
    let port7 = echo_port_report(run, 7);
    eprintln!("{port7}");
    assert!(
        port7.contains(" accepted 1 ") && port7.contains(" timed_out 0 "),
        "{port7}\n{}",
        run.describe()
    );
    assert_result(run, &GuestResult::Poweroff);
}

/// The echo listener's counters for `port` from its report at shutdown.
fn echo_port_report(run: &GuestRun, port: u16) -> String {
    let tag = format!("echo: port {port}: ");
    run.console
        .iter()
        .rev()
        .find_map(|l| {
            let rest = &l[l.find(&tag)?..];
            Some(rest[..rest.find(';').unwrap_or(rest.len())].to_string())
        })
        .unwrap_or_else(|| panic!("no report of port {port}\n{}", run.describe()))
}

/// The `... ms of it suspended` of the guest's first resume line.
fn suspended_ms(run: &GuestRun) -> u64 {
    run.console
        .iter()
        .find(|l| l.contains("resume: running in a new domain (resume 1;"))
        .and_then(|l| {
            let end = l.find(" ms of it suspended")?;
            l[..end].rsplit(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no suspended time on the resume line\n{}", run.describe()))
}

#[test]
fn a_disk_keeps_its_data_across_a_checkpoint_and_a_restore() {
    let run = expect_run(lab(), "mblk");
    let lines = mobility_lines(run);
    for what in ["save-c", "save", "restore"] {
        let l = lines.iter().find(|(w, _)| w == what);
        let rc = l.map_or("missing", |(_, kv)| get(kv, "rc"));
        assert_eq!(rc, "0", "xl {what}\n{}", run.describe());
    }
    assert_console_contains(run, "suspend: cancelled by the toolstack");
    assert_console_contains(run, "resume: running in a new domain (resume 1;");
    // Written by attach #1 before the save, read on the new backend after.
    assert_console_contains(
        run,
        &format!(
            "xvda: attach #2: previous attach's pattern (seed 201) intact over {} bytes",
            SPAN_KIB * 1024
        ),
    );
    assert!(
        !run.console.iter().any(|l| l.contains("FAILED")),
        "a disk check failed\n{}",
        run.describe()
    );
    assert_result(run, &GuestResult::Poweroff);
}
