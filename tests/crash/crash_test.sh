#!/usr/bin/env bash
# The crash test (issue 13): what ringmq promises survives kill -9. A QoS 1/2
# message whose PUBACK/PUBREC the publisher received, and a subscription whose
# SUBACK the subscriber received, are still there after the broker is killed
# with SIGKILL at a random moment and restarted on the same data directory.
#
# For shards 1 and 4, QoS 1 and 2: ringmqd with persistence (fsync = always)
# on a loopback port, crash_client's subscriber (subscribes once, at its first
# start, never again) and publisher (sequence numbers, records what was
# acknowledged), CRASH_KILLS kills at random moments while messages flow,
# a restart after each; then the publisher finishes what is in flight, the
# subscriber drains, the broker is stopped with SIGTERM (it must exit 0), and:
#   - every acknowledged sequence number was received (lost = 0);
#   - QoS 2: none was received twice (duplicates = 0);
#   - one SUBSCRIBE in all, every reconnection found its session (sp=1), and
#     messages arrived after the last restart.
# One summary line per combination; exit 1 on any failure.
#
# Environment: RINGMQD, RINGMQ_CONF, CRASH_CLIENT (meson sets them);
# CRASH_KILLS (5 per combination), CRASH_SEED (random), CRASH_RATE (messages
# a second, 2000), CRASH_FSYNC (always; interval must lose messages),
# CRASH_PAD (bytes of padding per message, 600: enough for the broker's
# log to pass max_log_bytes between kills, so that kills land during and
# after snapshots), CRASH_NO_PERSIST=1 (the in-memory broker: must fail), CRASH_DROP_ONLY=1
# (checks the clients: instead of a kill, their TCP connections are cut with
# ss -K and the broker stays; even the in-memory one must pass), CRASH_KEEP=1
# (keep the temp dir).
set -u

: "${RINGMQD:?RINGMQD must name ringmqd}" "${RINGMQ_CONF:?RINGMQ_CONF must name the config}"
: "${CRASH_CLIENT:?CRASH_CLIENT must name crash_client}"
kills=${CRASH_KILLS:-5}
export CRASH_PAD=${CRASH_PAD:-600}
rate=${CRASH_RATE:-2000}
fsync=${CRASH_FSYNC:-always}
seed=${CRASH_SEED:-$((($$ + $(date +%s)) % 32768))}
RANDOM=$seed

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringmq-crash.XXXXXX") || exit 1
broker_pid='' sub_pid='' pub_pid=''

# Every process this script started, by PID; then the temp dir.
cleanup()
{
    for pid in $pub_pid $sub_pid $broker_pid; do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "${CRASH_KEEP:-0}" = 1 ]; then
        echo "crash: kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

now_ms() { date +%s%3N; }

# A port below the kernel's ephemeral range: the clients' own connections,
# retried while the broker is down, can never hold it (nor connect to
# themselves on it), so every restart can bind it again.
pick_port()
{
    local low
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
    [ "$low" -gt 12000 ] || low=32768
    echo $((low - 11000 + RANDOM % 10000))
}

# Starts ringmqd on $port and $dir/data and waits for "listening on" (30 s);
# 1 if it exited or never listened.
start_broker()
{
    starts=$((starts + 1))
    local log=$dir/broker.$starts.log
    # max_log_bytes at its least (1 MiB): a snapshot every few seconds of
    # traffic, so kills land while one is under way and after it, on
    # sessions written whole under new numbers.
    local persist=(--set persistence.enabled=true --set "persistence.dir=$dir/data"
        --set "persistence.fsync=$fsync" --set persistence.max_log_bytes=1048576)
    [ "${CRASH_NO_PERSIST:-0}" = 1 ] && persist=()
    "$RINGMQD" -c "$RINGMQ_CONF" --set "listener.default.port=$port" \
        --set "server.shards=$shards" --set limits.max_queued_messages=10000000 \
        --set limits.max_queued_bytes=1073741824 "${persist[@]}" \
        </dev/null >"$log" 2>&1 &
    broker_pid=$!
    local deadline=$(($(now_ms) + 30000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        grep -q "listening on 127.0.0.1:$port" "$log" 2>/dev/null && return 0
        if ! kill -0 "$broker_pid" 2>/dev/null; then
            wait "$broker_pid"
            broker_pid=''
            return 1
        fi
        sleep 0.02
    done
    return 1
}

# After SIGKILL the kernel tears the dead broker's io_uring down
# asynchronously, and the listening sockets it holds go with it, a little
# later: until then a new broker finds the port in use. Retried for 10 s.
restart_broker()
{
    local deadline=$(($(now_ms) + 10000))
    until start_broker; do
        grep -q 'Address already in use' "$dir/broker.$starts.log" || return 1
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        port_retries=$((port_retries + 1))
        sleep 0.05
    done
}

kill_broker()
{
    kill -KILL "$broker_pid"
    wait "$broker_pid" 2>/dev/null
    broker_pid=''
}

lines() { grep -c '^[0-9]' "$1" 2>/dev/null || true; }

# Waits up to $2 ms for file $1 to hold more than $3 sequence numbers.
wait_growth()
{
    local deadline=$(($(now_ms) + $2))
    while [ "$(lines "$1")" -le "$3" ]; do
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.02
    done
}

# Waits up to $2 s for PID $1 to exit; its status in $waited_rc.
wait_exit()
{
    local deadline=$(($(now_ms) + $2 * 1000))
    while kill -0 "$1" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 0.05
    done
    kill -0 "$1" 2>/dev/null && kill -KILL "$1"
    wait "$1"
    waited_rc=$?
}

# The acknowledged sequence numbers never received, one a line.
missing()
{
    awk 'FILENAME == ARGV[1] { if (!/^#/) got[$1] = 1; next } !($1 in got)' \
        "$dir/received" "$dir/acked"
}
lost_count() { missing | grep -c . ; }

# The subscriber drains until nothing acknowledged is missing, or nothing
# new arrived for 3 s (lost for good), or 20 s.
drain()
{
    local deadline=$(($(now_ms) + 20000)) last=-1 since count
    since=$(now_ms)
    while [ "$(now_ms)" -lt "$deadline" ] && [ "$(lost_count)" -gt 0 ]; do
        count=$(lines "$dir/received")
        if [ "$count" != "$last" ]; then
            last=$count
            since=$(now_ms)
        fi
        [ $(($(now_ms) - since)) -lt 3000 ] || break
        sleep 0.1
    done
}

fail() { echo "crash shards=$shards qos=$qos: $*"; failed=1; }

# Prints the summary line of one combination and judges it.
check()
{
    local published acked received unique dups lost subs sp0 after resub
    published=$(awk '{ print $2 }' "$dir/published" 2>/dev/null)
    acked=$(sort -u "$dir/acked" | grep -c .)
    received=$(lines "$dir/received")
    unique=$(grep '^[0-9]' "$dir/received" | sort -u | grep -c .)
    dups=$((received - unique))
    lost=$(lost_count)
    subs=$(grep -c '^# subscribe' "$dir/received")
    resub=$((subs - 1))
    sp0=$(grep '^# connect' "$dir/received" | tail -n +2 | grep -c 'sp=0')
    after=$(awk '/^# connect/ { n = 0; next } /^[0-9]/ { n++ } END { print n + 0 }' "$dir/received")
    echo "crash shards=$shards qos=$qos kills=$killed published=${published:-?}" \
        "acknowledged=$acked received=$unique lost=$lost duplicates=$dups" \
        "resubscribed=$resub sessions_lost=$sp0 received_after_last_restart=$after" \
        "port_busy_retries=$port_retries"
    [ "$lost" -eq 0 ] || fail "$lost acknowledged messages lost, e.g." \
        "$(missing | sort -n | head -5 | tr '\n' ' ')"
    [ "$qos" -eq 1 ] || [ "$dups" -eq 0 ] || fail "$dups QoS 2 messages received twice" \
        "(MQTT-4.3.3), e.g. $(grep '^[0-9]' "$dir/received" | sort -n | uniq -d | head -5 | tr '\n' ' ')"
    [ "$resub" -eq 0 ] || fail "the subscriber subscribed $subs times"
    [ "$sp0" -eq 0 ] || fail "$sp0 reconnections of the subscriber found no session (sp=0)"
    [ "$after" -gt 0 ] || fail "nothing received after the last restart"
    [ "$acked" -gt 0 ] || fail "nothing acknowledged"
}

# One combination: $shards, $qos.
run_one()
{
    dir=$tmp/shards$shards-qos$qos
    mkdir -p "$dir/data"
    starts=0 killed=0 port_retries=0
    local tries=0
    port=$(pick_port)
    until start_broker; do
        tries=$((tries + 1))
        if [ "$tries" -ge 5 ] || ! grep -qi 'in use' "$dir/broker.$starts.log"; then
            fail "ringmqd did not start:"
            tail -n 20 "$dir/broker.$starts.log"
            return
        fi
        port=$(pick_port)
    done
    : >"$dir/acked"
    : >"$dir/received"
    "$CRASH_CLIENT" sub "$port" "$dir/received" "$dir/ready" 150 2>"$dir/sub.err" &
    sub_pid=$!
    local deadline=$(($(now_ms) + 10000))
    until [ -e "$dir/ready" ] || [ "$(now_ms)" -ge "$deadline" ]; do
        sleep 0.02
    done
    [ -e "$dir/ready" ] || { fail "no SUBACK in 10 s"; return; }
    "$CRASH_CLIENT" pub "$port" "$qos" "$dir/acked" "$rate" 150 \
        >"$dir/published" 2>"$dir/pub.err" &
    pub_pid=$!
    local k acks
    for k in $(seq "$kills"); do
        # Kill while messages flow: once acknowledgements come in again.
        acks=$(lines "$dir/acked")
        wait_growth "$dir/acked" 10000 "$acks" || { fail "no acknowledgement in 10 s"; break; }
        sleep "$(printf '0.%03d' $((50 + RANDOM % 900)))"
        killed=$((killed + 1))
        if [ "${CRASH_DROP_ONLY:-0}" = 1 ]; then
            # Checks the clients: their connections cut, the broker kept.
            ss -K dst 127.0.0.1 dport = ":$port" >/dev/null 2>&1
            continue
        fi
        kill_broker
        restart_broker || { fail "ringmqd did not restart:" && tail -n 20 "$dir/broker.$starts.log"; return; }
    done
    acks=$(lines "$dir/acked")
    wait_growth "$dir/acked" 10000 "$((acks + 50))" || fail "few acknowledgements after the last restart"
    kill -USR1 "$pub_pid"
    wait_exit "$pub_pid" 20
    pub_pid=''
    [ "$waited_rc" -eq 0 ] || fail "publisher exited $waited_rc: $(cat "$dir/pub.err")"
    drain
    kill -TERM "$sub_pid"
    wait_exit "$sub_pid" 10
    sub_pid=''
    kill -TERM "$broker_pid"
    wait_exit "$broker_pid" 30
    broker_pid=''
    [ "$waited_rc" -eq 0 ] || { fail "ringmqd exited $waited_rc on SIGTERM:" &&
        tail -n 20 "$dir/broker.$starts.log"; }
    check
}

echo "crash: seed=$seed kills=$kills rate=$rate fsync=$fsync persist=$([ "${CRASH_NO_PERSIST:-0}" = 1 ] && echo no || echo yes)"
failed=0
started=$(now_ms)
for shards in 1 4; do
    for qos in 1 2; do
        run_one
    done
done
echo "crash: $((($(now_ms) - started) / 1000)) s, $([ "$failed" = 0 ] && echo passed || echo FAILED)"
exit "$failed"
