#!/usr/bin/env bash
# pixelpass setup: installs the Debian 12 packages it needs (only the missing ones), configures and
# builds, then runs what was asked for. Safe to run again and again.
#
#   scripts/setup.sh run    install, build, and run the main job (the demo on an embedded default)
#   scripts/setup.sh test   install, build, and run the whole test suite
#   scripts/setup.sh sanitize  install, then build with clang under ASan + UBSan in build-sanitize/
#                           and run the suite there, with the libFuzzer targets for a bounded time
#   scripts/setup.sh build  install and build only
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
action=${1:-build}
build=${PIXELPASS_BUILD_DIR:-build}
sanitize_build=${PIXELPASS_SANITIZE_BUILD_DIR:-build-sanitize}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

case "$action" in run|test|sanitize|build) ;; *) die "unknown action '$action': use run, test, sanitize or build" ;; esac

# --- packages -------------------------------------------------------------------------------
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@";
    elif command -v sudo >/dev/null; then sudo "$@";
    else die "need root to install packages: run as root or install sudo"; fi
}

mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' scripts/debian-packages.txt | grep -v '^$')
missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done
# Packages (or their dependencies) that ship a system service started on install. The tests start
# their own instances on private ports and configs, so a service this script brought in is stopped
# and disabled at once: a developer's desktop must not be left running a TURN server, a UPnP
# gateway, a web server or a DHT node. A service the machine already had is left alone.
service_packages=(coturn:coturn miniupnpd:miniupnpd nginx-common:nginx dhtnode:dhtnode)
had_package() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]; }
quiet_new_services() {  # the package:service pairs that were not installed before
    local pair pkg svc
    for pair in "$@"; do
        pkg=${pair%%:*} svc=${pair#*:}
        had_package "$pkg" || continue
        if [ -d /run/systemd/system ]; then
            as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$svc" ]; then
            as_root "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
            as_root update-rc.d "$svc" disable >/dev/null 2>&1 || true
        fi
        say "stopped and disabled the $svc service that installing $pkg started (tests run their own)"
    done
}
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "apt-get not found: pixelpass's setup targets Debian 12"
    new_services=()
    for pair in "${service_packages[@]}"; do had_package "${pair%%:*}" || new_services+=("$pair"); done
    say "installing ${#missing[@]} Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
    quiet_new_services "${new_services[@]}"
else
    say "all ${#wanted[@]} Debian packages present"
fi

# --- build ----------------------------------------------------------------------------------
configure() {  # configure <dir> [meson args...]
    local dir=$1; shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@"
    fi
}

if [ "$action" != sanitize ]; then
    say "building in $build/"
    configure "$build"
    ninja -C "$build"
fi

case "$action" in
build)
    say "built: $build/cli/pixelpass"
    ;;
run)
    say "running the main job"
    # The demo: the test source hosted and viewed over QUIC on loopback (mpv with a display,
    # otherwise a headless decode with a report).
    exec "$build/cli/pixelpass" demo
    ;;
test)
    status=0
    say "test suite ($build/)"
    rm -f "$build/meson-logs/skips.txt"
    meson test -C "$build" --print-errorlogs --num-processes 2 || status=1
    # The closing lines, from meson's machine-readable log and the skip log (PP_SKIP_LOG).
    /usr/bin/python3 scripts/test-summary.py "$build/meson-logs/testlog.json" \
        --skips "$build/meson-logs/skips.txt" || status=1
    exit $status
    ;;
sanitize)
    status=0
    say "sanitizer build with clang, ASan + UBSan + libFuzzer ($sanitize_build/)"
    rm -f "$sanitize_build/meson-logs/skips.txt"
    # The benchmark programs are never run there; building them would only lengthen CI.
    CC=clang CXX=clang++ configure "$sanitize_build" -Db_sanitize=address,undefined -Db_lundef=false \
        -Dfuzzing=enabled -Dbenchmarks=disabled
    ninja -C "$sanitize_build"
    # Leaks are checked by .ci/leakcheck (full unwinding, frame-named suppressions), not here:
    # this run keeps fast unwinding for its timing checks. The fuzz targets set their own options.
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        meson test -C "$sanitize_build" --print-errorlogs --num-processes 2 || status=1
    /usr/bin/python3 scripts/test-summary.py "$sanitize_build/meson-logs/testlog.json" \
        --skips "$sanitize_build/meson-logs/skips.txt" || status=1
    exit $status
    ;;
esac
