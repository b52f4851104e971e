#!/bin/sh
# exported_symbols: fails unless every symbol a shared library defines in its dynamic symbol
# table starts with pp_ (STYLE.md practice 7, docs/ABI.md). Prints the exported list either way.
#   usage: exported_symbols.sh [--header pixelpass.h] path/to/libpixelpass.so
#          exported_symbols.sh --expect-leak PATTERN path/to/fixture.so
# With --header, the exported functions must also be exactly those the header declares with
# PP_EXPORT: a declared function the library lacks breaks every program that calls it, and an
# exported pp_ symbol the header does not declare is ABI nobody agreed to.
# The second form tests the check itself: it succeeds only if the library leaks a symbol matching
# the grep pattern PATTERN and every reported leak really lacks the prefix.
# Ignored: absolute ('A') symbols, which are symbol-version node names rather than code or data,
# and _init/_fini, which some linkers leave in the table. Everything else counts, including weak
# ('W', 'V') and unique ('u') symbols: those are exactly how C++ inline and template code leaks.
set -eu

expect_leak=
header=
while [ $# -gt 1 ]; do
    case $1 in
    --expect-leak) expect_leak=${2:?usage: $0 --expect-leak PATTERN fixture.so}; shift 2 ;;
    --header) header=${2:?usage: $0 --header pixelpass.h libpixelpass.so}; shift 2 ;;
    *) break ;;
    esac
done
lib=${1:?usage: $0 [--expect-leak PATTERN] libpixelpass.so}
NM=${NM:-nm}

if [ ! -f "$lib" ]; then
    echo "exported_symbols: no such file: $lib" >&2
    exit 2
fi

# "ADDRESS TYPE NAME" per line; a dynamic symbol of an undefined kind never appears here.
table=$("$NM" -D --defined-only "$lib")
exported=$(printf '%s\n' "$table" | awk 'NF >= 3 && $2 != "A" && $3 != "_init" && $3 != "_fini" { print $2, $3 }' | sort -k2)
count=$(printf '%s\n' "$exported" | grep -c . || true)
leaks=$(printf '%s\n' "$exported" | awk 'NF == 2 && $2 !~ /^pp_/' )

echo "exported by $(basename "$lib") ($count symbols):"
printf '%s\n' "$exported" | sed 's/^/  /'

if [ "$count" -eq 0 ]; then
    echo "FAIL: no exported symbols at all (is this the right library?)" >&2
    exit 1
fi
if [ -n "$expect_leak" ]; then
    if printf '%s\n' "$leaks" | awk '{ print $2 }' | grep -q -e "$expect_leak"; then
        echo "OK: the check reports the expected leak(s):"
        printf '%s\n' "$leaks" | sed 's/^/  /'
        exit 0
    fi
    echo "FAIL: expected a leaked symbol matching '$expect_leak', the check found:" >&2
    printf '%s\n' "${leaks:-  (none)}" >&2
    exit 1
fi
if [ -n "$leaks" ]; then
    echo "FAIL: symbols without the pp_ prefix are exported:" >&2
    printf '%s\n' "$leaks" | sed 's/^/  /' >&2
    if command -v c++filt >/dev/null 2>&1; then
        echo "demangled:" >&2
        printf '%s\n' "$leaks" | awk '{ print $2 }' | c++filt | sed 's/^/  /' >&2
    fi
    exit 1
fi
echo "OK: only pp_ symbols are exported"

if [ -n "$header" ]; then
    # Every declaration starts its line with PP_EXPORT and has the name before the '('.
    declared=$(sed -n 's/^PP_EXPORT.*[ *]\(pp_[a-z0-9_]*\)(.*/\1/p' "$header" | sort -u)
    functions=$(printf '%s\n' "$exported" | awk '{ print $2 }' | sort -u)
    missing=$(printf '%s\n' "$declared" | grep -vxF -e "$functions" || true)
    undeclared=$(printf '%s\n' "$functions" | grep -vxF -e "$declared" || true)
    if [ -n "$missing" ] || [ -n "$undeclared" ]; then
        [ -z "$missing" ] || { echo "FAIL: declared in $(basename "$header") but not exported:" >&2; printf '  %s\n' $missing >&2; }
        [ -z "$undeclared" ] || { echo "FAIL: exported but not declared in $(basename "$header"):" >&2; printf '  %s\n' $undeclared >&2; }
        exit 1
    fi
    echo "OK: the exports are exactly the $(printf '%s\n' "$declared" | grep -c .) functions $(basename "$header") declares"
fi
