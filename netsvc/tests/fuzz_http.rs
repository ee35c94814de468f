//! Fuzzing the HTTP request side without cargo-fuzz (which needs nightly),
//! as `xenstore-client/tests/fuzz_reply.rs` does: fixed seeds, a bounded
//! number of inputs, plain `#[test]`s that CI runs.
//!
//! - the parser over random bytes and over mutations of valid requests:
//!   an answer for every input, no panic, and a request's head length
//!   within the input;
//! - properties: every proper prefix of a valid request is `Partial`; a
//!   request parses the same whatever follows it;
//! - a connection fed a stream cut at random points answers exactly as
//!   when fed it whole (pipelining and split reads are the same thing),
//!   in order;
//! - a connection fed hostile bytes a chunk at a time never holds more
//!   than its limits allow and always ends (answers or closes).
//!
//! `HTTP_FUZZ_ITERS` scales the effort (default 1: a second or two).

use netsvc::conn::{HttpConn, Next, Response, Timeouts, OUT_BATCH};
use netsvc::http::{parse, Limits, Parse, Request, Status};

fn scale() -> u64 {
    std::env::var("HTTP_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

/// xorshift64*: deterministic, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

fn corpus() -> Vec<&'static [u8]> {
    vec![
        b"GET / HTTP/1.1\r\nHost: 192.0.2.2\r\n\r\n",
        b"GET /status.json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /a?b=c HTTP/1.1\nHost: a\nUser-Agent: t/1 (x)\nAccept: */*\n\n",
        b"\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    ]
}

fn mutate(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len() as u64) as usize;
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let n = rng.below(b.len() as u64) as usize;
                b.truncate(n);
            }
            2 => {
                let i = rng.below(b.len() as u64 + 1) as usize;
                b.insert(i, *rng.pick(&[0u8, b'\r', b'\n', b':', b' ', 0xff, b'9', b'\t']));
            }
            3 if !b.is_empty() => {
                let i = rng.below(b.len() as u64) as usize;
                b.remove(i);
            }
            4 => {
                let i = rng.below(b.len() as u64 + 1) as usize;
                let fields: [&[u8]; 6] = [
                    &b"Content-Length: 3\r\n"[..],
                    b"Content-Length: 99999999999999999999999\r\n",
                    b"Transfer-Encoding: chunked\r\n",
                    b"Host: b\r\n",
                    b"Connection: close\r\n",
                    b" folded\r\n",
                ];
                let field = fields[rng.below(6) as usize];
                b.splice(i..i, field.iter().copied());
            }
            5 => {
                let n = rng.below(5000) as usize;
                b.extend(std::iter::repeat_n(b'a', n));
            }
            _ => b.extend_from_slice(b"\r\n"),
        }
    }
    b
}

fn check_parse(b: &[u8], l: &Limits) {
    match parse(b, l) {
        Parse::Partial => {
            // Only a head within the limit is waited for.
            let lead = b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count();
            assert!(b.len() - lead < l.max_head && lead <= l.max_head, "{b:?}");
        }
        Parse::Request(r) => {
            assert!(r.head_len <= b.len());
            assert!(r.head_len <= l.max_head * 2 + 2);
            assert!(r.body_len <= l.max_body);
            // What follows the head does not change the request.
            let mut more = b[..r.head_len].to_vec();
            more.extend_from_slice(b"GARBAGE\x00\xff");
            assert_eq!(parse(&more, l), Parse::Request(r));
        }
        Parse::Reject(_) => {}
    }
}

#[test]
fn random_bytes_and_mutations_always_get_an_answer() {
    let l = Limits::default();
    let small = Limits { max_head: 48, max_fields: 3, max_body: 8 };
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..20_000 * scale() {
        let n = rng.below(300) as usize;
        let b: Vec<u8> =
            (0..n)
                .map(|_| {
                    if rng.below(4) == 0 {
                        *rng.pick(b"\r\n :GET/HTP1.")
                    } else {
                        rng.next() as u8
                    }
                })
                .collect();
        check_parse(&b, &l);
        check_parse(&b, &small);
    }
    let corpus = corpus();
    for _ in 0..20_000 * scale() {
        let base = rng_pick(&mut rng, &corpus).to_vec();
        let b = mutate(&mut rng, base);
        check_parse(&b, &l);
        check_parse(&b, &small);
    }
}

fn rng_pick(rng: &mut Rng, c: &[&'static [u8]]) -> &'static [u8] {
    c[rng.below(c.len() as u64) as usize]
}

#[test]
fn every_proper_prefix_of_a_request_is_partial() {
    let l = Limits::default();
    for req in corpus() {
        let Parse::Request(r) = parse(req, &l) else { panic!("corpus entry does not parse") };
        for cut in 0..r.head_len {
            // A leading empty line is skipped; the head itself is not cut.
            assert_eq!(parse(&req[..cut], &l), Parse::Partial, "{req:?} cut at {cut}");
        }
    }
}

fn answer(req: &Request<'_>, body: &[u8]) -> Response {
    let mut b = req.target.as_bytes().to_vec();
    b.push(b'|');
    b.extend_from_slice(body);
    Response { status: Status::Ok, content_type: "text/plain", body: b }
}

/// Feeds `stream` to a connection in the given chunks, taking what it
/// sends `take` bytes at a time; returns all it sent and how it ended.
fn run(stream: &[u8], chunks: &[usize], take: usize, l: Limits) -> (Vec<u8>, Next, u64) {
    let mut c = HttpConn::new(0, l, Timeouts::default());
    let mut sent = Vec::new();
    let mut at = 0;
    let mut chunks = chunks.iter().cycle();
    let mut next = Next::Serve;
    for round in 0..1_000_000u64 {
        if at < stream.len() {
            let n = (*chunks.next().unwrap()).min(stream.len() - at).min(c.room());
            c.received(round, &stream[at..at + n]);
            at += n;
        }
        next = c.step(round, 0, &mut answer);
        // Memory stays bounded whatever arrives.
        assert!(c.pending().len() <= OUT_BATCH + 6000, "{}", c.pending().len());
        let n = take.min(c.pending().len());
        sent.extend_from_slice(&c.pending()[..n]);
        c.sent(n);
        if next != Next::Serve && c.pending().is_empty() {
            break;
        }
        if at == stream.len() && c.pending().is_empty() && (c.room() == 0 || next == Next::Serve) {
            // Everything sent was consumed or is waiting for more.
            next = c.step(round, 0, &mut answer);
            if c.pending().is_empty() {
                break;
            }
        }
    }
    (sent, next, c.requests)
}

#[test]
fn split_reads_answer_as_one_read_does_in_order() {
    let l = Limits::default();
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..300 * scale() {
        let mut stream = Vec::new();
        let mut targets = Vec::new();
        for i in 0..1 + rng.below(30) {
            let body = rng.below(3) as usize * 7;
            let target = format!("/r{i}");
            stream.extend_from_slice(
                format!("GET {target} HTTP/1.1\r\nHost: h\r\nContent-Length: {body}\r\n\r\n")
                    .as_bytes(),
            );
            stream.extend(std::iter::repeat_n(b'b', body));
            targets.push(target);
        }
        let whole = run(&stream, &[usize::MAX], usize::MAX, l);
        let chunks: Vec<usize> = (0..8).map(|_| 1 + rng.below(40) as usize).collect();
        let split = run(&stream, &chunks, 1 + rng.below(700) as usize, l);
        assert_eq!(whole, split);
        assert_eq!(whole.2, targets.len() as u64);
        // In order: each target's answer after the previous one's.
        let text = String::from_utf8(whole.0).unwrap();
        let mut from = 0;
        for t in &targets {
            let at = text[from..].find(&format!("\r\n\r\n{t}|")).expect("answered in order");
            from += at + 1;
        }
    }
}

#[test]
fn hostile_streams_end_in_an_answer_or_a_close() {
    let l = Limits { max_head: 256, max_fields: 8, max_body: 64 };
    let corpus = corpus();
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..2_000 * scale() {
        let mut stream = Vec::new();
        for _ in 0..1 + rng.below(6) {
            let base = rng_pick(&mut rng, &corpus).to_vec();
            stream.extend(mutate(&mut rng, base));
        }
        let chunks: Vec<usize> = (0..4).map(|_| 1 + rng.below(64) as usize).collect();
        let (sent, next, _) = run(&stream, &chunks, 1 + rng.below(512) as usize, l);
        let text = String::from_utf8_lossy(&sent);
        // Every response is a whole one, with a status this server sends.
        for part in text.split("HTTP/1.1 ").skip(1) {
            let code: u16 = part[..3].parse().expect("a status code");
            assert!([200, 400, 413, 431, 501, 505].contains(&code), "{code}");
        }
        if next == Next::Close {
            assert!(text.contains("Connection: close\r\n"), "a close follows a final answer");
        }
    }
}
