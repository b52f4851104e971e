// capture/app_audio: `--app NAME`: the chosen screen source with its audio replaced by only the
// named applications' sound. While the pipeline runs, an audio::AppRouter links those apps'
// streams to its own null sink, and pulsesrc records that sink's monitor (the same Pulse path as
// system audio). The router lives from make_audio() to close(): between shares nothing of ours
// exists in the audio graph.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "host/host.hpp"
#include "media/capture_source.hpp"

namespace pp::capture {

// Wraps `inner` (video from it; its own audio unused). Throws PP_ERR_UNSUPPORTED when this build
// has no PipeWire client, PP_ERR_INVALID_ARGUMENT for an empty name.
std::unique_ptr<media::CaptureSource> with_app_audio(std::unique_ptr<media::CaptureSource> inner,
                                                     std::vector<std::string> apps, EventSink events);

} // namespace pp::capture
