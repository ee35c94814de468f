//! dom0's initramfs: busybox, the Xen toolstack with its libraries, the
//! backend kernel modules, `/init`, the scenario library, and the guests.

use crate::cmd;
use crate::cpio::{Archive, Entry};
use crate::debs::Dom0Bundle;
use crate::dom0;
use crate::elf;
use crate::kmod;
use crate::scenario::Scenario;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Toolstack programs from `xen-utils` (in `/usr/lib/xen-<ver>/bin`).
pub const XEN_TOOLS: &[&str] = &[
    "xl",
    "xenstored",
    "xenconsoled",
    "xen-init-dom0",
    "xenconsole",
    "libxl-save-helper",
    "xen-hvmctx",
    "xenctx",
];

/// Programs from `xenstore-utils` (in `/usr/bin`).
pub const XENSTORE_TOOLS: &[&str] = &[
    "xenstore",
    "xenstore-read",
    "xenstore-write",
    "xenstore-rm",
    "xenstore-ls",
    "xenstore-list",
    "xenstore-exists",
    "xenstore-watch",
    "xenstore-chmod",
];

/// Adds a file from the host (following symlinks), keeping its mode.
fn add_host_file(a: &mut Archive, dest: &str, src: &Path, mode: u32) -> Result<()> {
    a.file(dest, mode, cmd::read(src)?);
    Ok(())
}

/// Adds `rel` (a path in the package tree) to the same place in the
/// archive, as a symlink if it is one there.
fn add_tree_path(a: &mut Archive, root: &Path, rel: &str, mode: u32) -> Result<PathBuf> {
    let p = root.join(rel);
    let meta = std::fs::symlink_metadata(&p)
        .with_context(|| format!("{rel} missing from the extracted Debian packages"))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&p)?;
        a.symlink(rel, &target.to_string_lossy());
        let real = elf::resolve_in_root(root, &p)
            .with_context(|| format!("{rel} is a dangling symlink"))?;
        let real_rel = real.strip_prefix(root).unwrap_or(&real).to_string_lossy().into_owned();
        if !a.contains(&real_rel) {
            add_host_file(a, &real_rel, &real, mode)?;
        }
        Ok(real)
    } else {
        add_host_file(a, rel, &p, mode)?;
        Ok(p)
    }
}

/// Everything except the guests: the same for every boot with one bundle.
pub fn base(bundle: &Dom0Bundle) -> Result<Archive> {
    let root = &bundle.root;
    let mut a = Archive::new();
    for d in
        ["proc", "sys", "dev", "run", "tmp", "root", "mnt", "var/log", "var/lib/xen", "etc/xen"]
    {
        a.dir(d);
    }
    a.add("tmp", Entry::Dir(0o1777));
    a.symlink("var/run", "../run");

    // busybox and its applets.
    let bb = bundle.busybox()?;
    add_host_file(&mut a, "bin/busybox", &bb, 0o755)?;
    let list =
        cmd::stdout(Command::new(&bb).arg("--list-full")).context("cannot list busybox applets")?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !a.contains(applet) {
            a.symlink(applet, "/bin/busybox");
        }
    }

    // The toolstack.
    let mut binaries = Vec::new();
    let release = bundle.release;
    let xen_bin = release.tools_dir();
    for t in XEN_TOOLS {
        let rel = format!("{xen_bin}/{t}");
        binaries.push(add_tree_path(&mut a, root, &rel, 0o755)?);
        a.symlink(&format!("usr/sbin/{t}"), &format!("/{rel}"));
    }
    for t in XENSTORE_TOOLS {
        binaries.push(add_tree_path(&mut a, root, &format!("usr/bin/{t}"), 0o755)?);
    }
    binaries.sort();
    binaries.dedup();
    let search = elf::LibSearch {
        tree: root,
        extra_dirs: vec![release.private_lib_dir()],
        host: release.uses_host_apt(),
    };
    let libs: BTreeMap<String, PathBuf> = elf::library_closure(&search, &binaries)?;
    for (soname, file) in &libs {
        add_host_file(&mut a, &format!("lib/x86_64-linux-gnu/{soname}"), file, 0o755)?;
    }
    a.symlink(
        &format!("lib64/{}", elf::DYNAMIC_LOADER),
        &format!("/lib/x86_64-linux-gnu/{}", elf::DYNAMIC_LOADER),
    );
    a.symlink("usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu");

    // Kernel modules, in load order.
    let modules = kmod::collect(root, &bundle.kernel_version, kmod::DOM0_MODULES)?;
    let mut order = String::new();
    for m in modules {
        order.push_str(&m.name);
        order.push('\n');
        a.file(&format!("lib/modules/{}.ko", m.name), 0o644, m.data);
    }
    a.file(dom0::MODULES_PATH, 0o644, order);

    // Scripts and config.
    a.file("init", 0o755, dom0::INIT_SH);
    a.file(dom0::RELEASE_PATH, 0o644, dom0::release_sh(release));
    a.file(dom0::LIB_PATH, 0o644, dom0::LIB_SH);
    for (path, text) in dom0::BENCH_LIBS {
        a.file(path, 0o644, *text);
    }
    a.file("etc/xen/scripts/vif-bridge", 0o755, dom0::VIF_SCRIPT);
    a.symlink("etc/xen/scripts/vif", "vif-bridge");
    a.file("etc/xen/scripts/block", 0o755, dom0::BLOCK_SCRIPT);
    a.symlink("etc/xen/scripts/blk", "block");
    a.file("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n");
    a.file("etc/group", 0o644, "root:x:0:\ntty:x:5:\n");
    a.file("etc/xen/xl.conf", 0o644, "autoballoon=\"off\"\n");
    Ok(a)
}

/// Adds the scenarios' guests (kernels, configs) and the scenario list.
pub fn add_scenarios(a: &mut Archive, scenarios: &[Scenario]) -> Result<()> {
    let mut kernels: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut script = String::from("# Generated by xtask: the scenarios of this boot.\n");
    let mut files: BTreeMap<&str, &Path> = BTreeMap::new();
    for s in scenarios {
        for (dest, src) in &s.files {
            if files.insert(dest, src).is_none() {
                a.file(dest, 0o755, cmd::read(src)?);
            }
        }
        for g in &s.guests {
            let n = kernels.len();
            let dom0_path = match kernels.get(&g.kernel) {
                Some(p) => p.clone(),
                None => {
                    let p = format!("{}/kernel{n}.elf", dom0::GUEST_KERNEL_DIR);
                    a.file(&p, 0o644, cmd::read(&g.kernel)?);
                    kernels.insert(g.kernel.clone(), p.clone());
                    p
                }
            };
            let mut cfg = g.xl_config(&dom0_path);
            if let Some(rd) = &g.ramdisk {
                let p = format!("{}/ramdisk-{}", dom0::GUEST_KERNEL_DIR, g.name);
                a.file(&p, 0o644, cmd::read(rd)?);
                cfg.extra_lines.push(format!("ramdisk = \"{p}\""));
            }
            a.file(&g.cfg_path(), 0o644, cfg.render()?);
        }
        script.push_str(&s.shell());
    }
    a.file(dom0::SCENARIOS_PATH, 0o644, script);
    Ok(())
}
