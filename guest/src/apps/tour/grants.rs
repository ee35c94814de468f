//! Step 5: grant tables, the guest's DMA: grant a page, let a peer map it
//! (here: ourselves), see revoking refused while it is mapped
//! (docs/grants.md). Under PVH the guest cannot be its own peer (mapping
//! its own grant would move the page within its own physical map:
//! docs/pvh.md), so the peer is dom0's blkback, which maps blkfront's ring
//! page for as long as a disk is connected.

use super::{evidence, say, Shown, StepResult};
use alloc::format;
use core::sync::atomic::Ordering::Relaxed;
use hypercall::abi::grant_table::gtf;
use hypercall::abi::grant_table::GrantRef;
use kernel::{blk, grants, xenbus};
use platform::grants::Mapping;
use platform::pv::vmap;
use platform::shared_pages::SharedPage;
use pv_drivers::blkfront::Config;
use xenstore_client::Store;

const STEP: &str = "grants";

pub fn run() -> StepResult {
    say!("A native driver hands a device a physical address for DMA. A PV frontend");
    say!("cannot: its backend is another domain. It writes a grant entry (which domain");
    say!("may map which of its frames) into a table Xen shares with it, and passes the");
    say!("entry's number, the grant reference, to the backend through XenStore.");
    let Some(me) = grants::self_domid() else {
        return Ok(Shown::Skipped("domain id unknown (no XenStore)"));
    };
    let st = grants::with(|t| t.stats()).ok_or("no grant table")?;
    evidence!(
        STEP,
        "grant table v1: {} frame(s) of at most {}, {} entries, {} free",
        st.frames,
        st.max_frames,
        st.capacity,
        st.free
    );
    if platform::is_pvh() {
        return pvh();
    }
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

/// The PVH form: a real peer, dom0's blkback, maps the ring page blkfront
/// granted it; revoking is refused until the disk is closed.
fn pvh() -> StepResult {
    say!("Under PVH the entry names a guest frame, and the tour cannot play the peer:");
    say!("mapping its own grant would move the page inside its own physical map. A real");
    say!("peer is at hand when a disk is attached: blkfront grants its ring page to");
    say!("dom0, whose blkback maps it for as long as the disk is connected.");
    let Some(dev) = blk::list().into_iter().flatten().next() else {
        return Ok(Shown::Skipped(
            "PVH: no disk, so no peer to map a grant (cargo xtask run --app tour --disk 1)",
        ));
    };
    let name = blk::name(&dev);
    let (frontend, backend_id) = (dev.frontend.clone(), dev.backend_id);
    // One queue, one ring page: its reference is `ring-ref`.
    let config = Config { max_queues: 1, max_ring_order: 0, pool_pages: 16, ..Config::default() };
    let disk = blk::open(dev, config).map_err(|e| format!("{name}: {e}"))?;
    let key = format!("{frontend}/ring-ref");
    let r = xenbus::with(|bus| bus.xs.read_string(&key).ok())
        .flatten()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map(GrantRef)
        .ok_or_else(|| format!("no {key}"))?;
    let flags = grants::with(|t| t.entry_flags(r)).flatten().unwrap_or(0);
    evidence!(
        STEP,
        "blkfront granted its {name} ring page to domain {} (dom0's blkback) as grant reference {} ({key}); blkback mapped it: entry flags {flags:#x} (reading {}, writing {})",
        backend_id.0,
        r.0,
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
    let report = xenbus::with(|bus| disk.close(bus)).ok_or("no XenStore")?;
    let after = grants::with(|t| t.entry_flags(r)).flatten().unwrap_or(u16::MAX);
    let revoked = after == 0 && report.refused == 0;
    evidence!(
        STEP,
        "after the peer unmapped it: revoke {} (the disk closed, blkback let go of the ring); blkfront revoked {} of the {} grants it made, entry flags now {after:#x}",
        if revoked { "accepted; the page is ours again" } else { "REFUSED" },
        report.revoked_in_all,
        report.made
    );
    say!("Revoking must be careful: Xen sets GTF_reading/GTF_writing while the frame");
    say!("is mapped, and the guest may only clear the entry with a compare-and-swap that");
    say!("sees those bits clear; until then the page stays the backend's to write.");
    if refused.is_ok() || !revoked || flags & gtf::WRITING == 0 {
        return Err("revoke did not behave as Xen's rules say".into());
    }
    Ok(Shown::Shown)
}
