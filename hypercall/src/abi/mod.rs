//! Xen's public interface structs (`xen/include/public/`), hand-written.
//!
//! Each module cites the header it follows. Sizes and offsets are asserted
//! at compile time here and checked against the C headers by
//! `hypercall/tests/abi_layout.rs`.

pub mod arch;
pub mod blkif;
pub mod console;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod memory;
pub mod mmu;
pub mod netif;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod vcpu;
pub mod vcpu_context;
pub mod version;
pub mod xen;
pub mod xenstore;

/// Asserts a struct's size and field offsets at compile time.
macro_rules! assert_layout {
    ($ty:ty, size = $size:expr $(, $field:ident = $off:expr)* $(,)?) => {
        const _: () = {
            assert!(core::mem::size_of::<$ty>() == $size);
            $(assert!(core::mem::offset_of!($ty, $field) == $off);)*
        };
    };
}
pub(crate) use assert_layout;
