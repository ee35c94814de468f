//! Bytes in memory shared with the backend, which Rust sees only as
//! 32-bit atomics: copying packets in and out without ever forming a
//! `&mut [u8]` over memory another domain may write.

use core::sync::atomic::{AtomicU32, Ordering};

/// The range `[off, off + len)` is outside `words`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds;

fn check(words: &[AtomicU32], off: usize, len: usize) -> Result<(), OutOfBounds> {
    match off.checked_add(len) {
        Some(end) if end <= words.len() * 4 => Ok(()),
        _ => Err(OutOfBounds),
    }
}

/// Copies `data` to byte offset `off`.
pub fn write_bytes(words: &[AtomicU32], off: usize, data: &[u8]) -> Result<(), OutOfBounds> {
    check(words, off, data.len())?;
    let mut at = off;
    let mut rest = data;
    while !rest.is_empty() {
        let (w, b) = (at / 4, at % 4);
        let n = (4 - b).min(rest.len());
        if b == 0 && n == 4 {
            let v = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            words[w].store(v, Ordering::Relaxed);
        } else {
            let mut bytes = words[w].load(Ordering::Relaxed).to_le_bytes();
            bytes[b..b + n].copy_from_slice(&rest[..n]);
            words[w].store(u32::from_le_bytes(bytes), Ordering::Relaxed);
        }
        at += n;
        rest = &rest[n..];
    }
    Ok(())
}

/// Copies `out.len()` bytes from byte offset `off`.
pub fn read_bytes(words: &[AtomicU32], off: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
    check(words, off, out.len())?;
    let mut at = off;
    let mut done = 0;
    while done < out.len() {
        let (w, b) = (at / 4, at % 4);
        let n = (4 - b).min(out.len() - done);
        let bytes = words[w].load(Ordering::Relaxed).to_le_bytes();
        out[done..done + n].copy_from_slice(&bytes[b..b + n]);
        at += n;
        done += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unaligned_copies_round_trip_and_bounds_hold() {
        let words: Vec<AtomicU32> = (0..16).map(|_| AtomicU32::new(0)).collect();
        let data: Vec<u8> = (0..37u8).collect();
        for off in 0..8 {
            write_bytes(&words, off, &data).unwrap();
            let mut out = vec![0; data.len()];
            read_bytes(&words, off, &mut out).unwrap();
            assert_eq!(out, data);
        }
        assert_eq!(write_bytes(&words, 60, &[0; 5]), Err(OutOfBounds));
        assert_eq!(read_bytes(&words, usize::MAX, &mut [0; 2]), Err(OutOfBounds));
        assert!(read_bytes(&words, 64, &mut []).is_ok());
    }
}
