//! Typed numbers of the Xen ABI, so a frame number is never confused with an
//! address or a port.

use core::fmt;
use core::ops::{Add, AddAssign, Range, Sub};

/// log2 of the x86 page size.
pub const PAGE_SHIFT: u32 = 12;
/// The x86 page size in bytes.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

macro_rules! number {
    ($(#[$doc:meta])* $name:ident($inner:ty), $fmt:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(", $fmt, ")"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, $fmt, self.0)
            }
        }
    };
}

number!(
    /// A pseudo-physical frame number: the guest's own view of its memory,
    /// contiguous from 0 to `nr_pages`.
    Pfn(u64),
    "{:#x}"
);
number!(
    /// A machine frame number: a real host frame, as Xen and other domains see it.
    Mfn(u64),
    "{:#x}"
);
number!(
    /// A machine (host-physical) byte address.
    MachineAddr(u64),
    "{:#x}"
);
number!(
    /// An event channel port of this domain (`evtchn_port_t`).
    EvtchnPort(u32),
    "{}"
);
number!(
    /// A domain id (`domid_t`).
    DomId(u16),
    "{}"
);

/// Arithmetic of frame numbers: a frame `k` pages further on, the distance
/// between two frames, and runs of frames (`Range<Pfn>`, `Range<Mfn>`), so
/// that no caller unwraps a frame to add to it by hand.
macro_rules! frame_arith {
    ($name:ident) => {
        impl $name {
            /// The frame `k` pages after this one (as `self + k`).
            pub const fn offset(self, k: u64) -> Self {
                $name(self.0 + k)
            }

            /// The frame `k` pages after this one, or `None` on overflow.
            pub const fn checked_add(self, k: u64) -> Option<Self> {
                match self.0.checked_add(k) {
                    Some(n) => Some($name(n)),
                    None => None,
                }
            }

            /// The frame `k` pages before this one, or `None` below frame 0.
            pub const fn checked_sub(self, k: u64) -> Option<Self> {
                match self.0.checked_sub(k) {
                    Some(n) => Some($name(n)),
                    None => None,
                }
            }

            /// The run of `n` frames starting here.
            pub const fn run(self, n: u64) -> Range<Self> {
                self..$name(self.0 + n)
            }
        }

        impl Add<u64> for $name {
            type Output = $name;
            fn add(self, k: u64) -> $name {
                $name(self.0 + k)
            }
        }

        impl AddAssign<u64> for $name {
            fn add_assign(&mut self, k: u64) {
                self.0 += k;
            }
        }

        impl Sub<u64> for $name {
            type Output = $name;
            fn sub(self, k: u64) -> $name {
                $name(self.0 - k)
            }
        }

        /// The number of frames from `rhs` up to `self`.
        impl Sub<$name> for $name {
            type Output = u64;
            fn sub(self, rhs: $name) -> u64 {
                self.0 - rhs.0
            }
        }

        impl FrameRange for Range<$name> {
            type Frame = $name;

            fn frame_count(&self) -> u64 {
                self.end.0.saturating_sub(self.start.0)
            }

            fn frames(&self) -> impl DoubleEndedIterator<Item = $name> + Clone {
                (self.start.0..self.end.0).map($name)
            }
        }
    };
}

/// A run of frames `start..end`. (`Range<Pfn>` is no iterator: `Step` is
/// unstable for user types.)
pub trait FrameRange {
    type Frame;
    /// How many frames the run holds (0 if `end <= start`).
    fn frame_count(&self) -> u64;
    /// The frames of the run, in order.
    fn frames(&self) -> impl DoubleEndedIterator<Item = Self::Frame> + Clone;
}

frame_arith!(Pfn);
frame_arith!(Mfn);

impl Add<u64> for MachineAddr {
    type Output = MachineAddr;
    /// The address `bytes` further on.
    fn add(self, bytes: u64) -> MachineAddr {
        MachineAddr(self.0 + bytes)
    }
}

impl DomId {
    /// `DOMID_SELF`: "the calling domain" in hypercall arguments.
    pub const SELF: DomId = DomId(0x7FF0);
}

impl Mfn {
    /// The machine address of the first byte of this frame.
    pub const fn addr(self) -> MachineAddr {
        MachineAddr(self.0 << PAGE_SHIFT)
    }
}

impl MachineAddr {
    /// The frame this address falls in.
    pub const fn mfn(self) -> Mfn {
        Mfn(self.0 >> PAGE_SHIFT)
    }

    /// Offset of this address within its frame.
    pub const fn page_offset(self) -> usize {
        (self.0 as usize) & (PAGE_SIZE - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_addresses_round_trip() {
        let a = MachineAddr(0x1234_5678);
        assert_eq!(a.mfn(), Mfn(0x12345));
        assert_eq!(a.page_offset(), 0x678);
        assert_eq!(Mfn(0x12345).addr(), MachineAddr(0x1234_5000));
    }

    #[test]
    fn frames_step_by_pages() {
        let p = Pfn(0x10);
        assert_eq!(p + 3, Pfn(0x13));
        assert_eq!(p.offset(3), Pfn(0x13));
        assert_eq!(Pfn(0x13) - p, 3);
        assert_eq!(Pfn(0x13) - 3, p);
        let mut q = p;
        q += 2;
        assert_eq!(q, Pfn(0x12));
        assert_eq!(Mfn(u64::MAX - 1).checked_add(1), Some(Mfn(u64::MAX)));
        assert_eq!(Mfn(u64::MAX).checked_add(1), None);
        assert_eq!(Pfn(2).checked_sub(2), Some(Pfn(0)));
        assert_eq!(Pfn(2).checked_sub(3), None);
        assert_eq!(MachineAddr(0x1000) + 8, MachineAddr(0x1008));
    }

    #[test]
    fn runs_count_and_iterate() {
        extern crate std;
        use std::vec::Vec;
        let run = Pfn(5).run(3);
        assert_eq!(run, Pfn(5)..Pfn(8));
        assert_eq!(run.frame_count(), 3);
        assert_eq!(run.frames().collect::<Vec<_>>(), [Pfn(5), Pfn(6), Pfn(7)]);
        assert_eq!(run.frames().next_back(), Some(Pfn(7)));
        // An empty or reversed run has no frames.
        assert_eq!((Mfn(9)..Mfn(9)).frame_count(), 0);
        let reversed = Mfn(9)..Mfn(4);
        assert_eq!(reversed.frame_count(), 0);
        assert_eq!(reversed.frames().count(), 0);
    }

    #[test]
    fn debug_names_the_kind() {
        extern crate std;
        assert_eq!(std::format!("{:?}", Pfn(16)), "Pfn(0x10)");
        assert_eq!(std::format!("{}", EvtchnPort(3)), "3");
    }
}
