// capture/system_audio: what the machine is playing — the default sink's monitor — as a raw-audio
// element for the screen sources (X11 and portal). Uses pulsesrc on the Pulse protocol, which
// pipewire-pulse serves on PipeWire desktops: it asks for "@DEFAULT_MONITOR@", so the stream is
// not pinned to a device and the session manager moves it when the user picks another default
// sink. Neither pipewire-pulse 0.3.65 nor WirePlumber 0.4.13 moves a monitor-capture stream when
// the default sink changes (measured: it stays on the old monitor), so a small libpulse watcher
// does it. pipewiresrc would need the same watcher plus an explicit raw-caps filter.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "host/host.hpp"
#include "media/capture_source.hpp"

namespace pp::capture {

class SystemAudio {
public:
    explicit SystemAudio(EventSink events);

    // A bin with one "src" pad of raw audio from the default sink's monitor, or nullptr when no
    // audio server answers (then a warning event is sent, once per SystemAudio, and the share is
    // video only). While the element lives (until stop()), a watcher moves its stream to the new
    // default sink's monitor whenever the default sink changes. Throws PP_ERR_MISSING_PLUGIN when
    // pulsesrc is not installed.
    media::ElementPtr make(const media::CaptureParams &params);
    // Ends the watcher (call after the pipeline stopped).
    void stop();
    ~SystemAudio();

    // Why there is no audio server here ("" when one answers within `timeout_ms`).
    static std::string server_problem(unsigned timeout_ms = 1500);

    class Follower;  // the default-sink watcher (libpulse)

private:
    EventSink events_;
    std::unique_ptr<Follower> follower_;
    std::atomic<bool> warned_{false};
};

} // namespace pp::capture
