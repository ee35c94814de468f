//! A writer for the `newc` cpio format the Linux kernel unpacks as its
//! initramfs (no `cpio` binary needed on the host).
//!
//! [`Archive`] collects entries by path (parents are created implicitly,
//! later entries replace earlier ones) and writes them sorted, so the
//! output is reproducible.

use std::collections::BTreeMap;

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory with permission bits.
    Dir(u32),
    /// A regular file with permission bits and contents.
    File(u32, Vec<u8>),
    /// A symbolic link to a target.
    Symlink(String),
}

/// An in-memory cpio archive.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

fn normalize(path: &str) -> String {
    path.trim_matches('/')
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    fn parents(&mut self, path: &str) {
        let mut cur = String::new();
        let comps: Vec<&str> = path.split('/').collect();
        for c in &comps[..comps.len().saturating_sub(1)] {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(c);
            self.entries.entry(cur.clone()).or_insert(Entry::Dir(0o755));
        }
    }

    /// Adds (or replaces) an entry at `path` (leading `/` optional).
    pub fn add(&mut self, path: &str, entry: Entry) {
        let p = normalize(path);
        if p.is_empty() {
            return;
        }
        self.parents(&p);
        self.entries.insert(p, entry);
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str) {
        self.add(path, Entry::Dir(0o755));
    }

    /// Adds a file.
    pub fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) {
        self.add(path, Entry::File(mode, data.into()));
    }

    /// Adds a symlink.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.add(path, Entry::Symlink(target.to_string()));
    }

    /// Does the archive have an entry at `path`?
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&normalize(path))
    }

    /// The entry at `path`.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(&normalize(path))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total bytes of file contents.
    pub fn data_bytes(&self) -> usize {
        self.entries
            .values()
            .map(|e| match e {
                Entry::File(_, d) => d.len(),
                _ => 0,
            })
            .sum()
    }

    /// The archive in `newc` format, with its trailer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data_bytes() + self.entries.len() * 128);
        for (ino, (path, e)) in self.entries.iter().enumerate() {
            let (mode, data): (u32, &[u8]) = match e {
                Entry::Dir(m) => (0o040000 | m, &[]),
                Entry::File(m, d) => (0o100000 | m, d),
                Entry::Symlink(t) => (0o120777, t.as_bytes()),
            };
            let nlink = if matches!(e, Entry::Dir(_)) { 2 } else { 1 };
            write_header(&mut out, ino as u32 + 1, mode, nlink, data.len(), path);
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        write_header(&mut out, 0, 0, 1, 0, "TRAILER!!!");
        out
    }
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() & 3 != 0 {
        out.push(0);
    }
}

fn write_header(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, size: usize, name: &str) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime: reproducible
        size as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_parents() {
        let mut a = Archive::new();
        a.file("/etc/xen/x.cfg", 0o644, b"abc".to_vec());
        a.symlink("bin/sh", "busybox");
        assert!(a.contains("etc") && a.contains("etc/xen") && a.contains("bin"));
        let b = a.to_bytes();
        assert!(b.starts_with(b"070701"));
        assert_eq!(b.len() % 4, 0);
        let s = String::from_utf8_lossy(&b);
        assert!(s.contains("etc/xen/x.cfg\0"));
        assert!(s.ends_with("TRAILER!!!\0\0\0\0") || s.contains("TRAILER!!!\0"));
        // 5 entries + trailer = 6 headers.
        assert_eq!(s.matches("070701").count(), 6);
    }

    #[test]
    fn header_fields() {
        let mut a = Archive::new();
        a.file("f", 0o755, b"hello".to_vec());
        let b = a.to_bytes();
        let h = std::str::from_utf8(&b[..110]).unwrap();
        assert_eq!(&h[14..22], "000081ed"); // mode: regular file 0755
        assert_eq!(&h[54..62], "00000005"); // size
        assert_eq!(&h[94..102], "00000002"); // name size incl. NUL
        assert_eq!(&b[110..112], b"f\0");
        // Data starts 4-aligned after the 112-byte header+name.
        assert_eq!(&b[112..117], b"hello");
    }

    /// Cross-check with GNU cpio when the host has it.
    #[test]
    fn gnu_cpio_reads_it() {
        if crate::cmd::which("cpio").is_none() {
            return;
        }
        let mut a = Archive::new();
        a.file("d/f.txt", 0o644, b"data\n".to_vec());
        a.symlink("d/l", "f.txt");
        let dir = std::env::temp_dir().join(format!("cpio-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let arc = dir.join("a.cpio");
        std::fs::write(&arc, a.to_bytes()).unwrap();
        let out = std::process::Command::new("cpio")
            .args(["-it", "--quiet", "-F"])
            .arg(&arc)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let list = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert_eq!(list.lines().collect::<Vec<_>>(), vec!["d", "d/f.txt", "d/l"]);
    }
}
