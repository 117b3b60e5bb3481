#!/bin/sh
# bench/compare.sh end to end, briefly: ringmqd against a second ringmqd
# (OTHER_CMD), one short scenario. Both brokers must stay on the CPU they
# were pinned to (a broker that leaves it is marked "unpinned" and gets no
# ratio), lose nothing, and the row must carry a ratio. No timing is
# asserted.
#
#   compare_test.sh SOURCE_ROOT RINGMQD RINGMQ_BENCH CONF
set -u
ROOT=$1 RINGMQD=$2 BENCH=$3 CONF=$4
for tool in jq python3 taskset bash; do
    command -v $tool >/dev/null 2>&1 || { echo "$tool not installed: skipped"; exit 77; }
done
[ "$(nproc)" -ge 2 ] || { echo "one CPU: nothing is pinned, skipped"; exit 77; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
RINGMQD=$RINGMQD RINGMQ_CONF=$CONF BENCH=$BENCH WARMUP=0.2 OTHER_NAME=ringmq2 \
    OTHER_CMD="$RINGMQD -c $CONF --set listener.default.port={PORT} --set server.shards=1" \
    BROKER_CPU=1 BENCH_CPU=0 \
    timeout 120 bash "$ROOT/bench/compare.sh" -d 0.5 -o "$OUT/res" -s p2p-qos1 >"$OUT/table" 2>&1
rc=$?
cat "$OUT/table"
[ $rc = 0 ] || { echo "FAIL: compare.sh exit $rc"; exit 1; }
row=$(grep '^p2p-qos1 ' "$OUT/table")
[ -n "$row" ] || { echo "FAIL: no p2p-qos1 row"; exit 1; }
case $row in
*unpinned* | *lost* | *exit*) echo "FAIL: $row"; exit 1 ;;
esac
ratio=$(echo "$row" | awk '{ print $5 }')
echo "$ratio" | grep -Eq '^[0-9]+\.[0-9]+$' || { echo "FAIL: no ratio in: $row"; exit 1; }
echo "ok"
