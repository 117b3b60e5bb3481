#!/bin/bash
# compare.sh: the same ringmq-bench scenarios against ringmqd and another
# broker (Debian's mosquitto by default), one broker at a time on this
# machine, and one row per scenario: ringmq figure, other figure, ratio.
#
# Each scenario starts a fresh broker (so memory figures start from the same
# baseline), pinned to BROKER_CPU, with the generator pinned to BENCH_CPU
# (taskset; on a machine with one CPU nothing is pinned).
#
#   bench/compare.sh [-d SECONDS] [-o OUTDIR] [-s SCENARIO,...]
#
# Environment:
#   RINGMQD        ringmqd binary (build/src/ringmqd)
#   RINGMQ_CONF    its configuration (conf/ringmq.ini); it runs with 1 shard
#   BENCH          ringmq-bench binary (build/bench/ringmq-bench)
#   OTHER_NAME     name of the other broker in the table (mosquitto)
#   OTHER_CMD      command that starts it listening on 127.0.0.1:{PORT}, with
#                  {PORT} and {DIR} (a scratch directory) substituted; by
#                  default Debian's mosquitto with a two-line configuration.
#                  Point it at any broker binary to make the same table, e.g.
#                  OTHER_NAME=nanomq OTHER_CMD='nanomq start --url nmq-tcp://127.0.0.1:{PORT}'
#   BROKER_CPU, BENCH_CPU   CPUs to pin to (1 and 0)
#   INFLIGHT, QUEUED        per-session QoS 1/2 messages in flight and queued
#                  beyond them, given to both brokers alike (32 and 1000:
#                  ringmqd's defaults; mosquitto's own are 20 and 1000)
#   WARMUP         seconds published before measuring (2)
#
# Both brokers get the same conditions: the same CPU (a broker whose
# threads leave it, e.g. by pinning themselves, is reported "unpinned" and
# gets no ratio), the same limits, no persistence, and errors and warnings
# logged only (mosquitto logs every connection by default, ringmqd none).
# A figure from a run that failed or lost messages says so, and a failed
# run gets no ratio. The ratio is how many times better ringmq did: ringmq /
# other for rates, other / ringmq for memory and latency.
set -u
cd "$(dirname "$0")/.." || exit 1
RINGMQD=${RINGMQD:-build/src/ringmqd}
RINGMQ_CONF=${RINGMQ_CONF:-conf/ringmq.ini}
BENCH=${BENCH:-build/bench/ringmq-bench}
OTHER_NAME=${OTHER_NAME:-mosquitto}
OTHER_CMD=${OTHER_CMD:-}
DUR=10
INFLIGHT=${INFLIGHT:-32}
QUEUED=${QUEUED:-1000}
WARMUP=${WARMUP:-2}
OUT=
ONLY=
while getopts "d:o:s:" opt; do
    case $opt in
    d) DUR=$OPTARG ;;
    o) OUT=$OPTARG ;;
    s) ONLY=$OPTARG ;;
    *) echo "usage: $0 [-d SECONDS] [-o OUTDIR] [-s SCENARIO,...]" >&2; exit 1 ;;
    esac
done
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_prepare compare

if [ "$(nproc)" -ge 2 ]; then
    BROKER_CPU=${BROKER_CPU:-1}
    BENCH_CPU=${BENCH_CPU:-0}
    PIN_BROKER="taskset -c $BROKER_CPU"
    PIN_BENCH="taskset -c $BENCH_CPU"
else
    PIN_BROKER=
    PIN_BENCH=
fi

# name | ringmq-bench arguments | jq expression for the figure | unit | better
SCENARIOS=(
    "p2p-qos0|p2p -n 100 -q 0 -s 16|.received_per_s|msg/s|higher"
    "p2p-qos1|p2p -n 100 -q 1 -s 16|.received_per_s|msg/s|higher"
    "fanout-qos0|fanout --pubs 1 --subs 1000 -q 0 -s 16|.received_per_s|msg/s|higher"
    "fanout-qos1|fanout --pubs 1 --subs 1000 -q 1 -s 16|.received_per_s|msg/s|higher"
    "fanin-qos0|fanin --pubs 100 --subs 1 -q 0 -s 16 -w 8|.received_per_s|msg/s|higher"
    "conn-10k|conn --conns 10000 --keepalive 60|.broker.bytes_per_conn|B/conn|lower"
    "lat-20k-qos0|p2p -n 100 -q 0 -s 16 -r 200|.latency_corrected_us.p99|us p99|lower"
    "lat-20k-qos1|p2p -n 100 -q 1 -s 16 -r 200|.latency_corrected_us.p99|us p99|lower"
)

trap stop_broker EXIT
trap 'exit 130' INT TERM

# True when every thread of pid $1 may run only on $BROKER_CPU (always true
# when nothing is pinned).
broker_pinned() {
    [ -n "$PIN_BROKER" ] || return 0
    local t allowed
    for t in /proc/"$1"/task/*; do
        allowed=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status" 2>/dev/null)
        [ -z "$allowed" ] || [ "$allowed" = "$BROKER_CPU" ] || return 1
    done
    return 0
}

# start_broker ringmq|other PORT LOG: sets BROKER_PID (the broker itself, so
# that its memory is what --broker-pid reads).
start_broker() {
    local which=$1 port=$2 log=$3
    if [ "$which" = ringmq ]; then
        $PIN_BROKER "$RINGMQD" -c "$RINGMQ_CONF" --set "listener.default.port=$port" \
            --set server.shards=1 --set "limits.max_inflight=$INFLIGHT" \
            --set "limits.max_queued_messages=$QUEUED" --set log.level=warning >"$log" 2>&1 &
        BROKER_PID=$!
        wait_port "$port"
    else
        # shellcheck disable=SC2086
        start_other "$port" "$log" $PIN_BROKER
    fi
}

ROWS=()
for entry in "${SCENARIOS[@]}"; do
    IFS='|' read -r name args expr unit better <<<"$entry"
    if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then
        continue
    fi
    vals=()
    cpu=-
    for which in ringmq other; do
        port=$(free_port)
        log="$OUT/$name.$which.broker.log"
        json="$OUT/$name.$which.json"
        if ! start_broker "$which" "$port" "$log"; then
            echo "$name: $which broker did not start (see $log)" >&2
            stop_broker
            vals+=("-")
            continue
        fi
        # shellcheck disable=SC2086
        $PIN_BENCH "$BENCH" $args -p "$port" -d "$DUR" --warmup "$WARMUP" --threads 1 \
            --broker-pid "$BROKER_PID" --json "$json" --quiet >"$OUT/$name.$which.out" 2>&1
        rc=$?
        pinned=yes
        broker_pinned "$BROKER_PID" || pinned=no
        stop_broker
        v=$(figure "$json" "$expr")
        # Messages lost (QoS 0 may be: the rate counts only what arrived)
        # are shown beside the figure; a failed run is marked and not compared.
        lost=$(jq -r '[.per_qos[]?.lost] | add // 0' "$json" 2>/dev/null || echo 0)
        [ "${lost:-0}" = 0 ] || v="$v(lost $lost)"
        [ "$rc" = 0 ] || v="$v(exit $rc)"
        [ "$pinned" = yes ] || v="$v(unpinned)"
        vals+=("$v")
        [ "$which" = ringmq ] && cpu=$(figure "$json" ".bench.cpu_pct")
        echo "$name $which: $v $unit (bench cpu ${cpu}%)" >&2
    done
    ratio=$(python3 -c "
import sys
a, b, better = sys.argv[1:4]
try:
    if '(exit' in a + b or '(unpinned' in a + b: raise ValueError
    r, o = float(a.split('(')[0]), float(b.split('(')[0])
    print('%.2f' % (r / o if better == 'higher' else o / r))
except Exception: print('-')" "${vals[0]}" "${vals[1]:--}" "$better")
    ROWS+=("$(printf '%-14s %-8s %14s %14s %8s %10s' "$name" "$unit" "${vals[0]}" "${vals[1]}" "$ratio" "$cpu")")
done

echo
echo "ringmq-bench compare, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, ${DUR} s per run, results in $OUT"
echo "ratio: how many times better ringmq did (ringmq/other for rates, other/ringmq for memory and latency)"
printf '%-14s %-8s %14s %14s %8s %10s\n' scenario unit ringmq "$OTHER_NAME" ratio "bench-cpu%"
printf '%s\n' "${ROWS[@]}"
