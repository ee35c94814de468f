//! Frontend devices in XenStore and the xenbus state machine
//! (`xen/include/public/io/xenbus.h`).
//!
//! A frontend lives at `device/<type>/<id>` (relative to the domain's home)
//! with `backend` (the backend's absolute path) and `backend-id`; each side
//! publishes `state` and watches the other's.

use super::bus::Bus;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use hypercall::DomId;
use xenstore_client::{Error, Store, Transport, XsErrno};

/// `enum xenbus_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum XenbusState {
    Unknown = 0,
    Initialising = 1,
    InitWait = 2,
    Initialised = 3,
    Connected = 4,
    Closing = 5,
    Closed = 6,
    Reconfiguring = 7,
    Reconfigured = 8,
}

impl XenbusState {
    pub fn from_number(n: u64) -> Option<Self> {
        use XenbusState::*;
        Some(match n {
            0 => Unknown,
            1 => Initialising,
            2 => InitWait,
            3 => Initialised,
            4 => Connected,
            5 => Closing,
            6 => Closed,
            7 => Reconfiguring,
            8 => Reconfigured,
            _ => return None,
        })
    }

    /// Parses a `state` node's value (a decimal number, maybe NUL-ended).
    pub fn parse(v: &[u8]) -> Option<Self> {
        let text = core::str::from_utf8(v).ok()?.trim_end_matches('\0').trim();
        XenbusState::from_number(text.parse().ok()?)
    }
}

impl fmt::Display for XenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({})", self, *self as u8)
    }
}

/// What went wrong on the bus.
#[derive(Debug, PartialEq)]
pub enum XenbusError {
    Store(Error),
    /// A node every device must have is missing or unreadable.
    Missing {
        path: String,
    },
    /// A `state` node with a value that is not a state.
    BadState {
        path: String,
        value: Vec<u8>,
    },
    /// The backend did not reach a wanted state in time.
    BackendTimeout {
        backend: String,
        last: Option<XenbusState>,
        /// The configured limit.
        timeout: Duration,
        /// What the wait measured (at least `timeout`).
        waited: Duration,
    },
    /// The device's directory is gone (the toolstack removed it).
    Vanished {
        frontend: String,
    },
    /// The backend's `state` node was there and went away while we waited
    /// (the toolstack removed the backend).
    BackendGone {
        backend: String,
        last: XenbusState,
    },
    /// The kernel has no XenStore connection to ask.
    NoStore,
}

impl From<Error> for XenbusError {
    fn from(e: Error) -> Self {
        XenbusError::Store(e)
    }
}

/// Milliseconds, as a `u64` (saturating): a `u128` in a format string
/// brings in the 128-bit formatting and division code (issue 17's size goal).
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Display for XenbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenbusError::Store(e) => write!(f, "xenstore: {e:?}"),
            XenbusError::Missing { path } => write!(f, "{path} is missing"),
            XenbusError::BadState { path, value } => {
                write!(
                    f,
                    "{path} holds {:?}, not a xenbus state",
                    alloc::string::String::from_utf8_lossy(value)
                )
            }
            XenbusError::BackendTimeout { backend, last, timeout, waited } => {
                let last =
                    last.map_or_else(|| String::from("no state at all"), |s| format!("state {s}"));
                write!(f, "backend {backend} did not answer within {} ms (waited {} ms; {last}): is the backend driver loaded in its domain?", ms(*timeout), ms(*waited))
            }
            XenbusError::Vanished { frontend } => {
                write!(f, "{frontend} is gone (the toolstack removed the device)")
            }
            XenbusError::BackendGone { backend, last } => {
                write!(f, "backend {backend} went away while we waited (last state {last})")
            }
            XenbusError::NoStore => f.write_str("no XenStore"),
        }
    }
}

/// One frontend device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `vif`, `vbd`, ...
    pub kind: String,
    pub id: String,
    /// `device/<kind>/<id>`, relative to the domain's home.
    pub frontend: String,
    /// The backend's absolute path.
    pub backend: String,
    pub backend_id: DomId,
}

fn absent_is_empty(r: Result<Vec<String>, Error>) -> Result<Vec<String>, Error> {
    match r {
        Err(Error::Xs(XsErrno::ENOENT)) => Ok(Vec::new()),
        other => other,
    }
}

/// Entries under `device/` that are not frontends: libxl keeps the
/// suspend event channel at `device/suspend/event-channel`.
const NOT_DEVICES: &[&str] = &["suspend"];

/// Every frontend under `device/`. A device missing its `backend` or
/// `backend-id` is returned as an error in its slot, so one broken entry
/// does not hide the others.
pub fn enumerate<T: Transport>(
    bus: &mut Bus<T>,
) -> Result<Vec<Result<DeviceInfo, XenbusError>>, XenbusError> {
    let mut out = Vec::new();
    for kind in absent_is_empty(bus.xs.directory("device"))? {
        if NOT_DEVICES.contains(&kind.as_str()) {
            continue;
        }
        for id in absent_is_empty(bus.xs.directory(&format!("device/{kind}")))? {
            out.push(describe(bus, &kind, &id));
        }
    }
    Ok(out)
}

/// Reads one frontend's backend details.
pub fn describe<T: Transport>(
    bus: &mut Bus<T>,
    kind: &str,
    id: &str,
) -> Result<DeviceInfo, XenbusError> {
    let frontend = format!("device/{kind}/{id}");
    let backend_path = format!("{frontend}/backend");
    let backend = match bus.xs.read_opt(&backend_path)? {
        Some(v) => {
            String::from_utf8(v).map_err(|_| XenbusError::Missing { path: backend_path.clone() })?
        }
        None => return Err(XenbusError::Missing { path: backend_path }),
    };
    let id_path = format!("{frontend}/backend-id");
    let backend_id = match bus.xs.read_u64(&id_path) {
        Ok(n) if n < 0x7FF0 => DomId(n as u16),
        Ok(_) | Err(Error::NotANumber) | Err(Error::Xs(XsErrno::ENOENT)) => {
            return Err(XenbusError::Missing { path: id_path })
        }
        Err(e) => return Err(e.into()),
    };
    Ok(DeviceInfo { kind: kind.into(), id: id.into(), frontend, backend, backend_id })
}

/// Publishes the frontend's state, in a transaction that first checks the
/// device is still there, with the same backend (its `backend` and
/// `backend-id` nodes): a write to a device the toolstack removed
/// meanwhile would create a stray directory under `device/` instead, or
/// speak to a backend that never heard of us ([`XenbusError::Vanished`]).
pub fn set_state<T: Transport>(
    bus: &mut Bus<T>,
    dev: &DeviceInfo,
    state: XenbusState,
) -> Result<(), XenbusError> {
    publish(bus, dev, &[], state)
}

/// Writes the frontend's keys (`(name, value)` under its directory) and
/// then its state, all in one transaction that first checks the device is
/// still there with the same backend: the backend sees all of them or
/// none.
pub fn publish<T: Transport>(
    bus: &mut Bus<T>,
    dev: &DeviceInfo,
    keys: &[(String, String)],
    state: XenbusState,
) -> Result<(), XenbusError> {
    let fe = &dev.frontend;
    let backend_path = format!("{fe}/backend");
    let state_path = format!("{fe}/state");
    let value = format!("{}", state as u8);
    let id_path = format!("{fe}/backend-id");
    let backend_id = format!("{}", dev.backend_id.0);
    let same = |v: Option<Vec<u8>>, want: &str| {
        v.is_some_and(|v| {
            core::str::from_utf8(&v).is_ok_and(|t| t.trim_end_matches('\0').trim() == want)
        })
    };
    let there = bus.xs.transaction(|tx| {
        // The same device: its backend and backend domain as we read them
        // (a new device under the same id may have another).
        if !same(tx.read_opt(&backend_path)?, &dev.backend)
            || !same(tx.read_opt(&id_path)?, &backend_id)
        {
            return Ok(false);
        }
        for (k, v) in keys {
            tx.write(&format!("{fe}/{k}"), v.as_bytes())?;
        }
        tx.write(&state_path, value.as_bytes())?;
        Ok(true)
    })?;
    if there {
        Ok(())
    } else {
        Err(XenbusError::Vanished { frontend: fe.clone() })
    }
}

/// The frontend's own `state` node as the store holds it now: `Ok(None)`
/// if it is absent, `Err(value)` if it is not a state.
fn read_state_node<S: Store>(
    xs: &mut S,
    path: &str,
) -> Result<Result<Option<XenbusState>, Vec<u8>>, Error> {
    match xs.read_opt(path) {
        Ok(None) | Err(Error::Xs(XsErrno::EACCES)) => Ok(Ok(None)),
        Ok(Some(v)) => Ok(XenbusState::parse(&v).map(Some).ok_or(v)),
        Err(e) => Err(e),
    }
}

/// Publishes the frontend's state `to` only if, read in the same
/// transaction, the frontend's state and the backend's state satisfy
/// `guard(frontend, backend)` (`None`: no such node; a value that is not
/// a state never satisfies it). Returns whether it wrote.
///
/// The toolstack may remove a device and create a new one under the same
/// id at any moment; the new one starts with `state` = Initialising. A
/// write based on an earlier read could land on the new device (a Closed
/// meant for the old backend would close the new one before it ever
/// connected); in a transaction, xenstored refuses the write if either
/// node changed after the read (`EAGAIN`: read again, decide again).
pub fn switch_state<T: Transport>(
    bus: &mut Bus<T>,
    dev: &DeviceInfo,
    to: XenbusState,
    // `dyn`: one copy of the transaction for every guard (issue 17's size).
    guard: &dyn Fn(Option<XenbusState>, Option<XenbusState>) -> bool,
) -> Result<bool, XenbusError> {
    let fe_path = format!("{}/state", dev.frontend);
    let be_path = format!("{}/state", dev.backend);
    let value = format!("{}", to as u8);
    Ok(bus.xs.transaction(|tx| {
        let (Ok(fe), Ok(be)) = (read_state_node(tx, &fe_path)?, read_state_node(tx, &be_path)?)
        else {
            return Ok(false);
        };
        if !guard(fe, be) {
            return Ok(false);
        }
        tx.write(&fe_path, value.as_bytes())?;
        Ok(true)
    })?)
}

/// Publishes a closing state (`Closing`, `Closed`) unless the frontend's
/// node was reset to Initialising or removed meanwhile, i.e. now belongs to
/// a new device under the same id (what Linux calls a vanished device).
/// Returns whether it wrote.
pub fn close_state<T: Transport>(
    bus: &mut Bus<T>,
    dev: &DeviceInfo,
    to: XenbusState,
) -> Result<bool, XenbusError> {
    switch_state(bus, dev, to, &|fe, _| matches!(fe, Some(s) if s != XenbusState::Initialising))
}

/// The backend's state, `None` if it has not written one. A backend
/// directory that does not exist yet reads as `EACCES` (xenstored checks
/// the nearest existing ancestor, which belongs to the backend domain), so
/// that is "no state" too.
pub fn backend_state<T: Transport>(
    bus: &mut Bus<T>,
    dev: &DeviceInfo,
) -> Result<Option<XenbusState>, XenbusError> {
    let path = format!("{}/state", dev.backend);
    match bus.xs.read_opt(&path) {
        Ok(None) | Err(Error::Xs(XsErrno::EACCES)) => Ok(None),
        Ok(Some(v)) => {
            XenbusState::parse(&v).map(Some).ok_or(XenbusError::BadState { path, value: v })
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits (watching, not polling) until the backend's state satisfies
/// `wanted`, for at most `timeout`.
pub fn wait_for_backend<T: Transport>(
    bus: &mut Bus<T>,
    dev: &DeviceInfo,
    wanted: impl Fn(XenbusState) -> bool,
    timeout: Duration,
) -> Result<XenbusState, XenbusError> {
    wait_for_backend_dyn(bus, dev, &wanted, timeout)
}

/// [`wait_for_backend`]'s body, with the predicate as a `&dyn Fn`: one
/// copy of the loop, not one per caller's closure (eleven callers in the
/// image, ~800 bytes each; issue 17's size goal).
#[inline(never)]
fn wait_for_backend_dyn<T: Transport>(
    bus: &mut Bus<T>,
    dev: &DeviceInfo,
    wanted: &dyn Fn(XenbusState) -> bool,
    timeout: Duration,
) -> Result<XenbusState, XenbusError> {
    let token = format!("backend-state:{}", dev.frontend);
    let path = format!("{}/state", dev.backend);
    let start = bus.now();
    let deadline = bus.deadline(timeout);
    bus.watch(&path, &token)?;
    let mut seen: Option<XenbusState> = None;
    let result = loop {
        let state = match backend_state(bus, dev) {
            Ok(s) => s,
            Err(e) => break Err(e),
        };
        if let Some(s) = state.filter(|&s| wanted(s)) {
            break Ok(s);
        }
        match (seen, state) {
            // It was there and is gone: waiting longer cannot help.
            (Some(last), None) => {
                break Err(XenbusError::BackendGone { backend: dev.backend.clone(), last })
            }
            (_, Some(s)) => seen = Some(s),
            (None, None) => {
                // Not there yet, or never again: is the device itself
                // still there, with this backend?
                match bus.xs.read_opt(&format!("{}/backend", dev.frontend)) {
                    Ok(Some(b))
                        if b.strip_suffix(b"\0").unwrap_or(&b) == dev.backend.as_bytes() => {}
                    Ok(_) => break Err(XenbusError::Vanished { frontend: dev.frontend.clone() }),
                    Err(e) => break Err(e.into()),
                }
            }
        }
        match bus.next_event_for(&token, Some(deadline)) {
            Ok(_) => {}
            Err(Error::TimedOut) => {
                let waited = Duration::from_nanos(bus.now().0.saturating_sub(start.0));
                break Err(XenbusError::BackendTimeout {
                    backend: dev.backend.clone(),
                    last: state,
                    timeout,
                    waited,
                });
            }
            Err(e) => break Err(e.into()),
        }
    };
    let _ = bus.unwatch(&path, &token);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenstore_client::fake::Harness;
    use xenstore_client::{Access, Perm};

    /// Writes as dom0 (the toolstack or a backend) a node the guest may read.
    fn dom0_put(h: &Harness, path: &str, value: &[u8]) {
        let mut fake = h.fake();
        let guest = fake.guest();
        fake.write_as(DomId(0), path, value).unwrap();
        let perms = [Perm::new(DomId(0), Access::None), Perm::new(guest, Access::Read)];
        fake.set_perms_as(DomId(0), path, &perms).unwrap();
    }

    /// Writes a node in the guest's home that the guest owns.
    fn guest_put(h: &Harness, rel: &str, value: &[u8]) {
        let mut fake = h.fake();
        let (guest, path) = (fake.guest(), fake.abs(rel));
        fake.write_as(DomId(0), &path, value).unwrap();
        fake.set_perms_as(DomId(0), &path, &[Perm::new(guest, Access::None)]).unwrap();
    }

    fn add_device(h: &Harness, kind: &str, id: &str, backend_id: u16) -> String {
        let guest = h.fake().guest();
        let backend = format!("/local/domain/{backend_id}/backend/{kind}/{}/{id}", guest.0);
        guest_put(h, &format!("device/{kind}/{id}/backend"), backend.as_bytes());
        guest_put(h, &format!("device/{kind}/{id}/backend-id"), backend_id.to_string().as_bytes());
        backend
    }

    #[test]
    fn states_parse() {
        assert_eq!(XenbusState::parse(b"4"), Some(XenbusState::Connected));
        assert_eq!(XenbusState::parse(b"2\0"), Some(XenbusState::InitWait));
        assert_eq!(XenbusState::parse(b"9"), None);
        assert_eq!(XenbusState::parse(b"x"), None);
    }

    #[test]
    fn enumerates_devices_and_reports_broken_ones() {
        let h = Harness::new(DomId(7));
        let b = add_device(&h, "vif", "0", 0);
        add_device(&h, "vbd", "51712", 0);
        guest_put(&h, "device/suspend/event-channel", b"");
        guest_put(&h, "device/vbd/51728/backend-id", b"0");
        let mut bus = Bus::new(h.client());
        let mut devs = enumerate(&mut bus).unwrap();
        devs.sort_by_key(|d| format!("{d:?}"));
        let ok: Vec<_> = devs.iter().filter_map(|d| d.as_ref().ok()).collect();
        assert_eq!(ok.len(), 2);
        assert_eq!(devs.len(), 3, "device/suspend is not a device: {devs:?}");
        assert!(ok.iter().any(|d| d.kind == "vif" && d.backend == b && d.backend_id == DomId(0)));
        assert!(devs.iter().any(
            |d| matches!(d, Err(XenbusError::Missing { path }) if path.ends_with("51728/backend"))
        ));
    }

    #[test]
    fn no_devices_is_an_empty_list() {
        let h = Harness::new(DomId(3));
        let mut bus = Bus::new(h.client());
        assert!(enumerate(&mut bus).unwrap().is_empty());
    }

    #[test]
    fn waits_for_the_backend_then_times_out_clearly() {
        let h = Harness::new(DomId(7));
        let backend = add_device(&h, "vif", "0", 0);
        let mut bus = Bus::new(h.client());
        let dev = describe(&mut bus, "vif", "0").unwrap();
        set_state(&mut bus, &dev, XenbusState::Initialising).unwrap();

        dom0_put(&h, &format!("{backend}/state"), b"2");
        let s = wait_for_backend(
            &mut bus,
            &dev,
            |s| s >= XenbusState::InitWait,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(s, XenbusState::InitWait);

        let err = wait_for_backend(
            &mut bus,
            &dev,
            |s| s == XenbusState::Connected,
            Duration::from_millis(300),
        )
        .unwrap_err();
        match &err {
            XenbusError::BackendTimeout {
                last: Some(XenbusState::InitWait),
                timeout,
                waited,
                ..
            } => {
                assert_eq!(*timeout, Duration::from_millis(300));
                assert!(*waited >= Duration::from_millis(300))
            }
            other => panic!("{other:?}"),
        }
        // The configured limit, then the measured wait.
        assert!(err.to_string().contains("did not answer within 300 ms (waited "), "{err}");
        assert!(h.fake().watches().is_empty(), "the watch is removed");
    }

    #[test]
    fn a_backend_directory_we_cannot_see_times_out_clearly() {
        let h = Harness::new(DomId(7));
        add_device(&h, "vfake", "0", 0);
        // The backend domain's tree exists but is not readable by the guest.
        {
            let mut fake = h.fake();
            fake.write_as(DomId(0), "/local/domain/0/backend/other", b"x").unwrap();
            fake.set_perms_as(
                DomId(0),
                "/local/domain/0/backend",
                &[Perm::new(DomId(0), Access::None)],
            )
            .unwrap();
        }
        let mut bus = Bus::new(h.client());
        let dev = describe(&mut bus, "vfake", "0").unwrap();
        assert_eq!(backend_state(&mut bus, &dev), Ok(None));
        let err = wait_for_backend(
            &mut bus,
            &dev,
            |s| s >= XenbusState::InitWait,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(err, XenbusError::BackendTimeout { last: None, .. }), "{err:?}");
        assert!(err.to_string().contains("no state at all"), "{err}");
    }

    #[test]
    fn a_garbage_state_is_an_error() {
        let h = Harness::new(DomId(7));
        let backend = add_device(&h, "vbd", "1", 0);
        dom0_put(&h, &format!("{backend}/state"), b"banana");
        let mut bus = Bus::new(h.client());
        let dev = describe(&mut bus, "vbd", "1").unwrap();
        assert!(matches!(backend_state(&mut bus, &dev), Err(XenbusError::BadState { .. })));
    }
}
