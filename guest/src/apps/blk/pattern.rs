//! The pattern `app=blk` writes and checks, which anyone can recompute:
//! the 8-byte little-endian word at byte offset `8*k` of the disk is
//! `splitmix64(seed + k)` (wrapping).

/// The standard SplitMix64 step.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The pattern's byte at disk offset `off`.
pub fn byte_at(seed: u64, off: u64) -> u8 {
    splitmix64(seed.wrapping_add(off / 8)).to_le_bytes()[(off % 8) as usize]
}

/// Fills `buf` with the pattern's bytes from disk offset `off`.
pub fn fill(seed: u64, off: u64, buf: &mut [u8]) {
    let mut i = 0;
    let mut pos = off;
    while i < buf.len() {
        let word = splitmix64(seed.wrapping_add(pos / 8)).to_le_bytes();
        let from = (pos % 8) as usize;
        let n = (8 - from).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[from..from + n]);
        i += n;
        pos += n as u64;
    }
}

/// The first byte of `buf` (read from disk offset `off`) that differs
/// from the pattern, as a disk offset.
pub fn first_mismatch(seed: u64, off: u64, buf: &[u8]) -> Option<u64> {
    let mut want = [0u8; 4096];
    for (c, chunk) in buf.chunks(want.len()).enumerate() {
        let at = off + (c * want.len()) as u64;
        fill(seed, at, &mut want[..chunk.len()]);
        if let Some(i) = chunk.iter().zip(&want).position(|(a, b)| a != b) {
            return Some(at + i as u64);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_values() {
        // From the reference implementation seeded with 0: the first
        // outputs are splitmix64(0), splitmix64(golden), ...
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn fill_at_any_offset_agrees_with_byte_at() {
        for off in [0u64, 1, 7, 8, 13, 4095, 1 << 33] {
            let mut b = [0u8; 37];
            fill(42, off, &mut b);
            for (i, &x) in b.iter().enumerate() {
                assert_eq!(x, byte_at(42, off + i as u64));
            }
            assert_eq!(first_mismatch(42, off, &b), None);
            b[30] ^= 1;
            assert_eq!(first_mismatch(42, off, &b), Some(off + 30));
        }
    }
}
