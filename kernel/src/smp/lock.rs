//! A lock for vCPUs that Xen may deschedule: spin a little, then block in
//! Xen until the holder lets go.
//!
//! On bare metal a spin lock's holder runs until it unlocks, so waiting
//! by spinning costs at most the critical section. Under a hypervisor the
//! holder's vCPU can be descheduled in the middle of it (lock-holder
//! preemption): every waiter then spins for the rest of its own time
//! slice, burning physical CPU the holder needs to finish. Linux's
//! paravirtual spinlocks (arch/x86/xen/spinlock.c) spin for a bounded time,
//! then sleep in `SCHEDOP_poll` on a per-CPU event channel that the holder
//! notifies on release. This is the same idea on top of a plain spin lock:
//!
//! - fast path: `try_lock` up to `spin_limit` times;
//! - slow path: set this vCPU's bit in `waiting`, clear this vCPU's kick
//!   event, try once more, then [`Waiters::wait`] (Xen: `SCHEDOP_poll` on
//!   the kick port, which is masked so it never causes an upcall);
//! - release: unlock, then kick every vCPU whose bit is set.
//!
//! No wake-up is lost: a waiter sets its bit and clears its kick before
//! its last `try_lock`; a holder unlocks before it reads the bits. Either
//! the waiter's `try_lock` sees the lock free, or the holder sees the bit
//! and kicks, and the poll returns at once on a pending kick. The wait
//! still has a timeout, so a lost kick would show as a counted timeout
//! rather than a hang.
//!
//! The lock's logic is host-tested with threads standing in for vCPUs
//! (below); the Xen side is [`Waiters`], implemented in `smp/mod.rs`.

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{fence, AtomicU64, Ordering};
use spin::{Mutex, MutexGuard};

/// How a waiter sleeps and is woken: one slot per vCPU.
pub trait Waiters: Sync {
    /// The calling vCPU (below 64).
    fn me(&self) -> usize;
    /// Forgets a kick `cpu` got before (its kick event's pending bit).
    fn clear(&self, cpu: usize);
    /// Sleeps until `cpu` is kicked or `timeout_ns` passed; false on a
    /// timeout.
    fn wait(&self, cpu: usize, timeout_ns: u64) -> bool;
    /// Wakes `cpu` (or makes its next wait return at once).
    fn kick(&self, cpu: usize);
}

/// What the slow path did, for the demo and the checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Acquisitions.
    pub acquired: u64,
    /// Acquisitions that had to spin at least once.
    pub contended: u64,
    /// Waits in Xen (polls).
    pub waits: u64,
    /// Waits that ended by their timeout instead of a kick.
    pub timeouts: u64,
    /// Kicks sent on release.
    pub kicks: u64,
}

/// A lock whose waiters spin `spin_limit` times, then wait in Xen.
/// `spin_limit == u32::MAX` makes it a plain spin lock (for comparison).
pub struct PollLock<T> {
    inner: Mutex<T>,
    waiting: AtomicU64,
    spin_limit: u32,
    timeout_ns: u64,
    waiters: &'static dyn Waiters,
    acquired: AtomicU64,
    contended: AtomicU64,
    waits: AtomicU64,
    timeouts: AtomicU64,
    kicks: AtomicU64,
}

/// Holds the lock; kicks the waiters when dropped.
pub struct PollLockGuard<'a, T> {
    lock: &'a PollLock<T>,
    guard: Option<MutexGuard<'a, T>>,
}

impl<T> PollLock<T> {
    pub const fn new(
        value: T,
        spin_limit: u32,
        timeout_ns: u64,
        waiters: &'static dyn Waiters,
    ) -> Self {
        PollLock {
            inner: Mutex::new(value),
            waiting: AtomicU64::new(0),
            spin_limit,
            timeout_ns,
            waiters,
            acquired: AtomicU64::new(0),
            contended: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            kicks: AtomicU64::new(0),
        }
    }

    pub fn lock(&self) -> PollLockGuard<'_, T> {
        let mut spins = 0u32;
        let mut contended = false;
        loop {
            if let Some(g) = self.inner.try_lock() {
                self.acquired.fetch_add(1, Ordering::Relaxed);
                if contended {
                    self.contended.fetch_add(1, Ordering::Relaxed);
                }
                return PollLockGuard { lock: self, guard: Some(g) };
            }
            contended = true;
            if spins < self.spin_limit {
                spins += 1;
                core::hint::spin_loop();
                continue;
            }
            let me = self.waiters.me();
            let bit = 1u64 << me;
            self.waiting.fetch_or(bit, Ordering::SeqCst);
            self.waiters.clear(me);
            if !self.inner.is_locked() {
                // Freed meanwhile: no need to sleep.
                self.waiting.fetch_and(!bit, Ordering::SeqCst);
                spins = 0;
                continue;
            }
            self.waits.fetch_add(1, Ordering::Relaxed);
            if !self.waiters.wait(me, self.timeout_ns) {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            self.waiting.fetch_and(!bit, Ordering::SeqCst);
            spins = 0;
        }
    }

    /// Which vCPUs wait in Xen now (a bitmap).
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> LockStats {
        LockStats {
            acquired: self.acquired.load(Ordering::Relaxed),
            contended: self.contended.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            kicks: self.kicks.load(Ordering::Relaxed),
        }
    }
}

impl<T> Drop for PollLockGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        // The unlock before the read of the waiters (see the module text).
        fence(Ordering::SeqCst);
        let mut waiting = self.lock.waiting.load(Ordering::SeqCst);
        while waiting != 0 {
            let cpu = waiting.trailing_zeros() as usize;
            waiting &= waiting - 1;
            self.lock.kicks.fetch_add(1, Ordering::Relaxed);
            self.lock.waiters.kick(cpu);
        }
    }
}

impl<T> Deref for PollLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl<T> DerefMut for PollLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("held until dropped")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::{Condvar, Mutex as StdMutex};
    use std::time::Duration;

    /// Threads as vCPUs: a kick is a flag per thread and a condition
    /// variable, like a pending event channel and `SCHEDOP_poll`.
    struct ThreadWaiters {
        kicked: StdMutex<[bool; 8]>,
        cv: Condvar,
    }

    thread_local! {
        static ME: Cell<usize> = const { Cell::new(0) };
    }

    impl Waiters for ThreadWaiters {
        fn me(&self) -> usize {
            ME.with(Cell::get)
        }
        fn clear(&self, cpu: usize) {
            self.kicked.lock().unwrap()[cpu] = false;
        }
        fn wait(&self, cpu: usize, timeout_ns: u64) -> bool {
            let g = self.kicked.lock().unwrap();
            let (g, r) = self
                .cv
                .wait_timeout_while(g, Duration::from_nanos(timeout_ns), |k| !k[cpu])
                .unwrap();
            drop(g);
            !r.timed_out()
        }
        fn kick(&self, cpu: usize) {
            self.kicked.lock().unwrap()[cpu] = true;
            self.cv.notify_all();
        }
    }

    fn waiters() -> &'static ThreadWaiters {
        Box::leak(Box::new(ThreadWaiters { kicked: StdMutex::new([false; 8]), cv: Condvar::new() }))
    }

    /// Four "vCPUs", each holder sleeping inside the critical section (a
    /// descheduled holder): every increment is kept, the waiters went to
    /// sleep, and no wait ended by its timeout (no kick was lost).
    #[test]
    fn waiters_sleep_while_the_holder_is_away_and_none_is_lost() {
        let lock: &'static PollLock<u64> =
            Box::leak(Box::new(PollLock::new(0, 100, 5_000_000_000, waiters())));
        std::thread::scope(|s| {
            for cpu in 0..4 {
                s.spawn(move || {
                    ME.with(|m| m.set(cpu));
                    for _ in 0..50 {
                        let mut g = lock.lock();
                        *g += 1;
                        std::thread::sleep(Duration::from_micros(200));
                    }
                });
            }
        });
        let st = lock.stats();
        assert_eq!(*lock.lock(), 200);
        assert_eq!(st.acquired, 200);
        assert!(st.waits > 0, "{st:?}");
        assert_eq!(st.timeouts, 0, "{st:?}");
        assert!(st.kicks >= st.waits - st.timeouts, "{st:?}");
        assert_eq!(lock.waiting(), 0);
    }

    /// With the spin limit at its maximum nobody ever waits in Xen.
    #[test]
    fn an_unlimited_spin_never_waits() {
        let lock: &'static PollLock<u64> =
            Box::leak(Box::new(PollLock::new(0, u32::MAX, 1_000_000, waiters())));
        std::thread::scope(|s| {
            for cpu in 0..3 {
                s.spawn(move || {
                    ME.with(|m| m.set(cpu));
                    for _ in 0..1000 {
                        *lock.lock() += 1;
                    }
                });
            }
        });
        assert_eq!(*lock.lock(), 3000);
        assert_eq!(lock.stats().waits, 0);
        assert_eq!(lock.stats().kicks, 0);
    }
}
