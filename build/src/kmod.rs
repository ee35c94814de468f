//! dom0's kernel modules: which ones, found in the kernel package's tree,
//! in dependency order (from each module's `.modinfo` `depends=`), and
//! decompressed if Debian ships them compressed.

use crate::cmd;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The modules dom0 loads (their dependencies are added automatically).
pub const DOM0_MODULES: &[&str] = &[
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-privcmd",
    "xenfs",
    "xen-blkback",
    "xen-netback",
    "loop",
    "bridge",
];

/// A module ready for the initramfs.
#[derive(Debug, Clone)]
pub struct Module {
    /// Canonical name (`-` for `_`).
    pub name: String,
    /// The uncompressed `.ko` contents.
    pub data: Vec<u8>,
}

fn canon(name: &str) -> String {
    name.replace('_', "-")
}

fn module_name(file: &str) -> Option<String> {
    for ext in [".ko", ".ko.xz", ".ko.zst", ".ko.gz"] {
        if let Some(stem) = file.strip_suffix(ext) {
            return Some(canon(stem));
        }
    }
    None
}

fn index(dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            index(&p, out);
        } else if let Some(n) = module_name(&e.file_name().to_string_lossy()) {
            out.entry(n).or_insert(p);
        }
    }
}

fn decompress(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some(("xz", "-dc"))
    } else if name.ends_with(".zst") {
        Some(("zstd", "-dcq"))
    } else if name.ends_with(".gz") {
        Some(("gzip", "-dc"))
    } else {
        None
    };
    match tool {
        None => cmd::read(path),
        Some((t, flag)) => Ok(cmd::output(Command::new(t).arg(flag).arg(path))?.stdout),
    }
}

/// The `depends=` list of a module's `.modinfo`.
pub fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"depends=";
    let mut i = 0;
    while let Some(pos) = ko[i..].windows(key.len()).position(|w| w == key) {
        let start = i + pos;
        // Must start a .modinfo string (preceded by NUL).
        if start == 0 || ko[start - 1] == 0 {
            let v = &ko[start + key.len()..];
            let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
            return String::from_utf8_lossy(&v[..end])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(canon)
                .collect();
        }
        i = start + 1;
    }
    Vec::new()
}

/// The names in a `modules.builtin` file (`kernel/drivers/block/loop.ko`
/// per line): modules built into the kernel, nothing to load.
pub fn parse_builtin(text: &str) -> Vec<String> {
    text.lines().filter_map(|l| module_name(l.trim().rsplit('/').next()?)).collect()
}

/// The kernel's module directory in an extracted tree: `lib/modules/<kver>`
/// (Debian 12) or `usr/lib/modules/<kver>` (Debian 13, merged `/usr`).
pub fn modules_dir(tree: &Path, kernel_version: &str) -> PathBuf {
    let usr = tree.join("usr/lib/modules").join(kernel_version);
    if usr.is_dir() {
        usr
    } else {
        tree.join("lib/modules").join(kernel_version)
    }
}

/// Loads `wanted` and their dependencies from the kernel's module directory
/// in `tree` ([`modules_dir`]), dependencies first. Wanted modules that the
/// kernel has built in (`modules.builtin`) are skipped.
pub fn collect(tree: &Path, kernel_version: &str, wanted: &[&str]) -> Result<Vec<Module>> {
    let dir = modules_dir(tree, kernel_version);
    let mut idx = BTreeMap::new();
    index(&dir, &mut idx);
    if idx.is_empty() {
        bail!("no kernel modules under {}", dir.display());
    }
    let builtin: Vec<String> = std::fs::read_to_string(dir.join("modules.builtin"))
        .map(|t| parse_builtin(&t))
        .unwrap_or_default();
    let mut done: Vec<Module> = Vec::new();
    fn visit(
        name: &str,
        idx: &BTreeMap<String, PathBuf>,
        builtin: &[String],
        done: &mut Vec<Module>,
        stack: &mut Vec<String>,
    ) -> Result<()> {
        if done.iter().any(|m| m.name == name) {
            return Ok(());
        }
        if stack.iter().any(|s| s == name) {
            bail!("module dependency cycle through {name}");
        }
        let Some(path) = idx.get(name) else {
            if builtin.iter().any(|b| b == name) {
                return Ok(());
            }
            bail!("kernel module {name} not found in the dom0 kernel package (nor built in)");
        };
        let data = decompress(path)?;
        stack.push(name.to_string());
        for d in depends(&data) {
            visit(&d, idx, builtin, done, stack)?;
        }
        stack.pop();
        done.push(Module { name: name.to_string(), data });
        Ok(())
    }
    for w in wanted {
        visit(&canon(w), &idx, &builtin, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_from_modinfo() {
        let ko = b"\x7fELF....\0license=GPL\0depends=llc,stp\0vermagic=6.1\0";
        assert_eq!(depends(ko), vec!["llc", "stp"]);
        let none = b"\0depends=\0name=x\0";
        assert!(depends(none).is_empty());
        assert!(depends(b"nothing here").is_empty());
    }

    #[test]
    fn builtin_list() {
        let t = "kernel/drivers/block/loop.ko\nkernel/net/bridge/br_netfilter.ko\n\n";
        assert_eq!(parse_builtin(t), vec!["loop", "br-netfilter"]);
    }

    #[test]
    fn names() {
        assert_eq!(module_name("xen_blkback.ko.xz").as_deref(), Some("xen-blkback"));
        assert_eq!(module_name("loop.ko").as_deref(), Some("loop"));
        assert_eq!(module_name("modules.dep"), None);
    }
}
