// capture/portal: the Wayland screen through the xdg-desktop-portal ScreenCast interface
// (libportal): one session per share for a monitor or a window (the portal's dialog chooses),
// cursor embedded, its PipeWire remote and node fed to pipewiresrc. The portal's restore token is
// kept under $XDG_STATE_HOME/pixelpass, so the next share of the same screen does not ask again
// where the portal allows it; forget_portal_choice() drops it.
#pragma once

#include <filesystem>
#include <memory>

#include "host/host.hpp"
#include "media/capture_source.hpp"

namespace pp::capture {

// Where the restore token lives: $XDG_STATE_HOME/pixelpass/screencast-restore-token
// (~/.local/state when XDG_STATE_HOME is unset).
std::filesystem::path portal_token_path();

// Deletes the stored restore token; true when there was one.
bool forget_portal_choice();

std::unique_ptr<media::CaptureSource> make_portal_source(const HostConfig &config, EventSink events);

} // namespace pp::capture
