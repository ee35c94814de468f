//! `struct start_info` (`xen/include/public/xen.h`): what the domain builder
//! tells a PV guest at entry. Xen writes it before the guest runs and never
//! again, so it is read as ordinary memory.

use super::assert_layout;
use crate::types::{EvtchnPort, MachineAddr, Mfn};

/// `MAX_GUEST_CMDLINE`.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// `SIF_*` flags.
pub mod sif {
    pub const PRIVILEGED: u32 = 1 << 0;
    pub const INITDOMAIN: u32 = 1 << 1;
    pub const MULTIBOOT_MOD: u32 = 1 << 2;
    pub const MOD_START_PFN: u32 = 1 << 3;
    pub const VIRT_P2M_4TOOLS: u32 = 1 << 4;
}

/// The console part of `start_info`: a union of the domU view (ring page and
/// event channel) and the dom0 view (offset of a `dom0_vga_console_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConsoleUnion {
    word0: u64,
    word1: u32,
    _pad: u32,
}

impl ConsoleUnion {
    /// A domU's console: ring frame and event channel (for a PVH guest,
    /// which builds a `start_info` of its own from HVM parameters).
    pub const fn new_domu(mfn: Mfn, port: EvtchnPort) -> Self {
        ConsoleUnion { word0: mfn.0, word1: port.0, _pad: 0 }
    }

    /// The domU view: the console ring's machine frame and its event channel.
    pub fn domu(&self) -> (Mfn, EvtchnPort) {
        (Mfn(self.word0), EvtchnPort(self.word1))
    }

    /// The dom0 view: offset and size of the VGA console info.
    pub fn dom0(&self) -> (u32, u32) {
        (self.word0 as u32, (self.word0 >> 32) as u32)
    }
}

/// `struct start_info`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct StartInfo {
    /// `"xen-<version>-<platform>"`, NUL-terminated.
    pub magic: [u8; 32],
    /// Total pages allocated to this domain.
    pub nr_pages: u64,
    /// Machine address of the shared info page.
    pub shared_info: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Machine frame of the XenStore ring page.
    pub store_mfn: u64,
    /// Event channel of the XenStore ring.
    pub store_evtchn: u32,
    pub console: ConsoleUnion,
    /// Virtual address of the top-level page table.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the pfn→mfn list.
    pub mfn_list: u64,
    /// Virtual address (or pfn, with `SIF_MOD_START_PFN`) of a loaded module.
    pub mod_start: u64,
    /// Size in bytes of the module.
    pub mod_len: u64,
    /// The guest command line (xl `extra=`), NUL-terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First pfn of the initial P2M table, if Xen placed it apart.
    pub first_p2m_pfn: u64,
    /// Number of frames of that table.
    pub nr_p2m_frames: u64,
}

assert_layout!(
    StartInfo,
    size = 1168,
    magic = 0,
    nr_pages = 32,
    shared_info = 40,
    flags = 48,
    store_mfn = 56,
    store_evtchn = 64,
    console = 72,
    pt_base = 88,
    nr_pt_frames = 96,
    mfn_list = 104,
    mod_start = 112,
    mod_len = 120,
    cmd_line = 128,
    first_p2m_pfn = 1152,
    nr_p2m_frames = 1160,
);

impl StartInfo {
    /// The magic string up to its NUL.
    pub fn magic_str(&self) -> &str {
        c_str(&self.magic)
    }

    /// The command line up to its NUL (invalid UTF-8 is cut at the first bad byte).
    pub fn cmdline(&self) -> &str {
        c_str(&self.cmd_line)
    }

    /// Machine address of the shared info page.
    pub fn shared_info_addr(&self) -> MachineAddr {
        MachineAddr(self.shared_info)
    }

    /// Whether this is the initial (control) domain.
    pub fn is_initial_domain(&self) -> bool {
        self.flags & sif::INITDOMAIN != 0
    }

    /// The XenStore ring page and its event channel.
    pub fn store(&self) -> (Mfn, EvtchnPort) {
        (Mfn(self.store_mfn), EvtchnPort(self.store_evtchn))
    }
}

/// The bytes of `buf` up to its first NUL, as UTF-8 (cut at the first invalid byte).
pub fn c_str(buf: &[u8]) -> &str {
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match core::str::from_utf8(&buf[..len]) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_str_stops_at_nul_and_bad_utf8() {
        assert_eq!(c_str(b"xen-3.0-x86_64\0junk"), "xen-3.0-x86_64");
        assert_eq!(c_str(b"no-nul"), "no-nul");
        assert_eq!(c_str(b"ok\xffbad\0"), "ok");
    }

    #[test]
    fn console_union_views() {
        let c = ConsoleUnion { word0: 0x0000_0010_0000_0020, word1: 7, _pad: 0 };
        assert_eq!(c.domu(), (Mfn(0x0000_0010_0000_0020), EvtchnPort(7)));
        assert_eq!(c.dom0(), (0x20, 0x10));
    }
}
