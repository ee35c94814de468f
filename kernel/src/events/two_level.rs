//! Event channel bits in `shared_info` (2-level ABI): the pieces the console
//! and the boot path need before upcalls exist.

use core::sync::atomic::Ordering;
use hypercall::abi::shared_info::{SharedInfo, BITS_PER_XEN_ULONG};
use hypercall::EvtchnPort;

fn word_bit(port: EvtchnPort) -> Option<(usize, u64)> {
    let p = port.0 as usize;
    let word = p / BITS_PER_XEN_ULONG;
    (word < BITS_PER_XEN_ULONG).then(|| (word, 1u64 << (p % BITS_PER_XEN_ULONG)))
}

/// Whether `port` is pending. Ports beyond the 2-level range are never pending here.
pub fn is_pending(s: &SharedInfo, port: EvtchnPort) -> bool {
    word_bit(port).is_some_and(|(w, b)| s.evtchn_pending[w].load(Ordering::Acquire) & b != 0)
}

/// Clears `port`'s pending bit; returns whether it was set. Xen sets the
/// bit with a locked operation, so this must be one too.
pub fn clear_pending(s: &SharedInfo, port: EvtchnPort) -> bool {
    word_bit(port)
        .is_some_and(|(w, b)| s.evtchn_pending[w].fetch_and(!b, Ordering::SeqCst) & b != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn ports_beyond_two_level_range_are_ignored() {
        let s = SharedInfo::zeroed();
        assert!(!is_pending(&s, EvtchnPort(4096)));
        assert!(!clear_pending(&s, EvtchnPort(u32::MAX)));
    }
}
