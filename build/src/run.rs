//! What `cargo xtask run` makes of its options: the guest and the dom0
//! scenario. Shared with the docs test (tests/tests/docs.rs), which runs
//! the chapters' `cargo xtask run` commands through the same function, so
//! a chapter's command and what the test runs cannot drift apart.

use crate::mode::GuestMode;
use crate::scenario::{GuestSpec, Scenario};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `cargo xtask run`'s guest options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub app: String,
    pub memory: u32,
    pub mode: GuestMode,
    /// Seconds the guest may run.
    pub timeout: u64,
    /// A vif on dom0's bridge.
    pub vif: bool,
    /// A disk of this many MiB.
    pub disk: Option<u32>,
    /// The guest's command line after `app=`.
    pub extra: Vec<String>,
    /// A dom0 script to run instead of `run_guest`.
    pub dom0_script: Option<PathBuf>,
}

/// Where `--disk` puts the guest's disk in dom0.
pub const RUN_DISK: &str = "/tmp/run-disk.img";

/// The xl config lines of `--vif` and `--disk`.
pub fn devices_config(vif: bool, disk: Option<u32>) -> Vec<String> {
    let mut lines = Vec::new();
    if vif {
        lines.push("vif = ['mac=00:16:3e:0c:01:01,bridge=xenbr0']".to_string());
    }
    if disk.is_some() {
        lines.push(format!(
            "disk = ['format=raw, vdev=xvda, access=rw, backendtype=phy, script=/etc/xen/scripts/block, target={RUN_DISK}']"
        ));
    }
    lines
}

/// The dom0 commands that make `--disk`'s file (the block hotplug script
/// puts it on a loop device).
pub fn disk_script(disk: Option<u32>) -> String {
    match disk {
        Some(mib) => format!("dd if=/dev/zero of={RUN_DISK} bs=1M count={mib} 2>/dev/null\n"),
        None => String::new(),
    }
}

/// The scenario that runs `spec` with `kernel` as guest `name`.
pub fn scenario(name: &str, kernel: &Path, spec: &RunSpec) -> Result<Scenario> {
    let mut g = GuestSpec::new(name, kernel, &spec.app)
        .args(&spec.extra)
        .memory(spec.memory)
        .mode(spec.mode)
        .timeout(Duration::from_secs(spec.timeout));
    g.extra_config.extend(devices_config(spec.vif, spec.disk));
    let prep = disk_script(spec.disk);
    Ok(match &spec.dom0_script {
        None if prep.is_empty() => Scenario::single(g),
        None => {
            let run = format!("run_guest {} {} {}\n", g.name, g.cfg_path(), spec.timeout);
            Scenario::script(name, vec![g], &format!("{prep}{run}"))
        }
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --dom0-script {}", p.display()))?;
            let mut s = Scenario::script(name, vec![g], &format!("{prep}{text}"));
            s.slack = Duration::from_secs(spec.timeout);
            s
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunSpec {
        RunSpec {
            app: "tour".into(),
            memory: 32,
            mode: GuestMode::Pv,
            timeout: 60,
            vif: false,
            disk: None,
            extra: vec!["trace=events".into()],
            dom0_script: None,
        }
    }

    #[test]
    fn devices_become_config_lines_and_a_disk_file() {
        let lines = devices_config(true, Some(2));
        assert!(lines[0].starts_with("vif = ['mac="), "{lines:?}");
        assert!(lines[1].contains("target=/tmp/run-disk.img"), "{lines:?}");
        assert!(disk_script(Some(2)).contains("count=2"));
        assert!(disk_script(None).is_empty());
    }

    #[test]
    fn a_plain_run_is_one_run_guest_and_a_disk_adds_the_file_first() {
        let k = Path::new("/k");
        let s = scenario("g", k, &spec()).unwrap();
        assert!(s.script.is_none());
        assert_eq!(s.guests[0].cmdline, "app=tour trace=events");
        let s = scenario("g", k, &RunSpec { disk: Some(1), ..spec() }).unwrap();
        let text = s.script.unwrap();
        assert!(text.starts_with("dd if=/dev/zero of=/tmp/run-disk.img bs=1M count=1"), "{text}");
        assert!(text.contains("run_guest g /etc/xen-lab/guests/g.cfg 60"), "{text}");
    }
}
