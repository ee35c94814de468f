//! The frontend side of xenbus: a XenStore client with watch events kept
//! for whoever waits for them ([`bus`]), and devices with their state
//! machine ([`device`]), and devices that come and go ([`hotplug`]).

pub mod bus;
pub mod device;
pub mod hotplug;

pub use bus::Bus;
