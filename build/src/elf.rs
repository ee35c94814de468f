//! The shared-library closure of dom0's dynamically linked binaries.
//!
//! `readelf -d` lists each ELF's `NEEDED` entries; a library is looked up in
//! the extracted package tree first, then (for the release the host runs)
//! on the host.

use crate::cmd;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The x86-64 dynamic loader's name (`PT_INTERP` of every binary here).
pub const DYNAMIC_LOADER: &str = "ld-linux-x86-64.so.2";

/// Libraries loaded at run time without a `NEEDED` entry.
pub const EXTRA_LIBS: &[&str] = &["libgcc_s.so.1", DYNAMIC_LOADER];

/// Library directories, relative to a root (besides a release's private
/// library directory, [`LibSearch::extra_dirs`]).
const LIB_DIRS: &[&str] =
    &["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "lib", "usr/lib"];

/// Where libraries are looked for.
#[derive(Debug, Clone)]
pub struct LibSearch<'a> {
    /// The extracted package tree (searched first).
    pub tree: &'a Path,
    /// More directories relative to a root, after [`LIB_DIRS`] (e.g.
    /// `usr/lib/xen-4.20/lib/x86_64-linux-gnu`).
    pub extra_dirs: Vec<String>,
    /// Whether the host's own libraries may fill gaps (only when the tree's
    /// packages come from the Debian release the host runs).
    pub host: bool,
}

/// `NEEDED` entries of an ELF file.
pub fn needed(path: &Path) -> Result<Vec<String>> {
    let out = cmd::stdout(Command::new("readelf").arg("-d").arg(path))
        .with_context(|| format!("cannot read the dynamic section of {}", path.display()))?;
    Ok(parse_needed(&out))
}

/// Parses `readelf -d` output.
pub fn parse_needed(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            let start = l.find('[')? + 1;
            let end = l.rfind(']')?;
            (start < end).then(|| l[start..end].to_string())
        })
        .collect()
}

/// Resolves `path` inside `root`, following symlinks that may be absolute
/// (relative to `root`, as in an extracted package) or relative.
pub fn resolve_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..16 {
        let meta = std::fs::symlink_metadata(&p).ok()?;
        if !meta.file_type().is_symlink() {
            return meta.is_file().then_some(p);
        }
        let target = std::fs::read_link(&p).ok()?;
        p = if target.is_absolute() {
            root.join(target.strip_prefix("/").ok()?)
        } else {
            p.parent()?.join(target)
        };
    }
    None
}

/// Finds a library by soname: in the tree first, then (if allowed) in the
/// host's `/`.
pub fn find_lib(search: &LibSearch<'_>, soname: &str) -> Option<PathBuf> {
    let roots: &[&Path] = if search.host { &[search.tree, Path::new("/")] } else { &[search.tree] };
    let dirs = LIB_DIRS.iter().copied().chain(search.extra_dirs.iter().map(String::as_str));
    let dirs: Vec<&str> = dirs.collect();
    for root in roots {
        for d in &dirs {
            if let Some(p) = resolve_in_root(root, &root.join(d).join(soname)) {
                return Some(p);
            }
        }
    }
    None
}

/// soname → file for every library the given binaries need, transitively,
/// plus [`EXTRA_LIBS`].
pub fn library_closure(
    search: &LibSearch<'_>,
    binaries: &[PathBuf],
) -> Result<BTreeMap<String, PathBuf>> {
    let mut libs = BTreeMap::new();
    let mut todo: Vec<String> = EXTRA_LIBS.iter().map(|s| s.to_string()).collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for b in binaries {
        todo.extend(needed(b)?);
    }
    while let Some(so) = todo.pop() {
        if !seen.insert(so.clone()) {
            continue;
        }
        let Some(file) = find_lib(search, &so) else {
            if search.host {
                bail!(
                    "shared library {so} (needed by dom0's toolstack) is neither in the Debian packages nor on this host: install the Debian package that ships it"
                );
            }
            bail!(
                "shared library {so} (needed by dom0's toolstack) is not in the extracted Debian packages ({}): its package is missing from the fetched library closure",
                search.tree.display()
            );
        };
        todo.extend(needed(&file)?);
        libs.insert(so, file);
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_parsing() {
        let t = " 0x0000000000000001 (NEEDED)             Shared library: [libxlutil.so.4.17]\n 0x000000000000000e (SONAME)  Library soname: [x.so]\n 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]\n";
        assert_eq!(parse_needed(t), vec!["libxlutil.so.4.17", "libc.so.6"]);
    }

    #[test]
    fn finds_host_libc() {
        let mut s =
            LibSearch { tree: Path::new("/nonexistent"), extra_dirs: Vec::new(), host: true };
        let p = find_lib(&s, "libc.so.6");
        assert!(p.is_some_and(|p| p.is_file()));
        s.host = false;
        assert_eq!(find_lib(&s, "libc.so.6"), None);
    }
}
