#!/usr/bin/env bash
# soak: runs the timing-sensitive suites many times in a row, optionally while another CPU-heavy
# job runs, and stops at the first failure. Not part of the default suite (it takes long).
#
#   scripts/soak.sh [--repeat N] [--processes N] [--stress] [TEST...]
#
# TEST defaults to the suites that start real desktops, audio servers, players or NATs. --stress
# runs `stress-ng --cpu 2` (two busy workers on a 2-core machine) for the whole soak. --processes
# runs that many tests at once (default 1; the README's test command runs 2).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PIXELPASS_BUILD_DIR:-$here/build}
repeat=20 stress=0 processes=1
tests=()
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) repeat=$2; shift 2 ;;
        --stress) stress=1; shift ;;
        --processes) processes=$2; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) tests+=("$1"); shift ;;
    esac
done
[ ${#tests[@]} -gt 0 ] || tests=(unit-capture unit-media unit-fanout unit-audio app-audio repair media netsim tunnel-cli)
[ -f "$build/build.ninja" ] || { echo "soak: no build in $build (run scripts/setup.sh build)" >&2; exit 1; }

stress_pid=
if [ $stress = 1 ]; then
    command -v stress-ng >/dev/null || { echo "soak: stress-ng not found (apt-get install stress-ng)" >&2; exit 1; }
    stress-ng --cpu 2 --quiet &
    stress_pid=$!
    trap 'kill $stress_pid 2>/dev/null || true' EXIT
fi
echo "soak: ${tests[*]} × $repeat$([ $stress = 1 ] && echo ' under stress-ng --cpu 2')" >&2
start=$(date +%s)
# Each test N times in a row; --maxfail 1 stops at the first failure.
meson test -C "$build" --print-errorlogs --num-processes "$processes" --maxfail 1 --repeat "$repeat" "${tests[@]}"
echo "soak: ${#tests[@]} tests × $repeat runs passed in $(( $(date +%s) - start )) s" >&2
