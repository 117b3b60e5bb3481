#!/bin/bash
# admin_load.sh: what the admin API costs the clients (issue 14's
# "API-under-load" figure). ringmqd with N offline sessions (persist_fill,
# in memory, 2 shards); p2p QoS 1 latency (10 -> 10, 16 B, 1000 msg/s per
# publisher) measured three times: alone, while curl lists every offline
# session through the API in pages of 1000, in a loop, and beside a busy
# loop that makes no API call (what CPU contention alone costs); then what
# the answers took each shard's loop (mean and longest, from the metrics).
# Loopback only; the broker is stopped by PID at the end.
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
MPORT=${MPORT:-18952}
OUT=${KEEP_OUT:-$(mktemp -d /tmp/ringmq-admin-load.XXXXXX)}
"$RINGMQD" -c conf/ringmq.ini --set "listener.default.port=$PORT" --set server.shards=2 \
    --set persistence.enabled=false --set log.level=warning --set admin.enabled=true \
    --set "admin.port=$APORT" --set metrics.enabled=true --set "metrics.port=$MPORT" \
    >"$OUT/broker.log" 2>&1 &
BP=$!
trap 'kill $BP 2>/dev/null; wait $BP 2>/dev/null; [ -n "${KEEP_OUT:-}" ] || rm -rf "$OUT"' EXIT
sleep 0.5
"$FILL" fill -p "$PORT" -n "$N" --subs 1 -m 0 >"$OUT/fill.txt" 2>&1 || {
    cat "$OUT/fill.txt"
    exit 1
}

latency() {
    "$BENCH" p2p -n 10 -q 1 -s 16 -r 1000 -p "$PORT" -d "$DUR" --broker-pid "$BP" 2>&1 |
        grep -A1 'latency (us)'
}

# Every offline session, page after page, for `secs` seconds: one client
# process for the whole loop (a curl and a parser per page forked more CPU
# than the pages cost, on the shards' two cores).
list_loop() {
    python3 - "$APORT" "$1" >"$OUT/pages" <<'PY'
import http.client, json, sys, time
port, end = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
conn, pages = None, 0
while time.monotonic() < end:
    after = ""
    while time.monotonic() < end:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        q = "/api/v1/tenants/global/sessions?offline=1&limit=1000"
        conn.request("GET", q + ("&after=" + after if after else ""))
        page = json.loads(conn.getresponse().read())
        conn.close()
        pages += 1
        after = page.get("next") or ""
        if not after:
            break
print(pages)
PY
}

echo "admin_load.sh, $(date -u +%FT%RZ), $(nproc) CPUs, $N offline sessions, 2 shards"
echo "--- p2p QoS 1 alone"
latency
list_loop $((DUR + 4)) &
LP=$!
sleep 1
echo "--- while the API lists every offline session in pages of 1000"
latency
wait $LP
echo "pages fetched meanwhile: $(cat "$OUT/pages")"
# What the answers took the shards' loops (ringmq_admin_answer_*{shard}).
curl -s "http://127.0.0.1:$MPORT/metrics" | awk '
    /^ringmq_admin_answers_total/ { split($1, a, "\""); n[a[2]] = $2 }
    /^ringmq_admin_answer_seconds_total/ { split($1, a, "\""); t[a[2]] = $2 }
    /^ringmq_admin_answer_seconds_max/ { split($1, a, "\""); m[a[2]] = $2 }
    END { for (s in n) printf "shard %s: %d answers, mean %.0f us, longest %.0f us\n",
          s, n[s], n[s] ? t[s] / n[s] * 1e6 : 0, m[s] * 1e6 }'
# On 2 cores the lister (curl, the admin thread's JSON) takes CPU from the
# shards whatever the shards do for it: the same run beside a shell loop
# that only burns one CPU tells that contention from a stalled shard.
sh -c 'while :; do :; done' &
HP=$!
echo "--- beside a busy loop on one CPU (no API calls: contention alone)"
latency
kill $HP
wait $HP 2>/dev/null
