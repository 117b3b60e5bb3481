#!/bin/bash
# instructions.sh: the broker's instruction count over a fixed workload,
# under valgrind's callgrind: deterministic where msg/s on a shared machine
# is not, so two builds can be compared exactly (e.g. before and after a
# refactor).
#
#   bench/instructions.sh RINGMQD [QOS] [OUT]
#
# Runs RINGMQD (1 shard) and `ringmq-bench p2p -n 10 -q QOS -s 16 --count
# 20000` (200,000 messages) against it, then prints the program's total
# instructions; OUT (default /tmp/ringmq-instructions.out) keeps the
# callgrind profile for callgrind_annotate. Needs valgrind. With TLS=1 the
# listener is TLS (a P-256 certificate made here with openssl) and the
# bench connects with --tls: where the cycles of a TLS run go.
set -u
cd "$(dirname "$0")/.." || exit 1
bin=${1:?usage: bench/instructions.sh RINGMQD [QOS] [OUT]}
qos=${2:-1}
out=${3:-/tmp/ringmq-instructions.out}
BENCH=${BENCH:-build/bench/ringmq-bench}
. bench/lib.sh
port=$(free_port)
tls_set=()
tls_bench=()
if [ "${TLS:-0}" = 1 ]; then
    tdir=$(mktemp -d /tmp/ringmq-ins-tls.XXXXXX)
    trap 'rm -rf "$tdir"' EXIT
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
        -keyout "$tdir/key.pem" -out "$tdir/cert.pem" >/dev/null 2>&1 || exit 1
    tls_set=(--set listener.default.transport=tls --set "listener.default.tls_cert=$tdir/cert.pem"
        --set "listener.default.tls_key=$tdir/key.pem")
    tls_bench=(--tls --cafile "$tdir/cert.pem")
fi
valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" -c conf/ringmq.ini \
    --set listener.default.port="$port" --set server.shards=1 --set persistence.enabled=false --set log.level=warning \
    "${tls_set[@]}" >"$out.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
    sleep 0.1
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
done
"$BENCH" p2p -n 10 -q "$qos" -s 16 --count 20000 -d 60 --warmup 0 -p "$port" --quiet \
    "${tls_bench[@]}"
rc=$?
# Dump the counts while it runs (a broker under valgrind does not always
# come back from its stop signal: valgrind serialises the threads, and the
# shard's blocking io_uring_enter can keep the main thread from running),
# then stop it.
callgrind_control -d "$pid" >/dev/null 2>&1
sleep 1
kill -TERM "$pid"
for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ $rc = 0 ] || { echo "benchmark failed ($rc)"; exit 1; }
dump=$(ls -t "$out".* 2>/dev/null | grep -v '\.log$' | head -n 1)
callgrind_annotate "${dump:-$out}" 2>/dev/null | grep -m1 'PROGRAM TOTALS'
