#!/bin/sh
# `meson install` into a staging directory (DESTDIR), then use what it
# installed as an operator and a plugin author would: start the installed
# ringmqd from the installed configuration with an installed plugin named by
# its bare file name, build an example plugin outside the tree against the
# installed header through pkg-config, see it loaded and called, have
# --check-config catch a plugin that does not load or refuses its keys, and
# verify the systemd unit where systemd-analyze exists.
# Usage: install_test.sh BUILD_DIR SOURCE_ROOT
set -u
BUILD=$1
SRC=$2
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
failed=0
pass() { echo "ok - $1"; }
fail() { echo "not ok - $1"; failed=1; }
stage=$tmp/stage

if meson install -C "$BUILD" --destdir "$stage" --no-rebuild --quiet >"$tmp/install.log" 2>&1; then
    pass "meson install --destdir"
else
    fail "meson install --destdir"
    cat "$tmp/install.log"
    exit 1
fi
one() { # the one installed file named $1 (a find -path pattern)
    find "$stage" -path "$1" | head -n 1
}
ringmqd=$(one '*/bin/ringmqd')
conf=$(one '*/etc/ringmq/ringmq.ini')
plugdir=$(dirname "$(one '*/ringmq/plugins/ringmq_events_log.so')")
pc=$(one '*/pkgconfig/ringmq-plugin.pc')
unit=$(one '*/systemd/system/ringmq.service')
for f in '*/bin/ringmqd' '*/bin/ringmq-bench' '*/bin/ringmq-passwd' \
    '*/ringmq/plugins/ringmq_auth_file.so' '*/ringmq/plugins/ringmq_auth_http.so' \
    '*/ringmq/plugins/ringmq_quota_static.so' '*/ringmq/plugins/ringmq_events_log.so' \
    '*/include/ringmq/plugin.h' '*/pkgconfig/ringmq-plugin.pc' '*/etc/ringmq/ringmq.ini' \
    '*/systemd/system/ringmq.service' '*/sysusers.d/ringmq.conf' '*/man8/ringmqd.8' \
    '*/man5/ringmq.ini.5' '*/man1/ringmq-bench.1' '*/man1/ringmq-passwd.1'; do
    if [ -n "$(one "$f")" ]; then pass "installed $f"; else fail "installed $f"; fi
done
[ -n "$ringmqd" ] && [ -n "$conf" ] && [ -n "$pc" ] || exit 1

# A plugin built outside the tree, seeing only the installed header.
cflags=$(PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$stage pkg-config --cflags ringmq-plugin)
if cc -shared -fPIC -Wall -Wextra -Werror -o "$tmp/connlog.so" "$SRC/examples/plugin/connlog.c" \
    $cflags >"$tmp/cc.log" 2>&1; then
    pass "example plugin builds against the installed header ($cflags)"
else
    fail "example plugin builds against the installed header"
    cat "$tmp/cc.log"
fi

# The installed broker, from the installed configuration, with one plugin
# by bare name (the installed directory) and the example one by path.
export RINGMQ_PLUGIN_DIR="$plugdir"
cp "$conf" "$tmp/ringmq.ini"
cat >>"$tmp/ringmq.ini" <<EOT
[plugin.events]
path = ringmq_events_log.so
file = $tmp/events.log
[plugin.connlog]
path = $tmp/connlog.so
file = $tmp/connections.log
EOT
if "$ringmqd" -c "$tmp/ringmq.ini" --set listener.default.port=0 --check-config >"$tmp/check.log" 2>&1; then
    pass "installed configuration with both plugins checks"
else
    fail "installed configuration with both plugins checks"
    cat "$tmp/check.log"
fi
: >"$tmp/run.log"
# Its store (on in the shipped file) in the test's directory.
"$ringmqd" -c "$tmp/ringmq.ini" --set listener.default.port=0 --set server.shards=1 \
    --set "persistence.dir=$tmp/data" >"$tmp/run.log" 2>&1 &
pid=$!
port=
i=0
while [ $i -lt 100 ] && [ -z "$port" ]; do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/run.log" | head -n 1)
    [ -z "$port" ] && sleep 0.1
    i=$((i + 1))
done
if [ -n "$port" ]; then pass "installed broker listens"; else
    fail "installed broker listens"
    cat "$tmp/run.log"
fi
if [ -n "$port" ] && mosquitto_pub -h 127.0.0.1 -p "$port" -i installed-1 -t t -m hello -q 1 \
    >"$tmp/pub.log" 2>&1; then
    pass "a client publishes through the installed broker"
else
    fail "a client publishes through the installed broker"
    cat "$tmp/pub.log" "$tmp/run.log"
fi
i=0
while [ $i -lt 50 ] && ! grep -q installed-1 "$tmp/connections.log" 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
if grep -q "installed-1" "$tmp/connections.log" 2>/dev/null; then
    pass "the out-of-tree plugin was called"
else
    fail "the out-of-tree plugin was called"
fi
if grep -q "installed-1" "$tmp/events.log" 2>/dev/null; then
    pass "the installed plugin named by its bare name was called"
else
    fail "the installed plugin named by its bare name was called"
fi
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
if [ "$rc" -eq 0 ]; then pass "installed broker stops cleanly"; else fail "stop (exit $rc)"; fi

# --check-config loads the plugins: a missing one, or one refusing its keys.
printf '[listener.default]\nport = 0\n[plugin.x]\npath = no_such_plugin.so\n' >"$tmp/nosuch.ini"
if "$ringmqd" -c "$tmp/nosuch.ini" --check-config >"$tmp/out" 2>&1; then
    fail "--check-config catches a plugin that does not load"
elif grep -q "cannot load" "$tmp/out"; then
    pass "--check-config catches a plugin that does not load"
else
    fail "--check-config names why the plugin did not load"
    cat "$tmp/out"
fi
printf '[listener.default]\nport = 0\n[plugin.c]\npath = %s\n' "$tmp/connlog.so" >"$tmp/nokey.ini"
if "$ringmqd" -c "$tmp/nokey.ini" --check-config >"$tmp/out" 2>&1; then
    fail "--check-config catches a plugin refusing its keys"
elif grep -q "set file" "$tmp/out"; then
    pass "--check-config catches a plugin refusing its keys"
else
    fail "--check-config reports the plugin's reason"
    cat "$tmp/out"
fi

# The unit, with its paths pointed into the stage.
if command -v systemd-analyze >/dev/null 2>&1 && [ -n "$unit" ]; then
    sed "s|ExecStartPre=/|ExecStartPre=$stage/|; s|ExecStart=/|ExecStart=$stage/|" "$unit" \
        >"$tmp/ringmq.service"
    # verify exits 0 on a key it ignores: any line it prints fails the test.
    if systemd-analyze verify --man=no "$tmp/ringmq.service" >"$tmp/verify.log" 2>&1 &&
        [ ! -s "$tmp/verify.log" ]; then
        pass "systemd-analyze verify ringmq.service"
    else
        fail "systemd-analyze verify ringmq.service"
        cat "$tmp/verify.log"
    fi
else
    echo "ok - systemd-analyze verify skipped: systemd-analyze not installed"
fi
exit $failed
