# shellcheck shell=sh
# `cargo xtask bench migrate`, in dom0 (build/src/migbench.rs). Sourced
# after dom0's lib.sh; `mb_guest NAME IP ROUNDS MIGRATIONS` runs the steps
# on a guest that answers ping at IP:
# - ROUNDS times `xl save` + `xl restore` (lib.sh's lab_save/lab_restore
#   print "[xl mobility] save|restore name=N rc=R ms=T [bytes=B]");
# - MIGRATIONS times `xl migrate` to this host through migcount (pages of
#   each pre-copy round), under a ping every 10 ms that starts 3 s before
#   (its gaps: the downtime, and the gaps before: what this machine does
#   to a 10 ms ping anyway): "[xl mig] N window round=R start_ms end_ms",
#   "[xl mig] N outage round=R from_ms= to_ms= ms=", "[xl mig] N round=R
#   MIGCOUNT ...". With MIGRATIONS=0 one attempt is made and xl's error
#   printed ("[xl mig] N refused ...").
if [ ! -d /sys/class/net/xenbr0 ]; then
    ip link add xenbr0 type bridge
    ip addr add 192.0.2.1/24 dev xenbr0
    ip link set xenbr0 up
fi
mb_ms() { read -r _u _ < /proc/uptime; MB_MS=${_u%.*}${_u#*.}0; }
# Waits (at most $2 s) until IP $1 answers a ping.
mb_ping() {
    _n=0
    while [ "$_n" -lt "$2" ]; do
        ping -c 1 -W 1 "$1" > /dev/null 2>&1 && return 0
        _n=$((_n + 1))
    done
    return 1
}
mb_guest() { # NAME IP ROUNDS MIGRATIONS
    mb_ping "$2" 120; echo "[xl mig] $1 first-ping rc=$?"
    _r=1
    while [ "$_r" -le "$3" ]; do
        if lab_save "$1" "/tmp/$1.save"; then
            lab_restore "$1" "/tmp/$1.save"
        fi
        rm -f "/tmp/$1.save"
        mb_ping "$2" 180; echo "[xl mig] $1 restore-ping round=$_r rc=$?"
        _r=$((_r + 1))
    done
    if [ "$4" -eq 0 ]; then
        lab_migrate "$1" || grep -m 1 "error" /tmp/xl-migrate.out | sed "s/^/[xl mig] $1 refused /"
        return
    fi
    _r=1
    while [ "$_r" -le "$4" ]; do
        nettool ping "$2" 10 /tmp/mb.last > /tmp/mb-ping.log 2>&1 &
        _pw=$!
        sleep 3
        mb_ms; _t0=$MB_MS
        lab_migrate "$1" "migcount | xl migrate-receive"; _rc=$?
        mb_ms; _t1=$MB_MS
        mb_ping "$2" 180
        sleep 2
        kill -TERM "$_pw"; wait "$_pw"
        echo "[xl mig] $1 window round=$_r rc=$_rc start_ms=$_t0 end_ms=$_t1"
        sed -n "s/^NETTOOL ping outage /[xl mig] $1 outage round=$_r /p" /tmp/mb-ping.log
        sed -n "s/^NETTOOL ping sent/[xl mig] $1 pings round=$_r sent/p" /tmp/mb-ping.log
        grep "MIGCOUNT" /tmp/xl-migrate.out | sed "s/^/[xl mig] $1 round=$_r /"
        _r=$((_r + 1))
    done
}
