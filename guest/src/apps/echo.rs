//! `app=echo`: TCP echo on port 7 (RFC 862), many clients at once, through
//! the service layer (`net::listener`: backlog, overload refusal, idle
//! timeouts; see docs/services.md); answers ping. Each connection's bytes
//! go back in order; a client that half-closes gets the rest of its echo,
//! then the close.
//!
//! For throughput measurements (`cargo xtask bench net`) it also sinks
//! data on port 9 (discard, RFC 863) and sources it on port 19 (like
//! chargen, RFC 864, but the stream's byte at offset `i` is `i % 251`, so
//! a client can check every byte) until the client closes.
//!
//! Timeouts (`svc.*`): a connection that sends nothing for `idle_ms`
//! after it opens, or for `keepalive_ms` after its last byte, is closed;
//! one whose echo the client does not take for `request_ms` is reset.

use super::{AppError, AppResult};
use alloc::format;
use alloc::string::String;
use kernel::cmdline::Cmdline;
use kernel::net::listener::{self, Listener, Protocol};
use kernel::net::service::{self, Service, Status};
use kernel::source_stream::fill_source;
use netsvc::config::{ListenConfig, Sizing};
use netsvc::conn::{Next, TimedOut, Timeouts};
use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;

const PORT: u16 = 7;
const DISCARD: u16 = 9;
const SOURCE: u16 = 19;
/// Echo connections' socket buffers.
const BUFFER: usize = 16 * 1024;
/// The bulk ports' connections at once.
const BULK_CONNS: usize = 2;
/// The bulk sockets' one large buffer (discard's RX, source's TX): a
/// thirty-second of the guest's memory, between 64 KiB and 512 KiB. A
/// window past 64 KiB (window scaling, which smoltcp offers when the buffer
/// is larger) keeps several 64 KiB GSO packets in flight.
fn bulk_buffer() -> usize {
    let mem = platform::nr_pages() as usize * 4096;
    (mem / 32).clamp(64 * 1024, 512 * 1024).next_power_of_two().min(512 * 1024)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Echo,
    Discard,
    Source,
}

/// One connection: when it last moved a byte, and whether it ever did.
struct Conn {
    since: u64,
    started: bool,
    sent: u64,
    timed_out: Option<TimedOut>,
}

struct Stream {
    kind: Kind,
    timeouts: Timeouts,
    bytes: u64,
}

impl Protocol for Stream {
    type Conn = Conn;

    fn accept(&mut self, now: u64) -> Conn {
        Conn { since: now, started: false, sent: 0, timed_out: None }
    }

    fn serve(&mut self, c: &mut Conn, s: &mut tcp::Socket<'static>, now: u64) -> Next {
        let mut moved = 0usize;
        match self.kind {
            Kind::Discard => {
                while s.can_recv() {
                    match s.recv(|b| (b.len(), b.len())) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => moved += n,
                    }
                }
            }
            Kind::Source => {
                while s.may_send() && s.can_send() {
                    let sent = c.sent;
                    let n = s
                        .send(|b| {
                            fill_source(b, sent);
                            (b.len(), b.len())
                        })
                        .unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    c.sent += n as u64;
                    moved += n;
                }
            }
            Kind::Echo => {
                let mut chunk = [0u8; 4096];
                while s.can_recv() && s.can_send() {
                    let room = (s.send_capacity() - s.send_queue()).min(chunk.len());
                    let n = s.recv_slice(&mut chunk[..room]).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    let sent = s.send_slice(&chunk[..n]).unwrap_or(0);
                    debug_assert_eq!(sent, n, "room was checked");
                    moved += n;
                }
            }
        }
        self.bytes += moved as u64;
        if moved > 0 {
            c.since = now;
            c.started = true;
        }
        let finished = s.state() == tcp::State::CloseWait && !s.can_recv();
        let waiting = s.send_queue() > 0;
        let idle = now.saturating_sub(c.since);
        let t = &self.timeouts;
        if finished && (!waiting || self.kind == Kind::Source) {
            // The client is done sending and has all its bytes back (the
            // source stops when its client closes).
            Next::Close
        } else if waiting && idle >= t.request_ms {
            c.timed_out = Some(TimedOut::Send);
            Next::Abort(TimedOut::Send)
        } else if self.kind == Kind::Source {
            Next::Serve
        } else if !c.started && idle >= t.idle_ms {
            c.timed_out = Some(TimedOut::Idle);
            Next::Close
        } else if c.started && !waiting && idle >= t.keepalive_ms {
            c.timed_out = Some(TimedOut::KeepAlive);
            Next::Close
        } else {
            Next::Serve
        }
    }

    fn refusal(&self) -> &[u8] {
        &[]
    }

    fn finished(&self, _: &Conn) -> u64 {
        1
    }

    fn deadline(&self, c: &Conn, s: &tcp::Socket<'static>) -> Option<u64> {
        // The timeouts `serve` applies, from `since`.
        let t = &self.timeouts;
        let waiting = s.send_queue() > 0;
        let send = waiting.then_some(t.request_ms);
        let quiet = match (self.kind, c.started, waiting) {
            (Kind::Source, ..) => None,
            (_, false, _) => Some(t.idle_ms),
            (_, true, false) => Some(t.keepalive_ms),
            (_, true, true) => None,
        };
        [send, quiet].into_iter().flatten().min().map(|ms| c.since.saturating_add(ms))
    }

    fn timed_out(&self, c: &Conn) -> Option<TimedOut> {
        c.timed_out
    }
}

struct Echo {
    ports: [(Listener<Conn>, Stream); 3],
}

impl Echo {
    fn new(cfg: ListenConfig) -> Self {
        let timeouts = cfg.timeouts;
        let bulk = ListenConfig { max_conns: BULK_CONNS, backlog: BULK_CONNS, timeouts };
        let stream = |kind| Stream { kind, timeouts, bytes: 0 };
        Echo {
            ports: [
                (Listener::new(PORT, cfg, BUFFER, BUFFER), stream(Kind::Echo)),
                (Listener::new(DISCARD, bulk, bulk_buffer(), 4096), stream(Kind::Discard)),
                (Listener::new(SOURCE, bulk, 4096, bulk_buffer()), stream(Kind::Source)),
            ],
        }
    }
}

impl Service for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn open(&mut self, sockets: &mut SocketSet<'static>) {
        for (l, _) in &mut self.ports {
            l.open(sockets);
        }
    }

    fn serve(&mut self, sockets: &mut SocketSet<'static>, _: &Status) {
        let now = listener::now_ms();
        for (l, proto) in &mut self.ports {
            let before = l.counters.requests;
            l.serve(sockets, now, proto);
            if proto.kind == Kind::Echo && l.counters.requests / 100 > before / 100 {
                log::info!(
                    "echo: {} connections, {} bytes echoed",
                    l.counters.requests,
                    proto.bytes
                );
            }
        }
    }

    fn syn_taken(&mut self, sockets: &mut SocketSet<'static>) {
        for (l, _) in &mut self.ports {
            l.replenish(sockets);
        }
    }

    fn poll_at(&self) -> Option<u64> {
        self.ports.iter().filter_map(|(l, _)| l.deadline()).min()
    }

    /// Each connection stands alone: another vCPU's shard serves its own
    /// with the same settings (docs/smp.md).
    fn another(&self) -> Option<alloc::boxed::Box<dyn Service>> {
        Some(alloc::boxed::Box::new(Echo::new(*self.ports[0].0.config())))
    }

    fn report(&self) -> Option<String> {
        let mut out = String::new();
        for (l, _) in &self.ports {
            let c = &l.counters;
            out.push_str(&format!(
                "echo: port {}: accepted {} refused {} refused_reset {} timed_out {} (idle {} keepalive {} request {}) aborted {} active {} peak {};",
                l.port(), c.accepted, c.refused, listener::resets(l.port()), c.timed_out,
                c.timed_out_idle, c.timed_out_keepalive, c.timed_out_request, c.aborted,
                c.active, c.peak
            ));
        }
        Some(out)
    }
}

pub fn run(cmd: &Cmdline<'_>) -> AppResult {
    let mem = platform::nr_pages() * 4096;
    let sizing = Sizing { per_conn: 2 * BUFFER + 1024 };
    let cfg = ListenConfig::from_settings(mem, sizing, |k| cmd.get(k))
        .map_err(|e| AppError::Setting(format!("{e}")))?;
    service::run(cmd, alloc::boxed::Box::new(Echo::new(cfg)))
}
