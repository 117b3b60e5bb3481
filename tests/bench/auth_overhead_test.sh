#!/bin/sh
# bench/auth_overhead.sh stops the broker it started whatever happens: here
# a stand-in "ringmqd" that never says it is listening (it only sleeps), so
# the script gives up waiting; the stand-in must be gone afterwards. (The
# wait loop exited its subshell without stopping the broker it had started.)
#
#   auth_overhead_test.sh SOURCE_ROOT
set -u
ROOT=$1
command -v taskset >/dev/null 2>&1 || { echo "taskset not installed: skipped"; exit 77; }
[ "$(nproc)" -ge 2 ] || { echo "one CPU: skipped"; exit 77; }
DIR=$(mktemp -d)
FAKE_PID=
cleanup() {
    [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT
mkdir -p "$DIR/build/src" "$DIR/build/tools"
printf '#!/bin/sh\necho $$ >"%s/broker.pid"\nexec sleep 120\n' "$DIR" >"$DIR/build/src/ringmqd"
printf '#!/bin/sh\ncat >/dev/null\n' >"$DIR/build/tools/ringmq-passwd"
chmod +x "$DIR/build/src/ringmqd" "$DIR/build/tools/ringmq-passwd"
cd "$ROOT" || exit 1
BUILD="$DIR/build" timeout 60 sh bench/auth_overhead.sh 1 1 >"$DIR/out" 2>&1
rc=$?
cat "$DIR/out"
[ $rc != 0 ] || { echo "FAIL: auth_overhead.sh succeeded without a broker"; exit 1; }
FAKE_PID=$(cat "$DIR/broker.pid" 2>/dev/null)
[ -n "$FAKE_PID" ] || { echo "FAIL: the stand-in broker never started"; exit 1; }
if kill -0 "$FAKE_PID" 2>/dev/null; then
    echo "FAIL: broker $FAKE_PID left running"
    exit 1
fi
FAKE_PID=
echo ok
