//! `app=blk`: every attached disk through blkfront.
//!
//! - `blk.mode=write` (default): fills every writable disk with the
//!   pattern of `pattern.rs` (`blk.seed=N`, default 1), in chunks of
//!   varying, unaligned sizes, then flushes. A read-only disk must refuse
//!   a write (checked and reported).
//! - `blk.mode=verify`: reads every disk back and reports the first
//!   mismatching byte offset, if any.
//! - `blk.mode=soak`: writes and verifies a region of every disk in a loop
//!   until the toolstack detaches it (`xl block-detach`), then closes it
//!   and reports its grants; ends when no disk is left (or after
//!   `blk.soak_s` seconds, default 300). It prints `blk: soak: ready for
//!   detach: N requests in flight` at a moment N > 0 requests are
//!   outstanding, at the start and again after each disk closes, so a
//!   script can detach while I/O is going on.
//!
//! - `blk.mode=hotplug`: disks come and go (`xl block-attach`,
//!   `xl block-detach`) under the xenbus hotplug manager; after each
//!   attach of a disk, the first `blk.hotplug_kib` KiB (default 1024) must
//!   hold what its previous attach wrote (`blk.seed` + attach number - 1),
//!   then get the next pattern (+ attach number), flushed and read back.
//!   One `blk: hotplug: NAME: attach #N: ...` line each. Ends at
//!   `xl shutdown`, or after `blk.soak_s` seconds (default 300), with
//!   every disk closed.
//!
//! - `blk.mode=passes`: writes the pattern over every writable disk
//!   again and again, pass `p` with seed `blk.seed + p`, each pass
//!   flushed, and carries its requests across `xl save`, `xl save -c` and
//!   `xl migrate`: a suspend is taken while a transfer waits with
//!   requests in flight, and in a new domain the disk reconnects to its
//!   new backend and issues those requests again (blkfront's
//!   `follow_suspend`). `xl shutdown` ends it after the pass under way
//!   (`blk: passes: done after pass P: every disk holds seed S`), so
//!   dom0 can check every byte against one pattern. A disk whose backend
//!   does not come back is reported and dropped; the guest keeps running
//!   and obeys the toolstack.
//!
//! - `blk.mode=bench`: on the first writable disk, sequential write and
//!   read (1 MiB requests over `blk.bench_mib` MiB, default 32), then
//!   4 KiB random reads and writes at queue depth 1 and 32
//!   (`blk.ios=N` each, default 2000), one `BLKBENCH` line per test with
//!   its throughput and, per request, the hypercalls (notifications,
//!   timer sets, blocks), notifications and grant operations — for
//!   `cargo xtask bench blk`. Overwrites the disk.
//!
//! - `blk.mode=smp`: the first writable disk's queues driven at once, one
//!   per vCPU, following `xl vcpu-set` (`smp.rs`).
//!
//! Figures per disk: bytes, time, throughput, requests, grant operations.

use super::pattern;
use crate::apps::{AppError, AppResult};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use kernel::blk::{self, Disk};
use kernel::cmdline::Cmdline;
use kernel::xenbus::control::ShutdownRequest;
use kernel::{kprintln, toolstack, xenbus};
use pv_drivers::blkfront::hotplug::VbdDriver;
use pv_drivers::blkfront::{BlkError, Config};
use pv_drivers::xenbus::hotplug::{self, Happening, Hotplug};

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
    write_span(name, d, seed, size)
}

/// Writes the pattern of `seed` over the first `size` bytes, flushes.
fn write_span(name: &str, d: &mut Disk, seed: u64, size: u64) -> Result<(), BlkError> {
    let t0 = platform::now_ns();
    let mut off = 0u64;
    let mut buf = vec![0u8; *CHUNKS.iter().max().unwrap()];
    let mut i = 0;
    while off < size {
        let n = (CHUNKS[i % CHUNKS.len()] as u64).min(size - off) as usize;
        pattern::fill(seed, off, &mut buf[..n]);
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
    verify_span(name, d, seed, size)
}

/// Checks the first `size` bytes hold the pattern of `seed`.
fn verify_span(name: &str, d: &mut Disk, seed: u64, size: u64) -> Result<Option<u64>, BlkError> {
    let t0 = platform::now_ns();
    let mut off = 0u64;
    let mut buf = vec![0u8; *CHUNKS.iter().max().unwrap()];
    let mut i = 3;
    while off < size {
        let n = (CHUNKS[i % CHUNKS.len()] as u64).min(size - off) as usize;
        d.read_at(off, &mut buf[..n])?;
        if let Some(bad) = pattern::first_mismatch(seed, off, &buf[..n]) {
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
        let backend = r.backend.map_or_else(|| String::from("gone"), |s| alloc::format!("{s}"));
        kprintln!(
            "blk: {name}: closed; backend {backend}; grants {} made, {} revoked ({} at close), {} refused",
            r.made,
            r.revoked_in_all,
            r.revoked,
            r.refused
        );
    }
}

fn open_all(config: Config) -> Vec<(String, Disk)> {
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
        match blk::open(dev, config) {
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
    // Every number below was validated at boot (cmdline::SETTINGS ranges).
    let seed = cmd.number("blk.seed").unwrap_or(1);
    let mode = cmd.choice("blk.mode");
    if mode == "hotplug" {
        let secs = cmd.number("blk.soak_s").unwrap_or(300);
        let kib = cmd.number("blk.hotplug_kib").unwrap_or(1024);
        let (passed, failed) = hotplug_disks(seed, secs, kib * 1024);
        kprintln!("blk: hotplug: done, {passed} attach(es) verified, {failed} failed");
        if failed > 0 {
            return Err(AppError::TestsFailed { failed, passed });
        }
        return Ok(());
    }
    if mode == "passes" {
        passes(seed);
    }
    if mode == "smp" {
        return super::smp::run(cmd);
    }
    let disks = open_all(Config::default());
    kprintln!("blk: {} disk(s), mode {mode}, seed {seed}", disks.len());
    let mut failed = 0u32;
    let mut passed = 0u32;
    if mode == "bench" {
        let mib = cmd.number("blk.bench_mib").unwrap_or(32);
        let ios = u32::try_from(cmd.number("blk.ios").unwrap_or(2000)).unwrap_or(u32::MAX);
        let mut done = false;
        for (name, mut d) in disks {
            if !done && !d.geometry().read_only {
                done = true;
                match bench(&name, &mut d, mib, ios) {
                    Ok(()) => passed += 1,
                    Err(e) => {
                        kprintln!("blk: {name}: FAILED: {e}");
                        failed += 1;
                    }
                }
                log_problems(&name, &mut d);
                report(&name, &d);
            }
            close(&name, d);
        }
        if !done {
            kprintln!("blk: bench: no writable disk");
            failed += 1;
        }
    } else if mode == "soak" {
        let secs = cmd.number("blk.soak_s").unwrap_or(300);
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
                        pattern::byte_at(seed, off)
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

/// One pass of `blk.mode=passes` over disk `d`: the pattern of `seed`
/// over all of it, in the usual odd chunks, flushed. Between chunks the
/// toolstack's requests are looked at: a suspend is left for the next
/// chunk's transfer (taken there with requests in flight), anything else
/// ends the run after this pass.
fn write_pass(d: &mut Disk, seed: u64, stop: &mut Option<ShutdownRequest>) -> Result<(), BlkError> {
    let size = d.geometry().bytes();
    let mut off = 0u64;
    let mut buf = vec![0u8; *CHUNKS.iter().max().unwrap()];
    let mut i = 0;
    while off < size {
        let n = (CHUNKS[i % CHUNKS.len()] as u64).min(size - off) as usize;
        pattern::fill(seed, off, &mut buf[..n]);
        d.write_at(off, &buf[..n])?;
        off += n as u64;
        i += 1;
        match toolstack::poll_request() {
            Some(ShutdownRequest::Suspend) => toolstack::defer_request(ShutdownRequest::Suspend),
            Some(req) => {
                if stop.is_none() {
                    kprintln!("blk: passes: {req:?} requested; ending after this pass");
                }
                *stop = Some(req);
            }
            None => {}
        }
    }
    d.flush()
}

/// Blocks until the toolstack asks for something other than a suspend
/// (suspends are carried out: no disk is left to quiesce).
fn wait_for_the_toolstack() -> ShutdownRequest {
    use kernel::xenbus::control;
    loop {
        let req = toolstack::poll_request().or_else(|| {
            xenbus::with(|bus| {
                let t = bus.deadline(core::time::Duration::from_secs(1));
                bus.next_event_for(control::SHUTDOWN_TOKEN, Some(t))
                    .ok()
                    .and_then(|_| control::shutdown_request(bus))
            })
            .flatten()
        });
        match req {
            None => {}
            Some(ShutdownRequest::Suspend) => {
                if let Err(e) = kernel::suspend::suspend() {
                    kprintln!("blk: passes: suspend failed: {e}; carrying on");
                }
            }
            Some(req) => return req,
        }
    }
}

/// `blk.mode=passes`: see the module docs. Ends the domain as the
/// toolstack asked.
fn passes(seed: u64) -> ! {
    let config = Config { follow_suspend: true, ..Config::default() };
    let mut disks = Vec::new();
    for (name, d) in open_all(config) {
        if d.geometry().read_only {
            kprintln!("blk: {name}: read-only, left out of the passes");
            close(&name, d);
        } else {
            disks.push((name, d));
        }
    }
    kprintln!(
        "blk: passes: {} disk(s); pass p writes seed {seed} + p; suspends are taken with requests in flight",
        disks.len()
    );
    let mut stop = None;
    let mut pass = 0u64;
    let mut failed = 0u32;
    while stop.is_none() {
        pass += 1;
        let s = seed + pass;
        kprintln!("blk: passes: pass {pass} (seed {s}) begins");
        let t0 = platform::now_ns();
        let mut i = 0;
        while i < disks.len() {
            let (name, d) = &mut disks[i];
            let r = write_pass(d, s, &mut stop);
            log_problems(name, d);
            match r {
                Ok(()) => i += 1,
                Err(e) => {
                    // Its backend did not come back after a restore, or
                    // it failed otherwise: reported, dropped, the rest go
                    // on and the guest keeps obeying the toolstack.
                    kprintln!("blk: {name}: pass {pass}: FAILED: {e}; disk dropped");
                    failed += 1;
                    let (name, d) = disks.remove(i);
                    report(&name, &d);
                    close(&name, d);
                }
            }
        }
        if disks.is_empty() {
            kprintln!("blk: passes: no disk left after pass {pass}; waiting for the toolstack");
            stop = Some(wait_for_the_toolstack());
            break;
        }
        kprintln!(
            "blk: passes: pass {pass} (seed {s}) complete on {} disk(s) in {} ms",
            disks.len(),
            ms_since(t0)
        );
    }
    for (name, d) in disks {
        report(&name, &d);
        close(&name, d);
    }
    kprintln!(
        "blk: passes: done after pass {pass}: every disk holds seed {}; {failed} disk(s) failed",
        seed + pass
    );
    toolstack::obey(stop.unwrap_or(ShutdownRequest::Poweroff));
    platform::shutdown(hypercall::abi::sched::ShutdownReason::Poweroff)
}

/// Writes and verifies the first 256 KiB (or less) of every writable disk
/// at varying offsets, round after round, until each is detached.
fn soak(mut disks: Vec<(String, Disk)>, secs: u64) -> (u32, u32) {
    let (mut passed, mut failed) = (0, 0);
    let deadline = platform::now_ns() + secs * 1_000_000_000;
    let mut round = 0u64;
    let mut ops = vec![0u64; disks.len()];
    // The ready line comes from the first publish, with I/O in flight.
    blk::announce_in_flight();
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
                if !disks.is_empty() {
                    // Ready for the next detach, again with I/O in flight.
                    blk::announce_in_flight();
                }
                continue;
            }
            let Some((off, len)) = pattern::soak_window(d.geometry().bytes(), round) else {
                // Too small for any I/O (a 0-sector disk): only its detach
                // is awaited, without spinning on XenStore.
                kernel::timer::sleep_ns(50_000_000);
                i += 1;
                continue;
            };
            let mut buf = vec![0u8; len];
            let r = if d.geometry().read_only {
                d.read_at(off, &mut buf)
            } else {
                pattern::fill(round, off, &mut buf);
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

/// What one bench test cost, from counters before and after.
struct Mark {
    ns: u64,
    stats: pv_drivers::blkfront::Stats,
    timer_sets: u64,
    blocks: u64,
    carried: u64,
}

fn mark(d: &Disk) -> Mark {
    Mark {
        ns: platform::now_ns(),
        stats: d.stats(),
        timer_sets: kernel::timer::stats().1,
        blocks: kernel::timer::blocks(),
        carried: kernel::timer::carried(),
    }
}

fn bench_line(test: &str, d: &Disk, m: &Mark, bytes: u64, ios: u64) {
    let now = mark(d);
    let ns = (now.ns - m.ns).max(1);
    let (a, b) = (&m.stats, &now.stats);
    let reqs = (b.requests - a.requests).max(1);
    let notifies = b.notifies - a.notifies;
    let grant_ops = (b.grants.granted - a.grants.granted) + (b.grants.revoked - a.grants.revoked);
    let timer_sets = now.timer_sets - m.timer_sets;
    let blocks = now.blocks - m.blocks;
    // A timer change made on the way into a block rides in its trap.
    let hcalls = (notifies + timer_sets + blocks).saturating_sub(now.carried - m.carried);
    // Milli-units, printed as decimals.
    let per = |n: u64| {
        let x = n * 1000 / reqs;
        alloc::format!("{}.{:03}", x / 1000, x % 1000)
    };
    kprintln!(
        "BLKBENCH test={test} bytes={bytes} ios={ios} ns={ns} kib_s={} iops={} reqs={reqs} notifies={notifies} timer_sets={timer_sets} blocks={blocks} grant_ops={grant_ops} hcalls_per_req={} notifies_per_req={} grant_ops_per_req={}",
        rate(bytes, 1_000_000_000 / 1024, ns),
        rate(ios, 1_000_000_000, ns),
        per(hcalls),
        per(notifies),
        per(grant_ops)
    );
}

/// `n * scale / ns` without overflow (a 64 GiB bench times 10^9 does not
/// fit a u64) or a division by zero.
fn rate(n: u64, scale: u64, ns: u64) -> u64 {
    let r = u128::from(n) * u128::from(scale) / u128::from(ns.max(1));
    u64::try_from(r).unwrap_or(u64::MAX)
}

/// xorshift64, for random offsets anyone can reproduce.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn bench(name: &str, d: &mut Disk, mib: u64, ios: u32) -> Result<(), BlkError> {
    let Some((span, blocks)) = pattern::bench_span(d.geometry().bytes(), mib) else {
        // Smaller than the one 4 KiB block the bench needs.
        return Err(BlkError::OutOfRange { offset: 0, len: 4096, size: d.geometry().bytes() });
    };
    kprintln!(
        "blk: {name}: bench over {span} bytes, {ios} random I/Os per test, {} queue(s)",
        d.features().queues
    );
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; CHUNK];
    pattern::fill(1, 0, &mut buf);
    // Sequential, 1 MiB calls.
    let m = mark(d);
    let mut off = 0;
    while off < span {
        let n = (span - off).min(CHUNK as u64) as usize;
        d.write_at(off, &buf[..n])?;
        off += n as u64;
    }
    d.flush()?;
    bench_line("seq-write", d, &m, span, span.div_ceil(CHUNK as u64));
    let m = mark(d);
    let mut off = 0;
    while off < span {
        let n = (span - off).min(CHUNK as u64) as usize;
        d.read_at(off, &mut buf[..n])?;
        off += n as u64;
    }
    bench_line("seq-read", d, &m, span, span.div_ceil(CHUNK as u64));
    // Random 4 KiB at queue depth 1 and 32.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for depth in [1usize, 32] {
        for write in [false, true] {
            let m = mark(d);
            let mut left = ios as usize;
            let mut sectors = Vec::with_capacity(depth);
            while left > 0 {
                let n = left.min(depth);
                sectors.clear();
                for _ in 0..n {
                    sectors.push(next(&mut rng) % blocks * 8);
                }
                let b = &mut buf[..n * 4096];
                if write {
                    d.write_blocks(&sectors, b)?;
                } else {
                    d.read_blocks(&sectors, b)?;
                }
                left -= n;
            }
            let test = alloc::format!("rand-{}-qd{depth}", if write { "write" } else { "read" });
            bench_line(&test, d, &m, u64::from(ios) * 4096, u64::from(ios));
        }
    }
    d.flush()?;
    kprintln!("blk: {name}: bench done");
    Ok(())
}

/// `blk.mode=hotplug`: see the module docs. Returns the attaches verified
/// and failed.
fn hotplug_disks(seed: u64, secs: u64, span: u64) -> (u32, u32) {
    use kernel::xenbus::control;
    let mut drv = VbdDriver::new(kernel::driver_env::KernelEnv::new, Config::default());
    let mut disks = Hotplug::new("vbd", hotplug::Config::default());
    kprintln!("blk: hotplug: {} before any disk", kernel::grants::summary_line());
    if let Some(Err(e)) = xenbus::with(|bus| disks.start(bus)) {
        kprintln!("blk: hotplug: cannot watch device/vbd: {e}; found by re-examination only");
    }
    let deadline = platform::now_ns() + secs * 1_000_000_000;
    let (mut passed, mut failed) = (0u32, 0u32);
    let mut shutdown = false;
    kprintln!("blk: hotplug: ready");
    while !shutdown && platform::now_ns() < deadline {
        let happened = xenbus::with(|bus| disks.poll(bus, &mut drv)).unwrap_or_default();
        for h in happened {
            kprintln!("{h}");
            match h {
                Happening::Attached { id, number, .. } => {
                    let name =
                        id.parse().map_or_else(|_| id.clone(), pv_drivers::blkfront::vbd_name);
                    let Some(d) = disks.device_mut(&id) else { continue };
                    match check_attach(&name, d, seed, number, span) {
                        Ok(what) => {
                            passed += 1;
                            kprintln!("blk: hotplug: {name}: attach #{number}: {what}");
                        }
                        Err(e) => {
                            failed += 1;
                            kprintln!("blk: hotplug: {name}: attach #{number}: FAILED: {e}");
                        }
                    }
                    log_problems(&name, d);
                    kprintln!("blk: hotplug: {}", kernel::grants::summary_line());
                }
                Happening::Detached { .. } => {
                    kprintln!("blk: hotplug: {}", kernel::grants::summary_line());
                }
                _ => {}
            }
        }
        // Sleep until an event, the manager's next re-examination, or 1 s.
        let now = platform::now_ns();
        let wake = disks
            .next_deadline()
            .map_or(now + 1_000_000_000, |t| t.0)
            .min(now + 1_000_000_000)
            .min(deadline);
        let ev = xenbus::with(|bus| bus.next_event(Some(xenstore_client::Instant(wake))));
        let mut next = match ev {
            Some(Ok(ev)) => Some(ev),
            Some(Err(xenstore_client::Error::TimedOut)) | None => None,
            Some(Err(e)) => {
                xenbus::recover("blk: hotplug", &e);
                disks.kick();
                None
            }
        };
        while let Some(ev) = next.take() {
            match ev.token.as_str() {
                control::SHUTDOWN_TOKEN => {
                    let req = xenbus::with(control::shutdown_request).flatten();
                    if req == Some(control::ShutdownRequest::Suspend) {
                        // Taken between two checks: no request is in
                        // flight (each attach's I/O completes before the
                        // loop looks at XenStore). Cancelled, the disks
                        // carry on; in a new domain the toolstack made the
                        // vbds again with a new backend, which the manager
                        // finds when it looks: the old disk is let go, the
                        // new one attached and its data checked.
                        match kernel::suspend::suspend() {
                            Ok(platform::suspend::Outcome::Resumed { .. }) => disks.kick(),
                            Ok(_) => {}
                            Err(e) => kprintln!("blk: hotplug: suspend failed: {e}; carrying on"),
                        }
                    } else if let Some(req) = req {
                        kprintln!("blk: hotplug: {req:?} requested by the toolstack");
                        shutdown = true;
                    }
                }
                token => {
                    disks.on_event(token);
                }
            }
            next = xenbus::with(|bus| {
                let now = bus.now();
                bus.next_event(Some(now)).ok()
            })
            .flatten();
        }
    }
    for h in xenbus::with(|bus| disks.shutdown(bus, &mut drv)).unwrap_or_default() {
        kprintln!("{h}");
    }
    let c = disks.counters();
    kprintln!(
        "blk: hotplug: {} attaches, {} detaches, {} scans ({} by the timer), {} found by the timer, {} connect failures; {}",
        c.attaches, c.detaches, c.scans, c.timer_scans, c.found_by_timer, c.connect_failures,
        kernel::grants::summary_line()
    );
    (passed, failed)
}

/// After attach `number` of a disk: what the previous attach wrote must be
/// there; then this attach's pattern goes on, flushed and read back.
fn check_attach(
    name: &str,
    d: &mut Disk,
    seed: u64,
    number: u32,
    span: u64,
) -> Result<String, String> {
    let span = span.min(d.geometry().bytes());
    let e = |e: BlkError| alloc::format!("{e}");
    let mine = seed + u64::from(number);
    let mut what = String::new();
    if number > 1 {
        match verify_span(name, d, mine - 1, span).map_err(e)? {
            None => what.push_str(&alloc::format!(
                "previous attach's pattern (seed {}) intact over {span} bytes; ",
                mine - 1
            )),
            Some(off) => {
                return Err(alloc::format!(
                    "previous attach's pattern (seed {}) MISMATCH at byte offset {off}",
                    mine - 1
                ))
            }
        }
    }
    if d.geometry().read_only {
        what.push_str("read-only, not written");
        return Ok(what);
    }
    write_span(name, d, mine, span).map_err(e)?;
    match verify_span(name, d, mine, span).map_err(e)? {
        None => {
            what.push_str(&alloc::format!("wrote seed {mine} and read it back"));
            Ok(what)
        }
        Some(off) => Err(alloc::format!("read back seed {mine}: MISMATCH at byte offset {off}")),
    }
}
