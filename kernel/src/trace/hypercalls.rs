//! `trace=hypercalls`: one line per hypercall, printed as it happens.
//!
//! The hook runs inside every hypercall (`hypercall::trace`), in whatever
//! context made it: the console's own notifications (with the console
//! lock held), an event handler, the printing of a trace line. So it
//! never prints while the console is busy: it queues the record, and the
//! queue is printed as soon as the console is free (at the next traced
//! call, or right after the console's current print). Hypercalls the
//! tracer makes while printing its lines are counted as its own, not
//! listed (otherwise every printed line would make another one).

use super::stats::Table;
use crate::events::{self, IrqLock};
use crate::{console, kprintln};
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use hypercall::trace::{Call, Capture, Kind};

/// Records waiting for the console; a burst longer than this while the
/// console is busy is counted as dropped (and the summary says so).
const QUEUE: usize = 64;

/// The first `len` items from `head` (wrapping) are records; the others
/// are `EMPTY`. Not `Option`s: a `None` leaves its payload uninitialised,
/// which would put this static's 16 KiB in the image's `.data` instead
/// of `.bss` (issue 17).
struct Queue {
    items: [(u64, Call); QUEUE],
    head: usize,
    len: usize,
    dropped: u64,
}

static PENDING: IrqLock<Queue> =
    IrqLock::new(Queue { items: [EMPTY; QUEUE], head: 0, len: 0, dropped: 0 });
const EMPTY: (u64, Call) = (
    0,
    Call { nr: 0, args: [0; 5], ret: 0, cycles: 0, before: Capture::EMPTY, after: Capture::EMPTY },
);
static STATS: IrqLock<Table<Kind, 64>> = IrqLock::new(Table::new());
static SEQ: AtomicU64 = AtomicU64::new(0);
/// Hypercalls the tracer itself made while printing.
static OWN: AtomicU64 = AtomicU64::new(0);
/// Who is printing trace lines: 0 nobody, 1 thread context, 2 an event
/// handler. A call from the context that is printing is the tracer's own;
/// one from an event handler that interrupted the printing is queued.
static BUSY: AtomicU8 = AtomicU8::new(0);

fn context() -> u8 {
    if events::in_upcall() {
        2
    } else {
        1
    }
}

/// The hook `hypercall::trace` calls after every traced hypercall.
pub(super) fn on_call(c: &Call) {
    let me = context();
    match BUSY.load(Ordering::SeqCst) {
        0 => {}
        b if b == me => {
            OWN.fetch_add(1, Ordering::Relaxed);
            return;
        }
        _ => {
            push(c);
            return;
        }
    }
    push(c);
    drain();
}

fn push(c: &Call) {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) + 1;
    let mut q = PENDING.lock();
    if q.len == QUEUE {
        q.dropped += 1;
        return;
    }
    let i = (q.head + q.len) % QUEUE;
    q.items[i] = (seq, *c);
    q.len += 1;
}

fn pop() -> Option<(u64, Call)> {
    let mut q = PENDING.lock();
    if q.len == 0 {
        return None;
    }
    let i = q.head;
    q.head = (q.head + 1) % QUEUE;
    q.len -= 1;
    Some(core::mem::replace(&mut q.items[i], EMPTY))
}

/// Prints what is queued, if the console is free and nobody else is
/// printing trace lines.
pub(super) fn drain() {
    if console::busy() {
        return;
    }
    let me = context();
    if BUSY.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst).is_err() {
        return;
    }
    while let Some((seq, c)) = pop() {
        STATS.lock().add(c.kind(), c.cycles);
        kprintln!("trace: hc #{seq} {c} [{} cycles]", c.cycles);
    }
    BUSY.store(0, Ordering::SeqCst);
}

/// Whether records wait for the console.
pub(super) fn pending() -> bool {
    PENDING.lock().len > 0
}

/// Prints the per-type summary (tracing is off by now).
pub(super) fn summary() {
    drain();
    BUSY.store(context(), Ordering::SeqCst);
    let dropped = PENDING.lock().dropped;
    let stats = STATS.lock();
    kprintln!(
        "trace: hypercall summary: {} calls listed in {} types, {} dropped, {} made by the tracer while printing (not listed); cycles exclude the TSC reads' own {}",
        stats.total(),
        stats.rows().count(),
        dropped,
        OWN.load(Ordering::Relaxed),
        hypercall::trace::tsc_pair_cycles()
    );
    for r in stats.rows() {
        kprintln!(
            "trace: hc-sum {} calls={} cycles_mean={} cycles_min={} cycles_max={}",
            r.key,
            r.count,
            r.total / r.count,
            r.min,
            r.max
        );
    }
    if stats.overflow > 0 {
        kprintln!("trace: hc-sum (more types than the table holds) calls={}", stats.overflow);
    }
    drop(stats);
    BUSY.store(0, Ordering::SeqCst);
}
