//! Step 6: XenStore, the tree the toolstack, the backends and the guest
//! share: reads, writes, a directory, a watch (docs/xenstore.md).

use super::{evidence, say, Shown, StepResult};
use alloc::format;
use alloc::string::String;
use core::time::Duration;
use kernel::xenbus;
use xenstore_client::Store;

const STEP: &str = "xenstore";
const TOKEN: &str = "tour";

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

pub fn run() -> StepResult {
    let Some(id) = xenbus::identity() else {
        return Ok(Shown::Skipped("no XenStore (dom0)"));
    };
    say!("A native kernel finds devices on buses (PCI, ACPI). This guest finds them in");
    say!("XenStore, a tree of small strings served by xenstored in dom0, reached over a");
    say!("shared page (start_info.store_mfn) and an event channel. Paths without a");
    say!("leading / are relative to this domain's home, /local/domain/<domid>/.");
    let r = xenbus::with(|bus| -> Result<(), String> {
        let e = |what: &str, err: xenstore_client::Error| format!("{what}: {err:?}");
        let home = bus.xs.get_domain_path(id.domid).map_err(|x| e("get_domain_path", x))?;
        evidence!(STEP, "this domain (id {}, name {:?}) lives at {home}", id.domid.0, id.name);
        let target = bus.xs.read("memory/target").map_err(|x| e("read memory/target", x))?;
        evidence!(
            STEP,
            "read memory/target = {:?} KiB (written by the toolstack: the balloon's goal)",
            text(&target)
        );
        let devices = bus.xs.directory("device").unwrap_or_default();
        evidence!(
            STEP,
            "directory device/ = {devices:?} (one entry per device kind the toolstack gave us)"
        );
        let key = "data/tour/greeting";
        let value = format!("hello from domain {}", id.domid.0);
        bus.watch("data/tour/flag", TOKEN).map_err(|x| e("watch", x))?;
        let first = bus.next_event_for(TOKEN, Some(bus.deadline(Duration::from_secs(5))));
        evidence!(
            STEP,
            "watch data/tour/flag (token {TOKEN:?}): xenstored fires it once at once: {}",
            match &first {
                Ok(ev) => format!("event for {}", ev.path),
                Err(x) => format!("no event ({x:?})"),
            }
        );
        bus.xs.write(key, value.as_bytes()).map_err(|x| e("write", x))?;
        let back = bus.xs.read(key).map_err(|x| e("read back", x))?;
        evidence!(STEP, "wrote {home}/{key} = {value:?}; read back {:?}", text(&back));
        bus.xs.write("data/tour/flag", b"1").map_err(|x| e("write flag", x))?;
        let ev = bus.next_event_for(TOKEN, Some(bus.deadline(Duration::from_secs(5))));
        evidence!(
            STEP,
            "wrote {home}/data/tour/flag = \"1\": {}",
            match &ev {
                Ok(ev) => format!("the watch fired: event path {} token {}", ev.path, ev.token),
                Err(x) => format!("NO watch event ({x:?})"),
            }
        );
        let _ = bus.unwatch("data/tour/flag", TOKEN);
        bus.xs.rm("data/tour").map_err(|x| e("rm", x))?;
        evidence!(
            STEP,
            "keys written: {home}/{key}, {home}/data/tour/flag (removed again with rm data/tour)"
        );
        if first.is_err() || ev.is_err() {
            return Err("a watch did not fire".into());
        }
        Ok(())
    });
    match r {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(e),
        None => return Ok(Shown::Skipped("no XenStore connection")),
    }
    say!("Frontend and backend meet here: each device has a frontend directory");
    say!("(device/vif/0) and a backend one (/local/domain/0/backend/vif/<us>/0), and each");
    say!("side writes its state (1 Initialising .. 4 Connected) and watches the other's.");
    say!("Run with trace=xenstore to see every request and its answer.");
    Ok(Shown::Shown)
}
