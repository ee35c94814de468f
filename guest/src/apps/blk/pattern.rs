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

/// Soak round `round` on a disk of `bytes`: the offset and length of its
/// I/O, inside the first 256 KiB; `None` for a disk too small to hold one
/// 512-byte block (an empty disk: nothing to do but wait for its detach).
/// Lengths shrink by up to 999 bytes from round to round, never below 1.
pub fn soak_window(bytes: u64, round: u64) -> Option<(u64, usize)> {
    let half = bytes.min(256 * 1024) / 2;
    if half < 256 {
        return None;
    }
    let off = round.wrapping_mul(4099) % half;
    let len = half.saturating_sub(round % 1000).max(1);
    Some((off, len as usize))
}

/// The bench's span on a disk of `bytes` (at most `mib` MiB, whole 4 KiB
/// blocks) and its number of 4 KiB blocks; `None` below one block.
pub fn bench_span(bytes: u64, mib: u64) -> Option<(u64, u64)> {
    let span = bytes.min(mib.saturating_mul(1 << 20)) / 4096 * 4096;
    (span > 0).then_some((span, span / 4096))
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

    /// Issue 18 item 2: a disk under 512 bytes made `% (span / 2)` divide by
    /// zero, and one under ~2 KB made the length underflow; under 4 KiB
    /// the bench's `% blocks` divided by zero.
    #[test]
    fn soak_and_bench_windows_on_tiny_and_huge_disks() {
        for bytes in [0u64, 1, 511, 512, 1024, 2047, 4095, 4096, 1 << 20, u64::MAX] {
            for round in [0u64, 1, 255, 256, 999, 1000, u64::MAX] {
                if let Some((off, len)) = soak_window(bytes, round) {
                    assert!(len >= 1 && off + len as u64 <= bytes, "{bytes} {round}");
                } else {
                    assert!(bytes < 512);
                }
            }
            for mib in [1u64, 32, u64::MAX] {
                match bench_span(bytes, mib) {
                    Some((span, blocks)) => {
                        assert!(blocks >= 1 && span <= bytes && span == blocks * 4096)
                    }
                    None => assert!(bytes < 4096),
                }
            }
        }
    }
}
