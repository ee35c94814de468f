//! Networking: netfront (from `pv-drivers`) on the kernel's grants and
//! event channels ([`host`]), as a smoltcp device ([`device`]), driven by
//! one service loop ([`service`]) that also follows the toolstack (vif
//! detach/attach, `xl shutdown`, `xl sysrq`).

pub mod device;
pub mod host;
pub mod service;

use core::net::Ipv4Addr;

/// `ip=ADDR/PREFIX`.
pub fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, prefix) = text.split_once('/').unwrap_or((text, "24"));
    let prefix: u8 = prefix.parse().ok()?;
    (prefix <= 32).then_some(())?;
    Some((addr.parse().ok()?, prefix))
}
