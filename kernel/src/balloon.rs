//! The balloon driver: follows `memory/target` (set by `xl mem-set`) by
//! giving pages back to Xen or taking them back.

use crate::balloon_plan::{Balloon, Step};
use crate::xenbus::GuestBus;
use platform::pv::mm;
use spin::Mutex;
use xenstore_client::{Error, Store};

/// The watch token (the watched path).
pub const TARGET_TOKEN: &str = "memory/target";

static BALLOON: Mutex<Balloon> = Mutex::new(Balloon::new());

/// Starts watching the target.
pub fn start(bus: &mut GuestBus) -> Result<(), Error> {
    bus.xs.watch("memory/target", TARGET_TOKEN)
}

/// Pages the guest holds now.
pub fn held_pages() -> u64 {
    platform::pv::start_info().nr_pages - BALLOON.lock().out_pages()
}

/// Reads the target and moves toward it. Returns the pages held after.
pub fn follow_target(bus: &mut GuestBus) -> Result<u64, Error> {
    let target_kib = match bus.xs.read_opt("memory/target")? {
        Some(v) => core::str::from_utf8(&v)
            .ok()
            .and_then(|t| t.trim_end_matches('\0').trim().parse::<u64>().ok()),
        None => None,
    };
    let Some(target_kib) = target_kib else {
        return Ok(held_pages());
    };
    // Never more than Xen gave us at boot: growing past it needs frames
    // the P2M has no room for.
    let target = (target_kib / 4).min(platform::pv::start_info().nr_pages);
    let before = held_pages();
    let mut b = BALLOON.lock();
    while let Some(step) = b.next_step(platform::pv::start_info().nr_pages - b.out_pages(), target)
    {
        let result = match &step {
            Step::Out(n) => mm::balloon_out(*n).map(Some),
            Step::In(r) => mm::balloon_in(r.clone()).map(|()| None),
        };
        match result {
            Ok(run) => b.done(&step, run),
            Err(e) => {
                log::warn!("balloon: {step:?} failed: {e:?}; stopping short of the target");
                break;
            }
        }
    }
    let after = platform::pv::start_info().nr_pages - b.out_pages();
    drop(b);
    if after != before {
        crate::kprintln!(
            "balloon: target {} KiB; {} -> {} pages ({} MiB), Xen reservation {:?}",
            target_kib,
            before,
            after,
            after / 256,
            mm::current_reservation()
        );
    }
    Ok(after)
}
