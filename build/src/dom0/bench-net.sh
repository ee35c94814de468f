# shellcheck shell=sh
# `cargo xtask bench net` in dom0 (build/src/netbench.rs), sourced by its
# scenario scripts after lib.sh. nettool (build/nettool/nettool.c) is at
# /bin/nettool; its lines are tagged "[xl bench] NAME ..." for the host.
#
# nb_bridge: dom0's bridge xenbr0 at 192.0.2.1/24, once.
# nb_phases NAME IP BYTES REQUESTS SIZE MARKS: ping, then BYTES to the
#   guest's discard port (9), BYTES from its source port (19), REQUESTS
#   round trips of SIZE bytes to its echo port (7). With MARKS=1 an
#   `xl sysrq NAME c` before and after each phase has our guest print its
#   counters ("net: efficiency"), waited for; with MARKS=2 the Linux DomU
#   prints its vif's /proc/interrupts lines ("linux-irq: ..."), waited for.
# nb_ours NAME CFG IP BYTES REQUESTS SIZE: our guest (app=echo) measured,
#   then shut down.
# nb_linux NAME CFG IP BYTES REQUESTS SIZE: the Linux DomU (nettool serve)
#   measured, then destroyed.

nb_bridge() {
    if [ ! -d /sys/class/net/xenbr0 ]; then
        ip link add xenbr0 type bridge
        ip addr add 192.0.2.1/24 dev xenbr0
        ip link set xenbr0 up
    fi
}

# nb_mark NAME MARKS K: the K-th counters of NAME (MARKS 1: ours, 2:
# Linux, 0: none).
nb_mark() {
    case "$2" in
        1)
            xl sysrq "$1" c
            wait_console "$1" 'net: efficiency' "$3" 30
            ;;
        2) nb_linux_mark "$1" "$3" ;;
    esac
}

# nb_linux_mark NAME K: a line written to the Linux DomU's console tty
# (xenconsoled's pty, as `xl console` would type it) has its /init print
# the vif's interrupt counts (linux-domu/net-init.sh), the K-th time;
# waited for. No packet on the vif: the read itself adds no event.
nb_linux_mark() {
    _nb_tty=$(xenstore-read "/local/domain/$(cat "/tmp/lab-domid-$1")/console/tty" 2>/dev/null)
    if [ -z "$_nb_tty" ]; then
        echo "[xl check] $1-irq-mark-$2 no console tty"
        return 1
    fi
    echo "irq-mark $2" > "$_nb_tty"
    wait_console "$1" 'linux-irq: end' "$2" 30
}

# nb_tool NAME ARGS...: nettool ARGS, its output tagged for the host.
nb_tool() {
    _nb_name=$1
    shift
    nettool "$@" 2>&1 | sed "s/^/[xl bench] $_nb_name /"
}

nb_phases() {
    ping -c 2 -W 5 "$2" > /dev/null 2>&1
    echo "[xl check] $1-ping-rc $?"
    nb_mark "$1" "$6" 1
    nb_tool "$1" send "$2" 9 "$3"
    nb_mark "$1" "$6" 2
    nb_tool "$1" recv "$2" 19 "$3"
    nb_mark "$1" "$6" 3
    nb_tool "$1" rr "$2" 7 "$4" "$5"
    nb_mark "$1" "$6" 4
}

nb_ours() {
    nb_bridge
    run_guest_start "$1" "$2" || return 1
    if wait_console "$1" 'echo: ready' 1 90 && wait_console "$1" 'connected: mac' 1 30; then
        nb_phases "$1" "$3" "$4" "$5" "$6" 1
        xl shutdown "$1"
        run_guest_wait "$1" 60
    else
        run_guest_wait "$1" 1
    fi
}

nb_linux() {
    nb_bridge
    run_guest_start "$1" "$2" || return 1
    if wait_console "$1" 'NETTOOL serve ready' 1 240; then
        nb_phases "$1" "$3" "$4" "$5" "$6" 2
    fi
    xl destroy "$1"
    run_guest_wait "$1" 30
}
