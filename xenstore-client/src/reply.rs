//! Reply parsing: from a [`Message`] xenstored sent to the typed answer of
//! the request, or to the error it reports. Every function here takes
//! arbitrary bytes and answers `Err`, never panics: this is the code the
//! fuzz test (`tests/fuzz_reply.rs`) hammers.

use crate::errors::{Error, Malformed, XsErrno};
use crate::perms::{parse_decimal, Perm};
use crate::types::TxId;
use crate::watch::WatchEvent;
use crate::wire::{Message, MsgType};
use alloc::string::String;
use alloc::vec::Vec;

/// The payload of `msg` if it answers a request of type `sent`, else the
/// error xenstored reported or the way the reply is wrong.
pub fn payload_for(sent: MsgType, msg: &Message) -> Result<&[u8], Error> {
    let got = msg.header.ty;
    if got == MsgType::Error as u32 {
        return Err(error(&msg.payload)?);
    }
    if got != sent as u32 {
        return Err(Malformed::UnexpectedType { sent: sent as u32, got }.into());
    }
    Ok(&msg.payload)
}

/// The error of an `XS_ERROR` payload: an errno name and its NUL.
pub fn error(payload: &[u8]) -> Result<Error, Malformed> {
    let name = one_string(payload)?;
    Ok(match XsErrno::from_name(name) {
        Some(e) => Error::Xs(e),
        None => Error::XsUnknown(text(name)?.into()),
    })
}

/// `OK\0`: the answer of write, mkdir, rm, set_perms, watch, unwatch,
/// transaction_end and reset_watches.
pub fn ok(payload: &[u8]) -> Result<(), Malformed> {
    if payload == b"OK\0" {
        Ok(())
    } else {
        Err(Malformed::ExpectedOk)
    }
}

/// The NUL-terminated strings of a payload. Empty payload: none. Every
/// string must end in a NUL, including the last.
pub fn strings(payload: &[u8]) -> Result<Vec<&[u8]>, Malformed> {
    match payload.last() {
        None => Ok(Vec::new()),
        Some(0) => Ok(payload[..payload.len() - 1].split(|&b| b == 0).collect()),
        Some(_) => Err(Malformed::MissingNul),
    }
}

/// The single NUL-terminated string a payload must be.
fn one_string(payload: &[u8]) -> Result<&[u8], Malformed> {
    match strings(payload)?.as_slice() {
        [s] => Ok(s),
        [] => Err(Malformed::MissingNul),
        _ => Err(Malformed::BadValue),
    }
}

fn text(b: &[u8]) -> Result<&str, Malformed> {
    core::str::from_utf8(b).map_err(|_| Malformed::NotUtf8)
}

/// Child names of `XS_DIRECTORY`: NUL-terminated names (xenstored never
/// sends an empty one; one is skipped rather than handed out as a name).
pub fn directory(payload: &[u8]) -> Result<Vec<String>, Malformed> {
    strings(payload)?
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| text(s).map(String::from))
        .collect()
}

/// Permissions of `XS_GET_PERMS`: at least the owner entry.
pub fn perms(payload: &[u8]) -> Result<Vec<Perm>, Malformed> {
    let v = strings(payload)?.into_iter().map(Perm::parse).collect::<Result<Vec<_>, _>>()?;
    if v.is_empty() {
        return Err(Malformed::BadPerm);
    }
    Ok(v)
}

/// The new transaction's id of `XS_TRANSACTION_START`: decimal, non-zero
/// (0 means "no transaction"), NUL-terminated.
pub fn tx_id(payload: &[u8]) -> Result<TxId, Malformed> {
    let s = one_string(payload).map_err(|_| Malformed::BadTxId)?;
    match parse_decimal(s).and_then(|v| u32::try_from(v).ok()) {
        Some(0) | None => Err(Malformed::BadTxId),
        Some(id) => Ok(TxId(id)),
    }
}

/// The path of `XS_GET_DOMAIN_PATH`.
pub fn domain_path(payload: &[u8]) -> Result<String, Malformed> {
    Ok(text(one_string(payload)?)?.into())
}

/// An `XS_WATCH_EVENT`: `path\0token\0`. Later strings, if a future
/// xenstored adds any, are ignored, as Linux does.
pub fn watch_event(payload: &[u8]) -> Result<WatchEvent, Malformed> {
    let parts = strings(payload).map_err(|_| Malformed::BadWatchEvent)?;
    let [path, token, ..] = parts.as_slice() else {
        return Err(Malformed::BadWatchEvent);
    };
    Ok(WatchEvent { path: text(path)?.into(), token: text(token)?.into() })
}

/// Any reply, typed by the request it answers: one entry point over all
/// the parsers above, for the fuzz test and for callers of raw requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ok,
    Value(Vec<u8>),
    Names(Vec<String>),
    Perms(Vec<Perm>),
    Tx(TxId),
    Path(String),
    Event(WatchEvent),
}

/// Parses `msg` as the answer to a request of type `sent` (or, for
/// `sent == WatchEvent`, as an event).
pub fn parse(sent: MsgType, msg: &Message) -> Result<Reply, Error> {
    let p = payload_for(sent, msg)?;
    Ok(match sent {
        MsgType::Read => Reply::Value(p.to_vec()),
        MsgType::Directory => Reply::Names(directory(p)?),
        MsgType::GetPerms => Reply::Perms(perms(p)?),
        MsgType::TransactionStart => Reply::Tx(tx_id(p)?),
        MsgType::GetDomainPath => Reply::Path(domain_path(p)?),
        MsgType::WatchEvent => Reply::Event(watch_event(p)?),
        MsgType::Write
        | MsgType::Mkdir
        | MsgType::Rm
        | MsgType::SetPerms
        | MsgType::Watch
        | MsgType::Unwatch
        | MsgType::TransactionEnd
        | MsgType::ResetWatches => {
            ok(p)?;
            Reply::Ok
        }
        // Types a guest does not send: their replies are taken as raw bytes.
        MsgType::Control
        | MsgType::Introduce
        | MsgType::Release
        | MsgType::Error
        | MsgType::IsDomainIntroduced
        | MsgType::Resume
        | MsgType::SetTarget
        | MsgType::DirectoryPart => Reply::Value(p.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perms::Access;
    use crate::types::ReqId;
    use alloc::vec;
    use hypercall::DomId;

    fn msg(ty: MsgType, payload: &[u8]) -> Message {
        Message::new(ty, ReqId(1), TxId(0), payload.to_vec()).unwrap()
    }

    #[test]
    fn errors_become_the_enum() {
        for e in XsErrno::ALL {
            let mut p = e.as_str().as_bytes().to_vec();
            p.push(0);
            assert_eq!(parse(MsgType::Read, &msg(MsgType::Error, &p)), Err(Error::Xs(e)));
        }
        assert_eq!(
            parse(MsgType::Read, &msg(MsgType::Error, b"EFUTURE\0")),
            Err(Error::XsUnknown("EFUTURE".into()))
        );
        assert_eq!(
            parse(MsgType::Read, &msg(MsgType::Error, b"ENOENT")),
            Err(Error::Malformed(Malformed::MissingNul))
        );
        assert_eq!(
            parse(MsgType::Read, &msg(MsgType::Error, b"")),
            Err(Error::Malformed(Malformed::MissingNul))
        );
        assert_eq!(
            parse(MsgType::Read, &msg(MsgType::Error, b"\xff\0")),
            Err(Error::Malformed(Malformed::NotUtf8))
        );
    }

    #[test]
    fn reply_of_other_type_is_refused() {
        assert_eq!(
            parse(MsgType::Read, &msg(MsgType::Write, b"OK\0")),
            Err(Error::Malformed(Malformed::UnexpectedType {
                sent: MsgType::Read as u32,
                got: MsgType::Write as u32
            }))
        );
    }

    #[test]
    fn ok_must_be_exact() {
        assert_eq!(parse(MsgType::Write, &msg(MsgType::Write, b"OK\0")), Ok(Reply::Ok));
        for bad in [&b"OK"[..], b"OK\0\0", b"ok\0", b""] {
            assert_eq!(
                parse(MsgType::Write, &msg(MsgType::Write, bad)),
                Err(Error::Malformed(Malformed::ExpectedOk))
            );
        }
    }

    #[test]
    fn values_are_raw_bytes() {
        assert_eq!(
            parse(MsgType::Read, &msg(MsgType::Read, b"a\0b")),
            Ok(Reply::Value(b"a\0b".to_vec()))
        );
        assert_eq!(parse(MsgType::Read, &msg(MsgType::Read, b"")), Ok(Reply::Value(vec![])));
    }

    #[test]
    fn directories() {
        assert_eq!(directory(b""), Ok(vec![]));
        assert_eq!(directory(b"a\0bc\0"), Ok(vec!["a".into(), "bc".into()]));
        assert_eq!(directory(b"a\0bc"), Err(Malformed::MissingNul));
        assert_eq!(directory(b"\xff\0"), Err(Malformed::NotUtf8));
    }

    #[test]
    fn perm_lists() {
        assert_eq!(
            perms(b"n3\0r0\0"),
            Ok(vec![Perm::new(DomId(3), Access::None), Perm::new(DomId(0), Access::Read)])
        );
        assert_eq!(perms(b""), Err(Malformed::BadPerm));
        assert_eq!(perms(b"n3"), Err(Malformed::MissingNul));
        assert_eq!(perms(b"q3\0"), Err(Malformed::BadPerm));
    }

    #[test]
    fn transaction_ids() {
        assert_eq!(tx_id(b"17\0"), Ok(TxId(17)));
        assert_eq!(tx_id(b"4294967295\0"), Ok(TxId(u32::MAX)));
        for bad in [&b"0\0"[..], b"17", b"", b"\0", b"-1\0", b"4294967296\0", b"1\0\x32\0"] {
            assert_eq!(tx_id(bad), Err(Malformed::BadTxId), "{bad:?}");
        }
    }

    #[test]
    fn watch_events() {
        assert_eq!(
            watch_event(b"a/b\0tok\0"),
            Ok(WatchEvent { path: "a/b".into(), token: "tok".into() })
        );
        assert!(watch_event(b"a/b\0tok\0extra\0").is_ok());
        for bad in [&b"a/b\0"[..], b"a/b\0tok", b"", b"a"] {
            assert_eq!(watch_event(bad), Err(Malformed::BadWatchEvent), "{bad:?}");
        }
    }

    #[test]
    fn domain_paths() {
        assert_eq!(domain_path(b"/local/domain/3\0"), Ok("/local/domain/3".into()));
        assert_eq!(domain_path(b"/local/domain/3"), Err(Malformed::MissingNul));
        assert_eq!(domain_path(b"a\0b\0"), Err(Malformed::BadValue));
    }
}
