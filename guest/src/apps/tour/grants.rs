//! Step 5: grant tables, the guest's DMA: grant a page, let a peer map it
//! (here: ourselves), see revoking refused while it is mapped
//! (docs/grants.md).

use super::{evidence, say, Shown, StepResult};
use alloc::format;
use core::sync::atomic::Ordering::Relaxed;
use hypercall::abi::grant_table::gtf;
use kernel::grants;
use platform::grants::Mapping;
use platform::pv::vmap;
use platform::shared_pages::SharedPage;

const STEP: &str = "grants";

pub fn run() -> StepResult {
    say!("A native driver hands a device a physical address for DMA. A PV frontend");
    say!("cannot: its backend is another domain. It writes a grant entry (which domain");
    say!("may map which of its frames) into a table Xen shares with it, and passes the");
    say!("entry's number, the grant reference, to the backend through XenStore.");
    let Some(me) = grants::self_domid() else {
        return Ok(Shown::Skipped("domain id unknown (no XenStore)"));
    };
    if platform::is_pvh() {
        return Ok(Shown::Skipped(
            "PVH: mapping our own grant would move the page in Xen's physmap",
        ));
    }
    let st = grants::with(|t| t.stats()).ok_or("no grant table")?;
    evidence!(
        STEP,
        "grant table v1: {} frame(s) of at most {}, {} entries, {} free",
        st.frames,
        st.max_frames,
        st.capacity,
        st.free
    );
    let page = SharedPage::new();
    let frame = page.frame();
    let r = grants::with(|t| t.grant_access(me, &page, 0, false))
        .ok_or("no grant table")?
        .map_err(|e| format!("grant: {e}"))?;
    evidence!(
        STEP,
        "granted mfn {:#x} to domain {} (ourselves, standing in for a backend): grant reference {}",
        frame.0,
        me.0,
        r.0
    );
    page.words()[0].store(0x7075_6f74, Relaxed);
    let m = Mapping::new(me, r, false).map_err(|e| format!("map: {e}"))?;
    let seen = m.words()[0].load(Relaxed);
    m.words()[1].store(0xb0b, Relaxed);
    let back = page.words()[1].load(Relaxed);
    let mapped_mfn = vmap::lookup(m.va()).map(|p| p.mfn().0);
    let flags = grants::with(|t| t.entry_flags(r)).flatten().unwrap_or(0);
    evidence!(
        STEP,
        "GNTTABOP_map_grant_ref put it at va {:#x} (PTE -> mfn {:#x}); read {seen:#x} through the mapping, {back:#x} came back through the granter's page; entry flags {flags:#x} (reading {}, writing {})",
        m.va().0,
        mapped_mfn.unwrap_or(0),
        flags & gtf::READING != 0,
        flags & gtf::WRITING != 0
    );
    let refused = grants::with(|t| t.end_access(r)).ok_or("no grant table")?;
    evidence!(
        STEP,
        "revoking while the peer maps it: {}",
        match &refused {
            Ok(()) => "ACCEPTED (wrong)".into(),
            Err(e) => format!("refused ({e}): the page must not be reused yet"),
        }
    );
    m.unmap().map_err(|e| format!("unmap: {e}"))?;
    let revoked = grants::with(|t| t.end_access(r)).ok_or("no grant table")?;
    evidence!(
        STEP,
        "after the peer unmapped it: revoke {}",
        if revoked.is_ok() { "accepted; the page is ours again" } else { "REFUSED" }
    );
    say!("Revoking must be careful: Xen sets GTF_reading/GTF_writing while the frame");
    say!("is mapped, and the guest may only clear the entry with a compare-and-swap that");
    say!("sees those bits clear; until then the page stays the backend's to write.");
    if refused.is_ok() || revoked.is_err() {
        return Err("revoke did not behave as Xen's rules say".into());
    }
    Ok(Shown::Shown)
}
