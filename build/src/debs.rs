//! Xen, dom0's kernel and the toolstack, from Debian's packages.
//!
//! Nothing is installed on the host: `apt-get download` fetches the `.deb`s
//! into the cache and `dpkg-deb -x` extracts them into one tree per set of
//! package versions, so a security update of the kernel (a new
//! `linux-image-<ver>-amd64`) gets a new tree, and an unchanged set is reused.

use crate::cmd;
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Xen release this lab runs (Debian 12 ships it).
pub const XEN_VERSION: &str = "4.17";

/// The metapackage whose dependency names the current dom0 kernel.
pub const KERNEL_META: &str = "linux-image-amd64";

/// Packages fetched besides the kernel; their library dependencies
/// (`lib*`, `zlib1g`) are fetched too, recursively.
pub fn base_packages() -> Vec<String> {
    vec![
        format!("xen-hypervisor-{XEN_VERSION}-amd64"),
        format!("xen-utils-{XEN_VERSION}"),
        "xenstore-utils".to_string(),
        "busybox-static".to_string(),
    ]
}

/// An extracted set of packages: everything dom0 and Xen need.
#[derive(Debug, Clone)]
pub struct Dom0Bundle {
    /// The extracted tree (as if the packages were installed there).
    pub root: PathBuf,
    /// The uncompressed Xen hypervisor (a multiboot ELF QEMU can `-kernel`).
    pub xen: PathBuf,
    /// dom0's Linux kernel.
    pub vmlinuz: PathBuf,
    /// The dom0 kernel's version, e.g. `6.1.0-56-amd64`.
    pub kernel_version: String,
    /// The `.deb` file names the tree was made from.
    pub debs: Vec<String>,
    /// Cache key of the tree (hash of `debs`).
    pub key: String,
}

/// Is this a library package whose files dom0 may need?
fn is_lib_package(name: &str) -> bool {
    name.starts_with("lib") || name.starts_with("zlib")
}

/// Runs an apt query; if it fails or finds nothing (package lists missing),
/// runs `apt-get update` once and tries again.
fn apt_query(args: &[&str], updated: &mut bool, log: &mut dyn FnMut(&str)) -> Result<String> {
    let program = args[0];
    let run = || cmd::stdout(Command::new(program).args(&args[1..]).env("LC_ALL", "C"));
    match run() {
        Ok(out) if !out.trim().is_empty() => return Ok(out),
        Ok(_) | Err(_) if *updated => {}
        Ok(_) | Err(_) => {
            cmd::require_tool(program)?;
            log("apt package lists missing or stale: running `apt-get update`");
            apt_update()?;
            *updated = true;
        }
    }
    match run() {
        Ok(out) if !out.trim().is_empty() => Ok(out),
        Ok(_) => bail!(
            "`{}` found nothing even after `apt-get update`: is this Debian 12 (bookworm) with its main archive in the apt sources?",
            args.join(" ")
        ),
        Err(e) => Err(e),
    }
}

fn apt_update() -> Result<()> {
    cmd::require_tool("apt-get")?;
    let out = Command::new("apt-get")
        .args(["update", "-q"])
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run apt-get update")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let hint = if err.contains("Permission denied") || err.contains("are you root") {
            " (run `apt-get update` as root once)"
        } else {
            ""
        };
        bail!("`apt-get update` failed{hint}: {}", cmd::last_lines(&err, 2));
    }
    Ok(())
}

/// Parses `apt-cache depends` output into the (hard) dependency names per
/// package, skipping virtual packages (`<name>`).
pub fn parse_depends(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            out.push((line.trim().to_string(), Vec::new()));
            continue;
        }
        let t = line.trim().trim_start_matches('|');
        let dep = t.strip_prefix("Depends:").or_else(|| t.strip_prefix("PreDepends:"));
        if let (Some(dep), Some(last)) = (dep, out.last_mut()) {
            let dep = dep.trim();
            if !dep.starts_with('<') && !dep.is_empty() {
                let name = dep.split(':').next().unwrap_or(dep).to_string();
                last.1.push(name);
            }
        }
    }
    out
}

/// The kernel package `linux-image-amd64` currently depends on.
fn resolve_kernel(updated: &mut bool, log: &mut dyn FnMut(&str)) -> Result<String> {
    let text = apt_query(&["apt-cache", "depends", KERNEL_META], updated, log)?;
    parse_depends(&text)
        .into_iter()
        .flat_map(|(_, deps)| deps)
        .find(|d| d.starts_with("linux-image-") && d != KERNEL_META)
        .ok_or_else(|| {
            anyhow::anyhow!("`apt-cache depends {KERNEL_META}` names no linux-image-<ver> package")
        })
}

/// The roots plus their library dependencies, recursively.
fn package_closure(
    roots: &[String],
    updated: &mut bool,
    log: &mut dyn FnMut(&str),
) -> Result<BTreeSet<String>> {
    let mut all: BTreeSet<String> = roots.iter().cloned().collect();
    let mut todo: Vec<String> = roots.to_vec();
    while !todo.is_empty() {
        let mut args = vec![
            "apt-cache",
            "depends",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
        ];
        args.extend(todo.iter().map(String::as_str));
        let text = apt_query(&args, updated, log)?;
        let mut next = Vec::new();
        for (_, deps) in parse_depends(&text) {
            for d in deps {
                if is_lib_package(&d) && all.insert(d.clone()) {
                    next.push(d);
                }
            }
        }
        todo = next;
    }
    Ok(all)
}

/// One line of `apt-get download --print-uris`: (file name, size).
pub fn parse_print_uris(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter(|l| l.starts_with('\''))
        .filter_map(|l| {
            let mut it = l.split_whitespace().skip(1);
            let file = it.next()?.to_string();
            let size = it.next()?.parse().unwrap_or(0);
            Some((file, size))
        })
        .collect()
}

/// Downloads (if not cached) and extracts everything; returns the tree.
pub fn fetch(cache: &Path, log: &mut dyn FnMut(&str)) -> Result<Dom0Bundle> {
    for t in ["apt-get", "apt-cache", "dpkg-deb"] {
        cmd::require_tool(t).context("fetching Xen and dom0 needs Debian's apt")?;
    }
    let resolved = match read_resolved(cache) {
        Some(r) => r,
        None => {
            let r = resolve(log)?;
            write_resolved(cache, &r);
            r
        }
    };
    let kernel_pkg = resolved
        .iter()
        .map(|(f, _)| package_of(f))
        .find(|p| p.starts_with("linux-image-"))
        .context("no linux-image package among the resolved packages")?
        .to_string();
    let kernel_version = kernel_pkg.strip_prefix("linux-image-").unwrap_or(&kernel_pkg).to_string();
    let pkgs: BTreeSet<String> = resolved.iter().map(|(f, _)| package_of(f).to_string()).collect();
    let uris = resolved;

    let debs_dir = cache.join("debs");
    cmd::mkdir(&debs_dir)?;
    let missing: Vec<&(String, u64)> =
        uris.iter().filter(|(f, _)| !debs_dir.join(f).is_file()).collect();
    if missing.is_empty() {
        log(&format!("{} packages already cached in {}", uris.len(), debs_dir.display()));
    } else {
        let bytes: u64 = missing.iter().map(|(_, s)| s).sum();
        log(&format!(
            "downloading {} of {} packages ({:.1} MiB) into {}",
            missing.len(),
            uris.len(),
            bytes as f64 / (1024.0 * 1024.0),
            debs_dir.display()
        ));
        download(&pkgs, &debs_dir)?;
        for (f, _) in &missing {
            if !debs_dir.join(f).is_file() {
                bail!("`apt-get download` did not produce {f}");
            }
        }
    }

    let mut debs: Vec<String> = uris.into_iter().map(|(f, _)| f).collect();
    debs.sort();
    let key = crate::cache::short_hash(&debs.iter().map(String::as_str).collect::<Vec<_>>());
    let trees = cache.join("trees");
    let root = trees.join(&key);
    if !root.join(".complete").is_file() {
        log(&format!("extracting {} packages into {}", debs.len(), root.display()));
        extract_all(&debs_dir, &debs, &trees, &key)?;
    }
    prune(&trees, &key);

    let xen = root.join("xen.elf");
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{kernel_version}"));
    for p in [&xen, &vmlinuz] {
        if !p.is_file() {
            bail!("{} missing from the extracted packages", p.display());
        }
    }
    Ok(Dom0Bundle { root, xen, vmlinuz, kernel_version, debs, key })
}

/// The package name of a `.deb` file name (`name_version_arch.deb`).
pub fn package_of(deb: &str) -> &str {
    deb.split('_').next().unwrap_or(deb)
}

/// Asks apt which `.deb`s (file name, size) make up the lab.
fn resolve(log: &mut dyn FnMut(&str)) -> Result<Vec<(String, u64)>> {
    let mut updated = false;
    let kernel_pkg = resolve_kernel(&mut updated, log)?;
    let mut roots = base_packages();
    roots.push(kernel_pkg);
    let pkgs = package_closure(&roots, &mut updated, log)?;
    let mut args = vec!["apt-get", "download", "--print-uris"];
    args.extend(pkgs.iter().map(String::as_str));
    let uris = parse_print_uris(&apt_query(&args, &mut updated, log)?);
    if uris.len() != pkgs.len() {
        bail!(
            "`apt-get download --print-uris` listed {} files for {} packages ({})",
            uris.len(),
            pkgs.len(),
            pkgs.iter().cloned().collect::<Vec<_>>().join(" ")
        );
    }
    Ok(uris)
}

/// A fingerprint of apt's package lists: resolution results stay valid
/// until `apt-get update` changes them.
fn lists_fingerprint() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut parts = Vec::new();
    for e in std::fs::read_dir("/var/lib/apt/lists").ok()?.flatten() {
        let m = e.metadata().ok()?;
        if m.is_file() {
            parts.push(format!("{} {} {}", e.file_name().to_string_lossy(), m.size(), m.mtime()));
        }
    }
    if parts.is_empty() {
        return None;
    }
    parts.sort();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    Some(crate::cache::short_hash(&refs))
}

fn resolved_path(cache: &Path) -> Option<PathBuf> {
    Some(cache.join("resolved").join(lists_fingerprint()?))
}

fn read_resolved(cache: &Path) -> Option<Vec<(String, u64)>> {
    let text = std::fs::read_to_string(resolved_path(cache)?).ok()?;
    let r: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| {
            let (f, s) = l.split_once(' ')?;
            Some((f.to_string(), s.parse().ok()?))
        })
        .collect();
    (!r.is_empty()).then_some(r)
}

fn write_resolved(cache: &Path, r: &[(String, u64)]) {
    let Some(p) = resolved_path(cache) else {
        return;
    };
    if let Some(dir) = p.parent() {
        // Only the current fingerprint is worth keeping.
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::create_dir_all(dir);
    }
    let text: String = r.iter().map(|(f, s)| format!("{f} {s}\n")).collect();
    let _ = std::fs::write(p, text);
}

/// `apt-get download` into a private directory, then move into `dest`.
fn download(pkgs: &BTreeSet<String>, dest: &Path) -> Result<()> {
    let tmp = dest.join(format!(".download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    cmd::mkdir(&tmp)?;
    let mut c = Command::new("apt-get");
    c.arg("download").arg("-q");
    if is_root() {
        // apt's `_apt` sandbox user cannot write into root's cache.
        c.args(["-o", "APT::Sandbox::User=root"]);
    }
    let res = cmd::status(c.args(pkgs).current_dir(&tmp))
        .context("downloading Debian packages failed (is the Debian archive reachable?)");
    if res.is_ok() {
        for e in std::fs::read_dir(&tmp)?.flatten() {
            let to = dest.join(e.file_name());
            std::fs::rename(e.path(), &to)
                .with_context(|| format!("cannot move download to {}", to.display()))?;
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    res
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Extracts every deb into `trees/.tmp-KEY-PID`, decompresses Xen, then
/// renames the result to `trees/KEY` (atomic for concurrent runs).
fn extract_all(debs_dir: &Path, debs: &[String], trees: &Path, key: &str) -> Result<()> {
    let tmp = trees.join(format!(".tmp-{key}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    cmd::mkdir(&tmp)?;
    for d in debs {
        cmd::output(Command::new("dpkg-deb").arg("-x").arg(debs_dir.join(d)).arg(&tmp))
            .with_context(|| {
                format!(
                    "cannot extract {d} (a broken download? delete it from {})",
                    debs_dir.display()
                )
            })?;
    }
    let gz = tmp.join("boot").join(format!("xen-{XEN_VERSION}-amd64.gz"));
    let xen = cmd::output(Command::new("gzip").arg("-dc").arg(&gz))
        .with_context(|| format!("cannot decompress {}", gz.display()))?;
    std::fs::write(tmp.join("xen.elf"), &xen.stdout)?;
    std::fs::write(tmp.join(".complete"), debs.join("\n"))?;
    let dest = trees.join(key);
    if std::fs::rename(&tmp, &dest).is_err() {
        // Another run got there first: use theirs.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dest.join(".complete").is_file() {
            bail!("cannot move extracted tree to {}", dest.display());
        }
    }
    Ok(())
}

/// Removes trees of other package sets (old kernels); best effort.
fn prune(trees: &Path, keep: &str) {
    let Ok(rd) = std::fs::read_dir(trees) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name != keep && !name.starts_with('.') {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_parsing() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\nxen-utils-4.17\n  Depends: libc6\n  Depends: <python3:any>\n    python3\n |Depends: libyajl2\n  PreDepends: zlib1g\n";
        let p = parse_depends(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].1, vec!["linux-image-6.1.0-56-amd64"]);
        assert_eq!(p[1].1, vec!["libc6", "libyajl2", "zlib1g"]);
    }

    #[test]
    fn print_uris_parsing() {
        let text =
            "'http://x/busybox.deb' busybox-static_1%3a1.35_amd64.deb 928188 SHA256:3d\nnoise\n";
        assert_eq!(
            parse_print_uris(text),
            vec![("busybox-static_1%3a1.35_amd64.deb".to_string(), 928188)]
        );
    }

    #[test]
    fn package_names() {
        assert_eq!(
            package_of("linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb"),
            "linux-image-6.1.0-56-amd64"
        );
        assert_eq!(package_of("busybox-static_1%3a1.35_amd64.deb"), "busybox-static");
    }

    #[test]
    fn lib_packages() {
        assert!(is_lib_package("libxenmisc4.17"));
        assert!(is_lib_package("zlib1g"));
        assert!(!is_lib_package("python3"));
    }
}
