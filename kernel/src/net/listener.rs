//! A TCP listener with an accept backlog, for every service on the guest.
//!
//! smoltcp has no `listen(2)` backlog: one listening socket takes one
//! connection, and a SYN that finds no listening socket is answered with a
//! reset. So a listener keeps a pool: `backlog` sockets listening at all
//! times, topped up after every SYN the stack takes ([`Listener::replenish`],
//! called by the service loop between received packets) and after each
//! pass, up to `max_conns + backlog` sockets in all (the memory bound, see
//! `netsvc::config`).
//!
//! smoltcp visits every socket of its set on every poll (and again to
//! find the next deadline), so the set holds only the sockets in use:
//! listening, connected, closing. A socket whose connection is over leaves
//! the set and waits, with its buffers, in the listener's spare pool for
//! the next top-up. A socket that completes its handshake becomes a
//! connection while fewer than `max_conns` are served (its clocks start
//! then; a handshake not completed within the idle timeout is reset); beyond that it is refused the
//! protocol's way (HTTP: `503` with `Retry-After`) and closed, counted,
//! without touching the connections being served. Once even the backlog
//! is used up, the stack's reset turns clients away: those resets are
//! counted too (`refused_reset`, from the frames sent: [`note_frame`]).
//!
//! Every connection's protocol state ([`Protocol::Conn`]) decides its
//! timeouts; the listener adds one of its own: a connection being closed
//! (FIN sent) that does not finish within the request timeout is reset,
//! and TIME-WAIT is not waited out (the socket is taken back after the
//! pass that sends its last ACK: the 4-tuple's next SYN would find a
//! listening socket anyway).

use alloc::vec::Vec;
use netsvc::config::ListenConfig;
use netsvc::conn::{Next, TimedOut};
use netsvc::counters::Counters;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use spin::Mutex;

/// A protocol served on a listener's connections.
pub trait Protocol {
    type Conn;
    /// A connection was accepted at `now` (ms).
    fn accept(&mut self, now: u64) -> Self::Conn;
    /// Moves the connection's bytes and says what next.
    fn serve(&mut self, conn: &mut Self::Conn, s: &mut tcp::Socket<'static>, now: u64) -> Next;
    /// What a connection refused for overload is sent before its close.
    fn refusal(&self) -> &[u8];
    /// Requests (or connections) the connection finished, for the
    /// counters, read when it ends.
    fn finished(&self, conn: &Self::Conn) -> u64;
    /// The timeout that ended the connection, if one did.
    fn timed_out(&self, conn: &Self::Conn) -> Option<TimedOut>;
    /// When (ms) [`Protocol::serve`] times the connection out if nothing
    /// happens on it before; `None`: never. Exact, or the loop would wake
    /// for nothing (or, for a deadline past that `serve` does not act on,
    /// spin).
    fn deadline(&self, conn: &Self::Conn, s: &tcp::Socket<'static>) -> Option<u64>;
    /// The listener's counters as they are now, just before a
    /// [`Protocol::serve`]: a status page written in that call counts the
    /// connections accepted earlier in the same pass (its own included).
    fn counters_now(&mut self, _counters: &Counters) {}
}

enum Slot<C> {
    /// Listening.
    Listening,
    /// In the handshake a listening socket began (SYN-RECEIVED) since
    /// then: a connection once the client's ACK comes, its clocks
    /// starting then; reset if it does not come within the idle timeout
    /// (smoltcp itself would wait forever: a SYN flood's half-open
    /// connections must not hold the pool).
    Handshake {
        since: u64,
    },
    Active(C),
    /// Refused: the refusal is sent once the handshake ends, then closed.
    Refusing {
        sent: bool,
        deadline: u64,
    },
    /// FIN sent; reset at the deadline if the close has not finished.
    Closing {
        deadline: u64,
    },
    /// Reset, or in TIME-WAIT, this pass: free once what it has to send
    /// (the reset, the last ACK) has gone out in the pass's egress; TIME-WAIT
    /// is not waited out.
    Aborted,
    /// Closed: the socket leaves the set for the spare pool at the end of
    /// the pass.
    Free,
}

pub struct Listener<C> {
    port: u16,
    cfg: ListenConfig,
    rx_bytes: usize,
    tx_bytes: usize,
    /// Sockets in the set listening (as of the last look): kept apart
    /// so that topping up after every SYN costs the backlog, not the pool.
    listening: Vec<SocketHandle>,
    /// The other sockets in the set, each with what it is doing.
    slots: Vec<(SocketHandle, Slot<C>)>,
    /// Closed sockets out of the set (smoltcp does not visit them), kept
    /// with their buffers for the next top-up.
    spare: Vec<tcp::Socket<'static>>,
    /// The earliest deadline of any slot after the last pass.
    deadline: Option<u64>,
    pub counters: Counters,
}

impl<C> Listener<C> {
    /// A listener on `port` whose sockets have `rx_bytes`/`tx_bytes` of
    /// buffers; nothing listens until [`open`](Self::open).
    pub fn new(port: u16, cfg: ListenConfig, rx_bytes: usize, tx_bytes: usize) -> Self {
        Listener {
            port,
            cfg,
            rx_bytes,
            tx_bytes,
            listening: Vec::new(),
            slots: Vec::new(),
            spare: Vec::new(),
            deadline: None,
            counters: Counters::default(),
        }
    }

    pub fn config(&self) -> &ListenConfig {
        &self.cfg
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sockets allocated (their buffers stay for reuse): the memory held.
    pub fn sockets(&self) -> usize {
        self.listening.len() + self.slots.len() + self.spare.len()
    }

    /// The earliest time (ms) a timeout may strike (a handshake, a
    /// connection's phase, a refusal, a close), as of the last pass: the
    /// service loop sleeps until then if nothing else happens.
    pub fn deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// Bytes of socket buffers held.
    pub fn buffer_bytes(&self) -> usize {
        self.sockets() * (self.rx_bytes + self.tx_bytes)
    }

    /// Starts listening: the first `backlog` sockets.
    pub fn open(&mut self, sockets: &mut SocketSet<'static>) {
        self.top_up(sockets);
        crate::kprintln!(
            "listener: port {}: backlog {}, at most {} connections, {} KiB of socket buffers at most; timeouts (ms): idle {} header {} keepalive {} request {}",
            self.port,
            self.cfg.backlog,
            self.cfg.max_conns,
            (self.cfg.max_conns + self.cfg.backlog) * (self.rx_bytes + self.tx_bytes) / 1024,
            self.cfg.timeouts.idle_ms,
            self.cfg.timeouts.header_ms,
            self.cfg.timeouts.keepalive_ms,
            self.cfg.timeouts.request_ms,
        );
    }

    /// Serves every connection once, then tops the backlog up.
    pub fn serve<P: Protocol<Conn = C>>(
        &mut self,
        sockets: &mut SocketSet<'static>,
        now: u64,
        proto: &mut P,
    ) {
        let linger = self.cfg.timeouts.request_ms;
        let idle = self.cfg.timeouts.idle_ms;
        // Listening sockets that took a SYN join the slots first.
        self.top_up(sockets);
        let mut slots = core::mem::take(&mut self.slots);
        for (handle, slot) in &mut slots {
            let s = sockets.get_mut::<tcp::Socket>(*handle);
            let state = s.state();
            let mut current = core::mem::replace(slot, Slot::Free);
            // A connection accepted in this pass is served in it too: its
            // request may have come with the handshake's last ACK, and no
            // event or deadline would bring another pass for it (it
            // waited for the next packet or the next XenStore look).
            let next = loop {
                let accepting = matches!(current, Slot::Listening | Slot::Handshake { .. });
                let next = match current {
                    Slot::Free => Slot::Free,
                    Slot::Aborted => Slot::Free,
                    Slot::Listening => match state {
                        State::Listen => Slot::Listening,
                        State::SynReceived => Slot::Handshake { since: now },
                        // A reset during the handshake: back to nothing.
                        State::Closed => Slot::Free,
                        _ => self.accept(now, proto),
                    },
                    Slot::Handshake { since } => match state {
                        // A reset in SYN-RECEIVED puts smoltcp's socket back
                        // to LISTEN.
                        State::Listen => Slot::Listening,
                        State::Closed => Slot::Free,
                        State::SynReceived if now.saturating_sub(since) >= idle => {
                            s.abort();
                            self.counters.timed_out(TimedOut::Idle);
                            self.counters.aborted += 1;
                            Slot::Aborted
                        }
                        State::SynReceived => Slot::Handshake { since },
                        _ => self.accept(now, proto),
                    },
                    Slot::Refusing { .. } if state == State::Listen => Slot::Listening,
                    Slot::Refusing { sent, deadline } => {
                        if !s.is_open() {
                            Slot::Free
                        } else if now >= deadline {
                            s.abort();
                            self.counters.aborted += 1;
                            Slot::Aborted
                        } else if !sent && s.may_send() {
                            // A 503 is far smaller than any send buffer.
                            let _ = s.send_slice(proto.refusal());
                            s.close();
                            Slot::Refusing { sent: true, deadline }
                        } else if state == State::TimeWait {
                            Slot::Aborted
                        } else {
                            Slot::Refusing { sent, deadline }
                        }
                    }
                    Slot::Active(c) if state == State::Listen => {
                        // A reset in SYN-RECEIVED puts smoltcp's socket back
                        // to LISTEN: the connection never was.
                        end(&mut self.counters, proto, &c);
                        Slot::Listening
                    }
                    Slot::Active(mut c) => {
                        if state == State::Closed || state == State::TimeWait {
                            // Reset by the client, or already closed by both
                            // (the last ACK goes out in this pass's egress).
                            end(&mut self.counters, proto, &c);
                            if state == State::TimeWait {
                                Slot::Aborted
                            } else {
                                Slot::Free
                            }
                        } else {
                            proto.counters_now(&self.counters);
                            match proto.serve(&mut c, s, now) {
                                Next::Serve => Slot::Active(c),
                                Next::Close => {
                                    s.close();
                                    end(&mut self.counters, proto, &c);
                                    Slot::Closing { deadline: now + linger }
                                }
                                Next::Abort(_) => {
                                    s.abort();
                                    self.counters.aborted += 1;
                                    end(&mut self.counters, proto, &c);
                                    Slot::Aborted
                                }
                            }
                        }
                    }
                    Slot::Closing { deadline } => match state {
                        State::Closed => Slot::Free,
                        State::TimeWait => Slot::Aborted,
                        _ if now >= deadline => {
                            s.abort();
                            self.counters.aborted += 1;
                            Slot::Aborted
                        }
                        _ => {
                            // Whatever still arrives is not read: drop it so
                            // the window does not hold the close up.
                            let _ = s.recv(|b| (b.len(), ()));
                            Slot::Closing { deadline }
                        }
                    },
                };
                if accepting && matches!(next, Slot::Active(_) | Slot::Refusing { .. }) {
                    current = next;
                    continue;
                }
                break next;
            };
            *slot = next;
        }
        self.deadline = slots
            .iter()
            .filter_map(|(h, slot)| match slot {
                Slot::Handshake { since } => Some(since.saturating_add(idle)),
                Slot::Active(c) => proto.deadline(c, sockets.get::<tcp::Socket>(*h)),
                Slot::Refusing { deadline, .. } | Slot::Closing { deadline } => Some(*deadline),
                // Free or aborted: gone after the pass; listening: no clock.
                _ => None,
            })
            .min();
        // Closed sockets leave the set (smoltcp need not visit them);
        // sockets back in LISTEN (a reset in SYN-RECEIVED) are listening.
        let mut i = 0;
        while i < slots.len() {
            match slots[i].1 {
                Slot::Free => {
                    let (handle, _) = slots.swap_remove(i);
                    if let smoltcp::socket::Socket::Tcp(mut t) = sockets.remove(handle) {
                        // Out of the set, a reset from TIME-WAIT is never sent.
                        t.abort();
                        self.spare.push(t);
                    }
                }
                Slot::Listening => {
                    let (handle, _) = slots.swap_remove(i);
                    self.listening.push(handle);
                }
                _ => i += 1,
            }
        }
        self.slots = slots;
        self.top_up(sockets);
    }

    /// Keeps `backlog` sockets listening after the stack handed a SYN to
    /// one of them: called between received packets, so a burst of SYNs
    /// in one pass finds a listening socket for each (up to the pool's
    /// bound) without keeping hundreds listening.
    pub fn replenish(&mut self, sockets: &mut SocketSet<'static>) {
        self.top_up(sockets);
    }

    /// A handshake ended: a connection, or a refusal when full.
    fn accept<P: Protocol<Conn = C>>(&mut self, now: u64, proto: &mut P) -> Slot<C> {
        if self.counters.active < self.cfg.max_conns as u64 {
            self.counters.opened();
            Slot::Active(proto.accept(now))
        } else {
            self.counters.refused += 1;
            Slot::Refusing { sent: false, deadline: now + self.cfg.timeouts.request_ms }
        }
    }

    /// Keeps `backlog` sockets listening: a listening socket that took a
    /// SYN becomes a slot (the next pass follows its handshake), and spare
    /// sockets, or new ones while the pool is below its bound, listen in
    /// its place. Costs the backlog, not the pool.
    fn top_up(&mut self, sockets: &mut SocketSet<'static>) {
        let mut i = 0;
        while i < self.listening.len() {
            let h = self.listening[i];
            if sockets.get::<tcp::Socket>(h).state() == State::Listen {
                i += 1;
            } else {
                self.listening.swap_remove(i);
                self.slots.push((h, Slot::Listening));
            }
        }
        while self.listening.len() < self.cfg.backlog {
            let mut s = match self.spare.pop() {
                Some(s) => s,
                None if self.sockets() < self.cfg.max_conns + self.cfg.backlog => {
                    super::tcp_socket(self.rx_bytes, self.tx_bytes)
                }
                None => return,
            };
            if s.listen(self.port).is_err() {
                log::warn!("listener: cannot listen on port {}", self.port);
                self.spare.push(s);
                return;
            }
            self.listening.push(sockets.add(s));
        }
    }
}

/// A connection is over: no longer active, its requests counted.
fn end<C, P: Protocol<Conn = C>>(counters: &mut Counters, proto: &P, c: &C) {
    counters.closed();
    counters.requests += proto.finished(c);
    if let Some(t) = proto.timed_out(c) {
        counters.timed_out(t);
    }
}

/// Connection attempts refused with a reset (no listening socket), per
/// local port.
static RESETS: Mutex<Vec<(u16, u64)>> = Mutex::new(Vec::new());

/// Looks at a frame the guest sends: a reset refusing a SYN is counted
/// against its port.
pub fn note_frame(frame: &[u8]) {
    if let Some(port) = netsvc::frame::syn_refusal_port(frame) {
        let mut r = RESETS.lock();
        match r.iter_mut().find(|(p, _)| *p == port) {
            Some((_, n)) => *n += 1,
            None => r.push((port, 1)),
        }
    }
}

/// Connection attempts to `port` refused with a reset so far.
pub fn resets(port: u16) -> u64 {
    RESETS.lock().iter().find(|(p, _)| *p == port).map_or(0, |(_, n)| *n)
}

/// The milliseconds clock the protocols' deadlines run on: Xen system
/// time, the timer's clock, so a deadline is a timer deadline as is.
pub fn now_ms() -> u64 {
    platform::now_ns() / 1_000_000
}
