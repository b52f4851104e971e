#include "media/media.hpp"

#include "common/error.hpp"
#include "media/encoder.hpp"
#include "media/gst.hpp"
#include "media/pipeline.hpp"

namespace pp::media {

namespace {

constexpr unsigned kDefaultFps = 30;
constexpr unsigned kDefaultBitrateKbps = 6000;  // 1080p30 screen content with x264 ultrafast
constexpr unsigned kDefaultGraceMs = 5000;

// Everything the pipeline links besides the encoders and the capture source's own elements.
constexpr const char *kRequired[] = {"queue", "videorate", "videoconvert", "videoscale", "capsfilter",
                                     "h264parse", "mpegtsmux", "appsink"};
constexpr const char *kRequiredAudio[] = {"audioconvert", "audioresample", "aacparse"};

} // namespace

bool available() noexcept { return true; }

std::unique_ptr<fanout::FanoutSource> make_source(const HostConfig &config, EventSink events,
                                                  std::unique_ptr<CaptureSource> capture) {
    ensure_gst();
    if (!capture) {
        if (config.source == "test") {
            capture = make_test_source(config.max_height);
            for (const char *e : {"videotestsrc", "audiotestsrc", "textoverlay"}) require_element(e);
        } else {
            throw Error(PP_ERR_UNSUPPORTED, "capture source '" + config.source +
                                                "' is not available yet in this build (use --source test)");
        }
    }
    for (const char *e : kRequired) require_element(e);

    PipelineSpec spec;
    spec.fps = config.fps ? config.fps : kDefaultFps;
    if (spec.fps > 240) throw Error(PP_ERR_INVALID_ARGUMENT, "fps " + std::to_string(spec.fps) + " is above 240");
    spec.bitrate_kbps = config.bitrate_kbps ? config.bitrate_kbps : kDefaultBitrateKbps;
    spec.encoder = select_encoder(config.encoder);
    spec.capture.fps = spec.fps;
    spec.capture.max_height = config.max_height;
    spec.capture.audio = config.audio;
    spec.capture.apps = config.apps;
    spec.capture.monitor = config.monitor;
    if (config.audio) {
        for (const char *e : kRequiredAudio) require_element(e);
        auto aac = select_aac();
        if (!aac) throw missing_element_error("avenc_aac");
        spec.aac = *aac;
    }

    auto pipeline = std::make_unique<Pipeline>(std::move(spec), std::move(capture), events);
    fanout::Options options;
    options.grace = std::chrono::milliseconds(config.grace_ms ? config.grace_ms : kDefaultGraceMs);
    options.on_failure = [events](pp_result code, const std::string &message) {
        if (!events) return;
        Event e;
        e.type = PP_EVENT_ERROR;
        e.level = PP_LOG_ERROR;
        e.error = code;
        e.message = message;
        events(e);
    };
    return std::make_unique<fanout::FanoutSource>(std::move(pipeline), std::move(options));
}

nlohmann::json diagnose() {
    ensure_gst();
    nlohmann::json encoders = nlohmann::json::array();
    nlohmann::json selected = nullptr;
    for (const auto &spec : encoder_catalogue()) {
        auto p = probe_encoder(spec);
        if (p.usable && selected.is_null()) selected = spec.element;
        encoders.push_back({{"name", spec.name},
                            {"element", spec.element},
                            {"hardware", spec.hardware},
                            {"usable", p.usable},
                            {"reason", p.usable ? nlohmann::json(nullptr) : nlohmann::json(p.reason)},
                            {"package", package_for(spec.element)}});
    }
    nlohmann::json missing = nlohmann::json::array();
    for (const char *e : kRequired) {
        GstPtr<GstElementFactory> f(gst_element_factory_find(e));
        if (!f) missing.push_back({{"element", e}, {"package", package_for(e)}});
    }
    for (const char *e : kRequiredAudio) {
        GstPtr<GstElementFactory> f(gst_element_factory_find(e));
        if (!f) missing.push_back({{"element", e}, {"package", package_for(e)}});
    }
    auto aac = select_aac();
    GCharPtr version(gst_version_string());
    return {{"gstreamer", version.get()},
            {"encoders", encoders},
            {"selected", selected},
            {"aac", aac ? nlohmann::json(*aac) : nlohmann::json(nullptr)},
            {"dri", render_nodes()},
            {"missing", missing}};
}

} // namespace pp::media
