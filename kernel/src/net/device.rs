//! netfront as a smoltcp [`Device`]: received packets are copied out of
//! the shared pages once (by netfront) and queued; each transmitted
//! packet is queued on the TX ring and published once per poll.
//!
//! TCP/UDP checksums are decided here, not in smoltcp (its checksum
//! capabilities say so, see [`caps`]): a received packet netback vouched
//! for (`data_validated` / `csum_blank`) is not summed, the others are
//! ([`csum::verify`]); a sent one carries only the pseudo-header sum and
//! goes out `csum_blank` when the vif offloads ([`csum::prepare_tx`]).

use crate::driver_env::KernelEnv;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use hypercall::abi::netif::rxf;
use pv_drivers::netfront::connect::Netfront;
use pv_drivers::netfront::csum::{self, Verdict};
use pv_drivers::netfront::mss::MssTable;
use pv_drivers::netfront::tx::TxOffload;
use smoltcp::phy::{self, Checksum, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The device for one `Interface::poll`.
pub struct NetDev<'a> {
    pub nf: &'a mut Netfront<KernelEnv>,
    pub host: &'a mut KernelEnv,
    /// Received frames with their first slot's `NETRXF_*` flags.
    pub rxq: &'a mut VecDeque<(Vec<u8>, u16)>,
    /// Times the TX ring had no room: smoltcp was told to wait (or, for
    /// a packet already made, it was dropped and TCP retransmits).
    pub tx_busy: &'a mut u64,
    /// Each flow's MSS, for the GSO size of large segments.
    pub mss: &'a mut MssTable,
}

pub struct Rx(Vec<u8>);

pub struct Tx<'b> {
    nf: &'b mut Netfront<KernelEnv>,
    host: &'b mut KernelEnv,
    tx_busy: &'b mut u64,
    mss: &'b MssTable,
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
        super::listener::note_frame(&buf);
        super::loopstats::note_segment(&buf, true);
        let offload = self.nf.offloads.tx_csum;
        let blank = csum::prepare_tx(&mut buf, offload);
        if !offload && csum::tcp_payload(&buf).is_some() {
            self.nf.stats.tx_csum_sw += 1;
        }
        // A TCP segment of several MSS (smoltcp's TSO, with
        // `tso_max_payload` set when the vif has GSO): netback cuts it.
        let gso_size = if self.nf.offloads.tx_gso {
            self.mss.gso_size(&buf, self.nf.mtu as usize)
        } else {
            None
        };
        let off = TxOffload { csum_blank: blank, gso_size };
        if self.nf.send_offloaded(self.host, &buf, off).is_err() {
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
        let p = loop {
            let (p, flags) = self.rxq.pop_front()?;
            self.mss.observe_rx(&p);
            if flags & (rxf::DATA_VALIDATED | rxf::CSUM_BLANK) != 0 {
                break p;
            }
            match csum::verify(&p) {
                Verdict::NotChecked => break p,
                Verdict::Good => {
                    self.nf.stats.rx_csum_sw += 1;
                    break p;
                }
                Verdict::Bad => {
                    self.nf.stats.rx_csum_sw += 1;
                    self.nf.stats.rx_csum_bad += 1;
                }
            }
        };
        Some((Rx(p), Tx { nf: self.nf, host: self.host, tx_busy: self.tx_busy, mss: self.mss }))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        // No room for the largest packet: smoltcp keeps its data and tries
        // at the next poll (after the backend's TX event), rather than
        // having it dropped and waiting for a retransmission timeout.
        if !self.nf.tx_room(TSO_MAX_PAYLOAD + 14 + 20 + 60) {
            *self.tx_busy += 1;
            return None;
        }
        Some(Tx { nf: self.nf, host: self.host, tx_busy: self.tx_busy, mss: self.mss })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        caps(self.nf.mtu as usize + 14)
    }
}

/// The largest TCP payload handed to netback in one GSO packet: the
/// packet's size field is 16 bits, for the Ethernet, IP and TCP headers
/// (with up to 40 bytes of options) and the payload together.
pub const TSO_MAX_PAYLOAD: usize = 65535 - 14 - 20 - 60;

/// What the interface is told about the device (smoltcp reads it once, in
/// `Interface::new`): frames of `mtu` bytes out (larger ones come in
/// whole: smoltcp takes any size it is handed), and TCP/UDP checksums
/// neither checked nor computed by smoltcp, since this device does both.
pub fn caps(mtu: usize) -> DeviceCapabilities {
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ethernet;
    caps.max_transmission_unit = mtu;
    caps.max_burst_size = Some(64);
    caps.checksum.tcp = Checksum::None;
    caps.checksum.udp = Checksum::None;
    caps
}
