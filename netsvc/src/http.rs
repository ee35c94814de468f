//! HTTP/1.1 for a small server (RFC 9110, RFC 9112): the request head
//! parser and the response head writer.
//!
//! The parser takes the bytes received so far on a connection and says
//! one of three things: not yet (the head has not ended and is within the
//! limit), a request (its method, target, version, whether the connection
//! stays open, the body's length, and how many bytes the head took), or a
//! rejection with the status code to answer before closing. It allocates
//! nothing and borrows the request's strings from the input. What it
//! accepts is deliberately narrow: a request line of `METHOD SP TARGET SP
//! HTTP/1.x`, header fields `name: value`, lines ended by CRLF (a bare LF
//! is accepted, as RFC 9112 section 2.2 allows), no obsolete line folding,
//! no `Transfer-Encoding` (a chunked request body is answered `501`),
//! `Content-Length` only as digits and, if repeated, the same each time
//! (RFC 9112 section 6.3: anything else is unrecoverable, `400`).

use core::fmt::{self, Write};

/// Sizes beyond which a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of request line and header fields, end marker included
    /// (beyond: `431`).
    pub max_head: usize,
    /// Header fields (beyond: `431`).
    pub max_fields: usize,
    /// `Content-Length` of a request body (beyond: `413`).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head: 4096, max_fields: 32, max_body: 4096 }
    }
}

/// The methods this server knows; any other token is [`Method::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A parsed request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    /// The method as sent (for `Other`).
    pub method_text: &'a str,
    pub target: &'a str,
    pub version: Version,
    /// The connection stays open after the response (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// The body's length (`Content-Length`, 0 without one).
    pub body_len: usize,
    /// Bytes of the head, end marker included: the body starts here.
    pub head_len: usize,
}

/// Why a request is refused; each is answered with its status, then the
/// connection is closed (what follows cannot be framed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// `400`: not HTTP as RFC 9112 frames it; the reason is for the log.
    BadRequest(&'static str),
    /// `413`: `Content-Length` beyond [`Limits::max_body`].
    BodyTooLarge,
    /// `431`: the head beyond [`Limits::max_head`] or too many fields.
    HeadTooLarge,
    /// `501`: a `Transfer-Encoding` (this server reads no chunked body).
    NotImplemented,
    /// `505`: `HTTP/` with a version other than 1.0 and 1.1.
    VersionNotSupported,
}

impl Reject {
    pub fn status(self) -> Status {
        match self {
            Reject::BadRequest(_) => Status::BadRequest,
            Reject::BodyTooLarge => Status::PayloadTooLarge,
            Reject::HeadTooLarge => Status::HeadersTooLarge,
            Reject::NotImplemented => Status::NotImplemented,
            Reject::VersionNotSupported => Status::VersionNotSupported,
        }
    }
}

/// What [`parse`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse<'a> {
    /// The head has not ended yet and is within the limits: read more.
    Partial,
    Request(Request<'a>),
    Reject(Reject),
}

/// Parses the request head at the start of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Parse<'a> {
    // Empty lines before a request line are ignored (RFC 9112 section
    // 2.2: a client may send a CRLF after a POST body).
    let mut start = 0;
    while start < buf.len() && (buf[start] == b'\r' || buf[start] == b'\n') {
        start += 1;
        if start > limits.max_head {
            return Parse::Reject(Reject::HeadTooLarge);
        }
    }
    let Some(end) = head_end(&buf[start..]) else {
        return if buf.len() - start >= limits.max_head {
            Parse::Reject(Reject::HeadTooLarge)
        } else {
            Parse::Partial
        };
    };
    let head_len = start + end;
    if end > limits.max_head {
        return Parse::Reject(Reject::HeadTooLarge);
    }
    match parse_head(&buf[start..head_len], limits) {
        Ok(mut r) => {
            r.head_len = head_len;
            Parse::Request(r)
        }
        Err(e) => Parse::Reject(e),
    }
}

/// The length of the head (through its empty line) in `buf`, if it has
/// ended.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let next = i + nl + 1;
        // The line after this LF is empty: LF, or CR LF.
        match buf.get(next) {
            Some(b'\n') => return Some(next + 1),
            Some(b'\r') if buf.get(next + 1) == Some(&b'\n') => return Some(next + 2),
            _ => i = next,
        }
    }
    None
}

/// The lines of a complete head, without their CR LF / LF.
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// RFC 9110 section 5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

fn parse_head<'a>(head: &'a [u8], limits: &Limits) -> Result<Request<'a>, Reject> {
    let mut lines = lines(head);
    let line = lines.next().unwrap_or(&[]);
    let (method_text, target, version) = request_line(line)?;
    let method = match method_text {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        _ => Method::Other,
    };
    let mut conn_close = false;
    let mut conn_keep = false;
    let mut body_len: Option<usize> = None;
    let mut host = 0u32;
    let mut fields = 0usize;
    for line in lines {
        if line.is_empty() {
            break;
        }
        fields += 1;
        if fields > limits.max_fields {
            return Err(Reject::HeadTooLarge);
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(Reject::BadRequest("obsolete line folding"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Reject::BadRequest("a header field without a colon"))?;
        let name = &line[..colon];
        if !is_token(name) {
            return Err(Reject::BadRequest("a header field name that is not a token"));
        }
        let value = trim(&line[colon + 1..]);
        // Field values: visible characters, spaces, tabs, obs-text; no
        // other control characters (a CR alone, a NUL).
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Reject::BadRequest("a control character in a header field value"));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length(value)?;
            if body_len.is_some_and(|m| m != n) {
                return Err(Reject::BadRequest("conflicting Content-Length fields"));
            }
            body_len = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(Reject::NotImplemented);
        } else if name.eq_ignore_ascii_case(b"host") {
            host += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for opt in value.split(|&b| b == b',') {
                let opt = trim(opt);
                conn_close |= opt.eq_ignore_ascii_case(b"close");
                conn_keep |= opt.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    // RFC 9112 section 3.2: a 1.1 request without exactly one Host, or
    // with more than one, is answered 400.
    if host > 1 || (host == 0 && version == Version::Http11) {
        return Err(Reject::BadRequest("HTTP/1.1 needs exactly one Host field"));
    }
    let body_len = body_len.unwrap_or(0);
    if body_len > limits.max_body {
        return Err(Reject::BodyTooLarge);
    }
    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep && !conn_close,
    };
    Ok(Request { method, method_text, target, version, keep_alive, body_len, head_len: 0 })
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn content_length(v: &[u8]) -> Result<usize, Reject> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(Reject::BadRequest("a Content-Length that is not a number"));
    }
    let mut n: usize = 0;
    for &d in v {
        // Too large to represent is too large to accept.
        n = match n.checked_mul(10).and_then(|n| n.checked_add(usize::from(d - b'0'))) {
            Some(n) => n,
            None => return Err(Reject::BodyTooLarge),
        };
    }
    Ok(n)
}

fn request_line(line: &[u8]) -> Result<(&str, &str, Version), Reject> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reject::BadRequest("a request line that is not METHOD TARGET VERSION"));
    };
    if !is_token(method) {
        return Err(Reject::BadRequest("a method that is not a token"));
    }
    // A target: visible ASCII, at least one character (origin-form,
    // absolute-form, `*`); its meaning is the handler's.
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(Reject::BadRequest("a request target with invalid characters"));
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', d, b'.', e] if d.is_ascii_digit() && e.is_ascii_digit() => {
            return Err(Reject::VersionNotSupported)
        }
        _ => return Err(Reject::BadRequest("not an HTTP version")),
    };
    // All ASCII (checked above), so these cannot fail.
    let text = |b| core::str::from_utf8(b).map_err(|_| Reject::BadRequest("not ASCII"));
    Ok((text(method)?, text(target)?, version))
}

/// The status codes this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    HeadersTooLarge,
    NotImplemented,
    ServiceUnavailable,
    VersionNotSupported,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::PayloadTooLarge => 413,
            Status::HeadersTooLarge => 431,
            Status::NotImplemented => 501,
            Status::ServiceUnavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::PayloadTooLarge => "Content Too Large",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::NotImplemented => "Not Implemented",
            Status::ServiceUnavailable => "Service Unavailable",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// A response head: status line, `Content-Type`, `Content-Length`,
/// `Connection`, and `Retry-After` (seconds) when given; ends with the
/// empty line.
#[derive(Clone, Copy, Debug)]
pub struct Head<'a> {
    pub status: Status,
    pub content_type: &'a str,
    pub content_length: usize,
    pub keep_alive: bool,
    pub retry_after: Option<u32>,
}

impl fmt::Display for Head<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
            self.status.code(),
            self.status.reason(),
            self.content_type,
            self.content_length,
            if self.keep_alive { "keep-alive" } else { "close" }
        )?;
        if let Some(s) = self.retry_after {
            write!(f, "Retry-After: {s}\r\n")?;
        }
        f.write_str("\r\n")
    }
}

/// A whole response of `status` with a one-line plain-text body: what
/// errors are answered with.
pub fn error_response(out: &mut alloc::vec::Vec<u8>, status: Status, retry_after: Option<u32>) {
    let mut body = alloc::string::String::new();
    let _ = writeln!(body, "{} {}", status.code(), status.reason());
    let head = Head {
        status,
        content_type: "text/plain",
        content_length: body.len(),
        keep_alive: false,
        retry_after,
    };
    let mut s = alloc::string::String::new();
    let _ = write!(s, "{head}{body}");
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;
    use std::vec::Vec;

    fn lim() -> Limits {
        Limits::default()
    }

    fn req(b: &[u8]) -> Request<'_> {
        match parse(b, &lim()) {
            Parse::Request(r) => r,
            other => panic!("{other:?} for {:?}", std::string::String::from_utf8_lossy(b)),
        }
    }

    fn rej(b: &[u8]) -> Reject {
        match parse(b, &lim()) {
            Parse::Reject(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_simple_get() {
        let b = b"GET /status.json HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n";
        let r = req(b);
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.target, "/status.json");
        assert_eq!(r.version, Version::Http11);
        assert!(r.keep_alive);
        assert_eq!(r.body_len, 0);
        assert_eq!(&b[r.head_len..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn partial_heads_wait_at_every_cut() {
        let b = b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        for cut in 0..b.len() {
            assert_eq!(parse(&b[..cut], &lim()), Parse::Partial, "cut at {cut}");
        }
        let r = req(b);
        assert_eq!(r.method, Method::Head);
        assert!(!r.keep_alive);
        assert_eq!(r.head_len, b.len());
    }

    #[test]
    fn bare_lf_and_leading_empty_lines() {
        let r = req(b"\r\n\nGET / HTTP/1.0\nConnection: Keep-Alive\n\n");
        assert_eq!(r.version, Version::Http10);
        assert!(r.keep_alive);
        assert!(!req(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
    }

    #[test]
    fn connection_options_are_a_list() {
        assert!(
            !req(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, Close\r\n\r\n").keep_alive
        );
    }

    #[test]
    fn content_length() {
        let r = req(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length:  12 \r\n\r\n");
        assert_eq!((r.method, r.body_len), (Method::Post, 12));
        let r =
            req(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n");
        assert_eq!(r.body_len, 3);
        assert!(matches!(
            rej(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Reject::BadRequest(_)
        ));
        assert!(matches!(
            rej(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\n"),
            Reject::BadRequest(_)
        ));
        assert!(matches!(
            rej(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n"),
            Reject::BadRequest(_)
        ));
        assert_eq!(
            rej(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4097\r\n\r\n"),
            Reject::BodyTooLarge
        );
        assert_eq!(
            rej(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999999\r\n\r\n"
            ),
            Reject::BodyTooLarge
        );
        assert_eq!(
            rej(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Reject::NotImplemented
        );
    }

    #[test]
    fn malformed_heads_are_400() {
        for b in [
            &b"GET /\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1 x\r\nHost: a\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTX/1.1\r\nHost: a\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(
                matches!(rej(b), Reject::BadRequest(_)),
                "{:?}",
                std::string::String::from_utf8_lossy(b)
            );
        }
        assert_eq!(rej(b"GET / HTTP/2.0\r\n\r\n"), Reject::VersionNotSupported);
    }

    #[test]
    fn oversized_heads_are_431_as_soon_as_they_pass_the_limit() {
        let l = Limits { max_head: 64, max_fields: 2, max_body: 0 };
        let long = [b'a'; 64];
        assert_eq!(parse(&long[..63], &l), Parse::Partial);
        assert_eq!(parse(&long, &l), Parse::Reject(Reject::HeadTooLarge));
        let mut b = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ".to_vec();
        b.extend_from_slice(&[b'v'; 40]);
        b.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse(&b, &l), Parse::Reject(Reject::HeadTooLarge));
        let many = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(parse(many, &l), Parse::Reject(Reject::HeadTooLarge));
        assert_eq!(parse(&[b'\n'; 100], &l), Parse::Reject(Reject::HeadTooLarge));
    }

    #[test]
    fn responses() {
        let h = Head {
            status: Status::ServiceUnavailable,
            content_type: "text/plain",
            content_length: 5,
            keep_alive: false,
            retry_after: Some(1),
        };
        assert_eq!(
            h.to_string(),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
        );
        let mut out = Vec::new();
        error_response(&mut out, Status::RequestTimeout, None);
        let text = std::string::String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n408 Request Timeout\n"), "{text}");
        assert!(text.contains("Content-Length: 20\r\n"), "{text}");
    }
}
