//! blkfront under the hotplug manager ([`crate::xenbus::hotplug`]): disks
//! that come and go with `xl block-attach` / `xl block-detach`.

use super::{start, BlkEnv, BlkError, BlkFront, CloseReport, Config};
use crate::env::EnvError;
use crate::xenbus::device::DeviceInfo;
use crate::xenbus::hotplug::Driver;
use crate::xenbus::Bus;
use core::fmt;
use core::marker::PhantomData;
use xenstore_client::Transport;

/// Connects vbds, each on an environment `new_env` makes.
pub struct VbdDriver<E, F> {
    pub new_env: F,
    pub config: Config,
    _env: PhantomData<fn() -> E>,
}

impl<E: BlkEnv, F: FnMut() -> Result<E, EnvError>> VbdDriver<E, F> {
    pub fn new(new_env: F, config: Config) -> Self {
        VbdDriver { new_env, config, _env: PhantomData }
    }
}

impl fmt::Display for CloseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "grants {} made, {} revoked ({} at close), {} refused; backend ",
            self.made, self.revoked_in_all, self.revoked, self.refused
        )?;
        match self.backend {
            Some(s) => s.fmt(f),
            None => f.write_str("gone or not asked"),
        }
    }
}

impl<E: BlkEnv, F: FnMut() -> Result<E, EnvError>> Driver for VbdDriver<E, F> {
    type Device = BlkFront<E>;
    type Closed = CloseReport;
    type Error = BlkError;

    fn connect<T: Transport>(
        &mut self,
        bus: &mut Bus<T>,
        dev: &DeviceInfo,
    ) -> Result<BlkFront<E>, BlkError> {
        let env = (self.new_env)()?;
        start(bus, env, dev.clone(), self.config).and_then(|c| c.finish(bus))
    }

    fn close<T: Transport>(&mut self, bus: &mut Bus<T>, d: BlkFront<E>) -> CloseReport {
        d.close(bus)
    }

    fn abandon(&mut self, d: BlkFront<E>) -> CloseReport {
        d.abandon()
    }

    fn kept(closed: &CloseReport) -> u64 {
        closed.refused
    }
}
