# bench/lib.sh: what the comparison scripts share (sourced by bash scripts
# that have set OUT, a scratch directory).
#
#   free_port                 a free loopback TCP port
#   wait_port PORT            bounded wait until 127.0.0.1:PORT accepts
#   start_other PORT LOG [PREFIX...]   the other broker: Debian's mosquitto
#                             (INFLIGHT/QUEUED limits, no persistence, errors
#                             and warnings logged; TLS with TLS_CERT and
#                             TLS_KEY when they are set), or OTHER_CMD with
#                             {PORT}, {DIR}, {CERT} and {KEY} substituted;
#                             PREFIX (e.g. taskset -c 1) runs before it.
#                             Sets BROKER_PID.
#   stop_broker               SIGTERM BROKER_PID and wait (a trap calls it)
#   figure JSON EXPR          a number from ringmq-bench's JSON, 1 decimal, or -
#   bench_prepare NAME        OUT defaults to a new /tmp/ringmq-NAME.XXXXXX; exits
#                             when RINGMQD or BENCH is not built or jq missing

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

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

start_other() {
    local port=$1 log=$2
    shift 2
    if [ -n "${OTHER_CMD:-}" ]; then
        local cmd=${OTHER_CMD//\{PORT\}/$port}
        cmd=${cmd//\{DIR\}/$OUT}
        cmd=${cmd//\{CERT\}/${TLS_CERT:-}}
        cmd=${cmd//\{KEY\}/${TLS_KEY:-}}
        # exec: the pid is the broker's, not a shell's.
        bash -c "exec $* $cmd" >"$log" 2>&1 &
    else
        printf '%s\n' "listener $port 127.0.0.1" "allow_anonymous true" \
            "max_inflight_messages ${INFLIGHT:-32}" "max_queued_messages ${QUEUED:-1000}" \
            "persistence false" "log_type error" "log_type warning" >"$OUT/mosquitto.conf"
        if [ -n "${TLS_CERT:-}" ]; then
            printf '%s\n' "certfile $TLS_CERT" "keyfile $TLS_KEY" >>"$OUT/mosquitto.conf"
        fi
        "$@" /usr/sbin/mosquitto -c "$OUT/mosquitto.conf" >"$log" 2>&1 &
    fi
    BROKER_PID=$!
    wait_port "$port"
}

figure() {
    jq -r "($2) // \"-\" | if type == \"number\" then (. * 10 | round / 10) else . end" "$1" 2>/dev/null || echo "-"
}

bench_prepare() {
    OUT=${OUT:-$(mktemp -d "/tmp/ringmq-$1.XXXXXX")}
    mkdir -p "$OUT"
    for bin in "$RINGMQD" "$BENCH"; do
        [ -x "$bin" ] || { echo "$bin not built (meson setup build && ninja -C build)" >&2; exit 1; }
    done
    command -v jq >/dev/null || { echo "jq is needed" >&2; exit 1; }
}
