//! `app=echo`: TCP echo on port 7 (RFC 862), many clients at once; answers
//! ping. Each connection's bytes go back in order; a client that half-closes
//! gets the rest of its echo, then the close.
//!
//! For throughput measurements (`cargo xtask bench net`) it also sinks
//! data on port 9 (discard, RFC 863) and sources it on port 19 (like
//! chargen, RFC 864, but the stream's byte at offset `i` is `i % 251`, so
//! a client can check every byte) until the client closes.

use super::AppResult;
use alloc::vec;
use kernel::cmdline::Cmdline;
use kernel::net::service::{self, Service, Status};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;

const PORT: u16 = 7;
const DISCARD: u16 = 9;
const SOURCE: u16 = 19;
/// Connections served at once (echo; discard and source each).
const SOCKETS: usize = 16;
const BULK_SOCKETS: usize = 2;
const BUFFER: usize = 64 * 1024;

/// The source stream's byte at offset `i`.
pub fn source_byte(i: u64) -> u8 {
    (i % 251) as u8
}

struct Echo {
    handles: alloc::vec::Vec<SocketHandle>,
    discard: alloc::vec::Vec<SocketHandle>,
    /// Source sockets and the stream offset each has sent.
    source: alloc::vec::Vec<(SocketHandle, u64)>,
    bytes: u64,
    connections: u64,
}

fn socket() -> tcp::Socket<'static> {
    kernel::net::tcp_socket(BUFFER, BUFFER)
}

/// Listens again once a connection is over; false while it is closed.
fn relisten(s: &mut tcp::Socket<'_>, port: u16) -> bool {
    if !s.is_open() {
        if s.listen(port).is_err() {
            log::warn!("echo: cannot listen on port {port}");
        }
        return false;
    }
    true
}

impl Service for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn open(&mut self, sockets: &mut SocketSet<'static>) {
        for _ in 0..SOCKETS {
            self.handles.push(sockets.add(socket()));
        }
        for _ in 0..BULK_SOCKETS {
            self.discard.push(sockets.add(socket()));
            self.source.push((sockets.add(socket()), 0));
        }
    }

    fn serve(&mut self, sockets: &mut SocketSet<'static>, _: &Status) {
        let mut chunk = [0u8; 4096];
        for &h in &self.discard {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if !relisten(s, DISCARD) {
                continue;
            }
            while s.can_recv() {
                match s.recv(|b| (b.len(), b.len())) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            if !s.may_recv() && s.may_send() {
                s.close();
            }
        }
        for (h, sent) in &mut self.source {
            let s = sockets.get_mut::<tcp::Socket>(*h);
            if !relisten(s, SOURCE) {
                *sent = 0;
                continue;
            }
            if !s.may_send() {
                continue;
            }
            while s.can_send() {
                let n = s
                    .send(|b| {
                        for (k, x) in b.iter_mut().enumerate() {
                            *x = source_byte(*sent + k as u64);
                        }
                        (b.len(), b.len())
                    })
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                *sent += n as u64;
            }
            // The client closed: so do we.
            if !s.may_recv() {
                s.close();
            }
        }
        for &h in &self.handles {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if !relisten(s, PORT) {
                continue;
            }
            if s.may_recv() || s.can_recv() {
                while s.can_recv() && s.can_send() {
                    let room = (s.send_capacity() - s.send_queue()).min(chunk.len());
                    let n = s.recv_slice(&mut chunk[..room]).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    let sent = s.send_slice(&chunk[..n]).unwrap_or(0);
                    debug_assert_eq!(sent, n, "room was checked");
                    self.bytes += n as u64;
                }
            }
            // The client is done sending and has all its bytes back.
            if !s.may_recv() && !s.can_recv() && s.send_queue() == 0 && s.may_send() {
                s.close();
                self.connections += 1;
                if self.connections.is_multiple_of(100) {
                    log::info!(
                        "echo: {} connections, {} bytes echoed",
                        self.connections,
                        self.bytes
                    );
                }
            }
        }
    }
}

pub fn run(cmd: &Cmdline<'_>) -> AppResult {
    service::run(
        cmd,
        &mut Echo { handles: vec![], discard: vec![], source: vec![], bytes: 0, connections: 0 },
    )
}
