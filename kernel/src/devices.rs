//! Drivers that must be quiesced before the domain goes down, so a backend
//! never writes into memory of a domain that is being torn down mid-I/O.

use alloc::vec::Vec;
use spin::Mutex;

/// A driver's "stop now": finish or fail in-flight I/O, disconnect.
/// Returns false if it gave up waiting for something (a backend that did
/// not answer in time), true if it finished without waiting out a timeout.
pub type QuiesceFn = fn() -> bool;

struct Hook {
    name: &'static str,
    quiesce: QuiesceFn,
}

static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

/// Registers `quiesce` under `name`.
pub fn register(name: &'static str, quiesce: QuiesceFn) {
    HOOKS.lock().push(Hook { name, quiesce });
}

/// Quiesces every registered driver, newest first; returns how many, and
/// how many of them waited out a timeout.
pub fn quiesce_all() -> (usize, usize) {
    // Taken out of the lock: a hook may itself log or touch XenStore.
    let hooks = core::mem::take(&mut *HOOKS.lock());
    let mut timed_out = 0;
    for hook in hooks.iter().rev() {
        log::info!("quiescing {}", hook.name);
        if !(hook.quiesce)() {
            log::warn!("{}: gave up waiting while quiescing", hook.name);
            timed_out += 1;
        }
    }
    (hooks.len(), timed_out)
}
