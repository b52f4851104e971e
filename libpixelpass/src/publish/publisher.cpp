#include "publish/publisher.hpp"

#include <gst/app/gstappsrc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/error.hpp"
#include "media/gst.hpp"
#include "media/media.hpp"

namespace pp::publish {

namespace {

using Clock = std::chrono::steady_clock;
using media::ElementPtr;
using media::GstPtr;

// What a target's appsrc may hold before the target stops reading: about 1.5 s at 6 Mbit/s.
// Past it the ring's backlog bound (1 s) moves the cursor to the newest keyframe.
constexpr guint64 kQueueBytes = 1 << 20;
// SRT live mode sends at most 1316 bytes (7 TS packets) per message.
constexpr size_t kSrtChunk = 7 * 188;
constexpr size_t kReadMax = 64 * 1024;
constexpr unsigned kMaxBackoffS = 30;
// A sink that takes nothing this long while data waits has a server that stopped reading (or
// refused the stream without closing, as nginx-rtmp does for a name already being published).
constexpr auto kStallTimeout = std::chrono::seconds(10);
// Only a connection that stayed live this long starts the backoff over: a server that takes the
// stream and drops it at once (or refuses it after the handshake) is not retried every second.
constexpr auto kStableLive = std::chrono::seconds(10);

const char *state_text(int s) {
    static const char *const names[] = {"connecting", "live", "retrying"};
    return names[s];
}

// A short reason from a sink's error: what a user can act on ("connection refused"), else
// GStreamer's own line.
std::string reason_for(GstMessage *msg) {
    GError *raw = nullptr;
    gchar *debug = nullptr;
    gst_message_parse_error(msg, &raw, &debug);
    media::GErrorPtr err(raw);
    media::GCharPtr dbg(debug);
    std::string text = std::string(err ? err->message : "") + " " + (debug ? debug : "");
    std::string low = text;
    for (char &c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (low.find("refused") != std::string::npos) return "connection refused";
    if (low.find("timed out") != std::string::npos || low.find("timeout") != std::string::npos) return "timed out";
    if (low.find("unreachable") != std::string::npos || low.find("no route") != std::string::npos) return "unreachable";
    if (low.find("resolv") != std::string::npos || low.find("not known") != std::string::npos) return "host not found";
    // rtmps:// verifies the server's certificate against the system's trust store (GIO's
    // default TLS database); a self-signed one is trusted by adding it there (docs/PUBLISHING.md).
    if (low.find("tls certificate") != std::string::npos || low.find("g-tls-error") != std::string::npos)
        return "the server's TLS certificate is not trusted (" + std::string(err ? err->message : "TLS error") +
               "); a self-signed certificate must be added to the system's trust store";
    // An RTMP server that answers the publish command with an error (a stream name already in
    // use, a wrong key): its own words say which.
    if (low.find("publish denied") != std::string::npos)
        return "the server refused the stream (" + std::string(err ? err->message : "publish denied") + ")";
    if (low.find("reset") != std::string::npos || low.find("broken pipe") != std::string::npos ||
        low.find("closed") != std::string::npos || low.find("does not exist") != std::string::npos)
        return "the server closed the connection";
    std::string line = err ? err->message : "GStreamer error";
    if (debug) {
        std::string d = debug;
        size_t nl = d.find_last_of('\n');
        line += ": " + (nl == std::string::npos ? d : d.substr(nl + 1));
    }
    return line;
}

// One attempt's GStreamer objects.
struct Attempt {
    ElementPtr pipeline;
    GstElement *appsrc = nullptr;  // owned by the pipeline
    GstElement *mux = nullptr;     // flvmux (RTMP only)
};

void on_demux_pad(GstElement *, GstPad *pad, gpointer data) {
    auto *attempt = static_cast<Attempt *>(data);
    media::CapsPtr caps(gst_pad_get_current_caps(pad));
    if (!caps) caps.reset(gst_pad_query_caps(pad, nullptr));
    const char *media_type = gst_structure_get_name(gst_caps_get_structure(caps.get(), 0));
    bool video = g_str_has_prefix(media_type, "video/x-h264");
    bool audio = g_str_has_prefix(media_type, "audio/mpeg");
    if (!video && !audio) return;  // nothing else goes into FLV
    GstBin *bin = GST_BIN(attempt->pipeline.get());
    GstElement *queue = gst_element_factory_make("queue", nullptr);
    GstElement *parse = gst_element_factory_make(video ? "h264parse" : "aacparse", nullptr);
    gst_bin_add_many(bin, queue, parse, nullptr);
    gst_element_link(queue, parse);
    GstPtr<GstPad> queue_sink(gst_element_get_static_pad(queue, "sink"));
    gst_pad_link(pad, queue_sink.get());
    gst_element_link_pads(parse, "src", attempt->mux, video ? "video" : "audio");
    gst_element_sync_state_with_parent(parse);
    gst_element_sync_state_with_parent(queue);
}

} // namespace

void require_plugins(const std::vector<Target> &targets) {
    media::ensure_gst();
    for (const auto &t : targets) {
        media::require_element("appsrc");
        if (t.protocol == Protocol::srt) {
            media::require_element("srtsink");
        } else {
            for (const char *e : {"tsdemux", "queue", "h264parse", "aacparse", "flvmux", "rtmp2sink"})
                media::require_element(e);
        }
    }
}

class Publisher::Runner {
public:
    Runner(Target target, std::shared_ptr<stream::Source> source, EventSink events)
        : target_(std::move(target)), source_(std::move(source)), events_(std::move(events)) {
        thread_ = std::thread(&Runner::loop, this);
    }

    ~Runner() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

    nlohmann::json stats() const {
        std::lock_guard lock(mutex_);
        return stats_locked();
    }

private:
    enum State { connecting, live, retrying };

    nlohmann::json stats_locked() const {
        nlohmann::json j{{"target", target_.label},
                         {"protocol", protocol_name(target_.protocol)},
                         {"state", state_text(state_)},
                         {"bitrate_kbps", kbps_},
                         {"bytes", bytes_total_ + sink_bytes_.load()},
                         {"drops", drops_},
                         {"attempts", attempts_},
                         {"connects", connects_}};
        if (target_.protocol == Protocol::srt) j["mode"] = target_.srt_mode;
        if (state_ == retrying) {
            j["reason"] = reason_;
            j["retry_in_s"] = retry_in_s_;
        }
        return j;
    }

    void set_state(State s, const std::string &reason = {}, unsigned retry_in = 0) {
        Event e;
        {
            std::lock_guard lock(mutex_);
            state_ = s;
            reason_ = reason;
            retry_in_s_ = retry_in;
            if (s == live) ++connects_;
            e.json = nlohmann::json{{"publish", stats_locked()}}.dump();
        }
        e.type = PP_EVENT_LOG;
        e.level = s == retrying ? PP_LOG_WARNING : PP_LOG_INFO;
        e.error = s == retrying ? PP_ERR_UNREACHABLE : PP_OK;
        e.message = "publish " + target_.label + ": " +
                    (s == retrying ? reason + "; retrying in " + std::to_string(retry_in) + " s" : state_text(s));
        if (events_) events_(e);
    }

    // Connect, publish until it fails, wait, again — until the Publisher goes. Each attempt
    // subscribes afresh (so the server's stream starts at a keyframe after PAT/PMT) before the
    // previous reader goes, so the media pipeline never sees zero readers.
    void loop() {
        std::unique_ptr<stream::Reader> previous;
        unsigned backoff = 1;
        for (;;) {
            set_state(connecting);
            auto reader = source_->subscribe([this] { wake(); });
            previous.reset();
            bool went_live = false;
            std::string why = attempt(*reader, went_live);
            if (why.empty()) return;  // stopping
            if (went_live && Clock::now() - live_at_ >= kStableLive) backoff = 1;
            set_state(retrying, why, backoff);
            if (!drain_for(*reader, std::chrono::seconds(backoff))) return;
            backoff = std::min(backoff * 2, kMaxBackoffS);
            previous = std::move(reader);
        }
    }

    void wake() {
        {
            std::lock_guard lock(mutex_);
            woken_ = true;
        }
        cv_.notify_all();
    }

    // Waits `delay`, reading and discarding so the ring never counts this target as far behind
    // and keeps the media pipeline busy for it. False when stopping.
    bool drain_for(stream::Reader &reader, std::chrono::seconds delay) {
        auto until = Clock::now() + delay;
        for (;;) {
            for (auto bytes = reader.read(kReadMax); !bytes.empty(); bytes = reader.read(kReadMax))
                reader.release(bytes.size());
            std::unique_lock lock(mutex_);
            if (stopping_) return false;
            if (Clock::now() >= until) return true;
            cv_.wait_until(lock, std::min(until, Clock::now() + std::chrono::milliseconds(200)),
                           [this] { return stopping_ || woken_; });
            woken_ = false;
        }
    }

    static GstBusSyncReply on_bus(GstBus *, GstMessage *msg, gpointer data) {
        auto *self = static_cast<Runner *>(data);
        std::string why;
        if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) why = reason_for(msg);
        else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS) why = "the stream ended";
        if (!why.empty()) {
            {
                std::lock_guard lock(self->mutex_);
                if (self->failure_.empty()) self->failure_ = why;
            }
            self->cv_.notify_all();
        }
        return GST_BUS_DROP;
    }

    // Counts what reaches the sink. Only media buffers count towards "live": rtmp2sink takes
    // flvmux's header buffers (FLV header, metadata, codec data) before the server has accepted
    // the stream, while it renders a media buffer only on an accepted connection — so a second
    // media buffer arriving means the first went out. (Seen: a server refusing a stream name
    // already in use showed as "live" for 0.1 s, which also reset the backoff to 1 s.)
    static GstPadProbeReturn on_sink_buffer(GstPad *, GstPadProbeInfo *info, gpointer data) {
        auto *self = static_cast<Runner *>(data);
        gsize size = 0;
        bool media = false;
        if (GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info)) {
            size = gst_buffer_get_size(b);
            media = !GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_HEADER);
        } else if (GstBufferList *l = GST_PAD_PROBE_INFO_BUFFER_LIST(info)) {
            size = gst_buffer_list_calculate_size(l);
            for (guint i = 0; i < gst_buffer_list_length(l); ++i)
                media = media || !GST_BUFFER_FLAG_IS_SET(gst_buffer_list_get(l, i), GST_BUFFER_FLAG_HEADER);
        }
        self->sink_bytes_.fetch_add(size, std::memory_order_relaxed);
        if (media) self->sink_media_buffers_.fetch_add(1, std::memory_order_relaxed);
        return GST_PAD_PROBE_OK;
    }

    void build(Attempt &a) {
        a.pipeline = media::sink_ref(gst_pipeline_new("pixelpass-publish"));
        GstBin *bin = GST_BIN(a.pipeline.get());
        ElementPtr src = media::make_element("appsrc", "src");
        media::CapsPtr caps(gst_caps_from_string("video/mpegts,systemstream=true,packetsize=188"));
        g_object_set(src.get(), "caps", caps.get(), "format", GST_FORMAT_BYTES, nullptr);
        media::set_property(src.get(), "max-bytes", std::to_string(2 * kQueueBytes));
        a.appsrc = src.get();
        ElementPtr sink;
        if (target_.protocol == Protocol::srt) {
            sink = media::make_element("srtsink", "sink");
            media::set_property(sink.get(), "uri", target_.url);
            media::set_property(sink.get(), "auto-reconnect", "false");  // our backoff, our state
            media::add_and_link(bin, {src.get(), sink.get()});
        } else {
            ElementPtr demux = media::make_element("tsdemux", "demux");
            ElementPtr mux = media::make_element("flvmux", "mux");
            media::set_property(mux.get(), "streamable", "true");
            sink = media::make_element("rtmp2sink", "sink");
            media::set_property(sink.get(), "location", target_.url);
            a.mux = mux.get();
            media::add_and_link(bin, {src.get(), demux.get()});
            media::add_and_link(bin, {mux.get(), sink.get()});
            g_signal_connect(demux.get(), "pad-added", G_CALLBACK(on_demux_pad), &a);
        }
        media::set_property(sink.get(), "sync", "false");
        media::set_property(sink.get(), "async", "false");
        GstPtr<GstPad> pad(gst_element_get_static_pad(sink.get(), "sink"));
        gst_pad_add_probe(pad.get(), GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                          on_sink_buffer, this, nullptr);
        GstPtr<GstBus> bus(gst_element_get_bus(a.pipeline.get()));
        gst_bus_set_sync_handler(bus.get(), on_bus, this, nullptr);
    }

    // One connection: returns why it ended, or "" when the Publisher is stopping.
    std::string attempt(stream::Reader &reader, bool &went_live) {
        {
            std::lock_guard lock(mutex_);
            ++attempts_;
            failure_.clear();
        }
        bytes_total_ += sink_bytes_.exchange(0);
        sink_media_buffers_ = 0;
        Attempt a;
        std::string why;
        try {
            build(a);
            if (gst_element_set_state(a.pipeline.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
                std::lock_guard lock(mutex_);
                why = failure_.empty() ? "the sink did not start" : failure_;
            } else {
                why = pump(reader, a, went_live);
            }
        } catch (const Error &e) {
            why = e.what();
        }
        if (a.pipeline) {
            gst_element_set_state(a.pipeline.get(), GST_STATE_NULL);
            GstPtr<GstBus> bus(gst_element_get_bus(a.pipeline.get()));
            gst_bus_set_sync_handler(bus.get(), nullptr, nullptr, nullptr);
        }
        // The reader goes with this attempt: count its last drops (pump counts once a second).
        uint64_t ring_drops = reader.stats().value("drops", uint64_t(0));
        std::lock_guard lock(mutex_);
        drops_ = drops_base_ + ring_drops;
        drops_base_ = drops_;
        kbps_ = 0;
        return stopping_ ? std::string() : why;
    }

    // Reader → appsrc until the sink fails or the Publisher stops.
    std::string pump(stream::Reader &reader, Attempt &a, bool &went_live) {
        auto window_start = Clock::now();
        uint64_t window_bytes = sink_bytes_.load();
        auto progressed = window_start;
        uint64_t progress_bytes = window_bytes;
        size_t chunk = target_.protocol == Protocol::srt ? kSrtChunk : kReadMax;
        for (;;) {
            // Past its bound the queue is the server's problem, not the encoder's: stop reading.
            bool room = gst_app_src_get_current_level_bytes(GST_APP_SRC(a.appsrc)) < kQueueBytes;
            bool pushed = false;
            if (room) {
                auto bytes = reader.read(kReadMax);
                for (size_t at = 0; at < bytes.size(); at += chunk) {
                    size_t n = std::min(chunk, bytes.size() - at);
                    GstBuffer *buf = gst_buffer_new_memdup(bytes.data() + at, n);
                    if (gst_app_src_push_buffer(GST_APP_SRC(a.appsrc), buf) != GST_FLOW_OK) break;
                }
                if (!bytes.empty()) reader.release(bytes.size());
                pushed = !bytes.empty();
                if (reader.at_end()) return "the media stream ended";
            }
            if (!went_live && sink_media_buffers_.load() >= 2) {
                went_live = true;  // the sink sent one media buffer and came back for the next
                live_at_ = Clock::now();
                set_state(live);
            }
            auto now = Clock::now();
            if (uint64_t b = sink_bytes_.load(); b != progress_bytes) {
                progress_bytes = b;
                progressed = now;
            } else if (went_live && !room && now - progressed > kStallTimeout) {
                return "the server stopped taking data";
            }
            if (now - window_start >= std::chrono::seconds(1)) {
                uint64_t b = sink_bytes_.load();
                double secs = std::chrono::duration<double>(now - window_start).count();
                uint64_t ring_drops = reader.stats().value("drops", uint64_t(0));
                std::lock_guard lock(mutex_);
                kbps_ = static_cast<unsigned>(static_cast<double>(b - window_bytes) * 8 / secs / 1000);
                drops_ = drops_base_ + ring_drops;
                window_start = now;
                window_bytes = b;
            }
            std::unique_lock lock(mutex_);
            if (stopping_) return {};
            if (!failure_.empty()) return failure_;
            if (pushed && room) continue;
            cv_.wait_for(lock, std::chrono::milliseconds(room ? 200 : 20),
                         [this] { return stopping_ || woken_ || !failure_.empty(); });
            woken_ = false;
        }
    }

    const Target target_;
    std::shared_ptr<stream::Source> source_;
    EventSink events_;
    std::thread thread_;

    mutable std::mutex mutex_;  // guards what follows, and the condition
    std::condition_variable cv_;
    bool stopping_ = false, woken_ = false;
    std::string failure_;  // the current attempt's first error, set from streaming threads
    State state_ = connecting;
    std::string reason_;
    unsigned retry_in_s_ = 0, kbps_ = 0;
    uint64_t drops_ = 0, drops_base_ = 0, attempts_ = 0, connects_ = 0;

    Clock::time_point live_at_;                                   // when this attempt went live
    std::atomic<uint64_t> sink_bytes_{0}, sink_media_buffers_{0};  // this attempt's, from the probe
    std::atomic<uint64_t> bytes_total_{0};                   // earlier attempts'
};

Publisher::Publisher(std::vector<Target> targets, std::shared_ptr<stream::Source> source, EventSink events) {
    require_plugins(targets);
    for (auto &t : targets) runners_.push_back(std::make_unique<Runner>(std::move(t), source, events));
}

Publisher::~Publisher() = default;

nlohmann::json Publisher::stats() const {
    nlohmann::json list = nlohmann::json::array();
    for (const auto &r : runners_) list.push_back(r->stats());
    return list;
}

} // namespace pp::publish
