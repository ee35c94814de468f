//! Numbers of the protocol that mean something: request and transaction
//! ids, and points in time for deadlines.

use core::fmt;
use core::time::Duration;

/// A request id (`xsd_sockmsg.req_id`): chosen by the client, echoed by
/// xenstored in the reply, so a reply can be matched to its request.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ReqId(pub u32);

/// A transaction id (`xsd_sockmsg.tx_id`): chosen by xenstored at
/// `XS_TRANSACTION_START`; [`TxId::NONE`] outside a transaction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TxId(pub u32);

impl TxId {
    /// "Not in a transaction".
    pub const NONE: TxId = TxId(0);
}

impl fmt::Debug for ReqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReqId({})", self.0)
    }
}

impl fmt::Debug for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxId({})", self.0)
    }
}

/// A point in time, in nanoseconds of whatever clock the transport uses (in
/// the guest: Xen system time, the clock `SCHEDOP_poll` deadlines use).
/// The crate never reads a clock itself; [`crate::Transport::now`] does.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Instant(pub u64);

impl Instant {
    /// `self + d`, saturating: a deadline too far away is "never" in practice.
    pub fn after(self, d: Duration) -> Instant {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ns))
    }

    /// How long after `earlier` `self` is (zero if it is not after it).
    pub fn since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Whether `deadline` (if any) has passed at `self`.
    pub fn reached(self, deadline: Option<Instant>) -> bool {
        deadline.is_some_and(|d| self >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_after_saturates() {
        assert_eq!(Instant(5).after(Duration::from_nanos(7)), Instant(12));
        assert_eq!(Instant(u64::MAX - 1).after(Duration::from_secs(1)), Instant(u64::MAX));
        assert!(Instant(10).reached(Some(Instant(10))));
        assert!(!Instant(9).reached(Some(Instant(10))));
        assert!(!Instant(u64::MAX).reached(None));
        assert_eq!(Instant(12).since(Instant(5)), Duration::from_nanos(7));
        assert_eq!(Instant(5).since(Instant(12)), Duration::ZERO);
    }
}
