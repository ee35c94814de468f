//! `struct xencons_interface` (`xen/include/public/io/console.h`): the PV
//! console ring page shared with `xenconsoled` in dom0.

use super::assert_layout;
use core::sync::atomic::{AtomicU32, AtomicU8};

/// Size of the backend→guest ring.
pub const IN_RING_SIZE: usize = 1024;
/// Size of the guest→backend ring.
pub const OUT_RING_SIZE: usize = 2048;

/// The console page. Indices are free-running `u32`s; a ring position is the
/// index masked by the ring size. The guest produces `out` and consumes `in`.
#[repr(C)]
pub struct XenconsInterface {
    pub input: [AtomicU8; IN_RING_SIZE],
    pub output: [AtomicU8; OUT_RING_SIZE],
    pub in_cons: AtomicU32,
    pub in_prod: AtomicU32,
    pub out_cons: AtomicU32,
    pub out_prod: AtomicU32,
}
assert_layout!(
    XenconsInterface,
    size = 3088,
    input = 0,
    output = 1024,
    in_cons = 3072,
    in_prod = 3076,
    out_cons = 3080,
    out_prod = 3084,
);

impl XenconsInterface {
    /// An empty ring, for host tests that play the backend.
    pub fn zeroed() -> Self {
        Self {
            input: core::array::from_fn(|_| AtomicU8::new(0)),
            output: core::array::from_fn(|_| AtomicU8::new(0)),
            in_cons: AtomicU32::new(0),
            in_prod: AtomicU32::new(0),
            out_cons: AtomicU32::new(0),
            out_prod: AtomicU32::new(0),
        }
    }
}
