#!/bin/sh
# bench/slow_consumers.sh end to end, briefly: 50 slow subscribers, phases
# of 1 s, against ringmqd (2 shards, auth_file, two tenants) and, as the
# "other" broker, a second ringmqd without plugins. Both runs must complete
# (the tool's exit status 0: no connection failure, no pair message lost),
# print the summary, report the broker's RSS before/peak/after, and leave no
# broker running. No timing is asserted.
#
#   slow_consumers_test.sh SOURCE_ROOT RINGMQD SLOW_CONSUMERS RINGMQ_PASSWD AUTH_PLUGIN CONF
set -u
ROOT=$1 RINGMQD=$2 TOOL=$3 PASSWD=$4 AUTH_PLUGIN=$5 CONF=$6
for tool in jq python3 bash timeout; do
    command -v $tool >/dev/null 2>&1 || { echo "$tool not installed: skipped"; exit 77; }
done
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
RINGMQD=$RINGMQD TOOL=$TOOL PASSWD=$PASSWD AUTH_PLUGIN=$AUTH_PLUGIN RINGMQ_CONF=$CONF \
    OTHER_NAME=ringmq2 \
    OTHER_CMD="$RINGMQD -c $CONF --set listener.default.port={PORT} --set server.shards=2 --set log.level=warning" \
    timeout 150 bash "$ROOT/bench/slow_consumers.sh" -s 1 -n 50 -o "$OUT/res" >"$OUT/table" 2>"$OUT/log"
rc=$?
cat "$OUT/log" "$OUT/table"
[ $rc = 0 ] || { echo "FAIL: slow_consumers.sh exit $rc"; exit 1; }
for name in ringmq ringmq2; do
    out="$OUT/res/$name.out" json="$OUT/res/$name.json"
    grep -q '^summary:' "$out" || { echo "FAIL: $name: no summary"; exit 1; }
    grep -q '^broker RSS: before [0-9]' "$out" || { echo "FAIL: $name: no RSS line"; exit 1; }
    lost=$(jq -r .pair.lost "$json")
    sent=$(jq -r .pair.sent "$json")
    [ "$lost" = 0 ] || { echo "FAIL: $name: lost $lost pair messages"; exit 1; }
    [ "$sent" -gt 0 ] || { echo "FAIL: $name: no pair message sent"; exit 1; }
    for k in before peak after; do
        v=$(jq -r ".rss_mib.$k" "$json")
        echo "$v" | awk '{ exit !($1 > 0) }' || { echo "FAIL: $name: rss $k is $v"; exit 1; }
    done
    [ "$(jq -r '.flood.sent > 0' "$json")" = true ] || { echo "FAIL: $name: no flood"; exit 1; }
    # The table row: every figure present (a failed run shows "-" or "(exit N)").
    row=$(grep "^$name " "$OUT/table")
    case $row in
    "" | *exit* | *" - "* | *" -") echo "FAIL: $name row: '$row'"; exit 1 ;;
    esac
    pid=$(jq -r .options.broker_pid "$json")
    if kill -0 "$pid" 2>/dev/null; then
        echo "FAIL: $name broker $pid left running"
        kill "$pid"
        exit 1
    fi
done
echo ok
