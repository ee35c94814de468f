//! What an app gives back to the kernel: the contract between the library
//! and the apps built on it (the image's `app=` table, the network
//! services' loop, the self-test and the benchmark all return it).

use core::fmt;

/// Why an app did not finish cleanly.
#[derive(Debug)]
pub enum AppError {
    /// A command-line setting the app cannot use, and why.
    BadSetting(&'static str),
    /// A setting's value is wrong: the message names it and says why.
    Setting(alloc::string::String),
    /// A checking app (self-test, benchmark) found failures.
    TestsFailed { failed: u32, passed: u32 },
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::BadSetting(what) => f.write_str(what),
            AppError::Setting(what) => f.write_str(what),
            AppError::TestsFailed { failed, passed } => {
                write!(f, "{failed} checks failed ({passed} passed)")
            }
        }
    }
}

/// An app's outcome.
pub type AppResult = Result<(), AppError>;
