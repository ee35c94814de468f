//! The guest's "interrupt flag" (the platform's upcall mask: PV's
//! `vcpu_info.evtchn_upcall_mask`). While it is set Xen queues events
//! instead of calling the upcall, exactly like `cli`.

use core::ops::{Deref, DerefMut};
use spin::{Mutex, MutexGuard};

/// Masks upcalls for its lifetime and restores the previous state on drop,
/// delivering anything that arrived meanwhile.
pub struct IrqGuard {
    was_masked: bool,
}

impl IrqGuard {
    pub fn new() -> Self {
        IrqGuard { was_masked: platform::mask_upcalls() }
    }
}

impl Default for IrqGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for IrqGuard {
    fn drop(&mut self) {
        if !self.was_masked {
            enable_upcalls();
        }
    }
}

/// Unmasks upcalls, taking one Xen marked pending meanwhile.
pub fn enable_upcalls() {
    platform::unmask_upcalls();
}

/// Whether upcalls are masked right now.
pub fn upcalls_masked() -> bool {
    platform::upcalls_masked()
}

/// A spin lock that also masks upcalls, so an event handler can never
/// spin on a lock held by the code it interrupted.
pub struct IrqLock<T> {
    inner: Mutex<T>,
}

/// Holds the lock, then the mask (dropped in that order).
pub struct IrqLockGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    _irq: IrqGuard,
}

impl<T> IrqLock<T> {
    pub const fn new(value: T) -> Self {
        Self { inner: Mutex::new(value) }
    }

    pub fn lock(&self) -> IrqLockGuard<'_, T> {
        let irq = IrqGuard::new();
        IrqLockGuard { guard: self.inner.lock(), _irq: irq }
    }

    /// Whether the lock is held (by anyone: on one vCPU, by the code this
    /// one interrupted or is called from).
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// The lock if it is free (for a panic report that must not wait).
    pub fn try_lock(&self) -> Option<IrqLockGuard<'_, T>> {
        let irq = IrqGuard::new();
        self.inner.try_lock().map(|guard| IrqLockGuard { guard, _irq: irq })
    }
}

impl<T> Deref for IrqLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for IrqLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}
