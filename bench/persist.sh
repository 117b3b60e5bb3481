#!/bin/bash
# persist.sh: what durability costs (issue 13's throughput targets). p2p QoS 1
# with persistent sessions (100 publishers -> 100 subscribers, 16-byte
# payloads, clean session 0) against four brokers, one after the other on
# this machine, each fresh:
#
#   memory     ringmqd, persistence.enabled=false (today's in-memory broker)
#   always     ringmqd, persistence.fsync=always (acks after fdatasync)
#   interval   ringmqd, persistence.fsync=interval (synced every
#              fsync_interval_ms, acks at once)
#   mosquitto  Debian's mosquitto, persistence true, its default autosave
#              (a snapshot every 1800 s: nothing is synced per message)
#
# One row per broker: messages received per second, the broker's CPU time
# per message received (us), lost messages, and for ringmqd the store's
# fsyncs per second and records per fsync, from the metrics endpoint
# (ringmq_store_fsyncs_total and ringmq_store_records_total summed over the
# shards, scraped twice inside the measurement window; "n/a" where the
# broker has no such metrics). Then the issue's ratios: always / memory
# (target >= 0.5), interval / memory (>= 0.85), always / mosquitto (>= 3),
# for the rates and (inverted: memory / always...) for the CPU per message.
#
# As in compare.sh: ringmqd runs 1 shard, brokers pinned to BROKER_CPU and
# the generator to BENCH_CPU, both brokers with the same in-flight and queue
# limits, errors and warnings logged only. The data directories are in a
# temporary directory (on DATA_PARENT's file system, /var/tmp by default:
# not a tmpfs, where a sync costs nothing) removed at the end; logs and
# JSON stay in OUT.
#
#   bench/persist.sh [-d SECONDS] [-o OUTDIR] [-r memory,always,interval,mosquitto] [-n ROUNDS]
#
# -n ROUNDS runs the rows ROUNDS times, interleaved (memory, always, ...,
# then again), and gives each ratio as the median of the rounds' ratios
# with their range: on a shared 2-core VM one row can run 30% slower than
# the next for reasons of its own, and a single round's ratio moved between
# 0.55 and 0.96 on the same build.
#
# Environment: RINGMQD, RINGMQ_CONF, BENCH, BROKER_CPU, BENCH_CPU, INFLIGHT,
# QUEUED, WARMUP as in compare.sh; DATA_PARENT; FSYNC_INTERVAL_MS (ringmqd's
# default when unset); MAX_LOG_BYTES (ringmqd's persistence.max_log_bytes,
# its default when unset: at 1.4 M msg/s the default 64 MiB starts a
# snapshot about every half second); MOSQUITTO (/usr/sbin/mosquitto); NO_PERSIST_KEYS=1
# drops every persistence.* option (every ringmqd row is then the in-memory
# broker: for trying the script on a ringmqd that predates them).
set -u
cd "$(dirname "$0")/.." || exit 1
RINGMQD=${RINGMQD:-build/src/ringmqd}
RINGMQ_CONF=${RINGMQ_CONF:-conf/ringmq.ini}
BENCH=${BENCH:-build/bench/ringmq-bench}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
INFLIGHT=${INFLIGHT:-32}
QUEUED=${QUEUED:-1000}
WARMUP=${WARMUP:-2}
NO_PERSIST_KEYS=${NO_PERSIST_KEYS:-0}
DUR=10
ROUNDS=1
OUT=
ONLY=
while getopts "d:o:r:n:" opt; do
    case $opt in
    d) DUR=$OPTARG ;;
    o) OUT=$OPTARG ;;
    r) ONLY=$OPTARG ;;
    n) ROUNDS=$OPTARG ;;
    *) echo "usage: $0 [-d SECONDS] [-o OUTDIR] [-r memory,always,interval,mosquitto]" >&2; exit 1 ;;
    esac
done
[ "$DUR" -ge 3 ] 2>/dev/null || { echo "-d: at least 3 seconds" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_prepare persist
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
DATA=$(mktemp -d "${DATA_PARENT:-/var/tmp}/ringmq-persist-data.XXXXXX") || exit 1
trap 'stop_broker; rm -rf "$DATA"' EXIT
trap 'exit 130' INT TERM

if [ "$(nproc)" -ge 2 ]; then
    PIN_BROKER="taskset -c ${BROKER_CPU:-1}"
    PIN_BENCH="taskset -c ${BENCH_CPU:-0}"
else
    PIN_BROKER=
    PIN_BENCH=
fi

# start_ringmq ROW PORT MPORT LOG: ringmqd with the row's persistence
# settings and its metrics on 127.0.0.1:MPORT. Sets BROKER_PID.
start_ringmq() {
    local row=$1 port=$2 mport=$3 log=$4 p=()
    case $row in
    memory) p=(--set persistence.enabled=false) ;;
    *)
        p=(--set persistence.enabled=true --set "persistence.dir=$DATA/$row"
            --set "persistence.fsync=$row")
        [ -z "${FSYNC_INTERVAL_MS:-}" ] ||
            p+=(--set "persistence.fsync_interval_ms=$FSYNC_INTERVAL_MS")
        [ -z "${MAX_LOG_BYTES:-}" ] ||
            p+=(--set "persistence.max_log_bytes=$MAX_LOG_BYTES")
        ;;
    esac
    [ "$NO_PERSIST_KEYS" = 1 ] && p=()
    # shellcheck disable=SC2086
    $PIN_BROKER "$RINGMQD" -c "$RINGMQ_CONF" --set "listener.default.port=$port" \
        --set server.shards=1 --set "limits.max_inflight=$INFLIGHT" \
        --set "limits.max_queued_messages=$QUEUED" --set log.level=warning \
        --set metrics.enabled=true --set "metrics.port=$mport" "${p[@]}" >"$log" 2>&1 &
    BROKER_PID=$!
    wait_port "$port"
}

# start_mosquitto PORT LOG: mosquitto with persistence on in $DATA/mosquitto,
# autosave left at its default. Sets BROKER_PID.
start_mosquitto() {
    local port=$1 log=$2 dir=$DATA/mosquitto
    mkdir -p "$dir"
    # Started as root it runs as the user mosquitto, who must write there.
    chmod a+rwx "$DATA" "$dir"
    printf '%s\n' "listener $port 127.0.0.1" "allow_anonymous true" \
        "max_inflight_messages $INFLIGHT" "max_queued_messages $QUEUED" \
        "persistence true" "persistence_location $dir/" \
        "log_type error" "log_type warning" >"$OUT/mosquitto.conf"
    $PIN_BROKER "$MOSQUITTO" -c "$OUT/mosquitto.conf" >"$log" 2>&1 &
    BROKER_PID=$!
    wait_port "$port"
}

# store_sample MPORT: "NS FSYNCS RECORDS" (nanoseconds since the epoch and
# the store's counters summed over the shards), or "NS - -" without them.
store_sample() {
    local now body
    now=$(date +%s%N)
    body=$(curl -s --max-time 2 "http://127.0.0.1:$1/metrics")
    awk -v now="$now" '
        /^ringmq_store_fsyncs_total[{ ]/ { f += $NF; hf = 1 }
        /^ringmq_store_records_total[{ ]/ { r += $NF; hr = 1 }
        END { printf "%s %s %s\n", now, hf ? f : "-", hr ? r : "-" }' <<<"$body"
}

# store_rates "NS F R" "NS F R": "FSYNCS_PER_S RECORDS_PER_FSYNC", n/a when
# a counter is missing.
store_rates() {
    python3 -c "
import sys
t0, f0, r0 = sys.argv[1].split()
t1, f1, r1 = sys.argv[2].split()
try:
    df, dr, dt = float(f1) - float(f0), float(r1) - float(r0), (int(t1) - int(t0)) / 1e9
    print('%.1f %s' % (df / dt, '%.1f' % (dr / df) if df > 0 else '-'))
except ValueError:
    print('n/a n/a')" "$1" "$2"
}

# ratio A B: A / B with two decimals, or - when either is not a number.
ratio() {
    python3 -c "
import sys
try: print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))
except Exception: print('-')" "$1" "$2"
}

declare -A RATE CPU RR CR
ROWS=()
PAIRS=("always memory 0.5" "interval memory 0.85" "always mosquitto 3")

# The median of the numbers given (and "-" for none), then "lo-hi".
median_range() {
    printf '%s\n' "$@" | grep -v '^-$' | sort -g | awk '{v[NR] = $1}
        END { if (!NR) { print "- -"; exit }
              m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.2f %s-%s\n", m, v[1], v[NR] }'
}
for round in $(seq "$ROUNDS"); do
for row in memory always interval mosquitto; do
    if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$row,"* ]]; then
        continue
    fi
    port=$(free_port)
    mport=$(free_port)
    tag=$row
    [ "$ROUNDS" -gt 1 ] && tag=$row.$round
    log=$OUT/$tag.broker.log
    json=$OUT/$tag.json
    if [ "$row" = mosquitto ]; then
        [ -x "$MOSQUITTO" ] || { echo "$row: $MOSQUITTO not installed (apt-get install mosquitto)" >&2; continue; }
        start_mosquitto "$port" "$log"
    else
        start_ringmq "$row" "$port" "$mport" "$log"
    fi
    # shellcheck disable=SC2181
    if [ $? -ne 0 ]; then
        echo "$row: the broker did not start (see $log):" >&2
        tail -3 "$log" >&2
        stop_broker
        continue
    fi
    # shellcheck disable=SC2086
    $PIN_BENCH "$BENCH" p2p -n 100 -q 1 -s 16 --persistent -p "$port" -d "$DUR" \
        --warmup "$WARMUP" --threads 1 --broker-pid "$BROKER_PID" --json "$json" --quiet \
        >"$OUT/$tag.out" 2>&1 &
    bench_pid=$!
    # The store's counters, sampled inside the measurement window (after the
    # connections and the warm-up, before the end): fsyncs/s and records
    # per fsync while the load is steady.
    s0="0 - -" s1="0 - -"
    if [ "$row" != mosquitto ]; then
        sleep "$WARMUP"
        sleep 1
        s0=$(store_sample "$mport")
        sleep $((DUR - 2))
        s1=$(store_sample "$mport")
    fi
    wait "$bench_pid"
    rc=$?
    stop_broker
    # Each row starts on an empty directory with no dirty pages of the one
    # before: a later round recovered the earlier one's sessions, and the
    # write-back of ~400 MB a run slowed the next rows that write.
    rm -rf "${DATA:?}/$row" "$DATA/mosquitto"
    sync
    RATE[$row]=$(figure "$json" .received_per_s)
    CPU[$row]=$(jq -r '.broker.cpu_us_per_msg // "-" |
        if type == "number" and . >= 0 then (. * 1000 | round / 1000) else "-" end' \
        "$json" 2>/dev/null || echo -)
    lost=$(jq -r '[.per_qos[]?.lost] | add // 0' "$json" 2>/dev/null || echo -)
    note=
    [ "$rc" = 0 ] || note="exit $rc (see $OUT/$tag.out)"
    [ "$NO_PERSIST_KEYS" = 1 ] && [ "$row" != mosquitto ] && note="$note in-memory (NO_PERSIST_KEYS)"
    read -r fps rpf <<<"$(store_rates "$s0" "$s1")"
    [ "$row" = mosquitto ] && fps=- rpf=-
    echo "$row: ${RATE[$row]} msg/s, ${CPU[$row]} us/msg, lost $lost, fsyncs/s $fps, records/fsync $rpf $note" >&2
    ROWS+=("$(printf '%-10s %12s %10s %8s %10s %14s  %s' "$tag" "${RATE[$row]}" "${CPU[$row]}" \
        "$lost" "$fps" "$rpf" "$note")")
done
# This round's ratios (the CPU one inverted: b's CPU per message / a's).
for pair in "${PAIRS[@]}"; do
    read -r a b _ <<<"$pair"
    RR[$a/$b]+=" $(ratio "${RATE[$a]:--}" "${RATE[$b]:--}")"
    CR[$a/$b]+=" $(ratio "${CPU[$b]:--}" "${CPU[$a]:--}")"
done
unset RATE CPU
declare -A RATE CPU
done

echo
echo "persist.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, p2p QoS 1, 100 -> 100, 16 B," \
    "clean session 0, ${DUR} s per run, data in $DATA (removed), results in $OUT"
printf '%-10s %12s %10s %8s %10s %14s\n' broker msg/s cpu-us/msg lost fsyncs/s records/fsync
printf '%s\n' "${ROWS[@]}"
echo
if [ "$ROUNDS" -gt 1 ]; then
    echo "ratios: the median of $ROUNDS rounds (the range in brackets)"
fi
printf '%-22s %8s %8s %s\n' ratio rate cpu target
for pair in "${PAIRS[@]}"; do
    read -r a b target <<<"$pair"
    # shellcheck disable=SC2086
    read -r rm rr <<<"$(median_range ${RR[$a/$b]})"
    # shellcheck disable=SC2086
    read -r cm cr <<<"$(median_range ${CR[$a/$b]})"
    if [ "$ROUNDS" -gt 1 ]; then
        [ "$rm" = - ] || rm="$rm [$rr]"
        [ "$cm" = - ] || cm="$cm [$cr]"
    fi
    printf '%-22s %8s %8s %s\n' "$a / $b" "$rm" "$cm" ">= $target (rate)"
done
