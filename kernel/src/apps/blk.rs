//! `app=blk`: every attached disk through blkfront.
//!
//! - `blk.mode=write` (default): fills every writable disk with the
//!   pattern of `blk_pattern` (`blk.seed=N`, default 1), in chunks of
//!   varying, unaligned sizes, then flushes. A read-only disk must refuse
//!   a write (checked and reported).
//! - `blk.mode=verify`: reads every disk back and reports the first
//!   mismatching byte offset, if any.
//! - `blk.mode=soak`: writes and verifies a region of every disk in a loop
//!   until the toolstack detaches it (`xl block-detach`), then closes it
//!   and reports its grants; ends when no disk is left (or after
//!   `blk.soak_s` seconds, default 300).
//!
//! Figures per disk: bytes, time, throughput, requests, grant operations.

use super::{AppError, AppResult};
use crate::blk::{self, Disk};
use crate::blk_pattern;
use crate::cmdline::Cmdline;
use crate::{kprintln, platform, xenbus};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use pv_drivers::blkfront::{BlkError, Config};

/// Chunk lengths, cycled: odd sizes so requests start and end anywhere.
const CHUNKS: &[usize] = &[3, 509, 65_536, 151_563, 1 << 20, 777_777, 4096, 8191];

fn ms_since(t0: u64) -> u64 {
    (platform::now_ns() - t0) / 1_000_000
}

fn kib_per_s(bytes: u64, ms: u64) -> u64 {
    bytes * 1000 / 1024 / ms.max(1)
}

fn report(name: &str, d: &Disk) {
    let s = d.stats();
    kprintln!(
        "blk: {name}: {} requests ({} indirect; per queue {:?}), {} responses, max {} in flight, {} notifies, {} waits; grants {} made, {} revoked, {} refused; bad ids {}, orphaned {}, bad ops {}, bad producer {}",
        s.requests, s.indirect_requests, &s.queue_requests[..d.features().queues as usize],
        s.responses, s.max_in_flight, s.notifies, s.waits,
        s.grants.granted, s.grants.revoked, s.grants.revoke_refused, s.bad_ids, s.orphaned, s.bad_ops,
        s.bad_producer
    );
}

fn log_problems(name: &str, d: &mut Disk) {
    for p in d.take_problems() {
        log::warn!("blk: {name}: {p}");
    }
}

fn write_disk(name: &str, d: &mut Disk, seed: u64) -> Result<(), BlkError> {
    let size = d.geometry().bytes();
    let t0 = platform::now_ns();
    let mut off = 0u64;
    let mut buf = vec![0u8; *CHUNKS.iter().max().unwrap()];
    let mut i = 0;
    while off < size {
        let n = (CHUNKS[i % CHUNKS.len()] as u64).min(size - off) as usize;
        blk_pattern::fill(seed, off, &mut buf[..n]);
        d.write_at(off, &buf[..n])?;
        off += n as u64;
        i += 1;
    }
    d.flush()?;
    let ms = ms_since(t0);
    kprintln!(
        "blk: {name}: wrote {size} bytes in {i} chunks, flushed, {ms} ms ({} KiB/s)",
        kib_per_s(size, ms)
    );
    Ok(())
}

/// `Ok(None)` if every byte matches, `Ok(Some(offset))` at the first that does not.
fn verify_disk(name: &str, d: &mut Disk, seed: u64) -> Result<Option<u64>, BlkError> {
    let size = d.geometry().bytes();
    let t0 = platform::now_ns();
    let mut off = 0u64;
    let mut buf = vec![0u8; *CHUNKS.iter().max().unwrap()];
    let mut i = 3;
    while off < size {
        let n = (CHUNKS[i % CHUNKS.len()] as u64).min(size - off) as usize;
        d.read_at(off, &mut buf[..n])?;
        if let Some(bad) = blk_pattern::first_mismatch(seed, off, &buf[..n]) {
            return Ok(Some(bad));
        }
        off += n as u64;
        i += 1;
    }
    let ms = ms_since(t0);
    kprintln!("blk: {name}: read {size} bytes in {ms} ms ({} KiB/s)", kib_per_s(size, ms));
    Ok(None)
}

fn close(name: &str, d: Disk) {
    let r = xenbus::with(|bus| d.close(bus));
    if let Some(r) = r {
        kprintln!(
            "blk: {name}: closed; {} grants revoked, {} refused; backend {:?}",
            r.revoked,
            r.refused,
            r.backend
        );
    }
}

fn open_all() -> Vec<(String, Disk)> {
    let mut out = Vec::new();
    for dev in blk::list() {
        let dev = match dev {
            Ok(d) => d,
            Err(e) => {
                kprintln!("blk: broken device entry: {e}");
                continue;
            }
        };
        let name = blk::name(&dev);
        match blk::open(dev, Config::default()) {
            Ok(d) => {
                let g = d.geometry();
                let f = d.features();
                kprintln!(
                    "blk: {name}: {} sectors of 512 B ({} bytes), sector-size {}, {}{}; ring {} page(s) {} slots, indirect {}, persistent {}, flush {}, barrier {}, discard {}, queues offered {}, using {} queue(s)",
                    g.sectors, g.bytes(), g.sector_size,
                    if g.read_only { "read-only" } else { "read-write" },
                    if g.removable { ", removable" } else { "" },
                    f.ring_pages, d.ring_slots(), f.indirect_segments, f.persistent, f.flush,
                    f.barrier, f.discard, f.max_queues, f.queues
                );
                out.push((name, d));
            }
            Err(e) => kprintln!("blk: {name}: cannot connect: {e}"),
        }
    }
    out
}

pub fn run(cmd: &Cmdline<'_>) -> AppResult {
    if xenbus::identity().is_none() {
        return Err(AppError::BadSetting("app=blk needs XenStore (a domU)"));
    }
    let seed: u64 = match cmd.get("blk.seed").map(str::parse) {
        None => 1,
        Some(Ok(s)) => s,
        Some(Err(_)) => return Err(AppError::BadSetting("blk.seed= takes a number")),
    };
    let mode = cmd.get("blk.mode").unwrap_or("write");
    if !matches!(mode, "write" | "verify" | "soak") {
        return Err(AppError::BadSetting("blk.mode= takes write, verify or soak"));
    }
    let disks = open_all();
    kprintln!("blk: {} disk(s), mode {mode}, seed {seed}", disks.len());
    let mut failed = 0u32;
    let mut passed = 0u32;
    if mode == "soak" {
        let secs = cmd.get("blk.soak_s").and_then(|v| v.parse().ok()).unwrap_or(300u64);
        let (p, f) = soak(disks, secs);
        passed += p;
        failed += f;
    } else {
        for (name, mut d) in disks {
            let ro = d.geometry().read_only;
            let outcome = match mode {
                "write" if ro => match d.write_at(0, &[0]) {
                    Err(BlkError::ReadOnly) => {
                        kprintln!("blk: {name}: write refused: {}", BlkError::ReadOnly);
                        Ok(())
                    }
                    other => Err(alloc::format!("read-only disk accepted a write: {other:?}")),
                },
                "write" => write_disk(&name, &mut d, seed).map_err(|e| alloc::format!("{e}")),
                _ => match verify_disk(&name, &mut d, seed) {
                    Ok(None) => {
                        kprintln!("blk: {name}: verify ok, every byte matches seed {seed}");
                        Ok(())
                    }
                    Ok(Some(off)) => Err(alloc::format!(
                        "verify MISMATCH at byte offset {off} (want {:#04x})",
                        blk_pattern::byte_at(seed, off)
                    )),
                    Err(e) => Err(alloc::format!("{e}")),
                },
            };
            log_problems(&name, &mut d);
            report(&name, &d);
            match outcome {
                Ok(()) => passed += 1,
                Err(e) => {
                    kprintln!("blk: {name}: FAILED: {e}");
                    failed += 1;
                }
            }
            close(&name, d);
        }
    }
    kprintln!("blk: done, {passed} disk(s) ok, {failed} failed");
    if failed > 0 {
        return Err(AppError::TestsFailed { failed, passed });
    }
    Ok(())
}

/// Writes and verifies the first 256 KiB (or less) of every writable disk
/// at varying offsets, round after round, until each is detached.
fn soak(mut disks: Vec<(String, Disk)>, secs: u64) -> (u32, u32) {
    let (mut passed, mut failed) = (0, 0);
    let deadline = platform::now_ns() + secs * 1_000_000_000;
    let mut round = 0u64;
    let mut ops = vec![0u64; disks.len()];
    kprintln!("blk: soak: ready for detach");
    while !disks.is_empty() && platform::now_ns() < deadline {
        let mut i = 0;
        while i < disks.len() {
            let (name, d) = &mut disks[i];
            let leaving = xenbus::with(|bus| d.backend_leaving(bus)).unwrap_or(Ok(true));
            if !matches!(leaving, Ok(false)) {
                let (name, d) = disks.remove(i);
                let n = ops.remove(i);
                kprintln!("blk: {name}: backend is leaving after {n} ops; closing");
                report(&name, &d);
                close(&name, d);
                passed += 1;
                continue;
            }
            let span = d.geometry().bytes().min(256 * 1024);
            let off = (round * 4099) % (span / 2);
            let len = (span / 2) as usize - (round as usize % 1000);
            let mut buf = vec![0u8; len];
            let r = if d.geometry().read_only {
                d.read_at(off, &mut buf)
            } else {
                blk_pattern::fill(round, off, &mut buf);
                d.write_at(off, &buf).and_then(|_| {
                    let mut back = vec![0u8; len];
                    d.read_at(off, &mut back)?;
                    if back != buf {
                        kprintln!("blk: {name}: soak readback differs at round {round}");
                        failed += 1;
                    }
                    Ok(())
                })
            };
            log_problems(name, d);
            match r {
                Ok(()) => ops[i] += 1,
                // An I/O failing because the backend went away mid-flight
                // is expected here; anything else is reported.
                Err(e) => kprintln!("blk: {name}: I/O error during soak: {e}"),
            }
            i += 1;
        }
        round += 1;
    }
    for (name, d) in disks {
        kprintln!("blk: {name}: never detached within {secs} s");
        failed += 1;
        close(&name, d);
    }
    (passed, failed)
}
