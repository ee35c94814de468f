//! Small static C tools for dom0 and Linux DomUs (dom0 has no compiler):
//! built on the host with `gcc -static`, cached by their source hash.
//! `nettool` and `blktool` are built this way.

use crate::cmd;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `name` from `source` (once per source) and returns its path.
pub fn build_static(cache: &Path, name: &str, source: &str) -> Result<PathBuf> {
    let key = crate::cache::short_hash(&[source]);
    let dir = cache.join(name);
    let bin = dir.join(format!("{name}-{key}"));
    if bin.is_file() {
        return Ok(bin);
    }
    cmd::require_tool("gcc").with_context(|| format!("building {name} (static, for dom0)"))?;
    cmd::mkdir(&dir)?;
    let src = dir.join(format!(".{name}-{}.c", std::process::id()));
    let tmp = dir.join(format!(".{name}-{}", std::process::id()));
    std::fs::write(&src, source)?;
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-o"])
        .arg(&tmp)
        .arg(&src)
        .output()
        .context("cannot run gcc")?;
    let _ = std::fs::remove_file(&src);
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "gcc -static {name}.c failed (is libc6-dev installed?): {}",
            cmd::last_lines(&String::from_utf8_lossy(&out.stderr), 3)
        );
    }
    std::fs::rename(&tmp, &bin)?;
    Ok(bin)
}

/// One `<TAG> <mode> k=v ...` line a tool printed (`NETTOOL`, `HTTPTOOL`):
/// the mode and its values.
pub fn parse_tagged<'a>(line: &'a str, tag: &str) -> Option<(&'a str, Vec<(&'a str, &'a str)>)> {
    let tag = format!("{tag} ");
    let rest = &line[line.find(&tag)? + tag.len()..];
    let mut words = rest.split_whitespace();
    let mode = words.next()?;
    Some((mode, words.filter_map(|w| w.split_once('=')).collect()))
}

/// The value of `key` in a parsed line, as a number.
pub fn value(kv: &[(&str, &str)], key: &str) -> Option<f64> {
    kv.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.parse().ok())
}
