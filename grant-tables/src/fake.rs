//! A fake Xen for the table tests: a table of `max` frames of entries
//! (leaked, as the kernel's mapping lives for the guest's life) handed out
//! a prefix at a time, and a peer that maps entries as Xen would.

use crate::error::GrantError;
use crate::table::{Entries, Hypervisor, Version};
use hypercall::abi::grant_table::{GrantEntryV1, GrantEntryV2, GrantStatus, STATUS_PER_FRAME};
use hypercall::ops::grant_table::GnttabError;
use hypercall::Mfn;
use std::rc::Rc;

/// Pages to grant: frame numbers, and a counter of the holds the table
/// keeps on them (`Rc::strong_count(&pages.held) - 1`).
pub struct FakePages {
    pub frames: Vec<Mfn>,
    pub held: Rc<()>,
}

impl FakePages {
    pub fn new(frames: &[u64]) -> Self {
        FakePages { frames: frames.iter().map(|&m| Mfn(m)).collect(), held: Rc::new(()) }
    }

    /// Holds the table keeps on these pages now.
    pub fn holds(&self) -> usize {
        Rc::strong_count(&self.held) - 1
    }
}

/// One page at frame `m`.
pub fn page(m: u64) -> FakePages {
    FakePages::new(&[m])
}

pub struct FakeXen {
    pub frames: u32,
    pub max_frames: u32,
    pub version: Version,
    v1: &'static [GrantEntryV1],
    v2: &'static [GrantEntryV2],
    status: &'static [GrantStatus],
    pub grow_calls: u32,
}

impl FakeXen {
    pub fn new(frames: u32, max_frames: u32) -> Self {
        let n = (max_frames * 512) as usize;
        let v1: Vec<GrantEntryV1> = (0..n).map(|_| GrantEntryV1::default()).collect();
        let v2: Vec<GrantEntryV2> = (0..n / 2).map(|_| GrantEntryV2::default()).collect();
        let status: Vec<GrantStatus> = (0..n / 2).map(|_| GrantStatus::new(0)).collect();
        Self {
            frames,
            max_frames,
            version: Version::V1,
            v1: v1.leak(),
            v2: v2.leak(),
            status: status.leak(),
            grow_calls: 0,
        }
    }

    pub fn v1(&self) -> &'static [GrantEntryV1] {
        self.v1
    }

    pub fn v2(&self) -> (&'static [GrantEntryV2], &'static [GrantStatus]) {
        (self.v2, self.status)
    }
}

impl Hypervisor for FakeXen {
    fn query_size(&mut self) -> Result<(u32, u32), GnttabError> {
        Ok((self.frames, self.max_frames))
    }

    fn grow(&mut self, nr_frames: u32, version: Version) -> Result<Entries, GrantError> {
        assert_eq!(version, self.version, "grow in the version in force");
        if nr_frames > self.max_frames {
            return Err(GrantError::Hypervisor {
                op: "setup_table",
                error: GnttabError::Status(hypercall::abi::grant_table::GntStatus(
                    hypercall::abi::grant_table::gntst::GENERAL_ERROR,
                )),
            });
        }
        self.grow_calls += 1;
        self.frames = self.frames.max(nr_frames);
        let n = (self.frames * version.per_frame()) as usize;
        Ok(match version {
            Version::V1 => Entries::V1(&self.v1[..n]),
            Version::V2 => {
                let status_frames = (n as u32).div_ceil(STATUS_PER_FRAME);
                let s = ((status_frames * STATUS_PER_FRAME) as usize).min(self.status.len());
                Entries::V2 { entries: &self.v2[..n], status: &self.status[..s] }
            }
        })
    }

    fn set_version(&mut self, version: Version) -> Result<(), GrantError> {
        self.version = version;
        Ok(())
    }

    type Page = FakePages;
    type Hold = Rc<()>;

    fn share(&mut self, page: &FakePages, index: usize) -> Option<(Mfn, Rc<()>)> {
        Some((*page.frames.get(index)?, page.held.clone()))
    }
}
