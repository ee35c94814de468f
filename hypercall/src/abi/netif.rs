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
