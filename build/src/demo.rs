//! `cargo xtask demo sched`: Xen's credit scheduler, shown with two
//! `app=spin` guests sharing one physical CPU (docs/scheduler.md).
//!
//! dom0 takes physical CPU 1 out of `Pool-0` and makes it a cpupool of
//! its own running the **credit** scheduler (whatever Xen's default is:
//! credit2 on Debian's 4.17 and 4.20), so that the two guests compete
//! with each other only: dom0 stays on CPU 0. Two rounds, each two guests
//! started together (`spin.sync=1`: each waits for dom0's `data/spin-go`):
//! weights 256 and 512 (the credit scheduler promises 1/3 and 2/3 of the
//! CPU), then weight 256 capped at 25% beside an uncapped 256 (at most
//! 25%, and the other takes the rest). Each guest reports the share of
//! wall-clock time it ran, from its own runstate; the host prints them
//! against the promise. `tests/tests/sched.rs` runs the same scenario and
//! checks the shares within a tolerance.

use crate::scenario::{BootReport, GuestSpec, Scenario};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// One guest of the demo.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contender {
    pub name: &'static str,
    pub round: u32,
    pub weight: u32,
    /// Percent of one CPU; 0 = no cap.
    pub cap: u32,
}

/// The two rounds.
pub const CONTENDERS: [Contender; 4] = [
    Contender { name: "spin-w256", round: 1, weight: 256, cap: 0 },
    Contender { name: "spin-w512", round: 1, weight: 512, cap: 0 },
    Contender { name: "spin-cap25", round: 2, weight: 256, cap: 25 },
    Contender { name: "spin-free", round: 2, weight: 256, cap: 0 },
];

/// The share of the CPU the credit scheduler promises `c`, in percent,
/// when it competes with the other guest of its round: its weight's
/// share, but never more than its cap; what a capped guest leaves goes to
/// the other (the scheduler is work-conserving for uncapped domains).
pub fn promised(c: &Contender) -> f64 {
    let rivals: Vec<&Contender> =
        CONTENDERS.iter().filter(|o| o.round == c.round && o.name != c.name).collect();
    let total: u32 = c.weight + rivals.iter().map(|o| o.weight).sum::<u32>();
    let fair = 100.0 * f64::from(c.weight) / f64::from(total);
    if c.cap > 0 {
        return fair.min(f64::from(c.cap));
    }
    // What capped rivals cannot take comes to us.
    let leftover: f64 = rivals
        .iter()
        .filter(|o| o.cap > 0)
        .map(|o| (100.0 * f64::from(o.weight) / f64::from(total)) - f64::from(o.cap))
        .filter(|x| *x > 0.0)
        .sum();
    fair + leftover
}

/// The dom0 script of one round: start both guests, wait until both are
/// ready, let them go at once, show Xen's view of the pool, wait.
fn round_script(a: &Contender, b: &Contender, secs: u64) -> String {
    let wait = secs + 120;
    format!(
        r#"
run_guest_start {a} /etc/xen-lab/guests/{a}.cfg || exit 1
run_guest_start {b} /etc/xen-lab/guests/{b}.cfg || exit 1
xl info 2>/dev/null | grep -E '^(nr_cpus|xen_scheduler)' | sed 's/^/[xl sched] /'
xl cpupool-list 2>&1 | sed 's/^/[xl sched] /'
da=$(cat /tmp/lab-domid-{a}); db=$(cat /tmp/lab-domid-{b})
n=0
while [ "$(xenstore-read /local/domain/$da/data/spin-ready 2>/dev/null)" != 1 ] ||
      [ "$(xenstore-read /local/domain/$db/data/spin-ready 2>/dev/null)" != 1 ]; do
    n=$((n + 1)); [ $n -gt 1200 ] && {{ echo "[xl sched] guests never got ready"; break; }}
    sleep 0.1
done
xl sched-credit -p demo 2>&1 | sed 's/^/[xl sched] /'
xl vcpu-list {a} {b} 2>&1 | sed 's/^/[xl sched] /'
xenstore-write /local/domain/$da/data/spin-go 1 /local/domain/$db/data/spin-go 1
echo "[xl sched] go"
run_guest_wait {a} {wait}
run_guest_wait {b} {wait}
"#,
        a = a.name,
        b = b.name,
    )
}

/// What dom0 does before the rounds: CPU 1 becomes the demo's own credit
/// pool.
const POOL_SCRIPT: &str = r#"
printf 'name = "demo"\nsched = "credit"\ncpus = "1"\n' > /tmp/demo-pool.cfg
xl cpupool-cpu-remove Pool-0 1 2>&1 | sed 's/^/[xl sched] /'
xl cpupool-create /tmp/demo-pool.cfg 2>&1 | sed 's/^/[xl sched] /'
xl cpupool-list 2>&1 | sed 's/^/[xl sched] /'
"#;

/// The scenarios of the demo, for guests of ELF `kernel`, spinning `secs`
/// seconds each round.
pub fn scenarios(kernel: &Path, secs: u64) -> Vec<Scenario> {
    let spec = |c: &Contender| {
        let mut g = GuestSpec::new(c.name, kernel, "spin")
            .args(&[format!("spin.secs={secs}"), "spin.sync=1".into()])
            .timeout(Duration::from_secs(secs + 180));
        g.extra_config = vec![
            "pool = \"demo\"".into(),
            format!("cpu_weight = {}", c.weight),
            format!("cap = {}", c.cap),
        ];
        g
    };
    let r1: Vec<&Contender> = CONTENDERS.iter().filter(|c| c.round == 1).collect();
    let r2: Vec<&Contender> = CONTENDERS.iter().filter(|c| c.round == 2).collect();
    let mut s1 = Scenario::script(
        "sched-weights",
        r1.iter().map(|c| spec(c)).collect(),
        &format!("{POOL_SCRIPT}{}", round_script(r1[0], r1[1], secs)),
    );
    s1.slack = Duration::from_secs(120);
    let mut s2 = Scenario::script(
        "sched-cap",
        r2.iter().map(|c| spec(c)).collect(),
        &round_script(r2[0], r2[1], secs),
    );
    s2.slack = Duration::from_secs(60);
    vec![s1, s2]
}

/// What one guest reported (`spin: result ...`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpinResult {
    pub wall_ms: u64,
    pub running_ms: u64,
    /// Waiting for the CPU while another vCPU had it.
    pub runnable_ms: u64,
    /// Paused: the credit scheduler parks a vCPU that used up its cap.
    pub offline_ms: u64,
    pub share_permille: u64,
}

/// Parses the guest's `spin: result wall_ms=.. running_ms=.. runnable_ms=..
/// blocked_ms=.. share_permille=..` line.
pub fn parse_result(console: &[String]) -> Option<SpinResult> {
    let line = console.iter().rev().find(|l| l.contains("spin: result "))?;
    let get = |k: &str| -> Option<u64> {
        let at = line.find(&format!("{k}="))? + k.len() + 1;
        line[at..].split_whitespace().next()?.parse().ok()
    };
    Some(SpinResult {
        wall_ms: get("wall_ms")?,
        running_ms: get("running_ms")?,
        runnable_ms: get("runnable_ms")?,
        offline_ms: get("offline_ms")?,
        share_permille: get("share_permille")?,
    })
}

/// Each contender with its result (`None`: it did not report one).
pub fn results(report: &BootReport) -> Vec<(Contender, Option<SpinResult>)> {
    CONTENDERS
        .iter()
        .map(|c| (*c, report.run(c.name).ok().and_then(|r| parse_result(&r.console))))
        .collect()
}

/// The table `cargo xtask demo sched` prints.
pub fn table(rows: &[(Contender, Option<SpinResult>)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<11} {:>6} {:>5} | {:>9} | {:>7} {:>8} {:>11} {:>11} {:>8}",
        "guest",
        "weight",
        "cap",
        "promised",
        "got",
        "ran ms",
        "runnable ms",
        "parked ms",
        "wall ms"
    );
    for (c, r) in rows {
        let cap = if c.cap == 0 { "none".to_string() } else { format!("{}%", c.cap) };
        match r {
            Some(r) => {
                let _ = writeln!(
                    s,
                    "{:<11} {:>6} {:>5} | {:>8.1}% | {:>6.1}% {:>8} {:>11} {:>11} {:>8}",
                    c.name,
                    c.weight,
                    cap,
                    promised(c),
                    r.share_permille as f64 / 10.0,
                    r.running_ms,
                    r.runnable_ms,
                    r.offline_ms,
                    r.wall_ms
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "{:<11} {:>6} {:>5} | {:>8.1}% | no result",
                    c.name,
                    c.weight,
                    cap,
                    promised(c)
                );
            }
        }
    }
    s
}

/// Checks the shares against the promises with `tolerance` percentage
/// points, and that the weights show (the heavier guest got at least
/// `min_ratio` times the lighter one's share); the problems found.
pub fn check(
    rows: &[(Contender, Option<SpinResult>)],
    tolerance: f64,
    min_ratio: f64,
) -> Vec<String> {
    let mut bad = Vec::new();
    let share = |name: &str| {
        rows.iter()
            .find(|(c, _)| c.name == name)
            .and_then(|(_, r)| r.map(|r| r.share_permille as f64 / 10.0))
    };
    for (c, r) in rows {
        let Some(r) = r else {
            bad.push(format!("{} reported no result", c.name));
            continue;
        };
        let got = r.share_permille as f64 / 10.0;
        let want = promised(c);
        if (got - want).abs() > tolerance {
            bad.push(format!(
                "{}: got {got:.1}%, promised {want:.1}% (more than {tolerance} points off)",
                c.name
            ));
        }
        if c.cap > 0 && got > f64::from(c.cap) + tolerance / 2.0 {
            bad.push(format!("{}: {got:.1}% is over its {}% cap", c.name, c.cap));
        }
    }
    if let (Some(light), Some(heavy)) = (share("spin-w256"), share("spin-w512")) {
        if heavy < light * min_ratio {
            bad.push(format!(
                "weight 512 got {heavy:.1}%, weight 256 got {light:.1}%: less than {min_ratio}x, the weights do not show"
            ));
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promises_follow_weights_and_caps() {
        let p = |n: &str| promised(CONTENDERS.iter().find(|c| c.name == n).unwrap());
        assert!((p("spin-w256") - 100.0 / 3.0).abs() < 0.01);
        assert!((p("spin-w512") - 200.0 / 3.0).abs() < 0.01);
        assert_eq!(p("spin-cap25"), 25.0);
        assert_eq!(p("spin-free"), 75.0);
    }

    fn r(permille: u64) -> Option<SpinResult> {
        Some(SpinResult {
            wall_ms: 10_000,
            running_ms: permille * 10,
            runnable_ms: 0,
            offline_ms: 0,
            share_permille: permille,
        })
    }

    #[test]
    fn parse_and_check() {
        let console = vec![
            "spin: second 1: ran 330 ms of 1000 ms".to_string(),
            "spin: result wall_ms=15000 running_ms=5000 runnable_ms=9900 blocked_ms=0 offline_ms=7 share_permille=333".to_string(),
        ];
        let got = parse_result(&console).unwrap();
        assert_eq!(
            got,
            SpinResult {
                wall_ms: 15000,
                running_ms: 5000,
                runnable_ms: 9900,
                offline_ms: 7,
                share_permille: 333
            }
        );
        assert!(parse_result(&["spin: result wall_ms=x".to_string()]).is_none());

        let good: Vec<_> =
            CONTENDERS.iter().zip([r(340), r(650), r(245), r(740)]).map(|(c, r)| (*c, r)).collect();
        assert!(check(&good, 10.0, 1.5).is_empty(), "{:?}", check(&good, 10.0, 1.5));
        // Equal shares: the weights are ignored, and the check says so.
        let equal: Vec<_> =
            CONTENDERS.iter().zip([r(500), r(500), r(245), r(740)]).map(|(c, r)| (*c, r)).collect();
        let bad = check(&equal, 20.0, 1.5);
        assert!(bad.iter().any(|b| b.contains("the weights do not show")), "{bad:?}");
        // Over the cap.
        let over: Vec<_> =
            CONTENDERS.iter().zip([r(340), r(650), r(500), r(500)]).map(|(c, r)| (*c, r)).collect();
        assert!(check(&over, 10.0, 1.5).iter().any(|b| b.contains("over its 25% cap")));
        let missing: Vec<_> = CONTENDERS.iter().map(|c| (*c, None)).collect();
        assert_eq!(check(&missing, 10.0, 1.5).len(), 4);
        assert!(table(&good).contains("spin-w512"));
    }
}
