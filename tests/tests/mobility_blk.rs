//! Block I/O in flight across save, restore, checkpoint and live
//! migration (issue 16), on real Xen, one QEMU boot. The guest runs
//! `app=blk blk.mode=passes`: it writes the documented pattern over its
//! whole disk again and again (pass `p` with seed `300 + p`), and takes
//! every suspend while a transfer waits with requests in flight; in a new
//! domain the disk reconnects to the backend the toolstack made again and
//! issues those requests again. `xl shutdown` ends it after the pass
//! under way; then dom0 hashes the disk image and the host compares it
//! with the pattern of the last pass, computed here: one lost or stale
//! write anywhere fails it (each pass's pattern differs from the last
//! one's at every 8-byte word).
//! - PVH (`pblk`): `xl save -c`, `xl save` + `xl restore`, `xl migrate`
//!   to this host, each while the passes run.
//! - PV (`vblk`): `xl save -c`, `xl save` + `xl restore` (live migration
//!   of a PV guest needs shadow paging, which this Xen lacks: see
//!   `mobility.rs`).
//! - PVH (`gblk`): restored with its backend gone (`xl restore -p`, the
//!   vbd's backend directory removed before `xl unpause`): the guest
//!   reports the disk, keeps running, and obeys `xl shutdown`.

use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, expect_run, guest, splitmix64, BootReport,
    GuestMode, GuestResult, GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

const SEED: u64 = 300;
/// The disk: big enough that a pass outlasts a suspend's handshake.
const DISK_MIB: u64 = 32;

fn disk(loopdev: &str) -> String {
    format!("disk = ['format=raw, vdev=xvda, access=rw, backendtype=phy, script=/etc/xen/scripts/block, target={loopdev}']")
}

/// dom0's steps for guest NAME on /tmp/NAME.img: a checkpoint, a save +
/// restore and (if `migrate`) a migration, each while a pass runs, then
/// `xl shutdown` and the image's hash.
fn script(name: &str, migrate: bool) -> String {
    let migrate = if migrate {
        format!(
            r#"
    lab_migrate {name}
    wait_console {name} "resume: running in a new domain (resume 2;" 1 60
    wait_console {name} "reconnected to" 2 180"#
        )
    } else {
        String::new()
    };
    format!(
        r#"
dd if=/dev/zero of=/tmp/{name}.img bs=1M count={DISK_MIB} 2>/dev/null
losetup -d /dev/loop0 2>/dev/null
losetup /dev/loop0 /tmp/{name}.img
run_guest_start {name} /etc/xen-lab/guests/{name}.cfg || exit 1
if wait_console {name} "blk: passes: pass 1 (seed" 1 120; then
    lab_save {name} /tmp/{name}.chk -c
    rm -f /tmp/{name}.chk
    wait_console {name} "suspend: cancelled" 1 60
    if lab_save {name} /tmp/{name}.save; then
        # The block script let go of the loop device with the domain.
        losetup /dev/loop0 /tmp/{name}.img 2>/dev/null
        lab_restore {name} /tmp/{name}.save
    fi
    rm -f /tmp/{name}.save
    wait_console {name} "resume: running in a new domain (resume 1;" 1 60
    wait_console {name} "reconnected to" 1 180{migrate}
    xl shutdown {name}
    run_guest_wait {name} 600
else
    run_guest_wait {name} 1
fi
echo "[xl check] {name}-sha $(sha256sum /tmp/{name}.img | cut -d' ' -f1)"
rm -f /tmp/{name}.img
"#
    )
}

/// The guest whose backend does not come back.
fn gone_script() -> String {
    format!(
        r#"
dd if=/dev/zero of=/tmp/gblk.img bs=1M count={DISK_MIB} 2>/dev/null
losetup -d /dev/loop0 2>/dev/null
losetup /dev/loop0 /tmp/gblk.img
run_guest_start gblk /etc/xen-lab/guests/gblk.cfg || exit 1
if wait_console gblk "blk: passes: pass 1 (seed" 1 120; then
    if lab_save gblk /tmp/gblk.save; then
        losetup /dev/loop0 /tmp/gblk.img 2>/dev/null
        xl restore -p /tmp/gblk.save > /tmp/xl-restore.out 2>&1
        echo "[xl mobility] restore-paused name=gblk rc=$?"
        lab_domid_refresh gblk
        d=$(cat /tmp/lab-domid-gblk)
        # The backend goes before the guest runs: its directory removed,
        # as if dom0's blkback had died with the old domain.
        xenstore-rm "/local/domain/0/backend/vbd/$d/51712"
        echo "[xl mobility] backend-removed rc=$?"
        xl unpause gblk
    fi
    rm -f /tmp/gblk.save
    wait_console gblk "resume: running in a new domain (resume 1;" 1 60
    wait_console gblk "disk dropped" 1 240
    wait_console gblk "waiting for the toolstack" 1 60
    xl shutdown gblk
    run_guest_wait gblk 120
else
    run_guest_wait gblk 1
fi
rm -f /tmp/gblk.img
"#
    )
}

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("mobility-blk", || {
            let spec = |name: &str, mode: GuestMode| {
                let mut g = guest(name, "blk")
                    .mode(mode)
                    .args(&["blk.mode=passes".into(), format!("blk.seed={SEED}")])
                    .memory(32)
                    .timeout(Duration::from_secs(1500));
                g.extra_config = vec![disk("/dev/loop0")];
                g
            };
            vec![
                Scenario::script(
                    "mobility-blk-pvh",
                    vec![spec("pblk", GuestMode::Pvh)],
                    &script("pblk", true),
                ),
                Scenario::script(
                    "mobility-blk-pv",
                    vec![spec("vblk", GuestMode::Pv)],
                    &script("vblk", false),
                ),
                Scenario::script(
                    "mobility-blk-gone",
                    vec![spec("gblk", GuestMode::Pvh)],
                    &gone_script(),
                ),
            ]
        })
    })
}

/// `[xl mobility] WHAT ... rc=R`: R of the first WHAT line.
fn rc(run: &GuestRun, what: &str) -> String {
    let prefix = format!("[xl mobility] {what} ");
    run.xl_output
        .iter()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split_whitespace().find_map(|w| w.strip_prefix("rc=")))
        .map_or_else(|| "missing".into(), str::to_string)
}

/// The sha256 of `bytes`, with the lab's own tool (dom0 uses busybox's).
fn sha256(bytes: &[u8]) -> String {
    xen_tests::sha256(bytes)
}

/// The image the guest must have left: the pattern of `seed`.
fn pattern(seed: u64) -> Vec<u8> {
    let size = (DISK_MIB << 20) as usize;
    let mut out = Vec::with_capacity(size);
    for k in 0..(size / 8) as u64 {
        out.extend_from_slice(&splitmix64(seed.wrapping_add(k)).to_le_bytes());
    }
    out
}

/// The seed of the last pass, from `blk: passes: done after pass P:
/// every disk holds seed S`.
fn final_seed(run: &GuestRun) -> u64 {
    run.console
        .iter()
        .find_map(|l| l.split_once("every disk holds seed ").map(|(_, r)| r))
        .and_then(|r| r.split(';').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no final pass line\n{}", run.describe()))
}

/// Requests in flight at each suspend the disk took, from `blk: suspend
/// taken with N request(s) in flight`.
fn in_flight_at_suspends(run: &GuestRun) -> Vec<u64> {
    run.console
        .iter()
        .filter_map(|l| l.split_once("blk: suspend taken with ").map(|(_, r)| r))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect()
}

fn check_passes(name: &str, steps: &[&str], suspends: usize, resumes: usize) {
    let run = expect_run(lab(), name);
    for what in steps {
        assert_eq!(rc(run, what), "0", "xl {what}\n{}", run.describe());
    }
    // Every suspend happened with requests in flight, none in between.
    let n = in_flight_at_suspends(run);
    assert_eq!(n.len(), suspends, "suspends taken inside transfers: {n:?}\n{}", run.describe());
    assert!(n.iter().all(|&k| k > 0), "{n:?}");
    let reconnects: Vec<&String> =
        run.console.iter().filter(|l| l.contains(": reconnected to ")).collect();
    assert_eq!(reconnects.len(), resumes, "{}", run.describe());
    for l in &reconnects {
        eprintln!("{l}");
    }
    assert!(!run.console.iter().any(|l| l.contains("FAILED")), "a pass failed\n{}", run.describe());
    // A write lost in the last pass leaves the previous pass's pattern
    // (or zeros, if it was the first) where it should have gone.
    let seed = final_seed(run);
    let want = sha256(&pattern(seed));
    let check = format!("[xl check] {name}-sha ");
    let got = run
        .xl_output
        .iter()
        .find_map(|l| l.strip_prefix(check.as_str()))
        .unwrap_or_else(|| panic!("no hash from dom0\n{}", run.describe()));
    assert_eq!(got.trim(), want, "the disk after the last pass (seed {seed})\n{}", run.describe());
    eprintln!("{name}: every byte of the {DISK_MIB} MiB disk holds seed {seed} ({n:?} in flight at the suspends)");
    assert_result(run, &GuestResult::Poweroff);
}

#[test]
fn pvh_disk_writes_survive_checkpoint_restore_and_migration() {
    check_passes("pblk", &["save-c", "save", "restore", "migrate"], 3, 2);
}

#[test]
fn pv_disk_writes_survive_checkpoint_and_restore() {
    check_passes("vblk", &["save-c", "save", "restore"], 2, 1);
}

#[test]
fn a_backend_that_does_not_come_back_is_reported_and_shutdown_still_works() {
    let run = expect_run(lab(), "gblk");
    assert_eq!(rc(run, "restore-paused"), "0", "{}", run.describe());
    assert_eq!(rc(run, "backend-removed"), "0", "{}", run.describe());
    assert_console_contains(run, "resume: running in a new domain (resume 1;");
    assert_console_contains(run, "cannot reconnect after the domain was restored");
    assert_console_contains(run, "disk dropped");
    assert_console_contains(run, "blk: passes: no disk left");
    assert_console_contains(run, "control: Poweroff requested by the toolstack");
    assert_result(run, &GuestResult::Poweroff);
}
