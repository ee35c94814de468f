//! The frontend side of xenbus: a XenStore client with watch events kept
//! for whoever waits for them ([`bus`]), and devices with their state
//! machine ([`device`]).

pub mod bus;
pub mod device;

pub use bus::Bus;
