//! The stream `app=echo` sources on port 19 for `cargo xtask bench net`
//! and the boot tests: its byte at offset `i` is `i % 251`, so a client
//! can check every byte (251 is prime: no buffer size lines up with it).

/// One period of the stream.
const PERIOD: [u8; 251] = {
    let mut p = [0u8; 251];
    let mut i = 0;
    while i < 251 {
        p[i] = i as u8;
        i += 1;
    }
    p
};

/// `b` gets the stream from offset `at` on: copied a period at a time (a
/// division per byte cost more than the rest of the send path).
pub fn fill_source(b: &mut [u8], at: u64) {
    let mut k = (at % 251) as usize;
    let mut rest = b;
    while !rest.is_empty() {
        let n = rest.len().min(251 - k);
        let (head, tail) = rest.split_at_mut(n);
        head.copy_from_slice(&PERIOD[k..k + n]);
        rest = tail;
        k = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// The stream's byte at offset `i`, by definition.
    fn source_byte(i: u64) -> u8 {
        (i % 251) as u8
    }

    #[test]
    fn the_fill_is_the_stream() {
        for at in [0u64, 1, 250, 251, 252, 1 << 40] {
            for len in [0usize, 1, 250, 251, 600, 4096] {
                let mut b = vec![0xeeu8; len];
                fill_source(&mut b, at);
                let want: Vec<u8> = (0..len as u64).map(|k| source_byte(at + k)).collect();
                assert_eq!(b, want, "at {at} len {len}");
            }
        }
    }
}
