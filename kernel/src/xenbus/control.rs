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
pub const FEATURES: &[&str] =
    &["control/feature-poweroff", "control/feature-reboot", "control/feature-suspend"];

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
        let text = text.trim_end_matches('\0').trim();
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

/// Advertises the features and watches the control nodes, in one
/// pipelined round trip to xenstored.
pub fn start<T: Transport>(bus: &mut Bus<T>) -> Result<(), Error> {
    let mut reqs = alloc::vec::Vec::new();
    for key in FEATURES {
        reqs.push((MsgType::Write, request::write(key, b"1")?));
    }
    reqs.push((MsgType::Watch, request::watch("control/shutdown", SHUTDOWN_TOKEN)?));
    reqs.push((MsgType::Watch, request::watch("control/sysrq", SYSRQ_TOKEN)?));
    let kinds: alloc::vec::Vec<MsgType> = reqs.iter().map(|(k, _)| *k).collect();
    for (kind, m) in kinds.into_iter().zip(bus.xs.pipeline(reqs)?) {
        reply::ok(reply::payload_for(kind, &m)?)?;
    }
    bus.xs.remember_watch("control/shutdown", SHUTDOWN_TOKEN);
    bus.xs.remember_watch("control/sysrq", SYSRQ_TOKEN);
    Ok(())
}

/// Takes a pending shutdown request, acknowledging it the way Linux does:
/// in one transaction, read the node and write it back empty. The
/// toolstack sees the empty node as "the guest heard us".
pub fn take_shutdown<T: Transport>(bus: &mut Bus<T>) -> Result<Option<ShutdownRequest>, Error> {
    take(bus, "control/shutdown").map(|v| v.and_then(|v| ShutdownRequest::parse(&v)))
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

    #[test]
    fn the_acknowledgement_survives_a_conflicting_transaction() {
        let h = Harness::new(DomId(9));
        toolstack_writes(&h, "control/shutdown", b"poweroff");
        let mut bus = Bus::new(h.client());
        h.fake().fail_next_commits(2);
        assert_eq!(take_shutdown(&mut bus).unwrap(), Some(ShutdownRequest::Poweroff));
        assert_eq!(node(&h, "control/shutdown").as_deref(), Some(&b""[..]));
    }
}
