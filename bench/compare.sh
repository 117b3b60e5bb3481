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
#                  For the tls- rows it must listen with TLS on {CERT} and
#                  {KEY} (PEM, substituted too).
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
# run gets no ratio.
#
# The tls- rows run the same generator over TLS (ringmq-bench --tls, wolfSSL,
# verifying the server against the CA): ringmqd's listener with transport =
# tls and the other broker's TLS listener serve the same certificate, an
# ECDSA P-256 key signed by a P-256 CA, both made here with openssl in a
# temporary directory that is removed at the end. tls-handshake counts full
# handshakes (TCP, TLS 1.3, CONNECT, CONNACK, close) per second with 32
# connections at a time; tls-resume the same with each connection resuming
# its previous TLS session (the JSON's "resumed" says how many did).
# Every row also gives each broker's CPU time per message (per connection
# for the handshake rows) while measuring, and that ratio (other/ringmq). The ratio is how many times better ringmq did: ringmq /
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
# (a name starting with tls- runs over TLS)
SCENARIOS=(
    "p2p-qos0|p2p -n 100 -q 0 -s 16|.received_per_s|msg/s|higher"
    "p2p-qos1|p2p -n 100 -q 1 -s 16|.received_per_s|msg/s|higher"
    "fanout-qos0|fanout --pubs 1 --subs 1000 -q 0 -s 16|.received_per_s|msg/s|higher"
    "fanout-qos1|fanout --pubs 1 --subs 1000 -q 1 -s 16|.received_per_s|msg/s|higher"
    "fanin-qos0|fanin --pubs 100 --subs 1 -q 0 -s 16 -w 8|.received_per_s|msg/s|higher"
    "conn-10k|conn --conns 10000 --keepalive 60|.broker.bytes_per_conn|B/conn|lower"
    "lat-20k-qos0|p2p -n 100 -q 0 -s 16 -r 200|.latency_corrected_us.p99|us p99|lower"
    "lat-20k-qos1|p2p -n 100 -q 1 -s 16 -r 200|.latency_corrected_us.p99|us p99|lower"
    "tls-p2p-qos0|p2p -n 100 -q 0 -s 16|.received_per_s|msg/s|higher"
    "tls-p2p-qos1|p2p -n 100 -q 1 -s 16|.received_per_s|msg/s|higher"
    "tls-fanout-qos0|fanout --pubs 1 --subs 1000 -q 0 -s 16|.received_per_s|msg/s|higher"
    "tls-handshake|handshake --conns 32|.handshakes_per_s|conn/s|higher"
    "tls-resume|handshake --conns 32 --tls-resume|.handshakes_per_s|conn/s|higher"
)

TLS_DIR=
cleanup() {
    stop_broker
    [ -z "$TLS_DIR" ] || rm -rf "$TLS_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# make_certs: a P-256 CA and a P-256 server certificate for localhost and
# 127.0.0.1 signed by it, in a new temporary directory (TLS_DIR).
make_certs() {
    TLS_DIR=$(mktemp -d /tmp/ringmq-compare-tls.XXXXXX) || return 1
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
    openssl req -x509 "${ec[@]}" -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" -days 2 \
        -subj /CN=ringmq-compare-ca -addext basicConstraints=critical,CA:TRUE &&
        openssl req "${ec[@]}" -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" \
            -subj /CN=localhost &&
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$TLS_DIR/ext" &&
        openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" \
            -CAcreateserial -days 2 -extfile "$TLS_DIR/ext" -out "$TLS_DIR/server.crt" &&
        # mosquitto started as root reads them as its own user (mosquitto);
        # the key is thrown away with the directory at the end.
        chmod a+rx "$TLS_DIR" && chmod a+r "$TLS_DIR"/server.*
}

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
# With TLS=1 the listener speaks TLS with the certificate in TLS_DIR.
start_broker() {
    local which=$1 port=$2 log=$3 tls=()
    if [ "$TLS" = 1 ]; then
        # mosquitto gives a handshake no deadline; ringmqd's 10 s closed 193
        # of 1001 fanout connections here, whose handshakes waited up to 20 s
        # for a CPU on a loaded machine. The rows measure messages, not that.
        tls=(--set listener.default.transport=tls --set "listener.default.tls_cert=$TLS_DIR/server.crt"
            --set "listener.default.tls_key=$TLS_DIR/server.key"
            --set listener.default.tls_handshake_timeout=120 --set limits.connect_timeout=120)
    fi
    if [ "$which" = ringmq ]; then
        $PIN_BROKER "$RINGMQD" -c "$RINGMQ_CONF" --set "listener.default.port=$port" --set persistence.enabled=false "${tls[@]}" \
            --set server.shards=1 --set "limits.max_inflight=$INFLIGHT" \
            --set "limits.max_queued_messages=$QUEUED" --set log.level=warning >"$log" 2>&1 &
        BROKER_PID=$!
        wait_port "$port"
    else
        # shellcheck disable=SC2086
        start_other "$port" "$log" $PIN_BROKER
    fi
}

# ratio_of A B higher|lower: how many times better A is than B, or - when
# either failed (marked) or is missing.
ratio_of() {
    python3 -c "
import sys
a, b, better = sys.argv[1:4]
try:
    if '(exit' in a + b or '(unpinned' in a + b: raise ValueError
    r, o = float(a.split('(')[0]), float(b.split('(')[0])
    print('%.2f' % (r / o if better == 'higher' else o / r))
except Exception: print('-')" "$1" "$2" "$3"
}

ROWS=()
for entry in "${SCENARIOS[@]}"; do
    IFS='|' read -r name args expr unit better <<<"$entry"
    if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then
        continue
    fi
    vals=()
    cpus=()
    cpu=-
    TLS=0
    TLS_CERT='' TLS_KEY=''
    targs=
    if [[ $name == tls-* ]]; then
        if [ -z "$TLS_DIR" ] && ! make_certs >"$OUT/openssl.log" 2>&1; then
            echo "$name: openssl could not make the certificates (see $OUT/openssl.log)" >&2
            continue
        fi
        TLS=1
        # shellcheck disable=SC2034 # read by start_other (lib.sh)
        TLS_CERT=$TLS_DIR/server.crt TLS_KEY=$TLS_DIR/server.key
        targs="--tls --cafile $TLS_DIR/ca.crt --connect-timeout 120"
    fi
    for which in ringmq other; do
        port=$(free_port)
        log="$OUT/$name.$which.broker.log"
        json="$OUT/$name.$which.json"
        if ! start_broker "$which" "$port" "$log"; then
            echo "$name: $which broker did not start (see $log)" >&2
            stop_broker
            vals+=("-")
            cpus+=("-")
            continue
        fi
        # shellcheck disable=SC2086
        $PIN_BENCH "$BENCH" $args $targs -p "$port" -d "$DUR" --warmup "$WARMUP" --threads 1 \
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
        # The broker's CPU per message, or per connection for handshakes.
        if [[ $args == handshake* ]]; then
            cpus+=("$(figure "$json" '.broker_cpu_us_per_handshake | select(. >= 0)')")
        else
            cpus+=("$(figure "$json" '.broker.cpu_us_per_msg | select(. >= 0)')")
        fi
        [ "$which" = ringmq ] && cpu=$(figure "$json" ".bench.cpu_pct")
        echo "$name $which: $v $unit (bench cpu ${cpu}%)" >&2
    done
    ratio=$(ratio_of "${vals[0]}" "${vals[1]:--}" "$better")
    cpu_ratio=-
    [ "$ratio" = - ] || cpu_ratio=$(ratio_of "${cpus[0]:--}" "${cpus[1]:--}" lower)
    ROWS+=("$(printf '%-15s %-8s %14s %14s %8s %10s %9s %9s %9s' "$name" "$unit" "${vals[0]}" \
        "${vals[1]}" "$ratio" "$cpu" "${cpus[0]:--}" "${cpus[1]:--}" "$cpu_ratio")")
done

echo
echo "ringmq-bench compare, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, ${DUR} s per run, results in $OUT"
echo "ratio: how many times better ringmq did (ringmq/other for rates, other/ringmq for memory and latency)"
echo "cpu-us: the broker's CPU time per message received (per connection for handshakes), us; cpu-ratio other/ringmq"
printf '%-15s %-8s %14s %14s %8s %10s %9s %9s %9s\n' scenario unit ringmq "$OTHER_NAME" ratio \
    "bench-cpu%" "cpu-us" "cpu-us" "cpu-ratio"
printf '%s\n' "${ROWS[@]}"
