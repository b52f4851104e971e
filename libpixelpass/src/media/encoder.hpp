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

// The bitrate property each encoder really has: all call it "bitrate", openh264enc in bit/s, the
// others in kbit/s. Changing it while PLAYING retunes the rate control without a restart.
struct BitrateProperty {
    const char *name;
    unsigned per_kbps;  // property units per kbit/s
};
BitrateProperty bitrate_property(const EncoderSpec &spec);
// Empty when `encoder` has the property, writable while PLAYING; else why not (one line).
std::string bitrate_change_unsupported(GstElement *encoder, const EncoderSpec &spec);
// Sets the bitrate on a running encoder; false (nothing changed) when unsupported.
bool set_encoder_bitrate(GstElement *encoder, const EncoderSpec &spec, unsigned kbps);

// The AAC encoder to use: fdkaacenc, avenc_aac or voaacenc, whichever exists first; nullopt if none.
std::optional<std::string> select_aac();
void configure_aac(GstElement *encoder, unsigned bitrate_bps);
// The samples (48 kHz) an AAC encoder puts before the first input sample: its first frame decodes
// to that much priming silence yet carries the first input's timestamp, so without a correction
// every decoded sample plays that late against the picture. 0 for an encoder not measured.
unsigned aac_priming_samples(std::string_view encoder);

// /dev/dri render nodes present on this machine.
std::vector<std::string> render_nodes();

} // namespace pp::media
