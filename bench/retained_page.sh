#!/bin/bash
# retained_page.sh: what one page of GET .../retained costs with many
# retained messages (issue 14: a listing never holds a shard for more than
# a loop turn). ringmqd (1 shard, in memory) with N retained messages on
# topics "<i>/a" (bench/retained_mem publishes them); then, for each query,
# R pages fetched one after another: the client's median time per page
# (HTTP, JSON and the shard's answer) and what the answers took shard 0's
# loop, mean and longest so far (ringmq_admin_answer_seconds_* from the
# metrics). Queries: the first page of "#", one from the middle (after=),
# a leading wildcard ("+/a"), a prefix ("7/#"), and a filter nothing
# matches ("+/none": each page ends at [admin] page_budget topics looked
# at, short and with `next`). Loopback only; the broker is stopped by PID.
#
#   bench/retained_page.sh [-n N] [-r PAGES] [--set section.key=value]...
#
# Environment: RINGMQD (build/src/ringmqd), RINGMQ_CONF (conf/ringmq.ini),
# TOOL (build/bench/retained_mem).
set -u
cd "$(dirname "$0")/.." || exit 1
RINGMQD=${RINGMQD:-build/src/ringmqd}
RINGMQ_CONF=${RINGMQ_CONF:-conf/ringmq.ini}
TOOL=${TOOL:-build/bench/retained_mem}
N=100000
R=20
EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
    -n) N=$2; shift 2 ;;
    -r) R=$2; shift 2 ;;
    --set) EXTRA+=(--set "$2"); shift 2 ;;
    *) echo "usage: $0 [-n N] [-r PAGES] [--set section.key=value]..." >&2; exit 1 ;;
    esac
done
for bin in "$RINGMQD" "$TOOL"; do
    [ -x "$bin" ] || { echo "$bin not built (meson setup build && ninja -C build)" >&2; exit 1; }
done
OUT=$(mktemp -d /tmp/ringmq-retained-page.XXXXXX)
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap 'stop_broker; rm -rf "$OUT"' EXIT
port=$(free_port)
aport=$(free_port)
mport=$(free_port)
"$RINGMQD" -c "$RINGMQ_CONF" --set "listener.default.port=$port" --set persistence.enabled=false \
    --set server.shards=1 --set log.level=warning --set admin.enabled=true \
    --set "admin.port=$aport" --set metrics.enabled=true --set "metrics.port=$mport" \
    --set limits.max_retained_bytes=0 --set limits.max_retained_messages=0 "${EXTRA[@]}" \
    >"$OUT/broker.log" 2>&1 &
BROKER_PID=$!
if ! wait_port "$port" || ! wait_port "$aport"; then
    echo "ringmqd did not start:" >&2
    cat "$OUT/broker.log" >&2
    exit 1
fi
"$TOOL" -p "$port" --broker-pid "$BROKER_PID" -n "$N" --levels 2 >"$OUT/fill.txt" ||
    { cat "$OUT/fill.txt" >&2; exit 1; }

echo "retained_page.sh, $(date -u +%FT%RZ), $N retained topics \"<i>/a\", 1 shard, $R pages a row"
printf '%-28s %7s %9s %12s %14s %14s\n' query limit entries "client/page" "shard0 mean" \
    "shard0 longest"
python3 - "$aport" "$mport" "$R" "$N" <<'PY'
import http.client, statistics, sys, time
aport, mport, rounds, n = (int(a) for a in sys.argv[1:5])

def metric(name):
    conn = http.client.HTTPConnection("127.0.0.1", mport)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read().decode()
    conn.close()
    for line in body.splitlines():
        if line.startswith(name + '{shard="0"}'):
            return float(line.split()[-1])
    return 0.0

def page(query):
    conn = http.client.HTTPConnection("127.0.0.1", aport)
    t = time.perf_counter()
    conn.request("GET", "/api/v1/tenants/global/retained?" + query)
    body = conn.getresponse().read()
    dt = time.perf_counter() - t
    conn.close()
    return dt, body.count(b'"topic"')

rows = [("filter=%23", 100), ("filter=%23&after=" + str(n // 2) + "/a", 100),
        ("filter=%2B/a", 100), ("filter=7/%23", 100), ("filter=%2B/none", 100),
        ("filter=%23", 1000)]
for q, limit in rows:
    a0, s0 = metric("ringmq_admin_answers_total"), metric("ringmq_admin_answer_seconds_total")
    times, got = [], 0
    for _ in range(rounds):
        dt, got = page(q + "&limit=" + str(limit))
        times.append(dt)
    a1, s1 = metric("ringmq_admin_answers_total"), metric("ringmq_admin_answer_seconds_total")
    mean = (s1 - s0) / (a1 - a0) * 1e6 if a1 > a0 else 0
    print("%-28s %7d %9d %9.0f us %11.0f us %11.0f us" % (
        q.replace("%23", "#").replace("%2B", "+"), limit, got,
        statistics.median(times) * 1e6, mean, metric("ringmq_admin_answer_seconds_max") * 1e6))
PY
