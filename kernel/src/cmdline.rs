//! The guest command line (xl `extra=`): whitespace-separated `key=value`
//! settings and bare words.

/// Settings this kernel understands; anything else is reported at boot so a
/// typo does not go unnoticed.
pub const KNOWN_KEYS: &[(&str, &str)] = &[
    ("app", "what to run: hello, selftest, idle, bench, blk, echo, http, fault, panic"),
    ("ip", "with app=echo/http: the address, ADDR/PREFIX, or dhcp (the default)"),
    ("gw", "with app=echo/http: the default IPv4 gateway"),
    ("loglevel", "error, warn, info, debug or trace (default info)"),
    ("fault", "with app=fault: pf, gp, ud or de"),
    ("evtchn", "event channel ABI: fifo (default; 2l if Xen refuses) or 2l"),
];

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

    /// The value of the last `key=value` for `key` (later settings win, as in Linux).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.iter().filter(|(k, _)| *k == key).filter_map(|(_, v)| v).last()
    }

    /// The app to run (`app=`), `hello` when none is given.
    pub fn app(&self) -> &'a str {
        self.get("app").filter(|v| !v.is_empty()).unwrap_or("hello")
    }

    /// Keys that are neither known nor namespaced (`app.key=` settings
    /// belong to the app and are checked by it).
    pub fn unknown_keys(&self) -> impl Iterator<Item = &'a str> {
        self.iter()
            .map(|(k, _)| k)
            .filter(|k| !k.contains('.') && !KNOWN_KEYS.iter().any(|(known, _)| known == k))
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
        assert_eq!(Cmdline::new("app=a app=b").app(), "b");
        assert_eq!(Cmdline::new("").app(), "hello");
        assert_eq!(Cmdline::new("app=").app(), "hello");
    }

    #[test]
    fn unknown_keys_are_reported_but_namespaced_ones_are_not() {
        let c = Cmdline::new("app=blk blk.seed=3 colour=red loglevel=info");
        assert_eq!(c.unknown_keys().collect::<Vec<_>>(), vec!["colour"]);
    }
}
