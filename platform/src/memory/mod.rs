//! Memory management of a PV guest, as pure logic: the start-of-day layout
//! Xen hands over, the direct map of all pseudo-physical memory and the
//! page-table builder that extends it through hypercalls, the frame
//! allocator, and ballooning. Nothing here touches memory or Xen itself:
//! everything goes through the [`pagetable::Mmu`] trait, which
//! `platform::mm` implements with real hypercalls and the tests with a fake
//! MMU that enforces Xen's validation rules.

pub mod balloon;
pub mod frames;
pub mod layout;
pub mod pagetable;

#[cfg(test)]
mod fake;
