//! `migcount` (`build/migcount/migcount.c`): a pass-through filter dom0
//! puts between `xl migrate` and `xl migrate-receive` to count the pages
//! of each pre-copy round (`xl -vvv` does not print them on these Xen
//! releases). Built like [`crate::nettool`].

use anyhow::Result;
use std::path::{Path, PathBuf};

/// The tool's C source.
pub const SOURCE: &str = include_str!("../migcount/migcount.c");
/// Where it goes in dom0.
pub const DEST: &str = "bin/migcount";

/// Builds the tool (once per source) and returns its path.
pub fn build(cache: &Path) -> Result<PathBuf> {
    crate::ctool::build_static(cache, "migcount", SOURCE)
}

/// The pages with data, and the pfns named, of each round of a
/// `MIGCOUNT rounds=N pages=P1,...,PN pfns=F1,...,FN bytes=B` line.
pub fn parse_line(line: &str) -> Option<(Vec<u64>, Vec<u64>)> {
    let rest = &line[line.find("MIGCOUNT ")? + "MIGCOUNT ".len()..];
    let kv: Vec<(&str, &str)> = rest.split_whitespace().filter_map(|w| w.split_once('=')).collect();
    let list = |k: &str| -> Option<Vec<u64>> {
        let v = kv.iter().find(|(key, _)| *key == k)?.1;
        v.split(',').map(|x| x.parse().ok()).collect()
    };
    let pages = list("pages")?;
    let pfns = list("pfns")?;
    (pages.len() == pfns.len() && !pages.is_empty()).then_some((pages, pfns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse() {
        let (pages, pfns) = parse_line(
            "[xl mig] g round=1 MIGCOUNT rounds=3 pages=8190,12,4 pfns=8200,12,4 bytes=9",
        )
        .unwrap();
        assert_eq!(pages, vec![8190, 12, 4]);
        assert_eq!(pfns, vec![8200, 12, 4]);
        assert!(parse_line("MIGCOUNT rounds=0 pages= pfns= bytes=0").is_none());
        assert!(parse_line("nothing").is_none());
    }

    #[test]
    fn the_c_tool_counts_rounds_of_a_made_up_stream() {
        if crate::cmd::require_tool("gcc").is_err() {
            eprintln!("no gcc: skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("migcount-test-{}", std::process::id()));
        let bin = build(&dir).unwrap();
        let rec = |t: u32, body: &[u8]| {
            let mut r = Vec::new();
            r.extend_from_slice(&t.to_le_bytes());
            r.extend_from_slice(&(body.len() as u32).to_le_bytes());
            r.extend_from_slice(body);
            r.resize(r.len() + (8 - body.len() % 8) % 8, 0);
            r
        };
        let batch = |pfns: &[u64], xtab: &[u64]| {
            let mut b = Vec::new();
            b.extend_from_slice(&(pfns.len() as u32).to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            for p in pfns {
                let t = if xtab.contains(p) { 0xfu64 << 60 } else { 0 };
                b.extend_from_slice(&(p | t).to_le_bytes());
            }
            b.resize(b.len() + 4096 * (pfns.len() - xtab.len()), 0xab);
            rec(1, &b)
        };
        let mut s = b"xl and libxl headers".to_vec();
        s.extend_from_slice(&[0xff; 8]);
        s.extend_from_slice(b"XENF");
        s.extend_from_slice(&3u32.to_be_bytes());
        s.extend_from_slice(&[0; 8 + 16]);
        s.extend(rec(0x0f, b"another record"));
        s.extend(batch(&(0..1024).collect::<Vec<_>>(), &[]));
        s.extend(batch(&(1024..1100).collect::<Vec<_>>(), &[1050, 1051]));
        s.extend(batch(&[5, 7, 900], &[]));
        s.extend(rec(0x0d, b"x"));
        s.extend(batch(&[2], &[]));
        s.extend(rec(0, b""));
        s.extend_from_slice(b"libxl's records after");
        let out = std::process::Command::new(&bin)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                // Written from another thread: the tool writes its stdout
                // as it reads, and the pipes hold less than the stream.
                let mut stdin = c.stdin.take().unwrap();
                let input = s.clone();
                let w = std::thread::spawn(move || {
                    use std::io::Write;
                    stdin.write_all(&input)
                });
                let out = c.wait_with_output();
                w.join().unwrap()?;
                out
            })
            .unwrap();
        assert_eq!(out.stdout, s, "the stream passes through unchanged");
        let err = String::from_utf8_lossy(&out.stderr);
        let (pages, pfns) = parse_line(&err).unwrap_or_else(|| panic!("{err}"));
        assert_eq!(pages, vec![1098, 3, 1]);
        assert_eq!(pfns, vec![1100, 3, 1]);

        // Holding in round 1 past pfn 1024: the held file appears, the
        // tool goes no further until the go file exists, then the whole
        // stream comes out.
        let (held, go) = (dir.join("held"), dir.join("go"));
        let mut c = std::process::Command::new(&bin)
            .args(["hold", "1", "0x400"])
            .arg(&held)
            .arg(&go)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = c.stdin.take().unwrap();
        let mut stdout = c.stdout.take().unwrap();
        let input = s.clone();
        let w = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
        let r = std::thread::spawn(move || {
            use std::io::Read;
            let mut v = Vec::new();
            stdout.read_to_end(&mut v).map(|_| v)
        });
        let t0 = std::time::Instant::now();
        while !held.exists() && t0.elapsed() < std::time::Duration::from_secs(20) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(held.exists(), "the hold never began");
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(c.try_wait().unwrap().is_none(), "migcount went on while held");
        std::fs::write(&go, b"").unwrap();
        let status = c.wait().unwrap();
        w.join().unwrap();
        let passed = r.join().unwrap().unwrap();
        let mut err = String::new();
        use std::io::Read;
        c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let said = std::fs::read_to_string(&held).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(status.success(), "{err}");
        assert_eq!(passed, s, "the held stream passes through unchanged");
        assert!(err.contains(" held_round=1 held_pfn=1024 held_ms="), "{err}");
        assert!(said.starts_with("round 1 pfn 1024 "), "{said}");
        assert!(parse_line(&err).is_some(), "{err}");
    }
}
