//! The apps the command line can select with `app=NAME`.

mod blk;
mod echo;
mod hello;
mod http;
pub mod idle;

use crate::cmdline::Cmdline;
use core::fmt;

/// Why an app did not finish cleanly.
#[derive(Debug)]
pub enum AppError {
    Unknown,
    BadSetting(&'static str),
    TestsFailed { failed: u32, passed: u32 },
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Unknown => {
                f.write_str("no such app; known apps:")?;
                for app in APPS {
                    write!(f, " {}", app.name)?;
                }
                Ok(())
            }
            AppError::BadSetting(what) => f.write_str(what),
            AppError::TestsFailed { failed, passed } => {
                write!(f, "{failed} checks failed ({passed} passed)")
            }
        }
    }
}

pub type AppResult = Result<(), AppError>;

struct App {
    name: &'static str,
    run: fn(&Cmdline<'_>) -> AppResult,
}

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
];

/// Runs the app called `name`.
pub fn run(name: &str, cmd: &Cmdline<'_>) -> AppResult {
    match APPS.iter().find(|a| a.name == name) {
        Some(app) => (app.run)(cmd),
        None => Err(AppError::Unknown),
    }
}

/// Panics on purpose, to show (and test) the crash path.
fn panic(_: &Cmdline<'_>) -> AppResult {
    panic!("deliberate panic requested by app=panic")
}

/// Raises a CPU exception on purpose (`fault=pf|gp|ud|de`, default pf),
/// to show (and test) the fault report.
fn fault(cmd: &Cmdline<'_>) -> AppResult {
    use platform::{trigger_fault, DeliberateFault};
    let kind = match cmd.get("fault").unwrap_or("pf") {
        "pf" => DeliberateFault::NullRead,
        "gp" => DeliberateFault::GeneralProtection,
        "ud" => DeliberateFault::InvalidOpcode,
        "de" => DeliberateFault::DivideError,
        _ => return Err(AppError::BadSetting("fault= takes pf, gp, ud or de")),
    };
    crate::kprintln!("raising {kind:?} on purpose");
    trigger_fault(kind)
}
