//! `app=selftest`: the in-guest test suite. One line per check,
//! `PASS name: figure` or `FAIL name: why`, then `N passed, N failed`.

mod clock;
mod console;
mod events;
mod grants;
mod hypercalls;
mod memory;
mod smp;
mod start_info;
mod timers;

use crate::apps::{AppError, AppResult};
use kernel::cmdline::Cmdline;
use kernel::fmtbuf::FmtBuf;
use kernel::kprintln;

/// Room for one check's figure or reason.
pub type Detail = FmtBuf<240>;

/// Counts results and prints one line per check.
pub struct Suite {
    passed: u32,
    failed: u32,
    skipped: u32,
}

impl Suite {
    /// Runs one check. `f` writes a figure or a reason into its detail and
    /// says whether the check passed.
    pub fn check(&mut self, name: &str, f: impl FnOnce(&mut Detail) -> bool) {
        let mut detail = Detail::new();
        let ok = f(&mut detail);
        self.report(name, ok, &detail);
    }

    /// The line of one check: out of line, so each of the 76 checks (a
    /// `check` of its own closure) does not carry its own copy of the
    /// formatting (issue 17's image size).
    #[inline(never)]
    fn report(&mut self, name: &str, ok: bool, detail: &Detail) {
        let sep = if detail.as_str().is_empty() { "" } else { ": " };
        if ok {
            self.passed += 1;
            kprintln!("PASS {name}{sep}{detail}");
        } else {
            self.failed += 1;
            kprintln!("FAIL {name}{sep}{detail}");
        }
    }

    /// A check that cannot run in this mode, with the reason: `SKIP name: why`.
    pub fn skip(&mut self, name: &str, why: &str) {
        self.skipped += 1;
        kprintln!("SKIP {name}: {why}");
    }
}

/// Writes to a check's detail and returns false from the check.
macro_rules! fail {
    ($d:expr, $($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt($d, format_args!($($arg)*));
        return false;
    }};
}
pub(crate) use fail;

/// Writes a figure to a check's detail.
macro_rules! note {
    ($d:expr, $($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt($d, format_args!($($arg)*));
    }};
}
pub(crate) use note;

pub fn run(cmd: &Cmdline<'_>) -> AppResult {
    let mut suite = Suite { passed: 0, failed: 0, skipped: 0 };
    hypercalls::run(&mut suite);
    start_info::run(&mut suite);
    clock::run(&mut suite);
    console::run(&mut suite);
    events::run(&mut suite);
    memory::run(&mut suite);
    grants::run(&mut suite);
    timers::run(&mut suite, cmd);
    smp::run(&mut suite);
    if suite.skipped > 0 {
        kprintln!("{} skipped", suite.skipped);
    }
    kprintln!("{} passed, {} failed", suite.passed, suite.failed);
    if suite.failed == 0 {
        Ok(())
    } else {
        Err(AppError::TestsFailed { failed: suite.failed, passed: suite.passed })
    }
}
