#!/bin/bash
# slow_consumers.sh: issue 10 part 1 against ringmqd and then another broker
# (Debian's mosquitto by default), one after the other on this machine, each
# started fresh. N subscribers that never read subscribe to slow/t while one
# publisher floods it with QoS 0 messages, beside an unrelated QoS 1 pair at
# 100 msg/s on pair/t (bench/slow_consumers.c does the clients); prints the
# pair's p99 in the baseline and during the flood, the broker's RSS before,
# at its peak and after the slow clients left, and lost pair messages.
#
#   bench/slow_consumers.sh [-s SECONDS_PER_PHASE] [-n SLOW] [-o OUTDIR]
#
# ringmqd runs conf/ringmq.ini with 2 shards and the auth_file plugin: the
# slow subscribers and the flooder log in as user noisy (tenant noisy), the
# pair as quiet (tenant quiet); the ACL gives each tenant its topics only.
# The other broker gets the same credentials (mosquitto ignores them:
# allow_anonymous true). Both get the same queue limits (INFLIGHT, QUEUED),
# no persistence, and log errors and warnings only. Nothing is pinned.
#
# Environment:
#   BUILD          the build directory (build): ringmqd, slow_consumers,
#                  ringmq-passwd and the auth_file plugin are taken from it
#   RINGMQD, TOOL, PASSWD, AUTH_PLUGIN   override those one by one
#   RINGMQ_CONF    ringmqd's configuration (conf/ringmq.ini)
#   OTHER_NAME, OTHER_CMD   as for bench/compare.sh ({PORT}, {DIR})
#   INFLIGHT, QUEUED        per-session limits for both brokers (32, 1000)
#   PAYLOAD, PAIR_RATE      flood payload bytes (1024), pair msg/s (100)
#
# Exit status: 0 when both runs completed without failure or loss, 1 otherwise.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
RINGMQD=${RINGMQD:-$BUILD/src/ringmqd}
TOOL=${TOOL:-$BUILD/bench/slow_consumers}
PASSWD=${PASSWD:-$BUILD/tools/ringmq-passwd}
AUTH_PLUGIN=${AUTH_PLUGIN:-$BUILD/plugins/ringmq_auth_file.so}
RINGMQ_CONF=${RINGMQ_CONF:-conf/ringmq.ini}
OTHER_NAME=${OTHER_NAME:-mosquitto}
OTHER_CMD=${OTHER_CMD:-}
INFLIGHT=${INFLIGHT:-32}
QUEUED=${QUEUED:-1000}
PAYLOAD=${PAYLOAD:-1024}
PAIR_RATE=${PAIR_RATE:-100}
SECS=10
SLOW=1000
OUT=
while getopts "s:n:o:" opt; do
    case $opt in
    s) SECS=$OPTARG ;;
    n) SLOW=$OPTARG ;;
    o) OUT=$OPTARG ;;
    *) echo "usage: $0 [-s SECONDS_PER_PHASE] [-n SLOW] [-o OUTDIR]" >&2; exit 1 ;;
    esac
done
OUT=${OUT:-$(mktemp -d /tmp/ringmq-slow.XXXXXX)}
mkdir -p "$OUT"
for bin in "$RINGMQD" "$TOOL" "$PASSWD" "$AUTH_PLUGIN"; do
    [ -e "$bin" ] || { echo "$bin not built (meson setup build && ninja -C build)" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 1; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
# Whatever happens (an error, ^C, a timeout), the tool and the broker
# started last are stopped by their PIDs. The tool runs in the background
# and is waited for, so that a signal is handled at once, not when the run
# is over.
TOOL_PID=
TAIL_PID=
cleanup() {
    local pid
    for pid in "$TOOL_PID" "$TAIL_PID"; do
        if [ -n "$pid" ]; then
            kill "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        fi
    done
    TOOL_PID= TAIL_PID=
    stop_broker
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Two tenants: noisy (slow subscribers, flooder), quiet (the pair). 10000
# PBKDF2 iterations, the least the plugin accepts: the set-up is not what is
# measured.
rm -f "$OUT/passwd"
for u in noisy quiet; do
    printf '%spw\n' "$u" | RINGMQ_PASSWD_ITERATIONS=10000 "$PASSWD" "$OUT/passwd" add "$u" "$u" \
        >/dev/null || { echo "ringmq-passwd failed" >&2; exit 1; }
done
printf '%s\n' "[tenant noisy]" "topic readwrite slow/#" "[tenant quiet]" \
    "topic readwrite pair/#" >"$OUT/acl"

# start_broker ringmq|other PORT LOG: sets BROKER_PID (the broker itself,
# whose VmRSS the tool samples).
start_broker() {
    local which=$1 port=$2 log=$3
    if [ "$which" = ringmq ]; then
        "$RINGMQD" -c "$RINGMQ_CONF" --set "listener.default.port=$port" --set server.shards=2 --set persistence.enabled=false \
            --set "limits.max_inflight=$INFLIGHT" --set "limits.max_queued_messages=$QUEUED" \
            --set log.level=warning --set "plugin.auth.path=$AUTH_PLUGIN" \
            --set "plugin.auth.password_file=$OUT/passwd" \
            --set "plugin.auth.acl_file=$OUT/acl" >"$log" 2>&1 &
        BROKER_PID=$!
        wait_port "$port"
    else
        if [ -z "$OTHER_CMD" ] && [ ! -x /usr/sbin/mosquitto ]; then
            echo "mosquitto not installed (apt-get install -y mosquitto)" >&2
            return 1
        fi
        start_other "$port" "$log"
    fi
}

# A run's budget: three phases, the slow clients' connect limit (120 s),
# the drain, and slack.
limit=$((3 * ${SECS%.*} + 200))
ROWS=()
status=0
for which in ringmq other; do
    name=$which
    [ "$which" = other ] && name=$OTHER_NAME
    port=$(free_port)
    log="$OUT/$name.broker.log"
    json="$OUT/$name.json"
    rm -f "$json"
    echo "== $name: $SLOW slow subscribers, $SECS s per phase" >&2
    if ! start_broker "$which" "$port" "$log"; then
        echo "$name: broker did not start (see $log)" >&2
        stop_broker
        ROWS+=("$(printf '%-10s %s' "$name" "did not start")")
        status=1
        continue
    fi
    timeout "$limit" "$TOOL" -p "$port" --slow "$SLOW" --payload "$PAYLOAD" \
        --pair-rate "$PAIR_RATE" --baseline "$SECS" --flood "$SECS" --after "$SECS" \
        --broker-pid "$BROKER_PID" --slow-user noisy --slow-pass noisypw \
        --pair-user quiet --pair-pass quietpw --json "$json" >"$OUT/$name.out" 2>&1 &
    TOOL_PID=$!
    # Its lines as they come; tail ends by itself when the tool has.
    tail -n +1 -f --pid="$TOOL_PID" "$OUT/$name.out" >&2 &
    TAIL_PID=$!
    wait "$TOOL_PID"
    rc=$?
    TOOL_PID=
    wait "$TAIL_PID"
    TAIL_PID=
    stop_broker
    warnings=$(grep -c . "$log" 2>/dev/null)
    echo "$name: exit $rc, broker log $log ($warnings lines)" >&2
    row=$(printf '%-10s %10s %10s %10s %9s %9s %9s %6s %9s' "$name" \
        "$(figure "$json" .phases.baseline.p99_ms)" "$(figure "$json" .phases.flood.p99_ms)" \
        "$(figure "$json" .phases.flood.max_ms)" "$(figure "$json" .rss_mib.before)" \
        "$(figure "$json" .rss_mib.peak)" "$(figure "$json" .rss_mib.after)" \
        "$(figure "$json" .pair.lost)" \
        "$(figure "$json" '[.seconds[] | select(.phase == "flood") | .cpu_pct] | add / length')")
    [ "$rc" = 0 ] || { row="$row  (exit $rc)"; status=1; }
    ROWS+=("$row")
done

echo
echo "slow consumers, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $SLOW slow subscribers," \
    "$PAYLOAD B QoS 0 flood, QoS 1 pair at $PAIR_RATE msg/s, $SECS s per phase, results in $OUT"
echo "pair latency in ms from the intended send time (by the phase it was sent in); RSS in MiB;"
echo "cpu%: the broker's mean CPU use during the flood (100 = one core)"
printf '%-10s %10s %10s %10s %9s %9s %9s %6s %9s\n' broker "base p99" "flood p99" "flood max" \
    "rss bef" "rss peak" "rss aft" lost "cpu% fl"
printf '%s\n' "${ROWS[@]}"
exit $status
