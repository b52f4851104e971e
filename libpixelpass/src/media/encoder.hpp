// media/encoder: the H.264 and AAC encoder catalogue — which elements we try, in which order,
// how each is probed (really instantiated; hardware ones opened at READY), why one is unusable,
// and the low-latency settings each needs (no B-frames, 1–2 s keyframe interval, bitrate).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "media/gst.hpp"
#include "media/media.hpp"

namespace pp::media {

struct EncoderSpec {
    const char *name;        // "va", "vaapi", "nvenc", "x264", "openh264"
    const char *element;     // "vah264enc", ...
    const char *plugin;      // GStreamer plugin that registers it
    bool hardware;
    const char *raw_format;  // what it wants from videoconvert
};

// Candidates in selection order.
const std::vector<EncoderSpec> &encoder_catalogue();
const EncoderSpec *find_encoder(std::string_view name);

struct Probe {
    bool usable = false;
    pp_result code = PP_OK;  // why not: PP_ERR_MISSING_PLUGIN or PP_ERR_MEDIA
    std::string reason;      // one human line; empty when usable
};
Probe probe_encoder(const EncoderSpec &spec);

// Applies the low-latency settings to an encoder element made from `spec`.
void configure_encoder(GstElement *encoder, const EncoderSpec &spec, unsigned bitrate_kbps, unsigned fps);

// The AAC encoder to use: fdkaacenc, avenc_aac or voaacenc, whichever exists first; nullopt if none.
std::optional<std::string> select_aac();
void configure_aac(GstElement *encoder, unsigned bitrate_bps);

// /dev/dri render nodes present on this machine.
std::vector<std::string> render_nodes();

} // namespace pp::media
