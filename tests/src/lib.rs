//! Boot tests on real Xen.
