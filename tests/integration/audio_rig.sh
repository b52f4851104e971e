#!/bin/bash
# audio_rig.sh: a private, headless audio stack for tests — a real dbus-daemon, pipewire,
# wireplumber and pipewire-pulse on their own XDG_RUNTIME_DIR, session bus and state/config dirs,
# so the machine's user session and its remembered state are never touched.
#
#   audio_rig.sh run CMD [ARG...]   start, run CMD with the rig's environment, stop; CMD's status
#   audio_rig.sh start              start; print the environment as `export`/`unset` lines on stdout
#   audio_rig.sh stop [DIR]         stop the rig in DIR (default: $PP_AUDIO_RIG_DIR) and delete DIR
#
# `start` leaves the daemons running in their own session (one process group, recorded in
# DIR/pgid); `stop` kills that group. With no sound card the rig first creates a null sink named
# "speaker" and waits until it is the default sink, so every test sees the same default.
# Works as root (PipeWire and WirePlumber accept it); nothing here needs an unprivileged user.
set -eu

die() { echo "audio_rig: $*" >&2; exit 1; }

for tool in dbus-daemon pipewire wireplumber pipewire-pulse pactl setsid ps; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found (apt-get install pipewire pipewire-bin wireplumber pipewire-pulse pulseaudio-utils dbus-daemon util-linux procps)"
done

rig_env() {  # $1 = rig dir: the variables every client of the rig needs
  cat <<EOF
export PP_AUDIO_RIG_DIR='$1'
export XDG_RUNTIME_DIR='$1/runtime'
export XDG_STATE_HOME='$1/state'
export XDG_CONFIG_HOME='$1/config'
export XDG_DATA_HOME='$1/data'
export DBUS_SESSION_BUS_ADDRESS='unix:path=$1/runtime/bus'
unset PULSE_SERVER PULSE_SINK PULSE_SOURCE PIPEWIRE_REMOTE PIPEWIRE_RUNTIME_DIR
EOF
}

# shellcheck source=rig_common.sh
. "$(dirname "$(readlink -f "$0")")/rig_common.sh"

pulse_answers() { [ -f "$dir/pgid" ] && pactl info >/dev/null 2>&1; }
default_sink_published() { pactl get-default-sink 2>/dev/null | grep -qv '^@DEFAULT_SINK@$'; }
default_sink_is() { [ "$(pactl get-default-sink)" = "$1" ]; }

start_rig() {
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pp-audio-rig.XXXXXX")
  mkdir -p "$dir/runtime" "$dir/state" "$dir/config" "$dir/data" "$dir/home"
  chmod 700 "$dir" "$dir/runtime"
  # The daemons run in a new session: one process group that `stop` can kill whole. HOME points
  # into the rig too, so nothing can fall back to the real ~/.local/state or ~/.config.
  (
    eval "$(rig_env "$dir")"
    export HOME="$dir/home"
    exec setsid bash -c '
      echo $$ > "$PP_AUDIO_RIG_DIR/pgid"
      dbus-daemon --session --nofork --nopidfile --address="$DBUS_SESSION_BUS_ADDRESS" \
        >"$PP_AUDIO_RIG_DIR/dbus.log" 2>&1 &
      i=0; while [ ! -S "$XDG_RUNTIME_DIR/bus" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
      pipewire >"$PP_AUDIO_RIG_DIR/pipewire.log" 2>&1 &
      i=0; while [ ! -S "$XDG_RUNTIME_DIR/pipewire-0" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
      wireplumber >"$PP_AUDIO_RIG_DIR/wireplumber.log" 2>&1 &
      pipewire-pulse >"$PP_AUDIO_RIG_DIR/pipewire-pulse.log" 2>&1 &
      wait' </dev/null >/dev/null 2>&1 &
  )
  eval "$(rig_env "$dir")"
  rig_wait "$dir" 10 "pipewire-pulse did not answer within 10 s" pulse_answers
  # WirePlumber is ready once it has published a default sink (module-always-sink's auto_null).
  rig_wait "$dir" 10 "WirePlumber published no default sink within 10 s" default_sink_published
  before=$(pactl get-default-sink)
  pactl load-module module-null-sink sink_name=speaker \
    sink_properties=device.description=Speaker >/dev/null ||
    { logs "$dir"; stop_rig "$dir"; die "could not create the speaker sink"; }
  # The first null sink on a machine without a sound card becomes the default; wait for it, so a
  # test never races WirePlumber's switch.
  rig_wait "$dir" 10 "default sink stayed '$before' instead of speaker" default_sink_is speaker
  echo "$dir"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  start)
    dir=$(start_rig)
    rig_env "$dir"
    ;;
  stop)
    dir=${1:-${PP_AUDIO_RIG_DIR:-}}
    [ -n "$dir" ] || die "stop: no rig directory given and PP_AUDIO_RIG_DIR is not set"
    case "$dir" in */pp-audio-rig.*) ;; *) die "stop: '$dir' is not an audio rig directory" ;; esac
    stop_rig "$dir"
    ;;
  run)
    [ $# -gt 0 ] || die "run: no command given"
    dir=$(start_rig)
    trap 'stop_rig "$dir"' EXIT
    trap 'exit 130' INT TERM
    eval "$(rig_env "$dir")"
    status=0
    "$@" || status=$?
    exit $status
    ;;
  *)
    die "usage: audio_rig.sh run CMD [ARG...] | start | stop [DIR]"
    ;;
esac
