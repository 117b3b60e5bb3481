#!/bin/sh
# p2p QoS 0 (100 -> 100, 16 B) with and without the auth_file plugin (ACL
# checks on: every PUBLISH is checked, verdicts cached per connection; the
# ACL has a deny rule, which the subscriptions bench/N do not overlap, so
# their deliveries are granted without per-topic read checks), one run after
# the other on the same machine; prints both rates and the ratio.
# The two alternate RUNS times (rates on a 2-core machine vary by tens of
# percent between runs); the median of the ratios is reported. Also the
# broker's CPU time per message during the measurement (steal time on a
# shared host is not in it, so it is steadier than a rate): its ratio
# plain / ACL is the rate the ACL build would reach on the same CPU.
# Usage: bench/auth_overhead.sh [SECONDS] [RUNS]   (from the source root, after a build)
set -eu
secs=${1:-10}
runs=${2:-3}
build=${BUILD:-build}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
printf 'benchpw\n' | "$build/tools/ringmq-passwd" "$tmp/passwd" add bench global >/dev/null
printf '[tenant global]\nuser bench\ntopic readwrite bench/#\ntopic deny bench/secret/#\n' >"$tmp/acl"
run() { # label, extra --set arguments...
    label=$1
    shift
    taskset -c 1 "$build/src/ringmqd" -c conf/ringmq.ini --set listener.default.port=0 --set persistence.enabled=false \
        --set server.shards=1 "$@" >"$tmp/$label.log" 2>&1 &
    pid=$!
    i=0
    until port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/$label.log") &&
        [ -n "$port" ]; do
        i=$((i + 1))
        if [ $i -ge 100 ]; then
            # Stopped here too: the EXIT trap cannot see this subshell's pid.
            echo "ringmqd did not start" >&2
            cat "$tmp/$label.log" >&2
            kill "$pid" 2>/dev/null || true
            wait "$pid" || true
            exit 1
        fi
        sleep 0.1
    done
    # run() is called in $(...), a subshell: the EXIT trap above cannot see
    # this pid, so the broker is stopped here whatever the bench did.
    status=0
    taskset -c 0 "$build/bench/ringmq-bench" p2p -p "$port" -n 100 -q 0 -s 16 -d "$secs" \
        --warmup 2 -u bench -P benchpw --broker-pid "$pid" --json "$tmp/$label.json" \
        >"$tmp/$label.out" 2>&1 ||
        status=$?
    kill "$pid"
    wait "$pid" || true
    if [ "$status" -ne 0 ]; then
        echo "ringmq-bench failed ($label):" >&2
        tail -5 "$tmp/$label.out" >&2
        exit 1
    fi
    jq -r '"\(.received_per_s) \(.broker.cpu_us_per_msg)"' "$tmp/$label.json"
}
echo "p2p QoS 0, 100 -> 100, 16 B, $secs s per run, $(date -u +%Y-%m-%d)"
: >"$tmp/ratios"
: >"$tmp/cpu_ratios"
n=0
while [ $n -lt "$runs" ]; do
    out=$(run plain) # an assignment: a failed run stops the script (set -e)
    set -- $out
    plain=$1 plain_cpu=$2
    out=$(run acl --set "plugin.auth.path=$build/plugins/ringmq_auth_file.so" \
        --set "plugin.auth.password_file=$tmp/passwd" --set "plugin.auth.acl_file=$tmp/acl")
    set -- $out
    acl=$1 acl_cpu=$2
    ratio=$(awk -v a="$acl" -v p="$plain" 'BEGIN { printf "%.3f", a / p }')
    cpu_ratio=$(awk -v a="$acl_cpu" -v p="$plain_cpu" 'BEGIN { printf "%.3f", p / a }')
    echo "run $((n + 1)): no auth plugin $plain msg/s ($plain_cpu us CPU/msg)," \
        "auth_file + ACL $acl msg/s ($acl_cpu us CPU/msg), rate ratio $ratio, CPU ratio $cpu_ratio"
    echo "$ratio" >>"$tmp/ratios"
    echo "$cpu_ratio" >>"$tmp/cpu_ratios"
    n=$((n + 1))
done
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "median rate ratio: $(median "$tmp/ratios"), median CPU ratio: $(median "$tmp/cpu_ratios")"
