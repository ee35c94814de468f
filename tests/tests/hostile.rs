//! Dom0 as the hostile side (issue 18), one QEMU boot:
//! - `hostvbd` runs `app=blk blk.mode=hotplug` on one disk; once its first
//!   attach is verified, dom0 unbinds blkback and plays the backend's
//!   side of the handshake itself, one absurd `sectors` value per connect
//!   (past 2^64 bytes, not a number, negative); binds blkback again (the
//!   guest reattaches and finds its pattern intact); then flaps the
//!   backend's `state` node (Closing, InitWait, Connected, Initialising,
//!   ...) with absurd sizes beside it; `xl shutdown` must end it cleanly
//!   (poweroff), with no panic, and every absurd size refused by name;
//! - `hostmem` runs `app=http` with a vif under a running ping and
//!   repeated page fetches; dom0 squeezes it with `xl mem-set` to 4 MiB,
//!   then gives the memory back; the guest follows the target down to its
//!   balloon reserve (saying so), keeps answering, and `xl shutdown`
//!   still ends it cleanly.

use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, expect_run, guest, BootReport, GuestResult,
    GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

const DISK: &str =
    "format=raw, vdev=xvda, access=rw, backendtype=phy, script=/etc/xen/scripts/block, target=/dev/loop0";

/// Values no disk has: past 2^64 bytes, not numbers, negative.
const ABSURD_SECTORS: &str =
    "18446744073709551615 36028797018963968 99999999999999999999999 -1 abc";

fn vbd_script() -> String {
    format!(
        r#"
dd if=/dev/zero of=/tmp/host.img bs=1M count=2 2>/dev/null
losetup -d /dev/loop0 2>/dev/null
losetup /dev/loop0 /tmp/host.img
run_guest_start hostvbd /etc/xen-lab/guests/hostvbd.cfg || exit 1
if wait_console hostvbd "xvda: attach #1: " 1 120; then
    domid=$(cat /tmp/lab-domid-hostvbd)
    be=/local/domain/0/backend/vbd/$domid/51712
    echo "[xl check] sectors-before $(xenstore-read $be/sectors)"
    fe=/local/domain/$domid/device/vbd/51712
    # A lying backend, with nobody to race: blkback is unbound from the
    # device (it writes the true size whenever it connects), and dom0
    # plays the backend's side of the handshake itself, reacting to the
    # guest's state (InitWait until the guest is Initialised, then
    # Connected) until the guest has refused the lie in place by name.
    # The guest is idle (its first attach verified): no request in flight.
    echo "vbd-$domid-51712" > /sys/bus/xen-backend/drivers/vbd/unbind
    echo "[xl check] unbind-rc $?"
    log=$LAB_CONSOLE_DIR/guest-hostvbd.log
    n=0
    # `--`: xenstore-write takes "-1" for an option otherwise.
    for v in {ABSURD_SECTORS}; do
        xenstore-write -- $be/sectors "$v"
        t=0
        until grep -q -- "/sectors = \"\{{0,1\}}$v" "$log"; do
            t=$((t + 1))
            if [ $t -gt 300 ]; then
                echo "[xl check] lie $v never refused"
                break 2
            fi
            f=$(xenstore-read $fe/state)
            b=$(xenstore-read $be/state)
            if [ "$f" = 3 ]; then
                [ "$b" = 4 ] || xenstore-write $be/state 4
            elif [ "$b" != 2 ]; then
                xenstore-write $be/state 2
            fi
            sleep 0.3
        done
        n=$((n + 1))
    done
    echo "[xl check] lies $n"
    # blkback back: it connects with the true size, and the guest finds
    # its pattern intact.
    echo "vbd-$domid-51712" > /sys/bus/xen-backend/drivers/vbd/bind
    echo "[xl check] rebind-rc $?"
    wait_console hostvbd "xvda: attach #2: previous" 1 60 && echo "[xl check] reattached"
    # A flapping backend: blkback bound, its state node rewritten under
    # the connected guest, a lie in sectors beside it. Two values only:
    # each flap is a fault the guest counts, and 16 in ten minutes get a
    # device declared broken.
    for v in abc 18446744073709551615; do
        for s in 5 2 4 1 3 4; do
            xenstore-write $be/state $s
            xenstore-write -- $be/sectors "$v"
            sleep 0.3
        done
    done
    echo "[xl check] flapped"
    sleep 3
    xl shutdown hostvbd; echo "[xl check] shutdown-rc $?"
    run_guest_wait hostvbd 120
else
    run_guest_wait hostvbd 1
fi
"#
    )
}

const MEM_SCRIPT: &str = r#"
if [ ! -d /sys/class/net/xenbr0 ]; then
    ip link add xenbr0 type bridge
    ip addr add 192.0.2.1/24 dev xenbr0
    ip link set xenbr0 up
fi
run_guest_start hostmem /etc/xen-lab/guests/hostmem.cfg || exit 1
if wait_console hostmem "http: ready" 1 90 && wait_console hostmem "connected: mac" 1 30; then
    ping -c 2 -W 5 192.0.2.6 > /dev/null 2>&1; echo "[xl check] ping-before-rc $?"
    ( while :; do timeout 10 wget -q -O /dev/null http://192.0.2.6/status.json; done ) &
    traffic=$!
    ping 192.0.2.6 > /tmp/mem-ping 2>&1 &
    pinger=$!
    sleep 2
    xl mem-set hostmem 4m; echo "[xl check] mem-set-down-rc $?"
    wait_console hostmem "balloon: target 4096 KiB" 1 60
    sleep 5
    xl mem-set hostmem 32m; echo "[xl check] mem-set-up-rc $?"
    wait_console hostmem "balloon: target 32768 KiB" 1 60
    sleep 3
    kill $traffic $pinger; wait $traffic $pinger 2>/dev/null
    echo "[xl check] pings $(grep -c 'bytes from' /tmp/mem-ping)"
    timeout 15 wget -q -O /tmp/mem-json http://192.0.2.6/status.json; echo "[xl check] json-after-rc $?"
    xl shutdown hostmem; echo "[xl check] shutdown-rc $?"
    run_guest_wait hostmem 90
else
    run_guest_wait hostmem 1
fi
"#;

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("hostile", || {
            let mut vbd = guest("hostvbd", "blk")
                .args(&[
                    "blk.mode=hotplug".into(),
                    "blk.seed=5".into(),
                    "blk.soak_s=600".into(),
                    "blk.hotplug_kib=64".into(),
                ])
                .memory(64)
                .timeout(Duration::from_secs(300));
            vbd.extra_config = vec![format!("disk = ['{DISK}']")];
            let mut mem = guest("hostmem", "http")
                .args(&["ip=192.0.2.6/24".into()])
                .memory(32)
                .timeout(Duration::from_secs(300));
            mem.extra_config = vec!["vif = ['mac=00:16:3e:0c:00:06,bridge=xenbr0']".into()];
            vec![
                Scenario::script("hostvbd", vec![vbd], &vbd_script()),
                Scenario::script("hostmem", vec![mem], MEM_SCRIPT),
            ]
        })
    })
}

fn check<'a>(run: &'a GuestRun, key: &str) -> Option<&'a str> {
    let prefix = format!("[xl check] {key} ");
    run.xl_output.iter().rev().find_map(|l| l.strip_prefix(prefix.as_str()))
}

fn flag(run: &GuestRun, key: &str) -> bool {
    run.xl_output.iter().any(|l| l.trim() == format!("[xl check] {key}"))
}

/// A vbd whose backend flaps its state, then lies about its size in every
/// handshake: the guest refuses each size by name, never panics, and `xl
/// shutdown` ends it.
#[test]
fn a_flapping_lying_vbd_backend_cannot_stop_a_clean_shutdown() {
    let run = expect_run(lab(), "hostvbd");
    assert!(flag(run, "flapped"), "dom0 never got to the flapping\n{}", run.describe());
    assert_eq!(check(run, "shutdown-rc"), Some("0"), "{}", run.describe());
    assert_result(run, &GuestResult::Poweroff);
    // Every lie was read in a handshake of its own and refused by name.
    assert_eq!(check(run, "unbind-rc"), Some("0"), "{}", run.describe());
    assert_eq!(check(run, "rebind-rc"), Some("0"), "{}", run.describe());
    assert!(flag(run, "reattached"), "no attach after blkback came back\n{}", run.describe());
    let lies = ABSURD_SECTORS.split_whitespace().count().to_string();
    assert_eq!(check(run, "lies"), Some(lies.as_str()), "{}", run.describe());
    for v in ABSURD_SECTORS.split_whitespace() {
        let (bare, quoted) = (format!("/sectors = {v}:"), format!("/sectors = \"{v}\""));
        assert!(
            run.console.iter().any(|l| l.contains(&bare) || l.contains(&quoted)),
            "the absurd sectors value {v} was not refused by name\n{}",
            run.describe()
        );
    }
}

/// `xl mem-set` to 4 MiB under traffic, then back: the guest keeps its
/// reserve (one line), answers again afterwards, and shuts down cleanly.
#[test]
fn a_memory_squeeze_under_traffic_is_survived() {
    let run = expect_run(lab(), "hostmem");
    assert_eq!(check(run, "mem-set-down-rc"), Some("0"), "{}", run.describe());
    assert_eq!(check(run, "mem-set-up-rc"), Some("0"), "{}", run.describe());
    assert_console_contains(run, "balloon: target 4096 KiB");
    assert_console_contains(run, "keeping a reserve of 256 free pages");
    assert_console_contains(run, "balloon: target 32768 KiB");
    assert_eq!(check(run, "json-after-rc"), Some("0"), "{}", run.describe());
    let pings: u32 = check(run, "pings").and_then(|p| p.parse().ok()).unwrap_or(0);
    assert!(pings > 0, "no ping answered during the squeeze\n{}", run.describe());
    assert_eq!(check(run, "shutdown-rc"), Some("0"), "{}", run.describe());
    assert_result(run, &GuestResult::Poweroff);
}
