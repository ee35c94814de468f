//! The Xen test lab: everything needed to boot a Rust PV guest on real Xen
//! inside QEMU, from Debian's packages, on a machine with no Xen installed.
//!
//! Used by `cargo xtask` (the binary in this package) and by the boot tests
//! in the `xen-tests` package.
//!
//! The pieces, one idea per module:
//! - [`cache`]: where downloaded and extracted packages live between runs.
//! - [`cmd`]: running host tools with clear one-line errors.
//! - [`release`]: the Xen releases (4.17 from Debian 12, 4.20 from Debian 13).
//! - [`debs`]: resolving, downloading and extracting Debian packages.
//! - [`elf`]: the shared-library closure of dom0's toolstack binaries.
//! - [`kmod`]: picking the dom0 kernel modules and their load order.
//! - [`cpio`]: a writer for the `newc` cpio format (initramfs).
//! - [`initramfs`]: assembling dom0's initramfs.
//! - [`dom0`]: dom0's `/init` and its shell library (`run_guest`).
//! - [`xlcfg`]: xl domain configuration files.
//! - [`mode`]: PV, PVH or PVH with shadow paging (`$XENPV_MODE`).
//! - [`scenario`]: what to run in one boot, and the parsed results.
//! - [`qemu`]: which QEMU, its command line and the serial-line reader.
//! - [`qemudeb`]: Debian 13's QEMU 10.0, fetched and run without installing it.
//! - [`lab`]: the whole thing: fetch, assemble, boot, collect.
//! - [`guest`]: building the guest kernel with cargo.
//! - [`run`]: the guest and scenario of `cargo xtask run` (and of the docs
//!   test, which runs the chapters' commands).
//! - [`report`]: phase timings.
//! - [`setup`]: installing what the host lacks (the guest's target, QEMU, ...).
//! - [`bench`], [`chart`], [`linuxbench`]: `cargo xtask bench hypercall`
//!   (the Rust guest against a Linux PV DomU's kernel module).
//! - [`netbench`], [`nettool`]: `cargo xtask bench net` (TCP throughput and
//!   request rate against a Linux PV DomU, measured by a static tool in dom0).
//! - [`demo`]: `cargo xtask demo sched` (the credit scheduler's weights
//!   and caps, shown with two `app=spin` guests on one CPU).
//! - [`bootbench`]: `cargo xtask bench boot` (boot time and memory against
//!   a Linux PV DomU with netfront).

pub mod bench;
pub mod blkbench;
pub mod bootbench;
pub mod cache;
pub mod chart;
pub mod cmd;
pub mod cpio;
pub mod crashsite;
pub mod ctool;
pub mod debs;
pub mod demo;
pub mod dom0;
pub mod elf;
pub mod guest;
pub mod httpbench;
pub mod httptool;
pub mod initramfs;
pub mod kmod;
pub mod lab;
pub mod linuxbench;
pub mod migbench;
pub mod migcount;
pub mod mode;
pub mod netbench;
pub mod nettool;
pub mod pagingbench;
pub mod pagingchart;
pub mod qemu;
pub mod qemudeb;
pub mod release;
pub mod report;
pub mod run;
pub mod scenario;
pub mod setup;
pub mod xlcfg;

pub use lab::{Lab, LabOptions};
pub use mode::GuestMode;
pub use release::XenRelease;
pub use scenario::{BootReport, GuestResult, GuestRun, GuestSpec, Scenario};

use std::path::PathBuf;

/// The root of the cargo workspace this package belongs to.
pub fn workspace_root() -> PathBuf {
    // build/ is one level below the workspace root.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The workspace's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// Where the harness writes its outputs: `target/xen/`.
pub fn xen_out_dir() -> PathBuf {
    target_dir().join("xen")
}
