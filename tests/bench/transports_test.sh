#!/bin/sh
# End-to-end test of ringmq-bench's transports (--tls, --ws, both: wss):
# against a ringmqd started here on an ephemeral port with that transport,
# briefly runs p2p (QoS 1: nothing lost), fanout, conn and the handshake
# scenario (full and, for TLS, resumed), payloads that span TLS records and
# WebSocket frames, and the refusals that must fail: a server certificate
# from another CA than --cafile, a WebSocket path the broker does not serve.
# Certificates (P-256) are made here with openssl. No timing is asserted.
#
#   transports_test.sh RINGMQ_BENCH RINGMQD CONF
set -u
BENCH=$1 RINGMQD=$2 CONF=$3
for tool in jq openssl; do
    command -v $tool >/dev/null 2>&1 || { echo "$tool not installed: skipped"; exit 77; }
done
DIR=$(mktemp -d)
BROKER_PID=
cleanup() {
    [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT
fail=0

# ca NAME: a P-256 CA; cert: a server certificate for 127.0.0.1 signed by "ca".
ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/$1.key" \
        -out "$DIR/$1.crt" -days 2 -subj "/CN=$1" -addext basicConstraints=critical,CA:TRUE \
        >>"$DIR/openssl.log" 2>&1
}
ca ca && ca other_ca &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/server.key" \
        -out "$DIR/server.csr" -subj /CN=localhost >>"$DIR/openssl.log" 2>&1 &&
    printf 'subjectAltName=IP:127.0.0.1\n' >"$DIR/ext" &&
    openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
        -CAcreateserial -days 2 -extfile "$DIR/ext" -out "$DIR/server.crt" >>"$DIR/openssl.log" 2>&1 ||
    { echo "openssl could not make certificates"; cat "$DIR/openssl.log"; exit 1; }

# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

# start TRANSPORT: ringmqd with its one listener speaking TRANSPORT; sets
# PORT (empty when it did not start: its log says why).
start() {
    "$RINGMQD" -c "$CONF" --set listener.default.port=0 --set server.shards=1 \
        --set "listener.default.transport=$1" --set "listener.default.tls_cert=$DIR/server.crt" \
        --set "listener.default.tls_key=$DIR/server.key" 2>"$DIR/ringmqd-$1.log" &
    BROKER_PID=$!
    PORT=$(wait_for "$DIR/ringmqd-$1.log" 'listening on 127.0.0.1:[0-9]*' | sed 's/.*://')
}

stop() {
    kill "$BROKER_PID"
    wait "$BROKER_PID" || { echo "FAIL: ringmqd exited with an error"; cat "$DIR"/ringmqd-*.log; fail=1; }
    BROKER_PID=
}

T="-d 0.5 --warmup 0.2 --drain 10"
# transport_runs NAME ARGS...: the scenarios over one transport.
transport_runs() {
    n=$1
    shift
    run "${n}_p2p_qos1" 0 "$PORT" p2p -n 3 -q 1 $T "$@"
    run "${n}_fanout_qos0" 0 "$PORT" fanout --pubs 1 --subs 20 -q 0 -r 200 $T "$@"
    run "${n}_conn" 0 "$PORT" conn --conns 50 -d 0.3 "$@"
    run "${n}_handshake" 0 "$PORT" handshake --conns 4 $T "$@"
    # 64 x 40 KB in flight: many TLS records, and WebSocket frames split
    # below the broker's ws_max_frame (1 MiB), per send.
    run "${n}_large" 0 "$PORT" p2p -n 1 -q 1 -s 40000 $T "$@"
}

start tls
if [ -n "$PORT" ]; then
    transport_runs tls --tls --cafile "$DIR/ca.crt"
    run tls_resume 0 "$PORT" handshake --conns 4 $T --tls --cafile "$DIR/ca.crt" --tls-resume
    jq -e '.resumed > 0' "$DIR/tls_resume.json" >/dev/null ||
        { echo "FAIL tls_resume: no session resumed"; fail=1; }
    run tls_no_verify 0 "$PORT" p2p -n 1 -q 1 $T --tls
    # The broker's certificate does not chain to --cafile: nothing connects.
    run tls_wrong_ca 2 "$PORT" p2p -n 1 -q 1 $T --tls --cafile "$DIR/other_ca.crt" --connect-timeout 5
    stop
else
    echo "FAIL: ringmqd (tls) did not start"
    cat "$DIR/ringmqd-tls.log"
    fail=1
fi

start ws
if [ -n "$PORT" ]; then
    transport_runs ws --ws /mqtt
    run ws_wrong_path 2 "$PORT" p2p -n 1 -q 1 $T --ws /elsewhere --connect-timeout 5
    stop
else
    echo "FAIL: ringmqd (ws) did not start"
    cat "$DIR/ringmqd-ws.log"
    fail=1
fi

# WebSocket over TLS, once the broker has it.
start wss
if [ -n "$PORT" ]; then
    transport_runs wss --tls --cafile "$DIR/ca.crt" --ws /mqtt
    stop
else
    kill "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=
    echo "skipped wss: $(head -n 1 "$DIR/ringmqd-wss.log")"
fi
exit $fail
