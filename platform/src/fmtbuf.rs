//! A fixed-capacity string for formatting without a heap.
//!
//! Not `heapless::String`: its `fmt::Write` refuses a piece that does not
//! fit whole (nothing of it is written, and `write!` stops with an
//! error), where a console or panic line must keep what fits and show
//! that it was cut.

use core::fmt;

/// Up to `N` bytes of UTF-8; writes past the end are cut at a character
/// boundary and marked truncated rather than failing.
pub struct FmtBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> FmtBuf<N> {
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0, truncated: false }
    }

    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever copied in (see write_str).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> Default for FmtBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for FmtBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take < s.len() {
            self.truncated = true;
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Display for FmtBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.truncated {
            f.write_str("…")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn truncates_at_char_boundary() {
        let mut b = FmtBuf::<4>::new();
        write!(b, "ab€cd").unwrap();
        assert_eq!(b.as_str(), "ab");
        assert!(b.truncated);
        assert_eq!(format!("{b}"), "ab…");
    }

    #[test]
    fn fits_exactly() {
        let mut b = FmtBuf::<4>::new();
        write!(b, "{}", 1234).unwrap();
        assert_eq!(b.as_str(), "1234");
        assert!(!b.truncated);
    }
}
