//! Batched `GNTTABOP_copy`: Xen copies between a grant and a frame (or
//! two grants) without either side mapping anything. One op may not cross
//! a page on either side, so a copy of a byte range is cut where either
//! side crosses a page; the pieces go to Xen in one hypercall per batch.

use alloc::vec::Vec;
use hypercall::abi::grant_table::{gntcopy, GntStatus, GnttabCopy, GnttabCopyPtr, GrantRef};
use hypercall::{DomId, Mfn, XenError, PAGE_SIZE};

/// One page of one side of a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// A page `domid` granted to us.
    Grant(DomId, GrantRef),
    /// A frame of `domid` (our own: `DomId::SELF`).
    Frame(DomId, Mfn),
}

impl Page {
    fn ptr(self, offset: usize) -> (GnttabCopyPtr, bool) {
        let (u, domid, gref) = match self {
            Page::Grant(d, r) => (u64::from(r.0), d.0, true),
            Page::Frame(d, m) => (m.0, d.0, false),
        };
        (GnttabCopyPtr { u, domid, offset: offset as u16 }, gref)
    }
}

/// Why a batch failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyError {
    /// The hypercall itself failed; nothing is known about the ops.
    Hypercall(XenError),
    /// Op `index` of the batch failed (the others may have succeeded).
    Op { index: usize, status: GntStatus },
    /// The range runs past the pages given.
    OutOfRange,
}

impl core::fmt::Display for CopyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CopyError::Hypercall(e) => write!(f, "GNTTABOP_copy: {e}"),
            CopyError::Op { index, status } => write!(f, "copy op {index}: {status}"),
            CopyError::OutOfRange => f.write_str("copy range runs past the pages given"),
        }
    }
}

/// Copy ops waiting for one hypercall.
#[derive(Debug, Default)]
pub struct CopyBatch {
    ops: Vec<GnttabCopy>,
}

impl CopyBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn ops(&self) -> &[GnttabCopy] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Queues a copy of `len` bytes from byte `src_off` of the pages `src`
    /// (taken as one contiguous buffer) to byte `dst_off` of `dst`, cut
    /// into ops that stay inside a page on both sides. Returns the ops added.
    pub fn push(
        &mut self,
        src: &[Page],
        src_off: usize,
        dst: &[Page],
        dst_off: usize,
        len: usize,
    ) -> Result<usize, CopyError> {
        let fits = |pages: &[Page], off: usize| off + len <= pages.len() * PAGE_SIZE;
        if !fits(src, src_off) || !fits(dst, dst_off) {
            return Err(CopyError::OutOfRange);
        }
        let before = self.ops.len();
        let (mut s, mut d, mut left) = (src_off, dst_off, len);
        while left > 0 {
            let (so, doff) = (s % PAGE_SIZE, d % PAGE_SIZE);
            let n = left.min(PAGE_SIZE - so).min(PAGE_SIZE - doff);
            let (source, sg) = src[s / PAGE_SIZE].ptr(so);
            let (dest, dg) = dst[d / PAGE_SIZE].ptr(doff);
            let flags =
                if sg { gntcopy::SOURCE_GREF } else { 0 } | if dg { gntcopy::DEST_GREF } else { 0 };
            self.ops.push(GnttabCopy { source, dest, len: n as u16, flags, status: 0 });
            s += n;
            d += n;
            left -= n;
        }
        Ok(self.ops.len() - before)
    }

    /// Runs the batch with `run` (the kernel's `GNTTABOP_copy`) and empties
    /// it; returns the ops run, or the first that failed.
    pub fn flush(
        &mut self,
        run: impl FnOnce(&mut [GnttabCopy]) -> Result<(), XenError>,
    ) -> Result<usize, CopyError> {
        let n = self.ops.len();
        if n == 0 {
            return Ok(0);
        }
        let r = run(&mut self.ops).map_err(CopyError::Hypercall);
        let failed = self.ops.iter().enumerate().find_map(|(index, op)| {
            GntStatus::check(op.status).err().map(|status| CopyError::Op { index, status })
        });
        self.ops.clear();
        r?;
        failed.map_or(Ok(n), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypercall::abi::grant_table::gntst;

    #[test]
    fn ops_never_cross_a_page_on_either_side() {
        let src = [Page::Grant(DomId(3), GrantRef(10)), Page::Grant(DomId(3), GrantRef(11))];
        let dst = [Page::Frame(DomId::SELF, Mfn(0x100)), Page::Frame(DomId::SELF, Mfn(0x200))];
        let mut b = CopyBatch::new();
        // 5000 bytes from offset 100 to offset 3000: cuts at dst 4096
        // (1096 bytes), src 4096 (2900 more), then the rest.
        assert_eq!(b.push(&src, 100, &dst, 3000, 5000), Ok(3));
        let ops = b.ops();
        let lens: Vec<u16> = ops.iter().map(|o| o.len).collect();
        assert_eq!(lens, vec![1096, 2900, 1004]);
        assert_eq!(lens.iter().map(|&l| l as usize).sum::<usize>(), 5000);
        for op in ops {
            assert!(op.source.offset as usize + op.len as usize <= PAGE_SIZE);
            assert!(op.dest.offset as usize + op.len as usize <= PAGE_SIZE);
            assert_eq!(op.flags, gntcopy::SOURCE_GREF);
        }
        assert_eq!((ops[1].source.u, ops[1].source.offset), (10, 1196));
        assert_eq!((ops[1].dest.u, ops[1].dest.offset), (0x200, 0));
        assert_eq!((ops[2].source.u, ops[2].source.offset), (11, 0));
        assert_eq!(b.push(&src, 0, &dst, 4000, 5000), Err(CopyError::OutOfRange));
    }

    #[test]
    fn flush_reports_the_first_failed_op() {
        let p = [Page::Frame(DomId::SELF, Mfn(1))];
        let mut b = CopyBatch::new();
        b.push(&p, 0, &p, 0, 8).unwrap();
        b.push(&p, 8, &p, 16, 8).unwrap();
        let n = b.flush(|ops| {
            assert_eq!(ops.len(), 2);
            Ok(())
        });
        assert_eq!(n, Ok(2));
        b.push(&p, 0, &p, 0, 8).unwrap();
        b.push(&p, 8, &p, 16, 8).unwrap();
        let e = b.flush(|ops| {
            ops[1].status = gntst::BAD_GNTREF;
            Ok(())
        });
        assert_eq!(e, Err(CopyError::Op { index: 1, status: GntStatus(gntst::BAD_GNTREF) }));
        assert!(b.is_empty());
        assert_eq!(b.flush(|_| Err(XenError::EFAULT)), Ok(0));
    }
}
