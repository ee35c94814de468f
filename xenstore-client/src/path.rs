//! What xenstored accepts as a node path or a watch token, checked before
//! sending so a bad path is a clear [`PathError`] here rather than an
//! `EINVAL` (or, for an embedded NUL, a silently different request) there.

use crate::errors::PathError;
use hypercall::abi::xenstore::{ABS_PATH_MAX, REL_PATH_MAX};

/// Bytes xenstored allows in node names (`is_valid_nodename`).
fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@')
}

/// Checks a node path: absolute (`/local/domain/3/device`) or relative to
/// the domain's home (`device/vif/0`), or one of xenstored's special watch
/// names (`@introduceDomain`, `@releaseDomain`); at most `XENSTORE_ABS_PATH_MAX` or
/// `XENSTORE_REL_PATH_MAX` bytes, no empty components.
pub fn check_path(path: &str) -> Result<(), PathError> {
    let b = path.as_bytes();
    if b.is_empty() {
        return Err(PathError::Empty);
    }
    let max = if b[0] == b'/' { ABS_PATH_MAX } else { REL_PATH_MAX };
    if b.len() > max {
        return Err(PathError::TooLong { len: b.len(), max });
    }
    if let Some(&c) = b.iter().find(|&&c| !allowed(c)) {
        return Err(if c == 0 { PathError::ContainsNul } else { PathError::BadChar(c) });
    }
    if path.contains("//") || (b.len() > 1 && b[b.len() - 1] == b'/') {
        return Err(PathError::EmptyComponent);
    }
    Ok(())
}

/// Checks a watch token: any text without NUL (the wire NUL-terminates it).
pub fn check_token(token: &str) -> Result<(), PathError> {
    if token.is_empty() {
        return Err(PathError::Empty);
    }
    if token.as_bytes().contains(&0) {
        return Err(PathError::ContainsNul);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn good_paths() {
        for p in ["/", "/local/domain/3", "device/vif/0/state", "@releaseDomain", "data-1/a_b"] {
            assert_eq!(check_path(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn bad_paths() {
        assert_eq!(check_path(""), Err(PathError::Empty));
        assert_eq!(check_path("a\0b"), Err(PathError::ContainsNul));
        assert_eq!(check_path("a b"), Err(PathError::BadChar(b' ')));
        assert_eq!(check_path("a.b"), Err(PathError::BadChar(b'.')));
        assert_eq!(check_path("a//b"), Err(PathError::EmptyComponent));
        assert_eq!(check_path("/a/"), Err(PathError::EmptyComponent));
        assert_eq!(check_path("é"), Err(PathError::BadChar(0xc3)));
    }

    #[test]
    fn length_limits_differ_for_absolute_and_relative() {
        let rel: String = "a".repeat(REL_PATH_MAX);
        assert_eq!(check_path(&rel), Ok(()));
        let rel1: String = "a".repeat(REL_PATH_MAX + 1);
        assert_eq!(
            check_path(&rel1),
            Err(PathError::TooLong { len: REL_PATH_MAX + 1, max: REL_PATH_MAX })
        );
        let abs = alloc::format!("/{}", "a".repeat(ABS_PATH_MAX - 1));
        assert_eq!(check_path(&abs), Ok(()));
        let abs1 = alloc::format!("/{}", "a".repeat(ABS_PATH_MAX));
        assert_eq!(
            check_path(&abs1),
            Err(PathError::TooLong { len: ABS_PATH_MAX + 1, max: ABS_PATH_MAX })
        );
    }

    #[test]
    fn tokens() {
        assert_eq!(check_token("tok 1 (any text)"), Ok(()));
        assert_eq!(check_token(""), Err(PathError::Empty));
        assert_eq!(check_token("a\0"), Err(PathError::ContainsNul));
    }
}
