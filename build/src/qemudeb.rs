//! Debian 13's QEMU (10.0) on a Debian 12 host, without installing it.
//!
//! Why: Debian 12's QEMU 7.2 sometimes loses a PVH guest's mapping in its
//! software emulation of nested paging, and the guest dies with a triple
//! fault (docs/pvh.md, "The PVH triple faults"). QEMU 10's TCG page walker
//! was rewritten; `XENPV_QEMU=debian13` boots the lab with it. It did not
//! cure the triple faults (the same chapter says what it did instead), so
//! it is an opt-in for comparing emulators, not the default.
//!
//! How: the same private Debian 13 apt configuration as Xen 4.20
//! ([`crate::debs::Apt`]) resolves `qemu-system-x86`, its firmware
//! (`qemu-system-data`: the `-kernel` option ROMs; `seabios`: the BIOS and
//! VGA BIOS) and its shared libraries (`lib*` dependencies, recursively,
//! glibc included). The `.deb`s share the cache's `debs/` directory and
//! are extracted into `CACHE/qemu/qemu-debian13-HASH/` (the hash covers
//! every `.deb` name: a security update makes a new tree). The binary runs
//! through Debian 13's own dynamic loader from that tree
//! (`ld-linux-x86-64.so.2 --library-path TREE/usr/lib/x86_64-linux-gnu`),
//! so Debian 12's older glibc never meets it, with `-L` naming the tree's
//! firmware directories. Two more things keep the host's QEMU 7.2 out:
//! `QEMU_MODULE_DIR` names an empty directory of the tree and `-audio none`
//! stops the audio back-end probe (otherwise QEMU 10 tries the host's 7.2
//! modules in `/usr/lib/x86_64-linux-gnu/qemu` and prints that they are
//! from another build). The fetch checks, with the loader's `--list`, that
//! every library resolves inside the tree.
//!
//! For use by hand (or in a wrapper like one adding `-d int`), the tree has
//! a `qemu-system-x86_64` script that does the same.

use crate::cmd;
use crate::debs::{self, Apt};
use crate::qemu::QemuProgram;
use crate::release::XenRelease;
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// The packages asked for; their `lib*` dependencies come too.
pub const PACKAGES: [&str; 3] = ["qemu-system-x86", "qemu-system-data", "seabios"];

/// The Debian release the packages come from (the one of Xen 4.20, whose
/// private apt configuration is shared).
pub const RELEASE: XenRelease = XenRelease::V4_20;

/// The trees' directory name prefix under `CACHE/qemu/`.
pub const TREE_PREFIX: &str = "qemu-debian13-";

/// Debian 13's dynamic loader, in the tree.
pub const LOADER: &str = "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";

/// Where the tree's shared libraries are.
pub const LIB_DIR: &str = "usr/lib/x86_64-linux-gnu";

/// The QEMU binary, in the tree.
pub const BINARY: &str = "usr/bin/qemu-system-x86_64";

/// Firmware directories, searched in this order (`-L`): QEMU's option ROMs,
/// then SeaBIOS (Debian 13 keeps `bios-256k.bin` only there).
pub const FIRMWARE_DIRS: [&str; 2] = ["usr/share/qemu", "usr/share/seabios"];

/// An empty directory for `QEMU_MODULE_DIR` (created by the fetch).
pub const MODULE_DIR: &str = "qemu-modules";

/// The hand-use wrapper script, in the tree.
pub const WRAPPER: &str = "qemu-system-x86_64";

/// Files a boot of the lab needs: the loader and binary, the BIOS and VGA
/// BIOS of the q35 machine, and the option ROMs of `-kernel` with a
/// multiboot image (Xen).
pub const REQUIRED: [&str; 6] = [
    LOADER,
    BINARY,
    "usr/share/seabios/bios-256k.bin",
    "usr/share/seabios/vgabios-stdvga.bin",
    "usr/share/qemu/multiboot_dma.bin",
    "usr/share/qemu/linuxboot_dma.bin",
];

/// Shown when the fetched QEMU is not what the lab expects.
pub const NAME: &str = "Debian 13's QEMU 10.0";

/// How to run the QEMU of the tree at `root`.
pub fn program(root: &Path) -> QemuProgram {
    let mut args: Vec<OsString> =
        vec!["--library-path".into(), root.join(LIB_DIR).into(), root.join(BINARY).into()];
    for d in FIRMWARE_DIRS {
        args.push("-L".into());
        args.push(root.join(d).into());
    }
    args.extend(["-audio".into(), "none".into()]);
    QemuProgram {
        program: root.join(LOADER),
        args,
        env: vec![("QEMU_MODULE_DIR".into(), root.join(MODULE_DIR).into())],
        name: format!("{NAME} ({})", root.display()),
    }
}

/// The shell wrapper that runs `program` with the caller's arguments.
pub fn render_wrapper(program: &QemuProgram) -> String {
    let q = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let mut s =
        format!("#!/bin/sh\n# {}: written by the lab (build/src/qemudeb.rs).\n", program.name);
    for (k, v) in &program.env {
        s.push_str(&format!("export {}={}\n", k.to_string_lossy(), q(v)));
    }
    s.push_str("exec ");
    s.push_str(&q(program.program.as_os_str()));
    for a in &program.args {
        s.push_str(" \\\n  ");
        s.push_str(&q(a));
    }
    s.push_str(" \\\n  \"$@\"\n");
    s
}

/// The directory name of the tree made from `debs`.
pub fn tree_name(debs: &[String]) -> String {
    let parts: Vec<&str> = debs.iter().map(String::as_str).collect();
    format!("{TREE_PREFIX}{}", crate::cache::short_hash(&parts))
}

/// The libraries the loader's `--list` output resolves outside `root`, or
/// does not find (each as its line, trimmed).
pub fn libraries_outside(list: &str, root: &Path) -> Vec<String> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("linux-vdso"))
        .filter(|l| {
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => l,
            };
            let path = path.split(" (").next().unwrap_or(path).trim();
            path == "not found" || !Path::new(path).starts_with(root)
        })
        .map(str::to_string)
        .collect()
}

/// Fetches (or reuses) Debian 13's QEMU under `cache` and returns how to
/// run it.
pub fn fetch(cache: &Path, log: &mut dyn FnMut(&str)) -> Result<QemuProgram> {
    for t in ["apt-get", "apt-cache", "dpkg-deb"] {
        cmd::require_tool(t).with_context(|| format!("fetching {NAME} needs Debian's apt"))?;
    }
    let apt = Apt::for_release(cache, RELEASE)?;
    apt.refresh_if_stale(log)?;
    let roots: Vec<String> = PACKAGES.iter().map(|p| p.to_string()).collect();
    let resolved = debs::resolve_cached(cache, &apt, "qemu-debian13", |apt| {
        debs::resolve_closure(apt, &roots, &mut false, log)
    })
    .with_context(|| format!("cannot resolve {NAME}'s packages"))?;
    let debs_dir = cache.join("debs");
    let debs = debs::download_missing(&apt, &resolved, &debs_dir, log)?;
    let trees = cache.join("qemu");
    let key = tree_name(&debs);
    let root = trees.join(&key);
    if !root.join(".complete").is_file() {
        log(&format!("extracting {} packages of {NAME} into {}", debs.len(), root.display()));
        extract(&debs_dir, &debs, &trees, &key)?;
    }
    prune(&trees, &key);
    let program = program(&root);
    let wrapper = root.join(WRAPPER);
    log(&format!("{NAME}: {} (a wrapper for use by hand: {})", root.display(), wrapper.display()));
    Ok(program)
}

/// Extracts into `trees/.tmp-KEY-PID`, checks the result, writes the
/// wrapper, then renames it to `trees/KEY`.
fn extract(debs_dir: &Path, debs: &[String], trees: &Path, key: &str) -> Result<()> {
    let tmp = trees.join(format!(".tmp-{key}-{}", std::process::id()));
    debs::extract_debs(debs_dir, debs, &tmp)?;
    for f in REQUIRED {
        if !tmp.join(f).is_file() {
            let _ = std::fs::remove_dir_all(&tmp);
            bail!("{f} is missing from {NAME}'s packages ({})", PACKAGES.join(", "));
        }
    }
    cmd::mkdir(&tmp.join(MODULE_DIR))?;
    let checked = check_libraries(&tmp).and_then(|()| {
        let wrapper = tmp.join(WRAPPER);
        let final_program = program(&trees.join(key));
        std::fs::write(&wrapper, render_wrapper(&final_program))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
        std::fs::write(tmp.join(".complete"), debs.join("\n"))?;
        Ok(())
    });
    if let Err(e) = checked {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let dest = trees.join(key);
    if std::fs::rename(&tmp, &dest).is_err() {
        // Another run got there first: use theirs.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dest.join(".complete").is_file() {
            bail!("cannot move the extracted {NAME} to {}", dest.display());
        }
    }
    Ok(())
}

/// Every library of the binary must come from the tree at `root`.
fn check_libraries(root: &Path) -> Result<()> {
    let out = cmd::output(
        Command::new(root.join(LOADER))
            .arg("--library-path")
            .arg(root.join(LIB_DIR))
            .arg("--list")
            .arg(root.join(BINARY)),
    )
    .with_context(|| format!("{NAME}'s loader cannot list the binary's libraries"))?;
    let outside = libraries_outside(&String::from_utf8_lossy(&out.stdout), root);
    if !outside.is_empty() {
        bail!(
            "{NAME} would load libraries from outside its tree (a dependency missing from the \
             resolved packages): {}",
            outside.join("; ")
        );
    }
    Ok(())
}

/// Removes every tree but `keep` (and extractions under way); best effort.
fn prune(trees: &Path, keep: &str) {
    let Ok(rd) = std::fs::read_dir(trees) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name != keep && name.starts_with(TREE_PREFIX) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_runs_through_the_trees_loader() {
        let p = program(Path::new("/c/qemu/qemu-debian13-1"));
        assert_eq!(
            p.program,
            Path::new("/c/qemu/qemu-debian13-1/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        );
        let args: Vec<_> = p.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            [
                "--library-path",
                "/c/qemu/qemu-debian13-1/usr/lib/x86_64-linux-gnu",
                "/c/qemu/qemu-debian13-1/usr/bin/qemu-system-x86_64",
                "-L",
                "/c/qemu/qemu-debian13-1/usr/share/qemu",
                "-L",
                "/c/qemu/qemu-debian13-1/usr/share/seabios",
                "-audio",
                "none",
            ]
        );
        assert_eq!(
            p.env,
            [("QEMU_MODULE_DIR".into(), "/c/qemu/qemu-debian13-1/qemu-modules".into())]
        );
    }

    #[test]
    fn wrapper_script() {
        let p = program(Path::new("/c/it's"));
        let w = render_wrapper(&p);
        assert!(w.starts_with("#!/bin/sh\n"), "{w}");
        assert!(w.contains("export QEMU_MODULE_DIR='/c/it'\\''s/qemu-modules'\n"), "{w}");
        assert!(w.contains("exec '/c/it'\\''s/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'"));
        assert!(w.contains("'-audio' \\\n  'none' \\\n  \"$@\"\n"), "{w}");
    }

    #[test]
    fn tree_names_follow_the_packages() {
        let a = tree_name(&["qemu-system-x86_1%3a10.0.13+ds-0+deb13u1_amd64.deb".to_string()]);
        let b = tree_name(&["qemu-system-x86_1%3a10.0.14+ds-0+deb13u1_amd64.deb".to_string()]);
        assert!(a.starts_with(TREE_PREFIX) && b.starts_with(TREE_PREFIX), "{a} {b}");
        assert_ne!(a, b);
    }

    #[test]
    fn libraries_from_outside_the_tree_are_named() {
        let root = Path::new("/c/q");
        let list = "\tlinux-vdso.so.1 (0x00007f695d504000)\n\
            \tlibcapstone.so.5 => /c/q/usr/lib/x86_64-linux-gnu/libcapstone.so.5 (0x00007f695ae00000)\n\
            \tlibfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x00007f695aa00000)\n\
            \tlibbar.so.2 => not found\n\
            \t/c/q/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 (0x00007f0000000000)\n";
        assert_eq!(
            libraries_outside(list, root),
            [
                "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x00007f695aa00000)",
                "libbar.so.2 => not found"
            ]
        );
        assert!(libraries_outside("", root).is_empty());
    }
}
