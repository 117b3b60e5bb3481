#!/bin/sh
# compare.sh pins the broker to one CPU and the generator to another with
# taskset; that is only a fair comparison when the broker stays inside the
# CPUs it was started on. ringmqd pins each shard thread to a CPU of its
# own: that CPU must come from the set it was given, so under taskset -c N
# every thread of it runs on N (shard 0 used to go to CPU 0, where the
# generator runs, while mosquitto stayed on CPU 1).
#
#   pinning_test.sh RINGMQD CONF
set -u
RINGMQD=$1 CONF=$2
command -v taskset >/dev/null 2>&1 || { echo "taskset not installed: skipped"; exit 77; }
# The last CPU this process may use; needs two, or there is nothing to escape to.
CPUS=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
LAST=$(echo "$CPUS" | tr ',' '\n' | tail -n 1 | sed 's/.*-//')
[ "$(nproc)" -ge 2 ] || { echo "one CPU: skipped"; exit 77; }
DIR=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT
fail=0
for shards in 1 2; do
    taskset -c "$LAST" "$RINGMQD" -c "$CONF" --set listener.default.port=0 \
        --set server.shards=$shards 2>"$DIR/log" &
    PID=$!
    i=0
    until grep -q 'listening on' "$DIR/log" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 300 ] || { echo "ringmqd did not start"; cat "$DIR/log"; exit 1; }
        sleep 0.05
    done
    for t in /proc/"$PID"/task/*; do
        allowed=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status")
        if [ "$allowed" != "$LAST" ]; then
            echo "FAIL shards=$shards: thread $(cat "$t/comm") on CPU(s) $allowed, started on $LAST"
            fail=1
        fi
    done
    kill "$PID"
    wait "$PID"
    PID=
done
[ $fail = 0 ] && echo "ok: every thread stays on CPU $LAST"
exit $fail
