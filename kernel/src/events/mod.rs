//! Event channels: Xen's interrupts. Ports are bound to handlers; the
//! upcall scans whichever ABI is active (FIFO when Xen offers it, 2-level
//! otherwise) and runs the handlers with upcalls masked.

pub mod fifo;
pub mod storm;
pub mod table;
pub mod two_level;

#[cfg(target_os = "none")]
mod global;
#[cfg(target_os = "none")]
mod irq;
#[cfg(target_os = "none")]
pub mod owed;
#[cfg(target_os = "none")]
pub use global::*;
#[cfg(target_os = "none")]
pub use irq::{enable_upcalls, upcalls_masked, IrqGuard, IrqLock};
#[cfg(target_os = "none")]
pub use owed::{defer_sends, send_or_owe, send_owed, DeferSends};

/// Which event channel ABI to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abi {
    TwoLevel,
    Fifo,
}

impl Abi {
    /// Parses `evtchn=` from the command line.
    pub fn parse(s: &str) -> Option<Abi> {
        match s {
            "2l" | "2level" | "two-level" => Some(Abi::TwoLevel),
            "fifo" => Some(Abi::Fifo),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Abi::TwoLevel => "2-level",
            Abi::Fifo => "FIFO",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_names_parse() {
        assert_eq!(Abi::parse("fifo"), Some(Abi::Fifo));
        assert_eq!(Abi::parse("2l"), Some(Abi::TwoLevel));
        assert_eq!(Abi::parse("3l"), None);
    }
}
