//! `xl vcpu-set`: the toolstack says which vCPUs the guest should run in
//! XenStore, one `cpu/N/availability` node per vCPU (`online` or
//! `offline`; libxl writes them all when it creates the domain, and again
//! on `xl vcpu-set`), and waits for the guest to act, as Linux's
//! drivers/xen/cpu_hotplug.c does. This guest watches `cpu`, and on every
//! event brings up the vCPUs marked online and takes down those marked
//! offline ([`super::bring_up`], [`super::offline`]).

/// The watch token for `cpu/` (and the watched path).
pub const CPU_TOKEN: &str = "cpu";

/// What `cpu/N/availability` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Online,
    Offline,
}

/// Parses an availability value (`online`/`offline`, a trailing NUL or
/// newline tolerated); anything else is `None` (reported, not obeyed).
pub fn parse(v: &[u8]) -> Option<Want> {
    let v = v.strip_suffix(b"\0").unwrap_or(v);
    let v = v.strip_suffix(b"\n").unwrap_or(v);
    match v {
        b"online" => Some(Want::Online),
        b"offline" => Some(Want::Offline),
        _ => None,
    }
}

/// The path of vCPU `n`'s availability node, relative to the domain's home.
pub fn path(n: u32) -> alloc::string::String {
    alloc::format!("cpu/{n}/availability")
}

#[cfg(target_os = "none")]
mod guest {
    use super::{parse, path, Want, CPU_TOKEN};
    use crate::kprintln;
    use crate::xenbus::GuestBus;
    use xenstore_client::{Error as XsError, Store};

    fn want(bus: &mut GuestBus, n: u32) -> Result<Option<Want>, XsError> {
        // No node: the toolstack says nothing about this vCPU; keep it up
        // (vCPU 0) or leave it as it is.
        Ok(bus.xs.read_opt(&path(n))?.and_then(|v| {
            let w = parse(&v);
            if w.is_none() {
                log::warn!("smp: {} = {:?}: neither online nor offline; ignored", path(n), v);
            }
            w
        }))
    }

    /// Starts SMP with the vCPUs the toolstack marks online (all of them
    /// where it says nothing), then watches `cpu/`. Returns how many are
    /// online.
    pub fn start(bus: &mut GuestBus) -> Result<u32, super::super::Error> {
        let (count, _) = platform::smp::count();
        let mut wanted = [true; platform::smp::MAX_VCPUS];
        for (n, w) in wanted.iter_mut().enumerate().take(count as usize).skip(1) {
            *w = !matches!(want(bus, n as u32), Ok(Some(Want::Offline)));
        }
        let online = super::super::start_with(|n| wanted[n as usize])?;
        kprintln!("smp: {online} of {count} vCPUs online (cpu/N/availability)");
        if let Err(e) = bus.watch(CPU_TOKEN, CPU_TOKEN) {
            log::warn!("smp: cannot watch cpu/: {e:?}; xl vcpu-set will not be followed");
        }
        Ok(online)
    }

    /// Brings every vCPU to what its availability node says.
    pub fn follow(bus: &mut GuestBus) {
        for n in 1..super::super::count() {
            let w = match want(bus, n) {
                Ok(Some(w)) => w,
                Ok(None) => continue,
                Err(e) => {
                    log::warn!("smp: reading {}: {e:?}", path(n));
                    continue;
                }
            };
            let online = super::super::is_online(n);
            let t0 = platform::now_ns();
            let (r, what) = match (w, online) {
                (Want::Online, false) => (super::super::bring_up(n), "online"),
                (Want::Offline, true) => (super::super::offline(n), "offline"),
                _ => continue,
            };
            match r {
                Ok(()) => kprintln!(
                    "smp: vCPU {n} {what} (xl vcpu-set) in {} us; online mask {:#x}",
                    (platform::now_ns() - t0) / 1000,
                    super::super::online_mask()
                ),
                Err(e) => kprintln!("smp: vCPU {n} could not go {what}: {e}"),
            }
        }
    }
}

#[cfg(target_os = "none")]
pub use guest::{follow, start};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_values() {
        assert_eq!(parse(b"online"), Some(Want::Online));
        assert_eq!(parse(b"offline\0"), Some(Want::Offline));
        assert_eq!(parse(b"online\n"), Some(Want::Online));
        assert_eq!(parse(b"Online"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(path(3), "cpu/3/availability");
    }
}
