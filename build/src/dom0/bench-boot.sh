# shellcheck shell=sh
# `cargo xtask bench boot` in dom0 (build/src/bootbench.rs), sourced by
# its scenario script after lib.sh. The addresses come from the
# environment, set by the script before sourcing this:
#   BB_BRIDGE_IP (with prefix), BB_HTTP_IP, BB_HTTP_MAC, BB_LINUX_IP, BB_LINUX_MAC
#
# bb_setup: the bridge, permanent neighbour entries for both guests (no
#   ARP round trip is timed), and the BOOTBENCH-ENV line.
# bb_run KIND NAME MEM LIMIT IP: one timed run; prints "[xl boot] ..."
#   and the @@GUEST lines run_guest prints; 0 if it reached ready.
# bb_ip KIND: the address dom0 pings for KIND (none for hello). A KIND
#   ending in -pvh is the same guest booted as PVH.

bb_now() { read -r _u _ < /proc/uptime; echo "${_u%.*}${_u#*.}"; }
bb_run() {
    _k=$1; _n=$2; _m=$3; _lim=$4; _ip=$5
    # hello and hello-pvh are ready when they have shut down.
    _b=${_k%-pvh}
    _cfg=/tmp/bb-$_n.cfg
    _log=$LAB_CONSOLE_DIR/guest-$_n.log
    _xl=/var/log/xen/xl-$_n.log
    sed -e "s/^name = .*/name = \"$_n\"/" -e "s/^memory = .*/memory = $_m/" \
        "/etc/xen-lab/guests/bb-$_k.cfg" > "$_cfg"
    rm -f "$_log" "$_xl" /tmp/bb-ping
    _pp=
    if [ -n "$_ip" ]; then ping -i 0.05 "$_ip" > /tmp/bb-ping 2>&1 & _pp=$!; fi
    echo "@@GUEST-CREATE name=$_n uptime=$(lab_uptime)"
    _t0=$(bb_now)
    if ! xl create "$_cfg" > /tmp/bb-create.out 2>&1; then
        _t1=$(bb_now)
        [ -n "$_pp" ] && kill $_pp 2>/dev/null
        sed 's/^/[xl] /' /tmp/bb-create.out | head -n 5
        echo "[xl boot] name=$_n kind=$_k mem=$_m result=create-failed create_cs=$((_t1 - _t0))"
        echo "@@GUEST name=$_n domid=none result=create-failed"
        lab_dump_console "$_n"
        return 1
    fi
    _t1=$(bb_now)
    _d=$(xl domid "$_n" 2>/dev/null)
    echo "@@GUEST-UP name=$_n domid=$_d uptime=$(lab_uptime)"
    _tc=; _tr=; _res=
    while :; do
        _u=$(bb_now)
        [ -z "$_tc" ] && [ -s "$_log" ] && _tc=$_u
        if [ "$_b" = hello ]; then
            if grep -q "has shut down" "$_xl" 2>/dev/null; then _tr=$_u; _res=ready; break; fi
        else
            if grep -q "bytes from" /tmp/bb-ping 2>/dev/null; then _tr=$_u; _res=ready; break; fi
            if grep -q "has shut down" "$_xl" 2>/dev/null; then _res=died; break; fi
            if [ -n "$_pp" ] && ! kill -0 $_pp 2>/dev/null; then
                ping -i 0.05 "$_ip" >> /tmp/bb-ping 2>&1 & _pp=$!
            fi
        fi
        [ $((_u - _t0)) -ge $((_lim * 100)) ] && { _res=timeout; break; }
        sleep 0.02
    done
    [ -z "$_tc" ] && [ -s "$_log" ] && _tc=$(bb_now)
    [ -n "$_pp" ] && kill $_pp 2>/dev/null
    echo "[xl boot] name=$_n kind=$_k mem=$_m result=$_res create_cs=$((_t1 - _t0)) console_cs=$([ -n "$_tc" ] && echo $((_tc - _t0))) ready_cs=$([ -n "$_tr" ] && echo $((_tr - _t0)))"
    # Services (and anything not ready) are destroyed; hello powered off.
    if [ "$_b" != hello ] || [ "$_res" != ready ]; then
        sleep 0.3
        # A guest that never got ready: where its vCPUs were (lib.sh).
        [ "$_res" = timeout ] && lab_vcpu_dump "$_n"
        xl destroy "$_n" 2>/dev/null
    fi
    _i=0
    while [ -n "$_d" ] && xenstore-exists "/local/domain/$_d" 2>/dev/null && [ $_i -lt 300 ]; do
        sleep 0.1; _i=$((_i + 1))
    done
    _code=$(sed -n 's/.*has shut down, reason code \([0-9]*\).*/\1/p' "$_xl" 2>/dev/null | tail -n 1)
    if [ "$_res" = ready ] && [ "$_b" = hello ]; then _r=$(lab_reason "$_code");
    elif [ "$_res" = ready ]; then _r=destroyed-when-ready;
    elif [ -n "$_code" ]; then _r=$(lab_reason "$_code");
    else _r=$_res; fi
    sleep 0.3
    echo "@@GUEST name=$_n domid=${_d:-none} result=$_r uptime=$(lab_uptime)"
    lab_dump_console "$_n"
    # Let the backends settle before the next domain.
    sleep 0.5
    [ "$_res" = ready ]
}
bb_ip() {
    case $1 in
        http|http-pvh) echo "$BB_HTTP_IP" ;;
        linux|linux-pvh) echo "$BB_LINUX_IP" ;;
    esac
}

bb_setup() {
    if [ ! -d /sys/class/net/xenbr0 ]; then
        ip link add xenbr0 type bridge
        ip addr add "$BB_BRIDGE_IP" dev xenbr0
        ip link set xenbr0 up
    fi
    ip neigh replace "$BB_HTTP_IP" lladdr "$BB_HTTP_MAC" dev xenbr0 nud permanent
    ip neigh replace "$BB_LINUX_IP" lladdr "$BB_LINUX_MAC" dev xenbr0 nud permanent
    echo "BOOTBENCH-ENV cpu=\"$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)\" dom0_cpus=$(grep -c ^processor /proc/cpuinfo) kernel=$(uname -r)"
}
