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
}
