#include "capture/system_audio.hpp"

#include <chrono>

#include "common/error.hpp"
#include "media/gst.hpp"
#include "media/media.hpp"

#ifdef PP_HAVE_PULSE_CLIENT
#include <pulse/pulseaudio.h>

#include "audio/pulse_client.hpp"
#endif

namespace pp::capture {

#ifdef PP_HAVE_PULSE_CLIENT
// Watches the server's default sink on its own libpulse thread and moves the pulsesrc stream (by
// its source-output index) to the new default's monitor. Best effort: a failed move leaves the
// capture where it was, which is what happened before the default changed.
class SystemAudio::Follower {
public:
    Follower(GstElement *src, EventSink events)
        : src_(GST_ELEMENT(gst_object_ref(src))), events_(std::move(events)) {
        loop_ = pa_threaded_mainloop_new();
        if (!loop_) return;
        ctx_ = pa_context_new(pa_threaded_mainloop_get_api(loop_), "pixelpass-default-sink-watch");
        if (!ctx_) return;
        pa_context_set_state_callback(ctx_, &Follower::on_state, this);
        pa_context_set_subscribe_callback(ctx_, &Follower::on_event, this);
        if (pa_context_connect(ctx_, nullptr, PA_CONTEXT_NOAUTOSPAWN, nullptr) < 0) return;
        pa_threaded_mainloop_start(loop_);
    }
    ~Follower() {
        if (loop_) {
            pa_threaded_mainloop_lock(loop_);
            if (ctx_) pa_context_disconnect(ctx_);
            pa_threaded_mainloop_unlock(loop_);
            pa_threaded_mainloop_stop(loop_);
            if (ctx_) pa_context_unref(ctx_);
            pa_threaded_mainloop_free(loop_);
        }
        gst_object_unref(src_);
    }
    Follower(const Follower &) = delete;
    Follower &operator=(const Follower &) = delete;

private:
    static void on_state(pa_context *c, void *self) {
        if (pa_context_get_state(c) != PA_CONTEXT_READY) return;
        pa_operation_unref(pa_context_subscribe(c, PA_SUBSCRIPTION_MASK_SERVER, nullptr, nullptr));
        pa_operation_unref(pa_context_get_server_info(c, &Follower::on_server, self));
    }
    static void on_event(pa_context *c, pa_subscription_event_type_t type, uint32_t, void *self) {
        if ((type & PA_SUBSCRIPTION_EVENT_FACILITY_MASK) == PA_SUBSCRIPTION_EVENT_SERVER)
            pa_operation_unref(pa_context_get_server_info(c, &Follower::on_server, self));
    }
    static void on_server(pa_context *c, const pa_server_info *info, void *data) {
        auto *self = static_cast<Follower *>(data);
        if (!info || !info->default_sink_name) return;
        std::string sink = info->default_sink_name;
        if (self->default_sink_.empty()) {  // the first answer: where the stream started
            self->default_sink_ = sink;
            return;
        }
        if (sink == self->default_sink_) return;
        self->default_sink_ = sink;
        pa_operation_unref(pa_context_get_sink_info_by_name(c, sink.c_str(), &Follower::on_sink, data));
    }
    static void on_sink(pa_context *c, const pa_sink_info *info, int eol, void *data) {
        auto *self = static_cast<Follower *>(data);
        if (eol || !info || !info->monitor_source_name) return;
        guint index = G_MAXUINT;
        g_object_get(self->src_, "source-output-index", &index, nullptr);
        if (index == G_MAXUINT || index == PA_INVALID_INDEX) return;  // not recording (yet)
        pa_operation_unref(pa_context_move_source_output_by_name(c, index, info->monitor_source_name, nullptr, nullptr));
        if (self->events_) {
            Event e;
            e.type = PP_EVENT_LOG;
            e.level = PP_LOG_INFO;
            e.message = std::string("audio: the default sink is now '") + info->name + "': capturing " +
                        info->monitor_source_name;
            self->events_(e);
        }
    }

    GstElement *src_;
    EventSink events_;
    pa_threaded_mainloop *loop_ = nullptr;
    pa_context *ctx_ = nullptr;
    std::string default_sink_;  // touched only on the libpulse thread
};
#else
class SystemAudio::Follower {
public:
    Follower(GstElement *, EventSink) {}
};
#endif

SystemAudio::SystemAudio(EventSink events) : events_(std::move(events)) {}

SystemAudio::~SystemAudio() { stop(); }

void SystemAudio::stop() { follower_.reset(); }

std::string SystemAudio::server_problem(unsigned timeout_ms) {
#ifdef PP_HAVE_PULSE_CLIENT
    std::string why;
    // Never autospawns: a share must not start a sound server behind the user's back.
    auto client = audio::PulseClient::connect(std::chrono::milliseconds(timeout_ms), &why);
    if (!client) return why.empty() ? "no PulseAudio or pipewire-pulse server answered" : why;
    return "";
#else
    (void)timeout_ms;
    return "this build has no PulseAudio client (libpulse was missing at build time)";
#endif
}

media::ElementPtr SystemAudio::make(const media::CaptureParams &params) {
    if (!params.audio) return nullptr;
    media::require_element("pulsesrc");
    if (std::string why = server_problem(); !why.empty()) {
        if (!warned_.exchange(true) && events_) {
            Event e;
            e.type = PP_EVENT_LOG;
            e.level = PP_LOG_WARNING;
            e.message = "no audio server (" + why + "): sharing video only";
            events_(e);
        }
        return nullptr;
    }
    media::ElementPtr bin = media::sink_ref(gst_bin_new("system-audio"));
    media::ElementPtr src = media::make_element("pulsesrc", "system-audio-src");
    // The default sink's monitor *by name*, not its current device: pipewire-pulse then leaves the
    // stream unpinned and WirePlumber moves it along when the default sink changes.
    media::set_property(src.get(), "device", "@DEFAULT_MONITOR@");
    media::set_property(src.get(), "client-name", "pixelpass");
    // 10 ms reads, 40 ms of server buffer: low latency without underruns on a loaded machine.
    media::set_property(src.get(), "latency-time", "10000");
    media::set_property(src.get(), "buffer-time", "40000");
    // The pipeline runs on its own realtime clock; the sound card's clock must not replace it.
    media::set_property(src.get(), "provide-clock", "false");
    media::set_property(src.get(), "do-timestamp", "true");
    media::ElementPtr caps = media::make_capsfilter("audio/x-raw,rate=48000,channels=2", "system-audio-caps");
    media::add_and_link(GST_BIN(bin.get()), {src.get(), caps.get()});
    follower_ = std::make_unique<Follower>(src.get(), events_);
    media::GstPtr<GstPad> pad(gst_element_get_static_pad(caps.get(), "src"));
    gst_element_add_pad(bin.get(), gst_ghost_pad_new("src", pad.get()));
    return bin;
}

} // namespace pp::capture
