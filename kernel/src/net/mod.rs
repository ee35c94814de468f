//! Networking: netfront (from `pv-drivers`) on the kernel's driver
//! environment (`crate::driver_env`), as a smoltcp device ([`device`]), driven by
//! one service loop ([`service`]) that also follows the toolstack (vif
//! detach/attach, `xl shutdown`, `xl sysrq`).

pub mod device;
pub mod http;
pub mod listener;
pub mod loopstats;
pub mod service;
pub mod shard;

pub use crate::cmdline::parse_cidr;

/// A TCP socket for the guest's services, tuned for request/response
/// latency: Nagle off (a small reply must not wait for the ACK of the
/// previous one, which a Linux peer delays by up to 40 ms) and no delayed
/// ACKs (the peer's window moves without waiting on our timer).
pub fn tcp_socket(rx_bytes: usize, tx_bytes: usize) -> smoltcp::socket::tcp::Socket<'static> {
    use smoltcp::socket::tcp;
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(alloc::vec![0; rx_bytes]),
        tcp::SocketBuffer::new(alloc::vec![0; tx_bytes]),
    );
    s.set_nagle_enabled(false);
    s.set_ack_delay(None);
    s
}
