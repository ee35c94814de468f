//! The 2-level event channel ABI: a pending and a mask bitmap in
//! `shared_info`, and a selector word in `vcpu_info` naming which words of
//! the bitmap to look at (`xen/include/public/xen.h`).

use core::sync::atomic::Ordering;
use hypercall::abi::shared_info::{SharedInfo, VcpuInfo, BITS_PER_XEN_ULONG};
use hypercall::EvtchnPort;

fn word_bit(port: EvtchnPort) -> Option<(usize, u64)> {
    let p = port.0 as usize;
    let word = p / BITS_PER_XEN_ULONG;
    (word < BITS_PER_XEN_ULONG).then(|| (word, 1u64 << (p % BITS_PER_XEN_ULONG)))
}

/// Whether `port` is pending. Ports beyond this ABI's range are never pending.
pub fn is_pending(s: &SharedInfo, port: EvtchnPort) -> bool {
    word_bit(port).is_some_and(|(w, b)| s.evtchn_pending[w].load(Ordering::Acquire) & b != 0)
}

/// Clears `port`'s pending bit; returns whether it was set. Xen sets the
/// bit with a locked operation, so this must be one too.
pub fn clear_pending(s: &SharedInfo, port: EvtchnPort) -> bool {
    word_bit(port)
        .is_some_and(|(w, b)| s.evtchn_pending[w].fetch_and(!b, Ordering::SeqCst) & b != 0)
}

/// Sets `port`'s mask bit: Xen then leaves it pending without an upcall.
pub fn mask(s: &SharedInfo, port: EvtchnPort) {
    if let Some((w, b)) = word_bit(port) {
        s.evtchn_mask[w].fetch_or(b, Ordering::SeqCst);
    }
}

/// Whether `port` is masked.
pub fn is_masked(s: &SharedInfo, port: EvtchnPort) -> bool {
    word_bit(port).is_some_and(|(w, b)| s.evtchn_mask[w].load(Ordering::Acquire) & b != 0)
}

/// Where the last scan stopped, so a busy low port cannot starve the rest
/// (Linux keeps the same round-robin position).
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanPosition {
    word: usize,
    bit: usize,
}

impl ScanPosition {
    pub const fn new() -> Self {
        Self { word: 0, bit: 0 }
    }
}

/// Takes every pending, unmasked port named by `vcpu`'s selector, clears its
/// pending bit and hands it to `dispatch`, starting after `pos`.
pub fn scan(
    s: &SharedInfo,
    vcpu: &VcpuInfo,
    pos: &mut ScanPosition,
    mut dispatch: impl FnMut(EvtchnPort),
) {
    // Xen sets the selector bit after the pending bit; taking the whole
    // selector at once means a bit set afterwards raises a new upcall.
    let mut sel = vcpu.evtchn_pending_sel.swap(0, Ordering::AcqRel);
    while sel != 0 {
        // Next selected word at or after the saved position, wrapping.
        let rotated = sel.rotate_right(pos.word as u32);
        let word = (rotated.trailing_zeros() as usize + pos.word) % BITS_PER_XEN_ULONG;
        sel &= !(1u64 << word);

        let mut start_bit = if word == pos.word { pos.bit } else { 0 };
        // One pass over the word per scan: a port that keeps re-raising
        // itself must not keep the others waiting.
        for _ in 0..BITS_PER_XEN_ULONG {
            let ready = s.evtchn_pending[word].load(Ordering::Acquire)
                & !s.evtchn_mask[word].load(Ordering::Acquire);
            // Bits at or above start_bit first, then the ones below.
            let high = ready & (!0u64).checked_shl(start_bit as u32).unwrap_or(0);
            let bits = if high != 0 { high } else { ready };
            if bits == 0 {
                break;
            }
            let bit = bits.trailing_zeros() as usize;
            let port = EvtchnPort((word * BITS_PER_XEN_ULONG + bit) as u32);
            if clear_pending(s, port) {
                dispatch(port);
            }
            start_bit = (bit + 1) % BITS_PER_XEN_ULONG;
            *pos = ScanPosition { word, bit: start_bit };
        }
        let left = s.evtchn_pending[word].load(Ordering::Acquire)
            & !s.evtchn_mask[word].load(Ordering::Acquire);
        if left != 0 {
            // Hand the rest to the next round of the upcall loop.
            vcpu.evtchn_pending_sel.fetch_or(1 << word, Ordering::AcqRel);
            vcpu.evtchn_upcall_pending.store(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raise(s: &SharedInfo, port: u32) {
        let (w, b) = word_bit(EvtchnPort(port)).unwrap();
        s.evtchn_pending[w].fetch_or(b, Ordering::SeqCst);
        if s.evtchn_mask[w].load(Ordering::SeqCst) & b == 0 {
            s.vcpu_info[0].evtchn_pending_sel.fetch_or(1 << w, Ordering::SeqCst);
            s.vcpu_info[0].evtchn_upcall_pending.store(1, Ordering::SeqCst);
        }
    }

    fn collect(s: &SharedInfo, pos: &mut ScanPosition) -> Vec<u32> {
        let mut got = vec![];
        scan(s, &s.vcpu_info[0], pos, |p| got.push(p.0));
        got
    }

    #[test]
    fn bits_map_to_words() {
        let s = SharedInfo::zeroed();
        s.evtchn_pending[1].store(1 << 3, Ordering::Relaxed);
        assert!(is_pending(&s, EvtchnPort(67)));
        assert!(!is_pending(&s, EvtchnPort(66)));
        assert!(clear_pending(&s, EvtchnPort(67)));
        assert!(!clear_pending(&s, EvtchnPort(67)));
        assert!(!is_pending(&s, EvtchnPort(67)));
    }

    #[test]
    fn ports_beyond_range_are_ignored() {
        let s = SharedInfo::zeroed();
        assert!(!is_pending(&s, EvtchnPort(4096)));
        assert!(!clear_pending(&s, EvtchnPort(u32::MAX)));
        mask(&s, EvtchnPort(4096));
        assert!(!is_masked(&s, EvtchnPort(4096)));
    }

    #[test]
    fn scan_delivers_each_pending_port_once_across_words() {
        let s = SharedInfo::zeroed();
        let ports = [1, 2, 63, 64, 65, 130, 4095];
        for p in ports {
            raise(&s, p);
        }
        let mut pos = ScanPosition::default();
        let mut got = collect(&s, &mut pos);
        got.sort();
        assert_eq!(got, ports);
        assert!(collect(&s, &mut pos).is_empty(), "nothing is delivered twice");
        for p in ports {
            assert!(!is_pending(&s, EvtchnPort(p)));
        }
    }

    #[test]
    fn masked_ports_stay_pending_and_are_not_delivered() {
        let s = SharedInfo::zeroed();
        mask(&s, EvtchnPort(5));
        raise(&s, 5);
        raise(&s, 6);
        // Selector set by another port of the same word.
        let mut pos = ScanPosition::default();
        assert_eq!(collect(&s, &mut pos), vec![6]);
        assert!(is_pending(&s, EvtchnPort(5)));
    }

    #[test]
    fn scan_resumes_after_the_last_port_it_delivered() {
        let s = SharedInfo::zeroed();
        let mut pos = ScanPosition { word: 0, bit: 10 };
        raise(&s, 3);
        raise(&s, 20);
        raise(&s, 100);
        assert_eq!(collect(&s, &mut pos), vec![20, 3, 100]);
    }

    #[test]
    fn a_port_that_keeps_raising_itself_does_not_starve_others() {
        let s = SharedInfo::zeroed();
        raise(&s, 1);
        raise(&s, 2);
        let mut pos = ScanPosition::default();
        let mut got = vec![];
        scan(&s, &s.vcpu_info[0], &mut pos, |p| {
            got.push(p.0);
            if p.0 == 1 {
                raise(&s, 1);
            }
        });
        assert!(got.contains(&2), "port 2 delivered: {got:?}");
        assert!(got.len() <= 64);
        // Port 1 is left for the next round, which the upcall loop will run.
        assert_eq!(s.vcpu_info[0].evtchn_upcall_pending.load(Ordering::SeqCst), 1);
        assert!(is_pending(&s, EvtchnPort(1)));
    }

    #[test]
    fn selector_bit_without_pending_bits_is_harmless() {
        let s = SharedInfo::zeroed();
        s.vcpu_info[0].evtchn_pending_sel.store(1 << 7, Ordering::SeqCst);
        let mut pos = ScanPosition::default();
        assert!(collect(&s, &mut pos).is_empty());
        assert_eq!(s.vcpu_info[0].evtchn_pending_sel.load(Ordering::SeqCst), 0);
    }
}
