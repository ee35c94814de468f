//! `app=echo`: TCP echo on port 7 (RFC 862), many clients at once; answers
//! ping. Each connection's bytes go back in order; a client that half-closes
//! gets the rest of its echo, then the close.

use super::AppResult;
use crate::cmdline::Cmdline;
use crate::net::service::{self, Service, Status};
use alloc::vec;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;

const PORT: u16 = 7;
/// Connections served at once.
const SOCKETS: usize = 8;
const BUFFER: usize = 64 * 1024;

struct Echo {
    handles: alloc::vec::Vec<SocketHandle>,
    bytes: u64,
    connections: u64,
}

impl Service for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn open(&mut self, sockets: &mut SocketSet<'static>) {
        for _ in 0..SOCKETS {
            let s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; BUFFER]),
                tcp::SocketBuffer::new(vec![0; BUFFER]),
            );
            self.handles.push(sockets.add(s));
        }
    }

    fn serve(&mut self, sockets: &mut SocketSet<'static>, _: &Status) {
        let mut chunk = [0u8; 4096];
        for &h in &self.handles {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if !s.is_open() {
                if s.listen(PORT).is_err() {
                    log::warn!("echo: cannot listen on port {PORT}");
                }
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
    service::run(cmd, &mut Echo { handles: vec![], bytes: 0, connections: 0 })
}
