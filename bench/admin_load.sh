#!/bin/bash
# admin_load.sh: what the admin API costs the clients (issue 14's
# "API-under-load" figure). ringmqd with N offline sessions (persist_fill,
# in memory, 2 shards); p2p QoS 1 latency (10 -> 10, 16 B, 1000 msg/s per
# publisher) measured twice: alone, then while curl lists every offline
# session through the API in pages of 1000, in a loop. Loopback only; the
# broker is stopped by PID at the end.
#
#   bench/admin_load.sh [-n SESSIONS] [-d SECONDS]
set -u
cd "$(dirname "$0")/.." || exit 1
N=100000
DUR=8
while getopts "n:d:" o; do
    case $o in
    n) N=$OPTARG ;;
    d) DUR=$OPTARG ;;
    *) echo "usage: $0 [-n SESSIONS] [-d SECONDS]" >&2; exit 1 ;;
    esac
done
RINGMQD=${RINGMQD:-build/src/ringmqd}
BENCH=${BENCH:-build/bench/ringmq-bench}
FILL=${FILL:-build/bench/persist_fill}
PORT=${PORT:-18950}
APORT=${APORT:-18951}
OUT=$(mktemp -d /tmp/ringmq-admin-load.XXXXXX)
"$RINGMQD" -c conf/ringmq.ini --set "listener.default.port=$PORT" --set server.shards=2 \
    --set persistence.enabled=false --set admin.enabled=true --set "admin.port=$APORT" \
    >"$OUT/broker.log" 2>&1 &
BP=$!
trap 'kill $BP 2>/dev/null; wait $BP 2>/dev/null; rm -rf "$OUT"' EXIT
sleep 0.5
"$FILL" fill -p "$PORT" -n "$N" --subs 1 -m 0 >"$OUT/fill.txt" 2>&1 || {
    cat "$OUT/fill.txt"
    exit 1
}

latency() {
    "$BENCH" p2p -n 10 -q 1 -s 16 -r 1000 -p "$PORT" -d "$DUR" --broker-pid "$BP" 2>&1 |
        grep -A1 'latency (us)'
}

# Every offline session, page after page, until `end` (seconds).
list_loop() {
    local end=$1 pages=0 after r nx
    while [ "$SECONDS" -lt "$end" ]; do
        after=""
        while :; do
            r=$(curl -s "http://127.0.0.1:$APORT/api/v1/tenants/global/sessions?offline=1&limit=1000${after:+&after=$after}")
            pages=$((pages + 1))
            nx=$(python3 -c 'import sys, json; print(json.load(sys.stdin).get("next") or "")' <<<"$r" 2>/dev/null)
            [ -z "$nx" ] || [ "$SECONDS" -ge "$end" ] && break
            after=$nx
        done
    done
    echo "$pages" >"$OUT/pages"
}

echo "admin_load.sh, $(date -u +%FT%RZ), $(nproc) CPUs, $N offline sessions, 2 shards"
echo "--- p2p QoS 1 alone"
latency
list_loop $((SECONDS + DUR + 4)) &
LP=$!
sleep 1
echo "--- while the API lists every offline session in pages of 1000"
latency
wait $LP
echo "pages fetched meanwhile: $(cat "$OUT/pages")"
