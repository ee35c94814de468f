# shellcheck shell=sh
# Helpers of the net boot test (tests/tests/net.rs), after the shared
# ones (tests/tests/common: the bridge, shutdown_guest).
# busybox wget (1.35.0, Debian 12's busybox-static) segfaults (rc 139)
# whenever given -T: the time limit comes from busybox's `timeout` instead.
# The same request by hand through nc stays as the fallback (recorded).
http_get() { # PATH OUT
    timeout 15 wget -q -O "$2" "http://192.0.2.2$1" && return 0
    echo "[xl check] wget-failed $1 rc $?"
    printf 'GET %s HTTP/1.1\r\nHost: 192.0.2.2\r\nConnection: close\r\n\r\n' "$1" \
        | nc 192.0.2.2 80 > "$2.raw" || return 1
    tr -d '\r' < "$2.raw" | sed '1,/^$/d' > "$2"
    grep -q "200 OK" "$2.raw"
}
