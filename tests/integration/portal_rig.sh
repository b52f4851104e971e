#!/bin/bash
# portal_rig.sh: a private, headless Wayland desktop for capture tests — dbus-daemon, PipeWire,
# WirePlumber, sway (headless backend, pixman renderer), xdg-desktop-portal and
# xdg-desktop-portal-wlr — all as an unprivileged user (sway refuses root), on their own
# XDG_RUNTIME_DIR and session bus.
#
#   portal_rig.sh start COLOUR   start; the output's background is COLOUR (#rrggbb); print the
#                                environment as `export` lines; DIR/chooser decides what the
#                                portal's chooser answers ("pick" or "cancel") and DIR/prompts
#                                counts how often the chooser was asked
#   portal_rig.sh stop DIR       stop the rig in DIR and delete DIR
#   portal_rig.sh as DIR CMD...  run CMD as the rig's user with the rig's environment
#
# PP_PORTAL_RIG_SIZE sets the output's size (default 640x360).
# PP_XDPW_SHIM names the test-only LD_PRELOAD for xdg-desktop-portal-wlr (xdpw_shm_shim.c).
set -eu

RIG_USER=${PP_PORTAL_RIG_USER:-nobody}
die() { echo "portal_rig: $*" >&2; exit 1; }

for tool in dbus-daemon pipewire wireplumber sway swaybg grim setpriv setsid /usr/libexec/xdg-desktop-portal \
            /usr/libexec/xdg-desktop-portal-wlr; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found (apt-get install sway swaybg grim xdg-desktop-portal xdg-desktop-portal-wlr pipewire wireplumber dbus util-linux)"
done

# SWAYSOCK names sway's IPC socket before sway starts: sway 1.7 binds the path in SWAYSOCK when
# that is set and does not exist yet. Left empty, it bound the empty path, i.e. one abstract
# socket shared by the whole machine: a second rig's sway then aborted ("Unable to bind IPC
# socket") and every swaymsg reached whichever rig's sway had bound it first.
rig_env() {
  cat <<ENV
export PP_PORTAL_RIG_DIR='$1'
export HOME='$1/home'
export XDG_RUNTIME_DIR='$1/runtime'
export XDG_STATE_HOME='$1/state'
export XDG_CONFIG_HOME='$1/config'
export XDG_DATA_HOME='$1/data'
export DBUS_SESSION_BUS_ADDRESS='unix:path=$1/runtime/bus'
export WAYLAND_DISPLAY="$(cat '$1/wayland-name' 2>/dev/null || echo wayland-1)"
export XDG_CURRENT_DESKTOP=sway
export XDG_SESSION_TYPE=wayland
export SWAYSOCK='$1/runtime/sway-ipc.sock'
unset DISPLAY PULSE_SERVER PIPEWIRE_REMOTE
ENV
}

# shellcheck source=rig_common.sh
. "$(dirname "$(readlink -f "$0")")/rig_common.sh"

as_user() { setpriv --reuid="$RIG_USER" --regid="$(id -g "$RIG_USER")" --clear-groups -- "$@"; }

# True when xdg-desktop-portal owns its bus name (asking this never activates anything).
portal_owned() {
  as_user gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
    --method org.freedesktop.DBus.NameHasOwner org.freedesktop.portal.Desktop 2>/dev/null | grep -q true
}

# The output's centre pixel as rrggbb (empty when it cannot be read yet).
centre_pixel() {
  (eval "$(rig_env "$1")"; as_user grim -g "$(centre_geometry)" -t ppm - 2>/dev/null) |
    tail -c 3 | od -An -tx1 | tr -d ' \n'
}
centre_geometry() {
  size=${PP_PORTAL_RIG_SIZE:-640x360}
  echo "$((${size%x*} / 2)),$((${size#*x} / 2)) 1x1"
}

screencast_ready() {
  [ -s "$dir/wayland-name" ] && portal_owned && as_user gdbus introspect --session \
      --dest org.freedesktop.portal.Desktop --object-path /org/freedesktop/portal/desktop 2>/dev/null |
    grep -q org.freedesktop.portal.ScreenCast
}
shows_colour() { [ "$(centre_pixel "$dir")" = "$1" ]; }

start_rig() {
  colour=$1
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pp-portal-rig.XXXXXX")
  mkdir -p "$dir/runtime" "$dir/state" "$dir/config/sway" "$dir/config/xdg-desktop-portal-wlr" "$dir/data" "$dir/home"
  echo pick > "$dir/chooser"
  : > "$dir/prompts"
  # The chooser xdpw runs (chooser_type=simple): counts the prompt, then picks the one output or
  # cancels, as the test says. A real desktop shows a dialog here.
  cat > "$dir/chooser.sh" <<CHOOSER
#!/bin/sh
echo prompt >> '$dir/prompts'
[ "\$(cat '$dir/chooser')" = pick ] || exit 1
echo HEADLESS-1
CHOOSER
  chmod 755 "$dir/chooser.sh"
  cat > "$dir/config/xdg-desktop-portal-wlr/config" <<CONF
[screencast]
chooser_type=simple
chooser_cmd=$dir/chooser.sh
max_fps=30
CONF
  cat > "$dir/config/sway/config" <<CONF
output HEADLESS-1 resolution ${PP_PORTAL_RIG_SIZE:-640x360} bg $colour solid_color
default_border none
seat * hide_cursor 100
CONF
  chown -R "$RIG_USER" "$dir"
  chmod 700 "$dir/runtime"
  chmod 644 "$dir/chooser"  # the test (root) writes it; the chooser (rig user) reads it
  # $PP_XDPW_SHIM: the test-only xdpw_shm_shim.c build (see its comment); without it xdpw 0.7
  # cannot share a GPU-less sway's output.
  preload=${PP_XDPW_SHIM:-}
  (
    eval "$(rig_env "$dir")"
    export PP_XDPW_PRELOAD="$preload"
    exec setsid setpriv --reuid="$RIG_USER" --regid="$(id -g "$RIG_USER")" --clear-groups -- bash -c '
      echo $$ > "$PP_PORTAL_RIG_DIR/pgid"
      d=$PP_PORTAL_RIG_DIR
      dbus-daemon --session --nofork --nopidfile --address="$DBUS_SESSION_BUS_ADDRESS" >"$d/dbus.log" 2>&1 &
      i=0; while [ ! -S "$XDG_RUNTIME_DIR/bus" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
      pipewire >"$d/pipewire.log" 2>&1 &
      i=0; while [ ! -S "$XDG_RUNTIME_DIR/pipewire-0" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
      wireplumber >"$d/wireplumber.log" 2>&1 &
      WLR_BACKENDS=headless WLR_RENDERER=pixman WLR_LIBINPUT_NO_DEVICES=1 WLR_HEADLESS_OUTPUTS=1 \
        sway -c "$XDG_CONFIG_HOME/sway/config" >"$d/sway.log" 2>&1 &
      # sway names its socket itself (the first free wayland-N); the portals need that name.
      i=0; while ! ls "$XDG_RUNTIME_DIR"/wayland-[0-9]* >/dev/null 2>&1 && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
      for s in "$XDG_RUNTIME_DIR"/wayland-[0-9]*; do case $s in *.lock) ;; *) basename "$s" > "$d/wayland-name" ;; esac; done
      export WAYLAND_DISPLAY=$(cat "$d/wayland-name")
      LD_PRELOAD="$PP_XDPW_PRELOAD" /usr/libexec/xdg-desktop-portal-wlr -l DEBUG >"$d/xdpw.log" 2>&1 &
      # xdg-desktop-portal looks up the wlr backend at start. Started before that backend owns its
      # bus name, it has dbus-daemon activate a second xdpw (without the shim or WAYLAND_DISPLAY):
      # one of the two then fails with "failed to acquire service name: File exists", and when the
      # shim-less one wins every share fails with "Screencast failed". So wait for the name first.
      i=0
      until gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
              --method org.freedesktop.DBus.NameHasOwner org.freedesktop.impl.portal.desktop.wlr 2>/dev/null |
            grep -q true || [ $i -ge 400 ]; do
        sleep 0.05; i=$((i+1))
      done
      /usr/libexec/xdg-desktop-portal -v >"$d/xdp.log" 2>&1 &
      wait' </dev/null >/dev/null 2>&1 &
  )
  eval "$(rig_env "$dir")"
  # Ask whether the portal's name is owned before introspecting it: introspecting a name nobody owns
  # makes dbus-daemon activate a second xdg-desktop-portal, which races the rig's own for the name
  # and activates a second, shim-less xdg-desktop-portal-wlr ("File exists", "Screencast failed").
  rig_wait "$dir" 20 "the ScreenCast portal did not appear within 20 s" screencast_ready
  # Until swaybg has drawn, the output shows sway's grey clear colour, and a share started then
  # captures grey. Ready means the desktop shows COLOUR: read its centre pixel (grim, screencopy).
  want=$(printf '%s' "$colour" | tr -d '#' | tr 'A-F' 'a-f')
  rig_wait "$dir" 30 "the desktop did not show $colour within 30 s (swaybg)" shows_colour "$want"
  echo "$dir"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  start)
    dir=$(start_rig "${1:-#e01e2a}")
    rig_env "$dir"
    echo "export PP_PORTAL_RIG_USER='$RIG_USER'"
    ;;
  stop)
    dir=${1:-}
    case "$dir" in */pp-portal-rig.*) ;; *) die "stop: '$dir' is not a portal rig directory" ;; esac
    stop_rig "$dir"
    ;;
  as)
    dir=$1; shift
    eval "$(rig_env "$dir")"
    as_user "$@"
    ;;
  *) die "usage: portal_rig.sh start [COLOUR] | stop DIR | as DIR CMD..." ;;
esac
