# shellcheck shell=sh
# A --dom0-script: runs the guest the lab built (its config is
# /etc/xen-lab/guests/bench.cfg) N times back to back in one boot, as the
# control boot test runs it (tsc_mode = "native"), each as its own domain
# bench1..benchN. Count the results in the output afterwards:
#
#   cargo xtask run --app bench --timeout 3000 \
#       --dom0-script build/scripts/bench-repeat.sh -- bench.quick=1 | tee out
#   grep -c 'BENCH-DONE failures=0' out
#
# (the guest's console lines are echoed as "[benchI] ..."; the serial log
# has the complete consoles). `cargo xtask run` then lists each domain's
# result and exits 0 only if every one powered off.
N=12
i=1
while [ $i -le $N ]; do
    sed -e "s/^name *=.*/name = \"bench$i\"/" /etc/xen-lab/guests/bench.cfg > /tmp/bench$i.cfg
    grep -q tsc_mode /tmp/bench$i.cfg || echo 'tsc_mode = "native"' >> /tmp/bench$i.cfg
    run_guest bench$i /tmp/bench$i.cfg 300
    i=$((i + 1))
done
