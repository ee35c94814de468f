//! The P2M list (pfn → mfn) as the toolstack reads it.
//!
//! Xen's domain builder leaves a list of `nr_pages` entries in the
//! bootstrap region. `xl save` and `xl migrate` need more: the list sized
//! for every pfn the domain may ever have (its maximum reservation, so
//! ballooning up to `maxmem` has entries to fill), and published through
//! `shared_info.arch` as a three-level tree of machine frames: the
//! frame-list-list page names the mid pages, each mid page names up to 512
//! leaf pages, each leaf page holds 512 entries (`arch-x86/xen.h`,
//! `pfn_to_mfn_frame_list_list`; libxenguest's `map_p2m_tree` walks it).
//! A hole (ballooned out, or above the boot size) is `INVALID_P2M_ENTRY`.
//!
//! The leaves are the list itself: a run of our own pages in the direct
//! map. Entries change in place as the balloon moves, so the tree stays
//! right without being rebuilt; only a restore moves the frames (the
//! toolstack rewrites the entries, and [`publish`] runs again).

use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use hypercall::abi::memory::INVALID_P2M_ENTRY;
use hypercall::abi::shared_info::SharedInfo;
use hypercall::{FrameRange, Mfn, Pfn, PAGE_SIZE};

/// Entries per P2M page (and MFNs per frame-list page).
pub const PER_PAGE: usize = PAGE_SIZE / 8;

static LIST: AtomicPtr<AtomicU64> = AtomicPtr::new(core::ptr::null_mut());
static LEN: AtomicUsize = AtomicUsize::new(0);

/// The pages the published tree lives in.
#[derive(Clone, Debug)]
pub struct Tree {
    /// The list: `len` entries in `leaves` (pfns of the direct map).
    pub leaves: core::ops::Range<Pfn>,
    /// Mid pages: each names up to 512 leaves.
    pub mids: core::ops::Range<Pfn>,
    /// The frame-list-list page.
    pub top: Pfn,
}

static TREE: spin::Mutex<Option<Tree>> = spin::Mutex::new(None);

/// Pages a list of `len` entries and its tree take: (leaves, mids).
pub const fn pages_for(len: u64) -> (u64, u64) {
    let leaves = len.div_ceil(PER_PAGE as u64);
    (leaves, leaves.div_ceil(PER_PAGE as u64))
}

/// The list in use.
pub fn get() -> &'static [AtomicU64] {
    // `len` first: it only ever grows, and the list it was stored with is
    // at least that long (see `set`).
    let len = LEN.load(Ordering::Acquire);
    let ptr = LIST.load(Ordering::Acquire);
    if ptr.is_null() {
        return &[];
    }
    // SAFETY: `ptr` and `len` come from a `&'static [AtomicU64]` given to
    // `set` (a list is never shortened: a longer one replaces it, and
    // `LEN` is stored after `LIST`, so a reader never pairs a longer
    // length with a shorter list). A replaced list's frames are freed by
    // `mm::extend_p2m` right after the switch, on the one vCPU: nothing
    // holds the old slice then (callers use it for one lookup, and an
    // upcall handler runs to completion before the switch goes on).
    unsafe { core::slice::from_raw_parts(ptr, len) }
}

/// Makes `list` the P2M. It must be at least as long as the current one.
pub(crate) fn set(list: &'static [AtomicU64]) {
    assert!(list.len() >= LEN.load(Ordering::Relaxed), "the P2M never shrinks");
    LIST.store(list.as_ptr() as *mut AtomicU64, Ordering::Release);
    LEN.store(list.len(), Ordering::Release);
}

/// The entry of `pfn`: `None` beyond the list, `INVALID_P2M_ENTRY` for a hole.
pub fn entry(pfn: Pfn) -> Option<Mfn> {
    get().get(pfn.0 as usize).map(|e| Mfn(e.load(Ordering::Relaxed)))
}

/// Replaces the boot list with one of `len` entries in `tree.leaves`
/// (writable pages of the direct map, nothing else refers to them), then
/// publishes it.
///
/// # Safety
/// The pages of `tree` must be ours, mapped writable in the direct map,
/// and given to this module for the guest's life.
/// Returns the tree it replaced (`None`: Xen's boot list).
pub(super) unsafe fn install(tree: Tree, len: usize, shared: &SharedInfo) -> Option<Tree> {
    let (leaves, mids) = pages_for(len as u64);
    assert!(tree.leaves.frame_count() == leaves && tree.mids.frame_count() == mids);
    let base = super::pfn_to_virt(tree.leaves.start) as *const AtomicU64;
    // SAFETY: the caller gives us the leaf pages: `leaves` pages hold at
    // least `len` u64s; atomics because the toolstack rewrites them while
    // the domain is suspended (restore) and the balloon updates them.
    let list = unsafe { core::slice::from_raw_parts(base, len) };
    let old = get();
    for (pfn, e) in list.iter().enumerate() {
        let v = old.get(pfn).map_or(INVALID_P2M_ENTRY, |o| o.load(Ordering::Relaxed));
        e.store(v, Ordering::Relaxed);
    }
    set(list);
    let old = TREE.lock().replace(tree);
    publish(shared);
    old
}

/// The pages of the published tree (`None` before the first install).
pub fn tree() -> Option<Tree> {
    TREE.lock().clone()
}

/// A page of ours in the direct map, as words.
fn words(pfn: Pfn) -> &'static [AtomicU64] {
    // SAFETY: only called for the tree's own pages, which `install`'s
    // caller gave to this module: mapped, ours, seen only as atomics.
    unsafe { core::slice::from_raw_parts(super::pfn_to_virt(pfn) as *const AtomicU64, PER_PAGE) }
}

/// Writes the mid pages and the frame-list-list from the leaves' current
/// machine frames, and points `shared_info.arch` at them. Runs at boot and
/// after a restore (every frame moved). No-op before `install`.
pub fn publish(shared: &SharedInfo) {
    let tree = TREE.lock();
    let Some(t) = tree.as_ref() else { return };
    let mfn = |p: Pfn| entry(p).expect("tree pages are in the P2M").0;
    for (k, leaf) in t.leaves.frames().enumerate() {
        let mid = t.mids.start + (k / PER_PAGE) as u64;
        words(mid)[k % PER_PAGE].store(mfn(leaf), Ordering::Relaxed);
    }
    let top = words(t.top);
    for w in top {
        w.store(0, Ordering::Relaxed);
    }
    for (k, mid) in t.mids.frames().enumerate() {
        top[k].store(mfn(mid), Ordering::Relaxed);
    }
    shared.arch.max_pfn.store(get().len() as u64, Ordering::Relaxed);
    shared.arch.pfn_to_mfn_frame_list_list.store(mfn(t.top), Ordering::Release);
}
