#!/bin/sh
# Fail when a function in src/ is longer than MAX lines.
#
# A function's length runs from the line of its opening brace to the line of
# its closing brace, both counted. clang-format puts a function's braces, and
# only a function's, in column 0 (a struct or an initialiser opens its brace
# at the end of a line), so a "{" in column 0 opens a function body and the
# next "}" in column 0 closes it. The name is the identifier before the first
# "(" of the lines that start in column 0 above the brace (the signature),
# after any __attribute__((...)).
#
#   tools/check-funclen.sh [SOURCE_ROOT]
MAX=80
cd "${1:-$(dirname "$0")/..}" || exit 1
# Every file in one awk run (the names of src/ hold no spaces).
awk -v max=$MAX '
    FNR == 1 { in_fn = 0; sig = "" }
    # The signature: a line starting in column 0 with a word begins one,
    # indented lines continue it (parameters wrapped by clang-format).
    /^[A-Za-z_]/ { sig = $0; sig_line = FNR; next }
    /^[ \t]/ && sig != "" && !in_fn { sig = sig " " $0; next }
    /^\{/ && !in_fn { in_fn = 1; open = FNR; name = name_of(sig); start = sig_line; next }
    /^\}/ && in_fn {
        in_fn = 0; sig = ""
        if (FNR - open + 1 > max) {
            printf "%s:%d: %s: %d lines (at most %d)\n", FILENAME, start, name, FNR - open + 1, max
            long = 1
        }
        next
    }
    !in_fn { sig = "" }
    function name_of(s,    i, depth, c, out) {
        # Drop every __attribute__((...)), parentheses balanced.
        while ((i = index(s, "__attribute__")) > 0) {
            out = substr(s, 1, i - 1)
            s = substr(s, i + length("__attribute__"))
            depth = 0
            while (s != "") {
                c = substr(s, 1, 1)
                s = substr(s, 2)
                if (c == "(") depth++
                else if (c == ")" && --depth == 0) break
            }
            s = out s
        }
        if (match(s, /[A-Za-z_][A-Za-z0-9_]*[ \t]*\(/) == 0)
            return "?"
        s = substr(s, RSTART, RLENGTH - 1)
        sub(/[ \t]+$/, "", s)
        return s
    }
    END { exit long ? 1 : 0 }
' $(find src -name '*.c' | sort)
bad=$?
[ $bad = 0 ] && echo "ok: no function in src/ is longer than $MAX lines"
exit $bad
