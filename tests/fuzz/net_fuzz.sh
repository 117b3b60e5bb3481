#!/bin/sh
# One round of network fuzzing: starts BUILD/src/ringmqd (an ASan+UBSan build),
# runs BUILD/tests/fuzz/net_fuzz against it, then checks that the broker is
# still alive, that its log holds no sanitizer report, and that SIGTERM ends it
# with status 0 (no leak report). Exit 0 when all holds.
#
#   tests/fuzz/net_fuzz.sh BUILD SHARDS PLUGIN SEED SCRIPTS [CONNS]
#
# PLUGIN is "none" or "auth_file" (BUILD/plugins/ringmq_auth_file.so with two
# users, one of them used by the fuzzer's CONNECTs, and an ACL file).
set -u
build=$1 shards=$2 plugin=$3 seed=$4 scripts=$5 conns=${6:-32}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d /tmp/ringmq-netfuzz-XXXXXX)
log=$dir/broker.log
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

set -- -c "$root/conf/ringmq.ini" --set listener.default.port=0 --set "server.shards=$shards" --set persistence.enabled=false
creds=""
if [ "$plugin" = auth_file ]; then
    printf 'fz-secret\n' | "$build/tools/ringmq-passwd" "$dir/passwd" add fz acme >/dev/null
    printf 'good-secret\n' | "$build/tools/ringmq-passwd" "$dir/passwd" add good acme >/dev/null
    printf '[tenant acme]\nuser fz\ntopic readwrite t/#\ntopic read fz/#\ntopic write $share/#\nuser good\ntopic readwrite good/#\n' >"$dir/acl"
    set -- "$@" --set "plugin.auth.path=$build/plugins/ringmq_auth_file.so" \
        --set "plugin.auth.password_file=$dir/passwd" --set "plugin.auth.acl_file=$dir/acl"
    creds="--user fz --pass fz-secret --good-user good --good-pass good-secret"
fi
"$build/src/ringmqd" "$@" >"$log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 300); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" 2>/dev/null | head -n1)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "net_fuzz.sh: ringmqd did not start"; cat "$log"; kill -9 "$pid" 2>/dev/null; exit 1
fi

fail=0
# shellcheck disable=SC2086
"$build/tests/fuzz/net_fuzz" --port "$port" --seed "$seed" --scripts "$scripts" \
    --conns "$conns" $creds || fail=1
if ! kill -0 "$pid" 2>/dev/null; then
    echo "net_fuzz.sh: ringmqd died"; fail=1
fi
kill -TERM "$pid" 2>/dev/null
status=0
wait "$pid" || status=$?
if [ "$status" -ne 0 ]; then
    echo "net_fuzz.sh: ringmqd exited with status $status"; fail=1
fi
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error|ERROR: ' "$log"; then
    echo "net_fuzz.sh: sanitizer report"; fail=1
fi
if [ "$fail" -ne 0 ]; then
    echo "net_fuzz.sh: FAILED (shards $shards, plugin $plugin, seed $seed); log: $log"
    grep -E -B2 -A40 'AddressSanitizer|LeakSanitizer|runtime error' "$log" | head -120
    exit 1
fi
echo "net_fuzz.sh: ok (shards $shards, plugin $plugin, seed $seed, $scripts scripts)"
[ -n "${KEEP:-}" ] && echo "log: $log" || rm -rf "$dir"
