//! blkfront: the frontend of Xen's PV block device (`io/blkif.h`), as
//! Linux's xen-blkfront negotiates it: single or multi-page rings,
//! multi-queue (a ring and event channel per queue), indirect
//! descriptors, persistent grants, flush/barrier, discard.
//!
//! - [`connect`]: the xenbus handshake, in two halves.
//! - [`device`]: the connected device and its block API.
//! - [`hotplug`]: disks that come and go, under the xenbus hotplug manager.
//! - [`env`]: what the driver needs from the kernel besides
//!   [`crate::env`]'s services: waiting for its events ([`BlkEnv`]).
//! - [`pool`]: bounce pages and their grants.
//! - [`queue`]: one queue's ring, event channel and requests in flight;
//!   request ids, and how a lost answer is found without a timeout.
//! - [`wire`]: blkif entries in ring slots.
//!

pub mod connect;
pub mod device;
pub mod env;
mod error;
pub mod hotplug;
pub mod pool;
pub mod queue;
pub mod wire;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

pub use connect::{start, Connecting};
pub use device::{BlkFront, CloseReport, Config, Features, Geometry, Stats};
pub use env::{BlkEnv, Reconnected};
pub use error::BlkError;

/// The Linux-style name of a `device/vbd/<id>` (`virtual-device` number):
/// `xvda` for 51712 (major 202, minor 0), `xvdb` for 51728, ...; the
/// extended form `(1 << 28) | (disk << 8)` for many disks.
pub fn vbd_name(id: u32) -> alloc::string::String {
    let disk = if id & (1 << 28) != 0 {
        Some((id >> 8) & 0xfffff)
    } else if id >> 8 == 202 {
        Some((id & 0xff) >> 4)
    } else {
        None
    };
    match disk {
        Some(d) => {
            // a..z, aa..zz, aaa..., as Linux counts (bijective base 26):
            // the extended form reaches disk 0xfffff, four letters.
            let mut letters = alloc::vec::Vec::new();
            let mut n = d;
            loop {
                letters.push(b'a' + (n % 26) as u8);
                if n < 26 {
                    break;
                }
                n = n / 26 - 1;
            }
            let mut name = alloc::string::String::from("xvd");
            name.extend(letters.iter().rev().map(|&b| b as char));
            name
        }
        None => alloc::format!("vbd{id}"),
    }
}
