#!/bin/bash
# latency.sh: end-to-end latency at a fixed rate (p2p QoS 0, 100 publishers
# -> 100 subscribers, 16 B), where the broker's CPUs are shared and where
# they are not, and how it changes with the shard count. Every row starts a
# fresh broker; ringmqd and the other broker (Debian's mosquitto by default)
# run one after the other in the same script. The brokers are pinned only
# where a row says so.
#
#   bench/latency.sh [-d SECONDS] [-o OUTDIR] [-p PART,...]
#
# Parts (all by default):
#   shared     BUSY_CPU (0) is kept busy, as by a busy-polling process: the
#              generator runs there, and a spinning shell at nice 19 takes
#              whatever it leaves. 20,000 msg/s flow: ringmqd's default
#              configuration, ringmqd with every shard pinned (shard i on
#              CPU i: the default before server.cpu_affinity), the other
#              broker
#   dedicated  the same three rows without the spinner (the generator
#              still on BUSY_CPU)
#   shards     ringmqd's default configuration with 1, 2 and 4 shards at
#              20,000 and 100,000 msg/s, generator not pinned
#
# Figures are the generator's coordinated-omission-corrected latency (from
# each message's intended send time, so a stall cannot hide by slowing the
# publishers down): p50, p99, p99.9, max in microseconds; lost messages; the
# broker's CPU time per message received. A row whose run failed says so.
#
# Environment: RINGMQD, RINGMQ_CONF, BENCH, OTHER_NAME, OTHER_CMD, INFLIGHT,
# QUEUED as for bench/compare.sh; BUSY_CPU; WARMUP seconds (2).
set -u
cd "$(dirname "$0")/.." || exit 1
RINGMQD=${RINGMQD:-build/src/ringmqd}
RINGMQ_CONF=${RINGMQ_CONF:-conf/ringmq.ini}
BENCH=${BENCH:-build/bench/ringmq-bench}
OTHER_NAME=${OTHER_NAME:-mosquitto}
BUSY_CPU=${BUSY_CPU:-0}
WARMUP=${WARMUP:-2}
DUR=10
OUT=
PARTS=shared,dedicated,shards
while getopts "d:o:p:" opt; do
    case $opt in
    d) DUR=$OPTARG ;;
    o) OUT=$OPTARG ;;
    p) PARTS=$OPTARG ;;
    *) echo "usage: $0 [-d SECONDS] [-o OUTDIR] [-p shared,dedicated,shards]" >&2; exit 1 ;;
    esac
done
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_prepare latency

BUSY_PID=
stop_all() {
    stop_broker
    if [ -n "$BUSY_PID" ]; then
        kill "$BUSY_PID" 2>/dev/null
        wait "$BUSY_PID" 2>/dev/null
        BUSY_PID=
    fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM

busy_start() {
    # $0 of the spinner is ringmq-busy, so that it can be told apart; its
    # pid is left in OUT for the test that checks it is gone.
    taskset -c "$BUSY_CPU" nice -n 19 sh -c 'while :; do :; done' ringmq-busy &
    BUSY_PID=$!
    echo "$BUSY_PID" >"$OUT/busy.pid"
}

# Every CPU this script may use, as a list for cpu_affinity (the old
# default: shard i pinned to the i-th of them).
ALL_CPUS=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)

ROWS=()
# row LABEL RATE ringmq|other [--set ...]: one run, one line of the table;
# the generator runs under $GEN (e.g. taskset -c 0).
GEN=
row() {
    local label=$1 rate=$2 which=$3
    shift 3
    local port log json
    port=$(free_port)
    log="$OUT/$label.log"
    json="$OUT/$label.json"
    if [ "$which" = ringmq ]; then
        "$RINGMQD" -c "$RINGMQ_CONF" --set "listener.default.port=$port" --set persistence.enabled=false \
            --set "limits.max_inflight=${INFLIGHT:-32}" \
            --set "limits.max_queued_messages=${QUEUED:-1000}" --set log.level=warning "$@" \
            >"$log" 2>&1 &
        BROKER_PID=$!
        wait_port "$port"
    else
        start_other "$port" "$log"
    fi || { ROWS+=("$(printf '%-34s broker did not start (%s)' "$label" "$log")")
        stop_broker
        return; }
    $GEN "$BENCH" p2p -n 100 -q 0 -s 16 -r $((rate / 100)) -p "$port" -d "$DUR" --warmup "$WARMUP" \
        --broker-pid "$BROKER_PID" --json "$json" --quiet >"$OUT/$label.out" 2>&1
    local rc=$?
    stop_broker
    local l=.latency_corrected_us v=()
    for e in "$l.p50" "$l.p99" "$l.p999" "$l.max" '[.per_qos[]?.lost] | add' \
        .broker.cpu_us_per_msg; do
        v+=("$(figure "$json" "$e")")
    done
    local note=
    [ $rc = 0 ] || note="(exit $rc, see $OUT/$label.out)"
    ROWS+=("$(printf '%-34s %7s %9s %9s %9s %9s %7s %8s %s' "$label" "$rate" "${v[@]}" "$note")")
    echo "${ROWS[-1]}" >&2
}

part() { [[ ",$PARTS," == *",$1,"* ]]; }

if part shared; then
    GEN="taskset -c $BUSY_CPU"
    busy_start
    row "shared: ringmqd default" 20000 ringmq
    row "shared: ringmqd pinned $ALL_CPUS" 20000 ringmq --set "server.cpu_affinity=$ALL_CPUS"
    row "shared: $OTHER_NAME" 20000 other
    stop_all
fi
if part dedicated; then
    GEN="taskset -c $BUSY_CPU"
    row "dedicated: ringmqd default" 20000 ringmq
    row "dedicated: ringmqd pinned $ALL_CPUS" 20000 ringmq --set "server.cpu_affinity=$ALL_CPUS"
    row "dedicated: $OTHER_NAME" 20000 other
fi
if part shards; then
    GEN=
    for rate in 20000 100000; do
        for n in 1 2 4; do
            row "shards=$n" "$rate" ringmq --set "server.shards=$n"
        done
    done
fi

echo
echo "latency.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, ${DUR} s per row, generator on CPU" \
    "$BUSY_CPU (shared, dedicated; with a spinner at nice 19 there in shared), results in $OUT"
echo "p2p QoS 0, 100 -> 100, 16 B; latency in us from the intended send time; broker CPU us/msg"
printf '%-34s %7s %9s %9s %9s %9s %7s %8s\n' row msg/s p50 p99 p99.9 max lost us/msg
printf '%s\n' "${ROWS[@]}"
