//! Xen, dom0's kernel and the toolstack, from Debian's packages.
//!
//! Nothing is installed on the host: `apt-get download` fetches the `.deb`s
//! into the cache and `dpkg-deb -x` extracts them into one tree per set of
//! package versions, so a security update of the kernel (a new
//! `linux-image-<ver>-amd64`) gets a new tree, and an unchanged set is reused.
//!
//! Each [`XenRelease`] comes from one Debian release, library closure
//! included: Xen 4.17 from the host's own apt sources (Debian 12), Xen 4.20
//! from Debian 13 through a private apt configuration under the cache
//! ([`Apt`]), which leaves the host's sources, lists, caches and status alone.

use crate::cmd;
use crate::release::XenRelease;
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// The metapackage whose dependency names the current dom0 kernel.
pub const KERNEL_META: &str = "linux-image-amd64";

/// The mirror used when the host's apt sources name none.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Debian's archive keys (Debian 12's `debian-archive-keyring` includes
/// Debian 13's).
pub const ARCHIVE_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A private package list older than this is refreshed (`apt-get update`).
pub const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// How apt is run for one release: the host's configuration as it is, or a
/// private one (sources list, lists, caches, an empty status file) under
/// `CACHE/apt/SUITE/`.
#[derive(Debug, Clone)]
pub struct Apt {
    /// `-o` options given to every apt command (empty: the host's apt).
    options: Vec<String>,
    /// apt's package lists (fingerprinted to know when to resolve again).
    lists: PathBuf,
    /// The private configuration's directory (`None`: the host's apt).
    private: Option<PathBuf>,
    /// The release, for messages.
    release: XenRelease,
}

/// The one-line sources list of a private configuration.
pub fn render_sources_list(mirror: &str, suite: &str, keyring: Option<&str>) -> String {
    let opts = keyring.map_or(String::new(), |k| format!("[signed-by={k}] "));
    format!("deb {opts}{} {suite} main\n", mirror.trim_end_matches('/'))
}

/// The Debian mirror named in apt sources (one-line `.list` or deb822
/// `.sources` text): the first `http(s)://HOST/.../debian` URI that is not
/// commented out (security and other archives are skipped).
pub fn debian_mirror(sources: &[String]) -> Option<String> {
    sources.iter().flat_map(|t| t.lines()).find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        line.split_whitespace()
            .map(|w| w.trim_end_matches('/'))
            .find(|w| {
                (w.starts_with("http://") || w.starts_with("https://")) && w.ends_with("/debian")
            })
            .map(str::to_string)
    })
}

/// The host's apt sources: `/etc/apt/sources.list` and the `.list` and
/// `.sources` files of `/etc/apt/sources.list.d`.
fn host_sources() -> Vec<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect()
}

/// Whether a private package list last refreshed `age` ago (`None`: never)
/// must be refreshed.
pub fn lists_stale(age: Option<Duration>) -> bool {
    age.is_none_or(|a| a > LISTS_MAX_AGE)
}

impl Apt {
    /// The apt configuration for `release`; a private one is created (or
    /// updated) under `cache`, but not refreshed: see [`Apt::refresh_if_stale`].
    pub fn for_release(cache: &Path, release: XenRelease) -> Result<Self> {
        if release.uses_host_apt() {
            return Ok(Self {
                options: Vec::new(),
                lists: PathBuf::from("/var/lib/apt/lists"),
                private: None,
                release,
            });
        }
        let dir = cache.join("apt").join(release.suite());
        let lists = dir.join("lists");
        let cache_dir = dir.join("cache");
        for d in [lists.join("partial"), cache_dir.join("archives").join("partial")] {
            cmd::mkdir(&d)?;
        }
        let mirror = debian_mirror(&host_sources()).unwrap_or_else(|| DEFAULT_MIRROR.to_string());
        let keyring = Path::new(ARCHIVE_KEYRING).is_file().then_some(ARCHIVE_KEYRING);
        let sources = dir.join("sources.list");
        let text = render_sources_list(&mirror, release.suite(), keyring);
        if std::fs::read_to_string(&sources).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&sources, &text)
                .with_context(|| format!("cannot write {}", sources.display()))?;
            // A new source: the old lists no longer say what it has.
            let _ = std::fs::remove_file(dir.join("updated"));
        }
        let status = dir.join("status");
        if !status.is_file() {
            std::fs::write(&status, "")
                .with_context(|| format!("cannot write {}", status.display()))?;
        }
        let o = |k: &str, v: &Path| format!("{k}={}", v.display());
        let mut options = vec![
            o("Dir::Etc::sourcelist", &sources),
            "Dir::Etc::sourceparts=/dev/null".to_string(),
            o("Dir::State::Lists", &lists),
            o("Dir::Cache", &cache_dir),
            // Nothing installed: the host's packages play no part.
            o("Dir::State::status", &status),
            // The host's pins are about the host's sources.
            "Dir::Etc::preferences=/dev/null".to_string(),
            "Dir::Etc::preferencesparts=/dev/null".to_string(),
            "Acquire::Languages=none".to_string(),
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_string(),
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".to_string(),
            "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".to_string(),
        ];
        if crate::setup::is_root() {
            // apt's `_apt` sandbox user cannot write into root's cache.
            options.push("APT::Sandbox::User=root".to_string());
        }
        Ok(Self { options, lists, private: Some(dir), release })
    }

    /// An apt command (`apt-get`, `apt-cache`) with this configuration.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for o in &self.options {
            c.arg("-o").arg(o);
        }
        c.env("LC_ALL", "C");
        c
    }

    /// The `-o` options (empty for the host's apt).
    pub fn options(&self) -> &[String] {
        &self.options
    }

    /// Refreshes a private package list missing or older than
    /// [`LISTS_MAX_AGE`]. A failed refresh of an existing list is only a
    /// warning (the old list still names downloadable packages for a while).
    pub fn refresh_if_stale(&self, log: &mut dyn FnMut(&str)) -> Result<()> {
        let Some(dir) = &self.private else {
            return Ok(());
        };
        let stamp = dir.join("updated");
        let age = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .map(|t| SystemTime::now().duration_since(t).unwrap_or_default());
        if !lists_stale(age) {
            return Ok(());
        }
        log(&format!(
            "refreshing the private {} package list in {}",
            self.release.debian(),
            dir.display()
        ));
        match self.update() {
            Ok(()) => Ok(()),
            Err(e) if age.is_some() => {
                log(&format!("warning: {e:#}; using the package list from before"));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `apt-get update` with this configuration.
    pub fn update(&self) -> Result<()> {
        cmd::require_tool("apt-get")?;
        let out = self
            .command("apt-get")
            .args(["update", "-q"])
            .stdin(std::process::Stdio::null())
            .output()
            .context("cannot run apt-get update")?;
        let err = String::from_utf8_lossy(&out.stderr);
        // apt-get update exits 0 even when a source failed, saying so with W:/E:.
        let failed = !out.status.success()
            || (self.private.is_some()
                && err.lines().any(|l| l.starts_with("E:") || l.starts_with("W:")));
        if failed {
            let hint = if err.contains("Permission denied") || err.contains("are you root") {
                " (run `apt-get update` as root once)"
            } else if err.contains("NO_PUBKEY") {
                " (Debian's archive keys are missing: install or upgrade debian-archive-keyring)"
            } else {
                ""
            };
            let which = match &self.private {
                Some(d) => format!(" (private {} list, {})", self.release.debian(), d.display()),
                None => String::new(),
            };
            bail!("`apt-get update`{which} failed{hint}: {}", cmd::last_lines(&err, 2));
        }
        if let Some(d) = &self.private {
            std::fs::write(d.join("updated"), "")?;
        }
        Ok(())
    }
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
    /// Cache key of the tree: its directory name, `xen-VER-HASH` (hash of
    /// the release and `debs`).
    pub key: String,
    /// The Xen release.
    pub release: XenRelease,
}

impl Dom0Bundle {
    /// busybox-static's binary: `bin/busybox` (Debian 12) or
    /// `usr/bin/busybox` (Debian 13, merged `/usr`).
    pub fn busybox(&self) -> Result<PathBuf> {
        ["bin/busybox", "usr/bin/busybox"]
            .iter()
            .map(|p| self.root.join(p))
            .find(|p| p.is_file())
            .context("busybox missing from the busybox-static package (neither bin/ nor usr/bin/)")
    }
}

/// Is this a library package whose files dom0 may need?
fn is_lib_package(name: &str) -> bool {
    name.starts_with("lib") || name.starts_with("zlib")
}

/// Runs an apt query; if it fails or finds nothing (package lists missing),
/// runs `apt-get update` once and tries again.
fn apt_query(
    apt: &Apt,
    args: &[&str],
    updated: &mut bool,
    log: &mut dyn FnMut(&str),
) -> Result<String> {
    let program = args[0];
    let run = || cmd::stdout(apt.command(program).args(&args[1..]));
    match run() {
        Ok(out) if !out.trim().is_empty() => return Ok(out),
        Ok(_) | Err(_) if *updated => {}
        Ok(_) | Err(_) => {
            cmd::require_tool(program)?;
            log("apt package lists missing or stale: running `apt-get update`");
            apt.update()?;
            *updated = true;
        }
    }
    match run() {
        Ok(out) if !out.trim().is_empty() => Ok(out),
        Ok(_) => bail!(
            "`{}` found nothing even after `apt-get update`: {}",
            args.join(" "),
            if apt.private.is_some() {
                format!("does {}'s main archive have it?", apt.release.debian())
            } else {
                "is this Debian 12 (bookworm) with its main archive in the apt sources?".into()
            }
        ),
        Err(e) => Err(e),
    }
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
fn resolve_kernel(apt: &Apt, updated: &mut bool, log: &mut dyn FnMut(&str)) -> Result<String> {
    let text = apt_query(apt, &["apt-cache", "depends", KERNEL_META], updated, log)?;
    parse_depends(&text)
        .into_iter()
        .flat_map(|(_, deps)| deps)
        .find(|d| d.starts_with("linux-image-") && d != KERNEL_META)
        .ok_or_else(|| {
            anyhow::anyhow!("`apt-cache depends {KERNEL_META}` names no linux-image-<ver> package")
        })
}

/// The roots plus their library dependencies, recursively.
pub(crate) fn package_closure(
    apt: &Apt,
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
        let text = apt_query(apt, &args, updated, log)?;
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

/// Downloads (if not cached) and extracts everything `release` needs;
/// returns the tree.
pub fn fetch(cache: &Path, release: XenRelease, log: &mut dyn FnMut(&str)) -> Result<Dom0Bundle> {
    for t in ["apt-get", "apt-cache", "dpkg-deb"] {
        cmd::require_tool(t).context("fetching Xen and dom0 needs Debian's apt")?;
    }
    let apt = Apt::for_release(cache, release)?;
    apt.refresh_if_stale(log)?;
    let name = format!("xen-{}", release.version());
    let resolved = resolve_cached(cache, &apt, &name, |apt| resolve(apt, log))?;
    let kernel_pkg = resolved
        .iter()
        .map(|(f, _)| package_of(f))
        .find(|p| p.starts_with("linux-image-"))
        .context("no linux-image package among the resolved packages")?
        .to_string();
    let kernel_version = kernel_pkg.strip_prefix("linux-image-").unwrap_or(&kernel_pkg).to_string();
    let debs_dir = cache.join("debs");
    let debs = download_missing(&apt, &resolved, &debs_dir, log)?;
    let key = tree_name(release, &debs);
    let trees = cache.join("trees");
    let root = trees.join(&key);
    if !root.join(".complete").is_file() {
        log(&format!("extracting {} packages into {}", debs.len(), root.display()));
        extract_all(&debs_dir, &debs, &trees, &key, release)?;
    }
    prune(&trees, &key);

    let xen = root.join("xen.elf");
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{kernel_version}"));
    for p in [&xen, &vmlinuz] {
        if !p.is_file() {
            bail!("{} missing from the extracted packages", p.display());
        }
    }
    Ok(Dom0Bundle { root, xen, vmlinuz, kernel_version, debs, key, release })
}

/// The cache directory name of `release`'s tree made from `debs`:
/// `xen-4.20-HASH`, the hash covering the release and every `.deb` name.
pub fn tree_name(release: XenRelease, debs: &[String]) -> String {
    let mut parts = vec![release.version()];
    parts.extend(debs.iter().map(String::as_str));
    format!("{}{}", release.tree_prefix(), crate::cache::short_hash(&parts))
}

/// The package name of a `.deb` file name (`name_version_arch.deb`).
pub fn package_of(deb: &str) -> &str {
    deb.split('_').next().unwrap_or(deb)
}

/// Downloads the `.deb`s of `uris` (file name, size) missing from
/// `debs_dir`; returns every file name, sorted.
pub(crate) fn download_missing(
    apt: &Apt,
    uris: &[(String, u64)],
    debs_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<String>> {
    cmd::mkdir(debs_dir)?;
    let missing: Vec<&(String, u64)> =
        uris.iter().filter(|(f, _)| !debs_dir.join(f).is_file()).collect();
    if missing.is_empty() {
        log(&format!("{} packages already cached in {}", uris.len(), debs_dir.display()));
    } else {
        let bytes: u64 = missing.iter().map(|(_, s)| s).sum();
        log(&format!(
            "downloading {} of {} packages ({:.1} MiB, {}) into {}",
            missing.len(),
            uris.len(),
            bytes as f64 / (1024.0 * 1024.0),
            apt.release.debian(),
            debs_dir.display()
        ));
        let pkgs: BTreeSet<String> = uris.iter().map(|(f, _)| package_of(f).to_string()).collect();
        download(apt, &pkgs, debs_dir)?;
        for (f, _) in &missing {
            if !debs_dir.join(f).is_file() {
                bail!("`apt-get download` did not produce {f}");
            }
        }
    }
    let mut debs: Vec<String> = uris.iter().map(|(f, _)| f.clone()).collect();
    debs.sort();
    Ok(debs)
}

/// The `.deb`s (file name, size) of `roots` and their library
/// dependencies, as `apt-get download --print-uris` names them.
pub(crate) fn resolve_closure(
    apt: &Apt,
    roots: &[String],
    updated: &mut bool,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<(String, u64)>> {
    let pkgs = package_closure(apt, roots, updated, log)?;
    let mut args = vec!["apt-get", "download", "--print-uris"];
    args.extend(pkgs.iter().map(String::as_str));
    let uris = parse_print_uris(&apt_query(apt, &args, updated, log)?);
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

/// The resolution `name` (e.g. `xen-4.17`) from the cache if apt's lists
/// have not changed since, else `resolve`'s, then cached.
pub(crate) fn resolve_cached(
    cache: &Path,
    apt: &Apt,
    name: &str,
    resolve: impl FnOnce(&Apt) -> Result<Vec<(String, u64)>>,
) -> Result<Vec<(String, u64)>> {
    if let Some(r) = read_resolved(cache, apt, name) {
        return Ok(r);
    }
    let r = resolve(apt)?;
    write_resolved(cache, apt, name, &r);
    Ok(r)
}

/// Asks apt which `.deb`s (file name, size) make up the lab.
fn resolve(apt: &Apt, log: &mut dyn FnMut(&str)) -> Result<Vec<(String, u64)>> {
    let mut updated = false;
    let kernel_pkg = resolve_kernel(apt, &mut updated, log)?;
    let mut roots = apt.release.packages();
    roots.push(kernel_pkg);
    resolve_closure(apt, &roots, &mut updated, log)
}

/// A fingerprint of apt's package lists: resolution results stay valid
/// until `apt-get update` changes them.
fn lists_fingerprint(apt: &Apt) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut parts = vec![apt.options.join(" ")];
    for e in std::fs::read_dir(&apt.lists).ok()?.flatten() {
        let m = e.metadata().ok()?;
        if m.is_file() && m.len() > 0 {
            parts.push(format!("{} {} {}", e.file_name().to_string_lossy(), m.size(), m.mtime()));
        }
    }
    if parts.len() == 1 {
        return None;
    }
    parts.sort();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    Some(crate::cache::short_hash(&refs))
}

/// `CACHE/resolved/NAME/FP`: one directory per set of packages
/// (`xen-4.17`, `xen-4.20`, `qemu-debian13`).
fn resolved_path(cache: &Path, apt: &Apt, name: &str) -> Option<PathBuf> {
    Some(cache.join("resolved").join(name).join(lists_fingerprint(apt)?))
}

fn read_resolved(cache: &Path, apt: &Apt, name: &str) -> Option<Vec<(String, u64)>> {
    let text = std::fs::read_to_string(resolved_path(cache, apt, name)?).ok()?;
    let r: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| {
            let (f, s) = l.split_once(' ')?;
            Some((f.to_string(), s.parse().ok()?))
        })
        .collect();
    (!r.is_empty()).then_some(r)
}

fn write_resolved(cache: &Path, apt: &Apt, name: &str, r: &[(String, u64)]) {
    let Some(p) = resolved_path(cache, apt, name) else {
        return;
    };
    if let Some(dir) = p.parent() {
        // Only the current fingerprint of this set is worth keeping.
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::create_dir_all(dir);
    }
    let text: String = r.iter().map(|(f, s)| format!("{f} {s}\n")).collect();
    let _ = std::fs::write(p, text);
}

/// `apt-get download` into a private directory, then move into `dest`.
fn download(apt: &Apt, pkgs: &BTreeSet<String>, dest: &Path) -> Result<()> {
    let tmp = dest.join(format!(".download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    cmd::mkdir(&tmp)?;
    let mut c = apt.command("apt-get");
    c.arg("download").arg("-q");
    if crate::setup::is_root() && apt.private.is_none() {
        // apt's `_apt` sandbox user cannot write into root's cache (a
        // private configuration says so already).
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

/// Extracts every deb of `debs` (in `debs_dir`) into a fresh `dir`.
pub(crate) fn extract_debs(debs_dir: &Path, debs: &[String], dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    cmd::mkdir(dir)?;
    for d in debs {
        cmd::output(Command::new("dpkg-deb").arg("-x").arg(debs_dir.join(d)).arg(dir))
            .with_context(|| {
                format!(
                    "cannot extract {d} (a broken download? delete it from {})",
                    debs_dir.display()
                )
            })?;
    }
    Ok(())
}

/// Extracts every deb into `trees/.tmp-KEY-PID`, decompresses Xen, then
/// renames the result to `trees/KEY` (atomic for concurrent runs).
fn extract_all(
    debs_dir: &Path,
    debs: &[String],
    trees: &Path,
    key: &str,
    release: XenRelease,
) -> Result<()> {
    let tmp = trees.join(format!(".tmp-{key}-{}", std::process::id()));
    extract_debs(debs_dir, debs, &tmp)?;
    let gz = tmp.join(release.hypervisor_gz());
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

/// The trees to remove, given every tree's name and age (modification
/// time): all but `keep` of its own release, all but the newest of each
/// other release, and trees of no known release (older naming). Names
/// starting with `.` (extractions under way) are left alone.
pub fn prune_plan(trees: &[(String, SystemTime)], keep: &str) -> Vec<String> {
    let release_of =
        |n: &str| XenRelease::ALL.into_iter().find(|r| n.starts_with(&r.tree_prefix()));
    let keep_release = release_of(keep);
    let mut remove = Vec::new();
    for (name, time) in trees {
        if name.starts_with('.') || name == keep {
            continue;
        }
        let Some(r) = release_of(name) else {
            remove.push(name.clone());
            continue;
        };
        // Another tree of the same release that is newer (ties: the
        // greater name) makes this one redundant.
        let newer = trees
            .iter()
            .any(|(n, t)| n != name && release_of(n) == Some(r) && (t, n) > (time, name));
        if Some(r) == keep_release || newer {
            remove.push(name.clone());
        }
    }
    remove.sort();
    remove
}

/// Removes trees [`prune_plan`] names; best effort.
fn prune(trees: &Path, keep: &str) {
    let Ok(rd) = std::fs::read_dir(trees) else {
        return;
    };
    let list: Vec<(String, SystemTime)> = rd
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let t = std::fs::metadata(e.path().join(".complete"))
                .or_else(|_| e.metadata())
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (e.file_name().to_string_lossy().into_owned(), t)
        })
        .collect();
    for name in prune_plan(&list, keep) {
        let _ = std::fs::remove_dir_all(trees.join(name));
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
    fn sources_list() {
        assert_eq!(
            render_sources_list("http://deb.debian.org/debian/", "trixie", Some(ARCHIVE_KEYRING)),
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main\n"
        );
        assert_eq!(
            render_sources_list("http://m.example/debian", "trixie", None),
            "deb http://m.example/debian trixie main\n"
        );
    }

    #[test]
    fn mirror_from_host_sources() {
        let deb822 = "Types: deb\n# http://snapshot.debian.org/archive/debian/2025\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n";
        assert_eq!(
            debian_mirror(&[deb822.to_string()]).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let security_first = "deb http://security.debian.org/debian-security bookworm-security main\n# deb http://old.example/debian bookworm main\ndeb [arch=amd64] https://ftp.example.org/debian/ bookworm main\n";
        assert_eq!(
            debian_mirror(&["".to_string(), security_first.to_string()]).as_deref(),
            Some("https://ftp.example.org/debian")
        );
        assert_eq!(
            debian_mirror(&["deb https://packages.cloud.google.com/apt x main".into()]),
            None
        );
    }

    #[test]
    fn staleness() {
        assert!(lists_stale(None));
        assert!(!lists_stale(Some(Duration::from_secs(3600))));
        assert!(lists_stale(Some(Duration::from_secs(25 * 3600))));
    }

    #[test]
    fn tree_names_include_the_release() {
        let debs = vec!["busybox-static_1_amd64.deb".to_string()];
        let a = tree_name(XenRelease::V4_17, &debs);
        let b = tree_name(XenRelease::V4_20, &debs);
        assert!(a.starts_with("xen-4.17-") && b.starts_with("xen-4.20-"), "{a} {b}");
        assert_ne!(a["xen-4.17-".len()..], b["xen-4.20-".len()..]);
        assert_eq!(a, tree_name(XenRelease::V4_17, &debs));
    }

    #[test]
    fn prune_keeps_the_newest_tree_of_each_release() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let trees = vec![
            ("xen-4.17-aaaa".to_string(), t(10)),
            ("xen-4.17-bbbb".to_string(), t(30)),
            ("xen-4.17-cccc".to_string(), t(20)),
            ("xen-4.20-dddd".to_string(), t(5)),
            ("xen-4.20-eeee".to_string(), t(40)),
            ("0123456789abcdef".to_string(), t(50)),
            (".tmp-xen-4.20-ffff-12".to_string(), t(1)),
        ];
        // Booting 4.17 with an older tree than the newest one: keep that
        // one (it is in use), drop the other 4.17 trees, keep 4.20's newest.
        assert_eq!(
            prune_plan(&trees, "xen-4.17-aaaa"),
            vec!["0123456789abcdef", "xen-4.17-bbbb", "xen-4.17-cccc", "xen-4.20-dddd"]
        );
        assert_eq!(
            prune_plan(&trees, "xen-4.20-eeee"),
            vec!["0123456789abcdef", "xen-4.17-aaaa", "xen-4.17-cccc", "xen-4.20-dddd"]
        );
        // A lone tree of the other release always stays.
        let two = vec![("xen-4.17-a".to_string(), t(1)), ("xen-4.20-b".to_string(), t(2))];
        assert!(prune_plan(&two, "xen-4.17-a").is_empty());
        assert!(prune_plan(&two, "xen-4.20-b").is_empty());
    }

    #[test]
    fn lib_packages() {
        assert!(is_lib_package("libxenmisc4.17"));
        assert!(is_lib_package("zlib1g"));
        assert!(!is_lib_package("python3"));
    }
}
