//! Node permissions (`XS_GET_PERMS` / `XS_SET_PERMS`): a list of
//! `<access><domid>` entries. The first names the node's owner (who may
//! always do anything) and the access of every domain not listed after it.

use crate::errors::Malformed;
use alloc::string::String;
use core::fmt::Write as _;
use hypercall::DomId;

/// What a domain may do with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`
    None,
    /// `r`
    Read,
    /// `w`
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }

    /// Whether this access allows reading.
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether this access allows writing.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One entry of a node's permission list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    pub dom: DomId,
    pub access: Access,
}

impl Perm {
    pub const fn new(dom: DomId, access: Access) -> Perm {
        Perm { dom, access }
    }

    /// The wire form, e.g. `r5`.
    pub fn to_wire(self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = write!(s, "{}{}", self.access.letter(), self.dom.0);
        s
    }

    /// Parses `[nrwb]<domid>`, refusing anything else (signs, spaces,
    /// domids over 65535, empty numbers).
    pub fn parse(s: &[u8]) -> Result<Perm, Malformed> {
        let (&letter, digits) = s.split_first().ok_or(Malformed::BadPerm)?;
        let access = match letter {
            b'n' => Access::None,
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            _ => return Err(Malformed::BadPerm),
        };
        let dom =
            parse_decimal(digits).and_then(|v| u16::try_from(v).ok()).ok_or(Malformed::BadPerm)?;
        Ok(Perm { dom: DomId(dom), access })
    }
}

/// A plain decimal number (digits only, no sign), or `None`.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The access `dom` has to a node with `perms`, as xenstored decides it:
/// dom0 and the owner may do anything; others get their own entry, else the
/// owner entry's default.
pub fn access_of(perms: &[Perm], dom: DomId) -> Access {
    let Some(owner) = perms.first() else {
        return Access::None;
    };
    if dom == DomId(0) || dom == owner.dom {
        return Access::Both;
    }
    perms[1..].iter().find(|p| p.dom == dom).map_or(owner.access, |p| p.access)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips() {
        for (s, p) in [
            ("n0", Perm::new(DomId(0), Access::None)),
            ("r5", Perm::new(DomId(5), Access::Read)),
            ("w65535", Perm::new(DomId(65535), Access::Write)),
            ("b12", Perm::new(DomId(12), Access::Both)),
        ] {
            assert_eq!(Perm::parse(s.as_bytes()), Ok(p));
            assert_eq!(p.to_wire(), s);
        }
    }

    #[test]
    fn bad_entries_are_refused() {
        for s in ["", "r", "x1", "r-1", "r+1", "r 1", "r65536", "r1a", "R1"] {
            assert_eq!(Perm::parse(s.as_bytes()), Err(Malformed::BadPerm), "{s:?}");
        }
    }

    #[test]
    fn access_rules() {
        let perms = [
            Perm::new(DomId(3), Access::Read),
            Perm::new(DomId(4), Access::None),
            Perm::new(DomId(5), Access::Both),
        ];
        assert_eq!(access_of(&perms, DomId(0)), Access::Both);
        assert_eq!(access_of(&perms, DomId(3)), Access::Both);
        assert_eq!(access_of(&perms, DomId(4)), Access::None);
        assert_eq!(access_of(&perms, DomId(5)), Access::Both);
        assert_eq!(access_of(&perms, DomId(6)), Access::Read);
        assert_eq!(access_of(&[], DomId(6)), Access::None);
    }
}
