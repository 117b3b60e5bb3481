#!/bin/sh
# Fail when a file under src/ includes a layer it may not use.
#
# The layers and what each may use, lowest first (the order the top-level
# meson.build builds them in). A file in layer L may include L itself, the
# layers listed for L, and the installed plugin ABI ("ringmq/"); src/main.c
# composes and may include any. Each layer is also a static_library naming
# only what it uses, so a wrong include that links fails the build too; this
# check also catches one that compiles by chance (a header-only use).
#
#   tools/check-layers.sh [SOURCE_ROOT]
RULES="
core:
store: core
mqtt: core
index: core mqtt
config: core
metrics: core
admin: core config
plugin: core
net: core config
tenant: core mqtt index config metrics
shard: core mqtt index config metrics net tenant
session: core mqtt index config metrics net tenant shard
broker: core store mqtt index config metrics admin plugin net tenant shard session
persist: core store mqtt index config metrics plugin net tenant shard session broker
"
LAYERS=$(echo "$RULES" | sed -n 's/^\([a-z]*\):.*/\1/p' | tr '\n' ' ')
cd "${1:-$(dirname "$0")/..}" || exit 1
bad=0
for layer in $LAYERS; do
    allowed="$(echo "$RULES" | sed -n "s/^$layer://p") $layer ringmq"
    for f in src/"$layer"/*.[ch]; do
        [ -e "$f" ] || continue
        # Every "dir/..." include of the file, one per line.
        for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z_]*\)\/.*/\1/p' "$f" | sort -u); do
            ok=no
            for a in $allowed; do
                [ "$inc" = "$a" ] && ok=yes
            done
            if [ $ok = no ]; then
                echo "$f: includes \"$inc/...\", which $layer may not use (it may use:$allowed)"
                bad=1
            fi
        done
    done
done
# Every directory of src/ is a layer listed above (a new one must be placed).
for d in src/*/; do
    d=${d%/}
    d=${d#src/}
    case " $LAYERS " in
    *" $d "*) ;;
    *) echo "src/$d: not in RULES of tools/check-layers.sh"; bad=1 ;;
    esac
done
[ $bad = 0 ] && echo "ok: every include in src/ is of a layer its layer may use"
exit $bad
