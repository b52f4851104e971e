// capture/portal: the Wayland screen through the xdg-desktop-portal ScreenCast interface
// (libportal): one session per share for a monitor or a window (the portal's dialog chooses),
// cursor embedded, its PipeWire remote and node fed to pipewiresrc. The portal's restore token is
// kept under $XDG_STATE_HOME/pixelpass, so the next share of the same screen does not ask again
// where the portal allows it; capture::forget_portal_choice() (capture.hpp) drops it.
#pragma once

#include <memory>

#include "host/host.hpp"
#include "media/capture_source.hpp"

namespace pp::capture {

std::unique_ptr<media::CaptureSource> make_portal_source(const HostConfig &config, EventSink events);

} // namespace pp::capture
