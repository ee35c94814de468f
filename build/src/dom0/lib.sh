# shellcheck shell=dash
# (busybox ash, which runs it, has `local` as dash has.)
# The dom0 shell library for scenarios (sourced by /init).
#
# run_guest NAME CFG TIMEOUT
#   Creates the domain NAME from CFG paused, prints `xl list`, streams its
#   console live as "[NAME] line", unpauses it and waits up to TIMEOUT
#   seconds for it to end (then dumps its vCPUs, lab_vcpu_dump, and
#   `xl destroy`s it). Afterwards prints
#     @@GUEST name=NAME domid=N result=poweroff|reboot|suspend|crash|watchdog|soft_reset|timeout|create-failed|unknown
#   and the complete console log between @@CONSOLE-BEGIN/@@CONSOLE-END, one
#   "@@C|NAME|line" per line. Returns 0 for poweroff, 1 otherwise.
#
# run_guest_start NAME CFG / run_guest_wait NAME TIMEOUT
#   The same in two halves, to run several guests at once.
#
# wait_console NAME TEXT COUNT SECONDS
#   Waits until TEXT (a grep pattern) is in NAME's console log COUNT times;
#   prints "[xl check] seen ..." or "[xl check] timeout ..." (then dumps
#   NAME's vCPUs as "[xl ctx N] ..." lines) and returns 1.

LAB_CONSOLE_DIR=/var/log/xen/console

lab_uptime() { cut -d' ' -f1 /proc/uptime; }

lab_reason() {
    case "$1" in
        0) echo poweroff ;;
        1) echo reboot ;;
        2) echo suspend ;;
        3) echo crash ;;
        4) echo watchdog ;;
        5) echo soft_reset ;;
        *) echo unknown ;;
    esac
}

# lab_wait_log_closed NAME TRIES: waits (0.1 s a try) until xenconsoled
# no longer has NAME's console log open; 1 if it still has after TRIES.
lab_wait_log_closed() {
    local tries="$2" n=0 pid fd open
    pid=$(cat /run/xen/xenconsoled.pid 2>/dev/null)
    [ -n "$pid" ] || return 1
    while :; do
        open=
        for fd in "/proc/$pid/fd/"*; do
            case "$(readlink "$fd" 2>/dev/null)" in
                */guest-$1.log) open=1; break ;;
            esac
        done
        if [ -z "$open" ]; then
            # Serial log only: how long xenconsoled took.
            echo "lab: xenconsoled closed guest-$1.log after $n waits of 0.1 s"
            return 0
        fi
        n=$((n + 1))
        tries=$((tries - 1))
        [ "$tries" -le 0 ] && return 1
        sleep 0.1
    done
}

# Dumps the guest's console log for the host, complete.
lab_dump_console() {
    local name="$1" log n
    log=$LAB_CONSOLE_DIR/guest-$name.log
    n=0
    echo "@@CONSOLE-BEGIN name=$name"
    if [ -s "$log" ]; then
        sed "s/^/@@C|$name|/" "$log"
        [ "$(tail -c 1 "$log" | wc -l)" -eq 1 ] || echo
        n=$(sed -n '$=' "$log")
    fi
    echo "@@CONSOLE-END name=$name lines=${n:-0}"
}

# Follows a console log live, printing complete lines as "[NAME] line",
# polling its size every 0.2 s, until /tmp/lab-follow-NAME is removed.
lab_follow() {
    local name="$1" log="$2" off=0 size n tmp="/tmp/lab-chunk-$1"
    local last=
    while :; do
        [ -e "/tmp/lab-follow-$name" ] || last=1
        size=$(wc -c < "$log" 2>/dev/null || echo 0)
        if [ "$size" -gt "$off" ]; then
            tail -c +$((off + 1)) "$log" | head -c $((size - off)) > "$tmp"
            if [ -z "$last" ] && [ "$(tail -c 1 "$tmp" | wc -l)" -ne 1 ]; then
                # Keep a partial last line for the next round.
                sed '$d' "$tmp" > "$tmp.2"
                mv "$tmp.2" "$tmp"
            fi
            n=$(wc -c < "$tmp")
            if [ "$n" -gt 0 ]; then
                sed "s/^/[$name] /" "$tmp"
                [ "$(tail -c 1 "$tmp" | wc -l)" -eq 1 ] || echo
                off=$((off + n))
            fi
        fi
        [ -n "$last" ] && break
        sleep 0.2
    done
    rm -f "$tmp"
}

lab_stop_follow() {
    local f="/tmp/lab-follow-$1" pid
    [ -e "$f" ] || return 0
    pid=$(cat "$f")
    rm -f "$f"
    # One last round of the loop prints what is left.
    [ -n "$pid" ] && wait "$pid" 2>/dev/null
}

run_guest_start() {
    local name="$1" cfg="$2" log domid
    log=$LAB_CONSOLE_DIR/guest-$name.log
    rm -f "$log" "/var/log/xen/xl-$name.log" "/var/log/xen/xl-$name--incoming.log" "/tmp/lab-migrated-$name"
    echo "@@GUEST-CREATE name=$name uptime=$(lab_uptime)"
    if ! xl create -p "$cfg" > "/tmp/xl-create-$name.out" 2>&1; then
        sed "s/^/[xl] /" "/tmp/xl-create-$name.out"
        echo "@@GUEST name=$name domid=none result=create-failed"
        lab_dump_console "$name"
        return 1
    fi
    domid=$(xl domid "$name" 2>/dev/null)
    echo "$domid" > "/tmp/lab-domid-$name"
    echo "@@GUEST-UP name=$name domid=$domid uptime=$(lab_uptime)"
    xl list | sed "s/^/[xl list] /"
    # Live view of the console (display only: the host takes the complete
    # log from lab_dump_console).
    : >> "$log"
    : > "/tmp/lab-follow-$name"
    lab_follow "$name" "$log" &
    echo $! > "/tmp/lab-follow-$name"
    xl unpause "$name" || { echo "[xl] unpause $name failed"; return 1; }
    return 0
}

run_guest_wait() {
    local name="$1" timeout="${2:-60}" domid deadline up result xllog code i tick=0 dumped=
    domid=$(cat "/tmp/lab-domid-$name" 2>/dev/null)
    read -r up _ < /proc/uptime
    deadline=$((${up%.*} + timeout))
    result=
    # The xl monitor process logs why the domain ended. After a
    # migration (the last mobility step: lab_migrate leaves a mark,
    # lab_restore takes it) the receiving xl's monitor logs under the
    # domain's first name there, NAME--incoming.
    xllog=/var/log/xen/xl-$name.log
    [ -e "/tmp/lab-migrated-$name" ] && xllog=/var/log/xen/xl-$name--incoming.log
    # Cheap polling (xenstore-exists, not xl): dom0 shares the CPUs with
    # the guest under TCG. libxl removes the domain's xenstore directory
    # once it has destroyed it.
    while if [ -n "$domid" ]; then xenstore-exists "/local/domain/$domid"; else xl domid "$name"; fi > /dev/null 2>&1; do
        read -r up _ < /proc/uptime
        tick=$((tick + 1))
        # A crashed domain is kept (the lab's on_crash = "preserve") so
        # that its vCPUs can be read: a crash the guest could not report
        # (a PV stack overflow: Xen cannot push the fault's frame and ends
        # the domain itself) leaves no other evidence. Looked for twice a
        # second; the host names the place (build/src/crashsite.rs).
        if [ -z "$dumped" ] && [ $((tick % 5)) -eq 0 ] && grep -q "has shut down, reason code 3 " "$xllog" 2>/dev/null; then
            dumped=1
            echo "[xl check] $name crashed: its vCPUs as Xen left them, before xl destroy"
            lab_vcpu_dump "$name" 1
            xl destroy "$name"
            continue
        fi
        if [ "${up%.*}" -ge "$deadline" ]; then
            result=timeout
            xl list | sed "s/^/[xl list] /"
            # Where it was, while it still is (the host has no other
            # evidence of a guest that ran out of time).
            echo "[xl check] $name still running after $timeout s: its vCPUs before xl destroy"
            lab_vcpu_dump "$name"
            xl destroy "$name"
            break
        fi
        sleep 0.1
    done
    if [ -z "$result" ]; then
        code=
        i=0
        while [ $i -lt 20 ]; do
            code=$(sed -n 's/.*has shut down, reason code \([0-9]*\).*/\1/p' "$xllog" 2>/dev/null | tail -n 1)
            [ -n "$code" ] && break
            i=$((i + 1))
            sleep 0.1
        done
        result=$(lab_reason "$code")
        [ "$result" = unknown ] && [ -f "$xllog" ] && sed "s/^/[xl log] /" "$xllog"
    fi
    # xenconsoled writes the guest's output to the log as it reads the
    # ring, and closes the log once it has noticed the domain is gone:
    # wait for that (a hang guard of 10 s, reported) before reading it.
    lab_wait_log_closed "$name" 100 || echo "[xl check] xenconsoled still has guest-$name.log open after 10 s"
    lab_stop_follow "$name"
    # A migrated domain's output may be under its receiving name.
    if [ -f "$LAB_CONSOLE_DIR/guest-$name--incoming.log" ]; then
        lab_wait_log_closed "$name--incoming" 100
        cat "$LAB_CONSOLE_DIR/guest-$name--incoming.log" >> "$LAB_CONSOLE_DIR/guest-$name.log"
        rm -f "$LAB_CONSOLE_DIR/guest-$name--incoming.log"
    fi
    echo "@@GUEST name=$name domid=${domid:-none} result=$result uptime=$(lab_uptime)"
    lab_dump_console "$name"
    [ "$result" = poweroff ]
}

run_guest() {
    run_guest_start "$1" "$2" || return 1
    run_guest_wait "$1" "${3:-60}"
}

# lab_vcpu_dump NAME [SAMPLES]: where each of the domain's vCPUs is, twice a
# second apart (a stalled guest: is it spinning, and where?). xenctx -f
# follows the frame pointers the image keeps; the addresses are the
# image's (build/scripts/xl-ctx-symbols.sh LOG target/xen/guest.elf
# names them). xenctx prints a call trace
# only for a rip at or above its "kernel start", by default Linux's
# 0xffffffff80000000: the image is linked at 0x400000 (platform/link.ld,
# __virt_base), so -k says so, or an HVM guest's dump stops at the code
# bytes. -n 16: the walk may follow frames up to 16 pages above rsp (a
# secondary vCPU's stack is 16 pages, STACK_PAGES in
# platform/src/smp/mod.rs); -l 4: a few raw stack
# lines, the trace is what matters. Each xenctx gets LAB_CTX_SECS
# seconds at most (the first took 4 s under TCG at load 3: it pauses the
# domain, reads it and unpauses it), the xl domid before 5 s, so a dump
# takes at most 2 x (LAB_CTX_SECS + 1) + 5 s: a hung xenctx cannot eat
# the budget of the run that asked for the dump.
LAB_CTX_SECS=10
lab_vcpu_dump() {
    local d s
    if ! d=$(timeout 5 xl domid "$1" 2>/dev/null); then
        echo "[xl ctx 1] no vCPUs to dump: xl domid $1 found no domain (or gave no answer in 5 s)"
        return 0
    fi
    # A second sample (SAMPLES, default 2) tells a spin from a wait; a
    # crashed domain does not move, so one is enough there.
    for s in $(seq 1 "${2:-2}"); do
        {
            timeout "$LAB_CTX_SECS" xenctx -f -C -k 0x400000 -n 16 -l 4 "$d"
            # 124: coreutils' timeout; busybox's kills with SIGTERM.
            case $? in 124 | 143) echo "xenctx gave no answer in $LAB_CTX_SECS s" ;; esac
        } 2>&1 | head -n 200 | sed "s/^/[xl ctx $s] /"
        sleep 1
    done
}

# lab_budget_watch SCENARIO SECS: started in the background beside each
# scenario (Scenario::shell in build/src/scenario.rs), killed when it
# ends. If the scenario still runs after SECS, a little before the host's
# budget for it runs out and the host kills QEMU, dumps the vCPUs of
# every guest domain still there: the only evidence of where a scenario
# stuck in a wait of its own was.
lab_budget_watch() {
    local n d _
    sleep "$2"
    echo "[xl check] scenario $1 still running after $2 s, near its budget: the vCPUs of its domains"
    timeout 5 xl list 2>/dev/null | while read -r n d _; do
        case "$d" in
            '' | 0 | *[!0-9]*) ;; # the heading, dom0
            *) lab_vcpu_dump "$n" ;;
        esac
    done
}

wait_console() {
    _log=$LAB_CONSOLE_DIR/guest-$1.log
    _tries=$(($4 * 5))
    while :; do
        # After a migration xenconsoled may log under the receiving
        # domain's first name (NAME--incoming).
        _c=$(cat "$_log" "$LAB_CONSOLE_DIR/guest-$1--incoming.log" 2>/dev/null | grep -c -- "$2")
        [ "${_c:-0}" -ge "$3" ] && break
        _tries=$((_tries - 1))
        if [ "$_tries" -le 0 ]; then
            echo "[xl check] timeout waiting for '$2' x$3 in $1"
            lab_vcpu_dump "$1"
            return 1
        fi
        sleep 0.2
    done
    echo "[xl check] seen '$2' x$3 in $1"
}

# --- Save, restore, migration (tests/tests/mobility.rs) ---
#
# Each prints one "[xl mobility] WHAT name=N rc=R ms=T ..." line (collected
# into the guest's xl output) and, on failure, xl's own output as
# "[xl out] ...". After a restore or a migration the domain has a new id:
# /tmp/lab-domid-NAME follows it, so run_guest_wait waits for the right one.

# Milliseconds of uptime in LAB_MS, without forking.
lab_ms() { read -r _up _ < /proc/uptime; LAB_MS=${_up%.*}${_up#*.}0; }

# lab_domid_refresh NAME: records the domain's id now.
lab_domid_refresh() {
    _d=$(xl domid "$1" 2>/dev/null) || return 1
    echo "$_d" > "/tmp/lab-domid-$1"
}

# lab_save NAME FILE [-c]: xl save (-c: checkpoint, the domain carries on).
lab_save() {
    lab_ms; _t0=$LAB_MS
    xl save ${3:+"$3"} "$1" "$2" > /tmp/xl-save.out 2>&1; _rc=$?
    lab_ms
    echo "[xl mobility] save$3 name=$1 rc=$_rc ms=$((LAB_MS - _t0)) bytes=$(wc -c < "$2" 2>/dev/null || echo 0)"
    [ $_rc -eq 0 ] || sed 's/^/[xl out] /' /tmp/xl-save.out
    return $_rc
}

# lab_restore NAME FILE: xl restore, then follows the new domain id.
lab_restore() {
    lab_ms; _t0=$LAB_MS
    xl restore "$2" > /tmp/xl-restore.out 2>&1; _rc=$?
    lab_ms
    lab_domid_refresh "$1"
    rm -f "/tmp/lab-migrated-$1"
    echo "[xl mobility] restore name=$1 rc=$_rc ms=$((LAB_MS - _t0)) domid=$(cat "/tmp/lab-domid-$1")"
    [ $_rc -eq 0 ] || sed 's/^/[xl out] /' /tmp/xl-restore.out
    return $_rc
}

# lab_migrate NAME [RECEIVER]: live migration to this same host (an
# empty -s runs the receiver, `xl migrate-receive` unless RECEIVER names
# another command line, directly: no ssh), then follows the new domain
# id. xl's output stays in /tmp/xl-migrate.out.
lab_migrate() {
    lab_ms; _t0=$LAB_MS
    xl migrate -s "" "$1" "${2:-xl migrate-receive}" > /tmp/xl-migrate.out 2>&1; _rc=$?
    lab_ms
    lab_domid_refresh "$1"
    [ $_rc -eq 0 ] && : > "/tmp/lab-migrated-$1"
    echo "[xl mobility] migrate name=$1 rc=$_rc ms=$((LAB_MS - _t0)) domid=$(cat "/tmp/lab-domid-$1")"
    [ $_rc -eq 0 ] || sed 's/^/[xl out] /' /tmp/xl-migrate.out
    return $_rc
}
