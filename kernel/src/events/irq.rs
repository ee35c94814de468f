//! The PV "interrupt flag": `vcpu_info.evtchn_upcall_mask`. While it is set
//! Xen queues events instead of calling the upcall, exactly like `cli`.

use crate::platform;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{compiler_fence, Ordering};
use spin::{Mutex, MutexGuard};

/// Masks upcalls for its lifetime and restores the previous state on drop,
/// delivering anything that arrived meanwhile.
pub struct IrqGuard {
    was_masked: bool,
}

impl IrqGuard {
    pub fn new() -> Self {
        // Before shared_info is mapped upcalls are masked (as Xen starts us).
        let was_masked = if platform::is_pvh() {
            platform::pvh::irq_disable()
        } else {
            platform::try_vcpu_info()
                .is_none_or(|v| v.evtchn_upcall_mask.swap(1, Ordering::SeqCst) != 0)
        };
        compiler_fence(Ordering::SeqCst);
        IrqGuard { was_masked }
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

/// Unmasks upcalls; if Xen marked one pending while they were masked, a
/// hypercall makes Xen deliver it now (Xen checks on every return to the guest).
pub fn enable_upcalls() {
    if platform::is_pvh() {
        compiler_fence(Ordering::SeqCst);
        platform::pvh::irq_enable();
        return;
    }
    let v = platform::vcpu_info();
    compiler_fence(Ordering::SeqCst);
    v.evtchn_upcall_mask.store(0, Ordering::SeqCst);
    if v.evtchn_upcall_pending.load(Ordering::SeqCst) != 0 {
        let _ = hypercall::ops::version::version();
    }
}

/// Whether upcalls are masked right now.
pub fn upcalls_masked() -> bool {
    if platform::is_pvh() {
        return platform::pvh::irq_masked();
    }
    platform::vcpu_info().evtchn_upcall_mask.load(Ordering::Relaxed) != 0
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
