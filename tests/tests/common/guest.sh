# shellcheck shell=sh
# Guest helpers besides the lab's (build/src/dom0/lib.sh).
shutdown_guest() { # NAME
    xl shutdown "$1"
    run_guest_wait "$1" 60
}
