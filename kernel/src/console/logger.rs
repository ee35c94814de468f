//! A `log` backend on the console: `[   seconds.micro] LEVEL target: message`.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let t = platform::uptime_ns();
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        crate::kprintln!(
            "[{:5}.{:06}] {} {}: {}",
            t / 1_000_000_000,
            t % 1_000_000_000 / 1_000,
            level,
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {
        let _ = super::flush();
    }
}

/// Parses a `loglevel=` value.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    Some(match s {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

/// Installs the logger at `level`.
pub fn init(level: LevelFilter) {
    // set_logger fails only if a logger is already installed: keep that one.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
