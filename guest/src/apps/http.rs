//! `app=http`: HTTP/1.1 on port 80 through the service layer
//! (`net::listener`, `net::http`: backlog, keep-alive, pipelining,
//! timeouts, overload refusal; see docs/services.md). `GET /` is a
//! plain-text status page (uptime, domid, memory, packet and grant
//! counters, the listener's connection counters), `GET /status.json` the
//! same as JSON, `GET /bench` a fixed body for `cargo xtask bench http`.
//! `HEAD` of each is answered too. Answers ping.

use super::{AppError, AppResult};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use kernel::cmdline::Cmdline;
use kernel::net::http::{self as proto, Http};
use kernel::net::listener::{self, Listener};
use kernel::net::service::{self, Service, Status};
use netsvc::config::{ListenConfig, Sizing};
use netsvc::conn::{HttpConn, Response};
use netsvc::counters::Counters;
use netsvc::http::{Limits, Method, Request, Status as Code};
use smoltcp::iface::SocketSet;

const PORT: u16 = 80;

/// The body of `GET /bench`: 128 bytes, the same the Linux comparator's
/// server sends (`build/httptool/httptool.c`).
pub const BENCH_BODY: &[u8; 128] = b"xenpv bench body: 128 bytes of text served by GET /bench, the same from the guest and from Linux.\n.............................\n";

const LIMITS: Limits = Limits { max_head: 4096, max_fields: 32, max_body: 1024 };

struct HttpApp {
    listener: Listener<HttpConn>,
    refusal: Vec<u8>,
}

impl HttpApp {
    fn new(cfg: ListenConfig) -> Self {
        HttpApp {
            listener: Listener::new(PORT, cfg, proto::RX_BYTES, proto::TX_BYTES),
            refusal: proto::refusal(),
        }
    }
}

/// The listener's pool, for the status page.
struct Pool {
    max_conns: usize,
    backlog: usize,
    allocated: usize,
    buffer_kib: usize,
}

fn text(s: &Status, c: &Counters, l: Pool) -> String {
    let (n, b) = (&s.now, &s.before);
    let (free, _) = platform::free_frames();
    format!(
        "xenpv http\nuptime_ms {}\ndomid {}\nmemory_kib {}\nfree_kib {}\nheap_kib {}\nvif_connected {}\nattachments {}\n\
         rx_packets {}\nrx_bytes {}\ntx_packets {}\ntx_bytes {}\nnotifications {}\nevents {}\n\
         backend_faults {}\ngrants_active {}\ngrants_made {}\ngrants_revoked {}\ngrants_kept {}\n\
         {}conn_refused_reset {}\nsyn_duplicates {}\nconn_max {}\nconn_backlog {}\nconn_sockets {}\nconn_buffer_kib {}\n\
         resumes {}\ncheckpoints {}\n\
         loop_passes {}\nloop_woke_event {}\nloop_woke_timer {}\nloop_polls {}\n\
         evtchn_sends {}\ntimer_sets {}\nblocks {}\n",
        s.uptime_ms,
        s.domid,
        s.mem_kib,
        free * 4,
        platform::heap_bytes() / 1024,
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
        c.lines("conn_"),
        listener::resets(PORT),
        s.syn_duplicates,
        l.max_conns,
        l.backlog,
        l.allocated,
        l.buffer_kib,
        s.resumes,
        s.checkpoints,
        s.looped.passes,
        s.looped.woke_event,
        s.looped.woke_timer,
        s.looped.polls,
        kernel::events::sends(),
        kernel::timer::stats().1,
        kernel::timer::blocks(),
    )
}

fn json(text: &str) -> String {
    let mut out = String::from("{");
    for (i, line) in text.lines().skip(1).enumerate() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"{k}\":{v}"));
    }
    out.push_str("}\n");
    out
}

fn respond(req: &Request<'_>, page: &dyn Fn() -> String) -> Response {
    let ok = |content_type, body: Vec<u8>| Response { status: Code::Ok, content_type, body };
    if !matches!(req.method, Method::Get | Method::Head) {
        return Response {
            status: Code::MethodNotAllowed,
            content_type: "text/plain",
            body: b"GET and HEAD only\n".to_vec(),
        };
    }
    match req.target {
        "/" => ok("text/plain", page().into_bytes()),
        "/status.json" => ok("application/json", json(&page()).into_bytes()),
        "/bench" => ok("text/plain", BENCH_BODY.to_vec()),
        _ => Response {
            status: Code::NotFound,
            content_type: "text/plain",
            body: b"not found\n".to_vec(),
        },
    }
}

impl Service for HttpApp {
    fn name(&self) -> &'static str {
        "http"
    }

    fn open(&mut self, sockets: &mut SocketSet<'static>) {
        self.listener.open(sockets);
    }

    fn serve(&mut self, sockets: &mut SocketSet<'static>, status: &Status) {
        // The status page is written when asked for (with the counters
        // as they are when its connection is served: one accepted in this
        // pass counts), not on every pass.
        let counters = Cell::new(self.listener.counters);
        let (max_conns, backlog) =
            (self.listener.config().max_conns, self.listener.config().backlog);
        let (allocated, buffer_kib) =
            (self.listener.sockets(), self.listener.buffer_bytes() / 1024);
        let page =
            || text(status, &counters.get(), Pool { max_conns, backlog, allocated, buffer_kib });
        let mut handler = |req: &Request<'_>, _body: &[u8]| respond(req, &page);
        let timeouts = self.listener.config().timeouts;
        let mut http =
            Http::new(LIMITS, timeouts, &self.refusal, &mut handler).with_live_counters(&counters);
        self.listener.serve(sockets, listener::now_ms(), &mut http);
    }

    fn syn_taken(&mut self, sockets: &mut SocketSet<'static>) {
        self.listener.replenish(sockets);
    }

    fn poll_at(&self) -> Option<u64> {
        self.listener.deadline()
    }

    /// Each request stands alone: another vCPU's shard serves its own
    /// connections with the same settings (docs/smp.md).
    fn another(&self) -> Option<Box<dyn Service>> {
        Some(Box::new(HttpApp::new(*self.listener.config())))
    }

    fn report(&self) -> Option<String> {
        let c = &self.listener.counters;
        Some(format!(
            "http: connections: accepted {} refused {} refused_reset {} timed_out {} (idle {} header {} request {} keepalive {}) aborted {} active {} peak {} requests {}; sockets {} ({} KiB of buffers)",
            c.accepted, c.refused, listener::resets(PORT), c.timed_out, c.timed_out_idle,
            c.timed_out_header, c.timed_out_request, c.timed_out_keepalive, c.aborted, c.active,
            c.peak, c.requests, self.listener.sockets(), self.listener.buffer_bytes() / 1024
        ))
    }
}

pub fn run(cmd: &Cmdline<'_>) -> AppResult {
    let mem = platform::nr_pages() * 4096;
    let sizing = Sizing { per_conn: proto::per_conn(&LIMITS) };
    let cfg = ListenConfig::from_settings(mem, sizing, |k| cmd.get(k))
        .map_err(|e| AppError::Setting(format!("{e}")))?;
    service::run(cmd, Box::new(HttpApp::new(cfg)))
}
