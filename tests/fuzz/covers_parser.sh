#!/bin/sh
# Checks that a libFuzzer target sees the coverage of the parser it fuzzes: runs the target over
# its seeds once (-runs=0) with -print_coverage=1 and requires a covered function in each given
# source file. Fails when the parser was linked from the uninstrumented internal library, where
# libFuzzer is blind to its branches (tests/fuzz/meson.build).
#   covers_parser.sh TARGET_EXE SEED_DIR SOURCE_FILE...
set -u
exe=$1 seeds=$2
shift 2
out=$("$exe" -runs=0 -print_coverage=1 "$seeds" 2>&1) || { printf '%s\n' "$out" | tail -20; echo "covers_parser: $exe failed on its seeds" >&2; exit 1; }
status=0
for f in "$@"; do
    if printf '%s\n' "$out" | grep -q "^COVERED_FUNC: .*/libpixelpass/src/$f:[0-9]*$"; then
        echo "covers_parser: $(basename "$exe") covers libpixelpass/src/$f"
    else
        echo "covers_parser: $(basename "$exe") has no coverage of libpixelpass/src/$f: compile it into the target with -fsanitize=fuzzer (tests/fuzz/meson.build)" >&2
        status=1
    fi
done
exit $status
