// capture/system_audio: what the machine is playing — the default sink's monitor — as a raw-audio
// element for the screen sources (X11 and portal). Uses pulsesrc on the Pulse protocol, which
// pipewire-pulse serves on PipeWire desktops: it asks for "@DEFAULT_MONITOR@", so the stream is
// not pinned to a device and the session manager moves it when the user picks another default
// sink (pipewiresrc would need an explicit raw-caps filter and its own default tracking).
#pragma once

#include <atomic>
#include <string>

#include "host/host.hpp"
#include "media/capture_source.hpp"

namespace pp::capture {

class SystemAudio {
public:
    explicit SystemAudio(EventSink events) : events_(std::move(events)) {}

    // A bin with one "src" pad of raw audio from the default sink's monitor, or nullptr when no
    // audio server answers (then a warning event is sent, once per SystemAudio, and the share is
    // video only). Throws PP_ERR_MISSING_PLUGIN when pulsesrc is not installed.
    media::ElementPtr make(const media::CaptureParams &params);

    // Why there is no audio server here ("" when one answers within `timeout_ms`).
    static std::string server_problem(unsigned timeout_ms = 1500);

private:
    EventSink events_;
    std::atomic<bool> warned_{false};
};

} // namespace pp::capture
