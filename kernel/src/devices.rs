//! Drivers that must be quiesced before the domain goes down, so a backend
//! never writes into memory of a domain that is being torn down mid-I/O.

use alloc::vec::Vec;
use spin::Mutex;

/// A driver's "stop now": finish or fail in-flight I/O, disconnect.
pub type QuiesceFn = fn();

struct Hook {
    name: &'static str,
    quiesce: QuiesceFn,
}

static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

/// Registers `quiesce` under `name`.
pub fn register(name: &'static str, quiesce: QuiesceFn) {
    HOOKS.lock().push(Hook { name, quiesce });
}

/// Quiesces every registered driver, newest first; returns how many.
pub fn quiesce_all() -> usize {
    // Taken out of the lock: a hook may itself log or touch XenStore.
    let hooks = core::mem::take(&mut *HOOKS.lock());
    for hook in hooks.iter().rev() {
        log::info!("quiescing {}", hook.name);
        (hook.quiesce)();
    }
    hooks.len()
}
