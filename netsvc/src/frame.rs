//! Recognising, in an Ethernet frame the guest sends, the TCP reset that
//! refuses a connection attempt: the reply to a SYN that no listening
//! socket took (smoltcp answers it with RST|ACK, sequence number 0, as
//! RFC 9293 section 3.10.7.1 says for a segment without ACK). The
//! listener counts these per port as refused: once its backlog is used
//! up this is how the stack turns clients away, and the count is the
//! proof that it did so cleanly.

/// The source port of `frame` if it is such a reset (IPv4).
pub fn syn_refusal_port(frame: &[u8]) -> Option<u16> {
    const ETH: usize = 14;
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(ETH..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip.first()? >> 4 != 4 || ihl < 20 || *ip.get(9)? != 6 {
        return None;
    }
    let tcp = ip.get(ihl..)?;
    let flags = *tcp.get(13)?;
    let seq = tcp.get(4..8)?;
    // RST and ACK, no SYN/FIN; sequence number 0.
    (flags & 0x17 == 0x14 && seq == [0, 0, 0, 0]).then(|| u16::from_be_bytes([tcp[0], tcp[1]]))
}

/// A connection attempt in a received frame: the source address and
/// port and the destination port of an IPv4 TCP SYN without ACK.
///
/// smoltcp hands a segment to the first socket that accepts it, and a
/// listening socket accepts any SYN to its port: a client's retransmitted
/// SYN (its SYN-ACK was slow) can reach another listening socket of the
/// pool before the socket already in SYN-RECEIVED for it, which then
/// answers with a second, different SYN-ACK, and whichever of the two the
/// client acknowledges, the other socket resets the connection. The
/// service loop drops such a SYN instead (the first socket retransmits
/// its SYN-ACK on its own timer), as Linux answers it from the one request
/// it already holds.
pub fn syn_of(frame: &[u8]) -> Option<([u8; 4], u16, u16)> {
    const ETH: usize = 14;
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(ETH..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip.first()? >> 4 != 4 || ihl < 20 || *ip.get(9)? != 6 {
        return None;
    }
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let tcp = ip.get(ihl..)?;
    let flags = *tcp.get(13)?;
    // SYN, no ACK, no RST.
    (flags & 0x16 == 0x02)
        .then(|| (src, u16::from_be_bytes([tcp[0], tcp[1]]), u16::from_be_bytes([tcp[2], tcp[3]])))
}

/// The TCP flags of an IPv4 TCP segment in `frame` (FIN 0x01, SYN 0x02,
/// RST 0x04, ACK 0x10), for the service loop's handshake counters.
pub fn tcp_flags(frame: &[u8]) -> Option<u8> {
    const ETH: usize = 14;
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(ETH..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip.first()? >> 4 != 4 || ihl < 20 || *ip.get(9)? != 6 {
        return None;
    }
    ip.get(ihl + 13).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flags: u8, seq: u32) -> [u8; 54] {
        let mut f = [0u8; 54];
        f[12] = 0x08;
        f[14] = 0x45;
        f[23] = 6;
        f[34..36].copy_from_slice(&80u16.to_be_bytes());
        f[38..42].copy_from_slice(&seq.to_be_bytes());
        f[47] = flags;
        f
    }

    #[test]
    fn only_the_reset_to_a_syn() {
        assert_eq!(syn_refusal_port(&frame(0x14, 0)), Some(80));
        assert_eq!(syn_refusal_port(&frame(0x14, 7)), None, "an abort has our sequence number");
        assert_eq!(syn_refusal_port(&frame(0x10, 0)), None);
        assert_eq!(syn_refusal_port(&frame(0x04, 0)), None);
        let mut udp = frame(0x14, 0);
        udp[23] = 17;
        assert_eq!(syn_refusal_port(&udp), None);
        assert_eq!(syn_refusal_port(&frame(0x14, 0)[..40]), None);
        assert_eq!(syn_refusal_port(&[]), None);
    }

    #[test]
    fn syns_without_ack() {
        let mut f = frame(0x02, 1);
        f[26..30].copy_from_slice(&[192, 0, 2, 1]);
        f[36..38].copy_from_slice(&8080u16.to_be_bytes());
        assert_eq!(syn_of(&f), Some(([192, 0, 2, 1], 80, 8080)));
        f[47] = 0x12;
        assert_eq!(syn_of(&f), None, "a SYN-ACK");
        f[47] = 0x10;
        assert_eq!(syn_of(&f), None);
        assert_eq!(syn_of(&f[..40]), None);
    }
}
