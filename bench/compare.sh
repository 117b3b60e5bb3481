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
set -u
cd "$(dirname "$0")/.." || exit 1
RINGMQD=${RINGMQD:-build/src/ringmqd}
RINGMQ_CONF=${RINGMQ_CONF:-conf/ringmq.ini}
BENCH=${BENCH:-build/bench/ringmq-bench}
OTHER_NAME=${OTHER_NAME:-mosquitto}
OTHER_CMD=${OTHER_CMD:-}
DUR=10
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
OUT=${OUT:-$(mktemp -d /tmp/ringmq-compare.XXXXXX)}
mkdir -p "$OUT"
for bin in "$RINGMQD" "$BENCH"; do
    [ -x "$bin" ] || { echo "$bin not built (meson setup build && ninja -C build)" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 1; }

if [ "$(nproc)" -ge 2 ]; then
    BROKER_CPU=${BROKER_CPU:-1}
    BENCH_CPU=${BENCH_CPU:-0}
    PIN_BROKER="taskset -c $BROKER_CPU"
    PIN_BENCH="taskset -c $BENCH_CPU"
else
    PIN_BROKER=
    PIN_BENCH=
fi

# name | ringmq-bench arguments | jq expression for the figure | unit
SCENARIOS=(
    "p2p-qos0|p2p -n 100 -q 0 -s 16|.received_per_s|msg/s"
    "p2p-qos1|p2p -n 100 -q 1 -s 16|.received_per_s|msg/s"
    "fanout-qos0|fanout --pubs 1 --subs 1000 -q 0 -s 16|.received_per_s|msg/s"
    "fanout-qos1|fanout --pubs 1 --subs 1000 -q 1 -s 16|.received_per_s|msg/s"
    "fanin-qos0|fanin --pubs 100 --subs 1 -q 0 -s 16 -w 8|.received_per_s|msg/s"
    "conn-10k|conn --conns 10000 --keepalive 60|.broker.bytes_per_conn|B/conn"
    "lat-20k-qos0|p2p -n 100 -q 0 -s 16 -r 200|.latency_corrected_us.p99|us p99"
    "lat-20k-qos1|p2p -n 100 -q 1 -s 16 -r 200|.latency_corrected_us.p99|us p99"
)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Bounded wait until 127.0.0.1:$1 accepts a TCP connection.
wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

BROKER_PID=
stop_broker() {
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null
        wait "$BROKER_PID" 2>/dev/null
        BROKER_PID=
    fi
}
trap stop_broker EXIT

# start_broker ringmq|other PORT LOG: sets BROKER_PID (the broker itself, so
# that its memory is what --broker-pid reads).
start_broker() {
    local which=$1 port=$2 log=$3
    if [ "$which" = ringmq ]; then
        $PIN_BROKER "$RINGMQD" -c "$RINGMQ_CONF" --set "listener.default.port=$port" \
            --set server.shards=1 >"$log" 2>&1 &
    elif [ -n "$OTHER_CMD" ]; then
        local cmd=${OTHER_CMD//\{PORT\}/$port}
        cmd=${cmd//\{DIR\}/$OUT}
        # exec: the pid is the broker's, not a shell's.
        bash -c "exec $PIN_BROKER $cmd" >"$log" 2>&1 &
    else
        printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$OUT/mosquitto.conf"
        $PIN_BROKER /usr/sbin/mosquitto -c "$OUT/mosquitto.conf" >"$log" 2>&1 &
    fi
    BROKER_PID=$!
    wait_port "$port"
}

figure() { # json expr
    jq -r "($2) // \"-\" | if type == \"number\" then (. * 10 | round / 10) else . end" "$1" 2>/dev/null || echo "-"
}

ROWS=()
for entry in "${SCENARIOS[@]}"; do
    IFS='|' read -r name args expr unit <<<"$entry"
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
        $PIN_BENCH "$BENCH" $args -p "$port" -d "$DUR" --warmup 2 --threads 1 \
            --broker-pid "$BROKER_PID" --json "$json" --quiet >"$OUT/$name.$which.out" 2>&1
        rc=$?
        stop_broker
        v=$(figure "$json" "$expr")
        [ "$rc" = 0 ] || v="$v(exit $rc)"
        vals+=("$v")
        [ "$which" = ringmq ] && cpu=$(figure "$json" ".bench.cpu_pct")
        echo "$name $which: $v $unit (bench cpu ${cpu}%)" >&2
    done
    ratio=$(python3 -c "
import sys
try: print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))
except Exception: print('-')" "${vals[0]%%(*}" "${vals[1]%%(*}")
    ROWS+=("$(printf '%-14s %-8s %14s %14s %8s %10s' "$name" "$unit" "${vals[0]}" "${vals[1]}" "$ratio" "$cpu")")
done

echo
echo "ringmq-bench compare, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, ${DUR} s per run, results in $OUT"
printf '%-14s %-8s %14s %14s %8s %10s\n' scenario unit ringmq "$OTHER_NAME" ratio "bench-cpu%"
printf '%s\n' "${ROWS[@]}"
