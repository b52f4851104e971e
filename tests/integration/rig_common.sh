# rig_common.sh: what audio_rig.sh and portal_rig.sh share, sourced by both (they define `die`).
# A rig is a directory holding its daemons' logs and DIR/pgid, the process group they run in.

# Stops the rig in $1 (kills its process group) and deletes the directory.
stop_rig() {
  dir=$1
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  if [ -f "$dir/pgid" ]; then
    pgid=$(cat "$dir/pgid")
    kill -TERM -- "-$pgid" 2>/dev/null || true
    # Wait until only zombies (reaped by init in its own time) are left, at most 5 s.
    i=0
    while ps -o stat= --sid "$pgid" 2>/dev/null | grep -qv '^Z' && [ $i -lt 50 ]; do
      sleep 0.05; i=$((i + 1))
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

logs() {  # the daemons' logs, for a failure message
  for f in "$1"/*.log; do [ -s "$f" ] && { echo "--- $f"; tail -n 25 "$f"; }; done >&2 || true
}

# rig_wait DIR SECONDS WHAT CMD [ARG...]: polls CMD every 0.1 s until it succeeds. After SECONDS
# the rig in DIR is stopped, with its logs, and the script dies: "WHAT within SECONDS s".
rig_wait() {
  wait_dir=$1 wait_limit=$(($2 * 10)) wait_what=$3
  shift 3
  i=0
  until "$@"; do
    i=$((i + 1))
    [ $i -lt $wait_limit ] || { logs "$wait_dir"; stop_rig "$wait_dir"; die "$wait_what"; }
    sleep 0.1
  done
}
