// capture: chooses and prepares what the host shares — the screen (Wayland portal or X11) and
// the system audio — as a media::CaptureSource for the pipeline. `--source` picks it:
// test | portal | x11 | auto (portal on Wayland, X11 on X11, otherwise an error that suggests
// --source test).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "host/host.hpp"
#include "media/capture_source.hpp"

namespace pp::capture {

// The parts of the environment that decide where the screen comes from.
struct Desktop {
    std::string display;          // $DISPLAY
    std::string wayland_display;  // $WAYLAND_DISPLAY
    std::string session_type;     // $XDG_SESSION_TYPE ("wayland", "x11", "tty", ...)

    static Desktop from_environment();
    bool wayland() const { return !wayland_display.empty() || session_type == "wayland"; }
    // X11 only when there is no Wayland session: under Wayland, DISPLAY is Xwayland, which shows
    // only X clients.
    bool x11() const { return !display.empty() && !wayland(); }
};

// The concrete source ("portal", "x11" or "test") that `wanted` means on `desktop`.
// Throws PP_ERR_INVALID_ARGUMENT for an unknown name and PP_ERR_NO_CAPTURE_SOURCE (with a hint to
// use --source test) when auto finds no desktop session.
std::string choose_source(const std::string &wanted, const Desktop &desktop);

// The capture source config.source names, not yet opened (the pipeline opens it when the first
// viewer arrives). `events` receives warnings (e.g. "no audio server: video only") from the
// media threads. Throws pp::Error: PP_ERR_INVALID_ARGUMENT for an unknown name or a monitor that
// does not exist, PP_ERR_NO_CAPTURE_SOURCE when nothing can be captured here,
// PP_ERR_UNSUPPORTED for a source this build cannot capture from.
std::unique_ptr<media::CaptureSource> make_capture_source(const HostConfig &config, EventSink events = {});

// Where the ScreenCast portal's restore token is kept: $XDG_STATE_HOME/pixelpass/
// screencast-restore-token (~/.local/state when XDG_STATE_HOME is unset or not absolute).
std::filesystem::path portal_token_path();

// Deletes the stored restore token (`--forget-screen`), so the next portal share asks again.
// Returns true when there was one. Throws PP_ERR_IO when it exists and cannot be deleted.
bool forget_portal_choice();

} // namespace pp::capture
