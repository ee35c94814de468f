//! The guest command line (xl `extra=`): whitespace-separated `key=value`
//! settings.
//!
//! Every setting the kernel reads is declared once in [`SETTINGS`], with
//! what it accepts and its default. [`Cmdline::validate`] checks the whole
//! line against that table before anything else happens (before any device
//! is touched): an unknown key, a word without `=`, a malformed value or one
//! out of range is an error naming the setting, what it got and what it
//! accepts, and the kernel stops the boot with it (docs/hardening.md).
//! Nothing is silently clamped or replaced by a default: after validation
//! the typed getters ([`Cmdline::number`], [`Cmdline::choice`]) cannot fail.

use core::fmt;
use core::net::Ipv4Addr;

/// What a setting accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepts {
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A decimal integer in `min..=max`.
    Number { min: u64, max: u64 },
    /// A dotted-quad IPv4 address.
    Ipv4,
    /// `ADDR/PREFIX` (prefix 0..=32, required) or `dhcp`.
    CidrOrDhcp,
    /// Some of these words, comma-separated, each at most once.
    SomeOf(&'static [&'static str]),
}

impl fmt::Display for Accepts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Accepts::OneOf(words) => {
                for (i, w) in words.iter().enumerate() {
                    let sep = match i {
                        0 => "",
                        _ if i + 1 == words.len() => " or ",
                        _ => ", ",
                    };
                    write!(f, "{sep}{w}")?;
                }
                Ok(())
            }
            Accepts::Number { min, max } => write!(f, "a whole number from {min} to {max}"),
            Accepts::Ipv4 => f.write_str("an IPv4 address such as 192.0.2.1"),
            Accepts::CidrOrDhcp => {
                f.write_str("ADDR/PREFIX (prefix 0-32) such as 192.0.2.2/24, or dhcp")
            }
            Accepts::SomeOf(words) => {
                f.write_str("one or more of ")?;
                Accepts::OneOf(words).fmt(f)?;
                f.write_str(", comma-separated")
            }
        }
    }
}

/// One setting the kernel understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub key: &'static str,
    pub accepts: Accepts,
    /// The value used when the setting is absent (`None`: no default, the
    /// reader handles absence, e.g. `ip=` means DHCP).
    pub default: Option<&'static str>,
    pub about: &'static str,
}

const fn s(
    key: &'static str,
    accepts: Accepts,
    default: Option<&'static str>,
    about: &'static str,
) -> Setting {
    Setting { key, accepts, default, about }
}

const fn n(min: u64, max: u64) -> Accepts {
    Accepts::Number { min, max }
}

/// The apps `app=` can name (apps/mod.rs's `APPS` runs them: a name here
/// without an app there still stops the boot, as `app ... failed: no such
/// app`).
pub const APP_NAMES: &[&str] = &[
    "hello", "selftest", "idle", "bench", "blk", "echo", "http", "fault", "panic", "tour", "spin",
];

/// What `trace=` can name (`kernel/src/trace/`).
pub const TRACE_WORDS: &[&str] = &["hypercalls", "xenstore", "events"];

/// Every setting, with what it accepts and its default.
pub const SETTINGS: &[Setting] = &[
    s("app", Accepts::OneOf(APP_NAMES), Some("hello"), "what to run"),
    s("ip", Accepts::CidrOrDhcp, None, "with app=echo/http: the address (default: ask DHCP)"),
    s("gw", Accepts::Ipv4, None, "with app=echo/http: the default IPv4 gateway"),
    s(
        "loglevel",
        Accepts::OneOf(&["off", "error", "warn", "info", "debug", "trace"]),
        Some("info"),
        "log level",
    ),
    s("fault", Accepts::OneOf(&["pf", "gp", "ud", "de", "stack", "triple"]), Some("pf"), "with app=fault: the fault"),
    s(
        "evtchn",
        Accepts::OneOf(&["fifo", "2l", "2level", "two-level"]),
        Some("fifo"),
        "event channel ABI (fifo falls back to 2l if Xen refuses)",
    ),
    // netfront: at most MAX_QUEUES (8) queues; RX buffers fit a 256-slot ring.
    s("net.queues", n(1, 8), Some("4"), "netfront queues (at most what netback offers)"),
    s(
        "net.shards",
        n(1, 8),
        Some("8"),
        "network shards at most, one per vCPU and queue (1: every queue on vCPU 0)",
    ),
    s(
        "net.rx_buffers",
        n(16, 256),
        None,
        "netfront RX buffers per queue (default 128; 256, a full ring, as PV with 64 MiB or more)",
    ),
    s("net.offload", n(0, 1), Some("1"), "netfront checksum and GSO offloads (0: none)"),
    s(
        "net.rx_batch",
        n(1, 128),
        Some("1"),
        "netfront RX moderation: slots an RX event may wait for (1: an event per push)",
    ),
    s(
        "net.rx_hold_us",
        n(50, 100_000),
        Some("1000"),
        "netfront RX moderation: the longest a batch is waited for",
    ),
    s(
        "net.poll_us",
        n(0, 10_000),
        Some("0"),
        "network services: busy-poll this long for news before blocking",
    ),
    // The service layer (netsvc::config): memory bounds the connections
    // further when the app starts (a clear error there too).
    s("svc.max_conns", n(1, 65_536), None, "connections served at once (default from memory)"),
    s("svc.backlog", n(1, 65_536), None, "listening sockets kept ready (default max_conns/2, 4-8)"),
    s("svc.idle_ms", n(1, 3_600_000), Some("10000"), "close a new connection that sends nothing"),
    s("svc.header_ms", n(1, 3_600_000), Some("10000"), "answer 408 to a head not done by then"),
    s("svc.keepalive_ms", n(1, 3_600_000), Some("15000"), "close an idle kept-alive connection"),
    s("svc.request_ms", n(1, 3_600_000), Some("30000"), "reset a request not done by then"),
    s(
        "blk.mode",
        Accepts::OneOf(&["write", "verify", "soak", "bench", "hotplug", "passes", "smp"]),
        Some("write"),
        "with app=blk: what to do with the disks",
    ),
    s("blk.seed", n(0, u64::MAX), Some("1"), "with app=blk: the pattern's seed"),
    s("blk.soak_s", n(1, 86_400), Some("300"), "with app=blk soak/hotplug/smp: seconds to run"),
    s(
        "blk.hotplug_kib",
        n(4, 1_048_576),
        Some("1024"),
        "with blk.mode=hotplug: KiB checked per attach",
    ),
    s("blk.bench_mib", n(1, 65_536), Some("32"), "with blk.mode=bench: MiB per sequential test"),
    s("blk.ios", n(32, 10_000_000), Some("2000"), "with blk.mode=bench: random I/Os per test"),
    s(
        "balloon.log_dirty",
        n(0, 1),
        Some("1"),
        "at a suspend, have Xen log the pages ballooned in since the last one (0: not, to show what a migration loses)",
    ),
    s(
        "balloon.release_again",
        n(0, 1),
        Some("1"),
        "in a new domain, give back again the pages given back since the last suspend (0: not)",
    ),
    s(
        "balloon.check",
        n(0, 1),
        Some("0"),
        "stamp the pages each balloon step brings in and read them back after the next suspend",
    ),
    s("xenbus.timeout_ms", n(1, 600_000), Some("5000"), "with app=idle: wait for each backend"),
    s("bench.quick", n(0, 1), Some("0"), "with app=bench: 1 for short runs"),
    s(
        "bench.iters",
        n(1, 10_000_000),
        None,
        "with app=bench: samples per figure (default 10000, quick 300)",
    ),
    s(
        "bench.suite",
        Accepts::OneOf(&["hypercall", "paging"]),
        Some("hypercall"),
        "with app=bench: hypercall latency, or the paging figures (page faults, CR3, TLB walk)",
    ),
    s(
        "bench.walk_mib",
        n(2, 4096),
        Some("64"),
        "with bench.suite=paging: the walk's working set, MiB (at most half the free memory)",
    ),
    s("selftest.idle_secs", n(1, 3600), Some("5"), "with app=selftest: length of the idle check"),
    s(
        "trace",
        Accepts::SomeOf(TRACE_WORDS),
        None,
        "log every hypercall, XenStore request or event delivery, with a summary at the end",
    ),
    s(
        "xenstore.lose_notify",
        n(0, 1000),
        Some("0"),
        "fault injection: once a second vCPU runs, skip this many notifications to xenstored",
    ),
    s("spin.secs", n(1, 3600), Some("20"), "with app=spin: seconds to burn the CPU"),
    s("spin.sync", n(0, 1), Some("0"), "with app=spin: 1 waits for dom0's data/spin-go first"),
    s("spin.tick_us", n(1, 1_000_000), None, "with app=spin: a timer every N us while it spins"),
    s(
        "smp",
        n(0, 1),
        Some("0"),
        "with app=idle: 1 runs the vCPUs cpu/N/availability marks online and follows xl vcpu-set",
    ),
];

/// The setting called `key`.
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// Why a command line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingError<'a> {
    /// A key (or a bare word) the kernel does not know.
    Unknown { key: &'a str },
    /// A value that is not of the setting's form.
    Malformed { setting: &'static Setting, got: &'a str },
    /// A number outside the setting's range.
    OutOfRange { setting: &'static Setting, got: &'a str },
}

impl fmt::Display for SettingError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingError::Unknown { key } => {
                write!(f, "setting {key:?}: unknown; accepts only")?;
                for s in SETTINGS {
                    write!(f, " {}=", s.key)?;
                }
                Ok(())
            }
            SettingError::Malformed { setting, got } => {
                write!(f, "setting {}={got:?}: malformed; accepts {}", setting.key, setting.accepts)
            }
            SettingError::OutOfRange { setting, got } => {
                write!(
                    f,
                    "setting {}={got:?}: out of range; accepts {}",
                    setting.key, setting.accepts
                )
            }
        }
    }
}

/// Checks `value` against what `setting` accepts.
pub fn check_value<'a>(setting: &'static Setting, value: &'a str) -> Result<(), SettingError<'a>> {
    let malformed = SettingError::Malformed { setting, got: value };
    match setting.accepts {
        Accepts::OneOf(words) => words.contains(&value).then_some(()).ok_or(malformed),
        Accepts::Number { min, max } => {
            let v = parse_decimal(value).ok_or(malformed)?;
            (min..=max)
                .contains(&v)
                .then_some(())
                .ok_or(SettingError::OutOfRange { setting, got: value })
        }
        Accepts::Ipv4 => value.parse::<Ipv4Addr>().map(drop).map_err(|_| malformed),
        Accepts::CidrOrDhcp if value == "dhcp" => Ok(()),
        Accepts::CidrOrDhcp => parse_cidr(value).map(drop).ok_or(malformed),
        Accepts::SomeOf(words) => {
            let mut seen = 0u64;
            for w in value.split(',') {
                let i = words.iter().position(|x| *x == w).ok_or(malformed)?;
                if seen & (1 << i) != 0 {
                    return Err(malformed);
                }
                seen |= 1 << i;
            }
            Ok(())
        }
    }
}

/// A plain decimal number: digits only (no sign, no space), fits `u64`.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `ADDR/PREFIX`, the prefix required and at most 32.
pub fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, prefix) = text.split_once('/')?;
    let prefix = u8::try_from(parse_decimal(prefix)?).ok().filter(|p| *p <= 32)?;
    Some((addr.parse().ok()?, prefix))
}

/// A parsed view of the command line; borrows the original text.
#[derive(Clone, Copy, Debug)]
pub struct Cmdline<'a> {
    raw: &'a str,
}

impl<'a> Cmdline<'a> {
    pub fn new(raw: &'a str) -> Self {
        Self { raw }
    }

    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Every setting in order: `(key, Some(value))` or `(word, None)`.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
        self.raw.split_ascii_whitespace().map(|tok| match tok.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (tok, None),
        })
    }

    /// The first thing wrong with the command line, in order of appearance.
    pub fn validate(&self) -> Result<(), SettingError<'a>> {
        for (key, value) in self.iter() {
            let Some(setting) = setting(key) else {
                return Err(SettingError::Unknown { key });
            };
            let Some(value) = value else {
                return Err(SettingError::Malformed { setting, got: "" });
            };
            check_value(setting, value)?;
        }
        Ok(())
    }

    /// The value of the last `key=value` for `key` (later settings win, as in Linux).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.iter().filter(|(k, _)| *k == key).filter_map(|(_, v)| v).last()
    }

    /// The value of `key`, or its declared default.
    pub fn get_or_default(&self, key: &str) -> Option<&'a str> {
        self.get(key).or_else(|| setting(key).and_then(|s| s.default))
    }

    /// The number `key` holds (or its default), for a validated command
    /// line; `None` only when it is absent and has no default.
    ///
    /// # Panics
    /// If `key` is not a declared number setting with a parseable default
    /// (a programming error, caught by the host tests), or the line was not
    /// validated first.
    pub fn number(&self, key: &str) -> Option<u64> {
        let s = setting(key).unwrap_or_else(|| panic!("{key} is not a declared setting"));
        assert!(matches!(s.accepts, Accepts::Number { .. }), "{key} is not a number setting");
        self.get_or_default(key).map(|v| {
            parse_decimal(v).unwrap_or_else(|| panic!("{key}={v:?}: command line not validated"))
        })
    }

    /// The word `key` holds (or its default), for a validated command line.
    pub fn choice(&self, key: &str) -> &'a str {
        let s = setting(key).unwrap_or_else(|| panic!("{key} is not a declared setting"));
        assert!(matches!(s.accepts, Accepts::OneOf(_)), "{key} is not a choice setting");
        self.get_or_default(key).unwrap_or_else(|| panic!("{key} has no default"))
    }

    /// Whether `word` is among the comma-separated words of `key` (a
    /// [`Accepts::SomeOf`] setting), for a validated command line.
    pub fn has_word(&self, key: &str, word: &str) -> bool {
        let s = setting(key).unwrap_or_else(|| panic!("{key} is not a declared setting"));
        assert!(matches!(s.accepts, Accepts::SomeOf(_)), "{key} is not a list setting");
        self.get_or_default(key).is_some_and(|v| v.split(',').any(|w| w == word))
    }

    /// The app to run (`app=`), `hello` when none is given.
    pub fn app(&self) -> &'a str {
        self.choice("app")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_values_and_words() {
        let c = Cmdline::new("  app=selftest loglevel=debug quiet x=1=2 ");
        let all: Vec<_> = c.iter().collect();
        assert_eq!(
            all,
            vec![
                ("app", Some("selftest")),
                ("loglevel", Some("debug")),
                ("quiet", None),
                ("x", Some("1=2")),
            ]
        );
        assert_eq!(c.app(), "selftest");
        assert_eq!(c.get("x"), Some("1=2"));
        assert_eq!(c.get("quiet"), None);
    }

    #[test]
    fn later_settings_win_and_default_app_is_hello() {
        assert_eq!(Cmdline::new("app=idle app=blk").app(), "blk");
        assert_eq!(Cmdline::new("").app(), "hello");
    }

    #[test]
    fn every_default_is_valid() {
        for s in SETTINGS {
            if let Some(d) = s.default {
                assert_eq!(check_value(s, d), Ok(()), "{}", s.key);
            }
        }
    }

    #[test]
    fn good_lines_pass() {
        for line in [
            "",
            "app=http ip=192.0.2.2/24 gw=192.0.2.1 net.queues=2 net.rx_buffers=64",
            "app=blk blk.mode=soak blk.soak_s=200",
            "app=bench bench.quick=1 bench.iters=1",
            "app=idle xenbus.timeout_ms=3000 loglevel=trace evtchn=2l",
            "ip=dhcp blk.seed=18446744073709551615",
            "app=tour trace=hypercalls",
            "app=spin spin.secs=5 trace=events,hypercalls,xenstore",
        ] {
            assert_eq!(Cmdline::new(line).validate(), Ok(()), "{line}");
        }
    }

    /// Issue 18, item 6: each of these was silently ignored, clamped or
    /// defaulted; each is now refused with the setting's name.
    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let cases: &[(&str, &str)] = &[
            (
                "net.queues=abc",
                "setting net.queues=\"abc\": malformed; accepts a whole number from 1 to 8",
            ),
            (
                "net.queues=100",
                "setting net.queues=\"100\": out of range; accepts a whole number from 1 to 8",
            ),
            ("net.queues=0", "out of range"),
            ("net.queues=-1", "malformed"),
            ("net.queues=+2", "malformed"),
            ("net.queues=", "malformed"),
            ("blk.seed=18446744073709551616", "malformed"),
            ("ip=192.0.2.2", "setting ip=\"192.0.2.2\": malformed; accepts ADDR/PREFIX"),
            ("ip=192.0.2.2/33", "malformed"),
            ("gw=300.1.1.1", "setting gw="),
            (
                "app=nope",
                "accepts hello, selftest, idle, bench, blk, echo, http, fault, panic, tour or spin",
            ),
            (
                "trace=hypercall",
                "setting trace=\"hypercall\": malformed; accepts one or more of hypercalls, xenstore or events, comma-separated",
            ),
            ("trace=events,events", "malformed"),
            ("trace=", "malformed"),
            ("trace=events,", "malformed"),
            ("app=", "malformed"),
            ("blk.bench_mib=0", "out of range"),
            ("bench.iters=0", "out of range"),
            ("loglevel=loud", "malformed"),
            ("net.queus=2", "setting \"net.queus\": unknown; accepts only app= ip="),
            ("quiet", "setting \"quiet\": unknown"),
            ("app", "setting app=\"\": malformed"),
        ];
        for (line, want) in cases {
            let e = Cmdline::new(line).validate().expect_err(line).to_string();
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn typed_getters_use_defaults() {
        let c = Cmdline::new("net.queues=2");
        assert_eq!(c.number("net.queues"), Some(2));
        assert_eq!(c.number("net.rx_buffers"), None, "the default depends on memory");
        assert_eq!(c.number("bench.iters"), None);
        assert_eq!(c.choice("blk.mode"), "write");
        let t = Cmdline::new("trace=events,hypercalls");
        assert!(t.has_word("trace", "events") && t.has_word("trace", "hypercalls"));
        assert!(!t.has_word("trace", "xenstore"));
        assert!(!Cmdline::new("").has_word("trace", "events"));
    }

    #[test]
    fn the_first_error_is_reported() {
        let e = Cmdline::new("app=blk colour=red net.queues=x").validate().unwrap_err();
        assert_eq!(e, SettingError::Unknown { key: "colour" });
    }

    /// Fuzz target `cmdline`: lines made of real keys, misspelt keys, bare
    /// words and values of every shape. Whatever the line, `validate`
    /// answers; when it accepts, every typed getter of every setting works
    /// (no panic, the value in range), and when it refuses, the message
    /// names what it refused.
    #[test]
    fn fuzz_cmdline() {
        use fuzzkit::{Arbitrary, Unstructured};
        fuzzkit::fuzz("cmdline", |u: &mut Unstructured<'_>| {
            // Seeds (fuzz/corpus/cmdline) are real lines after a 0x01 byte.
            let mut line = String::new();
            if bool::arbitrary(u)? {
                line = String::from_utf8_lossy(u.bytes(u.len())?).into_owned();
            }
            for _ in 0..u.int_in_range(0..=8)? {
                let key = match u.int_in_range(0..=3)? {
                    0 | 1 => u.choose(SETTINGS)?.key.to_string(),
                    2 => {
                        let k = u.choose(SETTINGS)?.key;
                        let i = u.choose_index(k.len())?;
                        format!("{}{}", &k[..i], &k[i + 1..])
                    }
                    _ => String::arbitrary(u)?,
                };
                let value = match u.int_in_range(0..=4)? {
                    0 => None,
                    1 => Some(u64::arbitrary(u)?.to_string()),
                    2 => Some(u.choose(APP_NAMES)?.to_string()),
                    3 => Some(format!(
                        "{}.{}.{}.{}/{}",
                        u8::arbitrary(u)?,
                        u8::arbitrary(u)?,
                        u8::arbitrary(u)?,
                        u8::arbitrary(u)?,
                        u8::arbitrary(u)? % 40
                    )),
                    _ => Some(String::arbitrary(u)?),
                };
                line.push_str(&key);
                if let Some(v) = value {
                    line.push('=');
                    line.push_str(&v);
                }
                line.push(' ');
            }
            let c = Cmdline::new(&line);
            match c.validate() {
                Ok(()) => {
                    for s in SETTINGS {
                        match s.accepts {
                            Accepts::Number { min, max } => {
                                if let Some(v) = c.number(s.key) {
                                    assert!((min..=max).contains(&v), "{line:?}: {}={v}", s.key);
                                }
                            }
                            Accepts::OneOf(words) => assert!(words.contains(&c.choice(s.key))),
                            Accepts::Ipv4 => {
                                assert!(c.get(s.key).is_none_or(|v| v.parse::<Ipv4Addr>().is_ok()))
                            }
                            Accepts::CidrOrDhcp => assert!(c
                                .get(s.key)
                                .is_none_or(|v| v == "dhcp" || parse_cidr(v).is_some())),
                            Accepts::SomeOf(words) => {
                                for w in words {
                                    let _ = c.has_word(s.key, w);
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    assert!(text.starts_with("setting "), "{text}");
                    assert!(!text.contains('\n'), "one line: {text:?}");
                }
            }
            Ok(())
        });
    }
}
