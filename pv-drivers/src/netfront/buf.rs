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

/// Copies `data` to byte offset `off`: the unaligned head and tail a
/// byte at a time (read-modify-write of their words), the middle a whole
/// word per store (a packet is mostly middle: this is the TX copy of
/// every byte sent).
pub fn write_bytes(words: &[AtomicU32], off: usize, data: &[u8]) -> Result<(), OutOfBounds> {
    check(words, off, data.len())?;
    let head = ((4 - off % 4) % 4).min(data.len());
    let (first, rest) = data.split_at(head);
    write_partial(words, off, first);
    let body = rest.len() / 4 * 4;
    let (middle, last) = rest.split_at(body);
    let at = (off + head) / 4;
    for (w, c) in words[at..].iter().zip(middle.chunks_exact(4)) {
        w.store(u32::from_le_bytes([c[0], c[1], c[2], c[3]]), Ordering::Relaxed);
    }
    write_partial(words, off + head + body, last);
    Ok(())
}

/// Bytes within one word or across a few, a byte at a time.
fn write_partial(words: &[AtomicU32], off: usize, data: &[u8]) {
    for (i, &byte) in data.iter().enumerate() {
        let (w, b) = ((off + i) / 4, (off + i) % 4);
        let mut bytes = words[w].load(Ordering::Relaxed).to_le_bytes();
        bytes[b] = byte;
        words[w].store(u32::from_le_bytes(bytes), Ordering::Relaxed);
    }
}

/// Copies `out.len()` bytes from byte offset `off`: as [`write_bytes`],
/// a whole word per load in the middle (the RX copy of every byte
/// received).
pub fn read_bytes(words: &[AtomicU32], off: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
    check(words, off, out.len())?;
    let head = ((4 - off % 4) % 4).min(out.len());
    let (first, rest) = out.split_at_mut(head);
    read_partial(words, off, first);
    let body = rest.len() / 4 * 4;
    let (middle, last) = rest.split_at_mut(body);
    let at = (off + head) / 4;
    for (w, c) in words[at..].iter().zip(middle.chunks_exact_mut(4)) {
        c.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    read_partial(words, off + head + body, last);
    Ok(())
}

fn read_partial(words: &[AtomicU32], off: usize, out: &mut [u8]) {
    for (i, byte) in out.iter_mut().enumerate() {
        let (w, b) = ((off + i) / 4, (off + i) % 4);
        *byte = words[w].load(Ordering::Relaxed).to_le_bytes()[b];
    }
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
        // Every offset and length around word boundaries, against a plain
        // byte array doing the same.
        let words: Vec<AtomicU32> = (0..8).map(|_| AtomicU32::new(0)).collect();
        let mut plain = [0u8; 32];
        for off in 0..12 {
            for len in 0..=(32 - off).min(13) {
                let data: Vec<u8> = (0..len).map(|i| (off * 31 + i * 7 + 1) as u8).collect();
                write_bytes(&words, off, &data).unwrap();
                plain[off..off + len].copy_from_slice(&data);
                let all: Vec<u8> =
                    words.iter().flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes()).collect();
                assert_eq!(all, plain, "write at {off}, {len} bytes");
                let mut out = vec![0; len];
                read_bytes(&words, off, &mut out).unwrap();
                assert_eq!(out, data, "read at {off}, {len} bytes");
            }
        }
        let words: Vec<AtomicU32> = (0..16).map(|_| AtomicU32::new(0)).collect();
        assert_eq!(write_bytes(&words, 60, &[0; 5]), Err(OutOfBounds));
        assert_eq!(read_bytes(&words, usize::MAX, &mut [0; 2]), Err(OutOfBounds));
        assert!(read_bytes(&words, 64, &mut []).is_ok());
    }
}
