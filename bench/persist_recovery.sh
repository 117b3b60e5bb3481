#!/bin/bash
# persist_recovery.sh: how long ringmqd takes to start on a data directory
# holding N persistent sessions with K subscriptions each and M queued QoS 1
# messages (issue 13's recovery target: 100,000 sessions, 10 subscriptions
# each, 1,000,000 messages, under 10 s).
#
#   1. ringmqd starts with persistence on (fsync FSYNC, never by default, so
#      the fill is quick; the directory in a temporary directory on
#      DATA_PARENT's file system, /var/tmp by default, removed at the end);
#   2. build/bench/persist_fill fill makes the N sessions (clean session 0,
#      SUBSCRIBE to their own K topics, DISCONNECT; in batches of 1000
#      connections) and publishes the M messages at QoS 1, M/N queued for
#      each offline session;
#   3. SIGTERM, and the broker's exit is waited for;
#   4. ringmqd starts again on the same directory: the time from starting
#      it to the first CONNACK it sends (persist_fill ready, a connection
#      attempt every 2 ms) is the recovery time;
#   5. persist_fill check reconnects a sample of the sessions (clean
#      session 0): each must be present, receive exactly its queued
#      messages and get back a message it publishes to its own last topic.
#
# Prints the fill rates, the recovery time, the data directory's size (du)
# after the fill, after the shutdown and after the recovery, the broker's
# resident memory after the fill and after the recovery, the recovery's
# log lines, and the check's result. Exit status: 0 ok, 1 a start-up or
# fill failure, 3 the check failed.
#
#   bench/persist_recovery.sh [-n SESSIONS] [-m MESSAGES] [-k SUBS]
#       [--fsync always|interval|never] [--shards S] [--sample S] [-o OUTDIR]
#       [--set section.key=value]...
#
# Environment: RINGMQD (build/src/ringmqd), RINGMQ_CONF (conf/ringmq.ini),
# FILL (build/bench/persist_fill), DATA_PARENT (/var/tmp), READY_TIMEOUT
# (seconds, 120), NO_PERSIST_KEYS=1 drops every persistence.* option (for
# trying the fill on a ringmqd without persistence: the check then finds no
# session after the restart and fails).
set -u
cd "$(dirname "$0")/.." || exit 1
RINGMQD=${RINGMQD:-build/src/ringmqd}
RINGMQ_CONF=${RINGMQ_CONF:-conf/ringmq.ini}
FILL=${FILL:-build/bench/persist_fill}
READY_TIMEOUT=${READY_TIMEOUT:-120}
NO_PERSIST_KEYS=${NO_PERSIST_KEYS:-0}
N=100000
M=1000000
K=10
FSYNC=never
SHARDS=
SAMPLE=100
OUT=
EXTRA=()
usage() {
    echo "usage: $0 [-n SESSIONS] [-m MESSAGES] [-k SUBS] [--fsync MODE] [--shards S]" \
        "[--sample S] [-o OUTDIR] [--set section.key=value]..." >&2
    exit 1
}
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
    -n) N=$2 ;;
    -m) M=$2 ;;
    -k) K=$2 ;;
    --fsync) FSYNC=$2 ;;
    --shards) SHARDS=$2 ;;
    --sample) SAMPLE=$2 ;;
    -o) OUT=$2 ;;
    --set) EXTRA+=(--set "$2") ;;
    *) usage ;;
    esac
    shift 2
done
for bin in "$RINGMQD" "$FILL"; do
    [ -x "$bin" ] || { echo "$bin not built (meson setup build && ninja -C build)" >&2; exit 1; }
done
OUT=${OUT:-$(mktemp -d /tmp/ringmq-recovery.XXXXXX)}
mkdir -p "$OUT"
# shellcheck source=bench/lib.sh
. bench/lib.sh
DATA=$(mktemp -d "${DATA_PARENT:-/var/tmp}/ringmq-recovery-data.XXXXXX") || exit 1
trap 'stop_broker; rm -rf "$DATA"' EXIT
trap 'exit 130' INT TERM

PORT=$(free_port)
# Each session's queue must hold its share of the messages.
PER=$(((M + N - 1) / N))
QUEUED=$((PER > 1000 ? PER : 1000))
ARGS=(-c "$RINGMQ_CONF" --set "listener.default.port=$PORT" --set log.level=info
    --set "limits.max_queued_messages=$QUEUED")
[ -z "$SHARDS" ] || ARGS+=(--set "server.shards=$SHARDS")
[ "$NO_PERSIST_KEYS" = 1 ] ||
    ARGS+=(--set persistence.enabled=true --set "persistence.dir=$DATA/store"
        --set "persistence.fsync=$FSYNC")
ARGS+=("${EXTRA[@]}")
FILL_ARGS=(-p "$PORT" -n "$N" -m "$M" --subs "$K")

rss_mib() {
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo -
}
du_mib() {
    du -sk "$DATA" 2>/dev/null | awk '{ printf "%.1f", $1 / 1024 }'
}
fail() {
    echo "$1 (see $2):" >&2
    tail -5 "$2" >&2
    exit 1
}

# 1, 2: fill.
"$RINGMQD" "${ARGS[@]}" >"$OUT/fill.broker.log" 2>&1 &
BROKER_PID=$!
wait_port "$PORT" || fail "ringmqd did not start" "$OUT/fill.broker.log"
"$FILL" fill "${FILL_ARGS[@]}" | tee "$OUT/fill.out" >&2
[ "${PIPESTATUS[0]}" = 0 ] || fail "the fill failed" "$OUT/fill.broker.log"
RSS_FILLED=$(rss_mib "$BROKER_PID")
DU_FILLED=$(du_mib)

# 3: a clean shutdown.
t0=$(date +%s%N)
stop_broker
STOP_S=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
DU_STOPPED=$(du_mib)

# 4: the recovery, timed to the first CONNACK.
t0=$(date +%s%N)
"$RINGMQD" "${ARGS[@]}" >"$OUT/recover.broker.log" 2>&1 &
BROKER_PID=$!
ready=$("$FILL" ready -p "$PORT" --timeout "$READY_TIMEOUT" | sed -n 's/^ready_ns //p')
[ -n "$ready" ] || fail "ringmqd did not answer within $READY_TIMEOUT s" "$OUT/recover.broker.log"
RECOVER_S=$(awk -v a="$t0" -v b="$ready" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
RSS_RECOVERED=$(rss_mib "$BROKER_PID")
DU_RECOVERED=$(du_mib)

# 5: a sample of the sessions.
"$FILL" check "${FILL_ARGS[@]}" --sample "$SAMPLE" --timeout 10 >"$OUT/check.out" 2>&1
check_rc=$?
stop_broker

echo
echo "persist_recovery.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, fsync=$FSYNC," \
    "shards ${SHARDS:-as configured}, results in $OUT"
[ "$NO_PERSIST_KEYS" = 1 ] && echo "NO_PERSIST_KEYS=1: ringmqd ran without persistence options"
echo "sessions $N with $K subscriptions each, $M queued QoS 1 messages ($PER per session)"
sed 's/^/fill: /' "$OUT/fill.out"
echo "shutdown (SIGTERM to exit): $STOP_S s"
echo "recovery (start to first CONNACK): $RECOVER_S s   (target: under 10 s)"
echo "data directory: $DU_FILLED MiB filled, $DU_STOPPED MiB stopped, $DU_RECOVERED MiB recovered"
echo "broker RSS: $RSS_FILLED MiB filled, $RSS_RECOVERED MiB recovered"
echo "recovery log:"
# What start-up said beyond its usual lines (the store's recovery, warnings).
grep -v ' starting$\|shards not pinned\|: io_uring \|shards running$\|listening on \|metrics on \|SIGTERM\|stopped$' \
    "$OUT/recover.broker.log" | head -20 | sed 's/^/  /'
sed 's/^/check: /' "$OUT/check.out" | tail -5
[ "$check_rc" = 0 ] || exit 3
