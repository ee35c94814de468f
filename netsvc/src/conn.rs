//! One HTTP connection, without its socket: the bytes received and not yet
//! used, the response bytes the socket has not taken yet, and the phase
//! with its deadline. The kernel's glue moves bytes between this and a
//! smoltcp socket; every decision (what to answer, when to give up on the
//! client) is made here, on a clock in milliseconds the caller passes in.
//!
//! Phases and their timeouts ([`Timeouts`]):
//! - `New`: accepted, no byte yet. After `idle_ms`: closed, no answer.
//! - `Head`: part of a request head. After `header_ms` from its first
//!   byte: `408`, closed (slowloris).
//! - `Body`: the head is in, its `Content-Length` body is not. After
//!   `request_ms` from the request's first byte: `408`, closed.
//! - `Sending`: a response the client has not taken (the socket still
//!   holds unacknowledged bytes). After `request_ms` from the request's
//!   first byte: aborted (a client that never reads).
//! - `Idle`: keep-alive between requests. After `keepalive_ms`: closed.
//!
//! Memory per connection is bounded: at most `max_head + max_body` bytes
//! received and unused (the glue reads no more than [`HttpConn::room`]:
//! beyond that, TCP's window holds the client back), and responses are
//! generated only while fewer than [`OUT_BATCH`] bytes wait for the
//! socket, so pipelined requests are answered in order, a batch at a time.

use crate::http::{self, Head, Limits, Method, Parse, Request, Status};
use alloc::vec::Vec;

/// The phase timeouts, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A new connection that sends nothing.
    pub idle_ms: u64,
    /// From a request's first byte to the end of its head.
    pub header_ms: u64,
    /// An open connection between requests.
    pub keepalive_ms: u64,
    /// From a request's first byte until its response is taken (body
    /// read, response sent and acknowledged).
    pub request_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { idle_ms: 10_000, header_ms: 10_000, keepalive_ms: 15_000, request_ms: 30_000 }
    }
}

/// Response bytes waiting for the socket beyond which no further
/// pipelined request is answered until the socket takes them.
pub const OUT_BATCH: usize = 2048;

/// Which timeout ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimedOut {
    Idle,
    Header,
    Body,
    Send,
    KeepAlive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    New,
    Head,
    Body,
    Idle,
    /// A final response (an error, or `Connection: close`) is queued:
    /// nothing more is read or answered.
    Closing,
}

/// What the glue does next with the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep serving.
    Serve,
    /// Send what [`HttpConn::pending`] holds, then close (FIN).
    Close,
    /// Reset the connection now (the client does not take its response).
    Abort(TimedOut),
}

/// What the handler answers a request with; the connection writes the
/// head (`Content-Length`, `Connection`), and the body unless it is a
/// `HEAD` request.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: Status,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The state of one HTTP connection.
#[derive(Debug)]
pub struct HttpConn {
    input: Vec<u8>,
    out: Vec<u8>,
    phase: Phase,
    /// When the phase began (`New`, `Idle`) or the current request's first
    /// byte arrived (`Head`, `Body`, `Closing`).
    since: u64,
    /// Requests answered (not counting error responses).
    pub requests: u64,
    /// Set when a timeout caused the close (for the counters).
    pub timed_out: Option<TimedOut>,
    limits: Limits,
    timeouts: Timeouts,
}

impl HttpConn {
    pub fn new(now: u64, limits: Limits, timeouts: Timeouts) -> Self {
        HttpConn {
            input: Vec::new(),
            out: Vec::new(),
            phase: Phase::New,
            since: now,
            requests: 0,
            timed_out: None,
            limits,
            timeouts,
        }
    }

    /// When (ms) [`HttpConn::step`] times the connection out if nothing
    /// happens before, with `unacked` bytes still in the socket (as
    /// `step` is given): the service loop need not look at it sooner.
    pub fn deadline(&self, unacked: usize) -> u64 {
        let t = &self.timeouts;
        let waiting = !self.out.is_empty() || unacked > 0;
        self.since.saturating_add(match self.phase {
            Phase::New => t.idle_ms,
            Phase::Head => t.header_ms,
            Phase::Body | Phase::Closing => t.request_ms,
            Phase::Idle if waiting => t.request_ms,
            Phase::Idle => t.keepalive_ms,
        })
    }

    /// Bytes the connection can still take from the socket.
    pub fn room(&self) -> usize {
        if self.phase == Phase::Closing {
            // Nothing more is read: the socket's window closes instead.
            return 0;
        }
        (self.limits.max_head + self.limits.max_body).saturating_sub(self.input.len())
    }

    /// Takes received bytes (at most [`room`](Self::room); the rest is
    /// dropped, which the glue never causes).
    pub fn received(&mut self, now: u64, data: &[u8]) {
        let data = &data[..data.len().min(self.room())];
        if data.is_empty() {
            return;
        }
        if matches!(self.phase, Phase::New | Phase::Idle) {
            self.phase = Phase::Head;
            self.since = now;
        }
        self.input.extend_from_slice(data);
    }

    /// Response bytes for the socket; the glue calls
    /// [`sent`](Self::sent) with how many it took.
    pub fn pending(&self) -> &[u8] {
        &self.out
    }

    pub fn sent(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    /// Bytes held for this connection (received and unused, and waiting
    /// to be sent), for the memory figures.
    pub fn held(&self) -> usize {
        self.input.capacity() + self.out.capacity()
    }

    /// Answers every complete request it can, checks the phase's
    /// deadline, and says what the socket should do. `unacked` is what the
    /// socket itself still holds to send (its send queue).
    pub fn step(
        &mut self,
        now: u64,
        unacked: usize,
        handler: &mut dyn FnMut(&Request<'_>, &[u8]) -> Response,
    ) -> Next {
        while self.phase != Phase::Closing && self.out.len() < OUT_BATCH && !self.input.is_empty() {
            match http::parse(&self.input, &self.limits) {
                Parse::Partial => break,
                Parse::Reject(r) => {
                    self.fail(r.status());
                    break;
                }
                Parse::Request(req) => {
                    let end = req.head_len + req.body_len;
                    if self.input.len() < end {
                        self.phase = Phase::Body;
                        break;
                    }
                    let resp = handler(&req, &self.input[req.head_len..end]);
                    let head = Head {
                        status: resp.status,
                        content_type: resp.content_type,
                        content_length: resp.body.len(),
                        keep_alive: req.keep_alive,
                        retry_after: None,
                    };
                    write_head(&mut self.out, &head);
                    if req.method != Method::Head {
                        self.out.extend_from_slice(&resp.body);
                    }
                    self.requests += 1;
                    let keep = req.keep_alive;
                    self.input.drain(..end);
                    if !keep {
                        self.phase = Phase::Closing;
                        self.input = Vec::new();
                    } else if self.input.is_empty() {
                        self.phase = Phase::Idle;
                        self.since = now;
                    } else {
                        // The next pipelined request is already here:
                        // its clock starts now.
                        self.phase = Phase::Head;
                        self.since = now;
                    }
                }
            }
        }
        let waiting = !self.out.is_empty() || unacked > 0;
        let t = &self.timeouts;
        let elapsed = now.saturating_sub(self.since);
        match self.phase {
            Phase::New if elapsed >= t.idle_ms => {
                self.timed_out = Some(TimedOut::Idle);
                Next::Close
            }
            Phase::Idle if waiting && elapsed >= t.request_ms => self.abort(TimedOut::Send),
            Phase::Idle if !waiting && elapsed >= t.keepalive_ms => {
                self.timed_out = Some(TimedOut::KeepAlive);
                Next::Close
            }
            Phase::Head if elapsed >= t.header_ms => {
                self.timed_out = Some(TimedOut::Header);
                self.fail(Status::RequestTimeout);
                Next::Close
            }
            Phase::Body if elapsed >= t.request_ms => {
                self.timed_out = Some(TimedOut::Body);
                self.fail(Status::RequestTimeout);
                Next::Close
            }
            Phase::Closing if waiting && elapsed >= t.request_ms => self.abort(TimedOut::Send),
            Phase::Closing => Next::Close,
            _ => Next::Serve,
        }
    }

    fn abort(&mut self, why: TimedOut) -> Next {
        self.timed_out = Some(why);
        Next::Abort(why)
    }

    /// Queues the error response and stops reading; the clock of the
    /// send starts now.
    fn fail(&mut self, status: Status) {
        http::error_response(&mut self.out, status, None);
        self.phase = Phase::Closing;
        self.input = Vec::new();
    }
}

fn write_head(out: &mut Vec<u8>, head: &Head<'_>) {
    use core::fmt::Write;
    struct W<'a>(&'a mut Vec<u8>);
    impl Write for W<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    let _ = write!(W(out), "{head}");
}

/// The response a connection refused for overload gets: `503` with
/// `Retry-After`, then the close.
pub fn overload_response(retry_after_s: u32) -> Vec<u8> {
    let mut out = Vec::new();
    http::error_response(&mut out, Status::ServiceUnavailable, Some(retry_after_s));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::String;

    fn ok(req: &Request<'_>, _: &[u8]) -> Response {
        Response {
            status: Status::Ok,
            content_type: "text/plain",
            body: req.target.as_bytes().to_vec(),
        }
    }

    fn conn() -> HttpConn {
        HttpConn::new(0, Limits::default(), Timeouts::default())
    }

    fn take(c: &mut HttpConn) -> String {
        let s = String::from_utf8(c.pending().to_vec()).unwrap();
        c.sent(s.len());
        s
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_and_keep_alive_holds() {
        let mut c = conn();
        c.received(
            1,
            b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTT",
        );
        assert_eq!(c.step(1, 0, &mut ok), Next::Serve);
        let out = take(&mut c);
        let a = out.find("\r\n\r\n/a").unwrap();
        let b = out.find("\r\n\r\n/b").unwrap();
        assert!(a < b, "{out}");
        assert_eq!(out.matches("Connection: keep-alive").count(), 2);
        c.received(2, b"P/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        assert_eq!(c.step(2, 0, &mut ok), Next::Close);
        let out = take(&mut c);
        assert!(out.ends_with("Connection: close\r\n\r\n/c"), "{out}");
        assert_eq!(c.requests, 3);
        assert_eq!(c.room(), 0);
    }

    #[test]
    fn head_has_no_body_but_its_length() {
        let mut c = conn();
        c.received(0, b"HEAD /abc HTTP/1.1\r\nHost: h\r\n\r\n");
        c.step(0, 0, &mut ok);
        let out = take(&mut c);
        assert!(out.contains("Content-Length: 4\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n"), "{out}");
    }

    #[test]
    fn a_body_is_waited_for_then_skipped() {
        let mut c = conn();
        c.received(0, b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab");
        assert_eq!(c.step(0, 0, &mut ok), Next::Serve);
        assert!(c.pending().is_empty());
        c.received(1, b"cdeGET /n HTTP/1.1\r\nHost: h\r\n\r\n");
        c.step(1, 0, &mut ok);
        let out = take(&mut c);
        assert!(out.contains("\r\n\r\n/p") && out.ends_with("\r\n\r\n/n"), "{out}");
    }

    #[test]
    fn timeouts_of_each_phase() {
        let t = Timeouts { idle_ms: 100, header_ms: 200, keepalive_ms: 300, request_ms: 400 };
        let mut c = HttpConn::new(0, Limits::default(), t);
        // Each phase's deadline is when its timeout strikes: the loop
        // need not look sooner.
        assert_eq!(c.deadline(0), 100);
        assert_eq!(c.step(99, 0, &mut ok), Next::Serve);
        assert_eq!(c.step(100, 0, &mut ok), Next::Close);
        assert_eq!(c.timed_out, Some(TimedOut::Idle));
        assert!(c.pending().is_empty(), "an idle connection gets no answer");

        // Slowloris: half a head, a byte at a time; the clock runs from
        // the first byte.
        let mut c = HttpConn::new(0, Limits::default(), t);
        c.received(50, b"GET / HT");
        for ms in (60..250).step_by(10) {
            c.received(ms, b"T");
            assert_eq!(c.step(ms, 0, &mut ok), Next::Serve, "at {ms}");
        }
        assert_eq!(c.deadline(0), 250);
        assert_eq!(c.step(250, 0, &mut ok), Next::Close);
        assert_eq!(c.timed_out, Some(TimedOut::Header));
        assert!(take(&mut c).starts_with("HTTP/1.1 408 "));

        // Keep-alive idle after a request, then a client that stops reading.
        let mut c = HttpConn::new(0, Limits::default(), t);
        c.received(0, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        c.step(0, 0, &mut ok);
        take(&mut c);
        assert_eq!(c.deadline(0), 300);
        assert_eq!(c.step(299, 0, &mut ok), Next::Serve);
        assert_eq!(c.step(300, 0, &mut ok), Next::Close);
        assert_eq!(c.timed_out, Some(TimedOut::KeepAlive));

        let mut c = HttpConn::new(0, Limits::default(), t);
        c.received(0, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        c.step(0, 0, &mut ok);
        assert_eq!(c.deadline(100), 400, "a response not taken: the request timeout");
        assert_eq!(c.step(399, 100, &mut ok), Next::Serve);
        assert_eq!(c.step(400, 100, &mut ok), Next::Abort(TimedOut::Send));

        // A body that never comes.
        let mut c = HttpConn::new(0, Limits::default(), t);
        c.received(10, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(c.step(409, 0, &mut ok), Next::Serve);
        assert_eq!(c.deadline(0), 410);
        assert_eq!(c.step(410, 0, &mut ok), Next::Close);
        assert_eq!(c.timed_out, Some(TimedOut::Body));
    }

    #[test]
    fn oversized_and_malformed_requests_get_their_status_then_close() {
        let l = Limits { max_head: 64, max_fields: 8, max_body: 16 };
        let mut c = HttpConn::new(0, l, Timeouts::default());
        c.received(0, &[b'x'; 100]);
        assert_eq!(c.room(), 0, "what passes the limits is not taken");
        assert_eq!(c.step(0, 0, &mut ok), Next::Close);
        assert!(take(&mut c).starts_with("HTTP/1.1 431 "));
        assert_eq!(c.room(), 0);

        let mut c = HttpConn::new(0, l, Timeouts::default());
        c.received(0, b"\x16\x03\x01garbage\r\n\r\n");
        assert_eq!(c.step(0, 0, &mut ok), Next::Close);
        assert!(take(&mut c).starts_with("HTTP/1.1 400 "));

        let mut c = HttpConn::new(0, l, Timeouts::default());
        c.received(0, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n");
        assert_eq!(c.step(0, 0, &mut ok), Next::Close);
        assert!(take(&mut c).starts_with("HTTP/1.1 413 "));
    }

    #[test]
    fn pipelining_is_answered_a_batch_at_a_time() {
        let mut c = conn();
        let one = b"GET /0123456789012345678901234567890123456789 HTTP/1.1\r\nHost: h\r\n\r\n";
        for _ in 0..60 {
            c.received(0, one);
        }
        c.step(0, 0, &mut ok);
        let first = c.pending().len();
        assert!((OUT_BATCH..OUT_BATCH + 200).contains(&first), "{first}");
        let mut answered = 0;
        for _ in 0..100 {
            answered += take(&mut c).matches("HTTP/1.1 200").count();
            c.step(0, 0, &mut ok);
        }
        assert_eq!(answered, 60);
        assert_eq!(c.requests, 60);
    }

    #[test]
    fn overload() {
        let s = String::from_utf8(overload_response(2)).unwrap();
        assert!(s.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(s.contains("Retry-After: 2\r\n"));
    }
}
