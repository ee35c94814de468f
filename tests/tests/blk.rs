//! blkfront on real Xen, one QEMU boot: dom0 makes loop-device disks
//! (8 MiB, and 33 MiB + 512 B), a guest fills them with the documented
//! pattern (`splitmix64(seed + k)` at byte `8*k`) in chunks of odd sizes,
//! flushes and powers off; dom0 hashes every byte of each image and the
//! host compares with the hash of the pattern it computes itself; a
//! second guest reads it all back and verifies; a read-only disk refuses
//! writes; a third guest does I/O until `xl block-detach` takes its disks
//! one by one, and closes each with every grant revoked.

use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, expect_run, guest, splitmix64, BootReport,
    GuestResult, GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

const SEED: u64 = 7;
const SIZE_A: u64 = 8 << 20;
const SIZE_B: u64 = (33 << 20) + 512;
const SIZE_C: u64 = 1 << 20;

const SCRIPT: &str = include_str!("blk/disks.sh");

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
            vec![Scenario::script("blk", vec![w, v, d], SCRIPT)]
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
fn sha256(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(block[4 * i..4 * i + 4].try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let mut s = h;
        for i in 0..64 {
            let s1 = s[4].rotate_right(6) ^ s[4].rotate_right(11) ^ s[4].rotate_right(25);
            let ch = (s[4] & s[5]) ^ (!s[4] & s[6]);
            let t1 = s[7].wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = s[0].rotate_right(2) ^ s[0].rotate_right(13) ^ s[0].rotate_right(22);
            let maj = (s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]);
            let t2 = s0.wrapping_add(maj);
            s = [t1.wrapping_add(t2), s[0], s[1], s[2], s[3].wrapping_add(t1), s[4], s[5], s[6]];
        }
        for (a, b) in h.iter_mut().zip(s) {
            *a = a.wrapping_add(b);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[test]
fn sha256_is_right() {
    assert_eq!(sha256(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

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
