//! Which queue a packet takes, as Receive Side Scaling (RSS) does it on a
//! multi-queue NIC: a Toeplitz hash of the flow (IPv4 or IPv6 addresses
//! and, for TCP and UDP, ports, in RSS order: source address, destination
//! address, source port, destination port) under Microsoft's 40-byte RSS
//! key, then an indirection table of [`TABLE_SIZE`] entries indexed by the
//! hash's low bits. One connection's packets always take the same ring and
//! stay in order; anything else (ARP, an IP fragment, a malformed header)
//! takes queue 0.
//!
//! The same hash and table steer RX: netfront gives netback the key and
//! the table through the control ring ([`super::ctrl`]), so the guest
//! knows which queue any flow arrives on ([`RxSteering`]).
//!
//! Why not the FNV-1a used before: FNV-1a's lowest bit is the XOR of the
//! lowest bits of the input bytes, so `hash % 2` depended only on the
//! parity of the ports, and Linux's `connect()` prefers even ephemeral
//! ports: every connection from dom0 took one queue. Toeplitz is linear
//! over GF(2) and every output bit mixes every input bit through the key,
//! so its low bits spread such flows evenly (see the tests).
//!
//! Toeplitz is written out here: it is 15 lines, and no small `no_std`
//! crate provides it (crates.io has no `toeplitz` or `toeplitz-hash`
//! crate; the hashing crates there are general-purpose hashers, and DPDK's
//! or Linux's implementations are C). It is checked against Microsoft's
//! published RSS verification vectors and netif.h's reference code.

use hypercall::abi::netif::hash_type;

const ETH_HEADER: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
/// IPv6 next header: a fragment header follows.
const PROTO_IPV6_FRAGMENT: u8 = 44;

/// Microsoft's RSS key ("Verifying the RSS Hash Calculation"), the default
/// of most NIC drivers; its published test vectors check [`toeplitz`].
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Entries in the indirection table: 128, as on most RSS NICs, and the
/// most netback accepts (`XEN_NETBK_MAX_HASH_MAPPING_SIZE`).
pub const TABLE_SIZE: u32 = 128;

/// The Toeplitz hash of `input` under `key` (bits past the key's end count
/// as zero): for each input bit, most significant first, the 32 key bits
/// starting at that bit's position are XORed into the result if it is set.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let key_byte = |i: usize| u32::from(key.get(i).copied().unwrap_or(0));
    // The key's 32-bit window at the current input bit, and the next byte
    // to shift into it.
    let mut window = (key_byte(0) << 24) | (key_byte(1) << 16) | (key_byte(2) << 8) | key_byte(3);
    let mut hash = 0u32;
    for (i, &byte) in input.iter().enumerate() {
        let next = key_byte(i + 4);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | ((next >> (7 - bit)) & 1);
        }
    }
    hash
}

/// The Toeplitz input of a flow, in RSS order: addresses (4 or 16 bytes
/// each), then the ports if it has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowInput {
    bytes: [u8; 36],
    len: usize,
}

impl FlowInput {
    fn new(addrs: &[u8], ports: Option<&[u8]>) -> Self {
        let mut bytes = [0u8; 36];
        bytes[..addrs.len()].copy_from_slice(addrs);
        let mut len = addrs.len();
        if let Some(p) = ports {
            bytes[len..len + 4].copy_from_slice(p);
            len += 4;
        }
        FlowInput { bytes, len }
    }

    /// The bytes hashed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Its hash under [`RSS_KEY`].
    pub fn hash(&self) -> u32 {
        toeplitz(&RSS_KEY, self.as_bytes())
    }
}

/// The IPv4 TCP (or UDP) 4-tuple input: src addr, dst addr, src port,
/// dst port, as RSS and netback's `XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP`.
pub fn ipv4_l4_input(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> FlowInput {
    let mut addrs = [0u8; 8];
    addrs[..4].copy_from_slice(&src);
    addrs[4..].copy_from_slice(&dst);
    let mut ports = [0u8; 4];
    ports[..2].copy_from_slice(&sport.to_be_bytes());
    ports[2..].copy_from_slice(&dport.to_be_bytes());
    FlowInput::new(&addrs, Some(&ports))
}

/// The IP header fields a flow is hashed on.
struct Headers<'a> {
    ipv6: bool,
    proto: u8,
    /// Source then destination address (8 or 32 bytes).
    addrs: &'a [u8],
    fragment: bool,
    /// Source then destination port, if the L4 header is there.
    ports: Option<&'a [u8]>,
}

/// The IP headers of an Ethernet frame; `None` if it is not IPv4 or IPv6
/// or its IP header is cut short or malformed.
fn headers(frame: &[u8]) -> Option<Headers<'_>> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(ETH_HEADER..)?;
    let (ipv6, proto, addrs, fragment, l4) = match ethertype {
        ETHERTYPE_IPV4 => {
            let first = *ip.first()?;
            let ihl = usize::from(first & 0x0f) * 4;
            if first >> 4 != 4 || ihl < 20 {
                return None;
            }
            let fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x3fff != 0;
            (false, *ip.get(9)?, ip.get(12..20)?, fragment, ip.get(ihl..))
        }
        ETHERTYPE_IPV6 => {
            if ip.first()? >> 4 != 6 {
                return None;
            }
            let next = *ip.get(6)?;
            (true, next, ip.get(8..40)?, next == PROTO_IPV6_FRAGMENT, ip.get(40..))
        }
        _ => return None,
    };
    let ports = if fragment { None } else { l4.and_then(|l| l.get(..4)) };
    Some(Headers { ipv6, proto, addrs, fragment, ports })
}

/// What the frontend hashes a frame it sends over: TCP and UDP by
/// addresses and ports, other IP by addresses; `None` (queue 0) for
/// non-IP frames and IP fragments (a fragment has no ports, and all of a
/// datagram's fragments must stay together).
pub fn tx_input(frame: &[u8]) -> Option<FlowInput> {
    let h = headers(frame)?;
    if h.fragment {
        return None;
    }
    let l4 = (h.proto == PROTO_TCP || h.proto == PROTO_UDP).then_some(h.ports).flatten();
    Some(FlowInput::new(h.addrs, l4))
}

/// The flow hash of a frame we send; `None` if it is not hashed.
pub fn flow_hash(frame: &[u8]) -> Option<u32> {
    tx_input(frame).map(|i| i.hash())
}

/// The default indirection table's entry `index` for `queues` queues:
/// queues in turn (`index % queues`, as Linux's
/// `ethtool_rxfh_indir_default`), so each queue owns `TABLE_SIZE / queues`
/// entries, give or take one.
pub fn table_entry(index: u32, queues: u32) -> u32 {
    index % queues.max(1)
}

/// The queue of a hash among `queues`, through a table of `table_size`
/// entries filled by [`table_entry`] (indexed by `hash % table_size`, as
/// netback and RSS NICs do); `table_size` 0 means plain `hash % queues`
/// (netback with no mapping table).
pub fn queue_of(hash: u32, table_size: u32, queues: u32) -> u32 {
    if queues <= 1 {
        return 0;
    }
    if table_size == 0 {
        return hash % queues;
    }
    table_entry(hash % table_size, queues)
}

/// The TX queue of a hash among `queues` (the [`TABLE_SIZE`] table).
pub fn queue_for_hash(hash: u32, queues: usize) -> usize {
    queue_of(hash, TABLE_SIZE, queues as u32) as usize
}

/// The TX queue for `frame` among `queues`.
pub fn select_queue(frame: &[u8], queues: usize) -> usize {
    if queues <= 1 {
        return 0;
    }
    flow_hash(frame).map_or(0, |h| queue_for_hash(h, queues))
}

/// What netback hashes a frame it sends us over, with `flags`
/// (`XEN_NETIF_CTRL_HASH_TYPE_*`) set, as Linux's `xenvif_set_skb_hash`:
/// TCP (not a fragment) by addresses and ports if the `*_TCP` type is on;
/// otherwise, IP by addresses if the plain type is on; else nothing (the
/// hash is then 0). netback has no UDP type: UDP is hashed by addresses.
pub fn backend_input(frame: &[u8], flags: u32) -> Option<FlowInput> {
    let h = headers(frame)?;
    let (l3, l4) = if h.ipv6 {
        (hash_type::IPV6, hash_type::IPV6_TCP)
    } else {
        (hash_type::IPV4, hash_type::IPV4_TCP)
    };
    match h.ports {
        Some(p) if h.proto == PROTO_TCP && flags & l4 != 0 => {
            Some(FlowInput::new(h.addrs, Some(p)))
        }
        _ if flags & l3 != 0 => Some(FlowInput::new(h.addrs, None)),
        _ => None,
    }
}

/// How netback steers the packets it sends us, once the control ring set
/// it up: Toeplitz under [`RSS_KEY`] over what `flags` select, then a
/// table of `table_size` entries filled by [`table_entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxSteering {
    /// `XEN_NETIF_CTRL_HASH_TYPE_*` in force.
    pub flags: u32,
    /// Entries in netback's mapping table (0: `hash % queues`).
    pub table_size: u32,
    pub queues: u32,
}

impl RxSteering {
    /// The RX queue a received frame arrives on.
    pub fn queue(&self, frame: &[u8]) -> usize {
        let hash = backend_input(frame, self.flags).map_or(0, |i| i.hash());
        queue_of(hash, self.table_size, self.queues) as usize
    }

    /// The RX queue of an IPv4 TCP flow from `src:sport` to `dst:dport`
    /// (as the frames arrive: `src` is the peer).
    pub fn tcp4_queue(&self, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> usize {
        let hash = if self.flags & hash_type::IPV4_TCP != 0 {
            ipv4_l4_input(src, dst, sport, dport).hash()
        } else if self.flags & hash_type::IPV4 != 0 {
            let mut a = [0u8; 8];
            a[..4].copy_from_slice(&src);
            a[4..].copy_from_slice(&dst);
            FlowInput::new(&a, None).hash()
        } else {
            0
        };
        queue_of(hash, self.table_size, self.queues) as usize
    }
}

/// The TX queue of an IPv4 TCP flow we send from `src:sport` to
/// `dst:dport`, among `queues` (what [`select_queue`] picks for its frames).
pub fn tcp4_tx_queue(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, queues: usize) -> usize {
    queue_for_hash(ipv4_l4_input(src, dst, sport, dport).hash(), queues)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfront::fake::xen_netif_toeplitz_hash as netif_h_toeplitz;
    use alloc::vec;
    use alloc::vec::Vec;

    fn v4(a: &str) -> [u8; 4] {
        let v: Vec<u8> = a.split('.').map(|p| p.parse().unwrap()).collect();
        [v[0], v[1], v[2], v[3]]
    }

    fn v6(a: &str) -> [u8; 16] {
        let addr: std::net::Ipv6Addr = a.parse().unwrap();
        addr.octets()
    }

    /// Microsoft's "Verifying the RSS Hash Calculation" IPv4 table:
    /// destination, destination port, source, source port, the IPv4-only
    /// hash and the IPv4-with-TCP hash.
    const IPV4_VECTORS: [(&str, u16, &str, u16, u32, u32); 5] = [
        ("161.142.100.80", 1766, "66.9.149.187", 2794, 0x323e_8fc2, 0x51cc_c178),
        ("65.69.140.83", 4739, "199.92.111.2", 14230, 0xd718_262a, 0xc626_b0ea),
        ("12.22.207.184", 38024, "24.19.198.95", 12898, 0xd2d0_a5de, 0x5c2b_394a),
        ("209.142.163.6", 2217, "38.27.205.30", 48228, 0x8298_9176, 0xafc7_327f),
        ("202.188.127.2", 1303, "153.39.163.191", 44251, 0x5d18_09c5, 0x10e8_28a2),
    ];

    /// The same document's IPv6 table.
    const IPV6_VECTORS: [(&str, u16, &str, u16, u32, u32); 3] = [
        ("3ffe:2501:200:3::1", 1766, "3ffe:2501:200:1fff::7", 2794, 0x2cc1_8cd5, 0x4020_7d3d),
        ("ff02::1", 4739, "3ffe:501:8::260:97ff:fe40:efab", 14230, 0x0f0c_461c, 0xdde5_1bbf),
        (
            "fe80::200:f8ff:fe21:67cf",
            38024,
            "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            44251,
            0x4b61_e985,
            0x02d1_feef,
        ),
    ];

    /// An Ethernet frame: IPv4 or IPv6 (by the address lengths), `proto`,
    /// the ports, a few payload bytes.
    fn frame(src: &[u8], dst: &[u8], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        let l4 = {
            let mut l = vec![0u8; 28];
            l[..2].copy_from_slice(&sport.to_be_bytes());
            l[2..4].copy_from_slice(&dport.to_be_bytes());
            l
        };
        if src.len() == 4 {
            f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            let mut ip = vec![0u8; 20];
            ip[0] = 0x45;
            ip[9] = proto;
            ip[12..16].copy_from_slice(src);
            ip[16..20].copy_from_slice(dst);
            f.extend(ip);
        } else {
            f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            let mut ip = vec![0u8; 40];
            ip[0] = 0x60;
            ip[6] = proto;
            ip[8..24].copy_from_slice(src);
            ip[24..40].copy_from_slice(dst);
            f.extend(ip);
        }
        f.extend(l4);
        f
    }

    #[test]
    fn toeplitz_matches_microsofts_ipv4_vectors() {
        for (dst, dport, src, sport, l3, l4) in IPV4_VECTORS {
            let (s, d) = (v4(src), v4(dst));
            assert_eq!(ipv4_l4_input(s, d, sport, dport).hash(), l4, "{src}:{sport} -> {dst}");
            let mut addrs = vec![];
            addrs.extend(s);
            addrs.extend(d);
            assert_eq!(toeplitz(&RSS_KEY, &addrs), l3, "{src} -> {dst}");
            // The same through a whole frame.
            let f = frame(&s, &d, PROTO_TCP, sport, dport);
            assert_eq!(flow_hash(&f), Some(l4));
            let f = frame(&s, &d, 1, sport, dport);
            assert_eq!(flow_hash(&f), Some(l3), "ICMP: addresses only");
        }
    }

    #[test]
    fn toeplitz_matches_microsofts_ipv6_vectors() {
        for (dst, dport, src, sport, l3, l4) in IPV6_VECTORS {
            let (s, d) = (v6(src), v6(dst));
            let f = frame(&s, &d, PROTO_TCP, sport, dport);
            assert_eq!(flow_hash(&f), Some(l4), "{src}:{sport} -> {dst}");
            let f = frame(&s, &d, 58, sport, dport);
            assert_eq!(flow_hash(&f), Some(l3), "ICMPv6 {src} -> {dst}");
        }
    }

    #[test]
    fn toeplitz_agrees_with_netif_h_on_any_input_and_short_keys() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for len in 0..=36usize {
            for _ in 0..50 {
                let input: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                assert_eq!(toeplitz(&RSS_KEY, &input), netif_h_toeplitz(&RSS_KEY, &input));
                let short = &RSS_KEY[..(x % 41) as usize];
                assert_eq!(toeplitz(short, &input), netif_h_toeplitz(short, &input));
            }
        }
    }

    /// Each queue's share of `hashes` is within 10% of an even share.
    fn assert_even(what: &str, hashes: &[u32]) {
        for queues in [2usize, 3, 4, 8] {
            let mut count = vec![0usize; queues];
            for &h in hashes {
                count[queue_for_hash(h, queues)] += 1;
            }
            let even = hashes.len() as f64 / queues as f64;
            for (q, &c) in count.iter().enumerate() {
                let off = (c as f64 - even).abs() / even;
                assert!(
                    off <= 0.10,
                    "{what}: {queues} queues: queue {q} has {c} of {}: {count:?}",
                    hashes.len()
                );
            }
        }
    }

    #[test]
    fn flows_differing_only_in_an_even_port_spread_evenly() {
        let guest = v4("192.0.2.3");
        let dom0 = v4("192.0.2.1");
        // Linux's connect() picks even ephemeral ports first (32768..60999).
        let even: Vec<u16> = (0..4000).map(|k| 32768 + 2 * k).collect();
        // Our replies: guest:7 -> dom0:even port (the destination varies).
        let tx: Vec<u32> = even.iter().map(|&p| ipv4_l4_input(guest, dom0, 7, p).hash()).collect();
        assert_even("guest:7 -> dom0:even", &tx);
        // What dom0 sends: dom0:even port -> guest:7 (the source varies).
        let rx: Vec<u32> = even.iter().map(|&p| ipv4_l4_input(dom0, guest, p, 7).hash()).collect();
        assert_even("dom0:even -> guest:7", &rx);
        // Many clients of one server port, and one client to many servers.
        let many: Vec<u32> = (0..4000u32)
            .map(|k| {
                let src = [10, 1, (k >> 8) as u8, k as u8];
                ipv4_l4_input(src, guest, 40000, 80).hash()
            })
            .collect();
        assert_even("10.1.x.y:40000 -> guest:80", &many);
        // Whole frames, TCP and UDP over IPv4 and IPv6.
        for proto in [PROTO_TCP, PROTO_UDP] {
            let f4: Vec<u32> = even
                .iter()
                .map(|&p| flow_hash(&frame(&dom0, &guest, proto, p, 53)).unwrap())
                .collect();
            assert_even("IPv4 frames", &f4);
            let (a, b) = (v6("2001:db8::1"), v6("2001:db8::2"));
            let f6: Vec<u32> =
                even.iter().map(|&p| flow_hash(&frame(&a, &b, proto, 443, p)).unwrap()).collect();
            assert_even("IPv6 frames", &f6);
        }
    }

    #[test]
    fn the_old_fnv_hash_put_even_ports_on_one_queue_and_toeplitz_does_not() {
        // The bug this module fixes, kept as a reminder of what to test.
        let fnv = |bytes: &[u8]| {
            bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
        };
        let (guest, dom0) = (v4("192.0.2.3"), v4("192.0.2.1"));
        let queues: Vec<u32> = (0..64u16)
            .map(|k| fnv(ipv4_l4_input(guest, dom0, 7, 40000 + 2 * k).as_bytes()) % 2)
            .collect();
        assert!(queues.windows(2).all(|w| w[0] == w[1]), "FNV: one queue for all");
        let toeplitz: Vec<usize> =
            (0..64u16).map(|k| tcp4_tx_queue(guest, dom0, 7, 40000 + 2 * k, 2)).collect();
        assert!(toeplitz.contains(&0) && toeplitz.contains(&1));
    }

    #[test]
    fn non_ip_fragments_and_malformed_frames_take_queue_0() {
        let (a, b) = (v4("192.0.2.1"), v4("192.0.2.3"));
        // A flow that hashes to queue 1 when whole.
        let port = (1000..2000u16)
            .find(|&p| select_queue(&frame(&a, &b, PROTO_TCP, p, 7), 2) == 1)
            .unwrap();
        let good = frame(&a, &b, PROTO_TCP, port, 7);
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let mut frag = good.clone();
        frag[14 + 6] = 0x20; // more fragments
        let mut later = good.clone();
        later[14 + 7] = 0x10; // fragment offset
        let mut bad_ihl = good.clone();
        bad_ihl[14] = 0x44;
        let mut bad_version = good.clone();
        bad_version[14] = 0x65;
        let (c, d) = (v6("2001:db8::1"), v6("2001:db8::2"));
        let frag6 = frame(&c, &d, PROTO_IPV6_FRAGMENT, port, 7);
        for (what, f) in [
            ("ARP", &arp[..]),
            ("first fragment", &frag),
            ("later fragment", &later),
            ("IHL < 5", &bad_ihl),
            ("version 6 in an IPv4 frame", &bad_version),
            ("IPv6 fragment", &frag6),
            ("short", &good[..20]),
            ("empty", &[]),
        ] {
            assert_eq!(flow_hash(f), None, "{what}");
            assert_eq!(select_queue(f, 4), 0, "{what}");
        }
        assert_eq!(select_queue(&good, 2), 1);
        assert_eq!(select_queue(&good, 1), 0);
        // A TCP header cut short: hashed by addresses only.
        assert_eq!(
            flow_hash(&good[..14 + 20 + 2]),
            Some(tx_input(&frame(&a, &b, 1, 0, 0)).unwrap().hash())
        );
    }

    #[test]
    fn the_default_table_gives_every_queue_its_share() {
        for queues in 1..=8u32 {
            let mut count = vec![0u32; queues as usize];
            for i in 0..TABLE_SIZE {
                count[table_entry(i, queues) as usize] += 1;
            }
            assert!(count
                .iter()
                .all(|&c| c == TABLE_SIZE / queues || c == TABLE_SIZE / queues + 1));
        }
        assert_eq!(queue_of(0x1234_5677, 0, 3), 0x1234_5677 % 3);
        assert_eq!(queue_of(u32::MAX, 128, 1), 0);
    }

    #[test]
    fn netback_hashes_tcp_by_ports_and_the_rest_by_addresses() {
        let (a, b) = (v4("192.0.2.1"), v4("192.0.2.3"));
        let all = hash_type::IPV4 | hash_type::IPV4_TCP | hash_type::IPV6 | hash_type::IPV6_TCP;
        let tcp = frame(&a, &b, PROTO_TCP, 40000, 7);
        let udp = frame(&a, &b, PROTO_UDP, 40000, 7);
        let l3 = backend_input(&frame(&a, &b, 1, 0, 0), all).unwrap();
        assert_eq!(backend_input(&tcp, all), Some(ipv4_l4_input(a, b, 40000, 7)));
        assert_eq!(backend_input(&udp, all), Some(l3), "no UDP type in netif.h");
        assert_eq!(backend_input(&tcp, hash_type::IPV4), Some(l3));
        assert_eq!(backend_input(&tcp, hash_type::IPV6_TCP), None);
        let mut frag = tcp.clone();
        frag[14 + 6] = 0x20;
        assert_eq!(backend_input(&frag, all), Some(l3), "a TCP fragment: addresses");
        let s = RxSteering { flags: all, table_size: TABLE_SIZE, queues: 2 };
        assert_eq!(s.queue(&tcp), s.tcp4_queue(a, b, 40000, 7));
        assert_eq!(s.queue(&tcp), tcp4_tx_queue(a, b, 40000, 7, 2), "same table as TX");
        let mut arp = tcp.clone();
        arp[12] = 8;
        arp[13] = 6;
        assert_eq!(s.queue(&arp), 0, "no hash: entry 0");
    }
}
