//! What the balloon driver does for a new target: pure arithmetic over the
//! runs of pages it has given back, so it can be checked on the host.

use alloc::vec::Vec;
use core::ops::Range;
use hypercall::{FrameRange, Pfn};

/// Pages given back per step: small enough that a failure leaves most of
/// the work done, big enough to keep hypercalls few.
pub const STEP: u64 = 512;

/// Free pages the balloon never gives away: what the heap, the network
/// and disk buffers may still need to grow by (1 MiB). A target that would
/// take them is followed only down to the reserve, and said so; without
/// it, the next heap growth after an `xl mem-set` to a few MiB found no
/// frame and the guest died (issue 18 item 5).
pub const RESERVE_PAGES: u64 = 256;

/// How many of `want` pages may go out when `free` pages are free: never
/// into the reserve.
pub fn out_allowed(want: u64, free: u64) -> u64 {
    want.min(free.saturating_sub(RESERVE_PAGES))
}

/// One step toward the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Give this many free pages back to Xen.
    Out(u64),
    /// Take back this many pages: the top of the newest run
    /// ([`Balloon::take_top`]).
    In(u64),
}

/// A run of pages given back: the platform's owned `Holes` in the guest,
/// a plain range in the tests.
pub trait Run: Sized {
    fn pages(&self) -> u64;
    /// Splits off the top `n` pages (all of them if there are fewer).
    fn split_top(&mut self, n: u64) -> Self;
}

impl Run for Range<Pfn> {
    fn pages(&self) -> u64 {
        self.frame_count()
    }

    fn split_top(&mut self, n: u64) -> Self {
        let n = n.min(self.pages());
        let top = (self.end - n)..self.end;
        self.end = top.start;
        top
    }
}

/// The runs the guest gave back, newest last.
#[derive(Debug, Default)]
pub struct Balloon<R> {
    pub runs: Vec<R>,
}

impl<R: Run> Balloon<R> {
    pub const fn new() -> Self {
        Balloon { runs: Vec::new() }
    }

    /// Pages currently given back.
    pub fn out_pages(&self) -> u64 {
        self.runs.iter().map(Run::pages).sum()
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
        Some(Step::In(want.min(run.pages())))
    }

    /// Records a run an `Out` step gave back.
    pub fn gave_back(&mut self, run: R) {
        if run.pages() > 0 {
            self.runs.push(run);
        }
    }

    /// For an `In(n)` step: the top `n` pages of the newest run, no longer
    /// recorded as given back.
    pub fn take_top(&mut self, n: u64) -> Option<R> {
        let last = self.runs.last_mut()?;
        let top = last.split_top(n);
        if last.pages() == 0 {
            self.runs.pop();
        }
        Some(top)
    }

    /// An `In` step failed: its run is still given back.
    pub fn put_back(&mut self, run: R) {
        self.gave_back(run);
    }
}

/// `memory/target` as xl writes it: decimal KiB (a trailing NUL or
/// whitespace tolerated); `None` for anything else, which the caller
/// reports rather than treating as some default.
pub fn parse_target(raw: &[u8]) -> Option<u64> {
    let text = core::str::from_utf8(raw).ok()?.trim_end_matches('\0').trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the plan against a fake that hands out pfns from the top.
    fn drive(
        b: &mut Balloon<Range<Pfn>>,
        held: &mut u64,
        target: u64,
        next_free_top: &mut u64,
    ) -> usize {
        let mut steps = 0;
        while let Some(step) = b.next_step(*held, target) {
            steps += 1;
            match step {
                Step::Out(n) => {
                    let run = Pfn(*next_free_top - n)..Pfn(*next_free_top);
                    *next_free_top -= n;
                    *held -= n;
                    b.gave_back(run);
                }
                Step::In(n) => {
                    let r = b.take_top(n).expect("In steps come from a run");
                    assert_eq!(r.frame_count(), n);
                    *held += n;
                }
            }
            assert!(steps < 10_000);
        }
        steps
    }

    #[test]
    fn down_and_up_returns_to_the_start() {
        let mut b = Balloon::<Range<Pfn>>::new();
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
        let mut b = Balloon::<Range<Pfn>>::new();
        let (mut held, mut top) = (100, 100);
        assert_eq!(b.next_step(held, 200), None, "nothing was ballooned out");
        drive(&mut b, &mut held, 90, &mut top);
        drive(&mut b, &mut held, 500, &mut top);
        assert_eq!(held, 100);
    }

    #[test]
    fn a_partial_in_takes_the_top_of_the_newest_run() {
        let mut b = Balloon { runs: vec![Pfn(10)..Pfn(20)] };
        assert_eq!(b.next_step(0, 4), Some(Step::In(4)));
        assert_eq!(b.take_top(4), Some(Pfn(16)..Pfn(20)));
        assert_eq!(b.runs, vec![Pfn(10)..Pfn(16)]);
        // A failed take-back puts the run back; an emptied run is dropped.
        b.put_back(Pfn(16)..Pfn(20));
        assert_eq!(b.out_pages(), 10);
        assert_eq!(b.take_top(4), Some(Pfn(16)..Pfn(20)));
        assert_eq!(b.take_top(6), Some(Pfn(10)..Pfn(16)));
        assert!(b.runs.is_empty());
    }

    #[test]
    fn targets_parse_strictly() {
        assert_eq!(parse_target(b"32768"), Some(32768));
        assert_eq!(parse_target(b"32768\0"), Some(32768));
        assert_eq!(parse_target(b" 4096\n"), Some(4096));
        for bad in [&b""[..], b"-1", b"+5", b"1e6", b"0x100", b"\xff", b"99999999999999999999"] {
            assert_eq!(parse_target(bad), None, "{bad:?}");
        }
    }

    /// Fuzz target `memory-target`: whatever the toolstack (or anyone who
    /// can write the node) puts in `memory/target`, the parse answers a
    /// number only for plain decimal text, and the plan it feeds moves
    /// within what the domain holds.
    #[test]
    fn fuzz_memory_target() {
        use fuzzkit::{Arbitrary, Unstructured};
        fuzzkit::fuzz("memory-target", |u: &mut Unstructured<'_>| {
            let raw: Vec<u8> = if bool::arbitrary(u)? {
                format!("{}{}", u64::arbitrary(u)?, if bool::arbitrary(u)? { "\0" } else { "" })
                    .into_bytes()
            } else {
                // Seeds (fuzz/corpus/memory-target): node values after 0x00.
                u.bytes(u.len())?.to_vec()
            };
            if let Some(kib) = parse_target(&raw) {
                let text = core::str::from_utf8(&raw).unwrap();
                assert!(text.trim_end_matches('\0').trim().bytes().all(|b| b.is_ascii_digit()));
                let nr_pages = u64::from(u16::arbitrary(u)?) + 1;
                let target = (kib / 4).min(nr_pages);
                let b = Balloon::<Range<Pfn>>::default();
                if let Some(step) = b.next_step(nr_pages, target) {
                    let _ = format!("{step:?}");
                }
            }
            Ok(())
        });
    }

    /// Issue 18 item 5: the balloon gave away every free run; now the
    /// reserve stays, whatever the target.
    #[test]
    fn the_reserve_is_never_given_away() {
        assert_eq!(out_allowed(100, 1000), 100);
        assert_eq!(out_allowed(1000, 1000), 1000 - RESERVE_PAGES);
        assert_eq!(out_allowed(10, RESERVE_PAGES), 0);
        assert_eq!(out_allowed(u64::MAX, 0), 0);
    }
}
