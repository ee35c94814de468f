# shellcheck shell=sh
# Timing against a running `nettool ping IP MS FILE` (build/nettool), which
# writes the uptime (ms) of its last reply into FILE; PING_LAST names it.
# Milliseconds of uptime in NOW, without forking (nettool ping's clock).
# shellcheck disable=SC2034 # NOW is the result
ms_now() { read -r _up _ < /proc/uptime; NOW=${_up%.*}${_up#*.}0; }
# Waits until the ping has a reply that arrived at or after $1 ms, at most
# $2 s; the reply's time in ANSWER.
# shellcheck disable=SC2034 # ANSWER is the result
wait_answer() { # SINCE_MS SECONDS
    ANSWER=
    _n=$(($2 * 20))
    while [ "$_n" -gt 0 ]; do
        read -r _last < "$PING_LAST"
        if [ "$_last" -ge "$1" ]; then ANSWER=$_last; return 0; fi
        sleep 0.05
        _n=$((_n - 1))
    done
    return 1
}
