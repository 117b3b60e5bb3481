#!/bin/sh
# bench/latency.sh end to end, briefly: its "shared" part (a busy process on
# one CPU, ringmqd default, ringmqd pinned, the other broker: here a second
# ringmqd) must give three rows with figures and no failed run, lose no
# message, and leave no busy process behind. No timing is asserted.
#
#   latency_test.sh SOURCE_ROOT RINGMQD RINGMQ_BENCH CONF
set -u
ROOT=$1 RINGMQD=$2 BENCH=$3 CONF=$4
for tool in jq python3 taskset bash nice; do
    command -v $tool >/dev/null 2>&1 || { echo "$tool not installed: skipped"; exit 77; }
done
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
RINGMQD=$RINGMQD RINGMQ_CONF=$CONF BENCH=$BENCH WARMUP=0.2 OTHER_NAME=ringmq2 \
    OTHER_CMD="$RINGMQD -c $CONF --set listener.default.port={PORT} --set log.level=warning" \
    timeout 120 bash "$ROOT/bench/latency.sh" -d 0.5 -o "$OUT/res" -p shared >"$OUT/table" 2>&1
rc=$?
cat "$OUT/table"
[ $rc = 0 ] || { echo "FAIL: latency.sh exit $rc"; exit 1; }
busy=$(cat "$OUT/res/busy.pid" 2>/dev/null)
[ -n "$busy" ] || { echo "FAIL: no busy process was started"; exit 1; }
if kill -0 "$busy" 2>/dev/null; then
    echo "FAIL: the busy process ($busy) outlived the script"
    exit 1
fi
n=0
for label in "shared: ringmqd default" "shared: ringmqd pinned" "shared: ringmq2"; do
    row=$(grep "^$label" "$OUT/table" | tail -n 1)
    [ -n "$row" ] || { echo "FAIL: no row '$label'"; exit 1; }
    case $row in
    *exit* | *"did not start"*) echo "FAIL: $row"; exit 1 ;;
    esac
    # The last seven fields: msg/s p50 p99 p99.9 max lost us/msg.
    set -- $(echo "$row" | awk '{ for (i = NF - 6; i <= NF; i++) printf "%s ", $i }')
    for v in "$2" "$3" "$4" "$5"; do
        echo "$v" | grep -Eq '^[0-9]+(\.[0-9]+)?$' || { echo "FAIL: '$v' in: $row"; exit 1; }
    done
    [ "$6" = 0 ] || { echo "FAIL: lost $6 in: $row"; exit 1; }
    n=$((n + 1))
done
echo "ok: $n rows"
