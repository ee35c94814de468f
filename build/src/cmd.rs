//! Running host tools, with errors that say what to install or what failed.

use anyhow::{bail, Context, Result};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Which Debian package provides a host tool, for "not found" messages.
fn package_for(tool: &str) -> &'static str {
    match tool {
        "qemu-system-x86_64" => "qemu-system-x86",
        "apt-get" | "apt-cache" => "apt",
        "dpkg-deb" => "dpkg",
        "readelf" | "strip" => "binutils",
        "xz" => "xz-utils",
        "zstd" => "zstd",
        "cargo" | "rustup" => "a Rust toolchain (rustup)",
        _ => "the package that provides it",
    }
}

/// A one-line "X is missing, install Y" message.
pub fn missing_tool_message(tool: &str) -> String {
    format!(
        "`{tool}` not found on this host: install {} (e.g. `apt-get install -y {}`)",
        package_for(tool),
        package_for(tool)
    )
}

/// Finds `tool` in `$PATH`.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file())
}

/// Fails with an install hint when `tool` is not in `$PATH`.
pub fn require_tool(tool: &str) -> Result<PathBuf> {
    which(tool).ok_or_else(|| anyhow::anyhow!(missing_tool_message(tool)))
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn spawn_error(cmd: &Command, e: std::io::Error) -> anyhow::Error {
    let prog = cmd.get_program().to_string_lossy().into_owned();
    if e.kind() == ErrorKind::NotFound {
        anyhow::anyhow!(missing_tool_message(&prog))
    } else {
        anyhow::anyhow!("cannot run `{}`: {e}", describe(cmd))
    }
}

/// Runs a command with no stdin, capturing its output; fails if it exits
/// non-zero, quoting the last lines of its stderr.
pub fn output(cmd: &mut Command) -> Result<Output> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| spawn_error(cmd, e))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            last_lines(&String::from_utf8_lossy(&out.stderr), 3)
        );
    }
    Ok(out)
}

/// Like [`output`], returning stdout as a string.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command with inherited stdout/stderr (the user sees its progress).
pub fn status(cmd: &mut Command) -> Result<()> {
    let st = cmd.stdin(Stdio::null()).status().map_err(|e| spawn_error(cmd, e))?;
    if !st.success() {
        bail!("`{}` failed ({st})", describe(cmd));
    }
    Ok(())
}

/// The last `n` non-empty lines of `s`, joined with " | ".
pub fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    let joined = lines[start..].join(" | ");
    if joined.is_empty() {
        "(no error output)".to_string()
    } else {
        joined
    }
}

/// Reads a file with the path in the error message.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Creates a directory and its parents, with the path in the error message.
pub fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))
}
