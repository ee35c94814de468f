//! xenbus: the guest's side of XenStore. The [`Bus`] owns the client and
//! keeps watch events that arrive while someone waits for a different one;
//! [`device`] enumerates frontends and runs their state machine;
//! [`control`] answers the toolstack (`xl shutdown`, `xl reboot`, sysrq).

pub mod control;

#[cfg(target_os = "none")]
pub use pv_drivers::xenbus::device;

#[cfg(target_os = "none")]
mod global;
#[cfg(target_os = "none")]
pub use global::*;
