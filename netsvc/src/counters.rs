//! A listener's counters, as the status page shows them.

use core::fmt;

/// What happened to a listener's connections since boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections accepted while full and refused (`503` for HTTP, an
    /// immediate close otherwise).
    pub refused: u64,
    /// Connections ended by a timeout (idle, header, body, send,
    /// keep-alive): each also counted below.
    pub timed_out: u64,
    pub timed_out_idle: u64,
    pub timed_out_header: u64,
    pub timed_out_request: u64,
    pub timed_out_keepalive: u64,
    /// Connections aborted (reset): a client that does not take its
    /// response, or a close that did not finish in time.
    pub aborted: u64,
    /// Connections open now, being served (not counting listening
    /// sockets or ones being refused).
    pub active: u64,
    /// The most `active` has been.
    pub peak: u64,
    /// Requests answered (HTTP), or connections finished (other
    /// protocols).
    pub requests: u64,
}

impl Counters {
    pub fn opened(&mut self) {
        self.accepted += 1;
        self.active += 1;
        self.peak = self.peak.max(self.active);
    }

    pub fn closed(&mut self) {
        self.active = self.active.saturating_sub(1);
    }

    pub fn timed_out(&mut self, what: crate::conn::TimedOut) {
        use crate::conn::TimedOut::*;
        self.timed_out += 1;
        match what {
            Idle => self.timed_out_idle += 1,
            Header => self.timed_out_header += 1,
            Body | Send => self.timed_out_request += 1,
            KeepAlive => self.timed_out_keepalive += 1,
        }
    }

    /// `name value` lines, each key prefixed with `prefix`.
    pub fn lines<'a>(&'a self, prefix: &'a str) -> Lines<'a> {
        Lines { c: self, prefix }
    }
}

/// [`Counters::lines`].
pub struct Lines<'a> {
    c: &'a Counters,
    prefix: &'a str,
}

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.c;
        for (k, v) in [
            ("accepted", c.accepted),
            ("refused", c.refused),
            ("timed_out", c.timed_out),
            ("timed_out_idle", c.timed_out_idle),
            ("timed_out_header", c.timed_out_header),
            ("timed_out_request", c.timed_out_request),
            ("timed_out_keepalive", c.timed_out_keepalive),
            ("aborted", c.aborted),
            ("active", c.active),
            ("peak", c.peak),
            ("requests", c.requests),
        ] {
            writeln!(f, "{}{k} {v}", self.prefix)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn peak_follows_active() {
        let mut c = Counters::default();
        c.opened();
        c.opened();
        c.closed();
        c.opened();
        c.closed();
        c.closed();
        c.closed();
        assert_eq!((c.accepted, c.active, c.peak), (3, 0, 2));
        c.timed_out(crate::conn::TimedOut::Header);
        let text = c.lines("conn_").to_string();
        assert!(text.starts_with("conn_accepted 3\nconn_refused 0\nconn_timed_out 1\n"), "{text}");
        assert!(text.contains("conn_timed_out_header 1\n"));
        assert!(text.contains("conn_peak 2\n"));
    }
}
