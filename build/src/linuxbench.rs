//! The Linux side of `cargo xtask bench hypercall`: a kernel module
//! (`build/linux-bench/`) built against Debian's `linux-headers` for the
//! kernel the lab boots, and a busybox initramfs that loads it in a Linux
//! PV DomU (Debian's dom0 kernel, booted as a DomU), copies the module's
//! `BENCH` lines from the kernel log to the console and powers off.

use crate::cmd;
use crate::cpio::Archive;
use crate::debs::Dom0Bundle;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The module's C source.
pub const MODULE_C: &str = include_str!("../linux-bench/xen_hcall_bench.c");
/// Its Kbuild file.
pub const KBUILD: &str = include_str!("../linux-bench/Kbuild");
/// The module's name.
pub const MODULE: &str = "xen_hcall_bench";

/// The Linux DomU's `/init` (busybox sh). Unknown `key=value` words of the
/// kernel command line reach it as environment variables.
pub const INIT_SH: &str = include_str!("linux-domu/hcall-init.sh");

/// Where Debian installs the headers of kernel `version` (`6.1.0-56-amd64`).
pub fn headers_dir(version: &str) -> PathBuf {
    PathBuf::from("/usr/src").join(format!("linux-headers-{version}"))
}

/// The Debian package holding those headers.
pub fn headers_package(version: &str) -> String {
    format!("linux-headers-{version}")
}

/// Makes sure the headers are installed: as root, installs them with
/// apt-get (they pull linux-kbuild and gcc); otherwise explains how.
pub fn ensure_headers(version: &str, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let dir = headers_dir(version);
    if dir.join("Makefile").is_file() {
        return Ok(dir);
    }
    let pkg = headers_package(version);
    let root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if !root.unwrap_or(false) {
        bail!(
            "kernel headers for {version} missing ({} not found): run `apt-get install {pkg}` as root",
            dir.display()
        );
    }
    log(&format!("installing {pkg} (for the Linux comparator module)"));
    let out = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends", &pkg])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run apt-get")?;
    if !out.status.success() || !dir.join("Makefile").is_file() {
        bail!(
            "`apt-get install {pkg}` failed: {}",
            cmd::last_lines(&String::from_utf8_lossy(&out.stderr), 2)
        );
    }
    Ok(dir)
}

/// Builds the module (cached by kernel version and source hash) and
/// returns the `.ko`.
pub fn build_module(cache: &Path, version: &str, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    build_kmod(cache, version, MODULE, MODULE_C, KBUILD, log)
}

/// Builds the out-of-tree module `name` from `source` and its `kbuild`
/// file against Debian's headers for kernel `version`, cached under
/// `cache/linux-bench/NAME-VERSION-HASH/` (older builds of the same
/// module are removed); returns the `.ko`.
pub fn build_kmod(
    cache: &Path,
    version: &str,
    name: &str,
    source: &str,
    kbuild: &str,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf> {
    let key = crate::cache::short_hash(&[version, source, kbuild]);
    let dir = cache.join("linux-bench").join(format!("{name}-{version}-{key}"));
    let ko = dir.join(format!("{name}.ko"));
    if ko.is_file() {
        return Ok(ko);
    }
    let headers = ensure_headers(version, log)?;
    cmd::require_tool("make").context("building the Linux comparator module")?;
    let tmp = cache.join("linux-bench").join(format!(".build-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    cmd::mkdir(&tmp)?;
    std::fs::write(tmp.join(format!("{name}.c")), source)?;
    std::fs::write(tmp.join("Kbuild"), kbuild)?;
    log(&format!("building {name}.ko against {}", headers.display()));
    let out = Command::new("make")
        .arg("-C")
        .arg(&headers)
        .arg(format!("M={}", tmp.display()))
        .arg("modules")
        .output()
        .context("cannot run make")?;
    let built = tmp.join(format!("{name}.ko"));
    if !out.status.success() || !built.is_file() {
        let err = String::from_utf8_lossy(&out.stderr);
        let _ = std::fs::remove_dir_all(&tmp);
        bail!("building {name}.ko failed: {}", cmd::last_lines(&err, 3));
    }
    cmd::mkdir(&dir)?;
    std::fs::rename(&built, &ko)
        .with_context(|| format!("cannot move the module to {}", ko.display()))?;
    let _ = std::fs::remove_dir_all(&tmp);
    // Builds of this module's older sources or kernels are of no further
    // use (and so are those of the time before builds were named).
    if let Ok(rd) = std::fs::read_dir(cache.join("linux-bench")) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let legacy = n.starts_with(|c: char| c.is_ascii_digit());
            if (legacy || n.starts_with(&format!("{name}-"))) && e.path() != dir {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(ko)
}

/// Adds `modules` (and what they depend on) from the lab's module set to a
/// Linux DomU's initramfs, with `/modules` listing them in load order for
/// its `/init` to `insmod`.
pub fn add_modules(
    a: &mut crate::cpio::Archive,
    bundle: &crate::debs::Dom0Bundle,
    modules: &[&str],
) -> Result<()> {
    let mods = crate::kmod::collect(&bundle.root, &bundle.kernel_version, modules)?;
    let mut names = String::new();
    for m in mods {
        a.file(&format!("{}.ko", m.name), 0o644, m.data);
        names.push_str(&m.name);
        names.push('\n');
    }
    a.file("modules", 0o644, names);
    Ok(())
}

/// The base of a Linux DomU's initramfs (shared with `bench boot`): the
/// usual directories, busybox-static as `/bin/busybox` and `applets` as
/// links to it.
pub fn busybox_archive(bundle: &Dom0Bundle, applets: &[&str]) -> Result<Archive> {
    let mut a = Archive::new();
    for d in ["proc", "sys", "dev", "tmp", "root"] {
        a.dir(d);
    }
    let bb = bundle.busybox()?;
    a.file("bin/busybox", 0o755, cmd::read(&bb)?);
    for applet in applets {
        a.symlink(&format!("bin/{applet}"), "busybox");
    }
    Ok(a)
}

/// The Linux DomU's initramfs: busybox, its applets, the module, `/init`.
pub fn initramfs(bundle: &Dom0Bundle, ko: &Path) -> Result<Archive> {
    let mut a = busybox_archive(
        bundle,
        &["sh", "mount", "insmod", "dmesg", "sed", "grep", "tail", "uname", "poweroff", "cat"],
    )?;
    a.file(&format!("{MODULE}.ko"), 0o644, cmd::read(ko)?);
    a.file("init", 0o755, INIT_SH);
    Ok(a)
}

/// Builds the module and writes the Linux DomU's initramfs under `out`.
pub fn prepare(
    cache: &Path,
    bundle: &Dom0Bundle,
    out: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf> {
    if !bundle.release.uses_host_apt() {
        // The headers come from the host's apt, which has only its own
        // Debian release's kernels.
        bail!(
            "the module needs linux-headers-{} from {}, which this host's apt sources lack: run with --no-linux, or with --xen 4.17",
            bundle.kernel_version,
            bundle.release.debian()
        );
    }
    let ko = build_module(cache, &bundle.kernel_version, log)?;
    let a = initramfs(bundle, &ko)?;
    cmd::mkdir(out)?;
    crate::bench::write_ramdisk(out, "bench", &a.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_paths() {
        assert!(KBUILD.contains("obj-m := xen_hcall_bench.o"));
        assert!(MODULE_C.contains("HYPERVISOR_xen_version"));
        assert!(MODULE_C.contains("BENCH-DONE"));
        assert_eq!(
            headers_dir("6.1.0-56-amd64"),
            PathBuf::from("/usr/src/linux-headers-6.1.0-56-amd64")
        );
        assert!(INIT_SH.contains("poweroff -f"));
    }
}
