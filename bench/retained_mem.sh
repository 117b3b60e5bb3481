#!/bin/bash
# retained_mem.sh: the broker's resident memory per retained message with
# long topics, with 1 and 4 shards (each shard holds a replica of the
# retained store). Two shapes, N messages each on their own topic, 1-byte
# payload: one 60 KiB level ("<i>/xxx..."), and 1024 short levels
# ("<i>/a/a/..."). Every row starts a fresh ringmqd with no retained limits
# (max_retained_* = 0) and topics up to 65535 bytes, so that what is
# measured is what storing costs, not what a limit refuses. The last column
# is what the retained quota counts per message (ringmq_retained_bytes from
# the metrics endpoint, divided by the messages held; needs curl).
#
#   bench/retained_mem.sh [-n N] [--set section.key=value]...
#
# Environment: RINGMQD (build/src/ringmqd), RINGMQ_CONF (conf/ringmq.ini),
# TOOL (build/bench/retained_mem).
set -u
cd "$(dirname "$0")/.." || exit 1
RINGMQD=${RINGMQD:-build/src/ringmqd}
RINGMQ_CONF=${RINGMQ_CONF:-conf/ringmq.ini}
TOOL=${TOOL:-build/bench/retained_mem}
N=1000
EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
    -n) N=$2; shift 2 ;;
    --set) EXTRA+=(--set "$2"); shift 2 ;;
    *) echo "usage: $0 [-n N] [--set section.key=value]..." >&2; exit 1 ;;
    esac
done
for bin in "$RINGMQD" "$TOOL"; do
    [ -x "$bin" ] || { echo "$bin not built (meson setup build && ninja -C build)" >&2; exit 1; }
done
OUT=$(mktemp -d /tmp/ringmq-retained.XXXXXX)
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap 'stop_broker; rm -rf "$OUT"' EXIT

printf '%-7s %-22s %8s %14s %14s\n' shards topic stored "RSS/message" "counted/msg"
for shards in 1 4; do
    for shape in "61440 bytes, 2 levels|--topic-bytes 61440" "1024 levels|--levels 1024"; do
        label=${shape%%|*}
        port=$(free_port)
        mport=$(free_port)
        "$RINGMQD" -c "$RINGMQ_CONF" --set "listener.default.port=$port" --set persistence.enabled=false \
            --set metrics.enabled=true --set "metrics.port=$mport" \
            --set "server.shards=$shards" --set log.level=info \
            --set limits.max_retained_bytes=0 --set limits.max_retained_messages=0 \
            --set tenant.default.max_topic_length=65535 \
            --set tenant.default.max_topic_levels=65535 "${EXTRA[@]}" \
            >"$OUT/broker.log" 2>&1 &
        BROKER_PID=$!
        if ! wait_port "$port"; then
            echo "ringmqd did not start:" >&2
            cat "$OUT/broker.log" >&2
            exit 1
        fi
        # shellcheck disable=SC2086
        "$TOOL" -p "$port" --broker-pid "$BROKER_PID" -n "$N" ${shape#*|} >"$OUT/run.txt"
        # How many it holds: SIGUSR1 logs a status line with the count.
        kill -USR1 "$BROKER_PID"
        stored=
        for _ in $(seq 1 100); do
            stored=$(sed -n 's/.*status: .*, \([0-9]*\) retained,.*/\1/p' "$OUT/broker.log")
            [ -n "$stored" ] && break
            sleep 0.05
        done
        per=$(sed -n 's/.*KiB after, \([0-9-]*\) bytes per message/\1/p' "$OUT/run.txt")
        # What the retained quota counts for them (ringmq_retained_bytes).
        counted=$(curl -s "http://127.0.0.1:$mport/metrics" |
            sed -n 's/^ringmq_retained_bytes{tenant="global"} \([0-9]*\)$/\1/p')
        [ -n "$counted" ] && [ -n "$stored" ] && [ "$stored" -gt 0 ] &&
            counted=$((counted / stored))
        printf '%-7s %-22s %8s %14s %14s\n' "$shards" "$label" "${stored:--}" "${per:--} B" \
            "${counted:--} B"
        stop_broker
    done
done
