//! Message framing (`xs_wire.h`): a 16-byte `struct xsd_sockmsg` header
//! followed by `len` payload bytes, in both directions.

use crate::errors::{Error, Malformed};
use crate::types::{ReqId, TxId};
use alloc::vec::Vec;
use hypercall::abi::xenstore::{msg_type as raw, PAYLOAD_MAX};

/// Bytes in a header.
pub const HEADER_LEN: usize = core::mem::size_of::<hypercall::abi::xenstore::XsdSockmsg>();
/// The longest message: a header and a full payload.
pub const MESSAGE_MAX: usize = HEADER_LEN + PAYLOAD_MAX;

/// The `XS_*` message types a guest sends or receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MsgType {
    Control = raw::CONTROL,
    Directory = raw::DIRECTORY,
    Read = raw::READ,
    GetPerms = raw::GET_PERMS,
    Watch = raw::WATCH,
    Unwatch = raw::UNWATCH,
    TransactionStart = raw::TRANSACTION_START,
    TransactionEnd = raw::TRANSACTION_END,
    Introduce = raw::INTRODUCE,
    Release = raw::RELEASE,
    GetDomainPath = raw::GET_DOMAIN_PATH,
    Write = raw::WRITE,
    Mkdir = raw::MKDIR,
    Rm = raw::RM,
    SetPerms = raw::SET_PERMS,
    WatchEvent = raw::WATCH_EVENT,
    Error = raw::ERROR,
    IsDomainIntroduced = raw::IS_DOMAIN_INTRODUCED,
    Resume = raw::RESUME,
    SetTarget = raw::SET_TARGET,
    ResetWatches = raw::RESET_WATCHES,
    DirectoryPart = raw::DIRECTORY_PART,
}

impl MsgType {
    /// Every type, for tables and tests.
    pub const ALL: [MsgType; 22] = [
        MsgType::Control,
        MsgType::Directory,
        MsgType::Read,
        MsgType::GetPerms,
        MsgType::Watch,
        MsgType::Unwatch,
        MsgType::TransactionStart,
        MsgType::TransactionEnd,
        MsgType::Introduce,
        MsgType::Release,
        MsgType::GetDomainPath,
        MsgType::Write,
        MsgType::Mkdir,
        MsgType::Rm,
        MsgType::SetPerms,
        MsgType::WatchEvent,
        MsgType::Error,
        MsgType::IsDomainIntroduced,
        MsgType::Resume,
        MsgType::SetTarget,
        MsgType::ResetWatches,
        MsgType::DirectoryPart,
    ];

    /// The type with wire value `v`, if any.
    pub fn from_raw(v: u32) -> Option<MsgType> {
        MsgType::ALL.into_iter().find(|t| *t as u32 == v)
    }
}

/// A decoded `struct xsd_sockmsg`. The type stays raw so that a message of
/// a type this crate does not know can still be framed and skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub ty: u32,
    pub req_id: ReqId,
    pub tx_id: TxId,
    pub len: u32,
}

impl Header {
    /// The header's bytes (the ABI is little-endian x86).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.ty.to_le_bytes());
        b[4..8].copy_from_slice(&self.req_id.0.to_le_bytes());
        b[8..12].copy_from_slice(&self.tx_id.0.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Decodes a header, refusing a `len` no xenstored may send: after such
    /// a header the stream cannot be trusted to be framed.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Header, Malformed> {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let h = Header { ty: word(0), req_id: ReqId(word(4)), tx_id: TxId(word(8)), len: word(12) };
        if h.len as usize > PAYLOAD_MAX {
            return Err(Malformed::PayloadTooLong { len: h.len });
        }
        Ok(h)
    }

    /// The message type, if it is one this crate knows.
    pub fn msg_type(&self) -> Option<MsgType> {
        MsgType::from_raw(self.ty)
    }
}

/// One whole message, copied out of the ring: parsing never looks at shared
/// memory the other side could change meanwhile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payload: Vec<u8>,
}

impl Message {
    /// A message to send, refusing a payload over `XENSTORE_PAYLOAD_MAX`.
    pub fn new(
        ty: MsgType,
        req_id: ReqId,
        tx_id: TxId,
        payload: Vec<u8>,
    ) -> Result<Message, Error> {
        if payload.len() > PAYLOAD_MAX {
            return Err(Error::PayloadTooLong { len: payload.len(), max: PAYLOAD_MAX });
        }
        Ok(Message {
            header: Header { ty: ty as u32, req_id, tx_id, len: payload.len() as u32 },
            payload,
        })
    }

    /// Header and payload, ready for the ring.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER_LEN + self.payload.len());
        v.extend_from_slice(&self.header.encode());
        v.extend_from_slice(&self.payload);
        v
    }

    /// Splits one message off the front of `bytes`: `Ok(None)` if more
    /// bytes are needed, else the message and how many bytes it used.
    pub fn decode(bytes: &[u8]) -> Result<Option<(Message, usize)>, Malformed> {
        let Some(head) = bytes.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = Header::decode(head)?;
        let end = HEADER_LEN + header.len as usize;
        let Some(payload) = bytes.get(HEADER_LEN..end) else {
            return Ok(None);
        };
        Ok(Some((Message { header, payload: payload.to_vec() }, end)))
    }

    /// Decodes exactly one message that must fill `bytes`: for callers that
    /// hold a whole datagram, where a short one is [`Malformed::Truncated`].
    pub fn decode_exact(bytes: &[u8]) -> Result<Message, Malformed> {
        let need = match Message::decode(bytes)? {
            Some((m, used)) if used == bytes.len() => return Ok(m),
            Some((_, used)) => return Err(Malformed::TrailingBytes { extra: bytes.len() - used }),
            None => match bytes.first_chunk::<HEADER_LEN>() {
                Some(h) => HEADER_LEN + Header::decode(h)?.len as usize,
                None => HEADER_LEN,
            },
        };
        Err(Malformed::Truncated { need, have: bytes.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn header_round_trips_little_endian() {
        let h = Header {
            ty: MsgType::Write as u32,
            req_id: ReqId(0x0102_0304),
            tx_id: TxId(7),
            len: 9,
        };
        let b = h.encode();
        assert_eq!(&b[..8], &[11, 0, 0, 0, 4, 3, 2, 1]);
        assert_eq!(Header::decode(&b), Ok(h));
    }

    #[test]
    fn oversized_len_is_refused() {
        let mut b = [0u8; HEADER_LEN];
        b[12..16].copy_from_slice(&(PAYLOAD_MAX as u32 + 1).to_le_bytes());
        assert_eq!(
            Header::decode(&b),
            Err(Malformed::PayloadTooLong { len: PAYLOAD_MAX as u32 + 1 })
        );
        b[12..16].copy_from_slice(&(PAYLOAD_MAX as u32).to_le_bytes());
        assert!(Header::decode(&b).is_ok());
    }

    #[test]
    fn decode_waits_for_whole_message() {
        let m = Message::new(MsgType::Read, ReqId(1), TxId(0), b"abc".to_vec()).unwrap();
        let bytes = m.encode();
        for cut in 0..bytes.len() {
            assert_eq!(Message::decode(&bytes[..cut]), Ok(None), "cut at {cut}");
            assert!(matches!(
                Message::decode_exact(&bytes[..cut]),
                Err(Malformed::Truncated { .. })
            ));
        }
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        assert_eq!(Message::decode(&two), Ok(Some((m.clone(), bytes.len()))));
        assert_eq!(Message::decode_exact(&bytes), Ok(m));
        assert_eq!(
            Message::decode_exact(&two),
            Err(Malformed::TrailingBytes { extra: bytes.len() })
        );
    }

    #[test]
    fn new_refuses_oversized_payload() {
        assert_eq!(
            Message::new(MsgType::Write, ReqId(0), TxId(0), vec![0; PAYLOAD_MAX + 1]),
            Err(Error::PayloadTooLong { len: PAYLOAD_MAX + 1, max: PAYLOAD_MAX })
        );
    }

    #[test]
    fn msg_types_match_raw_values() {
        for t in MsgType::ALL {
            assert_eq!(MsgType::from_raw(t as u32), Some(t));
        }
        assert_eq!(MsgType::from_raw(20), None, "XS_RESTRICT was removed");
        assert_eq!(MsgType::from_raw(raw::INVALID), None);
    }
}
