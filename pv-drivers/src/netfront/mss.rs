//! The GSO size of a large TCP segment the guest sends: the peer's MSS for
//! that connection, learned from the SYN or SYN-ACK it sent us.
//!
//! With segmentation offload the stack hands the vif segments of many MSS
//! (whole multiples of it); netback cuts them at the `gso_size` the GSO
//! extra-info slot names, so that must be the MSS the stack used:
//! the peer's announced MSS, bounded by what the vif's MTU carries. The
//! stack does not say it per packet, so the vif keeps the announced MSS
//! of every flow it saw open (a few dozen at most here: the oldest is
//! forgotten first) and falls back to 536 bytes (RFC 1122's default) for
//! a flow it did not see open.

use alloc::vec::Vec;

/// What an IPv4 host may assume without an MSS option (RFC 1122 4.2.2.6).
pub const DEFAULT_MSS: u16 = 536;
/// Flows remembered.
pub const FLOWS: usize = 64;

/// A flow as seen from our side: peer address, peer port, our port.
type Key = ([u8; 4], u16, u16);

/// Announced MSS per flow.
#[derive(Default)]
pub struct MssTable {
    flows: Vec<(Key, u16)>,
}

/// The IPv4 TCP header of an Ethernet frame: (IP header offset, TCP header
/// offset, TCP header length).
fn tcp(frame: &[u8]) -> Option<(usize, usize, usize)> {
    if frame.len() < 14 + 20 + 20 || frame[12..14] != [0x08, 0x00] || frame[14] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0xf) * 4;
    if frame[23] != 6 || ihl < 20 || frame.len() < 14 + ihl + 20 {
        return None;
    }
    let l4 = 14 + ihl;
    let doff = usize::from(frame[l4 + 12] >> 4) * 4;
    (doff >= 20 && frame.len() >= l4 + doff).then_some((14, l4, doff))
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

impl MssTable {
    /// Looks at a received frame: a SYN's MSS option (or its absence) is
    /// remembered for its flow.
    pub fn observe_rx(&mut self, frame: &[u8]) {
        let Some((ip, l4, doff)) = tcp(frame) else { return };
        if frame[l4 + 13] & 0x02 == 0 {
            return;
        }
        let mut mss = DEFAULT_MSS;
        let mut opts = &frame[l4 + 20..l4 + doff];
        while let [kind, rest @ ..] = opts {
            match *kind {
                0 => break,
                1 => opts = rest,
                _ => {
                    let Some(&len) = rest.first() else { break };
                    let len = usize::from(len);
                    if len < 2 || len > opts.len() {
                        break;
                    }
                    if *kind == 2 && len == 4 {
                        mss = be16(opts, 2).max(1);
                    }
                    opts = &opts[len..];
                }
            }
        }
        let peer: [u8; 4] = frame[ip + 12..ip + 16].try_into().expect("4 bytes");
        let key = (peer, be16(frame, l4), be16(frame, l4 + 2));
        self.flows.retain(|(k, _)| *k != key);
        if self.flows.len() == FLOWS {
            self.flows.remove(0);
        }
        self.flows.push((key, mss));
    }

    /// The GSO size for a frame we send: if its TCP payload is larger than
    /// one segment of the flow's MSS (bounded by `mtu`, the vif's IP MTU,
    /// less the headers), that segment size; `None` if it fits one.
    pub fn gso_size(&self, frame: &[u8], mtu: usize) -> Option<u16> {
        let (ip, l4, doff) = tcp(frame)?;
        let total = usize::from(be16(frame, ip + 2));
        let payload = total.checked_sub(l4 - ip + doff)?;
        let key: Key =
            (frame[ip + 16..ip + 20].try_into().ok()?, be16(frame, l4 + 2), be16(frame, l4));
        let announced = self.flows.iter().find(|(k, _)| *k == key).map_or(DEFAULT_MSS, |&(_, m)| m);
        // The stack's own bound: the MTU less 40 bytes of IP and TCP headers.
        let mss = usize::from(announced).min(mtu.saturating_sub(40)).max(1);
        (payload > mss).then_some(mss as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A TCP frame `src:sport -> dst:dport` with `flags`, `opts` and `payload` bytes.
    fn frame(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        flags: u8,
        opts: &[u8],
        payload: usize,
    ) -> Vec<u8> {
        let doff = 20 + opts.len();
        let mut f = vec![0u8; 14 + 20 + doff + payload];
        f[12..14].copy_from_slice(&[8, 0]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((20 + doff + payload) as u16).to_be_bytes());
        f[23] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[46] = ((doff / 4) as u8) << 4;
        f[47] = flags;
        f[54..54 + opts.len()].copy_from_slice(opts);
        f
    }

    const PEER: [u8; 4] = [192, 0, 2, 1];
    const US: [u8; 4] = [192, 0, 2, 3];

    #[test]
    fn the_peers_syn_sets_the_gso_size_of_its_flow() {
        let mut t = MssTable::default();
        // Linux's SYN: MSS 1460, SACK permitted, timestamps, NOP, window scale.
        let opts = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
        t.observe_rx(&frame(PEER, 40000, US, 19, 0x02, &opts, 0));
        t.observe_rx(&frame(PEER, 40001, US, 19, 0x02, &[2, 4, 0x02, 0x00, 0, 0, 0, 0], 0));
        // Ours back, 10 segments of 1460 in one packet.
        assert_eq!(t.gso_size(&frame(US, 19, PEER, 40000, 0x10, &[], 14600), 1500), Some(1460));
        // Smaller MSS of the other flow; a smaller MTU bounds it too.
        assert_eq!(t.gso_size(&frame(US, 19, PEER, 40001, 0x10, &[], 5120), 1500), Some(512));
        assert_eq!(t.gso_size(&frame(US, 19, PEER, 40000, 0x10, &[], 14600), 1000), Some(960));
        // One segment's worth: no GSO.
        assert_eq!(t.gso_size(&frame(US, 19, PEER, 40000, 0x10, &[], 1460), 1500), None);
        // A flow never seen opening: the RFC 1122 default.
        assert_eq!(t.gso_size(&frame(US, 19, PEER, 9, 0x10, &[], 5360), 1500), Some(536));
        // A SYN without the option means 536 too.
        t.observe_rx(&frame(PEER, 40002, US, 19, 0x02, &[], 0));
        assert_eq!(t.gso_size(&frame(US, 19, PEER, 40002, 0x10, &[], 5360), 1500), Some(536));
    }

    #[test]
    fn hostile_options_and_many_flows_are_survived() {
        let mut t = MssTable::default();
        for opts in [&[2u8, 0, 5, 0][..], &[2, 9, 5, 0], &[7], &[2, 4, 0, 0], &[1, 1, 1, 1]] {
            t.observe_rx(&frame(PEER, 1, US, 2, 0x02, opts, 0));
            let g = t.gso_size(&frame(US, 2, PEER, 1, 0x10, &[], 60000), 1500);
            assert!(g.is_some_and(|g| (1..=1460).contains(&g)), "{opts:?}: {g:?}");
        }
        for p in 0..1000u16 {
            t.observe_rx(&frame(PEER, p, US, 19, 0x12, &[2, 4, 5, 0], 0));
        }
        assert_eq!(t.flows.len(), FLOWS);
        assert_eq!(t.gso_size(&frame(US, 19, PEER, 999, 0x10, &[], 60000), 1500), Some(1280));
        // Not TCP, or too short: nothing.
        let mut udp = frame(US, 19, PEER, 999, 0x10, &[], 60000);
        udp[23] = 17;
        assert_eq!(t.gso_size(&udp, 1500), None);
        assert_eq!(t.gso_size(&udp[..40], 1500), None);
    }
}
