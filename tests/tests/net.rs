//! Network services through the real `xen-netback`, all in one QEMU boot:
//! dom0 gets a bridge `xenbr0` at 192.0.2.1/24 (RFC 5737 documentation
//! range; QEMU has no NIC, so nothing leaves the emulated machine), then
//! - `app=http` at 192.0.2.2: dom0 pings it, `wget`s `/` and
//!   `/status.json`, detaches its vif (`xl network-detach`) and attaches a
//!   new one (`xl network-attach`), and the service answers again;
//! - `app=echo` at 192.0.2.3: 1,000 TCP echo round trips from 4 clients at
//!   once, random sizes up to 64 KiB, each compared byte for byte, from
//!   local ports chosen (with the guest's own flow hash) so that two flows
//!   take each of the 2 queues, both ways, while 16 idle connections
//!   (`httptool hold`) are held until the guest's idle timeout closes them;
//! - `app=http` at 192.0.2.4 with 4 MiB, its smallest memory: dom0 pings it.
//!
//! All end with `xl shutdown`.

use pv_drivers::netfront::ctrl::WANTED_HASH_TYPES;
use pv_drivers::netfront::flow::{tcp4_tx_queue, RxSteering, TABLE_SIZE};
use std::sync::OnceLock;
use std::time::Duration;
use xen_tests::{
    assert_console_contains, assert_result, boot, check, expect_run, guest, shell, BootReport,
    GuestResult, GuestRun, Scenario,
};

static LAB: OnceLock<BootReport> = OnceLock::new();

const BRIDGE: &str = include_str!("common/bridge.sh");
const GUEST_SH: &str = include_str!("common/guest.sh");
const HELPERS: &str = include_str!("net/helpers.sh");

const HTTP: &str = include_str!("net/http.sh");

/// The echo scenario: `nettool echo` from the local ports `ports` (one
/// connection each; see [`echo_ports`]).
fn echo_script(ports: &[u16]) -> String {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    shell(
        &[("ECHO_CONNS", &ports.len().to_string()), ("ECHO_PORTS", &list.join(","))],
        &[BRIDGE, GUEST_SH, HELPERS, include_str!("net/echo.sh")],
    )
}

/// `app=http` at its documented minimum memory (4 MiB, README "Boot time
/// and footprint"): up, answers a ping, shuts down cleanly.
/// `app=http` at its minimum memory, and with no `ip=`: it takes its
/// address from dom0's DHCP server (busybox udhcpd, a static lease).
const HTTP_MIN: &str = include_str!("net/http-min.sh");

/// The smallest `memory=` `app=http` boots and serves in (MiB): the
/// mode's minimum (4 MiB PV, 8 MiB PVH).
fn http_min_mib() -> u32 {
    xen_tests::min_memory_mib()
}
/// The echo guest and dom0 on the bridge.
const GUEST: [u8; 4] = [192, 0, 2, 3];
const DOM0: [u8; 4] = [192, 0, 2, 1];
/// Queues netback offers here (one per dom0 vCPU).
const QUEUES: usize = 2;
/// Connections per queue in the echo test.
const PER_QUEUE: usize = 2;

/// How the guest asks netback to steer RX (`pv_drivers::netfront::ctrl`),
/// which its console confirms (`STEERING_LINE`).
fn steering() -> RxSteering {
    RxSteering { flags: WANTED_HASH_TYPES, table_size: TABLE_SIZE, queues: QUEUES as u32 }
}
const STEERING_LINE: &str = "net: rss: netback steers RX like TX: Toeplitz (Microsoft key) over ipv4,ipv4-tcp,ipv6,ipv6-tcp, 128-entry table over 2 queues";

/// The queues of dom0's connection from local port `port` to the echo
/// service: (TX, the guest's replies 192.0.2.3:7 -> 192.0.2.1:port, as
/// the guest picks them; RX, dom0's packets the other way, as netback
/// picks them once steered).
fn echo_queues(port: u16) -> (usize, usize) {
    (tcp4_tx_queue(GUEST, DOM0, 7, port, QUEUES), steering().tcp4_queue(DOM0, GUEST, port, 7))
}

/// dom0's local ports for the echo connections: the first `PER_QUEUE`
/// from 40000 up whose flow takes queue q both ways, for each queue q.
/// Deterministic: the same ports every run.
fn echo_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    for q in 0..QUEUES {
        ports.extend((40000..60000u16).filter(|&p| echo_queues(p) == (q, q)).take(PER_QUEUE));
    }
    ports
}

fn httptool() -> std::path::PathBuf {
    xtask::httptool::build(&xtask::cache::cache_dir()).expect("building httptool")
}

/// The echo guest's idle timeout (`svc.idle_ms`): the held idle
/// connections end after it.
const ECHO_IDLE_MS: u64 = 5000;

fn nettool() -> std::path::PathBuf {
    xtask::nettool::build(&xtask::cache::cache_dir()).expect("building nettool")
}

fn lab() -> &'static BootReport {
    LAB.get_or_init(|| {
        boot("net", || {
            let vif = |mac: &str| vec![format!("vif = ['mac={mac},bridge=xenbr0']")];
            let mut http = guest("http", "http")
                .args(&["ip=192.0.2.2/24".to_string()])
                .memory(64)
                .timeout(Duration::from_secs(400));
            http.extra_config = vif("00:16:3e:0c:00:02");
            let mut echo = guest("echo", "echo")
                .args(&["ip=192.0.2.3/24".to_string(), format!("svc.idle_ms={ECHO_IDLE_MS}")])
                .memory(64)
                .timeout(Duration::from_secs(1200));
            echo.extra_config = vif("00:16:3e:0c:00:03");
            let mut httpmin =
                guest("httpmin", "http").memory(http_min_mib()).timeout(Duration::from_secs(200));
            httpmin.extra_config = vif("00:16:3e:0c:00:04");
            vec![
                Scenario::script(
                    "httpmin",
                    vec![httpmin],
                    &shell(&[], &[BRIDGE, GUEST_SH, HELPERS, HTTP_MIN]),
                ),
                Scenario::script(
                    "http",
                    vec![http],
                    &shell(&[], &[BRIDGE, GUEST_SH, HELPERS, HTTP]),
                ),
                Scenario::script("echo", vec![echo], &echo_script(&echo_ports()))
                    .with_file(xtask::nettool::DEST, nettool())
                    .with_file(xtask::httptool::DEST, httptool()),
            ]
        })
    })
}

fn http() -> &'static GuestRun {
    expect_run(lab(), "http")
}

fn echo() -> &'static GuestRun {
    expect_run(lab(), "echo")
}

#[test]
fn without_ip_the_guest_takes_its_address_from_dhcp() {
    let run = expect_run(lab(), "httpmin");
    assert_eq!(check(run, "udhcpd-rc"), "0", "{}", run.describe());
    assert_console_contains(run, "http: ready; address by DHCP");
    assert_console_contains(run, "net: dhcp: address 192.0.2.4/24 router Some(192.0.2.1)");
    assert_eq!(check(run, "min-ping-rc"), "0", "{}", run.describe());
}

#[test]
fn http_serves_at_its_minimum_memory() {
    let run = expect_run(lab(), "httpmin");
    assert_console_contains(run, &format!("memory: {} MiB,", http_min_mib()));
    assert_console_contains(run, "boot timeline:");
    assert_eq!(check(run, "min-ping-rc"), "0", "{}", run.describe());
    assert_result(run, &GuestResult::Poweroff);
}

#[test]
fn dom0_pings_the_guest() {
    let run = http();
    assert_eq!(check(run, "ping-rc"), "0", "{}", run.describe());
}

#[test]
fn dom0_fetches_the_status_page_and_json() {
    let run = http();
    assert_eq!(check(run, "wget-rc"), "0", "{}", run.describe());
    assert_eq!(check(run, "json-rc"), "0", "{}", run.describe());
    let has = |p: &str| run.xl_output.iter().any(|l| l.starts_with(p));
    assert!(has("[xl page] uptime_ms "), "{}", run.describe());
    assert!(has("[xl page] grants_active "), "{}", run.describe());
    assert!(has("[xl json] {\"uptime_ms\":"), "{}", run.describe());
}

#[test]
fn the_vif_detaches_and_reattaches_and_the_service_answers_again() {
    let run = http();
    assert_eq!(check(run, "detach-rc"), "0", "{}", run.describe());
    assert_eq!(check(run, "attach-rc"), "0", "{}", run.describe());
    assert_console_contains(run, "hotplug: vif/0: detached #1 (backend Closing (5))");
    assert_eq!(check(run, "wget-after-reattach-rc"), "0", "{}", run.describe());
    assert_eq!(check(run, "ping-after-reattach-rc"), "0", "{}", run.describe());
    assert!(
        run.xl_output.iter().any(|l| l.starts_with("[xl page2] attachments 2")),
        "{}",
        run.describe()
    );
    // Every grant of the first attachment was revoked.
    assert_console_contains(run, "still mapped and kept");
    assert!(
        run.console
            .iter()
            .any(|l| l.contains("hotplug: vif/0: detached #1") && l.contains(", 0 still mapped")),
        "{}",
        run.describe()
    );
    assert_console_contains(run, "hotplug: vif/0: attached #2 in ");
    assert_result(run, &GuestResult::Poweroff);
}

/// A host check of the port choice (no boot): every queue gets
/// `PER_QUEUE` flows, each on the same queue both ways, from distinct
/// ports in the unprivileged range.
#[test]
fn the_echo_ports_take_every_queue_both_ways() {
    let ports = echo_ports();
    eprintln!("echo ports: {ports:?}");
    assert_eq!(ports.len(), QUEUES * PER_QUEUE, "{ports:?}");
    for q in 0..QUEUES {
        let on: Vec<u16> = ports.iter().copied().filter(|&p| echo_queues(p) == (q, q)).collect();
        assert_eq!(on.len(), PER_QUEUE, "queue {q}: {ports:?}");
    }
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ports.len());
    assert!(ports.iter().all(|&p| p >= 1024));
    // The same through the frames the guest builds and parses.
    let frame = |src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16| {
        let mut f = vec![0u8; 54];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    };
    for &p in &ports {
        let (tx, rx) = echo_queues(p);
        assert_eq!(pv_drivers::netfront::flow::select_queue(&frame(GUEST, DOM0, 7, p), QUEUES), tx);
        assert_eq!(steering().queue(&frame(DOM0, GUEST, p, 7)), rx);
    }
}

#[test]
fn a_thousand_echo_round_trips_come_back_byte_for_byte() {
    let run = echo();
    let ports = echo_ports();
    let seed = check(run, "echo-seed");
    let mut trips = 0;
    for c in 1..=ports.len() {
        let v = check(run, &format!("echo-client {c}"));
        let f: Vec<&str> = v.split_whitespace().collect();
        assert_eq!(f.get(2), Some(&"bad"), "{v}");
        assert_eq!(f[3], "0", "client {c} (sizes from seed {seed}): {v}\n{}", run.describe());
        // Each connection came from the port chosen for it.
        assert_eq!(f.get(5), Some(&ports[c - 1].to_string().as_str()), "client {c}: {v}");
        trips += f[1].parse::<u32>().unwrap();
    }
    assert_eq!(trips, 1000);
    assert_eq!(check(run, "echo-nettool-rc"), "0", "{}", run.describe());
    assert_eq!(check(run, "echo-ping-rc"), "0", "{}", run.describe());
    assert_console_contains(run, "net: counters");
    // netback offers 2 queues here (one per dom0 vCPU).
    assert_console_contains(run, "2 queue(s) in use");
    let line = run
        .console
        .iter()
        .find_map(|l| l.split("net: queues: ").nth(1))
        .unwrap_or_else(|| panic!("no queues line\n{}", run.describe()));
    let n: Vec<u64> =
        line.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    // "2 in use: q0 rx A tx B; q1 rx C tx D;"
    assert_eq!(n.len(), 7, "{line}");
    assert_eq!(n[0], 2, "{line}");
    let (q0_rx, q0_tx, q1_rx, q1_tx) = (n[2], n[3], n[5], n[6]);
    // TX: the guest's replies of two connections hash to each queue (see
    // `echo_ports`), whatever netback does. Each connection moves
    // megabytes: far more than 100 packets each way (ARP and ping take
    // queue 0 only, a handful).
    assert!(q0_tx >= 100 && q1_tx >= 100, "{line}");
    let steered = run.console.iter().any(|l| l.contains(STEERING_LINE));
    if steered {
        // RX: netback steers by our key and table, so dom0's packets of
        // two connections arrive on each queue.
        assert!(q0_rx >= 100 && q1_rx >= 100, "{line}");
    } else {
        // A netback without the control ring picks RX queues itself (at
        // random per connection): only the total is certain.
        assert!(
            run.console.iter().any(|l| l.contains("net: rss: ")),
            "no RX steering outcome logged\n{}",
            run.describe()
        );
        eprintln!("note: RX not steered by the guest; {line}");
        assert!(q0_rx + q1_rx >= 200, "{line}");
    }
    assert_result(run, &GuestResult::Poweroff);
}

/// The offloads are negotiated and used: after the echo and bulk phases
/// (every byte checked by nettool), dom0 sent GSO packets over several
/// slots, checksums it vouched for were not summed again, the guest sent
/// TSO segments for netback to cut (smoltcp's fork), and every TCP
/// segment it sent went out with a blank checksum for netback.
/// The guest's last console line with `marker`, and its `key value`
/// pairs after it (every value a number).
fn counters<'a>(
    run: &'a GuestRun,
    marker: &str,
) -> (&'a str, std::collections::HashMap<&'a str, u64>) {
    let line = run
        .console
        .iter()
        .rev()
        .find_map(|l| l.split(marker).nth(1))
        .unwrap_or_else(|| panic!("no '{marker}' line\n{}", run.describe()));
    let w: Vec<&str> = line.split_whitespace().collect();
    let pairs = w.chunks(2).map(|p| match p {
        [k, v] => (*k, v.parse::<u64>().unwrap_or_else(|_| panic!("{k}: {line}"))),
        _ => panic!("a key without a value: {line}"),
    });
    (line, pairs.collect())
}

#[test]
fn offloads_are_negotiated_and_used_both_ways() {
    let run = echo();
    assert_eq!(check(run, "bulk-send-rc"), "0", "{}", run.describe());
    assert_eq!(check(run, "bulk-recv-rc"), "0", "{}", run.describe());
    assert_console_contains(
        run,
        "net: offloads: rx-csum on rx-gso-tcpv4 on tx-csum on tx-gso-tcpv4 on",
    );
    let (line, f) = counters(run, "net: offload counters: ");
    for key in ["rx-gso", "rx-multi-slot", "tx-gso", "tx-multi-slot", "tx-csum-blank"] {
        assert!(f[key] > 0, "{key} is 0: {line}");
    }
    assert!(f["rx-csum-validated"] + f["rx-csum-blank"] > 0, "{line}");
    assert_eq!(f["rx-csum-bad"], 0, "{line}");
    assert_eq!(f["tx-csum-sw"], 0, "{line}");
}

/// A pass's TX notifications, owed while the service loop works, go into
/// Xen in the multicall that puts the vCPU to sleep (docs/exits.md): after
/// the bulk transfers and 1,000 round trips, a PV guest's blocks have
/// carried some; neither guest's carried count exceeds the calls it made.
#[test]
fn a_sleep_carries_the_passs_notifications_into_xen() {
    let run = echo();
    let (line, f) = counters(run, "net: efficiency ");
    let get = |k: &str| *f.get(k).unwrap_or_else(|| panic!("no {k}: {line}"));
    let made = get("tx-notify") + get("rx-notify") + get("timer-sets");
    assert!(get("blocks") > 0, "{line}");
    // PVH makes each call alone before its `hlt` (docs/exits.md): only
    // notifications owed twice for one port are saved there.
    if !xen_tests::guest_mode().is_pvh() {
        assert!(get("carried") > 0, "no call rode in a block: {line}");
    }
    assert!(get("carried") <= made, "more carried than made: {line}");
}

#[test]
fn echo_keeps_serving_while_idle_clients_hold_connections_until_their_timeout() {
    let run = echo();
    // The round trips above all came back (checked there); here: the 16
    // idle connections held meanwhile were closed by the guest, without
    // an answer, after the idle timeout and not before.
    let line = check(run, "echo-hold");
    let (_, kv) = xtask::httptool::parse_line(line).expect("an HTTPTOOL line");
    let v = |k| xtask::httptool::value(&kv, k).unwrap_or(-1.0);
    assert_eq!(v("closed"), 16.0, "{line}\n{}", run.describe());
    assert_eq!(v("no_answer"), 16.0, "{line}");
    assert!(v("min_ms") >= ECHO_IDLE_MS as f64 - 500.0, "{line}");
    assert_eq!(check(run, "echo-nettool-rc"), "0", "{}", run.describe());
    assert!(
        run.console
            .iter()
            .any(|l| l.contains("echo: port 7: accepted ") && l.contains("(idle 16 ")),
        "the echo listener counts the 16 idle timeouts\n{}",
        run.describe()
    );
}

/// Debian 12's netback has the control ring: the guest's RX steering is
/// in force (the echo test's RX figures rely on it there).
#[test]
fn netback_takes_the_guests_rx_steering() {
    let run = echo();
    assert_console_contains(run, STEERING_LINE);
}
