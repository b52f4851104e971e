#include "media/encoder.hpp"

#include <algorithm>
#include <filesystem>
#include <string_view>

#include "common/error.hpp"

namespace pp::media {

namespace {

bool path_exists(const char *path) {
    std::error_code ec;
    return std::filesystem::exists(path, ec);
}

// Why an element that the probe could not create is missing, in terms a user can act on.
Probe explain_missing(const EncoderSpec &spec) {
    Probe p;
    std::string package = package_for(spec.element);
    GstPtr<GstPlugin> plugin(gst_registry_find_plugin(gst_registry_get(), spec.plugin));
    if (!plugin) {
        p.code = PP_ERR_MISSING_PLUGIN;
        p.reason = std::string("GStreamer element '") + spec.element + "' is missing: install " + package;
        return p;
    }
    // The plugin is installed; hardware plugins register their elements only when they find a
    // device that can encode H.264 at load time.
    p.code = PP_ERR_MEDIA;
    std::string name = spec.name;
    if (name == "va" || name == "vaapi") {
        if (render_nodes().empty())
            p.reason = std::string(spec.element) +
                       " is not available: no /dev/dri render node (no GPU visible to this machine; " +
                       package + " is installed)";
        else
            p.reason = std::string(spec.element) +
                       " is not available: the VA-API driver offers no H.264 encoder (install "
                       "intel-media-va-driver-non-free for Intel, mesa-va-drivers for AMD)";
    } else if (name == "nvenc") {
        if (!path_exists("/dev/nvidia0"))
            p.reason = std::string(spec.element) + " is not available: no NVIDIA GPU (/dev/nvidia0 is missing; " +
                       package + " is installed)";
        else
            p.reason = std::string(spec.element) +
                       " is not available: CUDA/NVENC libraries not found (install the NVIDIA driver's "
                       "libcuda1 and libnvidia-encode1)";
    } else {
        p.reason = std::string("GStreamer plugin '") + spec.plugin + "' is installed but has no '" + spec.element +
                   "' (blacklisted? see `gst-inspect-1.0 -b`)";
    }
    return p;
}

} // namespace

const std::vector<EncoderSpec> &encoder_catalogue() {
    static const std::vector<EncoderSpec> catalogue = {
        {"va", "vah264enc", "va", true, "NV12"},
        {"vaapi", "vaapih264enc", "vaapi", true, "NV12"},
        {"nvenc", "nvh264enc", "nvcodec", true, "NV12"},
        {"x264", "x264enc", "x264", false, "I420"},
        {"openh264", "openh264enc", "openh264", false, "I420"},
    };
    return catalogue;
}

const EncoderSpec *find_encoder(std::string_view name) {
    for (const auto &spec : encoder_catalogue())
        if (name == spec.name || name == spec.element) return &spec;
    return nullptr;
}

std::vector<std::string> render_nodes() {
    std::vector<std::string> nodes;
    std::error_code ec;
    for (const auto &entry : std::filesystem::directory_iterator("/dev/dri", ec)) {
        auto name = entry.path().filename().string();
        if (name.rfind("renderD", 0) == 0) nodes.push_back(entry.path().string());
    }
    std::sort(nodes.begin(), nodes.end());
    return nodes;
}

Probe probe_encoder(const EncoderSpec &spec) {
    ensure_gst();
    ElementPtr element = sink_ref(gst_element_factory_make(spec.element, nullptr));
    if (!element) return explain_missing(spec);
    Probe p;
    if (!spec.hardware) {
        p.usable = true;
        return p;
    }
    // A hardware element can exist and still fail to open its device: bring it to READY inside
    // a throwaway pipeline so its error message lands on a bus we can read.
    GstPtr<GstElement> pipeline(GST_ELEMENT(gst_object_ref_sink(gst_pipeline_new("probe"))));
    gst_bin_add(GST_BIN(pipeline.get()), element.get());
    GstStateChangeReturn ret = gst_element_set_state(pipeline.get(), GST_STATE_READY);
    if (ret == GST_STATE_CHANGE_FAILURE) {
        GstPtr<GstBus> bus(gst_element_get_bus(pipeline.get()));
        MessagePtr msg(gst_bus_pop_filtered(bus.get(), GST_MESSAGE_ERROR));
        p.code = PP_ERR_MEDIA;
        p.reason = std::string(spec.element) + " failed to open its device" +
                   (msg ? ": " + describe_message(msg.get()) : std::string());
    } else {
        p.usable = true;
    }
    gst_element_set_state(pipeline.get(), GST_STATE_NULL);
    return p;
}

void configure_encoder(GstElement *e, const EncoderSpec &spec, unsigned kbps, unsigned fps) {
    const std::string gop = std::to_string(2 * fps);  // a keyframe every 2 s
    const std::string name = spec.name;
    if (name == "x264") {
        set_property(e, "tune", "zerolatency");  // no lookahead, no frame threads, no B-frames
        set_property(e, "speed-preset", "ultrafast");
        set_property(e, "bitrate", std::to_string(kbps));
        set_property(e, "key-int-max", gop);
        set_property(e, "bframes", "0");
        set_property(e, "b-adapt", "false");
        // 0 = x264's own choice (1.5 × cores, as slices under zerolatency): the lowest latency.
        set_property(e, "threads", "0");
    } else if (name == "openh264") {
        set_property(e, "bitrate", std::to_string(kbps * 1000));
        set_property(e, "max-bitrate", std::to_string(kbps * 1500));
        set_property(e, "rate-control", "bitrate");
        set_property(e, "gop-size", gop);
        set_property(e, "usage-type", "screen");
        set_property(e, "complexity", "low");
        set_property(e, "multi-thread", "0");  // auto
        set_property(e, "enable-frame-skip", "false");  // a steady frame rate over a precise bitrate
    } else if (name == "va") {
        set_property(e, "bitrate", std::to_string(kbps));
        set_property(e, "rate-control", "cbr");
        set_property(e, "key-int-max", gop);
        set_property(e, "b-frames", "0");
        set_property(e, "target-usage", "7");  // fastest
    } else if (name == "vaapi") {
        set_property(e, "bitrate", std::to_string(kbps));
        set_property(e, "rate-control", "cbr");
        set_property(e, "keyframe-period", gop);
        set_property(e, "max-bframes", "0");
        set_property(e, "quality-level", "7");  // fastest
    } else if (name == "nvenc") {
        set_property(e, "bitrate", std::to_string(kbps));
        set_property(e, "rc-mode", "cbr");
        set_property(e, "gop-size", gop);
        set_property(e, "bframes", "0");
        set_property(e, "preset", "low-latency-hp");
        set_property(e, "zerolatency", "true");
        set_property(e, "rc-lookahead", "0");
    }
}

BitrateProperty bitrate_property(const EncoderSpec &spec) {
    return {"bitrate", std::string_view(spec.name) == "openh264" ? 1000u : 1u};
}

std::string bitrate_change_unsupported(GstElement *encoder, const EncoderSpec &spec) {
    auto prop = bitrate_property(spec);
    GParamSpec *ps = g_object_class_find_property(G_OBJECT_GET_CLASS(encoder), prop.name);
    if (!ps) return std::string(spec.element) + " has no '" + prop.name + "' property";
    if (!(ps->flags & G_PARAM_WRITABLE)) return std::string(spec.element) + "'s '" + prop.name + "' is read-only";
    if (!(ps->flags & GST_PARAM_MUTABLE_PLAYING))
        return std::string(spec.element) + "'s '" + prop.name + "' cannot change while it runs";
    return {};
}

bool set_encoder_bitrate(GstElement *encoder, const EncoderSpec &spec, unsigned kbps) {
    if (!bitrate_change_unsupported(encoder, spec).empty()) return false;
    auto prop = bitrate_property(spec);
    // Through a GValue: GObject converts to the property's own integer type (uint or int).
    GValue value = G_VALUE_INIT;
    g_value_init(&value, G_TYPE_UINT);
    g_value_set_uint(&value, kbps * prop.per_kbps);
    g_object_set_property(G_OBJECT(encoder), prop.name, &value);
    g_value_unset(&value);
    // openh264enc's cap must follow, or it would clip a raise back to the old rate.
    if (std::string_view(spec.name) == "openh264")
        set_property(encoder, "max-bitrate", std::to_string(kbps * 1500));
    return true;
}

std::optional<std::string> select_aac() {
    ensure_gst();
    for (const char *name : {"fdkaacenc", "avenc_aac", "voaacenc"}) {
        GstPtr<GstElementFactory> f(gst_element_factory_find(name));
        if (f) return std::string(name);
    }
    return std::nullopt;
}

// Measured by decoding the test source's ticks (a tick at sample 0 came out at decoded sample 1027
// from avenc_aac, 1603 from voaacenc; tests/unit/media_test.cpp checks it stays taken out).
// fdkaacenc is not in Debian and was never measured.
unsigned aac_priming_samples(std::string_view encoder) {
    if (encoder == "avenc_aac") return 1024;  // FFmpeg's initial_padding
    if (encoder == "voaacenc") return 1600;
    return 0;
}

void configure_aac(GstElement *e, unsigned bitrate_bps) {
    set_property(e, "bitrate", std::to_string(bitrate_bps));
}

EncoderChoice select_encoder(std::string_view wanted) {
    ensure_gst();
    if (wanted.empty() || wanted == "auto") {
        std::string reasons;
        for (const auto &spec : encoder_catalogue()) {
            auto p = probe_encoder(spec);
            if (p.usable) return {spec.name, spec.element, spec.hardware};
            reasons += (reasons.empty() ? "" : "; ") + p.reason;
        }
        throw Error(PP_ERR_MISSING_PLUGIN,
                    "no usable H.264 encoder (" + reasons + "); install gstreamer1.0-plugins-ugly for x264enc");
    }
    const EncoderSpec *spec = find_encoder(wanted);
    if (!spec)
        throw Error(PP_ERR_INVALID_ARGUMENT,
                    "unknown encoder '" + std::string(wanted) + "': use auto, va, vaapi, nvenc, x264 or openh264");
    auto p = probe_encoder(*spec);
    if (!p.usable) throw Error(p.code, "encoder '" + std::string(spec->name) + "': " + p.reason);
    return {spec->name, spec->element, spec->hardware};
}

void require_element(std::string_view element) {
    ensure_gst();
    GstPtr<GstElementFactory> f(gst_element_factory_find(std::string(element).c_str()));
    if (!f) throw missing_element_error(element);
}

} // namespace pp::media
