//! netfront as a smoltcp [`Device`]: received packets are copied out of
//! the shared pages once (by netfront) and queued; each transmitted
//! packet is kept, within the room the TX ring had, and queued on the
//! ring and published once per pass (`net::shard`).
//!
//! TCP/UDP checksums are decided here, not in smoltcp (its checksum
//! capabilities say so, see [`caps`]): a received packet netback vouched
//! for (`data_validated` / `csum_blank`) is not summed, the others are
//! ([`csum::verify`]); a sent one carries only the pseudo-header sum and
//! goes out `csum_blank` when the vif offloads ([`csum::prepare_tx`]).

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use hypercall::abi::netif::rxf;
use pv_drivers::netfront::connect::Offloads;
use pv_drivers::netfront::csum::{self, Verdict};
use pv_drivers::netfront::mss::MssTable;
use pv_drivers::netfront::tx::{TxOffload, TxRoom};
use smoltcp::phy::{self, Checksum, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// What a shard knows of the vif it sends on (copied when the vif
/// connects): the stack never touches netfront itself.
#[derive(Clone, Copy, Debug)]
pub struct VifLink {
    pub mtu: u32,
    pub offloads: Offloads,
}

/// Counters the device keeps for netfront's (added to the vif's when the
/// shard next holds it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// Times the TX room ran out: smoltcp was told to wait (or, for a
    /// packet already made, it was dropped and TCP retransmits).
    pub tx_busy: u64,
    pub rx_csum_sw: u64,
    pub rx_csum_bad: u64,
    pub tx_csum_sw: u64,
}

/// The device for one shard's ingress or egress: received frames come
/// from `rxq` (copied out of netfront's pages beforehand), frames to send
/// go to `outq` within the TX room counted beforehand, and the shard
/// queues them on its ring afterwards, holding the vif for both copies
/// only (docs/smp.md: two shards build packets at once).
pub struct NetDev<'a> {
    pub link: &'a VifLink,
    /// Received frames with their first slot's `NETRXF_*` flags.
    pub rxq: &'a mut VecDeque<(Vec<u8>, u16)>,
    pub outq: &'a mut Vec<(Vec<u8>, TxOffload)>,
    pub room: &'a mut TxRoom,
    pub tally: &'a mut Tally,
    /// Each flow's MSS, for the GSO size of large segments.
    pub mss: &'a mut MssTable,
}

pub struct Rx(Vec<u8>);

pub struct Tx<'b> {
    link: &'b VifLink,
    outq: &'b mut Vec<(Vec<u8>, TxOffload)>,
    room: &'b mut TxRoom,
    tally: &'b mut Tally,
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
        let offload = self.link.offloads.tx_csum;
        let blank = csum::prepare_tx(&mut buf, offload);
        if !offload && csum::tcp_payload(&buf).is_some() {
            self.tally.tx_csum_sw += 1;
        }
        // A TCP segment of several MSS (smoltcp's TSO, with
        // `tso_max_payload` set when the vif has GSO): netback cuts it.
        let gso_size = if self.link.offloads.tx_gso {
            self.mss.gso_size(&buf, self.link.mtu as usize)
        } else {
            None
        };
        let off = TxOffload { csum_blank: blank, gso_size };
        if self.room.take(buf.len(), gso_size.is_some()) {
            self.outq.push((buf, off));
        } else {
            self.tally.tx_busy += 1;
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
                    self.tally.rx_csum_sw += 1;
                    break p;
                }
                Verdict::Bad => {
                    self.tally.rx_csum_sw += 1;
                    self.tally.rx_csum_bad += 1;
                }
            }
        };
        Some((
            Rx(p),
            Tx {
                link: self.link,
                outq: self.outq,
                room: self.room,
                tally: self.tally,
                mss: self.mss,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        // No room for the largest packet: smoltcp keeps its data and tries
        // at the next poll (after the backend's TX event), rather than
        // having it dropped and waiting for a retransmission timeout.
        if !self.room.fits(TSO_MAX_PAYLOAD + 14 + 20 + 60, true) {
            self.tally.tx_busy += 1;
            return None;
        }
        Some(Tx {
            link: self.link,
            outq: self.outq,
            room: self.room,
            tally: self.tally,
            mss: self.mss,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        caps(self.link.mtu as usize + 14)
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
