//! The cache of downloaded `.deb`s and extracted trees, outside the clone so
//! that repeated runs (and CI runs on the same machine) reuse it.
//!
//! Location, first match wins:
//! 1. `$XENPV_LAB_CACHE`
//! 2. `$XDG_CACHE_HOME/xenpv-lab`
//! 3. `$HOME/.cache/xenpv-lab`
//! 4. `<target>/xen/cache` (no home directory at all)

use std::path::PathBuf;

/// The environment variable that overrides the cache location.
pub const CACHE_ENV: &str = "XENPV_LAB_CACHE";

/// The cache directory (not created here).
pub fn cache_dir() -> PathBuf {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = nonempty(CACHE_ENV) {
        return PathBuf::from(d);
    }
    if let Some(d) = nonempty("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("xenpv-lab");
    }
    if let Some(h) = nonempty("HOME") {
        return PathBuf::from(h).join(".cache").join("xenpv-lab");
    }
    crate::xen_out_dir().join("cache")
}

/// A short stable hash (FNV-1a, 64 bits) for cache keys.
pub fn short_hash(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_order_sensitive() {
        assert_eq!(short_hash(&["a", "b"]), short_hash(&["a", "b"]));
        assert_ne!(short_hash(&["a", "b"]), short_hash(&["b", "a"]));
        assert_ne!(short_hash(&["ab"]), short_hash(&["a", "b"]));
        assert_eq!(short_hash(&[]).len(), 16);
    }
}
