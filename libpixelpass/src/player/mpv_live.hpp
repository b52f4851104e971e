// player/mpv_live: the small mpv script that keeps a live stream at its live edge.
//
// mpv plays sound in real time and times the picture by the sound, and it has no notion of a
// live edge: whatever arrived while it was starting (opening the stream, the decoders, the audio
// device: 0.3–2 s on a loaded machine) stays queued in its demuxer for the whole session, and
// every picture is shown that much late. Video alone drains that queue (--untimed shows frames
// as fast as they decode); with sound nothing does. The script plays slightly faster
// (pitch-corrected by mpv's scaletempo2) while the queue's low point over the last second stays
// above a small slack, and returns to normal speed as soon as it is drained.
#pragma once

#include <optional>
#include <string>

namespace pp::player {

// The script's text (Lua, for mpv --script).
const std::string &mpv_live_script();

// Writes the script where mpv can read it and this user alone can change it, and returns its path:
// $XDG_RUNTIME_DIR/pixelpass/, else $XDG_CACHE_HOME (or ~/.cache)/pixelpass/. Rewritten only when
// its content differs (atomically: a temporary file renamed over it). Nothing when neither
// directory can be used; the caller then launches mpv without it.
std::optional<std::string> mpv_live_script_path();

} // namespace pp::player
