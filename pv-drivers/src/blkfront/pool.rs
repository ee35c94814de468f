//! Bounce pages for data and indirect segment lists, and their grants.
//!
//! The caller's buffers are never shared: data is copied into pages the
//! driver owns, so the backend can only ever touch those. With persistent
//! grants (`feature-persistent` on both sides) a page is granted once and
//! stays granted (read-write: blkback maps persistent grants writable)
//! until the device closes, so hot pages cost no grant operations;
//! otherwise each use grants and each completion revokes.

use super::env::BlkEnv;
use super::BlkError;
use crate::env::PageSet;
use alloc::vec::Vec;
use hypercall::abi::grant_table::GrantRef;
use hypercall::DomId;

struct Page<P> {
    mem: P,
    gref: Option<GrantRef>,
}

/// Counters the device reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantCounts {
    pub granted: u64,
    pub revoked: u64,
    /// Revokes refused because the backend still mapped the page: the
    /// page is kept out of use for good.
    pub revoke_refused: u64,
}

pub struct Pool<P> {
    pages: Vec<Page<P>>,
    free: Vec<usize>,
    /// Pages that must never be reused (revoke refused, or their request
    /// was abandoned while the backend could still write them).
    lost: Vec<usize>,
    cap: usize,
    persistent: bool,
    backend: DomId,
    pub counts: GrantCounts,
}

impl<P: PageSet> Pool<P> {
    pub fn new(cap: usize, backend: DomId) -> Self {
        Pool {
            pages: Vec::new(),
            free: Vec::new(),
            lost: Vec::new(),
            cap,
            persistent: false,
            backend,
            counts: GrantCounts::default(),
        }
    }

    /// Takes `other`'s pages (and their grants) into this pool: its
    /// capacity adds to this one's. Only while none of `other`'s pages is
    /// in a request.
    pub fn absorb(&mut self, other: Pool<P>) {
        let base = self.pages.len();
        self.pages.extend(other.pages);
        self.free.extend(other.free.into_iter().map(|i| i + base));
        self.lost.extend(other.lost.into_iter().map(|i| i + base));
        self.cap += other.cap;
        self.counts.granted += other.counts.granted;
        self.counts.revoked += other.counts.revoked;
        self.counts.revoke_refused += other.counts.revoke_refused;
    }

    pub fn set_persistent(&mut self, on: bool) {
        self.persistent = on;
    }

    pub fn persistent(&self) -> bool {
        self.persistent
    }

    /// Pages that could still be handed out.
    pub fn available(&self) -> usize {
        self.free.len() + (self.cap - self.pages.len())
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Page words.
    pub fn words(&self, i: usize) -> &[core::sync::atomic::AtomicU32] {
        self.pages[i].mem.words()
    }

    /// A page granted to the backend; `readonly` when the backend only
    /// reads it (ignored with persistent grants).
    pub fn take<E: BlkEnv<Pages = P>>(
        &mut self,
        env: &mut E,
        readonly: bool,
    ) -> Result<(usize, GrantRef), BlkError> {
        let i = match self.free.pop() {
            Some(i) => i,
            None if self.pages.len() < self.cap => {
                let mem = env.alloc_pages(1)?;
                self.pages.push(Page { mem, gref: None });
                self.pages.len() - 1
            }
            None => {
                return Err(BlkError::PoolExhausted {
                    usable: self.available(),
                    capacity: self.cap,
                })
            }
        };
        if let Some(g) = self.pages[i].gref {
            return Ok((i, g));
        }
        match env.grant(self.backend, &self.pages[i].mem, 0, readonly && !self.persistent) {
            Ok(g) => {
                self.counts.granted += 1;
                self.pages[i].gref = Some(g);
                Ok((i, g))
            }
            Err(e) => {
                self.free.push(i);
                Err(e.into())
            }
        }
    }

    /// Gives a page back after its request completed.
    pub fn put<E: BlkEnv<Pages = P>>(&mut self, env: &mut E, i: usize) {
        if !self.persistent {
            if let Some(g) = self.pages[i].gref.take() {
                if env.revoke(g) {
                    self.counts.revoked += 1;
                } else {
                    self.counts.revoke_refused += 1;
                    self.pages[i].gref = Some(g);
                    self.lost.push(i);
                    return;
                }
            }
        }
        self.free.push(i);
    }

    /// In a new domain (restore, migration): Xen's grant table there is
    /// new and holds none of our grants, and the backend that mapped our
    /// pages belonged to the old domain. Every reference goes back to our
    /// table (a bookkeeping revoke: the entry is empty), pages kept out of
    /// use can be used again, and the pages themselves stay: requests in
    /// flight still hold theirs. Then grants go to `backend`, the new
    /// backend's domain.
    pub fn forget_grants<E: BlkEnv<Pages = P>>(&mut self, env: &mut E, backend: DomId) {
        for p in &mut self.pages {
            if let Some(g) = p.gref.take() {
                if env.revoke(g) {
                    self.counts.revoked += 1;
                } else {
                    // Not possible in a new table (no peer maps anything
                    // yet); the reference then stays out of use. The page
                    // is shared with nobody in this domain.
                    self.counts.revoke_refused += 1;
                }
            }
        }
        self.free.append(&mut self.lost);
        self.backend = backend;
    }

    /// Grants page `i` (held by a request in flight) again, to the
    /// current backend.
    pub fn regrant<E: BlkEnv<Pages = P>>(
        &mut self,
        env: &mut E,
        i: usize,
        readonly: bool,
    ) -> Result<GrantRef, BlkError> {
        if let Some(g) = self.pages[i].gref {
            return Ok(g);
        }
        let g = env.grant(self.backend, &self.pages[i].mem, 0, readonly && !self.persistent)?;
        self.counts.granted += 1;
        self.pages[i].gref = Some(g);
        Ok(g)
    }

    /// Retires a page whose request was abandoned: the backend may still
    /// write it, so it is revoked only at close.
    pub fn lose(&mut self, i: usize) {
        self.lost.push(i);
    }

    /// Revokes every grant (at close, once the backend has let go).
    /// Returns (revoked, refused) for this call. Pages whose revoke is
    /// refused are leaked on purpose: freeing them would hand memory the
    /// backend can still write back to the allocator.
    pub fn revoke_all<E: BlkEnv<Pages = P>>(&mut self, env: &mut E) -> (u64, u64) {
        let (mut ok, mut refused) = (0, 0);
        for p in &mut self.pages {
            if let Some(g) = p.gref.take() {
                if env.revoke(g) {
                    ok += 1;
                } else {
                    refused += 1;
                    p.gref = Some(g);
                }
            }
        }
        self.counts.revoked += ok;
        self.counts.revoke_refused += refused;
        let pages = core::mem::take(&mut self.pages);
        for p in pages {
            if p.gref.is_some() {
                core::mem::forget(p.mem);
            }
        }
        self.free.clear();
        self.lost.clear();
        (ok, refused)
    }
}
