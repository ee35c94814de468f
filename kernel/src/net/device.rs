//! netfront as a smoltcp [`Device`]: received packets are copied out of
//! the shared pages once (by netfront) and queued; each transmitted
//! packet is queued on the TX ring and published once per poll.

use crate::driver_env::KernelEnv;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use pv_drivers::netfront::connect::Netfront;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The device for one `Interface::poll`.
pub struct NetDev<'a> {
    pub nf: &'a mut Netfront<KernelEnv>,
    pub host: &'a mut KernelEnv,
    pub rxq: &'a mut VecDeque<Vec<u8>>,
    /// TX packets dropped because the ring was full (TCP retransmits).
    pub tx_busy: &'a mut u64,
}

pub struct Rx(Vec<u8>);

pub struct Tx<'b> {
    nf: &'b mut Netfront<KernelEnv>,
    host: &'b mut KernelEnv,
    tx_busy: &'b mut u64,
}

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        if self.nf.send(self.host, &buf).is_err() {
            *self.tx_busy += 1;
        }
        r
    }
}

impl Device for NetDev<'_> {
    type RxToken<'b>
        = Rx
    where
        Self: 'b;
    type TxToken<'b>
        = Tx<'b>
    where
        Self: 'b;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let p = self.rxq.pop_front()?;
        Some((Rx(p), Tx { nf: self.nf, host: self.host, tx_busy: self.tx_busy }))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx { nf: self.nf, host: self.host, tx_busy: self.tx_busy })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.nf.mtu as usize + 14;
        caps.max_burst_size = Some(64);
        caps
    }
}
