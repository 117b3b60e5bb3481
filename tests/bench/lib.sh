# shellcheck shell=sh disable=SC2034 # fail is read by the sourcing test
# tests/bench/lib.sh: what the ringmq-bench end-to-end tests share, sourced
# by them after setting BENCH (the binary), DIR (a scratch directory) and
# fail (0; set to 1 on a failure).
#
#   wait_for FILE PATTERN     bounded wait (15 s) until FILE contains
#                             PATTERN; prints the match
#   run NAME EXIT PORT ARGS...   ringmq-bench ARGS against PORT; checks its
#                             exit status and, for a run that should pass,
#                             the counts in its JSON

wait_for() {
    i=0
    while [ $i -lt 300 ]; do
        m=$(grep -o "$2" "$1" 2>/dev/null | head -n 1)
        [ -n "$m" ] && { echo "$m"; return 0; }
        i=$((i + 1))
        sleep 0.05
    done
    return 1
}

run() {
    name=$1 want=$2 port=$3
    shift 3
    json="$DIR/$name.json"
    "$BENCH" "$@" -p "$port" --json "$json" --quiet >"$DIR/$name.out" 2>&1
    rc=$?
    if [ "$rc" != "$want" ]; then
        echo "FAIL $name: exit $rc, expected $want"
        cat "$DIR/$name.out"
        fail=1
        return
    fi
    [ "$want" = 0 ] || { echo "ok   $name (exit $rc)"; return; }
    # Every QoS 1/2 message sent in the window arrived, once per subscriber
    # that expects it; a QoS 2 message exactly once; the run saw traffic
    # (the handshake scenario: connections); every connection came up.
    bad=$(jq -r '
        [ .per_qos | to_entries[] | select(.key != "0") |
          select(.value.lost != 0 or .value.received != .value.expected or
                 (.key == "2" and .value.duplicate != 0)) | .key ] +
        (if .scenario == "handshake" then (if .handshakes == 0 then ["no handshakes"] else [] end)
         elif .scenario != "conn" and (.sent == 0 or .received == 0) then ["no traffic"]
         else [] end) +
        (if .connections.up < .connections.target or
            (.scenario != "handshake" and .connections.up != .connections.target)
         then ["connections"] else [] end) +
        (if .ok then [] else ["not ok"] end) | join(",")' "$json")
    if [ -n "$bad" ]; then
        echo "FAIL $name: $bad"
        cat "$DIR/$name.out"
        fail=1
        return
    fi
    echo "ok   $name: $(jq -c '[.transport, .sent, .received, .handshakes, .per_qos]' "$json")"
}
