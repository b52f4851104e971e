// media: the host's capture → H.264/AAC → MPEG-TS pipeline (in-process GStreamer), served to
// viewers through the fan-out. This header is free of GStreamer types so that the host and the
// tests compile whether or not the build has media support (meson option `media`); without it
// every entry point throws PP_ERR_UNSUPPORTED "built without media support".
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "fanout/fanout.hpp"
#include "host/host.hpp"
#include "media/capture_source.hpp"

namespace pp::media {

// True when this build has GStreamer support.
bool available() noexcept;

// The host's media source: one pipeline behind a fan-out. `capture` is the capture source the
// host opened (capture/); null means config.source must be "test". Checks every element and
// picks the encoder now, so a missing plugin fails here (PP_ERR_MISSING_PLUGIN naming the Debian
// package) rather than when the first viewer arrives. The pipeline itself starts with the first
// subscriber and stops config.grace_ms (0 = 5000) after the last one leaves. `events` receives
// pipeline errors and warnings, from the media threads (marshal them to your loop).
std::unique_ptr<fanout::FanoutSource> make_source(const HostConfig &config, EventSink events,
                                                  std::unique_ptr<CaptureSource> capture = nullptr);

// An H.264 encoder the pipeline can use.
struct EncoderChoice {
    std::string name;     // "va", "vaapi", "nvenc", "x264", "openh264"
    std::string element;  // "vah264enc", ...
    bool hardware = false;
};

// Picks an encoder: "auto" (or "") takes the first usable of va, vaapi, nvenc, x264, openh264;
// a name takes exactly that one. Each candidate is probed by instantiating it (hardware ones are
// also brought to READY, which opens the device). Throws PP_ERR_MISSING_PLUGIN (plugin not
// installed; names the package), PP_ERR_MEDIA (installed but no usable device; says why) or
// PP_ERR_INVALID_ARGUMENT (unknown name).
EncoderChoice select_encoder(std::string_view wanted);

// Why each encoder is or is not usable, for `pixelpass doctor`:
// {"encoders": [{"name","element","hardware","usable","reason","package"}...],
//  "selected": "x264enc"|null, "aac": "avenc_aac"|null, "dri": [render nodes], "gstreamer": "1.22.0"}
nlohmann::json diagnose();

// The Debian package that ships a GStreamer element ("" when unknown).
std::string package_for(std::string_view element);
// The error for a missing element: PP_ERR_MISSING_PLUGIN, "GStreamer element 'x264enc' is
// missing: install gstreamer1.0-plugins-ugly".
Error missing_element_error(std::string_view element);
// Throws missing_element_error() unless the element's factory is registered.
void require_element(std::string_view element);

} // namespace pp::media
