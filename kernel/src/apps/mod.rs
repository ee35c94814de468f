//! The apps the command line can select with `app=NAME`.

mod hello;

use crate::cmdline::Cmdline;
use core::fmt;

/// Why an app did not finish cleanly.
#[derive(Debug)]
pub enum AppError {
    Unknown,
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
    App {
        name: "hello",
        run: hello::run,
    },
    App {
        name: "selftest",
        run: crate::selftest::run,
    },
    App {
        name: "panic",
        run: panic,
    },
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
