#!/bin/sh
# Which CPUs ringmqd's threads may run on (server.cpu_affinity), read from
# /proc/PID/task/*/status:
# - auto on a host whose every CPU the process may use: no thread pinned
#   (a pinned shard cannot leave a CPU another busy process holds; issue 9).
# - auto inside a reserved set (taskset -c N): every thread stays on N, so
#   bench/compare.sh's broker and generator never share a CPU.
# - none: no thread pinned.
# - a list: shard i on the list's (i mod n)-th CPU; a CPU outside the set
#   the process may use is refused at start-up (exit 1, the reason named).
#
#   affinity_test.sh RINGMQD CONF
set -u
RINGMQD=$1 CONF=$2
command -v taskset >/dev/null 2>&1 || { echo "taskset not installed: skipped"; exit 77; }
[ "$(nproc)" -ge 2 ] || { echo "one CPU: skipped"; exit 77; }
CPUS=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
FIRST=$(echo "$CPUS" | tr ',' '\n' | head -n 1 | sed 's/-.*//')
LAST=$(echo "$CPUS" | tr ',' '\n' | tail -n 1 | sed 's/.*-//')
FULL=no # this test may run on every online CPU (not inside a cpuset)
[ "$(nproc)" = "$(getconf _NPROCESSORS_ONLN)" ] && FULL=yes
DIR=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT
fail=0
ok() { echo "ok - $1"; }
bad() { echo "not ok - $1"; fail=1; }

# start [taskset-cpus|-] --set ...: starts ringmqd, waits until it listens.
start() {
    cpus=$1
    shift
    if [ "$cpus" = - ]; then
        "$RINGMQD" -c "$CONF" --set listener.default.port=0 "$@" 2>"$DIR/log" &
    else
        taskset -c "$cpus" "$RINGMQD" -c "$CONF" --set listener.default.port=0 "$@" 2>"$DIR/log" &
    fi
    PID=$!
    i=0
    until grep -q 'listening on' "$DIR/log" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 300 ] || { echo "ringmqd did not start"; cat "$DIR/log"; exit 1; }
        sleep 0.05
    done
}
stop() {
    kill "$PID"
    wait "$PID"
    PID=
}
# "NAME=CPUS" for every thread of the broker, sorted.
threads() {
    for t in /proc/"$PID"/task/*; do
        echo "$(cat "$t/comm")=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status")"
    done | sort
}
# expect NAME PATTERN... : every thread line matches one of the patterns.
expect() {
    name=$1
    shift
    lines=$(threads)
    for l in $lines; do
        m=no
        for p in "$@"; do
            case "$l" in $p) m=yes ;; esac
        done
        [ $m = yes ] || { bad "$name: thread $l"; echo "$lines"; cat "$DIR/log"; return; }
    done
    ok "$name"
}

for shards in 1 2; do
    start "$LAST" --set server.shards=$shards
    expect "auto in taskset -c $LAST, $shards shard(s): every thread on $LAST" "*=$LAST"
    grep -q "pinned within the reserved CPU set $LAST" "$DIR/log" || bad "auto: no log line"
    stop
done

if [ $FULL = yes ]; then
    start - --set server.shards=2
    expect "auto on every CPU: no thread pinned" "*=$CPUS"
    grep -q "shards not pinned" "$DIR/log" && ok "auto: logged why" || bad "auto: no log line"
    stop
    start - --set server.shards=2 --set server.cpu_affinity=none
    expect "none: no thread pinned" "*=$CPUS"
    stop
else
    echo "ok - # SKIP auto/none on every CPU: this test runs inside a cpuset ($CPUS)"
fi

start - --set server.shards=3 --set "server.cpu_affinity=$LAST,$FIRST"
expect "list $LAST,$FIRST: shards pinned, other threads not" "ringmq-shard0=$FIRST" \
    "ringmq-shard1=$LAST" "ringmq-shard2=$FIRST" "ringmqd=$CPUS"
stop

taskset -c "$LAST" "$RINGMQD" -c "$CONF" --set listener.default.port=0 \
    --set "server.cpu_affinity=$FIRST" >"$DIR/out" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q "cpu_affinity: CPU $FIRST is not one this process may run on ($LAST)" "$DIR/out"; then
    ok "a CPU outside the process's set is refused"
else
    bad "a CPU outside the process's set: exit $rc"
    cat "$DIR/out"
fi
exit $fail
