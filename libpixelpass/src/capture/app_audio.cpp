#include "capture/app_audio.hpp"

#include <mutex>

#include "audio/app_match.hpp"
#include "common/error.hpp"
#include "media/gst.hpp"
#include "media/media.hpp"

#ifdef PP_HAVE_PULSE_CLIENT
#include "audio/app_router.hpp"
#include "audio/pw_client.hpp"
#endif

namespace pp::capture {

#ifdef PP_HAVE_PULSE_CLIENT
namespace {

class AppAudioSource final : public media::CaptureSource {
public:
    AppAudioSource(std::unique_ptr<media::CaptureSource> inner, std::vector<std::string> apps, EventSink events)
        : inner_(std::move(inner)), apps_(std::move(apps)), events_(std::move(events)) {}
    ~AppAudioSource() override { stop_router(); }

    std::string name() const override { return inner_->name(); }
    void open(const media::CaptureParams &params) override { inner_->open(params); }
    media::ElementPtr make_video(const media::CaptureParams &params) override { return inner_->make_video(params); }

    media::ElementPtr make_audio(const media::CaptureParams &params) override {
        if (!params.audio) return nullptr;
        media::require_element("pulsesrc");
        stop_router();  // a previous run's, if close() was skipped
        auto log = [events = events_](int level, const std::string &message) {
            if (!events) return;
            Event e;
            e.type = PP_EVENT_LOG;
            e.level = level ? PP_LOG_WARNING : PP_LOG_INFO;
            e.message = message;
            events(e);
        };
        auto router = std::make_unique<audio::AppRouter>(apps_, std::move(log));
        media::ElementPtr bin = media::sink_ref(gst_bin_new("app-audio"));
        media::ElementPtr src = media::make_element("pulsesrc", "app-audio-src");
        // Our sink's monitor by name: only what the router links into the sink is heard here.
        media::set_property(src.get(), "device", (router->sink_name() + ".monitor").c_str());
        media::set_property(src.get(), "client-name", "pixelpass");
        // As system audio: 10 ms reads, 40 ms of server buffer, the pipeline's own clock.
        media::set_property(src.get(), "latency-time", "10000");
        media::set_property(src.get(), "buffer-time", "40000");
        media::set_property(src.get(), "provide-clock", "false");
        media::set_property(src.get(), "do-timestamp", "true");
        media::ElementPtr caps = media::make_capsfilter("audio/x-raw,rate=48000,channels=2", "app-audio-caps");
        media::add_and_link(GST_BIN(bin.get()), {src.get(), caps.get()});
        media::GstPtr<GstPad> pad(gst_element_get_static_pad(caps.get(), "src"));
        gst_element_add_pad(bin.get(), gst_ghost_pad_new("src", pad.get()));
        std::lock_guard lock(mutex_);
        router_ = std::move(router);
        return bin;
    }

    void close() override {
        inner_->close();
        stop_router();
    }

    nlohmann::json describe() const override {
        nlohmann::json j = inner_->describe();
        std::lock_guard lock(mutex_);
        nlohmann::json apps = router_ ? router_->describe() : nlohmann::json{{"matching", nlohmann::json::array()}};
        apps["wanted"] = apps_;
        apps["active"] = router_ != nullptr;
        j["audio_apps"] = apps;
        return j;
    }

private:
    void stop_router() {
        std::unique_ptr<audio::AppRouter> old;
        {
            std::lock_guard lock(mutex_);
            old = std::move(router_);
        }
    }

    std::unique_ptr<media::CaptureSource> inner_;
    std::vector<std::string> apps_;
    EventSink events_;
    mutable std::mutex mutex_;
    std::unique_ptr<audio::AppRouter> router_;  // guarded by mutex_
};

} // namespace

std::unique_ptr<media::CaptureSource> with_app_audio(std::unique_ptr<media::CaptureSource> inner,
                                                     std::vector<std::string> apps, EventSink events) {
    audio::check_app_names(apps);
    // Asked for at start, so `pixelpass host --app X` without PipeWire fails at once with one
    // line, not later when a viewer arrives.
    std::string why;
    if (!audio::PwClient::connect(std::chrono::milliseconds(1500), &why))
        throw Error(PP_ERR_IO, "sharing an application's audio (--app) needs PipeWire, and no PipeWire server "
                               "answered (" + (why.empty() ? std::string("no reason given") : why) +
                               "): start pipewire, or share all system audio (leave out --app)");
    return std::make_unique<AppAudioSource>(std::move(inner), std::move(apps), std::move(events));
}
#else
std::unique_ptr<media::CaptureSource> with_app_audio(std::unique_ptr<media::CaptureSource>, std::vector<std::string>,
                                                     EventSink) {
    throw Error(PP_ERR_UNSUPPORTED, "sharing one application's audio (--app) is not in this build (it needs "
                                    "libpipewire and libpulse at build time): share all system audio (leave out "
                                    "--app) or none (--no-audio)");
}
#endif

} // namespace pp::capture
