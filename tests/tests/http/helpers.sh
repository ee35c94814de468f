# shellcheck shell=sh
# Helpers of the http boot test (tests/tests/http.rs), after the shared
# ones (tests/tests/common: the bridge, shutdown_guest).
# Runs httptool with ARGS; its HTTPTOOL line becomes "[xl check] KEY HTTPTOOL ...".
tool() { # KEY ARGS...
    _key=$1; shift
    httptool "$@" > "/tmp/$_key.out" 2>&1
    echo "[xl check] $_key-rc $?"
    sed -n "s/^HTTPTOOL/[xl check] $_key HTTPTOOL/p" "/tmp/$_key.out"
}
# Waits (at most 30 s) until the background holds have connected.
wait_ready() { # FILE...
    for _i in $(seq 1 150); do
        _n=0
        for _f in "$@"; do grep -q hold-ready "$_f" 2>/dev/null && _n=$((_n + 1)); done
        [ "$_n" = "$#" ] && return 0
        sleep 0.2
    done
    echo "[xl check] holds-not-ready"
    return 1
}
# One raw request through nc; the first line of the answer and its size.
raw() { # KEY IP REQUEST(printf format)
    # shellcheck disable=SC2059 # the request is the format, by design
    printf "$3" | timeout 20 nc "$2" 80 > "/tmp/$1.raw" 2>&1
    echo "[xl check] $1-status $(head -1 "/tmp/$1.raw" | tr -d '\r')"
    echo "[xl check] $1-bytes $(wc -c < "/tmp/$1.raw")"
    sed "s/^/[xl $1] /" "/tmp/$1.raw" | tr -d '\r'
}
