#include "media/pipeline.hpp"

#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

#include "common/error.hpp"

namespace pp::media {

struct Pipeline::Graph {
    Pipeline *owner = nullptr;
    ElementPtr pipeline;
    ElementPtr raw_caps;   // the capsfilter in front of the encoder (size set from the source caps)
    ElementPtr videorate;
    ElementPtr encoder;    // errors from it (or inside it) move the run to the next encoder
    ElementPtr parser;     // h264parse: where keyframe requests go upstream
    const EncoderSpec *spec = nullptr;
};

struct Pipeline::Run {
    Pipeline *owner = nullptr;
    fanout::Sink *sink = nullptr;
    GstPtr<GstClock> clock;
    std::unique_ptr<Graph> graph;  // replaced by a fallback; guarded by owner->mutex_
    std::thread bus_thread;
    std::atomic<bool> ended{false};
    std::atomic<bool> started_logged{false};
    std::atomic<bool> stopping{false};  // set by stop() under owner->mutex_
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

// Moves an AAC encoder's output back by its priming (aac_priming_samples): a decoded sample's
// timestamp is then its capture time, and a player that times the picture by the sound shows both
// together (issue 15: with avenc_aac the sound came 21 ms after the picture). A frame that would
// start before zero (the priming frame of a stream that starts at zero) is dropped: a decoder then
// starts on the next frame, as it does for every viewer that joins late.
GstPadProbeReturn shift_back(GstPad *, GstPadProbeInfo *info, gpointer data) {
    GstClockTime shift = *static_cast<GstClockTime *>(data);
    GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
    if (!buffer || !GST_BUFFER_PTS_IS_VALID(buffer)) return GST_PAD_PROBE_OK;
    if (GST_BUFFER_PTS(buffer) < shift) return GST_PAD_PROBE_DROP;
    buffer = gst_buffer_make_writable(buffer);
    GST_BUFFER_PTS(buffer) -= shift;
    if (GST_BUFFER_DTS_IS_VALID(buffer))
        GST_BUFFER_DTS(buffer) = GST_BUFFER_DTS(buffer) >= shift ? GST_BUFFER_DTS(buffer) - shift : GST_BUFFER_PTS(buffer);
    GST_PAD_PROBE_INFO_DATA(info) = buffer;
    return GST_PAD_PROBE_OK;
}

void take_out_priming(GstElement *encoder, unsigned samples) {
    if (samples == 0) return;
    GstPtr<GstPad> src(gst_element_get_static_pad(encoder, "src"));
    auto *shift = new GstClockTime(gst_util_uint64_scale(samples, GST_SECOND, 48000));
    gst_pad_add_probe(src.get(), GST_PAD_PROBE_TYPE_BUFFER, shift_back, shift,
                      [](gpointer p) { delete static_cast<GstClockTime *>(p); });
}

ElementPtr fake_sink(const char *name) {
    ElementPtr s = make_element("fakesink", name);
    set_property(s.get(), "sync", "false");
    set_property(s.get(), "async", "false");
    return s;
}

// True when `msg` comes from `element` or from inside it (an encoder may be a bin).
bool from_element(GstMessage *msg, GstElement *element) {
    GstObject *src = GST_MESSAGE_SRC(msg);
    return element && src && (src == GST_OBJECT(element) || gst_object_has_as_ancestor(src, GST_OBJECT(element)));
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
    encoder_ = find_encoder(spec_.encoder.name);
    if (!encoder_) throw Error(PP_ERR_INTERNAL, "unknown encoder " + spec_.encoder.name);
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
    auto *graph = static_cast<Graph *>(data);
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
    unsigned max_h = graph->owner->spec_.capture.max_height;
    if (max_h && h > max_h) {
        w = (w * max_h + h / 2) / h;
        h = max_h;
    }
    int width = std::max<int>(2, static_cast<int>(w) & ~1);
    int height = std::max<int>(2, static_cast<int>(h) & ~1);
    const auto &spec = graph->owner->spec_;
    std::string raw = std::string("video/x-raw,format=") + graph->spec->raw_format +
                      ",width=" + std::to_string(width) + ",height=" + std::to_string(height) +
                      ",framerate=" + std::to_string(spec.fps) + "/1,pixel-aspect-ratio=1/1";
    CapsPtr target(gst_caps_from_string(raw.c_str()));
    g_object_set(graph->raw_caps.get(), "caps", target.get(), nullptr);
    std::lock_guard lock(graph->owner->mutex_);
    graph->owner->width_ = width;
    graph->owner->height_ = height;
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

// Capture → leaky queue → videorate → convert → scale → raw caps sized for `encoder`.
void Pipeline::build_video(Graph &graph, const EncoderSpec &encoder) {
    GstBin *bin = GST_BIN(graph.pipeline.get());
    ElementPtr video = capture_->make_video(spec_.capture);
    if (!video) throw Error(PP_ERR_MEDIA, "capture source '" + capture_->name() + "' gave no video");
    ElementPtr vqueue = leaky_queue("video-queue", 0);
    graph.videorate = make_element("videorate", "rate");
    ElementPtr convert = make_element("videoconvert", "convert");
    ElementPtr scale = make_element("videoscale", "scale");
    graph.raw_caps = make_capsfilter(std::string("video/x-raw,format=") + encoder.raw_format +
                                         ",framerate=" + std::to_string(spec_.fps) + "/1",
                                     "raw-caps");
    {
        GstPtr<GstPad> pad(gst_element_get_static_pad(convert.get(), "sink"));
        gst_pad_add_probe(pad.get(), GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_raw_caps, &graph, nullptr);
    }
    add_and_link(bin, {video.get(), vqueue.get(), graph.videorate.get(), convert.get(), scale.get(),
                       graph.raw_caps.get()});
}

// Raw caps → encoder → h264parse → byte-stream caps; returns the last element (owned by the bin).
GstElement *Pipeline::build_encoder(Graph &graph, const EncoderSpec &encoder) {
    GstBin *bin = GST_BIN(graph.pipeline.get());
    graph.encoder = make_element(encoder.element, "encoder");
    // A restarted encode starts at the bitrate the rate control chose last, not the configured one.
    configure_encoder(graph.encoder.get(), encoder, bitrate_kbps_.load(), spec_.fps);
    graph.parser = make_element("h264parse", "parse");
    set_property(graph.parser.get(), "config-interval", "-1");  // SPS/PPS before every IDR
    ElementPtr h264caps = make_capsfilter("video/x-h264,stream-format=byte-stream,alignment=au", "h264-caps");
    add_and_link(bin, {graph.encoder.get(), graph.parser.get(), h264caps.get()});
    if (!gst_element_link(graph.raw_caps.get(), graph.encoder.get()))
        throw Error(PP_ERR_MEDIA, std::string("media pipeline: ") + encoder.element + " does not accept raw " +
                                      encoder.raw_format + " video");
    return h264caps.get();
}

// H.264 (+ AAC) → mpegtsmux → appsink, whose callback feeds the run's sink.
void Pipeline::build_mux(Run &run, Graph &graph, GstElement *h264) {
    GstBin *bin = GST_BIN(graph.pipeline.get());
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
    if (!gst_element_link(h264, mux.get()))
        throw Error(PP_ERR_MEDIA, "media pipeline: mpegtsmux refused the H.264 stream");
    if (spec_.aac.empty() || !spec_.capture.audio) return;
    ElementPtr audio = capture_->make_audio(spec_.capture);
    if (!audio) return;
    ElementPtr aqueue = leaky_queue("audio-queue", 200 * GST_MSECOND);
    ElementPtr aconvert = make_element("audioconvert", "aconvert");
    ElementPtr aresample = make_element("audioresample", "aresample");
    ElementPtr acaps = make_capsfilter("audio/x-raw,rate=48000,channels=2", "audio-caps");
    ElementPtr aenc = make_element(spec_.aac, "aenc");
    configure_aac(aenc.get(), spec_.audio_bitrate);
    take_out_priming(aenc.get(), aac_priming_samples(spec_.aac));
    ElementPtr aparse = make_element("aacparse", "aparse");
    add_and_link(bin, {audio.get(), aqueue.get(), aconvert.get(), aresample.get(), acaps.get(), aenc.get(),
                       aparse.get()});
    if (!gst_element_link(aparse.get(), mux.get()))
        throw Error(PP_ERR_MEDIA, "media pipeline: mpegtsmux refused the AAC stream");
}

std::unique_ptr<Pipeline::Graph> Pipeline::build(Run &run, const EncoderSpec &encoder) {
    auto graph = std::make_unique<Graph>();
    graph->owner = this;
    graph->spec = &encoder;
    graph->pipeline = sink_ref(gst_pipeline_new("pixelpass-media"));
    // CLOCK_REALTIME: base time + PTS = capture Unix time (burnt into the test pattern, and what
    // latency measurements subtract from the display time).
    gst_pipeline_use_clock(GST_PIPELINE(graph->pipeline.get()), run.clock.get());
    GstBin *bin = GST_BIN(graph->pipeline.get());
    build_video(*graph, encoder);
    if (spec_.until == PipelineSpec::Until::convert) {
        ElementPtr end = fake_sink("end");
        add_and_link(bin, {end.get()});
        gst_element_link(graph->raw_caps.get(), end.get());
        return graph;
    }
    GstElement *h264 = build_encoder(*graph, encoder);
    if (spec_.until == PipelineSpec::Until::encode) {
        ElementPtr end = fake_sink("end");
        add_and_link(bin, {end.get()});
        gst_element_link(h264, end.get());
        return graph;
    }
    build_mux(run, *graph, h264);
    return graph;
}

// The first usable encoder after `failed` in catalogue order (hardware before software, x264
// before openh264); nullptr when none. `skipped` collects why the ones in between are unusable.
const EncoderSpec *Pipeline::next_encoder(const EncoderSpec &failed, std::string &skipped) const {
    const auto &catalogue = encoder_catalogue();
    bool after = false;
    for (const auto &spec : catalogue) {
        if (after) {
            auto probe = probe_encoder(spec);
            if (probe.usable) return &spec;
            skipped += (skipped.empty() ? "" : "; ") + probe.reason;
        }
        if (&spec == &failed) after = true;
    }
    return nullptr;
}

void Pipeline::note_fallback(const EncoderSpec &failed, const EncoderSpec &next, const std::string &why,
                             const std::string &skipped) {
    {
        std::lock_guard lock(mutex_);
        encoder_ = &next;
        fallbacks_.push_back({{"from", failed.element}, {"to", next.element}, {"reason", why}});
    }
    emit(PP_EVENT_LOG, PP_LOG_WARNING, PP_OK,
         std::string("media: encoder ") + failed.element + " failed (" + why + "); continuing with " + next.element +
             (skipped.empty() ? "" : " (skipped: " + skipped + ")") + ", viewers stay connected");
}

// Builds the graph for `encoder` and brings it to PLAYING. An encoder that fails on the way is
// replaced by the next usable one; anything else throws. `base_time` (GST_CLOCK_TIME_NONE: a new
// one) lets a fallback continue the previous graph's timeline.
std::unique_ptr<Pipeline::Graph> Pipeline::launch(Run &run, const EncoderSpec *encoder, uint64_t base_time) {
    for (;;) {
        auto graph = build(run, *encoder);
        if (base_time != GST_CLOCK_TIME_NONE) {
            gst_element_set_start_time(graph->pipeline.get(), GST_CLOCK_TIME_NONE);
            gst_element_set_base_time(graph->pipeline.get(), base_time);
        }
        if (gst_element_set_state(graph->pipeline.get(), GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE) return graph;
        GstPtr<GstBus> bus(gst_element_get_bus(graph->pipeline.get()));
        MessagePtr msg(gst_bus_pop_filtered(bus.get(), GST_MESSAGE_ERROR));
        pp_result code = msg ? code_for(msg.get()) : PP_ERR_MEDIA;
        std::string why = msg ? describe_message(msg.get()) : "state change to PLAYING failed";
        bool encoder_fault = msg && from_element(msg.get(), graph->encoder.get());
        gst_element_set_state(graph->pipeline.get(), GST_STATE_NULL);
        std::string skipped;
        const EncoderSpec *next = encoder_fault ? next_encoder(*encoder, skipped) : nullptr;
        if (!next)
            throw Error(code, "media pipeline failed to start: " + why +
                                  (encoder_fault ? " (no other usable encoder" +
                                                       (skipped.empty() ? std::string() : ": " + skipped) + ")"
                                                 : std::string()));
        note_fallback(*encoder, *next, why, skipped);
        encoder = next;
    }
}

void Pipeline::start(fanout::Sink &sink) {
    if (run_) throw Error(PP_ERR_STATE, "media pipeline already running");
    capture_->open(spec_.capture);
    auto run = std::make_unique<Run>();
    run->owner = this;
    run->sink = &sink;
    run->clock.reset(GST_CLOCK(gst_object_ref_sink(
        g_object_new(GST_TYPE_SYSTEM_CLOCK, "clock-type", GST_CLOCK_TYPE_REALTIME, "name", "pp-realtime", nullptr))));
    const EncoderSpec *encoder;
    {
        std::lock_guard lock(mutex_);
        encoder = encoder_;  // after a fallback: the one that worked
    }
    try {
        run->graph = launch(*run, encoder, GST_CLOCK_TIME_NONE);
    } catch (...) {
        capture_->close();
        throw;
    }
    run->bus_thread = std::thread(&Pipeline::bus_loop, this, run.get());
    std::lock_guard lock(mutex_);
    run_ = std::move(run);
}

void Pipeline::stop() {
    std::unique_ptr<Run> run;
    GstPtr<GstBus> bus;
    {
        std::lock_guard lock(mutex_);
        run = std::move(run_);
        base_time_unix_ns_ = 0;
        if (!run) return;
        // Under the lock: a fallback swapping graphs either sees `stopping` or has already swapped,
        // so the message lands on the bus the loop reads.
        run->stopping = true;
        bus.reset(gst_element_get_bus(run->graph->pipeline.get()));
    }
    // The bus thread first (a pipeline in NULL flushes its bus, which would drop our message);
    // then NULL, which joins the streaming threads: no appsink callback runs after it returns.
    gst_bus_post(bus.get(), gst_message_new_application(nullptr, gst_structure_new_empty("pp-stop")));
    run->bus_thread.join();
    gst_element_set_state(run->graph->pipeline.get(), GST_STATE_NULL);
    capture_->close();
    emit(PP_EVENT_LOG, PP_LOG_INFO, PP_OK, "media: pipeline stopped");
}

// The encoder failed while running: stop this graph and launch the next encoder on the same clock
// and base time, so PTS continue and the sink (every viewer) never sees an end; the new encoder
// starts with a keyframe. Returns "" when the run goes on (or stop() came meanwhile), else why it
// ends.
std::string Pipeline::fail_over(Run *run, const std::string &why) {
    GstElement *old_pipeline;
    const EncoderSpec *failed;
    {
        std::lock_guard lock(mutex_);
        old_pipeline = run->graph->pipeline.get();
        failed = run->graph->spec;
    }
    GstClockTime base_time = gst_element_get_base_time(old_pipeline);
    gst_element_set_state(old_pipeline, GST_STATE_NULL);
    // NULL set the bus flushing; stop() may still post to it until the swap below.
    GstPtr<GstBus> old_bus(gst_element_get_bus(old_pipeline));
    gst_bus_set_flushing(old_bus.get(), FALSE);
    std::string skipped;
    const EncoderSpec *next = next_encoder(*failed, skipped);
    if (!next) return why + " (no other usable encoder" + (skipped.empty() ? "" : ": " + skipped) + ")";
    note_fallback(*failed, *next, why, skipped);
    std::unique_ptr<Graph> graph;
    try {
        graph = launch(*run, next, base_time);
    } catch (const Error &e) {
        return e.what();
    }
    std::unique_lock lock(mutex_);
    if (run->stopping) {
        lock.unlock();
        gst_element_set_state(graph->pipeline.get(), GST_STATE_NULL);
        return {};
    }
    std::swap(run->graph, graph);
    // A rate change that reached the old encoder after it was built: the new one follows it too.
    set_encoder_bitrate(run->graph->encoder.get(), *run->graph->spec, bitrate_kbps_.load());
    return {};
}

// Reads `pipeline`'s bus until stop() (false) or until a fallback replaced the graph (true).
bool Pipeline::read_bus(Run *run, GstElement *pipeline) {
    GstPtr<GstBus> bus(gst_element_get_bus(pipeline));
    for (;;) {
        MessagePtr msg(gst_bus_timed_pop(bus.get(), GST_CLOCK_TIME_NONE));
        if (!msg) continue;
        GstMessage *m = msg.get();
        switch (GST_MESSAGE_TYPE(m)) {
        case GST_MESSAGE_APPLICATION:
            if (gst_structure_has_name(gst_message_get_structure(m), "pp-stop")) return false;
            break;
        case GST_MESSAGE_ERROR: {
            if (run->ended) break;
            std::string text = describe_message(m);
            GstElement *encoder;
            {
                std::lock_guard lock(mutex_);
                encoder = run->graph->encoder.get();
            }
            if (from_element(m, encoder)) {
                std::string end = fail_over(run, text);
                if (end.empty()) return !run->stopping;
                text = end;
            }
            if (!run->ended.exchange(true)) run->sink->on_end(code_for(m), "media pipeline failed: " + text);
            break;
        }
        case GST_MESSAGE_WARNING:
            emit(PP_EVENT_LOG, PP_LOG_WARNING, PP_OK, "media: " + describe_message(m));
            break;
        case GST_MESSAGE_EOS:
            if (!run->ended.exchange(true)) run->sink->on_end(PP_OK, "the capture source ended");
            break;
        case GST_MESSAGE_LATENCY:
            gst_bin_recalculate_latency(GST_BIN(pipeline));
            break;
        case GST_MESSAGE_STATE_CHANGED:
            if (GST_MESSAGE_SRC(m) == GST_OBJECT(pipeline)) {
                GstState old_state, new_state;
                gst_message_parse_state_changed(m, &old_state, &new_state, nullptr);
                if (new_state == GST_STATE_PLAYING && !run->started_logged.exchange(true)) {
                    {
                        std::lock_guard lock(mutex_);
                        base_time_unix_ns_ = gst_element_get_base_time(pipeline);
                    }
                    emit(PP_EVENT_LOG, PP_LOG_INFO, PP_OK,
                         "media: " + std::string(run->graph->spec->element) + " " + std::to_string(spec_.bitrate_kbps) +
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

void Pipeline::bus_loop(Run *run) {
    for (;;) {
        GstPtr<GstElement> pipeline;
        {
            std::lock_guard lock(mutex_);
            pipeline.reset(GST_ELEMENT(gst_object_ref(run->graph->pipeline.get())));
        }
        if (!read_bus(run, pipeline.get())) return;
    }
}

void Pipeline::request_keyframe() {
    GstPtr<GstPad> pad;
    {
        std::lock_guard lock(mutex_);
        if (!run_ || !run_->graph->parser) return;
        pad.reset(gst_element_get_static_pad(run_->graph->parser.get(), "src"));
    }
    // Upstream force-key-unit: h264parse notes it (to send SPS/PPS) and passes it to the encoder.
    gst_pad_send_event(pad.get(), gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 0));
}

nlohmann::json Pipeline::describe() const {
    std::lock_guard lock(mutex_);
    nlohmann::json j = {{"kind", "media"},
                        {"codec", "h264"},
                        {"container", "mpegts"},
                        {"encoder", encoder_->element},
                        {"hardware", encoder_->hardware},
                        {"fps", spec_.fps},
                        {"bitrate_kbps", spec_.bitrate_kbps},
                        {"audio", spec_.aac.empty() ? nlohmann::json(nullptr) : nlohmann::json("aac")},
                        {"source", capture_->name()},
                        {"clock", "realtime"}};
    if (!spec_.aac.empty()) j["audio_encoder"] = spec_.aac;
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
    std::lock_guard lock(mutex_);
    if (!run_) {
        bitrate_kbps_ = kbps;  // for the next start
        return true;
    }
    const Graph &graph = *run_->graph;
    if (!graph.encoder) {
        why_not = "this pipeline has no encoder";
        return false;
    }
    why_not = bitrate_change_unsupported(graph.encoder.get(), *graph.spec);
    if (!why_not.empty() || !set_encoder_bitrate(graph.encoder.get(), *graph.spec, kbps)) return false;
    bitrate_kbps_ = kbps;
    return true;
}

nlohmann::json Pipeline::stats() const {
    std::lock_guard lock(mutex_);
    nlohmann::json j = {{"encoder", encoder_->element},
                        {"bitrate_kbps", bitrate_kbps_.load()},
                        {"buffers", buffers_.load()},
                        {"bytes", bytes_.load()},
                        {"encoder_fallbacks", fallbacks_}};
    if (!run_) {
        j["state"] = "NULL";
        return j;
    }
    GstState state = GST_STATE_NULL, pending = GST_STATE_VOID_PENDING;
    gst_element_get_state(run_->graph->pipeline.get(), &state, &pending, 0);
    j["state"] = state_name(state);
    guint64 in = 0, out = 0, dup = 0, drop = 0;
    g_object_get(run_->graph->videorate.get(), "in", &in, "out", &out, "duplicate", &dup, "drop", &drop, nullptr);
    j["videorate"] = {{"in", in}, {"out", out}, {"duplicated", dup}, {"dropped", drop}};
    return j;
}

} // namespace pp::media
