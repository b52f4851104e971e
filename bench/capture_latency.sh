#!/bin/bash
# capture_latency.sh: capture-latency through X11 (private Xvfb) and through the Wayland portal
# (tests/integration/portal_rig.sh's headless sway at 1280x720, run as its unprivileged user),
# each against the test source in the same run.
#   capture_latency.sh CAPTURE_LATENCY WL_FLIP XDPW_SHIM [capture-latency options...]
# WL_FLIP / XDPW_SHIM may be "" (built without wayland-protocols / tests): the portal part is
# then skipped with a message.
set -u
bench=$1 wl_flip=$2 shim=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
rc=0
echo "== X11 (Xvfb 1280x720, ximagesrc)"
"$bench" --x11 "$@" || rc=1
echo "== Wayland portal (headless sway 1280x720, xdg-desktop-portal-wlr, PipeWire)"
if [ -z "$wl_flip" ] || [ -z "$shim" ]; then
  echo "skipped: wl-flip or the xdpw shim was not built (apt-get install wayland-protocols)"
elif [ "$(id -u)" != 0 ]; then
  echo "skipped: the portal rig needs root (it runs the desktop as an unprivileged user)"
else
  rig=$here/../tests/integration/portal_rig.sh
  env_lines=$(PP_PORTAL_RIG_SIZE=1280x720 PP_XDPW_SHIM=$shim "$rig" start '#000000') || exit 1
  dir=$(printf '%s\n' "$env_lines" | sed -n "s/^export PP_PORTAL_RIG_DIR='\(.*\)'$/\1/p")
  trap '"$rig" stop "$dir"' EXIT
  "$rig" as "$dir" "$bench" --portal "$wl_flip" "$@" || { rc=1; for f in "$dir"/*.log; do echo "--- $f"; tail -n 20 "$f"; done; }
fi
exit $rc
