//! `app=tour` and the traces on real Xen, one QEMU boot: the tour with a
//! 1 MiB disk (so its ring step also drives blkfront), then the tour again
//! with `trace=hypercalls,xenstore,events` (with a disk too). The
//! narration must be complete (every step announced and shown, its
//! evidence printed), and each trace's summary must count exactly the
//! lines it printed of each type. In the mode `$XENPV_MODE` names: as PV
//! the evidence is the PV mechanisms' (ring 3, P2M and M2P, `mmu_update`,
//! a grant mapped by ourselves); as PVH the hardware's (ring 0, GFN = PFN,
//! a native PTE write), and the grant's peer is dom0's blkback, which maps
//! blkfront's ring page.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, expect_run, guest, guest_mode, BootReport,
    GuestResult, GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

const STEPS: [&str; 10] = [
    "virt",
    "hypercalls",
    "memory",
    "events",
    "grants",
    "xenstore",
    "rings",
    "balloon",
    "sched",
    "measure",
];

/// The tour's 1 MiB disk: the ring step reads it through blkfront, and
/// under PVH the grant step's peer is its backend.
fn disk(path: &str) -> Vec<String> {
    vec![format!("disk = ['format=raw, vdev=xvda, access=rw, backendtype=phy, script=/etc/xen/scripts/block, target={path}']")]
}

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("tour", || {
            let t = Duration::from_secs(240);
            let mut tour = guest("tour", "tour").timeout(t);
            tour.extra_config = disk("/tmp/tour.img");
            let mut traced = guest("tour-trace", "tour")
                .args(&["trace=hypercalls,xenstore,events".to_string()])
                .timeout(t);
            traced.extra_config = disk("/tmp/tour-trace.img");
            vec![
                Scenario::script(
                    "tour",
                    vec![tour],
                    "dd if=/dev/zero of=/tmp/tour.img bs=1M count=1 2>/dev/null\nrun_guest tour /etc/xen-lab/guests/tour.cfg 240\n",
                ),
                Scenario::script(
                    "tour-trace",
                    vec![traced],
                    "dd if=/dev/zero of=/tmp/tour-trace.img bs=1M count=1 2>/dev/null\nrun_guest tour-trace /etc/xen-lab/guests/tour-trace.cfg 240\n",
                ),
            ]
        })
    })
}

/// The `0x...` numbers of a line, in order.
fn hex_numbers(line: &str) -> Vec<u64> {
    line.split("0x")
        .skip(1)
        .filter_map(|w| {
            let digits: String = w.chars().take_while(char::is_ascii_hexdigit).collect();
            u64::from_str_radix(&digits, 16).ok()
        })
        .collect()
}

fn lines_with<'a>(run: &'a GuestRun, needles: &[&str]) -> Vec<&'a String> {
    run.console.iter().filter(|l| needles.iter().all(|n| l.contains(n))).collect()
}

fn assert_line(run: &GuestRun, needles: &[&str]) {
    assert!(
        !lines_with(run, needles).is_empty(),
        "no console line has all of {needles:?}\n{}",
        run.describe()
    );
}

fn assert_narration_complete(run: &GuestRun) {
    assert_result(run, &GuestResult::Poweroff);
    for (i, step) in STEPS.iter().enumerate() {
        let n = i + 1;
        assert_line(run, &[&format!("tour: == {n}/10 {step}: "), "(docs/"]);
        assert_line(run, &[&format!("tour: -- {n}/10 {step}: shown")]);
        assert!(
            run.console.iter().any(|l| l.contains(&format!("tour: [{step}] "))),
            "step {step} printed no evidence\n{}",
            run.describe()
        );
    }
    assert_console_contains(run, "tour: complete: 10 of 10 shown, 0 skipped");
}

#[test]
fn the_tour_narrates_every_step_with_its_evidence() {
    let run = expect_run(lab(), "tour");
    assert_narration_complete(run);
    if guest_mode().is_pvh() {
        assert_pvh_evidence(run);
    } else {
        assert_pv_evidence(run);
    }
    // 4: events merge while masked; the timer wakes a blocked vCPU.
    assert_line(run, &["tour: [events] bound an IPI channel to ourselves: port"]);
    assert_line(run, &["handler ran 0 times while masked, 1 time(s) once unmasked"]);
    // 5: the revoke refused while the peer maps the page, accepted after.
    assert_line(run, &["tour: [grants] revoking while the peer maps it: refused"]);
    assert_line(run, &["tour: [grants] after the peer unmapped it: revoke accepted"]);
    // 6: keys written, a watch fired.
    assert_line(run, &["tour: [xenstore] keys written: /local/domain/", "/data/tour/greeting"]);
    assert_line(run, &["tour: [xenstore] wrote", "the watch fired"]);
    // 7: event suppression, then blkfront's real ring.
    assert_line(run, &["tour: [rings] frontend queued 3 requests", "notify the backend: true"]);
    assert_line(run, &["tour: [rings] 2 more, published", "notify: false"]);
    assert_line(run, &["tour: [rings] xvda: ", "read sector 0: ok"]);
    assert_line(run, &["tour: [rings] xvda: closed"]);
    // 8: 256 pages out and back.
    let out = lines_with(run, &["tour: [balloon] ballooned out 256 pages"]);
    let counts: Vec<u64> = out
        .first()
        .and_then(|l| l.split("our pages ").nth(1))
        .map(|s| s.split(" -> ").filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default();
    assert!(counts.len() == 2 && counts[0] == counts[1] + 256, "balloon: {out:?}");
    assert_line(run, &["tour: [balloon] ballooned the 256 pages back in"]);
    // 9, 10: runstate and timings.
    assert_line(run, &["tour: [sched] spinning", "running"]);
    assert_line(run, &["tour: [measure] function call", "null hypercall (xen_version)"]);
}

/// What the PV tour shows: a kernel in ring 3, Xen's P2M and page-table
/// checks, a grant mapped by ourselves.
fn assert_pv_evidence(run: &GuestRun) {
    // 1: sensitive instructions run without a trap and show the hardware;
    // privileged ones trap, and Xen emulates or reflects them.
    for insn in ["smsw %eax", "sgdt (mem)", "sidt (mem)", "mov %cs, %ax", "pushf ", "popf (IF=0)"] {
        assert_line(run, &["tour: [virt] ", insn, "sensitive, unprivileged: no trap"]);
    }
    assert_line(run, &["tour: [virt] mov %cs, %ax", "ring 3"]);
    assert_line(run, &["tour: [virt] upcall mask 1", "pushf still says IF=1"]);
    assert_line(run, &["tour: [virt] mov %cr3, %rax", "emulated by Xen", "the same"]);
    for insn in ["mov %rax, %cr3", "hlt ", "in $0x80, %al", "cli "] {
        assert_line(
            run,
            &[
                "tour: [virt] ",
                insn,
                "refused by Xen, survived",
                "#GP general protection (vector 13",
            ],
        );
    }
    assert_line(run, &["tour: [virt] a hypercall (xen_version) for comparison: ", " cycles"]);
    // 2: the hypercall page's entry.
    assert_line(run, &["tour: [hypercalls] the entry loads eax = Some(17)", "syscall (0f 05)"]);
    assert_line(run, &["tour: [hypercalls] evtchn_upcall_mask: 0 before, 1 while masked"]);
    // 3: P2M and M2P agree; page tables are read-only.
    let p2m = lines_with(run, &["tour: [memory] a heap page at va"]);
    let words: Vec<&str> = p2m.first().map(|l| l.split_whitespace().collect()).unwrap_or_default();
    let pfns: Vec<&&str> = words.iter().filter(|w| w.starts_with("0x")).collect();
    assert!(pfns.len() == 4 && pfns[1] == pfns[3], "P2M and M2P disagree: {p2m:?}");
    assert_line(run, &["tour: [memory] the L4 (root) table is mfn", "read-only"]);
    assert_line(run, &["refused while mapped writable: true", "pinned true; undone true"]);
    assert_line(run, &["tour: [events] a 20 ms sleep:", "VIRQ_TIMER", "SCHEDOP_block"]);
    // 5: a grant reference to ourselves, mapped by ourselves.
    assert_line(run, &["tour: [grants] granted mfn", "grant reference"]);
}

/// What the PVH tour shows: a kernel in its own ring 0, guest frames and
/// native page tables, dom0's blkback as the grant's peer.
fn assert_pvh_evidence(run: &GuestRun) {
    // 1: the same sensitive instructions show the guest's own state; the
    // privileged ones would really run in ring 0.
    for insn in ["smsw %eax", "sgdt (mem)", "sidt (mem)", "mov %cs, %ax", "pushf ", "popf (IF=0)"] {
        assert_line(run, &["tour: [virt] ", insn, "no trap"]);
    }
    assert_line(run, &["tour: [virt] mov %cs, %ax", "ring 0: the guest has a ring 0 of its own"]);
    assert_line(run, &["tour: [virt] sgdt (mem)", "this guest's own GDT"]);
    assert_line(run, &["tour: [virt] events masked with a real cli (PVH): pushf says IF=0"]);
    for insn in [
        "mov %cr0, %rax",
        "mov %cr3, %rax",
        "mov %rax, %cr3 (rax=0)",
        "hlt",
        "in $0x80, %al",
        "cli",
    ] {
        assert_line(run, &[&format!("tour: [virt] {insn}: not tried under PVH")]);
    }
    assert_line(run, &["tour: [virt] a hypercall (xen_version) for comparison: ", " cycles"]);
    // 2: the hypercall page's entry: vmmcall on this AMD-V lab (vmcall on Intel).
    assert_line(run, &["tour: [hypercalls] the entry loads eax = Some(17)", "call (0f 01 "]);
    // 3: GFN = PFN, writable page tables, a PTE store with no hypercall.
    let page = lines_with(run, &["tour: [memory] a heap page at va"]);
    // va, pfn, the PTE, its frame, pfn -> P2M entry: all frames the pfn.
    let n = page.first().map(|l| hex_numbers(l)).unwrap_or_default();
    assert!(
        n.len() == 6
            && n[1] == n[3]
            && n[1] == n[4]
            && n[1] == n[5]
            && (n[2] & 0x000f_ffff_ffff_f000) >> 12 == n[1],
        "GFN != PFN: {page:?}"
    );
    assert_line(run, &["tour: [memory] the L4 (root) table (CR3) is guest frame", "writable"]);
    assert_line(
        run,
        &[
            "tour: [memory] a native page-table update",
            "read through the new mapping true; write seen through the direct map true; mapped back true",
            "kept the root true; page-table hypercalls 0",
        ],
    );
    assert_line(run, &["tour: [events] a 20 ms sleep:", "VIRQ_TIMER", "sti; hlt"]);
    // 5: blkback maps blkfront's ring page, for writing.
    assert_line(
        run,
        &[
            "tour: [grants] blkfront granted its xvda ring page to domain 0",
            "reading true, writing true",
        ],
    );
}

/// Counts lines `trace: PREFIX #N KIND(` (or `KIND ` for events) per kind.
fn count_lines(run: &GuestRun, prefix: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    let tag = format!("trace: {prefix} #");
    for l in &run.console {
        let Some(at) = l.find(&tag) else { continue };
        let rest = &l[at + tag.len()..];
        let Some((_, body)) = rest.split_once(' ') else { continue };
        let kind: String = if prefix == "ev" {
            body.split_whitespace().nth(1).unwrap_or("").to_string()
        } else {
            body.split('(').next().unwrap_or("").to_string()
        };
        *m.entry(kind).or_insert(0) += 1;
    }
    m
}

/// Parses `trace: SUM KIND KEY=N` lines (for events: `port P ... deliveries=N`).
fn summary(run: &GuestRun, sum: &str, key: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    let tag = format!("trace: {sum} ");
    for l in &run.console {
        let Some(at) = l.find(&tag) else { continue };
        let rest = &l[at + tag.len()..];
        let kind = if sum == "ev-sum" {
            rest.split_whitespace().nth(1).unwrap_or("").to_string()
        } else {
            rest.split_whitespace().next().unwrap_or("").to_string()
        };
        let n = rest
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX);
        m.insert(kind, n);
    }
    m
}

#[test]
fn each_trace_summary_counts_exactly_the_lines_it_printed() {
    let run = expect_run(lab(), "tour-trace");
    assert_narration_complete(run);
    let hc = count_lines(run, "hc");
    let hc_sum = summary(run, "hc-sum", "calls");
    assert_eq!(hc, hc_sum, "hypercall lines per type vs the summary\n{}", run.describe());
    assert_line(run, &["trace: hypercall summary:", " 0 dropped"]);
    // The mechanisms the tour shows, seen as hypercalls.
    let both = [
        "event_channel_op.bind_virq",
        "event_channel_op.send",
        "memory_op.decrease_reservation",
        "memory_op.populate_physmap",
        "sched_op.yield",
        "vcpu_op.get_runstate_info",
    ];
    // PV: page tables through Xen, a grant mapped by ourselves, blocking
    // by hypercall. PVH: none of those (native page tables, `sti; hlt`);
    // its grant frames and shared info page are put in place by
    // add_to_physmap.
    let mode: &[&str] = if guest_mode().is_pvh() {
        &["memory_op.add_to_physmap"]
    } else {
        &[
            "mmu_update",
            "mmuext_op.pin_l1_table",
            "update_va_mapping",
            "grant_table_op.map_grant_ref",
            "grant_table_op.unmap_grant_ref",
            "multicall",
        ]
    };
    for kind in both.iter().chain(mode) {
        assert!(hc.get(*kind).copied().unwrap_or(0) > 0, "no {kind} traced: {hc:?}");
    }
    if guest_mode().is_pvh() {
        for kind in ["mmu_update", "mmuext_op.pin_l1_table", "update_va_mapping", "sched_op.block"]
        {
            assert!(!hc.contains_key(kind), "{kind} traced under PVH: {hc:?}");
        }
    } else {
        // Blocking by hypercall: a sleep is one multicall that ends in the
        // block, carrying the timer (docs/exits.md).
        assert_line(run, &["trace: hc #", "multicall(", "; last: sched_op.block = 0"]);
        // The page tables built before the app ran: batched mmu_updates
        // with their first entry decoded.
        assert_line(
            run,
            &[
                "trace: hc #",
                "mmu_update(",
                "reqs, dom self; first: pt_update entry at ma",
                "cycles]",
            ],
        );
    }

    let xs = count_lines(run, "xs");
    let xs_sum = summary(run, "xs-sum", "count");
    assert_eq!(xs, xs_sum, "xenstore lines per type vs the summary\n{}", run.describe());
    assert_line(run, &["trace: xs #", "write(data/tour/greeting = \"hello from domain"]);
    assert_line(run, &["trace: xs #", "watch_event(data/tour/flag tour)"]);
    assert_line(run, &["trace: xenstore summary:", " 0 requests never answered"]);

    let ev = count_lines(run, "ev");
    let ev_sum = summary(run, "ev-sum", "deliveries");
    assert_eq!(ev, ev_sum, "event lines per port vs the summary\n{}", run.describe());
    assert!(
        run.console.iter().any(|l| l.contains("trace: ev #") && l.contains("(VIRQ_TIMER)")),
        "no timer event traced"
    );
    assert!(
        run.console.iter().any(|l| l.contains("trace: ev #") && l.contains("(IPI)")),
        "the tour's IPI not traced"
    );
}
