//! The 2-level event channel ABI: a pending and a mask bitmap in
//! `shared_info`, and a selector word in `vcpu_info` naming which words of
//! the bitmap to look at (`xen/include/public/xen.h`).
//!
//! With several vCPUs the pending and mask bitmaps are shared, but each
//! vCPU has its own selector: Xen sets the selector bit (and the upcall
//! flag) in the `vcpu_info` of the vCPU the port is bound to
//! (`evtchn_2l_set_pending`). A word of `evtchn_pending` can hold ports of
//! every vCPU, so a vCPU's scan takes only the ports bound to it, as
//! Linux's `active_evtchns` does with its per-CPU `cpu_evtchn_mask`
//! (`drivers/xen/events/events_2l.c`): [`PortOwners`] is that mask.

use core::sync::atomic::{AtomicU64, Ordering};
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

/// Words in the 2-level bitmaps (4096 ports of 64 bits each).
pub const WORDS: usize = BITS_PER_XEN_ULONG;

/// Which vCPU each port is bound to, as one bitmap per vCPU (Linux's
/// `cpu_evtchn_mask`). A port belongs to exactly one vCPU; every port
/// starts on vCPU 0, where Xen binds interdomain and unbound ports and
/// where the ports the domain starts with (console, XenStore) are.
pub struct PortOwners<const V: usize> {
    bits: [[AtomicU64; WORDS]; V],
}

impl<const V: usize> PortOwners<V> {
    /// Every port on vCPU 0.
    pub const fn new() -> Self {
        let mut bits = [const { [const { AtomicU64::new(0) }; WORDS] }; V];
        if V > 0 {
            bits[0] = [const { AtomicU64::new(!0) }; WORDS];
        }
        Self { bits }
    }

    /// `port` is bound to `cpu` from now on (a new binding, or
    /// `EVTCHNOP_bind_vcpu`). Out-of-range ports and vCPUs are ignored.
    /// The port is added to its new vCPU before it leaves the old one: a
    /// scan racing with the move may see it on both (the pending bit is
    /// cleared atomically, so only one delivers it), never on none.
    pub fn bind(&self, port: EvtchnPort, cpu: u32) {
        let (Some((w, b)), Some(to)) = (word_bit(port), self.bits.get(cpu as usize)) else {
            return;
        };
        to[w].fetch_or(b, Ordering::AcqRel);
        for (n, words) in self.bits.iter().enumerate() {
            if n != cpu as usize {
                words[w].fetch_and(!b, Ordering::AcqRel);
            }
        }
    }

    /// The vCPU `port` is bound to (0 for ports out of range).
    pub fn owner(&self, port: EvtchnPort) -> u32 {
        word_bit(port)
            .and_then(|(w, b)| {
                self.bits.iter().position(|words| words[w].load(Ordering::Acquire) & b != 0)
            })
            .unwrap_or(0) as u32
    }

    /// Ports bound to `cpu`, as the scan sees them (none for a vCPU out
    /// of range).
    pub fn of(&self, cpu: u32) -> Option<&[AtomicU64; WORDS]> {
        self.bits.get(cpu as usize)
    }

    /// Every port back on vCPU 0 (a new domain after a restore).
    pub fn reset(&self) {
        for (n, words) in self.bits.iter().enumerate() {
            for w in words {
                w.store(if n == 0 { !0 } else { 0 }, Ordering::Release);
            }
        }
    }
}

impl<const V: usize> Default for PortOwners<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Takes every pending, unmasked port named by `vcpu`'s selector and bound
/// to this vCPU (`mine`), clears its pending bit and hands it to
/// `dispatch`, starting after `pos`. Ports of other vCPUs in the same
/// words are left pending for their own vCPU's scan.
pub fn scan(
    s: &SharedInfo,
    vcpu: &VcpuInfo,
    mine: &[AtomicU64; WORDS],
    pos: &mut ScanPosition,
    mut dispatch: impl FnMut(EvtchnPort),
) {
    let ready = |word: usize| {
        s.evtchn_pending[word].load(Ordering::Acquire)
            & !s.evtchn_mask[word].load(Ordering::Acquire)
            & mine[word].load(Ordering::Acquire)
    };
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
            let ready = ready(word);
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
        if ready(word) != 0 {
            // Hand the rest to the next round of the upcall loop.
            vcpu.evtchn_pending_sel.fetch_or(1 << word, Ordering::AcqRel);
            vcpu.evtchn_upcall_pending.store(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every port on vCPU 0, as with one vCPU.
    static ALL: PortOwners<1> = PortOwners::new();

    /// What Xen's `evtchn_2l_set_pending` does: the pending bit, then (not
    /// masked, not pending already) the selector bit and upcall flag of
    /// the vCPU the port is bound to.
    fn raise_on(s: &SharedInfo, port: u32, vcpu: usize) {
        let (w, b) = word_bit(EvtchnPort(port)).unwrap();
        if s.evtchn_pending[w].fetch_or(b, Ordering::SeqCst) & b != 0 {
            return;
        }
        if s.evtchn_mask[w].load(Ordering::SeqCst) & b == 0 {
            s.vcpu_info[vcpu].evtchn_pending_sel.fetch_or(1 << w, Ordering::SeqCst);
            s.vcpu_info[vcpu].evtchn_upcall_pending.store(1, Ordering::SeqCst);
        }
    }

    fn raise(s: &SharedInfo, port: u32) {
        raise_on(s, port, 0)
    }

    fn collect(s: &SharedInfo, pos: &mut ScanPosition) -> Vec<u32> {
        let mut got = vec![];
        scan(s, &s.vcpu_info[0], ALL.of(0).unwrap(), pos, |p| got.push(p.0));
        got
    }

    /// One upcall on vCPU `cpu`: scans until its upcall flag stays clear,
    /// as `handle_upcall` does.
    fn upcall<const V: usize>(
        s: &SharedInfo,
        owners: &PortOwners<V>,
        cpu: usize,
        pos: &mut ScanPosition,
    ) -> Vec<u32> {
        let mut got = vec![];
        let v = &s.vcpu_info[cpu];
        for _ in 0..100 {
            v.evtchn_upcall_pending.store(0, Ordering::SeqCst);
            scan(s, v, owners.of(cpu as u32).unwrap(), pos, |p| got.push(p.0));
            if v.evtchn_upcall_pending.load(Ordering::SeqCst) == 0 {
                return got;
            }
        }
        panic!("vCPU {cpu}: the upcall never ends (a re-raise for another vCPU's port?)");
    }

    #[test]
    fn every_port_starts_on_vcpu_0_and_moves_to_exactly_one_vcpu() {
        let o: PortOwners<4> = PortOwners::new();
        assert_eq!(o.owner(EvtchnPort(0)), 0);
        assert_eq!(o.owner(EvtchnPort(4095)), 0);
        o.bind(EvtchnPort(70), 2);
        assert_eq!(o.owner(EvtchnPort(70)), 2);
        o.bind(EvtchnPort(70), 3);
        assert_eq!(o.owner(EvtchnPort(70)), 3);
        let holders =
            (0..4).filter(|&c| o.of(c).unwrap()[1].load(Ordering::SeqCst) & (1 << 6) != 0).count();
        assert_eq!(holders, 1, "port 70 in exactly one vCPU's mask");
        // Out of range: ignored, not a panic.
        o.bind(EvtchnPort(70), 9);
        o.bind(EvtchnPort(5000), 1);
        assert_eq!(o.owner(EvtchnPort(70)), 3);
        assert!(o.of(4).is_none());
        o.reset();
        assert_eq!(o.owner(EvtchnPort(70)), 0);
    }

    #[test]
    fn each_vcpu_takes_only_its_own_ports_of_a_shared_word() {
        let s = SharedInfo::zeroed();
        let o: PortOwners<2> = PortOwners::new();
        // Ports 3 and 5 share word 0; 5 and 66 go to vCPU 1.
        o.bind(EvtchnPort(5), 1);
        o.bind(EvtchnPort(66), 1);
        raise_on(&s, 3, 0);
        raise_on(&s, 5, 1);
        raise_on(&s, 66, 1);
        let (mut p0, mut p1) = (ScanPosition::new(), ScanPosition::new());
        // vCPU 1's selector names word 0 too; vCPU 0's scan of word 0 must
        // leave port 5 pending, and must not keep re-raising itself for it.
        assert_eq!(upcall(&s, &o, 0, &mut p0), vec![3]);
        assert!(is_pending(&s, EvtchnPort(5)));
        let mut got1 = upcall(&s, &o, 1, &mut p1);
        got1.sort();
        assert_eq!(got1, vec![5, 66]);
        assert!(upcall(&s, &o, 0, &mut p0).is_empty());
        assert!(upcall(&s, &o, 1, &mut p1).is_empty());
    }

    #[test]
    fn a_selector_bit_set_by_another_vcpus_port_delivers_nothing_here() {
        let s = SharedInfo::zeroed();
        let o: PortOwners<2> = PortOwners::new();
        o.bind(EvtchnPort(7), 1);
        raise_on(&s, 7, 1);
        // A stray selector bit on vCPU 0 for the same word.
        s.vcpu_info[0].evtchn_pending_sel.store(1, Ordering::SeqCst);
        let mut p0 = ScanPosition::new();
        assert!(upcall(&s, &o, 0, &mut p0).is_empty());
        assert_eq!(s.vcpu_info[0].evtchn_upcall_pending.load(Ordering::SeqCst), 0);
        assert!(is_pending(&s, EvtchnPort(7)), "left for vCPU 1");
    }

    #[test]
    fn a_port_moved_while_pending_is_delivered_once_by_its_new_vcpu() {
        // What `events::bind_vcpu` does on the 2-level ABI: mask, move,
        // unmask; Xen's unmask raises a pending port on its (new) vCPU.
        let s = SharedInfo::zeroed();
        let o: PortOwners<2> = PortOwners::new();
        raise_on(&s, 9, 0);
        mask(&s, EvtchnPort(9));
        o.bind(EvtchnPort(9), 1);
        // vCPU 0 still has the selector bit: it must not take the port.
        let mut p0 = ScanPosition::new();
        assert!(upcall(&s, &o, 0, &mut p0).is_empty());
        // The unmask: Xen clears the mask and, the port pending, raises it
        // on the vCPU it is bound to now.
        s.evtchn_mask[0].fetch_and(!(1 << 9), Ordering::SeqCst);
        s.vcpu_info[1].evtchn_pending_sel.fetch_or(1, Ordering::SeqCst);
        s.vcpu_info[1].evtchn_upcall_pending.store(1, Ordering::SeqCst);
        let mut p1 = ScanPosition::new();
        assert_eq!(upcall(&s, &o, 1, &mut p1), vec![9]);
        assert!(upcall(&s, &o, 0, &mut p0).is_empty());
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
        scan(&s, &s.vcpu_info[0], ALL.of(0).unwrap(), &mut pos, |p| {
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
