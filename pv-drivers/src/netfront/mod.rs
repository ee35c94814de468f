//! The PV network frontend (`xen/include/public/io/netif.h`, following the
//! conventions Linux's `xen-netfront` negotiates with `xen-netback`).
//!
//! - [`wire`]: netif entries as ring slots; [`buf`]: bytes in shared pages.
//! - [`rx`]: the RX ring: buffers kept posted, responses copied out once,
//!   checked, and assembled into packets (multi-slot, extra-info slots).
//! - [`tx`]: the TX ring: packets split over slots, completions reclaimed.
//! - [`csum`]: TCP/UDP checksums at the vif's edge, so that nothing the
//!   backend validated or will fill in is summed in software.
//! - [`mss`]: the GSO size of the large TCP segments the guest sends.
//! - [`connect`]: the xenbus handshake and the disconnect that revokes
//!   every grant.
//! - [`hotplug`]: vifs that come and go, under the xenbus hotplug manager.
//! - [`flow`]: which queue a packet takes (Toeplitz, as RSS NICs do);
//!   [`ctrl`]: the control ring that has netback steer RX the same way.
//!
//! Everything the kernel provides (pages, grants, event channels) comes
//! through [`DriverEnv`](crate::env::DriverEnv), so the ring logic runs
//! under `cargo test` against a fake backend, hostile cases included.

pub mod buf;
pub mod connect;
pub mod csum;
pub mod ctrl;
pub mod flow;
pub mod hotplug;
pub mod mss;
pub mod rx;
pub mod tx;
pub mod wire;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

use core::fmt;

pub use crate::env::PAGE_BYTES;

/// Counters, kept per device. The backend's mistakes each have their own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets that took more than one slot, each way.
    pub rx_multi_slot: u64,
    pub tx_multi_slot: u64,
    /// Extra-info slots seen on RX (GSO and others), parsed and skipped.
    pub rx_extra_info: u64,
    /// RX packets flagged `NETRXF_data_validated` / `NETRXF_csum_blank`.
    pub rx_csum_validated: u64,
    pub rx_csum_blank: u64,
    /// RX packets with a GSO extra-info slot (segments netback did not cut).
    pub rx_gso: u64,
    /// TX packets sent with a blank checksum, and with a GSO extra.
    pub tx_csum_blank: u64,
    pub tx_gso: u64,
    /// TCP/UDP checksums summed in software ([`csum`]): RX packets netback
    /// did not vouch for (and those found bad, dropped), TX packets the
    /// vif does not offload.
    pub rx_csum_sw: u64,
    pub rx_csum_bad: u64,
    pub tx_csum_sw: u64,
    /// Packets dropped: too many slots, too large, or no memory.
    pub rx_dropped: u64,
    /// Hostile or broken backend: a response id that is not ours.
    pub rx_bad_id: u64,
    pub tx_bad_id: u64,
    /// A length (with its offset) past the end of the buffer.
    pub rx_bad_len: u64,
    /// A response status that is an error.
    pub rx_error_status: u64,
    pub tx_error_status: u64,
    /// A producer index out of range (responses never asked for).
    pub rx_bad_prod: u64,
    pub tx_bad_prod: u64,
    /// An extra-info slot of an unknown type or where none was announced.
    pub rx_bad_extra: u64,
    /// An RX chain longer than a packet may be (data slots past
    /// [`rx::MAX_SLOTS`], or extra-info slots past [`rx::MAX_EXTRAS`]):
    /// the packet is cut there and dropped.
    pub rx_long_chain: u64,
    /// A TX response with status `NETIF_RSP_NULL` (only extra-info slots
    /// get it, and this frontend sends none).
    pub tx_null_status: u64,
    /// TX ids whose responses never came although every slot was answered
    /// (bogus or repeated ids took their place): taken back.
    pub tx_ids_recovered: u64,
    /// The TX watchdog: slots in flight and no answer for
    /// [`TX_STALL_NS`].
    pub tx_stalled: u64,
    /// Event channel notifications sent to the backend (all, and those for
    /// new TX requests and for new RX buffers), and events received.
    pub notifications: u64,
    pub tx_notifications: u64,
    pub rx_notifications: u64,
    pub events: u64,
    /// Grants made, revoked, and left in place because the backend still
    /// mapped the page (those pages are kept, never reused).
    pub grants_made: u64,
    pub grants_revoked: u64,
    pub grants_kept: u64,
}

impl Stats {
    /// Grants currently published.
    pub fn grants_active(&self) -> u64 {
        self.grants_made - self.grants_revoked - self.grants_kept
    }

    /// Backend protocol violations of every kind.
    pub fn backend_errors(&self) -> u64 {
        self.rx_bad_id
            + self.tx_bad_id
            + self.rx_bad_len
            + self.rx_bad_prod
            + self.tx_bad_prod
            + self.rx_bad_extra
            + self.rx_long_chain
            + self.tx_null_status
            + self.tx_ids_recovered
            + self.tx_stalled
    }
}

/// Backend faults after which a vif is declared broken and left alone (no
/// more I/O on its rings), as Linux's netfront does after its first
/// (`info->broken`); a few are forgiven, since a fault costs us nothing
/// but the packet it spoiled.
pub const BROKEN_AFTER_FAULTS: u64 = 64;

/// How long TX slots may stay unanswered before the watchdog counts a
/// fault and declares the vif broken (netback answers in microseconds;
/// Linux's TX watchdog waits 5 s).
pub const TX_STALL_NS: u64 = 10_000_000_000;

/// Logs the first occurrence of a backend fault kind, counts every one.
pub(crate) fn fault(count: &mut u64, what: &str, detail: fmt::Arguments<'_>) {
    if *count == 0 {
        log::warn!("netfront: backend fault ({what}): {detail}; further ones are only counted");
    }
    *count += 1;
}
