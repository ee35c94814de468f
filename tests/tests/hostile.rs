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
    assert_console_contains, assert_result, boot, check_value, expect_run, guest, shell,
    BootReport, GuestResult, GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

const DISK: &str =
    "format=raw, vdev=xvda, access=rw, backendtype=phy, script=/etc/xen/scripts/block, target=/dev/loop0";

/// Values no disk has: past 2^64 bytes, not numbers, negative.
const ABSURD_SECTORS: &str =
    "18446744073709551615 36028797018963968 99999999999999999999999 -1 abc";

fn vbd_script() -> String {
    shell(&[("ABSURD_SECTORS", ABSURD_SECTORS)], &[include_str!("hostile/vbd.sh")])
}

fn mem_script() -> String {
    shell(&[], &[include_str!("common/bridge.sh"), include_str!("hostile/mem.sh")])
}

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
                Scenario::script("hostmem", vec![mem], &mem_script()),
            ]
        })
    })
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
    assert_eq!(check_value(run, "shutdown-rc"), Some("0"), "{}", run.describe());
    assert_result(run, &GuestResult::Poweroff);
    // Every lie was read in a handshake of its own and refused by name.
    assert_eq!(check_value(run, "unbind-rc"), Some("0"), "{}", run.describe());
    assert_eq!(check_value(run, "rebind-rc"), Some("0"), "{}", run.describe());
    assert!(flag(run, "reattached"), "no attach after blkback came back\n{}", run.describe());
    let lies = ABSURD_SECTORS.split_whitespace().count().to_string();
    assert_eq!(check_value(run, "lies"), Some(lies.as_str()), "{}", run.describe());
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
    assert_eq!(check_value(run, "mem-set-down-rc"), Some("0"), "{}", run.describe());
    assert_eq!(check_value(run, "mem-set-up-rc"), Some("0"), "{}", run.describe());
    assert_console_contains(run, "balloon: target 4096 KiB");
    assert_console_contains(run, "keeping a reserve of 256 free pages");
    assert_console_contains(run, "balloon: target 32768 KiB");
    assert_eq!(check_value(run, "json-after-rc"), Some("0"), "{}", run.describe());
    let pings: u32 = check_value(run, "pings").and_then(|p| p.parse().ok()).unwrap_or(0);
    assert!(pings > 0, "no ping answered during the squeeze\n{}", run.describe());
    assert_eq!(check_value(run, "shutdown-rc"), Some("0"), "{}", run.describe());
    assert_result(run, &GuestResult::Poweroff);
}
