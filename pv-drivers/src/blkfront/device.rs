//! A connected block device: requests on the ring, responses checked
//! before they are believed, the block API the kernel uses, and close.
//!
//! Every call is synchronous for its caller but not one request at a
//! time: a long transfer is split into requests (inline segments, or
//! indirect segment pages when offered) that are all queued at once, as
//! far as the ring and the bounce pool allow, then collected in whatever
//! order the backend answers. Every wait has a deadline.

use super::connect::{
    advertise, build_queues, read_connected, read_offer, release_all, wait_backend_or_gone,
};
use super::env::{BlkEnv, Reconnected};
use super::pool::{GrantCounts, Pool};
use super::queue::{InFlight, Queue, QueueSetup, Taken, MAX_QUEUES};
use super::wire::{get_indirect_segment, put_indirect_segment, RingRequest};
use super::BlkError;
use crate::env::PAGE_WORDS;
use crate::ring::RingError;
use crate::xenbus::device::{self, DeviceInfo, XenbusState};
use crate::xenbus::Bus;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use core::time::Duration;
use hypercall::abi::blkif::{
    DiscardFlags, Operation, Request, RequestDiscard, RequestIndirect, Response, Segment,
    VdiskInfo, MAX_INDIRECT_PAGES_PER_REQUEST, MAX_SEGMENTS_PER_REQUEST, RSP_EOPNOTSUPP, RSP_OKAY,
    SECTOR_BYTES, SEGMENTS_PER_INDIRECT_PAGE,
};
use hypercall::abi::grant_table::GrantRef;
use xenstore_client::Transport;

const PAGE_BYTES: usize = 4096;

/// What the frontend asks for; the backend's offer caps it.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Largest `ring-page-order` to use (pages = 2^order).
    pub max_ring_order: u32,
    /// Largest number of segments per indirect request.
    pub max_indirect_segments: u32,
    /// Advertise `feature-persistent`.
    pub persistent: bool,
    /// Most queues to use when the backend offers `multi-queue-max-queues`
    /// (capped at [`MAX_QUEUES`]; 1: one ring, the plain protocol).
    pub max_queues: u32,
    /// Bounce pages (data and indirect) this device may hold.
    pub pool_pages: usize,
    /// How long a request may go unanswered.
    pub io_timeout: Duration,
    /// How long the backend may take to change state.
    pub xenbus_timeout: Duration,
    /// Carry requests across a suspend (`xl save`, `xl migrate`): the
    /// kernel may suspend the domain while a call waits for answers
    /// ([`BlkEnv::suspend_point`]); in a new domain the device connects
    /// to the backend the toolstack made again and puts every request
    /// that was in flight on the new rings, so none is lost (Linux's
    /// `blkif_recover`). Off for devices the hotplug manager replaces
    /// after a resume.
    pub follow_suspend: bool,
    /// How long, in a new domain, the new backend may take to reach each
    /// state (it may still be coming up when the guest runs again).
    pub resume_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_ring_order: 2,
            max_indirect_segments: 64,
            persistent: true,
            max_queues: 4,
            pool_pages: 512,
            io_timeout: Duration::from_secs(30),
            xenbus_timeout: Duration::from_secs(10),
            follow_suspend: false,
            resume_timeout: Duration::from_secs(60),
        }
    }
}

/// The disk as the backend describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Size in 512-byte units (`sectors`).
    pub sectors: u64,
    /// Logical sector size in bytes (`sector-size`).
    pub sector_size: u32,
    pub read_only: bool,
    pub removable: bool,
    pub cdrom: bool,
}

impl Geometry {
    pub fn new(sectors: u64, sector_size: u32, info: VdiskInfo) -> Self {
        Geometry {
            sectors,
            sector_size,
            read_only: info.contains(VdiskInfo::READONLY),
            removable: info.contains(VdiskInfo::REMOVABLE),
            cdrom: info.contains(VdiskInfo::CDROM),
        }
    }

    /// Size in bytes (`sectors` is bounded at negotiation so this fits;
    /// saturating all the same, never a wrapped size).
    pub fn bytes(&self) -> u64 {
        self.sectors.saturating_mul(SECTOR_BYTES)
    }
}

/// What was negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    pub ring_pages: u32,
    pub persistent: bool,
    /// Segments per indirect request; 0: no indirect requests.
    pub indirect_segments: u32,
    pub flush: bool,
    pub barrier: bool,
    pub discard: bool,
    /// `multi-queue-max-queues` offered (1 if not).
    pub max_queues: u32,
    /// Queues in use (`multi-queue-num-queues`, or 1).
    pub queues: u32,
}

/// Counters, for logs and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub indirect_requests: u64,
    pub responses: u64,
    pub notifies: u64,
    pub waits: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub flushes: u64,
    pub errors: u64,
    /// Most requests in flight at once.
    pub max_in_flight: u32,
    /// Responses whose id is out of range or not in flight.
    pub bad_ids: u64,
    /// Requests failed because a bogus response took their answer's
    /// place (found when the ring had answered everything it took).
    pub orphaned: u64,
    /// Requests per queue.
    pub queue_requests: [u64; MAX_QUEUES],
    /// Responses whose operation is not the request's.
    pub bad_ops: u64,
    /// Producer indices beyond the ring (the ring is then abandoned).
    pub bad_producer: u64,
    pub grants: GrantCounts,
    /// Reconnections in a new domain, and the requests they re-issued.
    pub reconnects: u64,
    pub reissued: u64,
}

/// How a device ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseReport {
    /// Grants revoked at close (bounce pages and rings).
    pub revoked: u64,
    /// Revokes refused at close: the backend still maps those pages.
    pub refused: u64,
    /// The backend's state when the grants were revoked (`None`: its
    /// directory was gone).
    pub backend: Option<XenbusState>,
    /// Every grant the device made in its life, rings included, and how
    /// many of them were revoked (during I/O or at close): equal when the
    /// backend let go of everything.
    pub made: u64,
    pub revoked_in_all: u64,
}

/// The buffer of the call in progress.
enum Buf<'b> {
    None,
    Read(&'b mut [u8]),
    Write(&'b [u8]),
}

/// A write request at least this large is published as soon as its data
/// is copied in, before the next one's is (see [`BlkFront::transfer`]).
const EARLY_PUBLISH_BYTES: usize = 64 * 1024;

/// Backend faults (bogus ids, wrong operations, requests whose answer a
/// bogus one took) after which the device is declared broken: every call
/// fails from then on, until it is closed.
pub const BROKEN_AFTER_FAULTS: u64 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Live,
    /// The ring cannot be trusted any more; every call fails.
    Broken,
    Closed,
}

pub struct BlkFront<E: BlkEnv> {
    env: E,
    dev: DeviceInfo,
    config: Config,
    queues: Vec<Queue<E::Pages>>,
    /// Where the next request goes first (round robin).
    next_queue: usize,
    /// Requests made, for ids.
    seq: u32,
    geometry: Geometry,
    features: Features,
    pool: Pool<E::Pages>,
    health: Health,
    stats: Stats,
    /// Recent protocol problems, for the kernel to log.
    problems: Vec<String>,
    /// 512-byte units the discard in progress covers.
    discard_len: u64,
    /// Grants of the rings' pages.
    ring_grants: u64,
    /// [`BlkEnv::generation`] when the rings were built.
    generation: u64,
}

/// Copies a request's data into its bounce page, a whole word per store.
/// Lengths are whole sectors (512-byte multiples), so there is never a
/// partial word: the loop is a load and a store per 4 bytes, where a
/// variable-length copy per word (what this was) cost a `memcpy` call per
/// 4 bytes, the bulk of sequential I/O's time in the guest.
fn copy_in(words: &[core::sync::atomic::AtomicU32], data: &[u8]) {
    debug_assert!(data.len().is_multiple_of(4));
    for (w, c) in words.iter().zip(data.chunks_exact(4)) {
        w.store(u32::from_le_bytes([c[0], c[1], c[2], c[3]]), Ordering::Relaxed);
    }
}

/// The read side of [`copy_in`].
fn copy_out(words: &[core::sync::atomic::AtomicU32], out: &mut [u8]) {
    debug_assert!(out.len().is_multiple_of(4));
    for (w, c) in words.iter().zip(out.chunks_exact_mut(4)) {
        c.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
}

impl<E: BlkEnv> BlkFront<E> {
    pub(crate) fn new(
        env: E,
        dev: DeviceInfo,
        config: Config,
        queues: Vec<QueueSetup<E::Pages>>,
        geometry: Geometry,
        features: Features,
    ) -> Self {
        let mut pool =
            Pool::new(config.pool_pages.max(MAX_SEGMENTS_PER_REQUEST + 1), dev.backend_id);
        pool.set_persistent(features.persistent);
        let ring_grants = queues.iter().map(|q| q.grefs.len() as u64).sum();
        let generation = env.generation();
        BlkFront {
            env,
            dev,
            config,
            queues: queues.into_iter().enumerate().map(|(i, q)| Queue::new(q, i)).collect(),
            next_queue: 0,
            seq: 0,
            geometry,
            features,
            pool,
            health: Health::Live,
            stats: Stats::default(),
            problems: Vec::new(),
            discard_len: 0,
            ring_grants,
            generation,
        }
    }

    /// The kernel's side of this device (or part).
    pub fn env(&self) -> &E {
        &self.env
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    pub fn features(&self) -> Features {
        self.features
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.dev
    }

    /// Slots of each queue's ring.
    pub fn ring_slots(&self) -> u32 {
        self.queues[0].size()
    }

    /// Requests waiting for an answer (0 between calls unless the ring
    /// was abandoned).
    pub fn in_flight(&self) -> usize {
        self.queues.iter().map(Queue::busy).sum()
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.grants = self.pool.counts;
        s
    }

    /// Protocol problems seen since the last call (counted in [`Stats`] too).
    pub fn take_problems(&mut self) -> Vec<String> {
        core::mem::take(&mut self.problems)
    }

    fn problem(&mut self, p: String) {
        if self.problems.len() < 32 {
            self.problems.push(p);
        }
    }

    fn check_live(&self) -> Result<(), BlkError> {
        match self.health {
            Health::Live => Ok(()),
            _ => Err(BlkError::Gone),
        }
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<(), BlkError> {
        let size = self.geometry.bytes();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(BlkError::OutOfRange { offset, len, size });
        }
        Ok(())
    }

    fn check_aligned(&self, offset: u64, len: u64) -> Result<(), BlkError> {
        let ss = u64::from(self.geometry.sector_size);
        if !offset.is_multiple_of(ss) || !len.is_multiple_of(ss) {
            return Err(BlkError::Unaligned {
                offset,
                len,
                sector_size: self.geometry.sector_size,
            });
        }
        Ok(())
    }

    /// Reads whole sectors: `buf.len()` bytes from 512-byte unit `sector`
    /// (both multiples of the disk's sector size).
    pub fn read_sectors(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        let off = sector.saturating_mul(SECTOR_BYTES);
        self.check_live()?;
        self.check_range(off, buf.len() as u64)?;
        self.check_aligned(off, buf.len() as u64)?;
        self.transfer(Operation::Read, sector, Buf::Read(buf), None)
    }

    /// Writes whole sectors (see [`BlkFront::read_sectors`]). Returns once
    /// the backend acknowledged every byte; [`BlkFront::flush`] makes
    /// them durable.
    pub fn write_sectors(&mut self, sector: u64, data: &[u8]) -> Result<(), BlkError> {
        let off = sector.saturating_mul(SECTOR_BYTES);
        self.check_live()?;
        if self.geometry.read_only {
            return Err(BlkError::ReadOnly);
        }
        self.check_range(off, data.len() as u64)?;
        self.check_aligned(off, data.len() as u64)?;
        self.transfer(Operation::Write, sector, Buf::Write(data), None)
    }

    /// Reads `sectors.len()` equal blocks at once, block k (of
    /// `buf.len() / sectors.len()` bytes, whole sectors) from 512-byte unit
    /// `sectors[k]`: scattered I/O with every block in flight together,
    /// as far as the rings and the pool allow (queue depth > 1).
    pub fn read_blocks(&mut self, sectors: &[u64], buf: &mut [u8]) -> Result<(), BlkError> {
        self.check_live()?;
        self.check_blocks(sectors, buf.len())?;
        self.transfer(Operation::Read, 0, Buf::Read(buf), Some(sectors))
    }

    /// Writes blocks as [`BlkFront::read_blocks`] reads them.
    pub fn write_blocks(&mut self, sectors: &[u64], data: &[u8]) -> Result<(), BlkError> {
        self.check_live()?;
        if self.geometry.read_only {
            return Err(BlkError::ReadOnly);
        }
        self.check_blocks(sectors, data.len())?;
        self.transfer(Operation::Write, 0, Buf::Write(data), Some(sectors))
    }

    fn check_blocks(&self, sectors: &[u64], len: usize) -> Result<(), BlkError> {
        if sectors.is_empty() || !len.is_multiple_of(sectors.len()) || len == 0 {
            return Err(BlkError::Unaligned {
                offset: 0,
                len: len as u64,
                sector_size: self.geometry.sector_size,
            });
        }
        let bs = (len / sectors.len()) as u64;
        for &s in sectors {
            let off = s.saturating_mul(SECTOR_BYTES);
            self.check_range(off, bs)?;
            self.check_aligned(off, bs)?;
        }
        Ok(())
    }

    /// Reads bytes at any offset and length.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        self.check_live()?;
        self.check_range(offset, buf.len() as u64)?;
        let ss = u64::from(self.geometry.sector_size);
        let start = offset - offset % ss;
        let end = (offset + buf.len() as u64).div_ceil(ss) * ss;
        if start == offset && end == offset + buf.len() as u64 {
            return self.read_sectors(offset / SECTOR_BYTES, buf);
        }
        // Unaligned: whole sectors for the edges, the middle straight in.
        let head = (offset - start) as usize;
        let first_full = if head == 0 { offset } else { start + ss };
        let last_full = (offset + buf.len() as u64) / ss * ss;
        let mut edge = alloc::vec![0u8; ss as usize];
        if head != 0 {
            self.read_sectors(start / SECTOR_BYTES, &mut edge)?;
            let n = (ss as usize - head).min(buf.len());
            buf[..n].copy_from_slice(&edge[head..head + n]);
        }
        if last_full > first_full {
            let a = (first_full - offset) as usize;
            let b = (last_full - offset) as usize;
            self.read_sectors(first_full / SECTOR_BYTES, &mut buf[a..b])?;
        }
        let tail_start = last_full.max(first_full);
        if tail_start < offset + buf.len() as u64 && tail_start >= first_full {
            self.read_sectors(tail_start / SECTOR_BYTES, &mut edge)?;
            let a = (tail_start - offset) as usize;
            let n = buf.len() - a;
            buf[a..].copy_from_slice(&edge[..n]);
        }
        Ok(())
    }

    /// Writes bytes at any offset and length (partial sectors are read,
    /// merged and written back).
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BlkError> {
        self.check_live()?;
        if self.geometry.read_only {
            return Err(BlkError::ReadOnly);
        }
        self.check_range(offset, data.len() as u64)?;
        let ss = u64::from(self.geometry.sector_size);
        let end = offset + data.len() as u64;
        if offset.is_multiple_of(ss) && end.is_multiple_of(ss) {
            return self.write_sectors(offset / SECTOR_BYTES, data);
        }
        let start = offset - offset % ss;
        let head = (offset - start) as usize;
        let first_full = if head == 0 { offset } else { start + ss };
        let last_full = end / ss * ss;
        let mut edge = alloc::vec![0u8; ss as usize];
        if head != 0 {
            self.read_sectors(start / SECTOR_BYTES, &mut edge)?;
            let n = (ss as usize - head).min(data.len());
            edge[head..head + n].copy_from_slice(&data[..n]);
            self.write_sectors(start / SECTOR_BYTES, &edge)?;
        }
        if last_full > first_full {
            let a = (first_full - offset) as usize;
            let b = (last_full - offset) as usize;
            self.write_sectors(first_full / SECTOR_BYTES, &data[a..b])?;
        }
        let tail_start = last_full.max(first_full);
        if tail_start < end && tail_start >= first_full {
            self.read_sectors(tail_start / SECTOR_BYTES, &mut edge)?;
            let a = (tail_start - offset) as usize;
            edge[..data.len() - a].copy_from_slice(&data[a..]);
            self.write_sectors(tail_start / SECTOR_BYTES, &edge)?;
        }
        Ok(())
    }

    /// Makes every write acknowledged so far durable: `flush-cache` if
    /// offered, else an empty `barrier`; a backend with neither has no
    /// volatile cache to flush (Linux treats it the same way).
    pub fn flush(&mut self) -> Result<(), BlkError> {
        self.check_live()?;
        if self.geometry.read_only {
            return Ok(());
        }
        let op = if self.features.flush {
            Operation::FlushDiskcache
        } else if self.features.barrier {
            Operation::WriteBarrier
        } else {
            return Ok(());
        };
        self.stats.flushes += 1;
        self.transfer(op, 0, Buf::None, None)
    }

    /// Discards `count` 512-byte units from `sector` (only when offered).
    pub fn discard(&mut self, sector: u64, count: u64) -> Result<(), BlkError> {
        self.check_live()?;
        if self.geometry.read_only {
            return Err(BlkError::ReadOnly);
        }
        if !self.features.discard {
            return Err(BlkError::NotSupported("discard"));
        }
        let off = sector.saturating_mul(SECTOR_BYTES);
        let len = count.saturating_mul(SECTOR_BYTES);
        self.check_range(off, len)?;
        self.discard_len = count;
        self.transfer(Operation::Discard, sector, Buf::None, None)
    }

    /// Segments per request.
    fn max_segments(&self) -> usize {
        let indirect = self.features.indirect_segments as usize;
        let cap = MAX_INDIRECT_PAGES_PER_REQUEST * SEGMENTS_PER_INDIRECT_PAGE;
        if indirect > MAX_SEGMENTS_PER_REQUEST {
            // Leave room in the pool for the indirect page(s).
            indirect.min(cap).min(self.pool.capacity() - MAX_INDIRECT_PAGES_PER_REQUEST)
        } else {
            MAX_SEGMENTS_PER_REQUEST
        }
    }

    /// Queues one request covering `bytes` (> 0 for reads and writes) of
    /// the call's buffer from `buf_off`; `Ok(false)` if the ring or the
    /// pool is full for now.
    fn queue_one(
        &mut self,
        op: Operation,
        sector: u64,
        buf: &Buf<'_>,
        buf_off: usize,
        bytes: usize,
        discard_sectors: u64,
    ) -> Result<bool, BlkError> {
        let nseg = bytes.div_ceil(PAGE_BYTES);
        let indirect_pages = if nseg > MAX_SEGMENTS_PER_REQUEST {
            nseg.div_ceil(SEGMENTS_PER_INDIRECT_PAGE)
        } else {
            0
        };
        // The first queue with room, from the round-robin position.
        let n = self.queues.len();
        let Some(q) =
            (0..n).map(|k| (self.next_queue + k) % n).find(|&q| self.queues[q].has_room())
        else {
            return Ok(false);
        };
        if self.pool.available() < nseg + indirect_pages {
            return Ok(false);
        }
        let seq = self.seq;
        let id = self.queues[q].next_id(seq).expect("has_room");
        let readonly = op == Operation::Write;
        let mut segs = Vec::with_capacity(nseg);
        let mut data = Vec::with_capacity(nseg);
        let mut indirect = Vec::new();
        let give_back = |pool: &mut Pool<E::Pages>, env: &mut E, pages: &[usize]| {
            for &p in pages {
                pool.put(env, p);
            }
        };
        for s in 0..nseg {
            let (p, gref) = match self.pool.take(&mut self.env, readonly) {
                Ok(x) => x,
                Err(e) => {
                    give_back(&mut self.pool, &mut self.env, &data);
                    return Err(e);
                }
            };
            data.push(p);
            let off = buf_off + s * PAGE_BYTES;
            let n = (bytes - s * PAGE_BYTES).min(PAGE_BYTES);
            if let Buf::Write(src) = buf {
                copy_in(&self.pool.words(p)[..n / 4], &src[off..off + n]);
            }
            let last = (n / SECTOR_BYTES as usize - 1) as u8;
            segs.push(Segment { gref, first_sect: 0, last_sect: last });
        }
        let req = if op == Operation::Discard {
            RingRequest::Discard(RequestDiscard {
                operation: Operation::Discard,
                flag: DiscardFlags::empty(),
                handle: self.handle(),
                id,
                sector_number: sector,
                nr_sectors: discard_sectors,
            })
        } else if indirect_pages > 0 {
            let mut grefs = [GrantRef(0); MAX_INDIRECT_PAGES_PER_REQUEST];
            for (k, g) in grefs.iter_mut().take(indirect_pages).enumerate() {
                let (p, gref) = match self.pool.take(&mut self.env, true) {
                    Ok(x) => x,
                    Err(e) => {
                        give_back(&mut self.pool, &mut self.env, &data);
                        give_back(&mut self.pool, &mut self.env, &indirect);
                        return Err(e);
                    }
                };
                indirect.push(p);
                *g = gref;
                let words = self.pool.words(p);
                let per = SEGMENTS_PER_INDIRECT_PAGE;
                for (i, s) in segs.iter().skip(k * per).take(per).enumerate() {
                    put_indirect_segment(&words[..PAGE_WORDS], i, s);
                }
            }
            self.stats.indirect_requests += 1;
            RingRequest::Indirect(RequestIndirect {
                operation: Operation::Indirect,
                indirect_op: op,
                nr_segments: nseg as u16,
                id,
                sector_number: sector,
                handle: self.handle(),
                indirect_grefs: grefs,
            })
        } else {
            let mut seg = [Segment::default(); MAX_SEGMENTS_PER_REQUEST];
            seg[..nseg].copy_from_slice(&segs);
            RingRequest::Rw(Request {
                operation: op,
                nr_segments: nseg as u8,
                handle: self.handle(),
                id,
                sector_number: sector,
                seg,
            })
        };
        let f = InFlight::new(op, req, sector, data, indirect, buf_off, bytes);
        self.queues[q].push(&req, f, seq).expect("has_room");
        self.seq = seq.wrapping_add(1);
        self.next_queue = (q + 1) % n;
        self.stats.queue_requests[self.queues[q].index()] += 1;
        self.stats.requests += 1;
        self.stats.max_in_flight = self.stats.max_in_flight.max(self.in_flight() as u32);
        Ok(true)
    }

    fn handle(&self) -> u16 {
        self.dev.id.parse::<u32>().map_or(0, |n| n as u16)
    }

    fn publish(&mut self) {
        for q in &mut self.queues {
            if q.publish() {
                self.stats.notifies += 1;
                self.env.notify(q.setup.port);
            }
        }
    }

    /// Runs one operation over the whole buffer: queue, publish, collect,
    /// until every byte is answered (or failed). The first error wins, but
    /// everything queued is still collected before returning, so no
    /// request of this call outlives it (unless the ring is abandoned).
    fn transfer(
        &mut self,
        op: Operation,
        sector: u64,
        mut buf: Buf<'_>,
        blocks: Option<&[u64]>,
    ) -> Result<(), BlkError> {
        let total = match &buf {
            Buf::None => 0,
            Buf::Read(b) => b.len(),
            Buf::Write(b) => b.len(),
        };
        let per_req = self.max_segments() * PAGE_BYTES;
        let mut next = 0usize;
        let mut control_sent = false;
        let mut first_err: Option<BlkError> = None;
        let mut in_flight = 0usize;
        if self.config.follow_suspend {
            // The domain may have come back as a new one since the last
            // call: nothing in flight, the rings gone.
            self.follow_resume()?;
        }
        let mut last_progress = self.env.now_ns();
        loop {
            let mut queued = false;
            let mut unpublished = 0usize;
            while first_err.is_none() && self.health == Health::Live {
                let (bytes, more) = if total == 0 {
                    (0, !control_sent)
                } else {
                    ((total - next).min(per_req), next < total)
                };
                if !more {
                    break;
                }
                // Contiguous from `sector`, or block k of the buffer at
                // `blocks[k]` (never a request across two blocks).
                let (s, bytes) = match blocks {
                    None => (sector + (next as u64 / SECTOR_BYTES), bytes),
                    Some(b) => {
                        let bs = total / b.len();
                        let within = next % bs;
                        (b[next / bs] + within as u64 / SECTOR_BYTES, bytes.min(bs - within))
                    }
                };
                let discard = if op == Operation::Discard { self.discard_len } else { 0 };
                match self.queue_one(op, s, &buf, next, bytes, discard) {
                    Ok(true) => {
                        queued = true;
                        in_flight += 1;
                        next += bytes;
                        control_sent = true;
                        // A flush or a discard has no bytes: still one to
                        // publish.
                        unpublished += bytes.max(1);
                        // A write's data is copied into its bounce pages as
                        // it is queued: a large request goes to the backend
                        // at once, which starts on it while the next is
                        // copied, instead of idling until the whole call is
                        // (sequential writes). Small requests (random 4 KiB
                        // writes) still go as one batch per call.
                        if op == Operation::Write && bytes >= EARLY_PUBLISH_BYTES {
                            self.publish();
                            self.env.published(in_flight);
                            unpublished = 0;
                        }
                    }
                    Ok(false) => break,
                    Err(e) => first_err = Some(e),
                }
            }
            if queued && unpublished > 0 {
                self.publish();
                self.env.published(in_flight);
            }
            if in_flight == 0 {
                let left = if total == 0 { !control_sent } else { next < total };
                if left && first_err.is_none() && self.health == Health::Live {
                    // Nothing in flight and still no room: pages lost to a
                    // misbehaving backend. Never report success for bytes
                    // not sent.
                    first_err = Some(BlkError::PoolExhausted {
                        usable: self.pool.available(),
                        capacity: self.pool.capacity(),
                    });
                }
                break;
            }
            let done = self.collect(&mut buf, &mut first_err)?;
            in_flight -= done;
            if self.health != Health::Live {
                first_err.get_or_insert(BlkError::Gone);
                break;
            }
            if done > 0 {
                last_progress = self.env.now_ns();
                continue;
            }
            if self.config.follow_suspend {
                // A suspend the toolstack asked for happens here, with
                // requests certainly in flight; in a new domain they go
                // on the new backend's rings before the wait goes on.
                self.env.suspend_point(in_flight);
                if self.follow_resume()? {
                    last_progress = self.env.now_ns();
                    continue;
                }
            }
            let deadline = last_progress.saturating_add(self.config.io_timeout.as_nanos() as u64);
            self.stats.waits += 1;
            if !self.env.wait_event(deadline) && self.env.now_ns() >= deadline {
                // One last look, then give up on the ring.
                let done = self.collect(&mut buf, &mut first_err)?;
                in_flight -= done;
                if done == 0 {
                    let waited_ms = (self.env.now_ns() - last_progress) / 1_000_000;
                    let rings: Vec<String> = self.queues.iter().map(Queue::describe).collect();
                    self.problem(format!(
                        "no response in {waited_ms} ms; device abandoned ({})",
                        rings.join("; ")
                    ));
                    self.abandon_ring();
                    return Err(BlkError::Timeout { op, waited_ms });
                }
                last_progress = self.env.now_ns();
            }
        }
        match first_err {
            Some(e) => {
                self.stats.errors += 1;
                Err(e)
            }
            None => {
                match op {
                    Operation::Read => self.stats.bytes_read += total as u64,
                    Operation::Write => self.stats.bytes_written += total as u64,
                    _ => {}
                }
                Ok(())
            }
        }
    }

    /// Takes every response there is, on every queue; returns how many
    /// of this call's requests completed (or failed). A response matching
    /// no request is counted, noted and fails the call; the request whose
    /// answer it replaced fails once its ring has answered everything
    /// (see [`super::queue`]). A wrong operation fails its request.
    fn collect(
        &mut self,
        buf: &mut Buf<'_>,
        err: &mut Option<BlkError>,
    ) -> Result<usize, BlkError> {
        let mut done = 0;
        for q in 0..self.queues.len() {
            loop {
                let taken = match self.queues[q].take() {
                    Ok(t) => t,
                    Err(e) => {
                        self.bad_ring(e);
                        return Ok(done);
                    }
                };
                let (rsp, f) = match taken {
                    Taken::Empty => break,
                    Taken::Bogus(rsp) => {
                        self.stats.responses += 1;
                        self.stats.bad_ids += 1;
                        self.problem(format!(
                            "queue {q}: response id {:#x} is not a request in flight; ignored",
                            rsp.id
                        ));
                        err.get_or_insert(BlkError::Protocol(format!(
                            "response id {:#x} matches no request in flight",
                            rsp.id
                        )));
                        continue;
                    }
                    Taken::Done(rsp, f) => (rsp, f),
                };
                self.stats.responses += 1;
                done += 1;
                self.complete(rsp, f, buf, err);
            }
            for f in self.queues[q].orphans() {
                done += 1;
                self.stats.orphaned += 1;
                self.problem(format!(
                    "queue {q}: {} at sector {} lost its answer to a bogus response; failed",
                    f.op, f.sector
                ));
                err.get_or_insert(BlkError::Protocol(format!(
                    "{} at sector {} was never answered (a bogus response took its place)",
                    f.op, f.sector
                )));
                // The backend may have mapped these pages: never reused.
                for &p in f.data.iter().chain(f.indirect.iter()) {
                    self.pool.lose(p);
                }
            }
        }
        let faults = self.stats.bad_ids + self.stats.bad_ops + self.stats.orphaned;
        if faults >= BROKEN_AFTER_FAULTS && self.health == Health::Live {
            // As netfront: a backend that keeps lying is left alone.
            self.problem(format!(
                "declared broken after {faults} backend faults; requests in flight failed"
            ));
            self.abandon_ring();
        }
        Ok(done)
    }

    /// Checks one matched response and finishes its request.
    fn complete(
        &mut self,
        rsp: Response,
        f: InFlight,
        buf: &mut Buf<'_>,
        err: &mut Option<BlkError>,
    ) {
        let id = rsp.id;
        let mut outcome = Ok(());
        if rsp.op() != Some(f.op) {
            self.stats.bad_ops += 1;
            let echoed = match rsp.op() {
                Some(op) => format!("{op}"),
                None => format!("unknown operation {}", rsp.operation),
            };
            self.problem(format!(
                "response {id:#x} has {echoed} for a {} request; request failed",
                f.op
            ));
            outcome =
                Err(BlkError::Protocol(format!("response with {echoed} to a {} request", f.op)));
        } else if rsp.status == RSP_EOPNOTSUPP {
            outcome = Err(BlkError::NotSupported(match f.op {
                Operation::FlushDiskcache => "flush-cache",
                Operation::WriteBarrier => "barrier",
                Operation::Discard => "discard",
                _ => "this operation",
            }));
        } else if rsp.status != RSP_OKAY {
            outcome = Err(BlkError::Io { op: f.op, sector: f.sector, status: rsp.status });
        }
        if outcome.is_ok() {
            if let Buf::Read(out) = buf {
                for (k, &p) in f.data.iter().enumerate() {
                    let a = f.buf_off + k * PAGE_BYTES;
                    let n = (f.len - k * PAGE_BYTES).min(PAGE_BYTES);
                    copy_out(&self.pool.words(p)[..n.div_ceil(4)], &mut out[a..a + n]);
                }
            }
        }
        for &p in f.data.iter().chain(f.indirect.iter()) {
            self.pool.put(&mut self.env, p);
        }
        if let Err(e) = outcome {
            err.get_or_insert(e);
        }
    }

    fn bad_ring(&mut self, e: RingError) {
        self.stats.bad_producer += 1;
        self.problem(format!("{e:?}; ring abandoned, requests in flight failed"));
        self.abandon_ring();
    }

    /// The ring cannot be trusted: fail everything in flight. Its pages
    /// stay granted (the backend may still write them) until close.
    fn abandon_ring(&mut self) {
        self.health = Health::Broken;
        for q in 0..self.queues.len() {
            for f in self.queues[q].drain() {
                for &p in f.data.iter().chain(f.indirect.iter()) {
                    self.pool.lose(p);
                }
            }
        }
    }

    /// If the domain came back as a new one since the rings were built,
    /// reconnects (see [`BlkFront::reconnect`]); whether it did. An error
    /// leaves the device broken: every call fails from then on.
    fn follow_resume(&mut self) -> Result<bool, BlkError> {
        if self.env.generation() == self.generation || self.health != Health::Live {
            return Ok(false);
        }
        match self.reconnect() {
            Ok(what) => {
                self.env.reconnected(&what);
                Ok(true)
            }
            Err(e) => {
                self.problem(format!("cannot reconnect after the domain was restored: {e}"));
                self.health = Health::Broken;
                // The requests in flight are failed with the call.
                for q in 0..self.queues.len() {
                    for f in self.queues[q].drain() {
                        for &p in f.data.iter().chain(f.indirect.iter()) {
                            self.pool.lose(p);
                        }
                    }
                }
                Err(e)
            }
        }
    }

    /// In a new domain (restore, migration): every ring, grant and event
    /// channel of the old domain is gone, and the toolstack made the
    /// device again with a new backend (the same `device/vbd/<id>`, a new
    /// backend path and maybe another backend domain). Lets go of the old
    /// rings (their ports are the old domain's: closing one only forgets
    /// it; their grants are not in Xen's new table: revoking only frees
    /// our references), does the handshake again with the new backend,
    /// and puts every request that was in flight on the new rings with
    /// new grants and ids. Responses the old backend had written but we
    /// had not read are not trusted (the save may have copied the ring
    /// after some data pages): those requests are issued again too, as
    /// Linux's blkfront does. Writes are idempotent, reads read again.
    fn reconnect(&mut self) -> Result<Reconnected, BlkError> {
        let t0 = self.env.now_ns();
        let mut pending: Vec<InFlight> = Vec::new();
        for q in &mut self.queues {
            pending.extend(q.drain());
        }
        pending.sort_by_key(InFlight::seq);
        let old_queues = self.queues.len();
        for q in core::mem::take(&mut self.queues) {
            q.setup.release(&mut self.env, true);
        }
        let (id, config, timeout) = (self.dev.id.clone(), self.config, self.config.resume_timeout);
        let step1 = self.env.with_bus(|bus| -> Result<_, BlkError> {
            let dev = device::describe(bus, "vbd", &id)?;
            let offer = read_offer(bus, &dev, &config, timeout)?;
            Ok((dev, offer))
        });
        let (dev, offer) = step1.unwrap_or(Err(BlkError::Xenbus(device::XenbusError::NoStore)))?;
        self.pool.forget_grants(&mut self.env, dev.backend_id);
        let queues = build_queues(&mut self.env, &dev, &offer)?;
        let step2 = self.env.with_bus(|bus| -> Result<_, BlkError> {
            advertise(bus, &dev, &config, &queues, offer.order)?;
            let (geometry, features) = read_connected(bus, &dev, &config, &offer, timeout)?;
            device::set_state(bus, &dev, XenbusState::Connected)?;
            Ok((geometry, features))
        });
        let (geometry, features) =
            match step2.unwrap_or(Err(BlkError::Xenbus(device::XenbusError::NoStore))) {
                Ok(x) => x,
                Err(e) => {
                    release_all(&mut self.env, queues);
                    return Err(e);
                }
            };
        self.ring_grants += queues.iter().map(|q| q.grefs.len() as u64).sum::<u64>();
        self.queues = queues.into_iter().enumerate().map(|(i, q)| Queue::new(q, i)).collect();
        self.next_queue = 0;
        self.dev = dev;
        self.pool.set_persistent(features.persistent);
        self.generation = self.env.generation();
        if geometry != self.geometry {
            return Err(BlkError::Protocol(format!(
                "the disk came back as {geometry:?}, not {:?}",
                self.geometry
            )));
        }
        self.features = features;
        let reissued = pending.len();
        for f in pending {
            self.reissue(f)?;
        }
        self.publish();
        self.stats.reconnects += 1;
        self.stats.reissued += reissued as u64;
        Ok(Reconnected {
            id: self.dev.id.clone(),
            backend: self.dev.backend.clone(),
            reissued,
            queues: (old_queues, self.queues.len()),
            ms: (self.env.now_ns().saturating_sub(t0)) / 1_000_000,
        })
    }

    /// Puts a request of the old domain on a new ring: its pages granted
    /// again (an indirect request's segment lists rewritten with the new
    /// references), a new id.
    fn reissue(&mut self, mut f: InFlight) -> Result<(), BlkError> {
        let n = self.queues.len();
        let q = (0..n)
            .map(|k| (self.next_queue + k) % n)
            .find(|&q| self.queues[q].has_room())
            .ok_or_else(|| {
                BlkError::Protocol("the new backend's rings hold fewer requests".into())
            })?;
        let readonly = f.op == Operation::Write;
        let mut grefs = Vec::with_capacity(f.data.len());
        for &p in &f.data {
            grefs.push(self.pool.regrant(&mut self.env, p, readonly)?);
        }
        let seq = self.seq;
        let id = self.queues[q].next_id(seq).expect("has room");
        match &mut f.req {
            RingRequest::Rw(r) => {
                for (s, g) in r.seg.iter_mut().zip(&grefs) {
                    s.gref = *g;
                }
                r.id = id;
            }
            RingRequest::Indirect(r) => {
                if usize::from(r.nr_segments) > self.max_segments() {
                    return Err(BlkError::Protocol(format!(
                        "the new backend takes {} segments per request, {} were in flight",
                        self.features.indirect_segments, r.nr_segments
                    )));
                }
                let per = SEGMENTS_PER_INDIRECT_PAGE;
                for (k, &page) in f.indirect.iter().enumerate() {
                    r.indirect_grefs[k] = self.pool.regrant(&mut self.env, page, true)?;
                    let words = self.pool.words(page);
                    for (i, g) in grefs.iter().skip(k * per).take(per).enumerate() {
                        let mut s = get_indirect_segment(&words[..PAGE_WORDS], i);
                        s.gref = *g;
                        put_indirect_segment(&words[..PAGE_WORDS], i, &s);
                    }
                }
                r.id = id;
            }
            RingRequest::Discard(r) => r.id = id,
            // Only a backend's view decodes one; this frontend never
            // makes it.
            RingRequest::Unknown { id: old, .. } => *old = id,
        }
        let req = f.req;
        self.queues[q].push(&req, f, seq).expect("has room");
        self.seq = seq.wrapping_add(1);
        self.next_queue = (q + 1) % n;
        self.stats.queue_requests[self.queues[q].index()] += 1;
        Ok(())
    }

    /// The device's queues as one device each, to be driven at once from
    /// several vCPUs (Linux gives each blk-mq hardware context its own
    /// ring and interrupt, and runs a CPU's I/O on its own context): part
    /// `k` owns queue `k`'s ring and event channel (in its own
    /// environment, from [`BlkEnv::split_off`], so its waits wake on its
    /// own queue's events only), a bounce pool of its own and its own
    /// counters; the first part keeps the environment it had. Requests
    /// keep their queue's number in their ids. Every part of a device is
    /// the same disk: what one writes, another reads.
    ///
    /// Only between calls (nothing in flight). A queue whose environment
    /// cannot be split off stays with the first part (noted in its
    /// problems), so every queue is still served. The parts end together:
    /// [`BlkFront::close_parts`]. They do not follow a suspend
    /// ([`Config::follow_suspend`] is off in each).
    pub fn split(mut self) -> Vec<Self> {
        let mut parts = Vec::new();
        if self.in_flight() != 0 || self.health != Health::Live {
            return alloc::vec![self];
        }
        self.config.follow_suspend = false;
        let all = core::mem::take(&mut self.queues);
        for q in all {
            if self.queues.is_empty() {
                self.queues.push(q);
                continue;
            }
            let env = match self.env.split_off(q.setup.port) {
                Ok(env) => env,
                Err(e) => {
                    self.problem(format!("queue {} stays with the first part: {e}", q.index()));
                    self.queues.push(q);
                    continue;
                }
            };
            let mut pool = Pool::new(self.pool.capacity(), self.dev.backend_id);
            pool.set_persistent(self.features.persistent);
            parts.push(BlkFront {
                env,
                dev: self.dev.clone(),
                config: self.config,
                ring_grants: q.setup.grefs.len() as u64,
                queues: alloc::vec![q],
                next_queue: 0,
                seq: 0,
                geometry: self.geometry,
                features: self.features,
                pool,
                health: Health::Live,
                stats: Stats::default(),
                problems: Vec::new(),
                discard_len: 0,
                generation: self.generation,
            });
        }
        self.ring_grants = self.queues.iter().map(|q| q.setup.grefs.len() as u64).sum();
        parts.insert(0, self);
        parts
    }

    /// The parts of a device [`BlkFront::split`] made, as one device
    /// again (its queues in order, every part's pool, counters and event
    /// channels), e.g. to follow a suspend ([`BlkFront::follow_domain`]).
    /// Only between calls; `None` if `parts` is empty.
    pub fn join(parts: Vec<Self>) -> Option<Self> {
        let mut parts = parts.into_iter();
        let mut dev = parts.next()?;
        for p in parts {
            let BlkFront { env, queues, pool, stats, problems, ring_grants, health, .. } = p;
            dev.env.absorb(env);
            dev.queues.extend(queues);
            dev.pool.absorb(pool);
            dev.ring_grants += ring_grants;
            for p in problems {
                dev.problem(p);
            }
            if health != Health::Live {
                dev.health = health;
            }
            let s = &mut dev.stats;
            s.requests += stats.requests;
            s.indirect_requests += stats.indirect_requests;
            s.responses += stats.responses;
            s.notifies += stats.notifies;
            s.waits += stats.waits;
            s.bytes_read += stats.bytes_read;
            s.bytes_written += stats.bytes_written;
            s.flushes += stats.flushes;
            s.errors += stats.errors;
            s.max_in_flight = s.max_in_flight.max(stats.max_in_flight);
            s.bad_ids += stats.bad_ids;
            s.orphaned += stats.orphaned;
            for (a, b) in s.queue_requests.iter_mut().zip(stats.queue_requests) {
                *a += b;
            }
            s.bad_ops += stats.bad_ops;
            s.bad_producer += stats.bad_producer;
            s.reconnects += stats.reconnects;
            s.reissued += stats.reissued;
        }
        dev.queues.sort_by_key(Queue::index);
        dev.next_queue = 0;
        Some(dev)
    }

    /// If the domain came back as a new one (restore, migration) since
    /// the rings were built: connects to the new backend now, between
    /// calls (nothing is in flight to issue again). Whether it did; an
    /// error leaves the device broken. For devices that do not
    /// [`Config::follow_suspend`] inside their calls (a split device,
    /// joined again around a suspend).
    pub fn follow_domain(&mut self) -> Result<bool, BlkError> {
        self.follow_resume()
    }

    /// The numbers of the queues this device (or part) drives.
    pub fn queue_numbers(&self) -> Vec<usize> {
        self.queues.iter().map(Queue::index).collect()
    }

    /// The event channels of this device's (or part's) queues, in the
    /// order of [`BlkFront::queue_numbers`].
    pub fn queue_ports(&self) -> Vec<hypercall::EvtchnPort> {
        self.queues.iter().map(|q| q.setup.port).collect()
    }

    /// Closes a device split with [`BlkFront::split`]: the xenbus
    /// handshake once (through the first part), then every part's grants
    /// and event channels. One report for the whole device.
    pub fn close_parts<T: Transport>(parts: Vec<Self>, bus: &mut Bus<T>) -> CloseReport {
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else {
            return CloseReport {
                revoked: 0,
                refused: 0,
                backend: None,
                made: 0,
                revoked_in_all: 0,
            };
        };
        let mut total = first.close(bus);
        for mut p in parts {
            let r = p.release_all(total.backend);
            total.revoked += r.revoked;
            total.refused += r.refused;
            total.made += r.made;
            total.revoked_in_all += r.revoked_in_all;
        }
        total
    }

    /// Whether the backend is going away (`xl block-detach`): its state is
    /// `Closing` or later, or gone.
    pub fn backend_leaving<T: Transport>(&mut self, bus: &mut Bus<T>) -> Result<bool, BlkError> {
        Ok(match device::backend_state(bus, &self.dev)? {
            None => true,
            Some(s) => s >= XenbusState::Closing,
        })
    }

    /// Closes the device: `Closing`, then `Closed` once the backend
    /// follows, then every grant revoked and the event channel closed.
    /// Grants the backend still maps are counted and their pages leaked
    /// (never reused). If the frontend's node was reset meanwhile (a new
    /// device under the same id), nothing is written and nothing waited
    /// for: the node and its backend belong to the new device.
    pub fn close<T: Transport>(mut self, bus: &mut Bus<T>) -> CloseReport {
        let t = self.config.xenbus_timeout;
        let mut backend = None;
        if matches!(device::close_state(bus, &self.dev, XenbusState::Closing), Ok(true)) {
            wait_backend_or_gone(bus, &self.dev, |s| s >= XenbusState::Closing, t);
            if matches!(device::close_state(bus, &self.dev, XenbusState::Closed), Ok(true)) {
                backend = wait_backend_or_gone(bus, &self.dev, |s| s >= XenbusState::Closed, t);
            }
        }
        self.release_all(backend)
    }

    /// Lets the device go without a word to XenStore (it vanished, or its
    /// id now names a new device): fails nothing (no call is in progress),
    /// revokes every grant the backend no longer maps, closes the event
    /// channels.
    pub fn abandon(mut self) -> CloseReport {
        self.release_all(None)
    }

    fn release_all(&mut self, backend: Option<XenbusState>) -> CloseReport {
        self.health = Health::Closed;
        let (mut revoked, mut refused) = self.pool.revoke_all(&mut self.env);
        let mut ring_revoked = 0;
        for q in core::mem::take(&mut self.queues) {
            let (ok, no) = q.setup.release(&mut self.env, true);
            revoked += ok;
            ring_revoked += ok;
            refused += no;
        }
        CloseReport {
            revoked,
            refused,
            backend,
            made: self.pool.counts.granted + self.ring_grants,
            revoked_in_all: self.pool.counts.revoked + ring_revoked,
        }
    }
}
