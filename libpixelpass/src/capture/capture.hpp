// capture: chooses and prepares what the host shares — the screen (Wayland portal or X11) and
// the system audio — as a media::CaptureSource for the pipeline. `--source` picks it:
// test | portal | x11 | auto (portal on Wayland, X11 on X11, otherwise an error that suggests
// --source test).
#pragma once

#include <memory>

#include "host/host.hpp"
#include "media/capture_source.hpp"

namespace pp::capture {

// The capture source config.source names, not yet opened (the pipeline opens it when the first
// viewer arrives). Throws pp::Error: PP_ERR_INVALID_ARGUMENT for an unknown name,
// PP_ERR_NO_CAPTURE_SOURCE when nothing can be captured here, PP_ERR_UNSUPPORTED for a source
// this build cannot capture from.
std::unique_ptr<media::CaptureSource> make_capture_source(const HostConfig &config);

} // namespace pp::capture
