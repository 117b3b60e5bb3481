#!/bin/sh
# MQTT.js over ws:// or wss:// (TEST.mjs beside this file, with lib.mjs),
# run by meson as
#   ws_node_test.sh SOURCE_DIR BUILD_DIR TEST.mjs
# with RINGMQD, RINGMQ_CONF and RINGMQ_SHARDS set. MQTT.js is installed from
# the committed package-lock.json into BUILD_DIR (npm ci, once per lock
# file; concurrent runs wait for it under a lock). Without node or npm the
# test is skipped (exit 77) with the reason printed, never passed.
set -u
src=$1
dir=$2
test=$3
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "SKIP: node and npm are not installed (tools/install-deps.sh installs them)"
    exit 77
fi
mkdir -p "$dir" || exit 1
(
    flock 9 || exit 1
    if [ ! -f "$dir/node_modules/mqtt/package.json" ] ||
        ! cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
        cp "$src/package.json" "$src/package-lock.json" "$dir/" || exit 1
        if ! (cd "$dir" && npm ci --no-audit --no-fund >npm.log 2>&1); then
            cat "$dir/npm.log"
            rm -f "$dir/package-lock.json"
            echo "npm ci failed"
            exit 1
        fi
    fi
    for f in lib.mjs "$test"; do
        cp "$src/$f" "$dir/$f.tmp.$$" && mv "$dir/$f.tmp.$$" "$dir/$f" || exit 1
    done
) 9>"$dir/.lock" || exit 1
cd "$dir" && exec node --test "$test"
