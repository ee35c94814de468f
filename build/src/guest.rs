//! Building the guest kernel and writing its xl config.

use crate::cmd;
use crate::xlcfg::XlConfig;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest's target (builds `core`/`alloc` on stable).
pub const GUEST_TARGET: &str = "x86_64-unknown-none";

/// The guest kernel's package.
pub const GUEST_PACKAGE: &str = "guest";

/// The built guest.
#[derive(Debug, Clone)]
pub struct GuestBuild {
    /// cargo's output.
    pub elf: PathBuf,
    /// Stable copy: `target/xen/guest.elf`.
    pub stable: PathBuf,
    /// Stripped copy: `target/xen/guest.stripped.elf`.
    pub stripped: PathBuf,
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// `cargo build -p guest --release --target x86_64-unknown-none`, then
/// copies the ELF to `target/xen/guest.elf` (and a stripped copy).
pub fn build(quiet: bool) -> Result<GuestBuild> {
    crate::setup::ensure_rust(false)?;
    let root = crate::workspace_root();
    let mut c = Command::new(cargo());
    c.current_dir(&root).args([
        "build",
        "-p",
        GUEST_PACKAGE,
        "--release",
        "--target",
        GUEST_TARGET,
    ]);
    if quiet {
        c.arg("--quiet");
    }
    cmd::status(&mut c).with_context(|| {
        format!("building the guest failed (is the `{GUEST_TARGET}` target installed? `rustup target add {GUEST_TARGET}`)")
    })?;
    let elf = crate::target_dir().join(GUEST_TARGET).join("release").join(GUEST_PACKAGE);
    if !elf.is_file() {
        bail!("cargo did not produce {}", elf.display());
    }
    let out = crate::xen_out_dir();
    cmd::mkdir(&out)?;
    let stable = out.join("guest.elf");
    std::fs::copy(&elf, &stable).with_context(|| format!("cannot copy to {}", stable.display()))?;
    let stripped = out.join("guest.stripped.elf");
    cmd::output(Command::new("strip").arg("-o").arg(&stripped).arg(&stable))
        .context("cannot strip the guest")?;
    Ok(GuestBuild { elf, stable, stripped })
}

/// Does this ELF carry Xen ELF notes (is it a Xen PV kernel)?
pub fn has_xen_notes(elf: &Path) -> bool {
    cmd::stdout(Command::new("readelf").arg("-n").arg(elf))
        .map(|s| s.lines().any(|l| l.trim_start().starts_with("Xen ")))
        .unwrap_or(false)
}

/// Writes `target/xen/guest.cfg` for a real Xen host.
pub fn write_config(
    kernel: &Path,
    app: &str,
    extra: &[String],
    memory_mib: u32,
    mode: crate::mode::GuestMode,
) -> Result<PathBuf> {
    let kernel = std::fs::canonicalize(kernel)
        .with_context(|| format!("cannot resolve {}", kernel.display()))?;
    let mut cmdline = format!("app={app}");
    for e in extra {
        cmdline.push(' ');
        cmdline.push_str(e);
    }
    let mut cfg = XlConfig::new(&format!("xenpv-{app}"), &kernel.to_string_lossy(), &cmdline);
    cfg.memory_mib = memory_mib;
    cfg.mode = mode;
    let path = crate::xen_out_dir().join("guest.cfg");
    std::fs::write(&path, cfg.render()?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// A file's size for display.
pub fn size_of(p: &Path) -> String {
    std::fs::metadata(p).map_or("?".into(), |m| {
        let b = m.len();
        if b >= 1 << 20 {
            format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
        } else {
            format!("{:.1} KiB", b as f64 / 1024.0)
        }
    })
}
