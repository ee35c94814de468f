//! This domain's grant table, set up at boot: one table behind a lock,
//! this domain's id (which mapping our own grants needs), and the calls
//! drivers use. The logic is the `grant-tables` crate; the frames are
//! mapped by `platform::grants`.

use grant_tables::{GrantError, GrantTable, Stats, Version};
use hypercall::ops::grant_table as gnttab;
use hypercall::DomId;
use platform::grants::XenGrants;
use spin::{Mutex, Once};

static TABLE: Mutex<Option<GrantTable<XenGrants>>> = Mutex::new(None);
static DOMID: Once<DomId> = Once::new();

fn setup() -> Result<Stats, GrantError> {
    let (_, max) =
        gnttab::query_size().map_err(|error| GrantError::Hypervisor { op: "query_size", error })?;
    let table = GrantTable::new(XenGrants::new(max)?, Version::V1)?;
    let stats = table.stats();
    *TABLE.lock() = Some(table);
    Ok(stats)
}

/// Boot: sets the table up and learns our domain id; logs the outcome.
/// A failure leaves grants unavailable ([`with`] returns `None`), which
/// only drivers that share pages need.
pub fn init() {
    match gnttab::self_domid() {
        Ok(d) => {
            DOMID.call_once(|| d);
        }
        Err(e) => log::warn!("grant tables: cannot learn our domain id: {e}"),
    }
    match setup() {
        Ok(s) => log::info!(
            "grant tables: v1, {} of at most {} frames mapped ({} entries, {} free); domid {}",
            s.frames,
            s.max_frames,
            s.capacity,
            s.free,
            self_domid().map_or(-1, |d| i32::from(d.0))
        ),
        Err(e) => log::warn!("grant tables unavailable: {e}"),
    }
}

/// This domain's id, if Xen told it.
pub fn self_domid() -> Option<DomId> {
    DOMID.get().copied()
}

/// Runs `f` on the table; `None` if it was not set up.
pub fn with<R>(f: impl FnOnce(&mut GrantTable<XenGrants>) -> R) -> Option<R> {
    TABLE.lock().as_mut().map(f)
}

/// `grant table: N in use, Q quarantined`: references granted now, and
/// grants kept out of use because a peer still maps their page. After a
/// device is let go, back to what they were before it came ("no grant left
/// behind": the hotplug boot test compares them).
pub fn summary_line() -> alloc::string::String {
    with(|t| {
        let s = t.stats();
        alloc::format!("grant table: {} in use, {} quarantined", s.in_use, s.quarantined)
    })
    .unwrap_or_else(|| "grant table: unavailable".into())
}

/// Before a suspend: unmaps the table's frames and keeps the table locked
/// until [`Suspended::resume`](platform::grants::Suspended::resume)
/// (in a restored domain Xen's table is new and empty: grants the old
/// domain made are gone with their peers, and the frontends grant again
/// as they reconnect). `None` without a table.
pub fn suspend() -> Result<Option<platform::grants::Suspended>, GrantError> {
    let guard = TABLE.lock();
    if guard.is_none() {
        return Ok(None);
    }
    platform::grants::Suspended::new(guard).map(Some)
}
