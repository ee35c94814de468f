//! The apps the command line can select with `app=NAME`. Each is a
//! function over the `kernel` library: a new appliance is a new entry here
//! (or a new image crate with its own table).

pub mod blk;
#[cfg(target_os = "none")]
mod echo;
#[cfg(target_os = "none")]
mod hello;
#[cfg(target_os = "none")]
mod http;
#[cfg(target_os = "none")]
pub mod idle;
#[cfg(target_os = "none")]
mod spin;
#[cfg(target_os = "none")]
mod tour;

#[cfg(target_os = "none")]
pub use kernel::app::{AppError, AppResult};
#[cfg(target_os = "none")]
use kernel::cmdline::Cmdline;

#[cfg(target_os = "none")]
struct App {
    name: &'static str,
    run: fn(&Cmdline<'_>) -> AppResult,
}

#[cfg(target_os = "none")]
const APPS: &[App] = &[
    App { name: "hello", run: hello::run },
    App { name: "selftest", run: crate::selftest::run },
    App { name: "panic", run: panic },
    App { name: "fault", run: fault },
    App { name: "idle", run: idle::run },
    App { name: "bench", run: crate::bench::run },
    App { name: "blk", run: blk::run },
    App { name: "echo", run: echo::run },
    App { name: "http", run: http::run },
    App { name: "tour", run: tour::run },
    App { name: "spin", run: spin::run },
];

/// Why `app=NAME` did not finish cleanly.
#[cfg(target_os = "none")]
#[derive(Debug)]
pub enum RunError {
    /// No app has that name.
    Unknown,
    /// The app failed.
    App(AppError),
}

#[cfg(target_os = "none")]
impl core::fmt::Display for RunError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RunError::Unknown => {
                f.write_str("no such app; known apps:")?;
                for app in APPS {
                    write!(f, " {}", app.name)?;
                }
                Ok(())
            }
            RunError::App(e) => e.fmt(f),
        }
    }
}

/// Runs the app called `name`.
#[cfg(target_os = "none")]
pub fn run(name: &str, cmd: &Cmdline<'_>) -> Result<(), RunError> {
    match APPS.iter().find(|a| a.name == name) {
        Some(app) => (app.run)(cmd).map_err(RunError::App),
        None => Err(RunError::Unknown),
    }
}

/// Panics on purpose, to show (and test) the crash path.
#[cfg(target_os = "none")]
fn panic(_: &Cmdline<'_>) -> AppResult {
    panic!("deliberate panic requested by app=panic")
}

/// Raises a CPU exception on purpose (`fault=pf|gp|ud|de|stack|triple`,
/// default pf; `stack`: a stack overflow into the guard page; `triple`:
/// PVH only, a shutdown Xen reports as a triple fault),
/// to show (and test) the fault report.
#[cfg(target_os = "none")]
fn fault(cmd: &Cmdline<'_>) -> AppResult {
    use platform::{trigger_fault, DeliberateFault};
    let kind = match cmd.choice("fault") {
        "pf" => DeliberateFault::NullRead,
        "gp" => DeliberateFault::GeneralProtection,
        "ud" => DeliberateFault::InvalidOpcode,
        "de" => DeliberateFault::DivideError,
        "stack" => DeliberateFault::StackOverflow,
        "triple" if platform::is_pvh() => DeliberateFault::TripleFault,
        "triple" => {
            return Err(AppError::BadSetting("fault=triple needs PVH (a PV guest has no IDT)"))
        }
        _ => return Err(AppError::BadSetting("fault= takes pf, gp, ud, de, stack or triple")),
    };
    kernel::kprintln!("raising {kind:?} on purpose");
    trigger_fault(kind)
}
