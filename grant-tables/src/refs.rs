//! The grant-reference allocator: which entries are free, handed out in
//! batches (a driver reserves a ring's worth at once) or active.
//!
//! References below `NR_RESERVED_ENTRIES` belong to the toolstack (console,
//! xenstore) and are never handed out. Freed references are reused lowest
//! first, which keeps the table compact and tests predictable.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use hypercall::abi::grant_table::{GrantRef, NR_RESERVED_ENTRIES};

/// What the allocator knows of one reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefState {
    /// The toolstack's (refs 0..8).
    Toolstack,
    Free,
    /// Handed out in a [`Reservation`], not yet granted.
    Reserved,
    /// Its entry grants a page.
    Granted,
}

/// References taken together; each [`claim`](Reservation::claim) hands out
/// one. Give what is left back with `GrantTable::release`.
#[derive(Debug, Default)]
pub struct Reservation {
    refs: Vec<GrantRef>,
}

impl Reservation {
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// The next reference (lowest first).
    pub(crate) fn claim(&mut self) -> Option<GrantRef> {
        self.refs.pop()
    }

    pub(crate) fn drain(&mut self) -> impl Iterator<Item = GrantRef> + '_ {
        self.refs.drain(..)
    }
}

/// Free and used references of a table of `capacity` entries.
#[derive(Debug, Default)]
pub struct RefAllocator {
    state: Vec<RefState>,
    free: BTreeSet<u32>,
}

impl RefAllocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries in the table.
    pub fn capacity(&self) -> u32 {
        self.state.len() as u32
    }

    pub fn free_count(&self) -> u32 {
        self.free.len() as u32
    }

    /// References granted or reserved (the toolstack's not counted).
    pub fn in_use(&self) -> u32 {
        self.capacity() - self.free_count() - NR_RESERVED_ENTRIES.min(self.capacity())
    }

    pub fn state(&self, r: GrantRef) -> Option<RefState> {
        self.state.get(r.0 as usize).copied()
    }

    /// The table grew (or changed version) to `capacity` entries.
    pub fn resize(&mut self, capacity: u32) {
        let old = self.capacity();
        if capacity < old {
            // Only when nothing is in use (version change to a denser
            // layout never shrinks; v1 -> v2 halves entries per frame).
            self.state.truncate(capacity as usize);
            self.free.retain(|&r| r < capacity);
            return;
        }
        for r in old..capacity {
            if r < NR_RESERVED_ENTRIES {
                self.state.push(RefState::Toolstack);
            } else {
                self.state.push(RefState::Free);
                self.free.insert(r);
            }
        }
    }

    /// `n` references, all or none.
    pub fn take(&mut self, n: u32) -> Option<Reservation> {
        if n > self.free_count() {
            return None;
        }
        let mut refs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let r = self.free.pop_first().expect("counted above");
            self.state[r as usize] = RefState::Reserved;
            refs.push(GrantRef(r));
        }
        // claim() pops from the back: lowest first.
        refs.reverse();
        Some(Reservation { refs })
    }

    /// One reference, reserved: the single-grant path, without the
    /// allocation a [`Reservation`] costs.
    pub fn take_one(&mut self) -> Option<GrantRef> {
        let r = self.free.pop_first()?;
        self.state[r as usize] = RefState::Reserved;
        Some(GrantRef(r))
    }

    /// A reserved reference now grants a page.
    pub fn mark_granted(&mut self, r: GrantRef) {
        debug_assert_eq!(self.state(r), Some(RefState::Reserved));
        self.state[r.0 as usize] = RefState::Granted;
    }

    /// A reserved or revoked reference is free again.
    pub fn put(&mut self, r: GrantRef) {
        let s = &mut self.state[r.0 as usize];
        debug_assert!(matches!(*s, RefState::Reserved | RefState::Granted));
        *s = RefState::Free;
        self.free.insert(r.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_one_hands_out_the_lowest_free_and_reuses_it() {
        let mut a = RefAllocator::new();
        a.resize(12);
        assert_eq!(a.take_one(), Some(GrantRef(NR_RESERVED_ENTRIES)));
        let second = a.take_one().unwrap();
        a.put(GrantRef(NR_RESERVED_ENTRIES));
        assert_eq!(a.take_one(), Some(GrantRef(NR_RESERVED_ENTRIES)));
        assert_eq!(a.state(second), Some(RefState::Reserved));
        a.take_one().unwrap();
        a.take_one().unwrap();
        assert_eq!(a.take_one(), None, "4 usable entries of 12");
    }

    #[test]
    fn reserved_entries_are_never_handed_out() {
        let mut a = RefAllocator::new();
        a.resize(16);
        assert_eq!(a.free_count(), 8);
        let mut res = a.take(8).unwrap();
        assert_eq!(res.claim(), Some(GrantRef(8)));
        assert!(a.take(1).is_none());
        assert_eq!(a.state(GrantRef(0)), Some(RefState::Toolstack));
        assert_eq!(a.state(GrantRef(99)), None);
    }

    #[test]
    fn take_is_all_or_nothing_and_freed_refs_are_reused_lowest_first() {
        let mut a = RefAllocator::new();
        a.resize(20);
        let mut r = a.take(10).unwrap();
        assert!(a.take(3).is_none(), "2 free, 3 wanted");
        assert_eq!(a.free_count(), 2);
        let first = r.claim().unwrap();
        a.mark_granted(first);
        a.put(first);
        let mut again = a.take(1).unwrap();
        assert_eq!(again.claim(), Some(first));
        assert_eq!(a.in_use(), 10);
    }
}
