//! `httptool` (`build/httptool/httptool.c`): HTTP load generation,
//! misbehaving clients (idle, half a head, a head a byte at a time, a
//! connection flood, pipelining, oversized heads) and a small epoll HTTP
//! server for the Linux comparator. Static, built on the host with
//! `gcc -static` and cached by its source hash ([`crate::ctool`]), for
//! dom0 (the http boot test, `cargo xtask bench http`) and the Linux DomU.

use anyhow::Result;
use std::path::{Path, PathBuf};

/// The tool's C source.
pub const SOURCE: &str = include_str!("../httptool/httptool.c");
/// Where it goes in dom0 and in the Linux DomU.
pub const DEST: &str = "bin/httptool";

/// Builds the tool (once per source) and returns its path.
pub fn build(cache: &Path) -> Result<PathBuf> {
    crate::ctool::build_static(cache, "httptool", SOURCE)
}

/// One `HTTPTOOL <mode> k=v ...` line: the mode and its values.
pub fn parse_line(line: &str) -> Option<(&str, Vec<(&str, &str)>)> {
    crate::ctool::parse_tagged(line, "HTTPTOOL")
}

pub use crate::ctool::value;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse() {
        let (m, kv) =
            parse_line("[xl check] HTTPTOOL load conns=4 ok=10 per_s=12.5 p50_us=100").unwrap();
        assert_eq!(m, "load");
        assert_eq!(value(&kv, "conns"), Some(4.0));
        assert_eq!(value(&kv, "per_s"), Some(12.5));
        assert_eq!(value(&kv, "nope"), None);
        assert!(parse_line("nothing").is_none());
    }
}
