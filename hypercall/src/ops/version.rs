//! `xen_version` sub-operations.
//!
//! Soundness: all safe. Xen writes a fixed-size answer into a buffer or
//! struct the wrapper owns, during the call; each buffer is exactly the
//! size `xen/include/public/version.h` gives for its command.

use super::{ptr_mut, FixedStr};
use crate::abi::version::{self as ver, CompileInfo, FeatureInfo, PlatformParameters};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};

fn query<const N: usize>(cmd: u32) -> XenResult<FixedStr<N>> {
    let mut buf = [0u8; N];
    // SAFETY: `buf` is a live, writable buffer of exactly the size Xen
    // writes for `cmd` (N is chosen per command by the callers below).
    XenError::from_ret(unsafe {
        hypercall::<{ nr::XEN_VERSION }>(cmd.into(), ptr_mut(&mut buf), 0, 0, 0)
    })?;
    Ok(FixedStr(buf))
}

/// `(major, minor)` of the running Xen.
pub fn version() -> (u16, u16) {
    // SAFETY: XENVER_version takes no buffer.
    let v = unsafe { hypercall::<{ nr::XEN_VERSION }>(ver::cmd::VERSION.into(), 0, 0, 0, 0) };
    ((v >> 16) as u16, v as u16)
}

/// The version suffix, e.g. `.3` or `-rc`.
pub fn extraversion() -> XenResult<FixedStr<16>> {
    query(ver::cmd::EXTRAVERSION)
}

/// The ABIs this Xen can run guests in, e.g. `xen-3.0-x86_64 hvm-3.0-x86_32 ...`.
pub fn capabilities() -> XenResult<FixedStr<1024>> {
    query(ver::cmd::CAPABILITIES)
}

/// The source revision Xen was built from.
pub fn changeset() -> XenResult<FixedStr<64>> {
    query(ver::cmd::CHANGESET)
}

/// Compiler, builder and date.
pub fn compile_info() -> XenResult<CompileInfo> {
    let mut info = CompileInfo {
        compiler: [0; 64],
        compile_by: [0; 16],
        compile_domain: [0; 32],
        compile_date: [0; 32],
    };
    // SAFETY: `info` is a writable `struct xen_compile_info`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::XEN_VERSION }>(ver::cmd::COMPILE_INFO.into(), ptr_mut(&mut info), 0, 0, 0)
    })?;
    Ok(info)
}

/// The lowest virtual address Xen reserves in this guest's address space.
pub fn virt_start() -> XenResult<u64> {
    let mut p = PlatformParameters { virt_start: 0 };
    // SAFETY: `p` is a writable `struct xen_platform_parameters`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::XEN_VERSION }>(
            ver::cmd::PLATFORM_PARAMETERS.into(),
            ptr_mut(&mut p),
            0,
            0,
            0,
        )
    })?;
    Ok(p.virt_start)
}

/// Feature submap `idx` (`XENFEAT_*` bits).
pub fn features(idx: u32) -> XenResult<u32> {
    let mut fi = FeatureInfo { submap_idx: idx, submap: 0 };
    // SAFETY: `fi` is a writable `struct xen_feature_info`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::XEN_VERSION }>(ver::cmd::GET_FEATURES.into(), ptr_mut(&mut fi), 0, 0, 0)
    })?;
    Ok(fi.submap)
}

/// The page size Xen uses for this guest.
pub fn pagesize() -> XenResult<u64> {
    // SAFETY: XENVER_pagesize takes no buffer.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::XEN_VERSION }>(ver::cmd::PAGESIZE.into(), 0, 0, 0, 0)
    })
}

/// The domain's UUID as the toolstack set it.
pub fn guest_handle() -> XenResult<[u8; 16]> {
    query::<16>(ver::cmd::GUEST_HANDLE).map(|s| s.0)
}
