//! Follows `memory/target` one step at a time (see the module above).

use super::plan::{Balloon, Run, Step};
use crate::xenbus::GuestBus;
use platform::memory::balloon::Holes;
use platform::pv::mm;
use spin::Mutex;
use xenstore_client::{Error, Store};

/// The watch token (the watched path).
pub const TARGET_TOKEN: &str = "memory/target";

static BALLOON: Mutex<Balloon<Holes>> = Mutex::new(Balloon::new());

impl Run for Holes {
    fn pages(&self) -> u64 {
        self.count()
    }

    fn split_top(&mut self, n: u64) -> Self {
        Holes::split_top(self, n)
    }
}

/// Starts watching the target.
pub fn start(bus: &mut GuestBus) -> Result<(), Error> {
    bus.watch("memory/target", TARGET_TOKEN)
}

/// Pages the guest holds now.
pub fn held_pages() -> u64 {
    platform::nr_pages() - BALLOON.lock().out_pages()
}

/// Reads the target and moves toward it. Returns the pages held after.
pub fn follow_target(bus: &mut GuestBus) -> Result<u64, Error> {
    let Some(raw) = bus.xs.read_opt("memory/target")? else {
        return Ok(held_pages());
    };
    let Some(target_kib) = super::plan::parse_target(&raw) else {
        // The toolstack (or whoever can write the node) wrote nonsense:
        // said once per change, and nothing moves.
        log::warn!(
            "balloon: memory/target = {:?} is not a KiB count; ignored",
            alloc::string::String::from_utf8_lossy(&raw)
        );
        return Ok(held_pages());
    };
    // Never more than Xen gave us at boot: growing past it needs frames
    // the P2M has no room for.
    let target = (target_kib / 4).min(platform::nr_pages());
    let before = held_pages();
    let mut b = BALLOON.lock();
    while let Some(step) = b.next_step(platform::nr_pages() - b.out_pages(), target) {
        let result = match step {
            Step::Out(n) => {
                // Never into the reserve (issue 18 item 5).
                let n = super::plan::out_allowed(n, mm::free_frames().0);
                if n == 0 {
                    crate::kprintln!(
                        "balloon: target {target_kib} KiB refused below {} pages: keeping a reserve of {} free pages",
                        platform::nr_pages() - b.out_pages(),
                        super::plan::RESERVE_PAGES
                    );
                    break;
                }
                mm::balloon_out(n).map(|holes| b.gave_back(holes))
            }
            Step::In(n) => match b.take_top(n) {
                Some(holes) => mm::balloon_in(holes).map_err(|(e, holes)| {
                    b.put_back(holes);
                    e
                }),
                None => break,
            },
        };
        if let Err(e) = result {
            log::warn!("balloon: {step:?} failed: {e:?}; stopping short of the target");
            break;
        }
    }
    let after = platform::nr_pages() - b.out_pages();
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
