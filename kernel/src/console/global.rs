//! The one console of the guest, behind a lock.

use super::crlf_chunks;
use super::ring::{Backend, RingError, RingWriter};
use crate::events;
use crate::events::IrqLock;
use core::cell::Cell;
use core::fmt::{self, Write};
use hypercall::abi::console::XenconsInterface;
use hypercall::ops::{console_io_write, event_channel, sched_op};
use hypercall::EvtchnPort;

/// How long output waits for a full ring to drain before it is dropped:
/// long enough for a busy dom0, short enough that a dead xenconsoled does
/// not hang the guest.
const STALL_BUDGET_NS: u64 = 10_000_000_000;

#[derive(Clone, Copy)]
enum Sink {
    /// `console_io`: reaches Xen's serial line for dom0 (and debug builds).
    Hypervisor,
    /// The PV console ring.
    Ring { ring: &'static XenconsInterface, port: EvtchnPort },
}

/// Counters a person may want after a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub bytes: u64,
    pub dropped: u64,
    pub stalls: u64,
    pub corrupt: bool,
}

struct Console {
    sink: Sink,
    /// Bytes went into the ring since the last notification.
    owed: Cell<bool>,
    stats: Stats,
    /// The backend stalled past the budget: drop output without waiting
    /// until the ring has room again.
    stalled: bool,
}

/// The ring, once known, for the emergency path that cannot take the lock.
static RING: spin::Once<(&'static XenconsInterface, EvtchnPort)> = spin::Once::new();
/// The ring's event channel now (a restored domain gets another one).
static PORT_NOW: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

static CONSOLE: IrqLock<Console> = IrqLock::new(Console {
    sink: Sink::Hypervisor,
    owed: Cell::new(false),
    stats: Stats { bytes: 0, dropped: 0, stalls: 0, corrupt: false },
    stalled: false,
});

/// Waits on the console's event channel with `SCHEDOP_poll`, which works
/// while upcalls are masked. Notifications are owed, not sent, while a
/// print is in progress: one `EVTCHNOP_send` per print (or before waiting
/// for room), not one per piece of the formatted line (`trace=hypercalls`
/// showed a dozen per line).
#[derive(Clone, Copy)]
struct PortBackend<'a> {
    port: EvtchnPort,
    owed: &'a Cell<bool>,
}

fn notify_port(port: EvtchnPort) {
    // A failed notify only delays output until the next one.
    let _ = event_channel::send(port);
}

impl Backend for PortBackend<'_> {
    fn notify(&self) {
        self.owed.set(true);
    }

    fn arm(&self) {
        events::clear_pending(self.port);
    }

    fn wait(&self, timeout_ns: u64) -> bool {
        // xenconsoled must know there is output before we wait for it to
        // make room.
        if self.owed.replace(false) {
            notify_port(self.port);
        }
        let deadline = platform::now_ns().saturating_add(timeout_ns);
        sched_op::poll(&[self.port], deadline).is_ok() && events::is_pending(self.port)
    }

    fn now_ns(&self) -> u64 {
        platform::now_ns()
    }
}

impl Console {
    fn write_bytes(&mut self, bytes: &[u8]) {
        match self.sink {
            Sink::Hypervisor => {
                let _ = console_io_write(bytes);
                self.stats.bytes += bytes.len() as u64;
            }
            Sink::Ring { ring, port } => {
                if self.stats.corrupt {
                    self.stats.dropped += bytes.len() as u64;
                    return;
                }
                let budget = if self.stalled { 0 } else { STALL_BUDGET_NS };
                let w = RingWriter::new(ring, PortBackend { port, owed: &self.owed }, budget);
                match w.write_all(bytes) {
                    Ok(()) => {
                        self.stalled = false;
                        self.stats.bytes += bytes.len() as u64;
                    }
                    Err(RingError::Stalled { written }) => {
                        if !self.stalled {
                            self.stats.stalls += 1;
                        }
                        self.stalled = true;
                        self.stats.bytes += written as u64;
                        self.stats.dropped += (bytes.len() - written) as u64;
                    }
                    Err(RingError::Corrupt { .. }) => {
                        self.stats.corrupt = true;
                        self.stats.dropped += bytes.len() as u64;
                        let _ =
                            console_io_write(b"console ring indices corrupt; output stopped\r\n");
                    }
                }
            }
        }
    }

    /// Waits until the backend took everything, with the same stall budget
    /// as a write (none once the backend is known to be stalled).
    fn flush(&mut self) -> Result<(), RingError> {
        match self.sink {
            Sink::Ring { ring, port } => {
                self.notify_owed();
                let budget = if self.stalled { 0 } else { STALL_BUDGET_NS };
                let r =
                    RingWriter::new(ring, PortBackend { port, owed: &self.owed }, budget).flush();
                if matches!(r, Err(RingError::Stalled { .. })) && !self.stalled {
                    self.stats.stalls += 1;
                    self.stalled = true;
                }
                r
            }
            Sink::Hypervisor => Ok(()),
        }
    }
}

impl Console {
    /// Sends the notification the last writes owe xenconsoled.
    fn notify_owed(&self) {
        if let Sink::Ring { port, .. } = self.sink {
            if self.owed.replace(false) {
                notify_port(port);
            }
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        crlf_chunks(s.as_bytes(), |c| self.write_bytes(c));
        Ok(())
    }
}

/// Sends console output to Xen's own console (`console_io`).
pub fn init_hypervisor() {
    CONSOLE.lock().sink = Sink::Hypervisor;
}

/// Sends console output to the PV console ring.
pub fn init_ring(ring: &'static XenconsInterface, port: EvtchnPort) {
    RING.call_once(|| (ring, port));
    PORT_NOW.store(port.0, core::sync::atomic::Ordering::Relaxed);
    CONSOLE.lock().sink = Sink::Ring { ring, port };
}

/// After a restore: the same ring page (the toolstack keeps its pfn), a
/// new event channel.
pub fn resume(port: EvtchnPort) {
    if let Some(&(ring, _)) = RING.get() {
        PORT_NOW.store(port.0, core::sync::atomic::Ordering::Relaxed);
        let mut c = CONSOLE.lock();
        c.sink = Sink::Ring { ring, port };
        c.stalled = false;
    }
}

/// Formats `args` to the console.
pub fn print(args: fmt::Arguments<'_>) {
    print_ending(args, "");
}

/// Formats `args` and a newline to the console, as one line: what
/// `kprintln!` calls. Out of line, so that a call site builds one
/// `Arguments`, not one wrapped in a `"{}\n"` (issue 17's size goal:
/// 7.8 KiB over ~230 call sites).
pub fn println(args: fmt::Arguments<'_>) {
    print_ending(args, "\n");
}

fn print_ending(args: fmt::Arguments<'_>, end: &str) {
    {
        let mut c = CONSOLE.lock();
        let _ = c.write_fmt(args);
        let _ = c.write_str(end);
        c.notify_owed();
    }
    // Hypercalls made while the lock was held (the ring's notification)
    // are traced now that the console is free again.
    crate::trace::after_print();
}

/// Whether someone is printing right now (the hypercall tracer queues its
/// lines instead of waiting for itself).
pub fn busy() -> bool {
    CONSOLE.is_locked()
}

/// Waits until the backend has taken all output, or made no progress for
/// the stall budget (measured on the clock).
pub fn flush() -> Result<(), RingError> {
    CONSOLE.lock().flush()
}

/// The console ring's event channel, if output goes to a ring.
pub fn port() -> Option<EvtchnPort> {
    RING.get().map(|_| EvtchnPort(PORT_NOW.load(core::sync::atomic::Ordering::Relaxed)))
}

/// `(out_prod, out_cons)` of the console ring, if output goes to one.
pub fn ring_state() -> Option<(u32, u32)> {
    match CONSOLE.lock().sink {
        Sink::Ring { ring, .. } => Some((
            ring.out_prod.load(core::sync::atomic::Ordering::Acquire),
            ring.out_cons.load(core::sync::atomic::Ordering::Acquire),
        )),
        Sink::Hypervisor => None,
    }
}

/// Output counters so far.
pub fn stats() -> Stats {
    CONSOLE.lock().stats
}

/// Prints even when the console lock is held (a panic while printing):
/// writes to the sink directly, which at worst interleaves with the
/// interrupted line, since that code never resumes.
pub fn emergency_print(args: fmt::Arguments<'_>) {
    if let Some(mut c) = CONSOLE.try_lock() {
        let _ = c.write_fmt(args);
        let _ = c.flush();
        return;
    }
    let owed = Cell::new(false);
    let sink = match RING.get() {
        Some(&(ring, _)) => Sink::Ring {
            ring,
            port: EvtchnPort(PORT_NOW.load(core::sync::atomic::Ordering::Relaxed)),
        },
        None => Sink::Hypervisor,
    };
    let mut c = Console { sink, owed, stats: Stats::default(), stalled: false };
    let _ = c.write_fmt(args);
    let _ = c.flush();
}
