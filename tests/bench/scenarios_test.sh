#!/bin/sh
# End-to-end test of ringmq-bench: runs every scenario briefly (about a
# second, small N) against a ringmqd started here on an ephemeral port, and
# checks that the counts add up: for QoS 1 and 2 every message sent in the
# measurement window was received (sent x fan-out = received, nothing lost),
# and for QoS 2 nothing was duplicated. Against Debian's mosquitto, when it
# is installed, the options ringmqd does not support yet (MQTT 5.0 and shared
# subscriptions) are run the same way. No timing is asserted.
#
#   scenarios_test.sh RINGMQ_BENCH RINGMQD CONF
set -u
BENCH=$1 RINGMQD=$2 CONF=$3
command -v jq >/dev/null 2>&1 || { echo "jq not installed: skipped"; exit 77; }
DIR=$(mktemp -d)
BROKER_PID=
MOSQ_PID=
cleanup() {
    [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
    [ -n "$MOSQ_PID" ] && kill "$MOSQ_PID" 2>/dev/null && wait "$MOSQ_PID" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT
fail=0

# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

"$RINGMQD" -c "$CONF" --set listener.default.port=0 --set server.shards=1 2>"$DIR/ringmqd.log" &
BROKER_PID=$!
PORT=$(wait_for "$DIR/ringmqd.log" 'listening on 127.0.0.1:[0-9]*' | sed 's/.*://')
[ -n "$PORT" ] || { echo "ringmqd did not start"; cat "$DIR/ringmqd.log"; exit 1; }

T="-d 1 --warmup 0.2 --drain 10"
run p2p_qos0 0 "$PORT" p2p -n 5 -q 0 $T
run p2p_qos1 0 "$PORT" p2p -n 5 -q 1 $T
run p2p_qos2 0 "$PORT" p2p -n 5 -q 2 $T --threads 2
run p2p_mixed_rate 0 "$PORT" p2p -n 6 -q 0,1,2 -r 500 $T
run fanout_qos1 0 "$PORT" fanout --pubs 2 --subs 20 -q 1 $T --threads 2
run fanin_qos1 0 "$PORT" fanin --pubs 10 --subs 2 -q 1 -w 8 $T
run fanin_qos2_persistent 0 "$PORT" fanin --pubs 4 --subs 1 -q 2 $T --persistent
run payload_1k_qos1 0 "$PORT" p2p -n 2 -q 1 -s 1000 $T -u user -P pass
run conn 0 "$PORT" conn --conns 300 --conn-rate 1000 --sources 3 -d 0.5 --broker-pid "$BROKER_PID"
jq -e '.broker.rss_after_kib > 0 and .connections.up == 300' "$DIR/conn.json" >/dev/null ||
    { echo "FAIL conn: no broker memory figure"; fail=1; }
run count_limited 0 "$PORT" p2p -n 2 -q 1 --count 100 -d 30 --warmup 0
jq -e '.sent == 200 and .received == 200' "$DIR/count_limited.json" >/dev/null ||
    { echo "FAIL count_limited: $(jq -c '[.sent,.received]' "$DIR/count_limited.json")"; fail=1; }
# Rates are over the stated window: counts are of messages sent inside
# [t_measure, t_end), so the seconds they are divided by must be exactly -d
# (the first progress tick after t_measure started it up to 20 ms late),
# and a run that ends in its warm-up measured nothing (it wrapped below 0).
run window_length 0 "$PORT" p2p -n 2 -q 0 -d 1 --warmup 0 --drain 10
jq -e '.measured_s == 1' "$DIR/window_length.json" >/dev/null ||
    { echo "FAIL window_length: measured_s $(jq .measured_s "$DIR/window_length.json")"; fail=1; }
"$BENCH" p2p -p "$PORT" -n 2 -q 1 --count 10 -d 1 --warmup 1 --json "$DIR/in_warmup.json" --quiet \
    >"$DIR/in_warmup.out" 2>&1
jq -e '.measured_s == 0 and .sent == 0' "$DIR/in_warmup.json" >/dev/null ||
    { echo "FAIL in_warmup: $(jq -c '[.measured_s, .sent]' "$DIR/in_warmup.json")"; fail=1; }
# MQTT 5.0 clients, QoS 1 and 2: nothing lost.
run v5_qos1 0 "$PORT" p2p -n 3 -q 1 -V 5 $T
run v5_qos2 0 "$PORT" p2p -n 2 -q 2 -V 5 $T
# Loopback only unless asked.
run remote_refused 1 "$PORT" p2p -n 1 -h 192.0.2.1 $T

kill "$BROKER_PID"
wait "$BROKER_PID" || { echo "FAIL: ringmqd exited with an error"; cat "$DIR/ringmqd.log"; fail=1; }
BROKER_PID=

# A broker that announces a Receive Maximum below the window (mosquitto's
# default is 20): the publishers keep to it (MQTT-3.3.4-9), so nothing is
# refused or closed and nothing is lost.
"$RINGMQD" -c "$CONF" --set listener.default.port=0 --set server.shards=1 \
    --set mqtt.receive_maximum=8 2>"$DIR/ringmqd_rm8.log" &
BROKER_PID=$!
PORT=$(wait_for "$DIR/ringmqd_rm8.log" 'listening on 127.0.0.1:[0-9]*' | sed 's/.*://')
if [ -n "$PORT" ]; then
    run v5_receive_max_qos2 0 "$PORT" p2p -n 2 -q 2 -V 5 -w 64 $T
    run v5_receive_max_fanin 0 "$PORT" fanin --pubs 2 --subs 1 -q 1,2 -V 5 -w 64 $T
else
    echo "FAIL: ringmqd (receive_maximum 8) did not start"
    cat "$DIR/ringmqd_rm8.log"
    fail=1
fi
kill "$BROKER_PID"
wait "$BROKER_PID"
BROKER_PID=

if [ -x /usr/sbin/mosquitto ]; then
    MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$MPORT" >"$DIR/mosquitto.conf"
    /usr/sbin/mosquitto -c "$DIR/mosquitto.conf" >"$DIR/mosquitto.log" 2>&1 &
    MOSQ_PID=$!
    if wait_for "$DIR/mosquitto.log" 'running' >/dev/null; then
        run mosq_v5_qos1 0 "$MPORT" p2p -n 3 -q 1 -V 5 $T
        # A fixed rate: mosquitto reads one packet per socket per loop turn, so
        # unlimited fan-in to one subscriber outruns its PUBACKs and it drops.
        run mosq_shared_qos1 0 "$MPORT" fanin --pubs 4 --subs 3 --shared -q 1 -r 500 $T
    else
        echo "mosquitto did not start: its runs skipped"
        cat "$DIR/mosquitto.log"
    fi
fi
exit $fail
