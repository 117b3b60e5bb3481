#!/bin/sh
# Fail when a C file under src/, tests/, bench/, plugins/ or tools/ differs
# from what clang-format (the repository's .clang-format) would write.
cd "$(dirname "$0")/.." || exit 1
bad=0
for f in $(find src tests bench plugins tools include -name '*.[ch]' 2>/dev/null); do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "not clang-formatted: $f (run: clang-format -i $f)"
        bad=1
    fi
done
exit $bad
