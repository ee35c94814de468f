//! What the platform calls in the kernel, registered by the kernel at the
//! start of its main: the platform never imports the kernel.

use crate::trap::TrapFrame;
use core::fmt;
use spin::Once;

/// The kernel's side of the entry points and of fatal errors.
#[derive(Clone, Copy)]
pub struct Hooks {
    /// Prints when nothing else may work (a panic, a fatal start-of-day
    /// error): must not take a lock the interrupted code may hold.
    pub emergency_print: fn(fmt::Arguments<'_>),
    /// Called by [`shutdown`](crate::shutdown) before the domain ends:
    /// flush the console.
    pub before_shutdown: fn(),
    /// A CPU exception (or Xen's failsafe callback). Returns only for the
    /// debug traps; the report ends with [`shutdown`](crate::shutdown).
    pub fault: fn(&mut TrapFrame),
    /// An event upcall, with upcalls masked.
    pub upcall: fn(),
}

static HOOKS: Once<Hooks> = Once::new();

/// Registers the kernel's hooks; only the first call counts.
pub fn set_hooks(hooks: Hooks) {
    HOOKS.call_once(|| hooks);
}

/// Prints through the kernel's console, or through Xen's `console_io`
/// before the kernel registered its hooks.
pub(crate) fn emergency_print(args: fmt::Arguments<'_>) {
    match HOOKS.get() {
        Some(h) => (h.emergency_print)(args),
        None => {
            let mut buf = crate::fmtbuf::FmtBuf::<256>::new();
            let _ = fmt::Write::write_fmt(&mut buf, args);
            let _ = hypercall::ops::console_io_write(buf.as_str().as_bytes());
        }
    }
}

pub(crate) fn before_shutdown() {
    if let Some(h) = HOOKS.get() {
        (h.before_shutdown)();
    }
}

pub(crate) fn fault(frame: &mut TrapFrame) {
    // A probe's instruction faulting on purpose (docs/virtualizability.md).
    if crate::probe::fixup(frame) {
        return;
    }
    // The paging benchmark's page, unmapped on purpose.
    if crate::paging_bench::fixup(frame) {
        return;
    }
    match HOOKS.get() {
        Some(h) => (h.fault)(frame),
        None => {
            emergency_print(format_args!(
                "exception {} at rip {:#x} before the kernel's hooks\n",
                frame.vector, frame.rip
            ));
            crate::shutdown(hypercall::abi::sched::ShutdownReason::Crash);
        }
    }
}

pub(crate) fn upcall() {
    // Upcalls are unmasked only after the kernel registered its hooks.
    if let Some(h) = HOOKS.get() {
        (h.upcall)();
    }
}
