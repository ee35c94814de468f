//! Where a crashed guest stopped, named from dom0's dump of its vCPUs.
//!
//! The lab keeps a crashed domain (`on_crash = "preserve"`) until dom0's
//! `run_guest_wait` has dumped its vCPUs with `xenctx` (`[xl ctx 1] ...`
//! lines) and destroyed it. Most crashes are the guest's own report
//! followed by `SCHEDOP_shutdown`, but some leave no report: a PV guest
//! whose kernel stack overflows gets no page fault at all, because Xen
//! cannot push the fault's frame onto that stack and ends the domain
//! itself. The dump still holds `rip` and `rsp`; this module names the
//! function at `rip` (`addr2line` on the unstripped image) and says when
//! `rsp` lies in the boot stack's guard page (`__boot_stack_bottom`,
//! `platform/link.ld`).

use std::path::Path;
use std::process::Command;

/// One vCPU's registers in a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuSite {
    pub vcpu: u32,
    pub rip: u64,
    pub rsp: u64,
    /// The first return address of xenctx's frame-pointer trace: who
    /// called the function at `rip` (for a guest's own crash report, the
    /// code that asked Xen to end it, where `rip` is the hypercall page).
    pub caller: Option<u64>,
}

/// The vCPUs of the first sample (`[xl ctx 1]`) in a guest's toolstack
/// lines, in the order xenctx printed them.
pub fn parse(xl_output: &[String]) -> Vec<VcpuSite> {
    let mut sites = Vec::new();
    let mut vcpu: Option<u32> = None;
    let mut rip: Option<u64> = None;
    for line in xl_output {
        let Some(rest) = line.strip_prefix("[xl ctx 1] ") else {
            continue;
        };
        let rest = rest.trim();
        if let Some(n) = rest.strip_prefix("vcpu").and_then(|r| r.strip_suffix(':')) {
            vcpu = n.parse().ok();
            rip = None;
        } else if let Some(v) = rest.strip_prefix("rip: ") {
            rip = hex(v);
        } else if let Some(v) = rest.strip_prefix("rsp: ") {
            if let (Some(vcpu), Some(rip), Some(rsp)) = (vcpu, rip, hex(v)) {
                sites.push(VcpuSite { vcpu, rip, rsp, caller: None });
            }
        } else if let Some((_frame, ret)) = rest.split_once(":   [<") {
            // `FRAME:   [<RETURN>]` (the `[<RIP>] <--` line has no frame).
            if let Some(site) = sites.last_mut().filter(|s| Some(s.vcpu) == vcpu) {
                if site.caller.is_none() {
                    site.caller = hex(ret.trim_end_matches(">]"));
                }
            }
        }
    }
    sites
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.split_whitespace().next()?, 16).ok()
}

/// Lines that say where each vCPU stopped: `[crash site] vCPU N: rip
/// ADDR in FUNCTION (FILE:LINE), rsp ADDR, called from ADDR in FUNCTION`,
/// and for an `rsp` in the boot stack's guard page, that this was a stack
/// overflow. `symbol` names an address; `guard` is the guard page's first
/// byte.
pub fn describe(
    sites: &[VcpuSite],
    symbol: &dyn Fn(u64) -> Option<String>,
    guard: Option<u64>,
) -> Vec<String> {
    sites
        .iter()
        .map(|s| {
            let at = symbol(s.rip).map_or_else(String::new, |f| format!(" in {f}"));
            let mut line =
                format!("[crash site] vCPU {}: rip {:#x}{at}, rsp {:#x}", s.vcpu, s.rip, s.rsp);
            if let Some(g) = guard.filter(|g| (*g..g + 4096).contains(&s.rsp)) {
                line.push_str(&format!(
                    " (in the boot stack's guard page {g:#x}..{:#x}: a stack overflow)",
                    g + 4096
                ));
            }
            if let Some(c) = s.caller {
                let by = symbol(c).map_or_else(String::new, |f| format!(" in {f}"));
                line.push_str(&format!(", called from {c:#x}{by}"));
            }
            line
        })
        .collect()
}

/// [`describe`] with `addr2line` and `nm` on `elf` (without them, or
/// without symbols, the lines still give the addresses).
pub fn describe_with_image(sites: &[VcpuSite], elf: &Path) -> Vec<String> {
    let guard = boot_stack_guard(elf);
    describe(sites, &|rip| function_at(elf, rip), guard)
}

/// The function at `addr`: with `-i`, addr2line lists the inlined
/// functions innermost first; the last is the function the code is in.
fn function_at(elf: &Path, addr: u64) -> Option<String> {
    let out = Command::new("addr2line")
        .args(["-f", "-C", "-i", "-e"])
        .arg(elf)
        .arg(format!("{addr:#x}"))
        .output()
        .ok()?;
    name_from_addr2line(&String::from_utf8_lossy(&out.stdout))
}

fn name_from_addr2line(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let pairs: Vec<(&str, &str)> =
        lines.chunks(2).filter_map(|c| Some((c[0], *c.get(1)?))).collect();
    let (function, place) = *pairs.last()?;
    if function.is_empty() || function == "??" {
        return None;
    }
    let mut s = function.to_string();
    let place = Some(place).filter(|p| !p.starts_with("??"));
    let inlined = (pairs.len() > 1).then(|| pairs[0].0);
    match (place, inlined) {
        (Some(p), Some(i)) => s.push_str(&format!(" ({p}, inlined {i})")),
        (Some(p), None) => s.push_str(&format!(" ({p})")),
        (None, Some(i)) => s.push_str(&format!(" (inlined {i})")),
        (None, None) => {}
    }
    Some(s)
}

fn boot_stack_guard(elf: &Path) -> Option<u64> {
    let out = Command::new("nm").arg(elf).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut w = l.split_whitespace();
        let addr = w.next()?;
        let _kind = w.next()?;
        (w.next()? == "__boot_stack_bottom").then(|| u64::from_str_radix(addr, 16).ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump() -> Vec<String> {
        [
            "[xl check] fault-stack crashed: its vCPUs as Xen left them, before xl destroy",
            "[xl ctx 1] vcpu0:",
            "[xl ctx 1] rip: 000000000044a1b2",
            "[xl ctx 1] flags: 00000246 i z p",
            "[xl ctx 1] rsp: 00000000004c0ff8",
            "[xl ctx 1] rax: 0000000000000000\trcx: 00000000004b21aa",
            "[xl ctx 1] Call Trace:",
            "[xl ctx 1]                     [<000000000044a1b2>] <--",
            "[xl ctx 1] 00000000004c3b38:   [<0000000000444b56>]",
            "[xl ctx 1] 00000000004c3e18:   [<0000000000484323>]",
            "[xl ctx 1] vcpu1:",
            "[xl ctx 1] rip: 00000000004b21aa",
            "[xl ctx 1] rsp: 0000000000a13e00",
            "[xl ctx 2] vcpu0:",
            "[xl ctx 2] rip: 0000000000000001",
            "[xl ctx 2] rsp: 0000000000000002",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn the_function_is_the_outermost_of_the_inlined() {
        let text = "core::hint::black_box\n/rustc/x/library/core/src/hint.rs:491\n\
                    platform::x86::recurse\n/w/platform/src/x86.rs:113\n";
        assert_eq!(
            name_from_addr2line(text).as_deref(),
            Some("platform::x86::recurse (/w/platform/src/x86.rs:113, inlined core::hint::black_box)")
        );
        assert_eq!(
            name_from_addr2line("kernel::start\n/w/kernel/src/lib.rs:7\n").as_deref(),
            Some("kernel::start (/w/kernel/src/lib.rs:7)")
        );
        assert_eq!(name_from_addr2line("??\n??:0\n"), None);
        assert_eq!(name_from_addr2line(""), None);
    }

    #[test]
    fn the_first_sample_of_each_vcpu() {
        assert_eq!(
            parse(&dump()),
            [
                VcpuSite { vcpu: 0, rip: 0x44a1b2, rsp: 0x4c0ff8, caller: Some(0x444b56) },
                VcpuSite { vcpu: 1, rip: 0x4b21aa, rsp: 0xa13e00, caller: None }
            ]
        );
        assert_eq!(parse(&["[xl ctx 1] rip: zz".to_string()]), []);
    }

    #[test]
    fn an_rsp_in_the_guard_page_is_a_stack_overflow() {
        let name = |rip: u64| (rip == 0x44a1b2).then(|| "platform::x86::recurse".to_string());
        let lines = describe(&parse(&dump()), &name, Some(0x4c0000));
        assert_eq!(
            lines,
            [
                "[crash site] vCPU 0: rip 0x44a1b2 in platform::x86::recurse, rsp 0x4c0ff8 (in \
                 the boot stack's guard page 0x4c0000..0x4c1000: a stack overflow), called from \
                 0x444b56",
                "[crash site] vCPU 1: rip 0x4b21aa, rsp 0xa13e00"
            ]
        );
        // One byte above the page: the stack itself, no overflow.
        let above = [VcpuSite { vcpu: 0, rip: 1, rsp: 0x4c1000, caller: None }];
        assert_eq!(
            describe(&above, &|_| None, Some(0x4c0000)),
            ["[crash site] vCPU 0: rip 0x1, rsp 0x4c1000"]
        );
    }
}
