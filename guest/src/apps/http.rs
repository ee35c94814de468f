//! `app=http`: HTTP/1.1 on port 80 (one request per connection): `GET /`
//! is a plain-text status page (uptime, domid, memory, packet and grant
//! counters), `GET /status.json` the same as JSON. Answers ping.

use super::AppResult;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use kernel::cmdline::Cmdline;
use kernel::net::service::{self, Service, Status};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;

const PORT: u16 = 80;
const SOCKETS: usize = 4;
/// A request head larger than this is refused.
const MAX_REQUEST: usize = 2048;

struct Conn {
    handle: SocketHandle,
    request: Vec<u8>,
    answered: bool,
}

struct Http {
    conns: Vec<Conn>,
    served: u64,
}

fn text(s: &Status) -> String {
    let (n, b) = (&s.now, &s.before);
    format!(
        "xenpv http\nuptime_ms {}\ndomid {}\nmemory_kib {}\nvif_connected {}\nattachments {}\n\
         rx_packets {}\nrx_bytes {}\ntx_packets {}\ntx_bytes {}\nnotifications {}\nevents {}\n\
         backend_faults {}\ngrants_active {}\ngrants_made {}\ngrants_revoked {}\ngrants_kept {}\n\
         resumes {}\ncheckpoints {}\n",
        s.uptime_ms,
        s.domid,
        s.mem_kib,
        s.connected,
        s.attachments,
        n.rx_packets + b.rx_packets,
        n.rx_bytes + b.rx_bytes,
        n.tx_packets + b.tx_packets,
        n.tx_bytes + b.tx_bytes,
        n.notifications + b.notifications,
        s.events,
        n.backend_errors() + b.backend_errors(),
        n.grants_active(),
        n.grants_made + b.grants_made,
        n.grants_revoked + b.grants_revoked,
        n.grants_kept + b.grants_kept,
        s.resumes,
        s.checkpoints,
    )
}

fn json(s: &Status) -> String {
    let mut out = String::from("{");
    for (i, line) in text(s).lines().skip(1).enumerate() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"{k}\":{v}"));
    }
    out.push_str("}\n");
    out
}

fn respond(req: &[u8], s: &Status) -> String {
    let line = req.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or(&[]);
    let line = core::str::from_utf8(line).unwrap_or("");
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (code, kind, body) = match (method, path) {
        ("GET", "/") => ("200 OK", "text/plain", text(s)),
        ("GET", "/status.json") => ("200 OK", "application/json", json(s)),
        ("GET", _) => ("404 Not Found", "text/plain", String::from("not found\n")),
        _ => ("405 Method Not Allowed", "text/plain", String::from("GET only\n")),
    };
    format!(
        "HTTP/1.1 {code}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

impl Service for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn open(&mut self, sockets: &mut SocketSet<'static>) {
        for _ in 0..SOCKETS {
            let s = kernel::net::tcp_socket(4096, 8192);
            self.conns.push(Conn { handle: sockets.add(s), request: Vec::new(), answered: false });
        }
    }

    fn serve(&mut self, sockets: &mut SocketSet<'static>, status: &Status) {
        for c in &mut self.conns {
            let s = sockets.get_mut::<tcp::Socket>(c.handle);
            if !s.is_open() {
                c.request.clear();
                c.answered = false;
                let _ = s.listen(PORT);
                continue;
            }
            if c.answered {
                continue;
            }
            while s.can_recv() {
                let mut buf = [0u8; 512];
                let n = s.recv_slice(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                c.request.extend_from_slice(&buf[..n]);
            }
            let complete = c.request.windows(4).any(|w| w == b"\r\n\r\n")
                || c.request.windows(2).any(|w| w == b"\n\n");
            if complete || c.request.len() > MAX_REQUEST {
                let reply = respond(&c.request, status);
                let _ = s.send_slice(reply.as_bytes());
                s.close();
                c.answered = true;
                self.served += 1;
            }
        }
    }
}

pub fn run(cmd: &Cmdline<'_>) -> AppResult {
    service::run(cmd, &mut Http { conns: Vec::new(), served: 0 })
}
