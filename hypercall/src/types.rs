//! Typed numbers of the Xen ABI, so a frame number is never confused with an
//! address or a port.

use core::fmt;

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
    fn debug_names_the_kind() {
        extern crate std;
        assert_eq!(std::format!("{:?}", Pfn(16)), "Pfn(0x10)");
        assert_eq!(std::format!("{}", EvtchnPort(3)), "3");
    }
}
