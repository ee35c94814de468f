//! `nettool` (`build/nettool/nettool.c`): a small static TCP measuring
//! tool for dom0 and the Linux PV DomU (dom0 has no compiler, and busybox
//! `nc` moves 1 KiB per syscall and measures itself). Built on the host
//! with `gcc -static`, cached by its source hash ([`crate::ctool`]).

use anyhow::Result;
use std::path::{Path, PathBuf};

/// The tool's C source.
pub const SOURCE: &str = include_str!("../nettool/nettool.c");
/// Where it goes in dom0 and in the Linux DomU.
pub const DEST: &str = "bin/nettool";

/// Builds the tool (once per source) and returns its path.
pub fn build(cache: &Path) -> Result<PathBuf> {
    crate::ctool::build_static(cache, "nettool", SOURCE)
}

/// One `NETTOOL <mode> k=v ...` line: the mode and its values.
pub fn parse_line(line: &str) -> Option<(&str, Vec<(&str, &str)>)> {
    crate::ctool::parse_tagged(line, "NETTOOL")
}

pub use crate::ctool::value;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse() {
        let (m, kv) = parse_line("[xl bench] NETTOOL send bytes=100 ns=2000 mibps=1.5").unwrap();
        assert_eq!(m, "send");
        assert_eq!(value(&kv, "bytes"), Some(100.0));
        assert_eq!(value(&kv, "mibps"), Some(1.5));
        assert_eq!(value(&kv, "nope"), None);
        assert!(parse_line("nothing here").is_none());
    }
}
