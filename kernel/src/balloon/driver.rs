//! Follows `memory/target` one step at a time (see the module above).

use super::plan::{Balloon, Run, Step};
use crate::xenbus::{self, GuestBus};
use platform::memory::balloon::Holes;
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

/// Starts watching the target. The pfns past the boot size, up to the
/// P2M's end (the maximum reservation), start out as the oldest hole: the
/// balloon fills it when the target rises above the boot size.
pub fn start(bus: &mut GuestBus) -> Result<(), Error> {
    seed_holes();
    bus.watch("memory/target", TARGET_TOKEN)
}

/// Makes room (PV: sizes the P2M) for the most memory the toolstack may
/// give this domain (`memory/static-max`, xl's `maxmem`), so a save, a
/// migration or the balloon can cover all of it. Xen's own maximum
/// reservation follows `xl mem-set` and says less at boot.
///
/// Under PVH there is no P2M for the toolstack: the balloon stays within
/// the boot size (the platform says so).
pub fn size_for_static_max() {
    let kib = xenbus::with(|bus| bus.xs.read_opt("memory/static-max"));
    let kib = match kib {
        Some(Ok(Some(v))) => super::plan::parse_target(&v),
        _ => None,
    };
    let Some(kib) = kib else { return };
    match platform::grow_pfn_limit(kib / 4) {
        Ok(n) => log::info!(
            "balloon: memory may span {n} pfns ({} MiB; static-max {} MiB)",
            n / 256,
            kib / 1024
        ),
        Err(e) => log::warn!(
            "balloon: no room for static-max {kib} KiB; memory stays within {} pfns: {e}",
            platform::pfn_limit()
        ),
    }
}

fn seed_holes() {
    if let Some(h) = platform::unpopulated_holes() {
        BALLOON.lock().runs.insert(0, h);
    }
}

/// Pages the guest holds now.
pub fn held_pages() -> u64 {
    seed_holes();
    platform::pfn_limit() - BALLOON.lock().out_pages()
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
    seed_holes();
    // Never more than the P2M covers (the maximum reservation).
    let all = platform::pfn_limit();
    let target = (target_kib / 4).min(all);
    let before = held_pages();
    let mut b = BALLOON.lock();
    while let Some(step) = b.next_step(all - b.out_pages(), target) {
        let result = match step {
            Step::Out(n) => {
                // Never into the reserve (issue 18 item 5).
                let n = super::plan::out_allowed(n, platform::free_frames().0);
                if n == 0 {
                    crate::kprintln!(
                        "balloon: target {target_kib} KiB refused below {} pages: keeping a reserve of {} free pages",
                        all - b.out_pages(),
                        super::plan::RESERVE_PAGES
                    );
                    break;
                }
                platform::balloon_out(n).map(|holes| {
                    super::suspend::gave_back(holes.range());
                    b.gave_back(holes)
                })
            }
            Step::In(n) => match b.take_top(n) {
                Some(holes) => {
                    let pfns = holes.range();
                    let r = platform::balloon_in(holes).map_err(|(e, holes)| {
                        b.put_back(holes);
                        e
                    });
                    // On an error some may be populated: the P2M says
                    // which, and the logging at the suspend skips holes.
                    super::suspend::populated(pfns, r.is_ok());
                    r
                }
                None => break,
            },
        };
        if let Err(e) = result {
            log::warn!("balloon: {step:?} failed: {e:?}; stopping short of the target");
            break;
        }
    }
    let after = all - b.out_pages();
    drop(b);
    if after != before {
        // With several vCPUs the unmaps are flushed on all of them
        // (docs/smp.md): the count says they were.
        let wide = platform::smp::wide_flushes();
        crate::kprintln!(
            "balloon: target {} KiB; {} -> {} pages ({} MiB), Xen reservation {:?}{}",
            target_kib,
            before,
            after,
            after / 256,
            platform::current_reservation(),
            if wide > 0 {
                alloc::format!("; page-table flushes on every vCPU so far: {wide}")
            } else {
                alloc::string::String::new()
            }
        );
    }
    Ok(after)
}
