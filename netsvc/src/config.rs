//! A listener's sizes and timeouts: derived from the guest's memory, and
//! overridden by `svc.*` settings on the command line.
//!
//! | setting | meaning | default |
//! |---|---|---|
//! | `svc.max_conns=N` | connections served at once | memory / 8 / the cost of one |
//! | `svc.backlog=N` | listening sockets kept ready (the accept backlog) | `max_conns / 2`, 4..=8 |
//! | `svc.idle_ms=N` | a new connection that sends nothing | 10000 |
//! | `svc.header_ms=N` | a request head, from its first byte | 10000 |
//! | `svc.keepalive_ms=N` | an open connection between requests | 15000 |
//! | `svc.request_ms=N` | a whole request, first byte to response acknowledged | 30000 |
//!
//! smoltcp answers a SYN that finds no listening socket with a reset at
//! once, and one pass of the service loop can bring a whole RX ring of
//! SYNs (256 clients connecting at the same moment); the listener tops its
//! listening sockets up after every SYN the stack takes, so a few suffice.
//! More would cost: smoltcp visits every socket of its set on every poll.
//! (The backlog was 256 when it was topped up once per pass.)
//!
//! A connection costs its socket buffers plus what the protocol may hold
//! ([`Sizing::per_conn`]); an eighth of the guest's memory is for
//! connections, and `svc.max_conns` may ask for at most half of it: more
//! would let clients take the memory the rest of the guest needs.

use crate::conn::Timeouts;
use core::fmt;

/// What one connection costs and the bounds of the pool, for one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizing {
    /// Bytes per connection: socket buffers, the socket itself, the
    /// protocol's own buffers at their limits.
    pub per_conn: usize,
}

/// A listener's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenConfig {
    pub max_conns: usize,
    pub backlog: usize,
    pub timeouts: Timeouts,
}

/// The hard ceiling of connections per listener whatever the memory
/// (smoltcp looks through its sockets linearly for every segment).
pub const MAX_CONNS: usize = 2048;
/// Fewest connections a listener is sized for.
pub const MIN_CONNS: usize = 4;
/// The most listening sockets kept ready unless `svc.backlog` says.
pub const DEFAULT_BACKLOG: usize = 8;

/// A bad `svc.*` setting: which, what it was, what it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadSetting<'a> {
    pub key: &'static str,
    pub value: &'a str,
    pub why: Why,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    NotANumber,
    Zero,
    /// More connections (or backlog) than the memory allows: the limit.
    TooMany(usize),
    /// A timeout beyond an hour (surely a mistake): the limit.
    TooLong(u64),
}

impl fmt::Display for BadSetting<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}: ", self.key, self.value)?;
        match self.why {
            Why::NotANumber => f.write_str("not a whole number"),
            Why::Zero => f.write_str("must be at least 1"),
            Why::TooMany(n) => write!(f, "at most {n} with this guest's memory"),
            Why::TooLong(n) => write!(f, "at most {n}"),
        }
    }
}

const MAX_TIMEOUT_MS: u64 = 3_600_000;

impl ListenConfig {
    /// The defaults for a guest of `mem_bytes`, then each setting `get`
    /// returns (`get("svc.backlog")` and so on) applied.
    pub fn from_settings<'a>(
        mem_bytes: u64,
        sizing: Sizing,
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Self, BadSetting<'a>> {
        let per = sizing.per_conn.max(1) as u64;
        let derived = ((mem_bytes / 8 / per) as usize).clamp(MIN_CONNS, MAX_CONNS);
        let ceiling = ((mem_bytes / 2 / per) as usize).clamp(MIN_CONNS, MAX_CONNS);
        let number = |key: &'static str| -> Result<Option<(u64, &'a str)>, BadSetting<'a>> {
            let Some(value) = get(key) else { return Ok(None) };
            let n: u64 =
                value.parse().map_err(|_| BadSetting { key, value, why: Why::NotANumber })?;
            if n == 0 {
                return Err(BadSetting { key, value, why: Why::Zero });
            }
            Ok(Some((n, value)))
        };
        let count = |key: &'static str, max: usize| -> Result<Option<usize>, BadSetting<'a>> {
            match number(key)? {
                Some((n, value)) if n > max as u64 => {
                    Err(BadSetting { key, value, why: Why::TooMany(max) })
                }
                Some((n, _)) => Ok(Some(n as usize)),
                None => Ok(None),
            }
        };
        let ms = |key: &'static str, default: u64| -> Result<u64, BadSetting<'a>> {
            match number(key)? {
                Some((n, value)) if n > MAX_TIMEOUT_MS => {
                    Err(BadSetting { key, value, why: Why::TooLong(MAX_TIMEOUT_MS) })
                }
                Some((n, _)) => Ok(n),
                None => Ok(default),
            }
        };
        let max_conns = count("svc.max_conns", ceiling)?.unwrap_or(derived);
        let backlog =
            count("svc.backlog", ceiling)?.unwrap_or((max_conns / 2).clamp(4, DEFAULT_BACKLOG));
        let d = Timeouts::default();
        let timeouts = Timeouts {
            idle_ms: ms("svc.idle_ms", d.idle_ms)?,
            header_ms: ms("svc.header_ms", d.header_ms)?,
            keepalive_ms: ms("svc.keepalive_ms", d.keepalive_ms)?,
            request_ms: ms("svc.request_ms", d.request_ms)?,
        };
        Ok(ListenConfig { max_conns, backlog, timeouts })
    }

    /// The most memory the listener's connections can hold.
    pub fn max_bytes(&self, sizing: Sizing) -> usize {
        (self.max_conns + self.backlog) * sizing.per_conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    const S: Sizing = Sizing { per_conn: 16 * 1024 };
    const MIB: u64 = 1 << 20;

    fn cfg<'a>(mem: u64, kv: &'a [(&str, &'a str)]) -> Result<ListenConfig, BadSetting<'a>> {
        ListenConfig::from_settings(mem, S, |k| kv.iter().find(|(x, _)| *x == k).map(|(_, v)| *v))
    }

    #[test]
    fn derived_from_memory() {
        assert_eq!(cfg(4 * MIB, &[]).unwrap().max_conns, 32);
        assert_eq!(cfg(4 * MIB, &[]).unwrap().backlog, 8);
        assert_eq!(cfg(64 * MIB, &[]).unwrap().max_conns, 512);
        assert_eq!(cfg(64 * MIB, &[]).unwrap().backlog, 8);
        assert_eq!(cfg(MIB / 4, &[]).unwrap().backlog, 4);
        assert_eq!(cfg(MIB / 4, &[]).unwrap().max_conns, MIN_CONNS);
        assert_eq!(cfg(1 << 40, &[]).unwrap().max_conns, MAX_CONNS);
        assert_eq!(cfg(64 * MIB, &[]).unwrap().timeouts, Timeouts::default());
    }

    #[test]
    fn settings_override_and_bad_values_say_why() {
        let c = cfg(
            64 * MIB,
            &[("svc.max_conns", "100"), ("svc.backlog", "7"), ("svc.idle_ms", "500")],
        )
        .unwrap();
        assert_eq!((c.max_conns, c.backlog, c.timeouts.idle_ms), (100, 7, 500));
        assert_eq!(c.max_bytes(S), 107 * 16 * 1024);
        let e = cfg(64 * MIB, &[("svc.backlog", "lots")]).unwrap_err();
        assert_eq!(e.to_string(), "svc.backlog=lots: not a whole number");
        let e = cfg(64 * MIB, &[("svc.max_conns", "0")]).unwrap_err();
        assert_eq!(e.to_string(), "svc.max_conns=0: must be at least 1");
        let e = cfg(4 * MIB, &[("svc.max_conns", "1000")]).unwrap_err();
        assert_eq!(e.to_string(), "svc.max_conns=1000: at most 128 with this guest's memory");
        let e = cfg(4 * MIB, &[("svc.header_ms", "-1")]).unwrap_err();
        assert_eq!(e.why, Why::NotANumber);
        let e = cfg(4 * MIB, &[("svc.request_ms", "99999999")]).unwrap_err();
        assert_eq!(e.to_string(), "svc.request_ms=99999999: at most 3600000");
    }
}
