//! A fixed-capacity queue of one-shot timers ordered by deadline.

/// A timer's handle, for cancelling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerId(u64);

/// What runs when a timer expires: a function and the word it was armed with.
pub type TimerFn = fn(usize);

#[derive(Clone, Copy, Debug)]
pub struct Timer {
    pub deadline_ns: u64,
    pub id: TimerId,
    pub func: TimerFn,
    pub data: usize,
}

/// The queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// Sorted by deadline, earliest last (so expiry pops from the end);
/// equal deadlines expire in the order they were added.
///
/// A new queue is all zero bytes, so the kernel's per-vCPU queues (a
/// static) sit in `.bss`, not in the image: `Option<Timer>` slots would
/// leave the payload of `None` uninitialised, which the compiler can only
/// place in `.data` (34 KiB of the stripped image, issue 17).
///
/// Not `heapless::BinaryHeap`: a timer is cancelled by id from anywhere
/// in the queue (a heap removes only its top), and equal deadlines must
/// expire in the order they were armed (a heap is not stable).
pub struct TimerQueue<const N: usize> {
    timers: [Slot; N],
    len: usize,
    /// The last id handed out (ids start at 1).
    last_id: u64,
}

/// A queue entry; the first `len` are timers, the rest `EMPTY`.
#[derive(Clone, Copy)]
struct Slot {
    deadline_ns: u64,
    id: u64,
    func: Option<TimerFn>,
    data: usize,
}

impl Slot {
    const EMPTY: Slot = Slot { deadline_ns: 0, id: 0, func: None, data: 0 };

    fn timer(&self) -> Option<Timer> {
        let func = self.func?;
        Some(Timer { deadline_ns: self.deadline_ns, id: TimerId(self.id), func, data: self.data })
    }
}

impl<const N: usize> TimerQueue<N> {
    pub const fn new() -> Self {
        Self { timers: [Slot::EMPTY; N], len: 0, last_id: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn add(
        &mut self,
        deadline_ns: u64,
        func: TimerFn,
        data: usize,
    ) -> Result<TimerId, QueueFull> {
        if self.len == N {
            return Err(QueueFull);
        }
        self.last_id += 1;
        let id = self.last_id;
        // Insert before every timer that is due no later (they go first).
        let at = self.timers[..self.len]
            .iter()
            .position(|t| t.deadline_ns <= deadline_ns)
            .unwrap_or(self.len);
        self.timers.copy_within(at..self.len, at + 1);
        self.timers[at] = Slot { deadline_ns, id, func: Some(func), data };
        self.len += 1;
        Ok(TimerId(id))
    }

    /// Removes a timer that has not fired; false if it is not queued.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        match self.timers[..self.len].iter().position(|t| t.id == id.0) {
            Some(at) => {
                self.timers.copy_within(at + 1..self.len, at);
                self.len -= 1;
                self.timers[self.len] = Slot::EMPTY;
                true
            }
            None => false,
        }
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.len.checked_sub(1).map(|i| self.timers[i].deadline_ns)
    }

    /// Takes the earliest timer if it is due at `now_ns`.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<Timer> {
        let last = self.len.checked_sub(1)?;
        let t = self.timers[last].timer()?;
        if t.deadline_ns > now_ns {
            return None;
        }
        self.timers[last] = Slot::EMPTY;
        self.len = last;
        Some(t)
    }
}

impl<const N: usize> Default for TimerQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nop(_: usize) {}

    #[test]
    fn expires_in_deadline_order_then_insertion_order() {
        let mut q = TimerQueue::<8>::new();
        q.add(30, nop, 1).unwrap();
        q.add(10, nop, 2).unwrap();
        q.add(20, nop, 3).unwrap();
        q.add(10, nop, 4).unwrap();
        assert_eq!(q.next_deadline(), Some(10));
        assert!(q.pop_due(5).is_none());
        let order: Vec<usize> = std::iter::from_fn(|| q.pop_due(100)).map(|t| t.data).collect();
        assert_eq!(order, vec![2, 4, 3, 1]);
        assert_eq!(q.len(), 0);
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn full_queue_and_cancel() {
        let mut q = TimerQueue::<2>::new();
        let a = q.add(5, nop, 0).unwrap();
        q.add(6, nop, 1).unwrap();
        assert_eq!(q.add(7, nop, 2), Err(QueueFull));
        assert!(q.cancel(a));
        assert!(!q.cancel(a));
        assert_eq!(q.next_deadline(), Some(6));
        q.add(7, nop, 2).unwrap();
    }

    #[test]
    fn random_storm_pops_sorted() {
        let mut q = TimerQueue::<256>::new();
        let mut x = 12345u64;
        for i in 0..256 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            q.add(x >> 40, nop, i).unwrap();
        }
        let mut last = 0;
        let mut n = 0;
        while let Some(t) = q.pop_due(u64::MAX) {
            assert!(t.deadline_ns >= last);
            last = t.deadline_ns;
            n += 1;
        }
        assert_eq!(n, 256);
    }
}
