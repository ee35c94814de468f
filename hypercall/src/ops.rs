//! Typed wrappers: one safe function per hypercall operation the guest uses.
//!
//! Each wrapper owns the argument struct Xen reads or writes, passes its
//! address for the duration of the call, and maps the result to [`XenError`].

use crate::abi::event_channel::{
    self as evtchn, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnClose, EvtchnSend,
    EvtchnStatus,
};
use crate::abi::sched::{self, SchedPoll, SchedShutdown, ShutdownReason};
use crate::abi::start_info::c_str;
use crate::abi::version::{self as ver, CompileInfo, FeatureInfo, PlatformParameters};
use crate::abi::xen::{consoleio, xenmem};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};
use crate::types::{DomId, EvtchnPort};

fn ptr<T>(p: &T) -> u64 {
    p as *const T as u64
}

fn ptr_mut<T>(p: &mut T) -> u64 {
    p as *mut T as u64
}

/// A NUL-terminated string Xen filled into a fixed buffer.
#[derive(Clone, Copy)]
pub struct FixedStr<const N: usize>(pub [u8; N]);

impl<const N: usize> FixedStr<N> {
    pub fn as_str(&self) -> &str {
        c_str(&self.0)
    }
}

impl<const N: usize> core::fmt::Display for FixedStr<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> core::fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// `xen_version` sub-operations.
pub mod version {
    use super::*;

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
            hypercall::<{ nr::XEN_VERSION }>(
                ver::cmd::COMPILE_INFO.into(),
                ptr_mut(&mut info),
                0,
                0,
                0,
            )
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
        let mut fi = FeatureInfo {
            submap_idx: idx,
            submap: 0,
        };
        // SAFETY: `fi` is a writable `struct xen_feature_info`.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::XEN_VERSION }>(
                ver::cmd::GET_FEATURES.into(),
                ptr_mut(&mut fi),
                0,
                0,
                0,
            )
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
}

/// `console_io`: Xen's own console, the early and emergency output path.
/// Release builds of Xen drop a domU's writes; dom0's reach the serial line.
pub fn console_io_write(bytes: &[u8]) -> XenResult<()> {
    // SAFETY: Xen reads `bytes.len()` bytes from a live slice.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::CONSOLE_IO }>(
            consoleio::WRITE.into(),
            bytes.len() as u64,
            bytes.as_ptr() as u64,
            0,
            0,
        )
    })
    .map(drop)
}

/// `sched_op` sub-operations.
pub mod sched_op {
    use super::*;

    /// Gives up the CPU to other vCPUs that are ready to run.
    pub fn yield_now() -> XenResult<()> {
        // SAFETY: SCHEDOP_yield takes no argument.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::SCHED_OP }>(sched::cmd::YIELD.into(), 0, 0, 0, 0)
        })
        .map(drop)
    }

    /// Blocks until an event is delivered. Xen unmasks upcalls as it blocks,
    /// so the caller must be ready to take one.
    pub fn block() -> XenResult<()> {
        // SAFETY: SCHEDOP_block takes no argument.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::SCHED_OP }>(sched::cmd::BLOCK.into(), 0, 0, 0, 0)
        })
        .map(drop)
    }

    /// Asks Xen to end this domain for `reason`. On success the vCPU does not
    /// run again; an error comes back only for a bad reason.
    pub fn shutdown(reason: ShutdownReason) -> XenResult<()> {
        let arg = SchedShutdown {
            reason: reason as u32,
        };
        // SAFETY: `arg` is a readable `struct sched_shutdown`.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::SCHED_OP }>(sched::cmd::SHUTDOWN.into(), ptr(&arg), 0, 0, 0)
        })
        .map(drop)
    }

    /// Waits until one of `ports` is pending, or until system time
    /// `deadline_ns` (0: no deadline). Works with upcalls masked.
    pub fn poll(ports: &[EvtchnPort], deadline_ns: u64) -> XenResult<()> {
        let arg = SchedPoll {
            ports: ports.as_ptr() as u64,
            nr_ports: ports.len() as u32,
            timeout: deadline_ns,
        };
        // SAFETY: `arg` points at `ports`, a live array of `evtchn_port_t`
        // (EvtchnPort is a transparent u32) of the length given.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::SCHED_OP }>(sched::cmd::POLL.into(), ptr(&arg), 0, 0, 0)
        })
        .map(drop)
    }

    /// Issues `sched_op` with a command Xen does not know; for tests of the
    /// error path (Xen answers `ENOSYS`).
    pub fn unknown_command() -> XenResult<u64> {
        // SAFETY: Xen rejects an unknown command before reading any argument.
        XenError::from_ret(unsafe { hypercall::<{ nr::SCHED_OP }>(0xFFFF, 0, 0, 0, 0) })
    }
}

/// `event_channel_op` sub-operations.
pub mod event_channel {
    use super::*;

    /// Notifies the other end of `port`.
    pub fn send(port: EvtchnPort) -> XenResult<()> {
        let arg = EvtchnSend { port: port.0 };
        // SAFETY: `arg` is a readable `struct evtchn_send`.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::EVENT_CHANNEL_OP }>(evtchn::cmd::SEND.into(), ptr(&arg), 0, 0, 0)
        })
        .map(drop)
    }

    /// A fresh port of this domain that `remote` may bind to.
    pub fn alloc_unbound(remote: DomId) -> XenResult<EvtchnPort> {
        let mut arg = EvtchnAllocUnbound {
            dom: DomId::SELF.0,
            remote_dom: remote.0,
            port: 0,
        };
        // SAFETY: `arg` is a writable `struct evtchn_alloc_unbound`.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::EVENT_CHANNEL_OP }>(
                evtchn::cmd::ALLOC_UNBOUND.into(),
                ptr_mut(&mut arg),
                0,
                0,
                0,
            )
        })?;
        Ok(EvtchnPort(arg.port))
    }

    /// Connects a new local port to `remote_port` of `remote`.
    pub fn bind_interdomain(remote: DomId, remote_port: EvtchnPort) -> XenResult<EvtchnPort> {
        let mut arg = EvtchnBindInterdomain {
            remote_dom: remote.0,
            remote_port: remote_port.0,
            local_port: 0,
        };
        // SAFETY: `arg` is a writable `struct evtchn_bind_interdomain`.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::EVENT_CHANNEL_OP }>(
                evtchn::cmd::BIND_INTERDOMAIN.into(),
                ptr_mut(&mut arg),
                0,
                0,
                0,
            )
        })?;
        Ok(EvtchnPort(arg.local_port))
    }

    /// Closes `port` (and unbinds its peer).
    pub fn close(port: EvtchnPort) -> XenResult<()> {
        let arg = EvtchnClose { port: port.0 };
        // SAFETY: `arg` is a readable `struct evtchn_close`.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::EVENT_CHANNEL_OP }>(evtchn::cmd::CLOSE.into(), ptr(&arg), 0, 0, 0)
        })
        .map(drop)
    }

    /// What `port` of `dom` is bound to: `(EVTCHNSTAT_*, vcpu)`.
    pub fn status(dom: DomId, port: EvtchnPort) -> XenResult<(u32, u32)> {
        let mut arg = EvtchnStatus {
            dom: dom.0,
            port: port.0,
            status: 0,
            vcpu: 0,
            u: [0; 2],
        };
        // SAFETY: `arg` is a writable `struct evtchn_status`.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::EVENT_CHANNEL_OP }>(
                evtchn::cmd::STATUS.into(),
                ptr_mut(&mut arg),
                0,
                0,
                0,
            )
        })?;
        Ok((arg.status, arg.vcpu))
    }
}

/// `memory_op` sub-operations.
pub mod memory {
    use super::*;

    /// Pages currently allocated to `dom`.
    pub fn current_reservation(dom: DomId) -> XenResult<u64> {
        let d = dom.0;
        // SAFETY: the argument is a readable `domid_t`.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::MEMORY_OP }>(xenmem::CURRENT_RESERVATION.into(), ptr(&d), 0, 0, 0)
        })
    }

    /// The most pages `dom` may have.
    pub fn maximum_reservation(dom: DomId) -> XenResult<u64> {
        let d = dom.0;
        // SAFETY: the argument is a readable `domid_t`.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::MEMORY_OP }>(xenmem::MAXIMUM_RESERVATION.into(), ptr(&d), 0, 0, 0)
        })
    }
}

/// A hypercall number Xen leaves unimplemented (between `hypfs_op` and the
/// arch range); for tests of the error path (Xen answers `ENOSYS`).
pub fn unimplemented_hypercall() -> XenResult<u64> {
    // SAFETY: entry 47 of the hypercall page only returns -ENOSYS.
    XenError::from_ret(unsafe { hypercall::<47>(0, 0, 0, 0, 0) })
}

/// Page-table operations of a PV guest.
pub mod mmu {
    use super::*;

    /// Replaces the page-table entry that maps `va` with `pte` (a machine
    /// frame with `abi::xen::pte` bits), flushing as `flags` (`uvmf::*`) says.
    ///
    /// # Safety
    /// Whatever `va` mapped before is gone (or changes) after the call: no
    /// live Rust reference may point into that page, and the new frame must be
    /// one the guest may map with those rights.
    pub unsafe fn update_va_mapping(va: usize, pte: u64, flags: u64) -> XenResult<()> {
        // SAFETY: the caller guarantees the remap keeps the guest's memory sound.
        XenError::from_ret(unsafe {
            hypercall::<{ nr::UPDATE_VA_MAPPING }>(va as u64, pte, flags, 0, 0)
        })
        .map(drop)
    }
}
