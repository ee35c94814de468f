//! blkfront on real Xen, one QEMU boot: dom0 makes loop-device disks
//! (8 MiB, and 33 MiB + 512 B), a guest fills them with the documented
//! pattern (`splitmix64(seed + k)` at byte `8*k`) in chunks of odd sizes,
//! flushes and powers off; dom0 hashes every byte of each image and the
//! host compares with the hash of the pattern it computes itself; a
//! second guest reads it all back and verifies; a read-only disk refuses
//! writes; a third guest does I/O until `xl block-detach` takes its disks
//! one by one, and closes each with every grant revoked. And one disk's
//! two queues driven at once from two vCPUs (`blk.mode=smp`), each
//! queue's events taken on its own vCPU, through `xl vcpu-set` 2 -> 1 ->
//! 2 with no failed I/O.

use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, expect_run, guest, sha256, splitmix64,
    BootReport, GuestResult, GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

const SEED: u64 = 7;
const SIZE_A: u64 = 8 << 20;
const SIZE_B: u64 = (33 << 20) + 512;
const SIZE_C: u64 = 1 << 20;

const SCRIPT: &str = include_str!("blk/disks.sh");
const SMP_SCRIPT: &str = include_str!("blk/smp.sh");

fn disk(vdev: &str, loopdev: &str, access: &str) -> String {
    format!("'format=raw, vdev={vdev}, access={access}, backendtype=phy, script=/etc/xen/scripts/block, target={loopdev}'")
}

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("blk", || {
            let a = disk("xvda", "/dev/loop0", "rw");
            let b = disk("xvdb", "/dev/loop1", "rw");
            let c = disk("xvdc", "/dev/loop2", "ro");
            let mut w = guest("blkw", "blk")
                .args(&["blk.mode=write".into(), format!("blk.seed={SEED}")])
                .memory(64)
                .timeout(Duration::from_secs(400));
            w.extra_config = vec![format!("disk = [{a}, {b}, {c}]")];
            let mut v = guest("blkv", "blk")
                .args(&["blk.mode=verify".into(), format!("blk.seed={SEED}")])
                .memory(64)
                .timeout(Duration::from_secs(400));
            v.extra_config = vec![format!("disk = [{a}, {b}]")];
            let mut d = guest("blkd", "blk")
                .args(&["blk.mode=soak".into(), "blk.soak_s=200".into()])
                .memory(64)
                .timeout(Duration::from_secs(300));
            d.extra_config = vec![format!("disk = [{a}, {b}]")];
            let mut q = guest("blkq", "blk")
                .vcpus(2)
                .args(&["blk.mode=smp".into(), format!("blk.seed={SEED}"), "blk.soak_s=900".into()])
                .memory(64)
                .timeout(Duration::from_secs(1200));
            q.extra_config = vec![format!("disk = [{}]", disk("xvda", "/dev/loop3", "rw"))];
            vec![
                Scenario::script("blk", vec![w, v, d], SCRIPT),
                Scenario::script("blksmp", vec![q], SMP_SCRIPT),
            ]
        })
    })
}

/// The value after `[xl check] KEY ` in dom0's output. The script prints
/// checks between guests, so they land with whichever run collected them.
fn check_value<'a>(_run: &GuestRun, key: &str) -> Option<&'a str> {
    ["blkw", "blkv", "blkd"]
        .iter()
        .filter_map(|n| lab().run(n).ok())
        .find_map(|r| xen_tests::check_value(r, key))
}

fn pattern(seed: u64, size: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(size as usize);
    for k in 0..size.div_ceil(8) {
        v.extend_from_slice(&splitmix64(seed.wrapping_add(k)).to_le_bytes());
    }
    v.truncate(size as usize);
    v
}

/// SHA-256 (FIPS 180-4), to compare with dom0's busybox `sha256sum`.

#[test]
fn the_guest_writes_the_pattern_and_dom0_finds_every_byte_in_place() {
    let run = expect_run(lab(), "blkw");
    assert_result(run, &GuestResult::Poweroff);
    assert_console_contains(run, "blk: xvda: wrote 8388608 bytes");
    assert_console_contains(run, "blk: xvdb: wrote 34603520 bytes");
    assert_console_contains(run, "blk: done, 3 disk(s) ok, 0 failed");
    for (name, size) in [("a", SIZE_A), ("b", SIZE_B)] {
        let got = check_value(run, &format!("size-{name}")).map(str::trim);
        assert_eq!(got, Some(size.to_string().as_str()), "image {name} size\n{}", run.describe());
        let want = sha256(&pattern(SEED, size));
        let got = check_value(run, &format!("sha-{name}")).map(str::trim);
        assert_eq!(
            got,
            Some(want.as_str()),
            "image {name}: dom0's sha256 of every byte\n{}",
            run.describe()
        );
    }
    // The last word of the odd-sized disk, as od prints it (little-endian u64).
    let k = SIZE_B / 8 - 1;
    let want = format!("{:016x}", splitmix64(SEED + k));
    assert_eq!(check_value(run, "word-b-last").map(str::trim), Some(want.as_str()));
}

#[test]
fn a_read_only_disk_refuses_writes_and_stays_untouched() {
    let run = expect_run(lab(), "blkw");
    assert_console_contains(run, "xvdc: write refused: the disk is read-only");
    assert_console_contains(run, "read-only");
    let zeros = sha256(&vec![0u8; SIZE_C as usize]);
    assert_eq!(
        check_value(run, "sha-c").map(str::trim),
        Some(zeros.as_str()),
        "\n{}",
        run.describe()
    );
}

#[test]
fn a_second_boot_reads_every_byte_back() {
    let run = expect_run(lab(), "blkv");
    assert_result(run, &GuestResult::Poweroff);
    assert_console_contains(run, "blk: xvda: verify ok, every byte matches seed 7");
    assert_console_contains(run, "blk: xvdb: verify ok, every byte matches seed 7");
    assert_console_contains(run, "blk: done, 2 disk(s) ok, 0 failed");
}

/// The numbers in `text`, in order.
fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect()
}

/// The number right before `suffix` in `line`.
fn number_before(line: &str, suffix: &str) -> Option<u64> {
    let head = &line[..line.find(suffix)?];
    head.rsplit(' ').next()?.parse().ok()
}

#[test]
fn block_detach_during_io_closes_each_disk_with_every_grant_revoked() {
    let run = expect_run(lab(), "blkd");
    assert_result(run, &GuestResult::Poweroff);
    // Each detach was asked for after the guest said it had requests
    // outstanding, once per disk.
    let ready: Vec<&String> =
        run.console.iter().filter(|l| l.contains("blk: soak: ready for detach: ")).collect();
    assert_eq!(ready.len(), 2, "{ready:?}\n{}", run.describe());
    for l in &ready {
        let n = number_before(l, " requests in flight");
        assert!(n.is_some_and(|n| n > 0), "{l}");
    }
    for d in ["xvda", "xvdb"] {
        let line = |what: &str| -> &String {
            run.console
                .iter()
                .find(|l| l.contains(&format!("blk: {d}: {what}")))
                .unwrap_or_else(|| panic!("no `{d}: {what}` line\n{}", run.describe()))
        };
        assert_console_contains(run, &format!("blk: {d}: backend is leaving after"));
        // The requests in flight when the backend started leaving were all
        // answered (completed, or failed by the backend's response): none
        // abandoned, none answered wrongly.
        let stats = run
            .console
            .iter()
            .find(|l| l.contains(&format!("blk: {d}: ")) && l.contains(" responses, "))
            .unwrap_or_else(|| panic!("no {d} stats\n{}", run.describe()));
        let requests = number_before(stats, " requests (");
        let responses = number_before(stats, " responses, ");
        assert!(requests.is_some_and(|n| n > 0) && responses == requests, "{stats}");
        assert!(stats.contains("bad ids 0, orphaned 0, bad ops 0, bad producer 0"), "{stats}");
        // The backend finished before the guest revoked anything: blkback
        // unmaps everything before it says Closed, so every grant the disk
        // ever made comes back. The guest reads the state once it is woken;
        // by then libxl may already have removed the closed backend's
        // directory ("gone"), which also comes after blkback's unmaps.
        let closed = line("closed;");
        assert!(
            closed.contains("closed; backend Closed (6);")
                || closed.contains("closed; backend gone;"),
            "{closed}\n{}",
            run.describe()
        );
        let g = numbers(closed.split("grants ").nth(1).unwrap());
        let (made, revoked, refused) = (g[0], g[1], g[3]);
        assert!(made > 0 && made == revoked && refused == 0, "{closed}");
    }
    assert_console_contains(run, "blk: done, 2 disk(s) ok, 0 failed");
}

#[test]
fn blkback_offers_two_queues_and_the_guest_spreads_requests_over_both() {
    for name in ["blkw", "blkv"] {
        let run = expect_run(lab(), name);
        for d in ["xvda", "xvdb"] {
            let line = run
                .console
                .iter()
                .find(|l| l.contains(&format!("blk: {d}: ")) && l.contains("queues offered"))
                .unwrap_or_else(|| panic!("{name}: no {d} line\n{}", run.describe()));
            assert!(line.contains("queues offered 2, using 2 queue(s)"), "{name}: {line}");
            let stats = run
                .console
                .iter()
                .find(|l| l.contains(&format!("blk: {d}: ")) && l.contains("per queue ["))
                .unwrap_or_else(|| panic!("{name}: no {d} stats\n{}", run.describe()));
            let per: Vec<u64> = stats
                .split("per queue [")
                .nth(1)
                .and_then(|s| s.split(']').next())
                .map(|s| s.split(", ").filter_map(|n| n.parse().ok()).collect())
                .unwrap_or_default();
            assert!(per.len() == 2 && per.iter().all(|&n| n > 0), "{name}: {stats}");
            assert!(stats.contains("bad ids 0, orphaned 0"), "{name}: {stats}");
        }
    }
    // And the pattern written over two queues still verifies, byte for byte.
    assert_console_contains(expect_run(lab(), "blkv"), "blk: done, 2 disk(s) ok, 0 failed");
}

/// One lane's figures for an epoch of `blk.mode=smp`, from its summary
/// line.
#[derive(Debug)]
struct LaneEpoch {
    passes: u64,
    requests: u64,
    responses: u64,
    events: Vec<u64>,
    overlapping: u64,
    failed: u64,
}

fn lane_epoch(run: &GuestRun, epoch: &str, lane: usize) -> LaneEpoch {
    let key = format!("blk: smp: {epoch} summary: lane {lane} ");
    let line = run
        .console
        .iter()
        .find(|l| l.contains(&key))
        .unwrap_or_else(|| panic!("no `{key}` line\n{}", run.describe()));
    let num = |name: &str| -> u64 {
        let rest =
            line.split(&format!(" {name} ")).nth(1).unwrap_or_else(|| panic!("{name} in {line}"));
        rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let events = line
        .split("events by vCPU [")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or_else(|| panic!("events in {line}"))
        .split(", ")
        .map(|n| n.parse().unwrap())
        .collect();
    LaneEpoch {
        passes: num("passes"),
        requests: num("requests"),
        responses: num("responses"),
        events,
        overlapping: num("overlapping"),
        failed: num("failed"),
    }
}

/// `blk.mode=smp` with `vcpus = 2` and a disk blkback gives 2 queues:
/// queue k's event channel is bound to vCPU k and vCPU k does its I/O;
/// every event of a queue is taken on the vCPU its channel is bound to
/// (counted by the upcall on that vCPU), both vCPUs have calls in
/// progress at once, and every pass reads back byte for byte what it
/// wrote. `xl vcpu-set 1` parks queue 1 on vCPU 0 (its events then come
/// there), `xl vcpu-set 2` gives it back; after `xl save` and `xl
/// restore` the disk reconnects and each new channel is on its vCPU
/// again (epoch 3); no I/O fails.
#[test]
fn each_vcpu_drives_its_own_queue_and_takes_its_events_through_vcpu_set() {
    let run = expect_run(lab(), "blkq");
    for l in run.xl_output.iter().filter(|l| l.starts_with("[xl check]")) {
        eprintln!("blkq: {l}");
    }
    for l in run.console.iter().filter(|l| {
        l.contains("summary:")
            || l.contains("smp: vCPU")
            || l.contains("FAILED")
            || l.contains("parked")
    }) {
        eprintln!("blkq: {l}");
    }
    assert_result(run, &GuestResult::Poweroff);
    assert_console_contains(run, "blk: smp: xvda: 2 queue(s) in 2 part(s) on 2 vCPU(s)");
    assert_console_contains(run, "smp: vCPU 1 offline (xl vcpu-set)");
    assert_console_contains(run, "smp: vCPU 1 online (xl vcpu-set)");
    assert_console_contains(run, "blk: smp: lane 1 leaves vCPU 1 for vCPU 0 (parked)");
    assert_console_contains(run, "blk: smp: suspend: 2 lanes parked, joined into one device");
    assert_console_contains(
        run,
        "blk: smp: resumed (a new domain); device reconnected to its new backend",
    );
    let bound =
        run.console.iter().filter(|l| l.contains("lane 1 (queue 1) bound to vCPU 1")).count();
    assert_eq!(
        bound,
        3,
        "lane 1 bound to vCPU 1 at the start, after vcpu-set 2 and after the restore\n{}",
        run.describe()
    );
    for e in ["epoch 0", "epoch 2", "epoch 3"] {
        assert_console_contains(run, &format!("blk: smp: {e}: calls on two vCPUs at once"));
    }
    assert!(!run.console.iter().any(|l| l.contains("FAILED")), "a lane failed\n{}", run.describe());
    for epoch in ["epoch 0", "epoch 1", "epoch 2", "epoch 3"] {
        let (l0, l1) = (lane_epoch(run, epoch, 0), lane_epoch(run, epoch, 1));
        eprintln!("{epoch}: lane 0 {l0:?}\n{epoch}: lane 1 {l1:?}");
        for l in [&l0, &l1] {
            assert_eq!(l.failed, 0, "{epoch}: {l:?}");
            assert!(l.passes > 0 && l.requests > 0, "{epoch}: {l:?}");
            assert_eq!(l.requests, l.responses, "{epoch}: every request answered: {l:?}");
        }
        // Queue 0 never leaves vCPU 0.
        assert!(l0.events[0] > 0 && l0.events[1] == 0, "{epoch}: lane 0 {l0:?}");
        if epoch == "epoch 1" {
            // vCPU 1 offline: queue 1 parked on vCPU 0, its events there.
            assert!(l1.events[0] > 0 && l1.events[1] == 0, "{epoch}: lane 1 {l1:?}");
        } else {
            assert!(l1.events[1] > 0 && l1.events[0] == 0, "{epoch}: lane 1 {l1:?}");
            assert!(l0.overlapping + l1.overlapping > 0, "{epoch}: calls at once");
        }
    }
    let whole = (lane_epoch(run, "whole run", 0), lane_epoch(run, "whole run", 1));
    assert_eq!(whole.0.failed + whole.1.failed, 0);
    assert_console_contains(run, " 0 failed; Poweroff requested");
}
