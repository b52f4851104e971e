#include "media/pipeline.hpp"

#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

#include "common/error.hpp"

namespace pp::media {

struct Pipeline::Run {
    Pipeline *owner = nullptr;
    fanout::Sink *sink = nullptr;
    ElementPtr pipeline;
    GstPtr<GstClock> clock;
    ElementPtr raw_caps;   // the capsfilter in front of the encoder (size set from the source caps)
    ElementPtr videorate;
    ElementPtr parser;     // h264parse: where keyframe requests go upstream
    std::thread bus_thread;
    std::atomic<bool> ended{false};
    std::atomic<bool> started_logged{false};
};

namespace {

const char *state_name(GstState s) { return gst_element_state_get_name(s); }

ElementPtr leaky_queue(const char *name, uint64_t max_time_ns) {
    ElementPtr q = make_element("queue", name);
    // A slow encoder drops old frames here instead of stalling the capture source.
    set_property(q.get(), "leaky", "downstream");
    set_property(q.get(), "max-size-buffers", max_time_ns ? "0" : "3");
    set_property(q.get(), "max-size-bytes", "0");
    set_property(q.get(), "max-size-time", std::to_string(max_time_ns));
    return q;
}

ElementPtr fake_sink(const char *name) {
    ElementPtr s = make_element("fakesink", name);
    set_property(s.get(), "sync", "false");
    set_property(s.get(), "async", "false");
    return s;
}

pp_result code_for(GstMessage *msg) {
    GError *raw = nullptr;
    gst_message_parse_error(msg, &raw, nullptr);
    GErrorPtr e(raw);
    if (!e) return PP_ERR_MEDIA;
    if ((e->domain == GST_CORE_ERROR && e->code == GST_CORE_ERROR_MISSING_PLUGIN) ||
        (e->domain == GST_STREAM_ERROR && e->code == GST_STREAM_ERROR_CODEC_NOT_FOUND))
        return PP_ERR_MISSING_PLUGIN;
    return PP_ERR_MEDIA;
}

} // namespace

Pipeline::Pipeline(PipelineSpec spec, std::unique_ptr<CaptureSource> capture, EventSink events)
    : spec_(std::move(spec)), capture_(std::move(capture)), events_(std::move(events)) {
    ensure_gst();
}

Pipeline::~Pipeline() { stop(); }

void Pipeline::emit(pp_event_type type, pp_log_level level, pp_result code, const std::string &message) const {
    if (!events_) return;
    Event e;
    e.type = type;
    e.level = level;
    e.error = code;
    e.message = message;
    events_(e);
}

GstPadProbeReturn Pipeline::on_raw_caps(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *run = static_cast<Run *>(data);
    GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
    if (!event || GST_EVENT_TYPE(event) != GST_EVENT_CAPS) return GST_PAD_PROBE_OK;
    GstCaps *caps = nullptr;
    gst_event_parse_caps(event, &caps);
    GstVideoInfo vi;
    if (!caps || !gst_video_info_from_caps(&vi, caps)) return GST_PAD_PROBE_OK;
    // Keep the aspect ratio, scale down to max_height, and make both sides even: 4:2:0 encoders
    // need even dimensions.
    uint64_t w = static_cast<uint64_t>(GST_VIDEO_INFO_WIDTH(&vi)) * GST_VIDEO_INFO_PAR_N(&vi) /
                 std::max(1, GST_VIDEO_INFO_PAR_D(&vi));
    uint64_t h = GST_VIDEO_INFO_HEIGHT(&vi);
    unsigned max_h = run->owner->spec_.capture.max_height;
    if (max_h && h > max_h) {
        w = (w * max_h + h / 2) / h;
        h = max_h;
    }
    int width = std::max<int>(2, static_cast<int>(w) & ~1);
    int height = std::max<int>(2, static_cast<int>(h) & ~1);
    const auto &spec = run->owner->spec_;
    const EncoderSpec *enc = find_encoder(spec.encoder.name);
    std::string raw = std::string("video/x-raw,format=") + (enc ? enc->raw_format : "I420") +
                      ",width=" + std::to_string(width) + ",height=" + std::to_string(height) +
                      ",framerate=" + std::to_string(spec.fps) + "/1,pixel-aspect-ratio=1/1";
    CapsPtr target(gst_caps_from_string(raw.c_str()));
    g_object_set(run->raw_caps.get(), "caps", target.get(), nullptr);
    std::lock_guard lock(run->owner->mutex_);
    run->owner->width_ = width;
    run->owner->height_ = height;
    return GST_PAD_PROBE_OK;
}

GstFlowReturn Pipeline::on_sample(GstAppSink *appsink, gpointer data) {
    auto *run = static_cast<Run *>(data);
    GstSample *raw = gst_app_sink_pull_sample(appsink);
    if (!raw) return GST_FLOW_EOS;
    std::unique_ptr<GstSample, decltype(&gst_sample_unref)> sample(raw, gst_sample_unref);
    // One copy: GStreamer's per-packet buffers → one contiguous segment shared by every viewer.
    std::vector<uint8_t> bytes;
    auto append = [&bytes](GstBuffer *buffer) {
        size_t size = gst_buffer_get_size(buffer);
        size_t at = bytes.size();
        bytes.resize(at + size);
        gst_buffer_extract(buffer, 0, bytes.data() + at, size);
    };
    if (GstBufferList *list = gst_sample_get_buffer_list(sample.get())) {
        bytes.reserve(gst_buffer_list_calculate_size(list));
        for (guint i = 0, n = gst_buffer_list_length(list); i < n; ++i) append(gst_buffer_list_get(list, i));
    } else if (GstBuffer *buffer = gst_sample_get_buffer(sample.get())) {
        append(buffer);
    }
    if (bytes.empty()) return GST_FLOW_OK;
    run->owner->buffers_.fetch_add(1, std::memory_order_relaxed);
    run->owner->bytes_.fetch_add(bytes.size(), std::memory_order_relaxed);
    run->sink->on_data(std::move(bytes));
    return GST_FLOW_OK;
}

void Pipeline::build(Run &run) {
    run.pipeline = sink_ref(gst_pipeline_new("pixelpass-media"));
    GstBin *bin = GST_BIN(run.pipeline.get());
    // CLOCK_REALTIME: base time + PTS = capture Unix time (burnt into the test pattern, and what
    // latency measurements subtract from the display time).
    run.clock.reset(GST_CLOCK(gst_object_ref_sink(
        g_object_new(GST_TYPE_SYSTEM_CLOCK, "clock-type", GST_CLOCK_TYPE_REALTIME, "name", "pp-realtime", nullptr))));
    gst_pipeline_use_clock(GST_PIPELINE(run.pipeline.get()), run.clock.get());

    const EncoderSpec *enc_spec = find_encoder(spec_.encoder.name);
    if (!enc_spec) throw Error(PP_ERR_INTERNAL, "unknown encoder " + spec_.encoder.name);

    ElementPtr video = capture_->make_video(spec_.capture);
    if (!video) throw Error(PP_ERR_MEDIA, "capture source '" + capture_->name() + "' gave no video");
    ElementPtr vqueue = leaky_queue("video-queue", 0);
    run.videorate = make_element("videorate", "rate");
    ElementPtr convert = make_element("videoconvert", "convert");
    ElementPtr scale = make_element("videoscale", "scale");
    run.raw_caps = make_capsfilter(std::string("video/x-raw,format=") + enc_spec->raw_format +
                                       ",framerate=" + std::to_string(spec_.fps) + "/1",
                                   "raw-caps");
    {
        GstPtr<GstPad> pad(gst_element_get_static_pad(convert.get(), "sink"));
        gst_pad_add_probe(pad.get(), GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_raw_caps, &run, nullptr);
    }
    add_and_link(bin, {video.get(), vqueue.get(), run.videorate.get(), convert.get(), scale.get(), run.raw_caps.get()});
    if (spec_.until == PipelineSpec::Until::convert) {
        ElementPtr end = fake_sink("end");
        add_and_link(bin, {end.get()});
        gst_element_link(run.raw_caps.get(), end.get());
        return;
    }

    ElementPtr encoder = make_element(spec_.encoder.element, "encoder");
    // A restarted encode starts at the bitrate the rate control chose last, not the configured one.
    configure_encoder(encoder.get(), *enc_spec, bitrate_kbps_.load(), spec_.fps);
    run.parser = make_element("h264parse", "parse");
    set_property(run.parser.get(), "config-interval", "-1");  // SPS/PPS before every IDR
    ElementPtr h264caps = make_capsfilter("video/x-h264,stream-format=byte-stream,alignment=au", "h264-caps");
    add_and_link(bin, {encoder.get(), run.parser.get(), h264caps.get()});
    if (!gst_element_link(run.raw_caps.get(), encoder.get()))
        throw Error(PP_ERR_MEDIA, "media pipeline: " + spec_.encoder.element + " does not accept raw " +
                                      enc_spec->raw_format + " video");
    if (spec_.until == PipelineSpec::Until::encode) {
        ElementPtr end = fake_sink("end");
        add_and_link(bin, {end.get()});
        gst_element_link(h264caps.get(), end.get());
        return;
    }

    ElementPtr mux = make_element("mpegtsmux", "mux");
    // One buffer list per muxed input buffer: a frame arrives as one callback, not 188-byte pieces.
    set_property(mux.get(), "alignment", "0");
    ElementPtr appsink = make_element("appsink", "out");
    CapsPtr ts_caps(gst_caps_from_string("video/mpegts,systemstream=true,packetsize=188"));
    g_object_set(appsink.get(), "caps", ts_caps.get(), nullptr);
    set_property(appsink.get(), "sync", "false");
    set_property(appsink.get(), "emit-signals", "false");
    set_property(appsink.get(), "buffer-list", "true");
    set_property(appsink.get(), "max-buffers", "0");
    GstAppSinkCallbacks callbacks{};
    callbacks.new_sample = &Pipeline::on_sample;
    gst_app_sink_set_callbacks(GST_APP_SINK(appsink.get()), &callbacks, &run, nullptr);
    add_and_link(bin, {mux.get(), appsink.get()});
    if (!gst_element_link(h264caps.get(), mux.get()))
        throw Error(PP_ERR_MEDIA, "media pipeline: mpegtsmux refused the H.264 stream");

    if (!spec_.aac.empty() && spec_.capture.audio) {
        ElementPtr audio = capture_->make_audio(spec_.capture);
        if (audio) {
            ElementPtr aqueue = leaky_queue("audio-queue", 200 * GST_MSECOND);
            ElementPtr aconvert = make_element("audioconvert", "aconvert");
            ElementPtr aresample = make_element("audioresample", "aresample");
            ElementPtr acaps = make_capsfilter("audio/x-raw,rate=48000,channels=2", "audio-caps");
            ElementPtr aenc = make_element(spec_.aac, "aenc");
            configure_aac(aenc.get(), spec_.audio_bitrate);
            ElementPtr aparse = make_element("aacparse", "aparse");
            add_and_link(bin, {audio.get(), aqueue.get(), aconvert.get(), aresample.get(), acaps.get(), aenc.get(),
                               aparse.get()});
            if (!gst_element_link(aparse.get(), mux.get()))
                throw Error(PP_ERR_MEDIA, "media pipeline: mpegtsmux refused the AAC stream");
        }
    }
}

void Pipeline::start(fanout::Sink &sink) {
    if (run_) throw Error(PP_ERR_STATE, "media pipeline already running");
    capture_->open(spec_.capture);
    auto run = std::make_unique<Run>();
    run->owner = this;
    run->sink = &sink;
    try {
        build(*run);
        GstStateChangeReturn ret = gst_element_set_state(run->pipeline.get(), GST_STATE_PLAYING);
        if (ret == GST_STATE_CHANGE_FAILURE) {
            GstPtr<GstBus> bus(gst_element_get_bus(run->pipeline.get()));
            MessagePtr msg(gst_bus_pop_filtered(bus.get(), GST_MESSAGE_ERROR));
            pp_result code = msg ? code_for(msg.get()) : PP_ERR_MEDIA;
            std::string why = msg ? describe_message(msg.get()) : "state change to PLAYING failed";
            gst_element_set_state(run->pipeline.get(), GST_STATE_NULL);
            throw Error(code, "media pipeline failed to start: " + why);
        }
    } catch (...) {
        if (run->pipeline) gst_element_set_state(run->pipeline.get(), GST_STATE_NULL);
        capture_->close();
        throw;
    }
    run->bus_thread = std::thread(&Pipeline::bus_loop, this, run.get());
    std::lock_guard lock(mutex_);
    run_ = std::move(run);
}

void Pipeline::stop() {
    std::unique_ptr<Run> run;
    {
        std::lock_guard lock(mutex_);
        run = std::move(run_);
        base_time_unix_ns_ = 0;
    }
    if (!run) return;
    // The bus thread first (a pipeline in NULL flushes its bus, which would drop our message);
    // then NULL, which joins the streaming threads: no appsink callback runs after it returns.
    GstPtr<GstBus> bus(gst_element_get_bus(run->pipeline.get()));
    gst_bus_post(bus.get(), gst_message_new_application(nullptr, gst_structure_new_empty("pp-stop")));
    run->bus_thread.join();
    gst_element_set_state(run->pipeline.get(), GST_STATE_NULL);
    capture_->close();
    emit(PP_EVENT_LOG, PP_LOG_INFO, PP_OK, "media: pipeline stopped");
}

void Pipeline::bus_loop(Run *run) {
    GstPtr<GstBus> bus(gst_element_get_bus(run->pipeline.get()));
    for (;;) {
        MessagePtr msg(gst_bus_timed_pop(bus.get(), GST_CLOCK_TIME_NONE));
        if (!msg) continue;
        GstMessage *m = msg.get();
        switch (GST_MESSAGE_TYPE(m)) {
        case GST_MESSAGE_APPLICATION:
            if (gst_structure_has_name(gst_message_get_structure(m), "pp-stop")) return;
            break;
        case GST_MESSAGE_ERROR: {
            std::string text = "media pipeline failed: " + describe_message(m);
            if (!run->ended.exchange(true)) run->sink->on_end(code_for(m), text);
            break;
        }
        case GST_MESSAGE_WARNING:
            emit(PP_EVENT_LOG, PP_LOG_WARNING, PP_OK, "media: " + describe_message(m));
            break;
        case GST_MESSAGE_EOS:
            if (!run->ended.exchange(true)) run->sink->on_end(PP_OK, "the capture source ended");
            break;
        case GST_MESSAGE_LATENCY:
            gst_bin_recalculate_latency(GST_BIN(run->pipeline.get()));
            break;
        case GST_MESSAGE_STATE_CHANGED:
            if (GST_MESSAGE_SRC(m) == GST_OBJECT(run->pipeline.get())) {
                GstState old_state, new_state;
                gst_message_parse_state_changed(m, &old_state, &new_state, nullptr);
                if (new_state == GST_STATE_PLAYING && !run->started_logged.exchange(true)) {
                    {
                        std::lock_guard lock(mutex_);
                        base_time_unix_ns_ = gst_element_get_base_time(run->pipeline.get());
                    }
                    emit(PP_EVENT_LOG, PP_LOG_INFO, PP_OK,
                         "media: " + spec_.encoder.element + " " + std::to_string(spec_.bitrate_kbps) +
                             " kbit/s at " + std::to_string(spec_.fps) + " fps from " + capture_->name() +
                             (spec_.aac.empty() ? "" : ", audio " + spec_.aac));
                }
            }
            break;
        default:
            break;
        }
    }
}

void Pipeline::request_keyframe() {
    GstPtr<GstPad> pad;
    {
        std::lock_guard lock(mutex_);
        if (!run_ || !run_->parser) return;
        pad.reset(gst_element_get_static_pad(run_->parser.get(), "src"));
    }
    // Upstream force-key-unit: h264parse notes it (to send SPS/PPS) and passes it to the encoder.
    gst_pad_send_event(pad.get(), gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 0));
}

nlohmann::json Pipeline::describe() const {
    nlohmann::json j = {{"kind", "media"},
                        {"codec", "h264"},
                        {"container", "mpegts"},
                        {"encoder", spec_.encoder.element},
                        {"hardware", spec_.encoder.hardware},
                        {"fps", spec_.fps},
                        {"bitrate_kbps", spec_.bitrate_kbps},
                        {"audio", spec_.aac.empty() ? nlohmann::json(nullptr) : nlohmann::json("aac")},
                        {"source", capture_->name()},
                        {"clock", "realtime"}};
    if (!spec_.aac.empty()) j["audio_encoder"] = spec_.aac;
    std::lock_guard lock(mutex_);
    auto c = capture_->describe();
    // --app: which applications' sound is in the stream right now.
    if (c.contains("audio_apps")) j["audio_apps"] = c["audio_apps"];
    if (width_ > 0) {
        j["width"] = width_;
        j["height"] = height_;
    } else {
        j["width"] = c.value("width", nlohmann::json(nullptr));
        j["height"] = c.value("height", nlohmann::json(nullptr));
    }
    // Unix time of a frame = pts_epoch_unix_ms + PTS/90 (ms). mpegtsmux starts PTS at 3600 s.
    if (base_time_unix_ns_)
        j["pts_epoch_unix_ms"] = static_cast<int64_t>(base_time_unix_ns_ / 1000000) - 3600 * 1000;
    return j;
}

bool Pipeline::set_bitrate(unsigned kbps, std::string &why_not) {
    const EncoderSpec *enc_spec = find_encoder(spec_.encoder.name);
    std::lock_guard lock(mutex_);
    if (!run_ || !run_->pipeline || !enc_spec) {
        bitrate_kbps_ = kbps;  // for the next start
        return true;
    }
    GstPtr<GstElement> encoder(gst_bin_get_by_name(GST_BIN(run_->pipeline.get()), "encoder"));
    if (!encoder) {
        why_not = "this pipeline has no encoder";
        return false;
    }
    why_not = bitrate_change_unsupported(encoder.get(), *enc_spec);
    if (!why_not.empty() || !set_encoder_bitrate(encoder.get(), *enc_spec, kbps)) return false;
    bitrate_kbps_ = kbps;
    return true;
}

nlohmann::json Pipeline::stats() const {
    nlohmann::json j = {{"encoder", spec_.encoder.element},
                        {"bitrate_kbps", bitrate_kbps_.load()},
                        {"buffers", buffers_.load()},
                        {"bytes", bytes_.load()}};
    std::lock_guard lock(mutex_);
    if (!run_) {
        j["state"] = "NULL";
        return j;
    }
    GstState state = GST_STATE_NULL, pending = GST_STATE_VOID_PENDING;
    gst_element_get_state(run_->pipeline.get(), &state, &pending, 0);
    j["state"] = state_name(state);
    guint64 in = 0, out = 0, dup = 0, drop = 0;
    g_object_get(run_->videorate.get(), "in", &in, "out", &out, "duplicate", &dup, "drop", &drop, nullptr);
    j["videorate"] = {{"in", in}, {"out", out}, {"duplicated", dup}, {"dropped", drop}};
    return j;
}

} // namespace pp::media
