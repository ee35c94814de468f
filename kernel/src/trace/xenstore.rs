//! `trace=xenstore`: one line per XenStore request, when its reply comes
//! (the request, xenstored's answer, the round trip), and one per watch
//! event. It wraps the ring transport, so it sees every message the
//! kernel's one connection sends or receives, pipelined ones included.

use alloc::string::String;
use core::fmt::Write;
use xenstore_client::MsgType;

/// Longest value shown in a trace line; longer ones end in `...`.
const SHOW: usize = 48;

/// The message type as xenstored's wire names it (`XS_READ` -> `read`).
pub fn type_name(ty: u32) -> &'static str {
    match MsgType::from_raw(ty) {
        Some(MsgType::Control) => "control",
        Some(MsgType::Directory) => "directory",
        Some(MsgType::Read) => "read",
        Some(MsgType::GetPerms) => "get_perms",
        Some(MsgType::Watch) => "watch",
        Some(MsgType::Unwatch) => "unwatch",
        Some(MsgType::TransactionStart) => "transaction_start",
        Some(MsgType::TransactionEnd) => "transaction_end",
        Some(MsgType::Introduce) => "introduce",
        Some(MsgType::Release) => "release",
        Some(MsgType::GetDomainPath) => "get_domain_path",
        Some(MsgType::Write) => "write",
        Some(MsgType::Mkdir) => "mkdir",
        Some(MsgType::Rm) => "rm",
        Some(MsgType::SetPerms) => "set_perms",
        Some(MsgType::WatchEvent) => "watch_event",
        Some(MsgType::Error) => "error",
        Some(MsgType::IsDomainIntroduced) => "is_domain_introduced",
        Some(MsgType::Resume) => "resume",
        Some(MsgType::SetTarget) => "set_target",
        Some(MsgType::ResetWatches) => "reset_watches",
        Some(MsgType::DirectoryPart) => "directory_part",
        None => "unknown",
    }
}

fn quoted(out: &mut String, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let mut shown: String = text.chars().take(SHOW).collect();
    if text.chars().count() > SHOW {
        shown.push_str("...");
    }
    let _ = write!(out, "{shown:?}");
}

/// A request's arguments: the NUL-separated strings of its payload
/// (`path`, `path "value"`, `path token`).
pub fn describe_request(ty: u32, payload: &[u8]) -> String {
    let mut out = String::new();
    match MsgType::from_raw(ty) {
        Some(MsgType::Write) => {
            // path NUL value (the value is not NUL-terminated).
            let (path, value) = match payload.iter().position(|&b| b == 0) {
                Some(i) => (&payload[..i], &payload[i + 1..]),
                None => (payload, &payload[..0]),
            };
            out.push_str(&String::from_utf8_lossy(path));
            out.push_str(" = ");
            quoted(&mut out, value);
        }
        _ => {
            for (i, part) in payload.split(|&b| b == 0).filter(|p| !p.is_empty()).enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&String::from_utf8_lossy(part));
            }
        }
    }
    out
}

/// xenstored's answer: an error's name, a read's value, a directory's
/// entries, or `OK`.
pub fn describe_reply(ty: u32, payload: &[u8]) -> String {
    let mut out = String::new();
    let text = payload.strip_suffix(&[0]).unwrap_or(payload);
    match MsgType::from_raw(ty) {
        Some(MsgType::Error) => {
            out.push_str("error ");
            out.push_str(&String::from_utf8_lossy(text));
        }
        Some(MsgType::Read) | Some(MsgType::GetDomainPath) | Some(MsgType::GetPerms) => {
            quoted(&mut out, text)
        }
        Some(MsgType::TransactionStart) => {
            out.push_str("transaction ");
            out.push_str(&String::from_utf8_lossy(text));
        }
        Some(MsgType::Directory) => {
            let n = text.split(|&b| b == 0).filter(|p| !p.is_empty()).count();
            let _ = write!(out, "{n} entries ");
            let mut list = String::new();
            for (i, p) in text.split(|&b| b == 0).filter(|p| !p.is_empty()).enumerate() {
                if i > 0 {
                    list.push(',');
                }
                list.push_str(&String::from_utf8_lossy(p));
            }
            quoted(&mut out, list.as_bytes());
        }
        _ => out.push_str(&String::from_utf8_lossy(text)),
    }
    out
}

#[cfg(target_os = "none")]
pub use guest::*;

#[cfg(target_os = "none")]
mod guest {
    use super::super::stats::Table;
    use super::{describe_reply, describe_request, type_name};
    use crate::events::IrqLock;
    use crate::kprintln;
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use xenstore_client::wire::{Header, HEADER_LEN};
    use xenstore_client::{Error, Instant, Message, MsgType, RingError, Transport};

    static ON: AtomicBool = AtomicBool::new(false);
    static SEQ: AtomicU64 = AtomicU64::new(0);
    static STATS: IrqLock<Table<u32, 24>> = IrqLock::new(Table::new());
    static UNANSWERED: AtomicU64 = AtomicU64::new(0);

    pub(in crate::trace) fn enable() {
        ON.store(true, Ordering::Relaxed);
    }

    /// A request sent and not answered yet.
    struct Sent {
        req_id: u32,
        ty: u32,
        tx_id: u32,
        what: String,
        at_ns: u64,
    }

    /// The store connection's transport with tracing around it; with
    /// `trace=xenstore` off it only forwards.
    pub struct Traced<T> {
        inner: T,
        sent: Vec<Sent>,
    }

    impl<T> Traced<T> {
        pub fn new(inner: T) -> Self {
            Traced { inner, sent: Vec::new() }
        }

        pub fn inner_mut(&mut self) -> &mut T {
            &mut self.inner
        }
    }

    impl<T: Transport> Transport for Traced<T> {
        fn send(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<(), Error> {
            let r = self.inner.send(msg, deadline);
            if ON.load(Ordering::Relaxed) && r.is_ok() {
                if let Some(h) =
                    msg.first_chunk::<HEADER_LEN>().and_then(|h| Header::decode(h).ok())
                {
                    let payload = msg.get(HEADER_LEN..).unwrap_or(&[]);
                    self.sent.push(Sent {
                        req_id: h.req_id.0,
                        ty: h.ty,
                        tx_id: h.tx_id.0,
                        what: describe_request(h.ty, payload),
                        at_ns: platform::now_ns(),
                    });
                }
            }
            r
        }

        fn recv(&mut self, deadline: Option<Instant>) -> Result<Message, Error> {
            let m = self.inner.recv(deadline)?;
            if ON.load(Ordering::Relaxed) {
                self.note(&m);
            }
            Ok(m)
        }

        fn now(&self) -> Instant {
            self.inner.now()
        }

        fn is_broken(&self) -> bool {
            self.inner.is_broken()
        }

        fn reconnect(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
            let r = self.inner.reconnect(deadline);
            // xenstored forgets every request of the old stream.
            if r.is_ok() || matches!(r, Err(Error::Ring(RingError::NoReconnect))) {
                UNANSWERED.fetch_add(self.sent.len() as u64, Ordering::Relaxed);
                self.sent.clear();
            }
            r
        }
    }

    impl<T> Traced<T> {
        fn note(&mut self, m: &Message) {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed) + 1;
            if m.header.ty == MsgType::WatchEvent as u32 {
                STATS.lock().add(m.header.ty, 0);
                kprintln!(
                    "trace: xs #{seq} watch_event({}) from xenstored",
                    describe_request(m.header.ty, &m.payload)
                );
                return;
            }
            let Some(i) = self.sent.iter().position(|s| s.req_id == m.header.req_id.0) else {
                STATS.lock().add(m.header.ty, 0);
                kprintln!(
                    "trace: xs #{seq} {}(?) = {} (reply to unknown request {})",
                    type_name(m.header.ty),
                    describe_reply(m.header.ty, &m.payload),
                    m.header.req_id.0
                );
                return;
            };
            let s = self.sent.remove(i);
            let us = platform::now_ns().saturating_sub(s.at_ns) / 1000;
            STATS.lock().add(s.ty, us);
            let tx = if s.tx_id != 0 { alloc::format!(" tx {}", s.tx_id) } else { String::new() };
            kprintln!(
                "trace: xs #{seq} {}({}) = {} [req {}{tx}, {us} us]",
                type_name(s.ty),
                s.what,
                describe_reply(m.header.ty, &m.payload),
                s.req_id
            );
        }
    }

    pub(in crate::trace) fn summary_if_on() {
        if !ON.swap(false, Ordering::Relaxed) {
            return;
        }
        let stats = STATS.lock();
        kprintln!(
            "trace: xenstore summary: {} messages listed in {} types, {} requests never answered",
            stats.total(),
            stats.rows().count(),
            UNANSWERED.load(Ordering::Relaxed)
        );
        for r in stats.rows() {
            kprintln!(
                "trace: xs-sum {} count={} us_mean={} us_max={}",
                type_name(r.key),
                r.count,
                r.total / r.count,
                r.max
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_read_like_the_protocol() {
        let w = MsgType::Write as u32;
        assert_eq!(describe_request(w, b"data/tour\0hello"), "data/tour = \"hello\"");
        let watch = MsgType::Watch as u32;
        assert_eq!(describe_request(watch, b"control/shutdown\0ctl\0"), "control/shutdown ctl");
        let r = MsgType::Read as u32;
        assert_eq!(describe_reply(r, b"5"), "\"5\"");
        assert_eq!(describe_reply(MsgType::Error as u32, b"ENOENT\0"), "error ENOENT");
        let d = MsgType::Directory as u32;
        assert_eq!(describe_reply(d, b"0\0vbd\0"), "2 entries \"0,vbd\"");
        let long = [b'x'; 100];
        assert!(describe_reply(r, &long).ends_with("...\""));
        assert_eq!(type_name(9999), "unknown");
    }
}
