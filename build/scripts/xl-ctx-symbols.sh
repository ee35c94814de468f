#!/bin/sh
# Symbolizes the vCPU dumps a timed-out console wait leaves in a test's
# output (`[xl ctx N] ...` lines: lab_vcpu_dump in build/src/dom0/lib.sh,
# `xenctx -f -C`): each vCPU's rip, then its frame-pointer call trace,
# with the inlined frames addr2line knows. A return address is looked up
# one byte back (inside the call), the rip as it is.
#
#   build/scripts/xl-ctx-symbols.sh test-output.log [target/xen/guest.elf]
#
# The image must be the one the run booted: a later build moves every
# address.
set -eu
log=${1:?usage: xl-ctx-symbols.sh LOG [GUEST_ELF]}
elf=${2:-target/xen/guest.elf}
command -v addr2line > /dev/null || { echo "addr2line (binutils) is needed" >&2; exit 1; }

# addr2line -i prints function, file:line pairs, innermost first.
where() { # ADDR (hex, no 0x)
    addr2line -f -C -i -e "$elf" "$(printf '0x%x' "$1")" | paste - - \
        | sed -e 's#^#        #' -e "s#$(pwd)/##"
}

grep -o '\[xl ctx [0-9]*\] .*' "$log" | while IFS= read -r line; do
    body=${line#*] }
    case "$body" in
        vcpu[0-9]*:)
            echo "${line%%] *}] $body"
            ;;
        "rip: "*)
            rip=${body#rip: }
            rip=${rip%% *}
            echo "    rip $rip"
            where "0x$rip"
            ;;
        *"[<"*">]"*)
            a=${body#*\[<}
            a=${a%%>]*}
            case "$body" in
                *"<--"*) continue ;; # the rip again
            esac
            echo "    called from $a"
            where "$((0x$a - 1))"
            ;;
    esac
done
