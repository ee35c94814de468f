//! Ballooning during a live migration (issue 16), on real Xen, one QEMU
//! boot. Every guest is PVH (`memory=32, maxmem=64`: Xen starts it with
//! populate-on-demand up to 64 MiB and the balloon gives the rest back),
//! runs `app=idle balloon.check=1` (each balloon step's frames are held,
//! stamped, and read back after the next suspend), and is migrated to
//! this host with the stream held by `migcount hold` in round 1, once
//! the pre-copy has gone past every pfn the balloon uses. While it is
//! held (the migration provably running: the sender alive, the receiving
//! domain there), dom0 runs `xl mem-set` up by 512 KiB (the new pages
//! are stamped) and down to 24 MiB (pages round 1 has sent are given
//! back), then lets the stream go.
//!
//! - `pbal`, the guest as it is: at the suspend it has Xen log every page
//!   ballooned in since the last one, and in the new domain it gives back
//!   again what it gave back since then. Every stamped page must read back
//!   intact in the new domain, the new domain must have held the pages
//!   given back during the pre-copy (then given back again), and after the
//!   guest settles at the new domain's target `xl list` must agree with
//!   it. Then a second held migration with `xl mem-set` far up (to 64
//!   MiB): the receiving domain, sized from the configuration sent when
//!   the migration began, cannot take the new pages, so the migration
//!   fails (Xen 4.17: in the last round, the guest's suspend cancelled;
//!   4.20: in the pre-copy, the guest never asked) and the guest carries
//!   on at the sender; a checkpoint (`xl save -c`) then finds every
//!   stamped page intact. Back at 32 MiB, a third (plain) migration
//!   works.
//! - `pbaloff`, the same with both rules off (`balloon.log_dirty=0
//!   balloon.release_again=0`): on Xen 4.17, whose populate path logs
//!   nothing, every stamped page must come back WRONG (never sent: the new
//!   domain has no memory there); on later Xen (4.20.3 and up logs a
//!   populated page) intact. On Xen 4.17 its target is lowered during
//!   the pre-copy too: the pages given back then stay in the new domain,
//!   take up its maximum reservation, and the balloon stops short of the
//!   target there. (Not on 4.20, where that froze the lab machine: see
//!   `off_goes_down`.)

use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, expect_run, guest, xen_release, BootReport,
    GuestMode, GuestResult, GuestRun, Scenario, XenRelease,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

/// Pages `xl mem-set` adds during the pre-copy: within the 1 MiB the
/// receiving domain's maximum reservation has above its target.
const UP_PAGES: u64 = 128;
/// The target given during the pre-copy after that, KiB.
const DOWN_KIB: u64 = 24 * 1024;
/// The boot target (`memory=`), KiB.
const BOOT_KIB: u64 = 32 * 1024;

/// The dom0 script for guest `name`; `down`: `xl mem-set` down too during
/// the first migration; `far_up`: a second migration with `xl mem-set` to
/// 64 MiB while it is held.
fn script(name: &str, down: bool, far_up: bool) -> String {
    let up_kib = BOOT_KIB + UP_PAGES * 4;
    format!(
        r#"
# held_migration STEP: xl migrate in the background, held in round 1
# past pfn 0x8000 (the guest's memory ends at pfn 0x4000); runs
# "during_hold" while it is held, then lets it go and waits for it.
held_migration() {{
    rm -f /tmp/{name}.held /tmp/{name}.go
    lab_migrate {name} "migcount hold 1 0x8000 /tmp/{name}.held /tmp/{name}.go | xl migrate-receive" &
    mp=$!
    n=0
    while [ ! -e /tmp/{name}.held ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n + 1)); done
    if [ -e /tmp/{name}.held ]; then hrc=0; else hrc=1; fi
    echo "[xl mobility] held name={name} step=$1 rc=$hrc at=$(tr ' ' _ < /tmp/{name}.held 2>/dev/null)"
    during_hold "$1"
    # Still migrating: the sender runs and the receiving domain exists.
    alive=0; kill -0 $mp 2>/dev/null && alive=1
    incoming=$(xl list | grep -c "^{name}--incoming ")
    echo "[xl mobility] during name={name} step=$1 sender_alive=$alive incoming=$incoming"
    touch /tmp/{name}.go
    wait $mp
    grep MIGCOUNT /tmp/xl-migrate.out | sed "s/^/[xl migcount] step=$1 /"
}}
during_hold() {{
    if [ "$1" = 1 ]; then
        xl mem-set {name} {up_kib}k; echo "[xl mobility] mem-set name={name} step=1 kib={up_kib} rc=$?"
        wait_console {name} "balloon: target {up_kib} KiB" 1 120
        wait_console {name} "balloon: check: stamped {UP_PAGES} pages" 1 60
        if [ {down} = true ]; then
            xl mem-set {name} {DOWN_KIB}k; echo "[xl mobility] mem-set name={name} step=1 kib={DOWN_KIB} rc=$?"
            wait_console {name} "balloon: target {DOWN_KIB} KiB" 1 120
        fi
    else
        xl mem-set {name} 64m; echo "[xl mobility] mem-set name={name} step=2 kib=65536 rc=$?"
        wait_console {name} "balloon: target 65536 KiB" 1 120
    fi
    xl list | sed "s/^/[xl list-held] /"
}}
# The domain's size in xl list (MiB) and its target (KiB).
sizes() {{
    d=$(xl domid {name})
    echo "[xl mobility] sizes name={name} step=$1 list_mib=$(xl list {name} | sed -n '2p' | awk '{{print $3}}') target_kib=$(xenstore-read /local/domain/$d/memory/target) domid=$d"
}}
run_guest_start {name} /etc/xen-lab/guests/{name}.cfg || exit 1
if wait_console {name} "idle: ready" 1 120 && wait_console {name} "balloon: target {BOOT_KIB} KiB" 1 60; then
    sizes 0
    held_migration 1
    wait_console {name} "resume: running in a new domain (resume 1;" 1 120
    # The new domain's target is the one sent when the migration began.
    [ {down} = true ] && wait_console {name} "balloon: target {BOOT_KIB} KiB" 2 120
    sleep 2
    sizes 1
    if [ {far_up} = true ]; then
        held_migration 2
        # Where it fails depends on Xen: 4.17 sends the new pages in the
        # last round (logged at the suspend), which is cancelled; 4.20
        # logs them as they are populated and fails in the pre-copy,
        # the guest never asked. A checkpoint then makes the guest read
        # its stamps in either case (after the last cancelled suspend).
        lab_save {name} /tmp/{name}.chk -c
        rm -f /tmp/{name}.chk
        wait_console {name} "suspend: cancelled by the toolstack" 1 120
        wait_console {name} "read back intact after the cancelled suspend" 1 60
        sleep 2
        sizes 2
        # Back to the size the receiving side is made for, and a plain
        # migration: it works, and its receiving xl watches the domain
        # again (xl's monitor of the domain exited at the failed
        # migration's suspend, as at any suspend).
        xl mem-set {name} {BOOT_KIB}k; echo "[xl mobility] mem-set name={name} step=3 kib={BOOT_KIB} rc=$?"
        wait_console {name} "balloon: target {BOOT_KIB} KiB" 3 120
        lab_migrate {name} "migcount | xl migrate-receive"
        grep MIGCOUNT /tmp/xl-migrate.out | sed "s/^/[xl migcount] step=3 /"
        wait_console {name} "resume: running in a new domain (resume 2;" 1 120
    fi
    xl shutdown {name}
    run_guest_wait {name} 60
else
    run_guest_wait {name} 1
fi
"#
    )
}

fn migcount() -> std::path::PathBuf {
    xtask::migcount::build(&xtask::cache::cache_dir()).expect("building migcount")
}

fn balloon_guest(name: &str, extra_args: &[&str]) -> xen_tests::GuestSpec {
    let mut args = vec!["balloon.check=1".to_string()];
    args.extend(extra_args.iter().map(|a| a.to_string()));
    let mut g = guest(name, "idle")
        .mode(GuestMode::Pvh)
        .args(&args)
        .memory(32)
        .timeout(Duration::from_secs(900));
    g.extra_config = vec!["maxmem = 64".into()];
    g
}

/// Whether the guest without the rules is given a smaller target during
/// the pre-copy too. Not on Xen 4.20: there, twice, the whole lab machine
/// (Xen and dom0) went silent for good right after that guest, in the
/// new domain, populated pfns the new domain still held from round 1
/// and reached its maximum reservation (`Over-allocation for d2: 8449 >
/// 8448`); see docs/migration.md.
fn off_goes_down() -> bool {
    xen_release() == XenRelease::V4_17
}

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("mobility-balloon", || {
            let on = balloon_guest("pbal", &[]);
            let off = balloon_guest("pbaloff", &["balloon.log_dirty=0", "balloon.release_again=0"]);
            let off_script = script("pbaloff", off_goes_down(), false);
            vec![
                Scenario::script("mobility-balloon", vec![on], &script("pbal", true, true))
                    .with_file(xtask::migcount::DEST, migcount()),
                Scenario::script("mobility-balloon-off", vec![off], &off_script)
                    .with_file(xtask::migcount::DEST, migcount()),
            ]
        })
    })
}

/// The `[xl mobility] WHAT ...` lines, as (what, key=value words).
fn mobility_lines(run: &GuestRun) -> Vec<(String, Vec<(String, String)>)> {
    run.xl_output
        .iter()
        .filter_map(|l| l.split_once("mobility] "))
        .map(|(_, rest)| {
            let mut words = rest.split_whitespace();
            let what = words.next().unwrap_or("").to_string();
            let kv = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (what, kv)
        })
        .collect()
}

fn get<'a>(kv: &'a [(String, String)], key: &str) -> &'a str {
    kv.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
}

/// The `WHAT` line of step `step`.
fn line(run: &GuestRun, what: &str, step: &str) -> Vec<(String, String)> {
    mobility_lines(run)
        .into_iter()
        .find(|(w, kv)| w == what && get(kv, "step") == step)
        .map(|(_, kv)| kv)
        .unwrap_or_else(|| panic!("no `{what}` line for step {step}\n{}", run.describe()))
}

/// The `migrate` lines, in order.
fn migrations(run: &GuestRun) -> Vec<Vec<(String, String)>> {
    mobility_lines(run).into_iter().filter(|(w, _)| w == "migrate").map(|(_, kv)| kv).collect()
}

/// Step `step` was held in round 1 and dom0's `xl mem-set`s (each
/// followed by the guest) happened while the migration was running.
fn assert_held_and_running(run: &GuestRun, step: &str) {
    let held = line(run, "held", step);
    assert_eq!(get(&held, "rc"), "0", "step {step}: never held\n{}", run.describe());
    assert!(get(&held, "at").starts_with("round_1_"), "held at {:?}", get(&held, "at"));
    let during = line(run, "during", step);
    assert_eq!(
        (get(&during, "sender_alive"), get(&during, "incoming")),
        ("1", "1"),
        "step {step}: the migration was not running after the mem-set\n{}",
        run.describe()
    );
    for (w, kv) in mobility_lines(run) {
        if w == "mem-set" && get(&kv, "step") == step {
            assert_eq!(get(&kv, "rc"), "0", "xl mem-set refused\n{}", run.describe());
        }
    }
    let migcount = run
        .xl_output
        .iter()
        .find(|l| l.contains(&format!("[xl migcount] step={step} ")))
        .unwrap_or_else(|| panic!("no MIGCOUNT line for step {step}\n{}", run.describe()));
    eprintln!("step {step}: {migcount}");
}

/// `list_mib` and `target_kib` of the `sizes` line of step `step`.
fn sizes(run: &GuestRun, step: &str) -> (u64, u64) {
    let kv = line(run, "sizes", step);
    let num = |k: &str| {
        get(&kv, k).parse().unwrap_or_else(|_| panic!("sizes {k}: {kv:?}\n{}", run.describe()))
    };
    (num("list_mib"), num("target_kib"))
}

/// The console line of the check after a suspend.
fn check_line<'a>(run: &'a GuestRun, place: &str) -> &'a str {
    run.console
        .iter()
        .find(|l| l.contains("balloon: check: ") && l.contains(place))
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no check line {place}\n{}", run.describe()))
}

/// The pages the new domain held of those given back since the suspend.
fn held_again(run: &GuestRun) -> Option<(u64, u64)> {
    let l = run.console.iter().find(|l| l.contains("balloon: resume: the new domain held "))?;
    let rest = &l[l.find("the new domain held ")? + "the new domain held ".len()..];
    let mut w = rest.split_whitespace();
    let taken = w.next()?.parse().ok()?;
    let of = w.nth(2)?.parse().ok()?;
    Some((taken, of))
}

#[test]
fn pages_ballooned_during_the_precopy_arrive_and_pages_given_back_leave() {
    let run = expect_run(lab(), "pbal");
    assert_held_and_running(run, "1");
    let migs = migrations(run);
    assert_eq!(get(&migs[0], "rc"), "0", "the first migration\n{}", run.describe());
    assert_console_contains(run, "resume: running in a new domain (resume 1;");
    // Logged at the suspend: at least the pages still ballooned in.
    assert_console_contains(run, "balloon: suspend: had Xen log ");
    let check = check_line(run, "in the new domain");
    eprintln!("{check}");
    assert!(
        check.contains(&format!("check: {UP_PAGES} pages ballooned in before the suspend read back intact in the new domain")),
        "{check}\n{}",
        run.describe()
    );
    // The pages given back during the pre-copy had been sent by round 1:
    // the new domain held them, and the guest gave them back again.
    let (taken, of) = held_again(run).unwrap_or_else(|| panic!("{}", run.describe()));
    eprintln!("the new domain held {taken} of the {of} pages given back during the pre-copy");
    let given = (BOOT_KIB + UP_PAGES * 4 - DOWN_KIB) / 4;
    assert!(of >= given && taken >= given - UP_PAGES, "{taken} of {of}\n{}", run.describe());
    // Settled at the new domain's target (the one sent when the
    // migration began): xl list agrees (it rounds, and counts the guest's
    // special pages).
    let (list, target) = sizes(run, "1");
    assert_eq!(target, BOOT_KIB, "{}", run.describe());
    assert!(list.abs_diff(target / 1024) <= 1, "xl list {list} MiB\n{}", run.describe());

    // The second: far up during the pre-copy. The receiving domain is
    // sized for the target sent at the start and cannot take the pages the
    // last round sends, so the migration fails and the guest carries on.
    assert_held_and_running(run, "2");
    assert_eq!(migs.len(), 3, "{}", run.describe());
    assert_ne!(get(&migs[1], "rc"), "0", "the second migration\n{}", run.describe());
    assert!(
        run.xl_output.iter().any(|l| l.contains("Failed to populate physmap")),
        "the receiving side was expected to run out of reservation\n{}",
        run.describe()
    );
    let save = mobility_lines(run).into_iter().find(|(w, _)| w == "save-c");
    assert_eq!(save.map(|(_, kv)| get(&kv, "rc").to_string()).as_deref(), Some("0"));
    assert_console_contains(run, "suspend: cancelled by the toolstack");
    assert!(!run.console.iter().any(|l| l.contains("read back WRONG")), "{}", run.describe());
    let check = check_line(run, "after the cancelled suspend");
    eprintln!("{check}");
    // Every page ballooned in since the first migration: the 2048 that
    // brought the new domain to its target, and the 8192 to 64 MiB.
    let far = (65536 - DOWN_KIB) / 4;
    assert!(
        check.contains(&format!("check: {far} pages ballooned in before the suspend read back intact after the cancelled suspend")),
        "{check}\n{}",
        run.describe()
    );
    let (list, target) = sizes(run, "2");
    assert_eq!(target, 65536, "{}", run.describe());
    assert!(list.abs_diff(64) <= 1, "xl list {list} MiB\n{}", run.describe());
    // Back at 32 MiB, a plain migration works.
    assert_eq!(get(&migs[2], "rc"), "0", "the third migration\n{}", run.describe());
    assert_console_contains(run, "resume: running in a new domain (resume 2;");
    assert_result(run, &GuestResult::Poweroff);
}

#[test]
fn without_the_rules_pages_are_lost_on_xen_4_17_and_given_back_pages_stay() {
    let run = expect_run(lab(), "pbaloff");
    assert_held_and_running(run, "1");
    let migs = migrations(run);
    assert_eq!(get(&migs[0], "rc"), "0", "the migration\n{}", run.describe());
    assert_console_contains(run, "NOT logged (balloon.log_dirty=0)");
    assert_console_contains(run, "NOT given back again (balloon.release_again=0)");
    let check = check_line(run, "in the new domain");
    eprintln!("{check}");
    match xen_release() {
        XenRelease::V4_17 => assert!(
            check.contains(&format!(
                "check: {UP_PAGES} of {UP_PAGES} pages ballooned in before the suspend read back WRONG in the new domain"
            )),
            "Xen 4.17 was expected to lose every page populated during the pre-copy\n{check}\n{}",
            run.describe()
        ),
        _ => assert!(
            check.contains("read back intact in the new domain"),
            "this Xen logs populated pages\n{check}\n{}",
            run.describe()
        ),
    }
    // The pages given back during the pre-copy are still the new
    // domain's: they fill its maximum reservation, and the balloon cannot
    // reach the target there.
    if !off_goes_down() {
        assert_result(run, &GuestResult::Poweroff);
        return;
    }
    let (list, target) = sizes(run, "1");
    eprintln!("xl list {list} MiB, target {target} KiB");
    let resumed = run
        .console
        .iter()
        .position(|l| l.contains("resume: running in a new domain (resume 1;"))
        .unwrap_or_else(|| panic!("{}", run.describe()));
    assert!(
        run.console[resumed..].iter().any(|l| l.contains("stopping short of the target")),
        "the balloon reached the target over the stale pages\n{}",
        run.describe()
    );
    assert_result(run, &GuestResult::Poweroff);
}
