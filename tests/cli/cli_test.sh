#!/bin/sh
# Command-line behaviour of ringmqd: --version, --help, --check-config exit
# codes and FILE:LINE errors, --inspect's exit codes, --set overrides, a
# start-up failure's exit code, several listeners, and a clean SIGTERM
# shutdown (exit 0).
# Usage: cli_test.sh RINGMQD CONF
set -u
RINGMQD=$1
CONF=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
pass() { echo "ok - $1"; }
fail() { echo "not ok - $1"; failed=1; }
expect_rc() { # name expected-rc command...
    name=$1 want=$2
    shift 2
    "$@" >"$tmp/out" 2>&1
    rc=$?
    if [ "$rc" -eq "$want" ]; then pass "$name"; else
        fail "$name (exit $rc, wanted $want)"
        cat "$tmp/out"
    fi
}
expect_out() { # name pattern
    if grep -q -- "$2" "$tmp/out"; then pass "$1"; else
        fail "$1 (no '$2' in output)"
        cat "$tmp/out"
    fi
}

expect_rc "--version exits 0" 0 "$RINGMQD" --version
expect_out "--version prints the version" "ringmqd [0-9]"
expect_rc "--help exits 0" 0 "$RINGMQD" --help
expect_out "--help documents --set" "--set"
expect_rc "unknown option is a usage error" 2 "$RINGMQD" --bogus
expect_rc "no -c is a usage error" 2 "$RINGMQD"
expect_rc "shipped config checks" 0 "$RINGMQD" -c "$CONF" --check-config

printf '[server]\nshards = 2\n[listener.default]\nport = 1883\n[limits]\nmax_inflight = abc\n' >"$tmp/bad.ini"
expect_rc "bad value fails --check-config" 1 "$RINGMQD" -c "$tmp/bad.ini" --check-config
expect_out "bad value reported as FILE:LINE" "$tmp/bad.ini:6:"
printf '[listener.default]\nport = 1883\n[nosuch]\n' >"$tmp/sec.ini"
expect_rc "unknown section fails" 1 "$RINGMQD" -c "$tmp/sec.ini" --check-config
expect_out "unknown section reported with its line" "$tmp/sec.ini:3:"
# Every error of the file, each with its line, not only the first.
printf '[server]\nshards = x\n[listener.default]\nport = 1883\n[limits]\nmax_inflight = abc\n[mqtt]\nnokey = 1\n' >"$tmp/multi.ini"
expect_rc "a file with three errors fails --check-config" 1 \
    "$RINGMQD" -c "$tmp/multi.ini" --check-config
expect_out "first error reported with its line" "^ringmqd: $tmp/multi.ini:2: \\[server\\] shards"
expect_out "second error reported with its line" "^ringmqd: $tmp/multi.ini:6: \\[limits\\] max_inflight"
expect_out "third error reported with its line" "^ringmqd: $tmp/multi.ini:8: \\[mqtt\\] unknown key"
if [ "$(grep -c "^ringmqd: $tmp/multi.ini:" "$tmp/out")" -eq 3 ]; then
    pass "three errors, three lines"
else
    fail "three errors, three lines"
    cat "$tmp/out"
fi
expect_rc "a start with three errors fails" 1 "$RINGMQD" -c "$tmp/multi.ini"
if [ "$(grep -c "^ringmqd: $tmp/multi.ini:[268]: " "$tmp/out")" -eq 3 ]; then
    pass "a start lists the three errors"
else
    fail "a start lists the three errors"
    cat "$tmp/out"
fi
# More than 32: the first 32, then how many more.
{ echo '[limits]'; i=0; while [ $i -lt 40 ]; do echo "nokey$i = 1"; i=$((i + 1)); done; } >"$tmp/many.ini"
expect_rc "a file with 40 errors fails" 1 "$RINGMQD" -c "$tmp/many.ini" --check-config
expect_out "the count of those not shown" "$tmp/many.ini: 8 more errors (the first 32 are shown)"
if [ "$(grep -c "unknown key" "$tmp/out")" -eq 32 ]; then pass "32 errors shown"; else
    fail "32 errors shown"
    cat "$tmp/out"
fi
expect_rc "bad --set fails" 1 "$RINGMQD" -c "$CONF" --set limits.nokey=1 --check-config
expect_out "bad --set is named" "--set limits.nokey=1"
expect_rc "non-loopback bind needs allow_anonymous" 1 \
    "$RINGMQD" -c "$CONF" --set listener.default.bind=0.0.0.0 --check-config
expect_rc "non-loopback bind with allow_anonymous checks" 0 \
    "$RINGMQD" -c "$CONF" --set listener.default.bind=0.0.0.0 \
    --set listener.default.allow_anonymous=true --check-config
expect_rc "missing file fails" 1 "$RINGMQD" -c "$tmp/none.ini" --check-config

# --inspect DIR needs no configuration and starts no broker.
expect_rc "--inspect of a missing directory exits 0" 0 "$RINGMQD" --inspect "$tmp/nodata"
expect_out "--inspect says there is no data" "no data"
mkdir "$tmp/notdata" && : >"$tmp/notdata/stray"
expect_rc "--inspect of a directory without CURRENT exits 1" 1 \
    "$RINGMQD" -c "$tmp/none.ini" --inspect "$tmp/notdata"
expect_out "--inspect names what it found" "no CURRENT, yet it holds stray"
expect_rc "--inspect without DIR is a usage error" 2 "$RINGMQD" --inspect

# Two listeners on free ports, then a clean SIGTERM. The log exists before
# the broker starts: the background shell may open it after the first grep.
: >"$tmp/run.log"
"$RINGMQD" -c "$CONF" --set listener.default.port=0 --set listener.second.port=0 \
    --set server.shards=2 >"$tmp/run.log" 2>&1 &
pid=$!
i=0
while [ "$(grep -c 'listening on' "$tmp/run.log")" -lt 2 ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
if [ "$(grep -c 'listening on 127.0.0.1:' "$tmp/run.log")" -eq 2 ]; then
    pass "two listeners both listen"
else
    fail "two listeners both listen"
    cat "$tmp/run.log"
fi
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/run.log" | head -1)
# A second broker on a port the first holds must fail, not join the first's
# SO_REUSEPORT group and take half of its new connections (found in review).
expect_rc "a port in use by another ringmqd exits 1" 1 timeout 10 "$RINGMQD" -c "$CONF" \
    --set listener.default.port="$port" --set server.shards=1
expect_out "a port in use is explained" "127.0.0.1:$port: .*in use"
# The metrics endpoint on a port in use: exit 1, one "metrics: " prefix.
expect_rc "a metrics port in use exits 1" 1 timeout 10 "$RINGMQD" -c "$CONF" \
    --set listener.default.port=0 --set server.shards=1 --set metrics.enabled=true \
    --set metrics.port="$port"
expect_out "a metrics port in use is explained" "error \[main\] metrics: [^m].*$port.*in use"
# Start-up failure: with 4 open files allowed, ringmqd cannot create what it
# needs (eventfds, sockets); it must say so and exit 1.
expect_rc "start-up failure exits 1" 1 sh -c "ulimit -n 4 && exec \"$RINGMQD\" -c \"$CONF\" --set listener.default.port=0 --set server.shards=1"
expect_out "start-up failure is explained" "start-up failed"
# Signals belong to the main thread's sigwait: every other thread blocks
# SIGINT, SIGTERM and SIGHUP (bits 2, 15, 1 of SigBlk), or a SIGHUP arriving
# during a reload would land there and end the process.
unblocked=0
for st in /proc/"$pid"/task/*/status; do
    [ "$st" = "/proc/$pid/task/$pid/status" ] && continue # in sigwait: unblocked while waiting
    blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' "$st")
    [ $(( 0x$blk & 0x4003 )) -eq $(( 0x4003 )) ] || unblocked=$((unblocked + 1))
done
if [ "$unblocked" -eq 0 ]; then pass "every thread blocks SIGHUP, SIGINT, SIGTERM"; else
    fail "$unblocked thread(s) take SIGHUP, SIGINT or SIGTERM"
fi
for _ in $(seq 50); do kill -HUP "$pid"; done
sleep 0.2
if kill -0 "$pid" 2>/dev/null; then pass "a burst of SIGHUP is survived"; else
    fail "a burst of SIGHUP is survived"
    cat "$tmp/run.log"
fi
# wait_log PATTERN COUNT: bounded wait for COUNT lines matching PATTERN.
wait_log() {
    i=0
    while [ "$(grep -c -- "$1" "$tmp/run.log")" -lt "$2" ] && [ $i -lt 100 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    [ "$(grep -c -- "$1" "$tmp/run.log")" -ge "$2" ]
}
# Issue 10: no signal but SIGKILL ends the broker uncleanly. SIGUSR1 (which
# mosquitto's users send to save its database) logs a status line; SIGUSR2,
# SIGALRM and a realtime signal are logged and ignored.
kill -USR1 "$pid"
if wait_log 'info \[main\] status: up [0-9]* s, .* connections, .* rss [0-9]* KiB; per shard connections/messages in: 0: 0/0, 1: 0/0' 1; then
    pass "SIGUSR1 logs a status line"
else
    fail "SIGUSR1 logs a status line"
    cat "$tmp/run.log"
fi
kill -USR2 "$pid"
kill -ALRM "$pid"
kill -40 "$pid" # SIGRTMIN+6 with glibc
if wait_log 'ignored (SIGINT, SIGTERM or SIGQUIT stop the broker)' 3 && kill -0 "$pid" 2>/dev/null &&
    grep -q 'SIGUSR2 ignored' "$tmp/run.log" && grep -q 'signal 40 ignored' "$tmp/run.log"; then
    pass "SIGUSR2, SIGALRM and signal 40 are logged and survived"
else
    fail "SIGUSR2, SIGALRM and signal 40 are logged and survived"
    cat "$tmp/run.log"
fi
kill -QUIT "$pid"
wait "$pid"
rc=$?
if [ "$rc" -eq 0 ] && grep -q 'SIGQUIT: shutting down' "$tmp/run.log"; then
    pass "SIGQUIT shuts down cleanly, exit 0 (port $port)"
else
    fail "SIGQUIT shuts down cleanly, exit 0 (exit $rc)"
    cat "$tmp/run.log"
fi
# listener.NAME.send_buffer sets SO_SNDBUF of the accepted connections (the
# kernel doubles it and shows it as skmem's tb in ss -tm): what the kernel
# may hold for a client that does not read is bounded (issue 10).
if command -v ss >/dev/null 2>&1 && command -v mosquitto_sub >/dev/null 2>&1; then
    : >"$tmp/sb.log"
    "$RINGMQD" -c "$CONF" --set listener.default.port=0 --set listener.default.send_buffer=65536 \
        --set server.shards=1 >"$tmp/sb.log" 2>&1 &
    sbpid=$!
    i=0
    until grep -q 'listening on' "$tmp/sb.log" || [ $i -ge 100 ]; do sleep 0.05; i=$((i + 1)); done
    sbport=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/sb.log")
    mosquitto_sub -h 127.0.0.1 -p "$sbport" -t t -W 10 >/dev/null 2>&1 &
    subpid=$!
    i=0
    until ss -tmnH state established "( sport = :$sbport )" | grep -q skmem || [ $i -ge 100 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    if ss -tmnH state established "( sport = :$sbport )" | grep -q 'tb131072,'; then
        pass "send_buffer sets SO_SNDBUF of accepted connections"
    else
        fail "send_buffer sets SO_SNDBUF of accepted connections"
        ss -tmnH state established "( sport = :$sbport )"
    fi
    kill "$subpid" 2>/dev/null
    wait "$subpid" 2>/dev/null
    kill "$sbpid"
    wait "$sbpid"
else
    echo "ok - # SKIP send_buffer: ss (iproute2) or mosquitto_sub not installed"
fi
# log.format = json: every line the broker writes is one JSON object (jq
# reads each), with its level and thread, and the shard where a shard wrote it.
if command -v jq >/dev/null 2>&1; then
    : >"$tmp/json.log"
    "$RINGMQD" -c "$CONF" --set listener.default.port=0 --set server.shards=2 \
        --set log.format=json >"$tmp/json.log" 2>&1 &
    jpid=$!
    i=0
    until grep -q 'listening on' "$tmp/json.log" || [ $i -ge 100 ]; do sleep 0.05; i=$((i + 1)); done
    kill -TERM "$jpid"
    wait "$jpid"
    lines=$(wc -l <"$tmp/json.log")
    objects=$(jq -c 'select(.time and .level and .thread and .msg)' "$tmp/json.log" 2>/dev/null | wc -l)
    if [ "$lines" -gt 3 ] && [ "$objects" -eq "$lines" ] &&
        jq -se 'any(.shard == 1 and .thread == "shard 1")' "$tmp/json.log" >/dev/null &&
        jq -se 'any(.level == "info" and (.msg | startswith("listening on 127.0.0.1:")))' \
            "$tmp/json.log" >/dev/null; then
        pass "log.format=json writes one JSON object per line ($lines lines)"
    else
        fail "log.format=json writes one JSON object per line ($objects of $lines)"
        cat "$tmp/json.log"
    fi
else
    echo "ok - # SKIP log.format=json: jq not installed"
fi
exit $failed
