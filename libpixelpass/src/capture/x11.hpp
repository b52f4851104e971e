// capture/x11: the X11 screen through ximagesrc — the whole screen, or one monitor (`--monitor N`,
// N as `xrandr --listmonitors` numbers them) cut out by its RandR geometry — with the cursor drawn
// in, plus the system audio.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "host/host.hpp"
#include "media/capture_source.hpp"

namespace pp::capture {

struct X11Monitor {
    std::string name;
    int x = 0, y = 0, width = 0, height = 0;
    bool primary = false;
};

struct X11Layout {
    std::string display;  // as opened (XDisplayString)
    int width = 0, height = 0;         // the whole root window
    std::vector<X11Monitor> monitors;  // RandR 1.5 monitors, in RandR's order; may be empty
};

// Asks the X server `display` ("" = $DISPLAY). Throws PP_ERR_NO_CAPTURE_SOURCE when it cannot be
// opened.
X11Layout query_x11_layout(const std::string &display = "");

// The capture region for `monitor` (-1 = the whole screen). Throws PP_ERR_INVALID_ARGUMENT naming
// the monitors that exist when there is no such monitor.
X11Monitor x11_region(const X11Layout &layout, int monitor);

// Checks the display and the monitor now (so a bad --monitor fails before any viewer comes).
std::unique_ptr<media::CaptureSource> make_x11_source(const HostConfig &config, EventSink events);

} // namespace pp::capture
