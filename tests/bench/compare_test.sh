#!/bin/sh
# bench/compare.sh end to end, briefly: ringmqd against a second ringmqd
# (OTHER_CMD), one short scenario. Both brokers must stay on the CPU they
# were pinned to (a broker that leaves it is marked "unpinned" and gets no
# ratio), lose nothing, and the row must carry a ratio. Then the same for
# a TLS row (certificates made by compare.sh, {CERT}/{KEY} given to the
# second ringmqd's TLS listener). No timing is asserted.
#
#   compare_test.sh SOURCE_ROOT RINGMQD RINGMQ_BENCH CONF
set -u
ROOT=$1 RINGMQD=$2 BENCH=$3 CONF=$4
for tool in jq python3 taskset bash openssl; do
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
RINGMQD=$RINGMQD RINGMQ_CONF=$CONF BENCH=$BENCH WARMUP=0.2 OTHER_NAME=ringmq2 \
    OTHER_CMD="$RINGMQD -c $CONF --set listener.default.port={PORT} --set server.shards=1 \
--set listener.default.transport=tls --set listener.default.tls_cert={CERT} \
--set listener.default.tls_key={KEY}" \
    BROKER_CPU=1 BENCH_CPU=0 \
    timeout 120 bash "$ROOT/bench/compare.sh" -d 0.5 -o "$OUT/res-tls" -s tls-p2p-qos1 \
    >>"$OUT/table" 2>&1
rc_tls=$?
cat "$OUT/table"
if [ $rc != 0 ] || [ $rc_tls != 0 ]; then
    echo "FAIL: compare.sh exit $rc, $rc_tls (tls)"
    exit 1
fi
for name in p2p-qos1 tls-p2p-qos1; do
    row=$(grep "^$name " "$OUT/table")
    [ -n "$row" ] || { echo "FAIL: no $name row"; exit 1; }
    case $row in
    *unpinned* | *lost* | *exit*) echo "FAIL: $row"; exit 1 ;;
    esac
    # The rate's ratio, and the broker CPU per message's (last column).
    ratios=$(echo "$row" | awk '{ print $5, $NF }')
    echo "$ratios" | grep -Eq '^[0-9]+\.[0-9]+ [0-9]+\.[0-9]+$' ||
        { echo "FAIL: no ratios in: $row"; exit 1; }
done
echo "ok"
