//! Everything that can go wrong, as enums: what xenstored answered
//! ([`XsErrno`]), and what the client refused or could not make sense of
//! ([`Error`] and its parts).

use crate::types::ReqId;
use alloc::string::String;
use core::fmt;

/// An error xenstored reports in an `XS_ERROR` reply. It sends the errno's
/// *name* as a string (`xsd_errors` in `xs_wire.h`), not its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XsErrno {
    EINVAL,
    EACCES,
    EEXIST,
    EISDIR,
    ENOENT,
    ENOMEM,
    ENOSPC,
    EIO,
    ENOTEMPTY,
    ENOSYS,
    EROFS,
    EBUSY,
    /// A transaction conflicted with another change: start it again.
    EAGAIN,
    EISCONN,
    E2BIG,
    EPERM,
    /// Not in `xsd_errors`: oxenstored's answer when a domain exceeds a quota.
    EQUOTA,
}

impl XsErrno {
    /// All of them, in `xsd_errors` order then the extras.
    pub const ALL: [XsErrno; 17] = [
        XsErrno::EINVAL,
        XsErrno::EACCES,
        XsErrno::EEXIST,
        XsErrno::EISDIR,
        XsErrno::ENOENT,
        XsErrno::ENOMEM,
        XsErrno::ENOSPC,
        XsErrno::EIO,
        XsErrno::ENOTEMPTY,
        XsErrno::ENOSYS,
        XsErrno::EROFS,
        XsErrno::EBUSY,
        XsErrno::EAGAIN,
        XsErrno::EISCONN,
        XsErrno::E2BIG,
        XsErrno::EPERM,
        XsErrno::EQUOTA,
    ];

    /// The string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            XsErrno::EINVAL => "EINVAL",
            XsErrno::EACCES => "EACCES",
            XsErrno::EEXIST => "EEXIST",
            XsErrno::EISDIR => "EISDIR",
            XsErrno::ENOENT => "ENOENT",
            XsErrno::ENOMEM => "ENOMEM",
            XsErrno::ENOSPC => "ENOSPC",
            XsErrno::EIO => "EIO",
            XsErrno::ENOTEMPTY => "ENOTEMPTY",
            XsErrno::ENOSYS => "ENOSYS",
            XsErrno::EROFS => "EROFS",
            XsErrno::EBUSY => "EBUSY",
            XsErrno::EAGAIN => "EAGAIN",
            XsErrno::EISCONN => "EISCONN",
            XsErrno::E2BIG => "E2BIG",
            XsErrno::EPERM => "EPERM",
            XsErrno::EQUOTA => "EQUOTA",
        }
    }

    /// The errno named `s`, if it is one xenstored sends.
    pub fn from_name(s: &[u8]) -> Option<XsErrno> {
        XsErrno::ALL.into_iter().find(|e| e.as_str().as_bytes() == s)
    }
}

impl fmt::Display for XsErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a path (or watch token) was refused before anything was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    Empty,
    /// Longer than `XENSTORE_ABS_PATH_MAX` (absolute) or
    /// `XENSTORE_REL_PATH_MAX` (relative).
    TooLong {
        len: usize,
        max: usize,
    },
    /// A NUL would end the string early on the wire and shift every field after it.
    ContainsNul,
    /// A byte xenstored does not allow in node names (it allows
    /// `[A-Za-z0-9-/_@]`).
    BadChar(u8),
    /// `//` somewhere, or a trailing `/` (other than the root itself).
    EmptyComponent,
}

/// Why a message from xenstored was not understood. The framing of the
/// stream is lost after [`Malformed::PayloadTooLong`]; the others concern
/// one well-framed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// `len` claims more than `XENSTORE_PAYLOAD_MAX` bytes.
    PayloadTooLong { len: u32 },
    /// Fewer bytes than the header says.
    Truncated { need: usize, have: usize },
    /// More bytes than the header says, where one message was expected.
    TrailingBytes { extra: usize },
    /// A string the protocol NUL-terminates was not.
    MissingNul,
    /// Text that must be UTF-8 (names, tokens, numbers) was not.
    NotUtf8,
    /// A reply of a type that does not answer the request.
    UnexpectedType { sent: u32, got: u32 },
    /// A message type xenstored never sends.
    UnknownType(u32),
    /// A reply that must be `OK\0` was something else.
    ExpectedOk,
    /// `XS_TRANSACTION_START` did not answer a non-zero decimal id.
    BadTxId,
    /// A permission entry was not `[nrwb]<domid>`.
    BadPerm,
    /// `XS_GET_DOMAIN_PATH` or `XS_READ`-like reply not shaped as expected.
    BadValue,
    /// An `XS_WATCH_EVENT` without both a path and a token.
    BadWatchEvent,
}

/// Problems with the shared ring page itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// `prod - cons` exceeds the ring size: the other side (or a stray
    /// write) corrupted the indices; nothing on the page can be trusted.
    BadIndices { cons: u32, prod: u32 },
    /// xenstored set the page's `error` field (`XENSTORE_ERROR_*`).
    ServerError(u32),
    /// A reset of the connection was needed, and xenstored does not offer
    /// `XENSTORE_SERVER_FEATURE_RECONNECTION` (or did not answer it).
    NoReconnect,
}

/// An error of any client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// xenstored answered `XS_ERROR` with this errno.
    Xs(XsErrno),
    /// xenstored answered `XS_ERROR` with a name not in [`XsErrno`].
    XsUnknown(String),
    /// A path or token the client refused to send.
    InvalidPath(PathError),
    /// Request payload over `XENSTORE_PAYLOAD_MAX`; for a write, `max` is
    /// the longest value that would fit after this path.
    PayloadTooLong { len: usize, max: usize },
    /// A message from xenstored that breaks the protocol.
    Malformed(Malformed),
    /// A reply to a request this client never sent (or long forgot).
    UnknownReqId(ReqId),
    /// The ring page is unusable.
    Ring(RingError),
    /// The deadline passed before the request could be sent or answered.
    /// A request that timed out may still be carried out by xenstored;
    /// its late reply is dropped.
    TimedOut,
    /// [`crate::Client::transaction`] kept conflicting (`EAGAIN`).
    TransactionConflict { attempts: u32 },
    /// `set_perms` with an empty list: the first entry (the owner) is required.
    EmptyPerms,
    /// A value that should be text was not UTF-8.
    NotUtf8,
    /// A value that should be a number was not one.
    NotANumber,
}

impl Error {
    /// Whether xenstored answered `errno`.
    pub fn is(&self, errno: XsErrno) -> bool {
        *self == Error::Xs(errno)
    }
}

impl From<PathError> for Error {
    fn from(e: PathError) -> Self {
        Error::InvalidPath(e)
    }
}

impl From<Malformed> for Error {
    fn from(e: Malformed) -> Self {
        Error::Malformed(e)
    }
}

impl From<RingError> for Error {
    fn from(e: RingError) -> Self {
        Error::Ring(e)
    }
}

impl From<XsErrno> for Error {
    fn from(e: XsErrno) -> Self {
        Error::Xs(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Xs(e) => write!(f, "xenstored: {e}"),
            Error::XsUnknown(s) => write!(f, "xenstored: unknown error {s:?}"),
            Error::InvalidPath(e) => write!(f, "invalid path: {e:?}"),
            Error::PayloadTooLong { len, max } => {
                write!(f, "payload of {len} bytes over the limit of {max}")
            }
            Error::Malformed(m) => write!(f, "malformed message from xenstored: {m:?}"),
            Error::UnknownReqId(id) => write!(f, "reply to unknown request {}", id.0),
            Error::Ring(r) => write!(f, "xenstore ring: {r:?}"),
            Error::TimedOut => f.write_str("xenstore: timed out"),
            Error::TransactionConflict { attempts } => {
                write!(f, "transaction conflicted {attempts} times")
            }
            Error::EmptyPerms => f.write_str("a permission list needs an owner entry"),
            Error::NotUtf8 => f.write_str("value is not UTF-8"),
            Error::NotANumber => f.write_str("value is not a number"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_round_trip() {
        for e in XsErrno::ALL {
            assert_eq!(XsErrno::from_name(e.as_str().as_bytes()), Some(e));
        }
        assert_eq!(XsErrno::from_name(b"EWHATEVER"), None);
        assert_eq!(XsErrno::from_name(b"ENOENT\0"), None);
    }
}
