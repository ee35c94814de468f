//! HTTP/1.1 on a [`Listener`](super::listener::Listener): the glue between
//! a smoltcp socket and `netsvc::conn::HttpConn`, which parses, answers
//! through the app's handler and keeps the timeouts. An app supplies only
//! the handler (a request and its body in, a [`Response`] out).

use super::listener::Protocol;
use alloc::vec::Vec;
use core::cell::Cell;
use netsvc::conn::{overload_response, HttpConn, Next, Response, TimedOut, Timeouts};
use netsvc::counters::Counters;
use netsvc::http::{Limits, Request};
use smoltcp::socket::tcp;

/// Socket buffers of an HTTP connection: a request head fits the receive
/// buffer, a status page the send buffer.
pub const RX_BYTES: usize = 2048;
pub const TX_BYTES: usize = 4096;

/// What one HTTP connection can cost: its socket buffers, the socket
/// itself, and `HttpConn`'s buffers at their limits (received bytes up to
/// a head and a body, responses up to a batch and one more).
pub fn per_conn(limits: &Limits) -> usize {
    RX_BYTES + TX_BYTES + 1024 + limits.max_head + limits.max_body + 2 * netsvc::conn::OUT_BATCH
}

/// Seconds a client refused for overload is told to wait.
pub const RETRY_AFTER_S: u32 = 1;

/// HTTP for one pass over a listener's connections.
pub struct Http<'h> {
    pub limits: Limits,
    pub timeouts: Timeouts,
    refusal: &'h [u8],
    pub handler: &'h mut dyn FnMut(&Request<'_>, &[u8]) -> Response,
    /// Where the listener's counters are kept current for the handler (a
    /// status page), if it wants them: [`Http::with_live_counters`].
    live: Option<&'h Cell<Counters>>,
}

impl<'h> Http<'h> {
    /// The listener's counters go into `live` before each connection is
    /// served, so `handler` can read them as they are then.
    pub fn with_live_counters(self, live: &'h Cell<Counters>) -> Self {
        Http { live: Some(live), ..self }
    }

    pub fn new(
        limits: Limits,
        timeouts: Timeouts,
        refusal: &'h [u8],
        handler: &'h mut dyn FnMut(&Request<'_>, &[u8]) -> Response,
    ) -> Self {
        Http { limits, timeouts, refusal, handler, live: None }
    }
}

/// The `503` a listener sends when full (build once, pass to [`Http::new`]).
pub fn refusal() -> Vec<u8> {
    overload_response(RETRY_AFTER_S)
}

impl Protocol for Http<'_> {
    type Conn = HttpConn;

    fn counters_now(&mut self, counters: &Counters) {
        if let Some(live) = self.live {
            live.set(*counters);
        }
    }

    fn accept(&mut self, now: u64) -> HttpConn {
        HttpConn::new(now, self.limits, self.timeouts)
    }

    fn serve(&mut self, c: &mut HttpConn, s: &mut tcp::Socket<'static>, now: u64) -> Next {
        let mut buf = [0u8; 1024];
        while s.can_recv() && c.room() > 0 {
            let room = c.room().min(buf.len());
            match s.recv_slice(&mut buf[..room]) {
                Ok(0) | Err(_) => break,
                Ok(n) => c.received(now, &buf[..n]),
            }
        }
        let mut next = c.step(now, s.send_queue(), self.handler);
        loop {
            if c.pending().is_empty() {
                break;
            }
            let n = s.send_slice(c.pending()).unwrap_or(0);
            if n == 0 {
                break;
            }
            c.sent(n);
            // The socket took a batch: answer what is pipelined behind it.
            if next == Next::Serve {
                next = c.step(now, s.send_queue(), self.handler);
            }
        }
        match next {
            // Close once every response byte is in the socket.
            Next::Close if !c.pending().is_empty() => Next::Serve,
            // The client has sent its last byte (FIN) and has its answers.
            Next::Serve
                if s.state() == tcp::State::CloseWait
                    && !s.can_recv()
                    && c.pending().is_empty() =>
            {
                Next::Close
            }
            n => n,
        }
    }

    fn refusal(&self) -> &[u8] {
        self.refusal
    }

    fn finished(&self, c: &HttpConn) -> u64 {
        c.requests
    }

    fn timed_out(&self, c: &HttpConn) -> Option<TimedOut> {
        c.timed_out
    }

    fn deadline(&self, c: &HttpConn, s: &tcp::Socket<'static>) -> Option<u64> {
        Some(c.deadline(s.send_queue()))
    }
}
