//! dom0's kernel modules: which ones, found in the kernel package's tree,
//! in dependency order (from each module's `.modinfo` `depends=`), and
//! decompressed if Debian ships them compressed.

use crate::cmd;
use anyhow::{bail, Context, Result};
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

/// Loads `wanted` and their dependencies from `lib/modules/<kver>` in `tree`,
/// dependencies first.
pub fn collect(tree: &Path, kernel_version: &str, wanted: &[&str]) -> Result<Vec<Module>> {
    let dir = tree.join("lib/modules").join(kernel_version);
    let mut idx = BTreeMap::new();
    index(&dir, &mut idx);
    if idx.is_empty() {
        bail!("no kernel modules under {}", dir.display());
    }
    let mut done: Vec<Module> = Vec::new();
    fn visit(
        name: &str,
        idx: &BTreeMap<String, PathBuf>,
        done: &mut Vec<Module>,
        stack: &mut Vec<String>,
    ) -> Result<()> {
        if done.iter().any(|m| m.name == name) {
            return Ok(());
        }
        if stack.iter().any(|s| s == name) {
            bail!("module dependency cycle through {name}");
        }
        let path = idx.get(name).with_context(|| {
            format!("kernel module {name} not found in the dom0 kernel package")
        })?;
        let data = decompress(path)?;
        stack.push(name.to_string());
        for d in depends(&data) {
            visit(&d, idx, done, stack)?;
        }
        stack.pop();
        done.push(Module { name: name.to_string(), data });
        Ok(())
    }
    for w in wanted {
        visit(&canon(w), &idx, &mut done, &mut Vec::new())?;
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
    fn names() {
        assert_eq!(module_name("xen_blkback.ko.xz").as_deref(), Some("xen-blkback"));
        assert_eq!(module_name("loop.ko").as_deref(), Some("loop"));
        assert_eq!(module_name("modules.dep"), None);
    }
}
