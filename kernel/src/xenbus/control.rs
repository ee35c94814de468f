//! The toolstack's control node (`control/` in the domain's home): shutdown
//! requests from `xl shutdown` / `xl reboot` / `xl destroy`-less crash, sysrq
//! keys, and the `feature-*` keys that tell `xl` what this guest obeys.

use alloc::string::String;
use pv_drivers::xenbus::Bus;
use xenstore_client::{reply, request, Error, MsgType, Store, Transport};

/// Watch tokens (the watched paths themselves, for readable logs).
pub const SHUTDOWN_TOKEN: &str = "control/shutdown";
pub const SYSRQ_TOKEN: &str = "control/sysrq";

/// Features advertised under `control/`; a guest that lacks
/// `feature-poweroff` makes `xl shutdown` fall back to ACPI or fail.
pub const FEATURES: &[&str] = &["control/feature-poweroff", "control/feature-reboot"];

/// The guest obeys `control/shutdown=suspend` (PV and PVH:
/// docs/migration.md).
pub const SUSPEND_FEATURE: &str = "control/feature-suspend";

/// What `control/shutdown` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShutdownRequest {
    Poweroff,
    Halt,
    Reboot,
    Crash,
    Suspend,
    Other(String),
}

impl ShutdownRequest {
    pub fn parse(v: &[u8]) -> Option<ShutdownRequest> {
        let text = String::from_utf8_lossy(v);
        let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        Some(match text {
            "" => return None,
            "poweroff" => ShutdownRequest::Poweroff,
            "halt" => ShutdownRequest::Halt,
            "reboot" => ShutdownRequest::Reboot,
            "crash" => ShutdownRequest::Crash,
            "suspend" => ShutdownRequest::Suspend,
            other => ShutdownRequest::Other(other.into()),
        })
    }
}

/// Advertises the features (`feature-suspend` too) and watches the
/// control nodes, in one pipelined round trip to xenstored.
pub fn start<T: Transport>(bus: &mut Bus<T>) -> Result<(), Error> {
    let mut reqs = alloc::vec::Vec::new();
    for key in FEATURES.iter().chain([&SUSPEND_FEATURE]) {
        reqs.push((MsgType::Write, request::write(key, b"1")?));
    }
    reqs.push((MsgType::Watch, request::watch("control/shutdown", SHUTDOWN_TOKEN)?));
    reqs.push((MsgType::Watch, request::watch("control/sysrq", SYSRQ_TOKEN)?));
    let kinds: alloc::vec::Vec<MsgType> = reqs.iter().map(|(k, _)| *k).collect();
    for (kind, m) in kinds.into_iter().zip(bus.xs.pipeline(reqs)?) {
        reply::ok(reply::payload_for(kind, &m)?)?;
    }
    // Lost watch events make these fire again (Bus::next_event).
    bus.note_watch("control/shutdown", SHUTDOWN_TOKEN);
    bus.note_watch("control/sysrq", SYSRQ_TOKEN);
    Ok(())
}

/// Takes a pending shutdown request, acknowledging it the way Linux does:
/// in one transaction, read the node and write it back empty. The
/// toolstack sees the empty node as "the guest heard us".
pub fn take_shutdown<T: Transport>(bus: &mut Bus<T>) -> Result<Option<ShutdownRequest>, Error> {
    take(bus, "control/shutdown").map(|v| v.and_then(|v| ShutdownRequest::parse(&v)))
}

/// The pending shutdown request, for the service loops: taken and
/// acknowledged as [`take_shutdown`] does, and when that fails, never
/// dropped in silence: the failure is reported, and a request that a plain
/// read still finds is obeyed all the same (the toolstack then sees no
/// acknowledgement, only the domain shutting down; `xl shutdown` waits for
/// that anyway). Only a store that cannot even be read leaves it for the
/// next event, said in one line.
pub fn shutdown_request<T: Transport>(bus: &mut Bus<T>) -> Option<ShutdownRequest> {
    let err = match take_shutdown(bus) {
        Ok(req) => return req,
        Err(e) => e,
    };
    match bus.xs.read_opt("control/shutdown") {
        Ok(Some(v)) => {
            let req = ShutdownRequest::parse(&v)?;
            log::error!("control/shutdown: acknowledging {req:?} failed ({err:?}); obeying it unacknowledged");
            Some(req)
        }
        Ok(None) => {
            log::error!("control/shutdown: acknowledgement failed ({err:?}) and the node is gone");
            None
        }
        Err(e) => {
            log::error!(
                "control/shutdown: cannot read it ({err:?}, then {e:?}); the next event retries"
            );
            None
        }
    }
}

/// Takes a pending sysrq key (acknowledged the same way).
pub fn take_sysrq<T: Transport>(bus: &mut Bus<T>) -> Result<Option<u8>, Error> {
    take(bus, "control/sysrq").map(|v| v.and_then(|v| v.first().copied().filter(|&c| c != 0)))
}

fn take<T: Transport>(bus: &mut Bus<T>, path: &str) -> Result<Option<alloc::vec::Vec<u8>>, Error> {
    bus.xs.transaction(|tx| match tx.read_opt(path)? {
        Some(v) if !v.iter().all(|&b| b == 0) => {
            tx.write(path, b"")?;
            Ok(Some(v))
        }
        _ => Ok(None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use hypercall::DomId;
    use xenstore_client::fake::Harness;
    use xenstore_client::{Access, Perm};

    fn toolstack_writes(h: &Harness, rel: &str, value: &[u8]) {
        let mut fake = h.fake();
        let (guest, path) = (fake.guest(), fake.abs(rel));
        fake.write_as(DomId(0), &path, value).unwrap();
        // As libxl does: dom0 owns it, the guest may read and write it.
        fake.set_perms_as(
            DomId(0),
            &path,
            &[Perm::new(DomId(0), Access::None), Perm::new(guest, Access::Both)],
        )
        .unwrap();
    }

    fn node(h: &Harness, rel: &str) -> Option<Vec<u8>> {
        let path = h.fake().abs(rel);
        h.fake().get(&path)
    }

    #[test]
    fn requests_parse() {
        assert_eq!(ShutdownRequest::parse(b"poweroff"), Some(ShutdownRequest::Poweroff));
        assert_eq!(ShutdownRequest::parse(b"reboot\0"), Some(ShutdownRequest::Reboot));
        assert_eq!(ShutdownRequest::parse(b""), None);
        assert_eq!(ShutdownRequest::parse(b"dance"), Some(ShutdownRequest::Other("dance".into())));
    }

    #[test]
    fn a_request_is_taken_once_and_acknowledged() {
        let h = Harness::new(DomId(9));
        toolstack_writes(&h, "control/shutdown", b"");
        toolstack_writes(&h, "control/sysrq", b"");
        let mut bus = Bus::new(h.client());
        start(&mut bus).unwrap();
        assert_eq!(node(&h, "control/feature-poweroff").as_deref(), Some(&b"1"[..]));
        assert_eq!(node(&h, SUSPEND_FEATURE).as_deref(), Some(&b"1"[..]));
        let far = Some(bus.deadline(Duration::from_secs(1)));
        // The initial firing of each watch finds nothing to do.
        while let Ok(ev) = bus.xs.next_event(Some(bus.now())) {
            assert!(ev.token == SHUTDOWN_TOKEN || ev.token == SYSRQ_TOKEN);
        }
        assert_eq!(take_shutdown(&mut bus).unwrap(), None);

        toolstack_writes(&h, "control/shutdown", b"reboot");
        assert_eq!(bus.next_event_for(SHUTDOWN_TOKEN, far).unwrap().token, SHUTDOWN_TOKEN);
        assert_eq!(take_shutdown(&mut bus).unwrap(), Some(ShutdownRequest::Reboot));
        assert_eq!(node(&h, "control/shutdown").as_deref(), Some(&b""[..]));
        assert_eq!(take_shutdown(&mut bus).unwrap(), None);

        toolstack_writes(&h, "control/sysrq", b"t");
        assert_eq!(take_sysrq(&mut bus).unwrap(), Some(b't'));
        assert_eq!(take_sysrq(&mut bus).unwrap(), None);
    }

    /// Issue 18 item 3: the acknowledging transaction never commits; the
    /// request was dropped without a word and the guest never shut down.
    #[test]
    fn a_failed_acknowledgement_is_reported_and_the_request_still_obeyed() {
        let h = Harness::new(DomId(9));
        toolstack_writes(&h, "control/shutdown", b"poweroff");
        let mut bus = Bus::new(h.client());
        h.fake().fail_next_commits(1_000);
        assert!(take_shutdown(&mut bus).is_err());
        assert_eq!(shutdown_request(&mut bus), Some(ShutdownRequest::Poweroff));
        // Nothing to obey: nothing invented.
        toolstack_writes(&h, "control/shutdown", b"");
        assert_eq!(shutdown_request(&mut bus), None);
    }

    #[test]
    fn the_acknowledgement_survives_a_conflicting_transaction() {
        let h = Harness::new(DomId(9));
        toolstack_writes(&h, "control/shutdown", b"poweroff");
        let mut bus = Bus::new(h.client());
        h.fake().fail_next_commits(2);
        assert_eq!(take_shutdown(&mut bus).unwrap(), Some(ShutdownRequest::Poweroff));
        assert_eq!(node(&h, "control/shutdown").as_deref(), Some(&b""[..]));
    }

    /// Fuzz target `control`: whatever `control/shutdown` and
    /// `control/sysrq` hold (text, binary, NULs, huge), and however often
    /// the acknowledging transaction conflicts, taking them answers: a
    /// request only for a non-empty value, parsed the same way twice, and
    /// a value of known words gives the known request.
    #[test]
    fn fuzz_control() {
        use fuzzkit::{Arbitrary, Unstructured};
        fuzzkit::fuzz("control", |u: &mut Unstructured<'_>| {
            let words = ["poweroff", "halt", "reboot", "crash", "suspend", "", "\0"];
            let value: Vec<u8> = if bool::arbitrary(u)? {
                u.choose(&words)?.as_bytes().to_vec()
            } else {
                // Seeds (fuzz/corpus/control): node values after 0x00.
                let mut v = u.bytes(u.len().min(2048))?.to_vec();
                v.truncate(2048);
                v
            };
            let parsed = ShutdownRequest::parse(&value);
            assert_eq!(parsed, ShutdownRequest::parse(&value));
            if value.iter().all(|&b| b == 0 || b.is_ascii_whitespace()) {
                assert_eq!(parsed, None);
            }
            let h = Harness::new(DomId(9));
            toolstack_writes(&h, "control/shutdown", &value);
            toolstack_writes(&h, "control/sysrq", &value);
            let mut bus = Bus::new(h.client());
            h.fake().fail_next_commits(u.int_in_range(0..=12)?);
            let got = shutdown_request(&mut bus);
            assert_eq!(got, parsed, "{value:?}");
            let _ = take_sysrq(&mut bus);
            Ok(())
        });
    }
}
