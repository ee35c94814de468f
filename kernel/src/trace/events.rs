//! `trace=events`: one line per event delivered to a handler, with what
//! the port is (as far as this kernel bound it) and how long the handler
//! took.

use super::stats::Table;
use crate::events::IrqLock;
use crate::kprintln;
use core::sync::atomic::{AtomicU64, Ordering};
use hypercall::EvtchnPort;

/// What a port was bound as, for the trace lines.
const LABELS: usize = 32;
static NAMES: IrqLock<[Option<(u32, &'static str)>; LABELS]> = IrqLock::new([None; LABELS]);
static STATS: IrqLock<Table<u32, 32>> = IrqLock::new(Table::new());
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Remembers what `port` is (`"VIRQ_TIMER"`, `"xenstore"`...), for tracing.
pub fn label(port: EvtchnPort, what: &'static str) {
    let mut names = NAMES.lock();
    if let Some(slot) = names.iter_mut().find(|s| s.is_none_or(|(p, _)| p == port.0)) {
        *slot = Some((port.0, what));
    }
}

fn name_of(port: u32) -> &'static str {
    NAMES.lock().iter().flatten().find(|(p, _)| *p == port).map_or("unlabelled", |(_, n)| n)
}

/// Called by the dispatcher after `port`'s handler ran (`delivered`
/// deliveries so far), taking `cycles`.
pub(super) fn on_delivery(port: EvtchnPort, delivered: u64, cycles: u64) {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) + 1;
    STATS.lock().add(port.0, cycles);
    kprintln!(
        "trace: ev #{seq} port {} ({}) delivery {delivered}, handler {cycles} cycles",
        port.0,
        name_of(port.0)
    );
}

pub(super) fn summary() {
    let stats = STATS.lock();
    kprintln!(
        "trace: event summary: {} deliveries listed on {} ports",
        stats.total(),
        stats.rows().count()
    );
    for r in stats.rows() {
        kprintln!(
            "trace: ev-sum port {} ({}) deliveries={} handler_cycles_mean={}",
            r.key,
            name_of(r.key),
            r.count,
            r.total / r.count
        );
    }
}
