//! How the guest is virtualized: one image, three kinds of domain.
//!
//! - [`GuestMode::Pv`]: a classic 64-bit PV domain (`type = "pv"`): Xen
//!   validates the guest's page tables (`mmu_update`).
//! - [`GuestMode::Pvh`]: an HVM container without a device model
//!   (`type = "pvh"`), with hardware-assisted paging (nested page tables).
//! - [`GuestMode::PvhShadow`]: the same with shadow paging (`hap = 0`):
//!   Xen keeps shadow copies of the guest's native page tables. Needs a
//!   Xen built with shadow paging: Debian's 4.17 refuses the domain
//!   (`Operation not supported`).
//!
//! `$XENPV_MODE` picks the mode of every guest the boot tests create
//! (`pv` when unset); `cargo xtask run|build --mode` picks it for one.

use anyhow::{bail, Result};
use std::fmt;

/// The environment variable that picks the mode of the boot tests' guests.
pub const MODE_ENV: &str = "XENPV_MODE";

/// A kind of domain the guest image boots as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GuestMode {
    #[default]
    Pv,
    Pvh,
    PvhShadow,
}

/// The xl line that keeps a domain's `rdtsc` native (the benchmarks use it; see
/// [`GuestMode::xl_lines`]).
pub const TSC_NATIVE: &str = "tsc_mode = \"native\"";

impl GuestMode {
    /// Every mode, PV first.
    pub const ALL: [GuestMode; 3] = [GuestMode::Pv, GuestMode::Pvh, GuestMode::PvhShadow];

    /// `pv`, `pvh`, `pvh-shadow`: the accepted spelling.
    pub fn name(self) -> &'static str {
        match self {
            GuestMode::Pv => "pv",
            GuestMode::Pvh => "pvh",
            GuestMode::PvhShadow => "pvh-shadow",
        }
    }

    /// xl's `type =`.
    pub fn xl_type(self) -> &'static str {
        match self {
            GuestMode::Pv => "pv",
            GuestMode::Pvh | GuestMode::PvhShadow => "pvh",
        }
    }

    /// Whether the domain is an HVM container (PVH).
    pub fn is_pvh(self) -> bool {
        self != GuestMode::Pv
    }

    /// Config lines the mode adds besides `type`. The TSC stays on Xen's
    /// default (emulated on this lab's QEMU, whose TSC is neither constant
    /// nor reliable). Session 6 gave PVH guests `tsc_mode = "native"`
    /// ([`TSC_NATIVE`]) to make the emulator's triple faults rarer
    /// (docs/pvh.md, "The PVH triple faults"). It did not stop one in CI,
    /// and the vCPUs' clocks then disagreed by milliseconds: the SMP
    /// self-test's check read vCPU 3 6.7 ms ahead of vCPU 0. Session 9
    /// gave it back to PVH guests with one vCPU; session 10 took it back
    /// again, after a one-vCPU PVH guest's 1 ms wait lasted 200 s (its
    /// one vCPU moves between the emulator's CPUs, whose TSCs disagree).
    /// The boot tests retry a triple fault (`xen_tests::triple_faults`).
    pub fn xl_lines(self) -> &'static [&'static str] {
        match self {
            GuestMode::Pv | GuestMode::Pvh => &[],
            GuestMode::PvhShadow => &["hap = 0"],
        }
    }

    /// The smallest `memory=` (MiB) the mode can boot: a PVH domain loads
    /// the image at its physical link address, 4 MiB, so RAM must reach
    /// past the image and what the builder puts after it.
    pub fn min_memory_mib(self) -> u32 {
        match self {
            GuestMode::Pv => 4,
            _ => 8,
        }
    }

    /// `pv, pvh, pvh-shadow`, for messages.
    pub fn accepted() -> String {
        Self::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
    }

    /// The mode named by `s`.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        match Self::ALL.into_iter().find(|m| m.name() == t) {
            Some(m) => Ok(m),
            None => bail!("unknown guest mode {s:?}: accepted values are {}", Self::accepted()),
        }
    }

    /// The mode named by `value` (the content of [`MODE_ENV`]): PV when
    /// unset or empty, an error naming the variable when misspelt.
    pub fn from_env_value(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(Self::default()),
            Some(v) => Self::parse(v).map_err(|_| {
                format!(
                    "{MODE_ENV}={v:?} is not a guest mode: accepted values are {}",
                    Self::accepted()
                )
            }),
        }
    }

    /// The mode `$XENPV_MODE` picks.
    pub fn from_env() -> Result<Self, String> {
        let v = std::env::var_os(MODE_ENV).map(|v| v.to_string_lossy().into_owned());
        Self::from_env_value(v.as_deref())
    }
}

impl fmt::Display for GuestMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for GuestMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_and_config() {
        assert_eq!(GuestMode::parse(" pvh ").unwrap(), GuestMode::Pvh);
        assert_eq!(GuestMode::parse("pvh-shadow").unwrap().xl_lines(), ["hap = 0"]);
        assert!(GuestMode::parse("pvh").unwrap().xl_lines().is_empty());
        assert!(GuestMode::parse("pv").unwrap().xl_lines().is_empty());
        assert_eq!(GuestMode::from_env_value(None).unwrap(), GuestMode::Pv);
        assert_eq!(GuestMode::from_env_value(Some("")).unwrap(), GuestMode::Pv);
        let e = GuestMode::from_env_value(Some("hvm")).unwrap_err();
        assert!(e.contains("XENPV_MODE") && e.contains("pv, pvh, pvh-shadow"), "{e}");
        for bad in ["PV", "hvm", "pvh_shadow", "shadow"] {
            assert!(GuestMode::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(GuestMode::PvhShadow.xl_type(), "pvh");
    }
}
