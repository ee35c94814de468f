//! The Xen releases the lab can boot, each from one Debian release.
//!
//! - [`XenRelease::V4_17`] (the default): Debian 12 (bookworm), from the
//!   host's own apt sources, as the machines of this project run Debian 12.
//! - [`XenRelease::V4_20`]: Debian 13 (trixie), from a private apt
//!   configuration under the lab cache (see [`crate::debs::Apt`]): the
//!   host's sources, lists and status are never touched.
//!
//! Everything that differs between the releases (package names, the
//! hypervisor's file, the toolstack's directory) comes from here, not from
//! string checks elsewhere.

use anyhow::{bail, Result};
use std::fmt;

/// The environment variable that picks the release for the boot tests
/// (and for `cargo xtask` commands without `--xen`).
pub const XEN_ENV: &str = "XENPV_XEN";

/// A Xen release, with the Debian release its packages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum XenRelease {
    /// Xen 4.17, Debian 12 (bookworm): the host's own apt sources.
    #[default]
    V4_17,
    /// Xen 4.20, Debian 13 (trixie): a private apt configuration.
    V4_20,
}

impl XenRelease {
    /// Every release, oldest first.
    pub const ALL: [XenRelease; 2] = [XenRelease::V4_17, XenRelease::V4_20];

    /// `4.17`, `4.20`: the version in Debian's package names and paths.
    pub fn version(self) -> &'static str {
        match self {
            XenRelease::V4_17 => "4.17",
            XenRelease::V4_20 => "4.20",
        }
    }

    /// The Debian suite the packages come from.
    pub fn suite(self) -> &'static str {
        match self {
            XenRelease::V4_17 => "bookworm",
            XenRelease::V4_20 => "trixie",
        }
    }

    /// `Debian 12 (bookworm)` etc., for messages.
    pub fn debian(self) -> &'static str {
        match self {
            XenRelease::V4_17 => "Debian 12 (bookworm)",
            XenRelease::V4_20 => "Debian 13 (trixie)",
        }
    }

    /// Whether the packages come from the host's own apt sources (the
    /// host runs this Debian release) rather than a private configuration.
    pub fn uses_host_apt(self) -> bool {
        self == XenRelease::V4_17
    }

    /// The packages fetched besides the kernel; their library dependencies
    /// (`lib*`, `zlib*`) are fetched too, recursively, from the same suite.
    pub fn packages(self) -> Vec<String> {
        let v = self.version();
        vec![
            format!("xen-hypervisor-{v}-amd64"),
            format!("xen-utils-{v}"),
            "xenstore-utils".to_string(),
            "busybox-static".to_string(),
        ]
    }

    /// The compressed hypervisor in the extracted tree.
    pub fn hypervisor_gz(self) -> String {
        format!("boot/xen-{}-amd64.gz", self.version())
    }

    /// The toolstack's programs (`xl`, `xenstored`...) in the tree (no
    /// leading `/`; the same path in dom0).
    pub fn tools_dir(self) -> String {
        format!("usr/lib/xen-{}/bin", self.version())
    }

    /// The toolstack's private libraries, if any, in the tree.
    pub fn private_lib_dir(self) -> String {
        format!("usr/lib/xen-{}/lib/x86_64-linux-gnu", self.version())
    }

    /// The prefix of this release's extracted trees in the cache
    /// (`xen-4.20-`), so that [`crate::debs`] keeps one tree per release.
    pub fn tree_prefix(self) -> String {
        format!("xen-{}-", self.version())
    }

    /// The release named by `s` (`4.17`, `4.20`; `xen-4.20` too).
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        let t = t.strip_prefix("xen-").or_else(|| t.strip_prefix("xen")).unwrap_or(t);
        match Self::ALL.into_iter().find(|r| r.version() == t) {
            Some(r) => Ok(r),
            None => bail!("unknown Xen release {s:?}: accepted values are {}", Self::accepted()),
        }
    }

    /// `4.17, 4.20`: the accepted values, for messages.
    pub fn accepted() -> String {
        Self::ALL.iter().map(|r| r.version()).collect::<Vec<_>>().join(", ")
    }

    /// The release named by `value` (the content of [`XEN_ENV`]): the
    /// default when unset or empty, an error naming the variable and the
    /// accepted values when misspelt (never a silent default).
    pub fn from_env_value(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(Self::default()),
            Some(v) => Self::parse(v).map_err(|_| {
                format!(
                    "{XEN_ENV}={v:?} is not a Xen release: accepted values are {}",
                    Self::accepted()
                )
            }),
        }
    }

    /// The release picked by `$XENPV_XEN` (see [`Self::from_env_value`]).
    pub fn from_env() -> Result<Self, String> {
        let v = std::env::var_os(XEN_ENV).map(|v| v.to_string_lossy().into_owned());
        Self::from_env_value(v.as_deref())
    }
}

impl fmt::Display for XenRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Xen {}", self.version())
    }
}

impl std::str::FromStr for XenRelease {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(XenRelease::parse("4.17").unwrap(), XenRelease::V4_17);
        assert_eq!(XenRelease::parse(" 4.20 ").unwrap(), XenRelease::V4_20);
        assert_eq!(XenRelease::parse("xen-4.20").unwrap(), XenRelease::V4_20);
        for bad in ["4.2", "420", "4.19", "", "trixie", "4.20.1"] {
            let e = XenRelease::parse(bad).unwrap_err().to_string();
            assert!(e.contains("4.17, 4.20"), "{bad}: {e}");
        }
    }

    #[test]
    fn environment_values() {
        assert_eq!(XenRelease::from_env_value(None), Ok(XenRelease::V4_17));
        assert_eq!(XenRelease::from_env_value(Some("")), Ok(XenRelease::V4_17));
        assert_eq!(XenRelease::from_env_value(Some("4.20")), Ok(XenRelease::V4_20));
        let e = XenRelease::from_env_value(Some("4.2O")).unwrap_err();
        assert!(e.contains("XENPV_XEN=\"4.2O\"") && e.contains("4.17, 4.20"), "{e}");
    }

    #[test]
    fn names_and_paths() {
        let r = XenRelease::V4_20;
        assert_eq!(
            r.packages(),
            ["xen-hypervisor-4.20-amd64", "xen-utils-4.20", "xenstore-utils", "busybox-static"]
        );
        assert_eq!(r.hypervisor_gz(), "boot/xen-4.20-amd64.gz");
        assert_eq!(r.tools_dir(), "usr/lib/xen-4.20/bin");
        assert_eq!(r.suite(), "trixie");
        assert!(!r.uses_host_apt());
        assert!(XenRelease::V4_17.uses_host_apt());
        assert_eq!(XenRelease::default(), XenRelease::V4_17);
        assert_eq!(XenRelease::V4_17.to_string(), "Xen 4.17");
        assert_eq!(XenRelease::V4_17.tree_prefix(), "xen-4.17-");
    }
}
