//! What the balloon driver does for a new target: pure arithmetic over the
//! runs of pages it has given back, so it can be checked on the host.

use alloc::vec::Vec;
use core::ops::Range;
use hypercall::{FrameRange, Pfn};

/// Pages given back per step: small enough that a failure leaves most of
/// the work done, big enough to keep hypercalls few.
pub const STEP: u64 = 512;

/// One step toward the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Give this many free pages back to Xen.
    Out(u64),
    /// Take these pfns back.
    In(Range<Pfn>),
}

/// The pages the guest holds and the runs it gave back, newest last.
#[derive(Debug, Default)]
pub struct Balloon {
    pub runs: Vec<Range<Pfn>>,
    /// Whether the pfns past the boot size were added as the oldest run.
    pub seeded: bool,
}

impl Balloon {
    pub const fn new() -> Self {
        Balloon { runs: Vec::new(), seeded: false }
    }

    /// Pages currently given back.
    pub fn out_pages(&self) -> u64 {
        self.runs.iter().map(|r| r.frame_count()).sum()
    }

    /// The next step from holding `held` pages toward `target`, or `None`
    /// when there is nothing to do. `In` steps take the newest run first
    /// (or its top part).
    pub fn next_step(&self, held: u64, target: u64) -> Option<Step> {
        if target < held {
            return Some(Step::Out((held - target).min(STEP)));
        }
        let want = (target - held).min(STEP);
        let run = self.runs.last()?;
        if want == 0 {
            return None;
        }
        let take = want.min(run.frame_count());
        Some(Step::In(run.end - take..run.end))
    }

    /// Records a finished step.
    pub fn done(&mut self, step: &Step, gave_back: Option<Range<Pfn>>) {
        match step {
            Step::Out(_) => self.runs.extend(gave_back),
            Step::In(r) => {
                let last = self.runs.last_mut().expect("In steps come from a run");
                last.end = r.start;
                if last.start == last.end {
                    self.runs.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the plan against a fake that hands out pfns from the top.
    fn drive(b: &mut Balloon, held: &mut u64, target: u64, next_free_top: &mut u64) -> usize {
        let mut steps = 0;
        while let Some(step) = b.next_step(*held, target) {
            steps += 1;
            match &step {
                Step::Out(n) => {
                    let run = Pfn(*next_free_top - n)..Pfn(*next_free_top);
                    *next_free_top -= n;
                    *held -= n;
                    b.done(&step, Some(run));
                }
                Step::In(r) => {
                    *held += r.frame_count();
                    b.done(&step, None);
                }
            }
            assert!(steps < 10_000);
        }
        steps
    }

    #[test]
    fn down_and_up_returns_to_the_start() {
        let mut b = Balloon::new();
        let (mut held, mut top) = (8192, 8192);
        drive(&mut b, &mut held, 6144, &mut top);
        assert_eq!(held, 6144);
        assert_eq!(b.out_pages(), 2048);
        assert_eq!(b.runs.len(), 4, "2048 pages in steps of {STEP}");
        drive(&mut b, &mut held, 7000, &mut top);
        assert_eq!(held, 7000);
        drive(&mut b, &mut held, 8192, &mut top);
        assert_eq!(held, 8192);
        assert!(b.runs.is_empty());
    }

    #[test]
    fn cannot_grow_beyond_what_was_given_back() {
        let mut b = Balloon::new();
        let (mut held, mut top) = (100, 100);
        assert_eq!(b.next_step(held, 200), None, "nothing was ballooned out");
        drive(&mut b, &mut held, 90, &mut top);
        drive(&mut b, &mut held, 500, &mut top);
        assert_eq!(held, 100);
    }

    #[test]
    fn a_partial_in_takes_the_top_of_the_newest_run() {
        let mut b = Balloon { runs: vec![Pfn(10)..Pfn(20)], seeded: false };
        assert_eq!(b.next_step(0, 4), Some(Step::In(Pfn(16)..Pfn(20))));
        b.done(&Step::In(Pfn(16)..Pfn(20)), None);
        assert_eq!(b.runs, vec![Pfn(10)..Pfn(16)]);
    }
}
