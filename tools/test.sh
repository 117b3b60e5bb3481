#!/bin/sh
# Build ringmq three times and run every test in two of them: the default
# (debugoptimized) build and an ASan+UBSan build are tested, a release build
# (-O3, where GCC warns about more) is only built. Warnings are errors in all
# three. Ends with one line "N passed, N failed" summed over the tested builds.
set -u
cd "$(dirname "$0")/.."
sh tools/install-deps.sh || exit 1
passed=0
failed=0
build_only() { # dir, meson options...
    dir=$1
    shift
    if [ ! -d "$dir" ]; then
        meson setup "$dir" "$@" >/dev/null || return 1
    fi
    ninja -C "$dir" >/dev/null || { ninja -C "$dir"; return 1; }
    echo "$dir: built"
}
run_suite() { # dir, meson options...
    dir=$1
    build_only "$@" || return 1
    meson test -C "$dir" --print-errorlogs --num-processes 2 >"$dir/test-summary.txt" 2>&1
    rc=$?
    cat "$dir/test-summary.txt"
    ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$dir/test-summary.txt")
    bad=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$dir/test-summary.txt")
    to=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$dir/test-summary.txt")
    passed=$((passed + ${ok:-0}))
    failed=$((failed + ${bad:-0} + ${to:-0}))
    return $rc
}
status=0
build_only build-release -Dbuildtype=release -Dwerror=true || status=1
run_suite build -Dwerror=true || status=1
# Undefined behaviour fails the run (in tests and in the brokers they start).
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
run_suite build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug || status=1
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1 # a build or set-up failure counts as one failure
fi
echo "$passed passed, $failed failed"
exit $status
