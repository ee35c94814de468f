//! netif entries as ring slots: each struct encoded into, and decoded from,
//! the 32-bit words of a private copy of its slot (little-endian, C layout
//! checked by `hypercall/tests/abi_layout.rs`).

use crate::ring::RingEntry;
use hypercall::abi::netif::{
    NetifCtrlRequest, NetifCtrlResponse, NetifExtraInfo, NetifRxRequest, NetifRxResponse,
    NetifTxRequest, NetifTxResponse,
};

fn pair(lo: u16, hi: u16) -> u32 {
    u32::from(lo) | (u32::from(hi) << 16)
}

fn lo(w: u32) -> u16 {
    w as u16
}

fn hi(w: u32) -> u16 {
    (w >> 16) as u16
}

impl RingEntry for NetifTxRequest {
    const BYTES: usize = 12;
    fn encode(&self, out: &mut [u32]) {
        out[0] = self.gref;
        out[1] = pair(self.offset, self.flags);
        out[2] = pair(self.id, self.size);
    }
    fn decode(w: &[u32]) -> Self {
        NetifTxRequest {
            gref: w[0],
            offset: lo(w[1]),
            flags: hi(w[1]),
            id: lo(w[2]),
            size: hi(w[2]),
        }
    }
}

impl RingEntry for NetifTxResponse {
    const BYTES: usize = 4;
    fn encode(&self, out: &mut [u32]) {
        out[0] = pair(self.id, self.status as u16);
    }
    fn decode(w: &[u32]) -> Self {
        NetifTxResponse { id: lo(w[0]), status: hi(w[0]) as i16 }
    }
}

impl RingEntry for NetifRxRequest {
    const BYTES: usize = 8;
    fn encode(&self, out: &mut [u32]) {
        out[0] = pair(self.id, self.pad);
        out[1] = self.gref;
    }
    fn decode(w: &[u32]) -> Self {
        NetifRxRequest { id: lo(w[0]), pad: hi(w[0]), gref: w[1] }
    }
}

impl RingEntry for NetifRxResponse {
    const BYTES: usize = 8;
    fn encode(&self, out: &mut [u32]) {
        out[0] = pair(self.id, self.offset);
        out[1] = pair(self.flags, self.status as u16);
    }
    fn decode(w: &[u32]) -> Self {
        NetifRxResponse { id: lo(w[0]), offset: hi(w[0]), flags: lo(w[1]), status: hi(w[1]) as i16 }
    }
}

impl RingEntry for NetifCtrlRequest {
    const BYTES: usize = 16;
    fn encode(&self, out: &mut [u32]) {
        out[0] = pair(self.id, self.kind);
        out[1..4].copy_from_slice(&self.data);
    }
    fn decode(w: &[u32]) -> Self {
        NetifCtrlRequest { id: lo(w[0]), kind: hi(w[0]), data: [w[1], w[2], w[3]] }
    }
}

impl RingEntry for NetifCtrlResponse {
    const BYTES: usize = 12;
    fn encode(&self, out: &mut [u32]) {
        out[0] = pair(self.id, self.kind);
        out[1] = self.status;
        out[2] = self.data;
    }
    fn decode(w: &[u32]) -> Self {
        NetifCtrlResponse { id: lo(w[0]), kind: hi(w[0]), status: w[1], data: w[2] }
    }
}

/// An RX slot read as an extra-info entry: `netif_extra_info` overlays
/// `netif_rx_response` byte for byte.
pub fn extra_from_rx(r: &NetifRxResponse) -> NetifExtraInfo {
    NetifExtraInfo {
        kind: r.id as u8,
        flags: (r.id >> 8) as u8,
        u: [r.offset, r.flags, r.status as u16],
    }
}

/// The inverse of [`extra_from_rx`], for fake backends.
pub fn extra_as_rx(e: &NetifExtraInfo) -> NetifRxResponse {
    NetifRxResponse {
        id: u16::from(e.kind) | (u16::from(e.flags) << 8),
        offset: e.u[0],
        flags: e.u[1],
        status: e.u[2] as i16,
    }
}

/// A TX slot holding an extra-info entry (`netif_extra_info` overlays the
/// first 8 bytes of `netif_tx_request`; the rest is padding).
pub fn extra_as_tx(e: &NetifExtraInfo) -> NetifTxRequest {
    NetifTxRequest {
        gref: u32::from(e.kind) | (u32::from(e.flags) << 8) | (u32::from(e.u[0]) << 16),
        offset: e.u[1],
        flags: e.u[2],
        id: 0,
        size: 0,
    }
}

/// The inverse of [`extra_as_tx`], for fake backends.
pub fn extra_from_tx(t: &NetifTxRequest) -> NetifExtraInfo {
    NetifExtraInfo {
        kind: t.gref as u8,
        flags: (t.gref >> 8) as u8,
        u: [(t.gref >> 16) as u16, t.offset, t.flags],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let t = NetifTxRequest { gref: 0x1234_5678, offset: 7, flags: 5, id: 300, size: 1514 };
        let mut w = [0u32; 3];
        t.encode(&mut w);
        assert_eq!(NetifTxRequest::decode(&w), t);
        let r = NetifRxResponse { id: 9, offset: 2, flags: 0x14, status: -2 };
        let mut w = [0u32; 2];
        r.encode(&mut w);
        assert_eq!(NetifRxResponse::decode(&w), r);
        let c = NetifCtrlRequest { id: 3, kind: 6, data: [0x1234, 128, 0] };
        let mut w = [0u32; 4];
        c.encode(&mut w);
        assert_eq!(NetifCtrlRequest::decode(&w), c);
        let c = NetifCtrlResponse { id: 3, kind: 6, status: 2, data: 0xdead_beef };
        let mut w = [0u32; 3];
        c.encode(&mut w);
        assert_eq!(NetifCtrlResponse::decode(&w), c);
        let e = NetifExtraInfo { kind: 1, flags: 1, u: [1448, 1, 0] };
        assert_eq!(extra_from_rx(&extra_as_rx(&e)), e);
        assert_eq!(extra_from_tx(&extra_as_tx(&e)), e);
        // Byte for byte: type 1 (GSO), flags 0, gso size 1448 at byte 2.
        let mut w = [0u32; 3];
        extra_as_tx(&NetifExtraInfo { kind: 1, flags: 0, u: [1448, 1, 0] }).encode(&mut w);
        assert_eq!(w, [1 | (1448 << 16), 1, 0]);
    }
}
