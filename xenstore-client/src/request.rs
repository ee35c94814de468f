//! Request payloads: the NUL-separated strings each operation sends,
//! checked against the path rules and `XENSTORE_PAYLOAD_MAX` first.

use crate::errors::Error;
use crate::path::{check_path, check_token};
use crate::perms::Perm;
use alloc::vec::Vec;
use hypercall::abi::xenstore::PAYLOAD_MAX;
use hypercall::DomId;

fn fit(payload: Vec<u8>) -> Result<Vec<u8>, Error> {
    if payload.len() > PAYLOAD_MAX {
        return Err(Error::PayloadTooLong { len: payload.len(), max: PAYLOAD_MAX });
    }
    Ok(payload)
}

fn push_str0(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(s.as_bytes());
    v.push(0);
}

/// `path\0`: read, directory, mkdir, rm, get_perms.
pub fn path(path: &str) -> Result<Vec<u8>, Error> {
    check_path(path)?;
    let mut v = Vec::with_capacity(path.len() + 1);
    push_str0(&mut v, path);
    fit(v)
}

/// `path\0value`: write. The value is raw bytes up to the end of the
/// payload, not NUL-terminated, so it may hold any byte.
pub fn write(path: &str, value: &[u8]) -> Result<Vec<u8>, Error> {
    check_path(path)?;
    let room = PAYLOAD_MAX.saturating_sub(path.len() + 1);
    if value.len() > room {
        return Err(Error::PayloadTooLong { len: value.len(), max: room });
    }
    let mut v = Vec::with_capacity(path.len() + 1 + value.len());
    push_str0(&mut v, path);
    v.extend_from_slice(value);
    Ok(v)
}

/// `path\0token\0`: watch and unwatch.
pub fn watch(path: &str, token: &str) -> Result<Vec<u8>, Error> {
    check_path(path)?;
    check_token(token)?;
    let mut v = Vec::with_capacity(path.len() + token.len() + 2);
    push_str0(&mut v, path);
    push_str0(&mut v, token);
    fit(v)
}

/// `path\0perm\0perm\0...`: set_perms. The first entry is the owner.
pub fn set_perms(path: &str, perms: &[Perm]) -> Result<Vec<u8>, Error> {
    check_path(path)?;
    if perms.is_empty() {
        return Err(Error::EmptyPerms);
    }
    let mut v = Vec::new();
    push_str0(&mut v, path);
    for p in perms {
        push_str0(&mut v, &p.to_wire());
    }
    fit(v)
}

/// `\0`: an empty string, for transaction_start and reset_watches.
pub fn empty() -> Vec<u8> {
    alloc::vec![0]
}

/// `T\0` to commit, `F\0` to abort: transaction_end.
pub fn transaction_end(commit: bool) -> Vec<u8> {
    alloc::vec![if commit { b'T' } else { b'F' }, 0]
}

/// `<domid>\0`: get_domain_path.
pub fn domid(dom: DomId) -> Vec<u8> {
    let mut v = alloc::format!("{}", dom.0).into_bytes();
    v.push(0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::PathError;
    use crate::perms::Access;
    use alloc::vec;

    #[test]
    fn payload_shapes() {
        assert_eq!(path("a/b").unwrap(), b"a/b\0");
        assert_eq!(write("a", b"x\0y").unwrap(), b"a\0x\0y");
        assert_eq!(write("a", b"").unwrap(), b"a\0");
        assert_eq!(watch("a", "t").unwrap(), b"a\0t\0");
        assert_eq!(
            set_perms("a", &[Perm::new(DomId(3), Access::None), Perm::new(DomId(0), Access::Read)])
                .unwrap(),
            b"a\0n3\0r0\0"
        );
        assert_eq!(transaction_end(true), b"T\0");
        assert_eq!(transaction_end(false), b"F\0");
        assert_eq!(domid(DomId(42)), b"42\0");
        assert_eq!(empty(), b"\0");
    }

    #[test]
    fn oversized_values_are_refused_with_the_room_left() {
        let room = PAYLOAD_MAX - 2;
        assert!(write("a", &vec![1; room]).is_ok());
        assert_eq!(
            write("a", &vec![1; room + 1]),
            Err(Error::PayloadTooLong { len: room + 1, max: room })
        );
    }

    #[test]
    fn bad_paths_and_tokens_are_refused() {
        assert_eq!(path("a b"), Err(Error::InvalidPath(PathError::BadChar(b' '))));
        assert_eq!(watch("a", "t\0"), Err(Error::InvalidPath(PathError::ContainsNul)));
        assert_eq!(set_perms("a", &[]), Err(Error::EmptyPerms));
        let long_token = "t".repeat(PAYLOAD_MAX);
        assert!(matches!(watch("a", &long_token), Err(Error::PayloadTooLong { .. })));
    }
}
