//! The PV network protocol (`xen/include/public/io/netif.h`): TX and RX
//! ring entries, the extra-info slots that follow a flagged entry, and the
//! flag bits. The ring itself is `io/ring.h` (see `pv-drivers::ring`).
//!
//! The TX and RX flag bits differ on purpose: `NETTXF_csum_blank` is bit 0
//! but `NETRXF_data_validated` is bit 0. Keep them in their own modules.

use super::assert_layout;

/// `XEN_NETIF_NR_SLOTS_MIN`: slots a backend must accept for one packet.
pub const NR_SLOTS_MIN: u32 = 18;
/// `XEN_NETIF_MAX_TX_SIZE`: the largest packet one TX request chain carries.
pub const MAX_TX_SIZE: u32 = 0xFFFF;

/// `NETTXF_*`: flags of a TX request.
pub mod txf {
    /// The protocol checksum is blank: the backend (or receiver) fills it.
    pub const CSUM_BLANK: u16 = 1 << 0;
    /// The checksum has been validated.
    pub const DATA_VALIDATED: u16 = 1 << 1;
    /// More slots of this packet follow.
    pub const MORE_DATA: u16 = 1 << 2;
    /// An extra-info slot follows this request.
    pub const EXTRA_INFO: u16 = 1 << 3;
}

/// `NETRXF_*`: flags of an RX response. Bit 0 means something else than on TX.
pub mod rxf {
    /// The checksum was validated by the sender (or the backend).
    pub const DATA_VALIDATED: u16 = 1 << 0;
    /// The protocol checksum is blank.
    pub const CSUM_BLANK: u16 = 1 << 1;
    /// More slots of this packet follow.
    pub const MORE_DATA: u16 = 1 << 2;
    /// An extra-info slot follows this response.
    pub const EXTRA_INFO: u16 = 1 << 3;
    /// The slot holds a GSO prefix descriptor (old backends), not data.
    pub const GSO_PREFIX: u16 = 1 << 4;
}

/// `XEN_NETIF_EXTRA_TYPE_*`.
pub mod extra_type {
    pub const NONE: u8 = 0;
    pub const GSO: u8 = 1;
    pub const MCAST_ADD: u8 = 2;
    pub const MCAST_DEL: u8 = 3;
    pub const HASH: u8 = 4;
    pub const MAX: u8 = 5;
}

/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows.
pub const EXTRA_FLAG_MORE: u8 = 1 << 0;

/// `XEN_NETIF_GSO_TYPE_*`.
pub mod gso_type {
    pub const NONE: u8 = 0;
    pub const TCPV4: u8 = 1;
    pub const TCPV6: u8 = 2;
}

/// `NETIF_RSP_*`: TX response status (RX uses a length or these errors).
pub mod rsp {
    pub const DROPPED: i16 = -2;
    pub const ERROR: i16 = -1;
    pub const OKAY: i16 = 0;
    /// No response: used for the slot of an extra-info request.
    pub const NULL: i16 = 1;
}

/// `struct netif_tx_request`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxRequest {
    pub gref: u32,
    /// Offset of the data within the granted page.
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    /// The first slot: the whole packet's size; later slots: their own.
    pub size: u16,
}
assert_layout!(NetifTxRequest, size = 12, gref = 0, offset = 4, flags = 6, id = 8, size = 10);

/// `struct netif_tx_response`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxResponse {
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}
assert_layout!(NetifTxResponse, size = 4, id = 0, status = 2);

/// `struct netif_rx_request`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxRequest {
    /// Echoed in the response.
    pub id: u16,
    pub pad: u16,
    /// The page the backend copies the packet into.
    pub gref: u32,
}
assert_layout!(NetifRxRequest, size = 8, id = 0, pad = 2, gref = 4);

/// `struct netif_rx_response`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxResponse {
    pub id: u16,
    /// Where the data starts in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Bytes received (>= 0) or a `NETIF_RSP_*` error (< 0).
    pub status: i16,
}
assert_layout!(NetifRxResponse, size = 8, id = 0, offset = 2, flags = 4, status = 6);

/// The `gso` member of `netif_extra_info.u`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraGso {
    /// Maximum payload of each segment.
    pub size: u16,
    /// `XEN_NETIF_GSO_TYPE_*`.
    pub kind: u8,
    pub pad: u8,
    pub features: u16,
}
assert_layout!(NetifExtraGso, size = 6, size = 0, kind = 2, pad = 3, features = 4);

/// `struct netif_extra_info`, with the union as its widest member (`pad`).
/// It overlays a TX request or an RX response slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    pub kind: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// The union `u`, as three 16-bit words.
    pub u: [u16; 3],
}
assert_layout!(NetifExtraInfo, size = 8, kind = 0, flags = 1, u = 2);

// The control ring (`netif.h`, "Control ring" and "Control messages"):
// a third ring, one page, on which the frontend sets how the backend
// spreads the packets it sends to the guest (RX) over the queues.

/// Slots of a one-page control ring: 16-byte slots (the request, the
/// larger entry) after the 64-byte header, rounded down to a power of two
/// (`__CONST_RING_SIZE(xen_netif_ctrl, 4096)`).
pub const CTRL_RING_PAGE_SLOTS: u32 = 128;

/// `XEN_NETIF_CTRL_TYPE_*`: what a control request asks.
pub mod ctrl_type {
    pub const INVALID: u16 = 0;
    pub const GET_HASH_FLAGS: u16 = 1;
    pub const SET_HASH_FLAGS: u16 = 2;
    pub const SET_HASH_KEY: u16 = 3;
    pub const GET_HASH_MAPPING_SIZE: u16 = 4;
    pub const SET_HASH_MAPPING_SIZE: u16 = 5;
    pub const SET_HASH_MAPPING: u16 = 6;
    pub const SET_HASH_ALGORITHM: u16 = 7;
    pub const GET_GREF_MAPPING_SIZE: u16 = 8;
    pub const ADD_GREF_MAPPING: u16 = 9;
    pub const DEL_GREF_MAPPING: u16 = 10;
}

/// `XEN_NETIF_CTRL_STATUS_*`: a control response's status.
pub mod ctrl_status {
    pub const SUCCESS: u32 = 0;
    pub const NOT_SUPPORTED: u32 = 1;
    pub const INVALID_PARAMETER: u32 = 2;
    pub const BUFFER_OVERFLOW: u32 = 3;
}

/// `XEN_NETIF_CTRL_HASH_TYPE_*`: what the backend hashes (flags).
pub mod hash_type {
    /// Source and destination IPv4 addresses (8 bytes).
    pub const IPV4: u32 = 1 << 0;
    /// IPv4 addresses, then TCP source and destination ports (12 bytes).
    pub const IPV4_TCP: u32 = 1 << 1;
    /// Source and destination IPv6 addresses (32 bytes).
    pub const IPV6: u32 = 1 << 2;
    /// IPv6 addresses, then TCP ports (36 bytes).
    pub const IPV6_TCP: u32 = 1 << 3;
}

/// `XEN_NETIF_CTRL_HASH_ALGORITHM_*`.
pub mod hash_algorithm {
    /// No hashing: the backend steers as it likes (the default).
    pub const NONE: u32 = 0;
    /// Toeplitz with a key set by `SET_HASH_KEY`.
    pub const TOEPLITZ: u32 = 1;
}

/// `struct xen_netif_ctrl_request`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifCtrlRequest {
    /// Echoed in the response.
    pub id: u16,
    /// `XEN_NETIF_CTRL_TYPE_*`.
    pub kind: u16,
    pub data: [u32; 3],
}
assert_layout!(NetifCtrlRequest, size = 16, id = 0, kind = 2, data = 4);

/// `struct xen_netif_ctrl_response`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifCtrlResponse {
    /// The request's id.
    pub id: u16,
    /// The request's type.
    pub kind: u16,
    /// `XEN_NETIF_CTRL_STATUS_*`.
    pub status: u32,
    pub data: u32,
}
assert_layout!(NetifCtrlResponse, size = 12, id = 0, kind = 2, status = 4, data = 8);
