//! Xen's own console (`console_io`).
//!
//! Soundness: safe. Xen reads the borrowed bytes during the call. (The PV
//! console *ring* is a page the toolstack sets up before the guest runs;
//! no hypercall registers it: see `platform/src/pv/mod.rs`.)

use crate::abi::xen::consoleio;
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};

/// `console_io`: Xen's own console, the early and emergency output path.
/// Release builds of Xen drop a domU's writes; dom0's reach the serial line.
pub fn write(bytes: &[u8]) -> XenResult<()> {
    // SAFETY: Xen reads `bytes.len()` bytes from a live slice.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::CONSOLE_IO }>(
            consoleio::WRITE.into(),
            bytes.len() as u64,
            bytes.as_ptr() as u64,
            0,
            0,
        )
    })
    .map(drop)
}
