//! Which TX queue a packet goes out on: a hash of its flow (IPv4 or IPv6
//! addresses and, for TCP and UDP, ports), so one connection's packets
//! always take the same ring and stay in order; anything else (ARP, a
//! fragment, a short frame) takes queue 0.

const ETH_HEADER: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// FNV-1a over `bytes`, continuing from `h`.
fn fnv(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The flow hash of an Ethernet frame; `None` if it is not IP.
/// Symmetric in neither direction on purpose: each end hashes what it sends.
pub fn flow_hash(frame: &[u8]) -> Option<u32> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(ETH_HEADER..)?;
    let (proto, addrs, l4) = match ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x3fff != 0;
            let l4 = if fragment || ihl < 20 { None } else { ip.get(ihl..) };
            (*ip.get(9)?, ip.get(12..20)?, l4)
        }
        ETHERTYPE_IPV6 => (*ip.get(6)?, ip.get(8..40)?, ip.get(40..)),
        _ => return None,
    };
    let mut h = fnv(0x811c_9dc5, &[proto]);
    h = fnv(h, addrs);
    if proto == PROTO_TCP || proto == PROTO_UDP {
        if let Some(ports) = l4.and_then(|l| l.get(..4)) {
            h = fnv(h, ports);
        }
    }
    Some(h)
}

/// The TX queue for `frame` among `queues`.
pub fn select_queue(frame: &[u8], queues: usize) -> usize {
    if queues <= 1 {
        return 0;
    }
    flow_hash(frame).map_or(0, |h| h as usize % queues)
}
