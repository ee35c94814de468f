//! TCP and UDP checksums (IPv4) at the edge of the vif, so the stack above
//! never sums a payload the other side validated or will fill in.
//!
//! RX: a packet netback flags `NETRXF_data_validated` or `NETRXF_csum_blank`
//! is trusted as Linux's netfront trusts it (CHECKSUM_UNNECESSARY /
//! CHECKSUM_PARTIAL); only the others are summed here ([`verify`]).
//! TX: [`prepare_tx`] leaves the pseudo-header sum in the checksum field,
//! as Linux's CHECKSUM_PARTIAL does, and the packet goes out with
//! `NETTXF_csum_blank` (netback or the receiving stack completes it); when
//! the vif does not offload, it computes the whole checksum instead.
//!
//! The stack above is told not to check or compute TCP/UDP checksums at
//! all (smoltcp's `ChecksumCapabilities`), so every checksum is decided
//! here. IPv4 header checksums (20 bytes) stay with the stack.

const ETH_HEADER: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Where a frame's TCP or UDP segment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    /// Offset of the IPv4 header, of the TCP/UDP header, and the segment's length.
    ip: usize,
    l4: usize,
    len: usize,
    proto: u8,
    /// Offset of the checksum field.
    field: usize,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The TCP or UDP segment of an unfragmented IPv4 frame, if it is one and
/// its lengths hold together (anything else is left to the stack).
fn locate(frame: &[u8]) -> Option<Segment> {
    if frame.len() < ETH_HEADER + 20 || be16(frame, 12) != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = ETH_HEADER;
    if frame[ip] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(frame[ip] & 0xf) * 4;
    let total = usize::from(be16(frame, ip + 2));
    // More fragments, or an offset: the checksum spans other frames.
    if ihl < 20 || total < ihl || ip + total > frame.len() || be16(frame, ip + 6) & 0x3fff != 0 {
        return None;
    }
    let (l4, len, proto) = (ip + ihl, total - ihl, frame[ip + 9]);
    let field = match proto {
        PROTO_TCP if len >= 20 => l4 + 16,
        PROTO_UDP if len >= 8 => l4 + 6,
        _ => return None,
    };
    Some(Segment { ip, l4, len, proto, field })
}

/// One's-complement sum of `data` as big-endian 16-bit words, added to
/// `acc` (not folded). Eight bytes at a time: the carries are kept in the
/// upper half of a u64 and folded once at the end.
fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut words = chunks.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The pseudo-header's sum (source, destination, protocol, length).
fn pseudo(frame: &[u8], s: &Segment) -> u64 {
    sum(&frame[s.ip + 12..s.ip + 20], u64::from(s.proto) + s.len as u64)
}

/// What [`verify`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not an unfragmented IPv4 TCP/UDP frame: nothing to check here.
    NotChecked,
    Good,
    Bad,
}

/// Checks a received frame's TCP/UDP checksum in software.
pub fn verify(frame: &[u8]) -> Verdict {
    let Some(s) = locate(frame) else { return Verdict::NotChecked };
    // UDP over IPv4 may go without a checksum (RFC 768).
    if s.proto == PROTO_UDP && be16(frame, s.field) == 0 {
        return Verdict::Good;
    }
    match fold(sum(&frame[s.l4..s.l4 + s.len], pseudo(frame, &s))) {
        0xffff => Verdict::Good,
        _ => Verdict::Bad,
    }
}

/// Readies an outgoing frame's TCP/UDP checksum: with `offload`, the field
/// gets the pseudo-header sum and the answer is true (send it
/// `csum_blank`); without, the whole checksum is computed (false). Frames
/// that are not TCP/UDP over IPv4 are left alone (false).
pub fn prepare_tx(frame: &mut [u8], offload: bool) -> bool {
    let Some(s) = locate(frame) else { return false };
    frame[s.field..s.field + 2].fill(0);
    let p = pseudo(frame, &s);
    if offload {
        frame[s.field..s.field + 2].copy_from_slice(&fold(p).to_be_bytes());
        return true;
    }
    let mut c = !fold(sum(&frame[s.l4..s.l4 + s.len], p));
    if c == 0 && s.proto == PROTO_UDP {
        c = 0xffff;
    }
    frame[s.field..s.field + 2].copy_from_slice(&c.to_be_bytes());
    false
}

/// For a frame that is one IPv4 TCP segment: the bytes of headers
/// (Ethernet, IP, TCP with options) before its payload, and the payload's
/// length.
pub fn tcp_payload(frame: &[u8]) -> Option<(usize, usize)> {
    let s = locate(frame)?;
    if s.proto != PROTO_TCP {
        return None;
    }
    let doff = usize::from(frame[s.l4 + 12] >> 4) * 4;
    (doff >= 20 && doff <= s.len).then_some((s.l4 + doff, s.len - doff))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// An Ethernet + IPv4 + TCP (or UDP) frame with `payload` bytes.
    fn frame(proto: u8, payload: usize) -> Vec<u8> {
        let l4 = if proto == PROTO_TCP { 20 } else { 8 };
        let mut f = vec![0u8; 14 + 20 + l4 + payload];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        let total = (20 + l4 + payload) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[22] = 64;
        f[23] = proto;
        f[26..30].copy_from_slice(&[192, 0, 2, 3]);
        f[30..34].copy_from_slice(&[192, 0, 2, 1]);
        f[34..36].copy_from_slice(&7u16.to_be_bytes());
        f[36..38].copy_from_slice(&40_000u16.to_be_bytes());
        if proto == PROTO_TCP {
            f[46] = 5 << 4;
        } else {
            f[38..40].copy_from_slice(&(8 + payload as u16).to_be_bytes());
        }
        for (i, b) in f[34 + l4..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        f
    }

    /// RFC 1071 as written: 16-bit words, end-around carry.
    fn reference(frame: &[u8]) -> u16 {
        let s = locate(frame).unwrap();
        let mut buf = Vec::new();
        buf.extend_from_slice(&frame[s.ip + 12..s.ip + 20]);
        buf.extend_from_slice(&[0, s.proto]);
        buf.extend_from_slice(&(s.len as u16).to_be_bytes());
        let mut seg = frame[s.l4..s.l4 + s.len].to_vec();
        seg[s.field - s.l4..s.field - s.l4 + 2].fill(0);
        buf.extend_from_slice(&seg);
        if buf.len() % 2 == 1 {
            buf.push(0);
        }
        let mut acc = 0u32;
        for w in buf.chunks(2) {
            acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn software_checksums_match_rfc_1071_and_verify() {
        for proto in [PROTO_TCP, PROTO_UDP] {
            for payload in [0usize, 1, 7, 8, 9, 1460, 1461, 65_000] {
                let mut f = frame(proto, payload);
                assert!(!prepare_tx(&mut f, false));
                let want = reference(&f);
                let got = be16(&f, locate(&f).unwrap().field);
                assert!(got == want || (proto == PROTO_UDP && want == 0 && got == 0xffff));
                assert_eq!(verify(&f), Verdict::Good, "proto {proto} payload {payload}");
                // One flipped payload bit (or header bit) is caught.
                let last = f.len() - 1;
                f[last] ^= 0x10;
                assert_eq!(verify(&f), Verdict::Bad);
            }
        }
    }

    #[test]
    fn offloaded_tx_leaves_the_pseudo_header_sum_which_completes_to_the_checksum() {
        for proto in [PROTO_TCP, PROTO_UDP] {
            let mut f = frame(proto, 1000);
            assert!(prepare_tx(&mut f, true));
            let s = locate(&f).unwrap();
            // What the backend (or the receiver) does with csum_blank: sum
            // the segment from the field on, store the complement.
            let c = !fold(sum(&f[s.l4..s.l4 + s.len], 0));
            f[s.field..s.field + 2].copy_from_slice(&c.to_be_bytes());
            assert_eq!(c, reference(&f));
            assert_eq!(verify(&f), Verdict::Good);
        }
    }

    #[test]
    fn other_frames_are_left_to_the_stack() {
        let mut arp = frame(PROTO_TCP, 10);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let mut icmp = frame(PROTO_TCP, 10);
        icmp[23] = 1;
        let mut frag = frame(PROTO_UDP, 10);
        frag[20] = 0x20; // more fragments
        let mut short = frame(PROTO_TCP, 10);
        short.truncate(40);
        let mut lying = frame(PROTO_TCP, 10);
        lying[16..18].copy_from_slice(&9000u16.to_be_bytes());
        for mut f in [arp, icmp, frag, short, lying] {
            assert_eq!(verify(&f), Verdict::NotChecked);
            let before = f.clone();
            assert!(!prepare_tx(&mut f, true));
            assert_eq!(f, before);
        }
        assert_eq!(tcp_payload(&frame(PROTO_TCP, 1448)), Some((54, 1448)));
        assert_eq!(tcp_payload(&frame(PROTO_UDP, 1448)), None);
    }
}
