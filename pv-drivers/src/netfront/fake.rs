//! A fake netback for host tests, on the pretend hypervisor every
//! driver's fake shares ([`crate::env::fake`]): the backend looks the
//! frontend's grants up there and drives the other end of both rings (and
//! of the control ring).

use super::buf::{read_bytes, write_bytes};
use super::wire::{extra_as_rx, extra_from_tx};
use crate::env::fake::{FakeEnv, FakePages, Granted, SharedXen};
use crate::ring::BackRing;
use hypercall::abi::grant_table::GrantRef;
use hypercall::abi::netif::{
    ctrl_type, hash_algorithm, hash_type, rsp, rxf, txf, NetifCtrlRequest, NetifCtrlResponse,
    NetifExtraInfo, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse,
    EXTRA_FLAG_MORE,
};

/// The driver's side: netfront needs nothing beyond every driver's
/// environment.
pub type FakeHost = FakeEnv;
/// Pages netfront gets from it.
pub type Page = FakePages;

/// The page `gref` grants on `xen`, which must be granted.
fn granted(xen: &SharedXen, gref: GrantRef) -> Granted {
    xen.borrow().page(gref).expect("a granted page")
}

/// The backend's end of both rings.
pub struct FakeBackend {
    xen: SharedXen,
    pub rx: BackRing<'static, NetifRxRequest, NetifRxResponse>,
    pub tx: BackRing<'static, NetifTxRequest, NetifTxResponse>,
    /// Events netback would have sent for TX answers (`rsp_event` asked
    /// for them).
    pub tx_events: u32,
    /// Events netback would have sent for RX packets ([`FakeBackend::deliver`]).
    pub rx_events: u32,
}

impl FakeBackend {
    pub fn attach(host: &FakeHost, tx_ref: GrantRef, rx_ref: GrantRef) -> Self {
        FakeBackend {
            xen: host.xen.clone(),
            tx: BackRing::attach(granted(&host.xen, tx_ref).leak()),
            rx: BackRing::attach(granted(&host.xen, rx_ref).leak()),
            tx_events: 0,
            rx_events: 0,
        }
    }

    fn page(&self, gref: u32) -> Granted {
        granted(&self.xen, GrantRef(gref))
    }

    /// Copies `packet` into posted buffers, `chunk` bytes a slot, with
    /// extra-info slots after the first; false if too few were posted
    /// (nothing is then published).
    pub fn deliver(
        &mut self,
        packet: &[u8],
        chunk: usize,
        extras: &[NetifExtraInfo],
        flags: u16,
    ) -> bool {
        let chunks: Vec<&[u8]> =
            if packet.is_empty() { vec![&[][..]] } else { packet.chunks(chunk).collect() };
        for (k, c) in chunks.iter().enumerate() {
            let Some(req) = self.rx.take_request() else { return false };
            write_bytes(self.page(req.gref).words(), 0, c).unwrap();
            let mut f = if k + 1 < chunks.len() { rxf::MORE_DATA } else { 0 };
            if k == 0 {
                f |= flags;
                if !extras.is_empty() {
                    f |= rxf::EXTRA_INFO;
                }
            }
            self.rx.push_response(&NetifRxResponse {
                id: req.id,
                offset: 0,
                flags: f,
                status: c.len() as i16,
            });
            if k == 0 {
                for e in extras {
                    let Some(_) = self.rx.take_request() else { return false };
                    self.rx.push_response(&extra_as_rx(e));
                }
            }
        }
        if self.rx.publish() {
            self.rx_events += 1;
        }
        true
    }

    /// Answers the next posted buffer with `make(request)` as is.
    pub fn raw_rx(&mut self, make: impl FnOnce(&NetifRxRequest) -> NetifRxResponse) -> bool {
        let Some(req) = self.rx.take_request() else { return false };
        self.rx.push_response(&make(&req));
        true
    }

    /// Takes every queued TX packet (reassembled) and answers each slot.
    pub fn take_tx(&mut self) -> Vec<Vec<u8>> {
        self.take_tx_full().into_iter().map(|p| p.data).collect()
    }

    /// As [`FakeBackend::take_tx`], with each packet's first-slot flags and
    /// extra-info slots (answered `NETIF_RSP_NULL`, as netback does).
    pub fn take_tx_full(&mut self) -> Vec<TxSeen> {
        let mut out = Vec::new();
        let mut cur: Option<(TxSeen, usize)> = None;
        let mut extra_next = false;
        while let Some(req) = self.tx.take_request() {
            if extra_next {
                let e = extra_from_tx(&req);
                extra_next = e.flags & EXTRA_FLAG_MORE != 0;
                cur.as_mut().expect("an extra follows a first slot").0.extras.push(e);
                self.tx.push_response(&NetifTxResponse { id: 0, status: rsp::NULL });
                if !extra_next && cur.as_ref().is_some_and(|c| c.0.done) {
                    out.push(cur.take().unwrap().0);
                }
                continue;
            }
            let page = self.page(req.gref);
            let (mut seen, total) = cur.take().unwrap_or_else(|| {
                let seen = TxSeen { flags: req.flags, ..TxSeen::default() };
                (seen, usize::from(req.size))
            });
            let first = seen.data.is_empty();
            let this = if first && req.flags & txf::MORE_DATA == 0 {
                total
            } else if first {
                // The first slot: its size is the packet's; its data is
                // whatever the later slots do not carry (here a full page).
                total.min(4096)
            } else {
                usize::from(req.size)
            };
            let at = seen.data.len();
            seen.data.resize(at + this, 0);
            read_bytes(page.words(), usize::from(req.offset), &mut seen.data[at..]).unwrap();
            self.tx.push_response(&NetifTxResponse { id: req.id, status: rsp::OKAY });
            extra_next = first && req.flags & txf::EXTRA_INFO != 0;
            seen.done = req.flags & txf::MORE_DATA == 0;
            if seen.done && !extra_next {
                out.push(seen);
            } else {
                cur = Some((seen, total));
            }
        }
        if self.tx.publish() {
            self.tx_events += 1;
        }
        out
    }
}

/// A TX packet as the fake backend took it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxSeen {
    pub data: Vec<u8>,
    /// The first slot's `NETTXF_*` flags.
    pub flags: u16,
    pub extras: Vec<NetifExtraInfo>,
    done: bool,
}

/// How the fake control backend behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlMode {
    /// As Linux's netback (`hash.c`, `process_ctrl_request`).
    Honest,
    /// Answers requests of this type with this status.
    Refuse(u16, u32),
    /// Answers with a wrong id.
    WrongId,
    /// Never answers.
    Silent,
    /// Publishes a producer index far past what was asked.
    WildProducer,
    /// Answers `GET_HASH_MAPPING_SIZE` with this instead of 128.
    MappingSize(u32),
    /// Answers `GET_HASH_FLAGS` with this instead of all four types.
    Flags(u32),
}

/// The backend's end of the control ring: a model of Linux's netback
/// (`drivers/net/xen-netback/hash.c` and `interface.c`) with its own
/// Toeplitz (netif.h's reference code) and packet parsing, so a test can
/// ask which queue netback would pick for a packet.
pub struct FakeCtrl {
    xen: SharedXen,
    ring: BackRing<'static, NetifCtrlRequest, NetifCtrlResponse>,
    pub mode: CtrlMode,
    pub num_queues: u32,
    pub alg: u32,
    pub flags: u32,
    pub key: [u8; 40],
    mapping: [[u32; 128]; 2],
    sel: usize,
    pub size: u32,
    /// Request types seen, in order.
    pub seen: Vec<u16>,
}

impl FakeCtrl {
    pub fn attach(host: &FakeHost, ring_ref: GrantRef, num_queues: u32) -> Self {
        FakeCtrl {
            xen: host.xen.clone(),
            ring: BackRing::attach(granted(&host.xen, ring_ref).leak()),
            mode: CtrlMode::Honest,
            num_queues,
            alg: hash_algorithm::NONE,
            flags: 0,
            key: [0; 40],
            mapping: [[0; 128]; 2],
            sel: 0,
            size: 0,
            seen: Vec::new(),
        }
    }

    /// A grant copy from `gref` (offset 0): `None` as `GNTST_*` errors.
    fn copy_from(&self, gref: u32, len: usize) -> Option<Vec<u8>> {
        let page = self.xen.borrow().page(GrantRef(gref))?;
        let mut out = vec![0u8; len];
        read_bytes(page.words(), 0, &mut out).ok()?;
        Some(out)
    }

    fn process(&mut self, req: &NetifCtrlRequest) -> (u32, u32) {
        use hypercall::abi::netif::ctrl_status as st;
        let all = hash_type::IPV4 | hash_type::IPV4_TCP | hash_type::IPV6 | hash_type::IPV6_TCP;
        let d = req.data;
        match req.kind {
            ctrl_type::SET_HASH_ALGORITHM => match d[0] {
                hash_algorithm::NONE | hash_algorithm::TOEPLITZ => {
                    self.alg = d[0];
                    (st::SUCCESS, 0)
                }
                _ => (st::INVALID_PARAMETER, 0),
            },
            ctrl_type::GET_HASH_FLAGS if self.alg == hash_algorithm::NONE => (st::NOT_SUPPORTED, 0),
            ctrl_type::GET_HASH_FLAGS => match self.mode {
                CtrlMode::Flags(f) => (st::SUCCESS, f),
                _ => (st::SUCCESS, all),
            },
            ctrl_type::SET_HASH_FLAGS => {
                if d[0] & !all != 0 || self.alg == hash_algorithm::NONE {
                    return (st::INVALID_PARAMETER, 0);
                }
                self.flags = d[0];
                (st::SUCCESS, 0)
            }
            ctrl_type::SET_HASH_KEY => {
                let len = d[1] as usize;
                if len > 40 {
                    return (st::INVALID_PARAMETER, 0);
                }
                let Some(bytes) = (if len == 0 { Some(vec![]) } else { self.copy_from(d[0], len) })
                else {
                    return (st::INVALID_PARAMETER, 0);
                };
                self.key = [0; 40];
                self.key[..len].copy_from_slice(&bytes);
                (st::SUCCESS, 0)
            }
            ctrl_type::GET_HASH_MAPPING_SIZE => match self.mode {
                CtrlMode::MappingSize(n) => (st::SUCCESS, n),
                _ => (st::SUCCESS, 128),
            },
            ctrl_type::SET_HASH_MAPPING_SIZE => {
                if d[0] > 128 {
                    return (st::INVALID_PARAMETER, 0);
                }
                self.size = d[0];
                self.mapping[self.sel] = [0; 128];
                (st::SUCCESS, 0)
            }
            ctrl_type::SET_HASH_MAPPING => {
                let (gref, len, off) = (d[0], d[1], d[2]);
                match off.checked_add(len) {
                    Some(end) if end <= self.size && len <= 1024 => {}
                    _ => return (st::INVALID_PARAMETER, 0),
                }
                let Some(bytes) = self.copy_from(gref, len as usize * 4) else {
                    return (st::INVALID_PARAMETER, 0);
                };
                let mut next = self.mapping[self.sel];
                for (i, e) in bytes.chunks_exact(4).enumerate() {
                    next[off as usize + i] = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                }
                if next[off as usize..(off + len) as usize].iter().any(|&q| q >= self.num_queues) {
                    return (st::INVALID_PARAMETER, 0);
                }
                self.mapping[1 - self.sel] = next;
                self.sel = 1 - self.sel;
                (st::SUCCESS, 0)
            }
            _ => (st::NOT_SUPPORTED, 0),
        }
    }

    /// Answers every queued request; the number answered.
    pub fn serve(&mut self) -> usize {
        let mut n = 0;
        while let Some(req) = self.ring.take_request() {
            self.seen.push(req.kind);
            let (status, data) = match self.mode {
                CtrlMode::Silent => continue,
                CtrlMode::Refuse(kind, status) if kind == req.kind => (status, 0),
                _ => self.process(&req),
            };
            let id = if self.mode == CtrlMode::WrongId { req.id ^ 0x55 } else { req.id };
            self.ring.push_response(&NetifCtrlResponse { id, kind: req.kind, status, data });
            n += 1;
        }
        if self.mode == CtrlMode::WildProducer {
            self.ring.force_rsp_prod(0x8000_0000);
        } else {
            self.ring.publish();
        }
        n
    }

    /// The queue netback sends `frame` on, as `xenvif_select_queue`:
    /// `None` while no hash algorithm is set (netback's own choice).
    pub fn select_queue(&self, frame: &[u8]) -> Option<u32> {
        if self.alg == hash_algorithm::NONE {
            return None;
        }
        let hash = self.skb_hash(frame);
        Some(if self.size == 0 {
            hash % self.num_queues
        } else {
            self.mapping[self.sel][(hash % self.size) as usize]
        })
    }

    /// `xenvif_set_skb_hash`: 0 when nothing is hashed.
    fn skb_hash(&self, f: &[u8]) -> u32 {
        if f.len() < 14 {
            return 0;
        }
        let ip = &f[14..];
        let (v6, l3, l4) = match (f[12], f[13]) {
            (0x08, 0x00) => (false, hash_type::IPV4, hash_type::IPV4_TCP),
            (0x86, 0xdd) => (true, hash_type::IPV6, hash_type::IPV6_TCP),
            _ => return 0,
        };
        if self.flags & (l3 | l4) == 0 {
            return 0;
        }
        // The flow dissector's view: addresses, protocol, fragment, ports.
        let (addrs, tcp_ports) = if v6 {
            if ip.len() < 40 {
                return 0;
            }
            let tcp = ip[6] == 6 && ip.len() >= 44;
            (&ip[8..40], tcp.then(|| &ip[40..44]))
        } else {
            if ip.len() < 20 {
                return 0;
            }
            let ihl = usize::from(ip[0] & 15) * 4;
            let frag = (u16::from(ip[6]) << 8 | u16::from(ip[7])) & 0x3fff != 0;
            let tcp = ip[9] == 6 && !frag && ip.len() >= ihl + 4;
            (&ip[12..20], tcp.then(|| &ip[ihl..ihl + 4]))
        };
        let mut data = addrs.to_vec();
        match tcp_ports {
            Some(p) if self.flags & l4 != 0 => data.extend_from_slice(p),
            _ if self.flags & l3 != 0 => {}
            _ => return 0,
        }
        xen_netif_toeplitz_hash(&self.key, &data)
    }
}

/// netif.h's `xen_netif_toeplitz_hash`, as written there.
pub fn xen_netif_toeplitz_hash(key: &[u8], buf: &[u8]) -> u32 {
    let mut prefix: u64 = 0;
    let mut keyi = 0;
    while keyi < 8 {
        prefix = (prefix << 8) | u64::from(key.get(keyi).copied().unwrap_or(0));
        keyi += 1;
    }
    let mut hash: u64 = 0;
    for &b in buf {
        let mut byte = b;
        for _ in 0..8 {
            if byte & 0x80 != 0 {
                hash ^= prefix;
            }
            prefix <<= 1;
            byte <<= 1;
        }
        prefix |= u64::from(key.get(keyi).copied().unwrap_or(0));
        keyi += 1;
    }
    (hash >> 32) as u32
}
