#include "media/decoder.hpp"

#include <mutex>
#include <optional>

#include <gst/app/gstappsrc.h>
#include <gst/audio/audio.h>
#include <gst/video/video.h>

#include "common/error.hpp"
#include "media/gst.hpp"
#include "media/media.hpp"

namespace pp::media {

nlohmann::json DecodeReport::to_json() const {
    return {{"video_frames", video_frames}, {"audio_buffers", audio_buffers}, {"audio_samples", audio_samples},
            {"width", width},               {"height", height},               {"eos", eos},
            {"problems", problems},         {"first_frame_ms", first_frame_ms}};
}

struct TsDecoder::Impl {
    ElementPtr pipeline;
    ElementPtr appsrc;
    mutable std::mutex mutex;
    DecodeReport report;
    std::optional<std::chrono::steady_clock::time_point> first_feed;
    bool finished = false;

    static GstPadProbeReturn on_video(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
        auto *self = static_cast<Impl *>(data);
        double decoded_unix_ms = double(std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count()) /
                                 1000.0;
        GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
        if (!buffer) return GST_PAD_PROBE_OK;
        GstCaps *caps = gst_pad_get_current_caps(pad);
        GstVideoInfo vi;
        bool have_info = caps && gst_video_info_from_caps(&vi, caps);
        if (caps) gst_caps_unref(caps);
        std::lock_guard lock(self->mutex);
        auto &r = self->report;
        if (r.video_frames == 0 && self->first_feed)
            r.first_frame_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                                         *self->first_feed)
                                   .count();
        ++r.video_frames;
        if (!have_info) return GST_PAD_PROBE_OK;
        r.width = GST_VIDEO_INFO_WIDTH(&vi);
        r.height = GST_VIDEO_INFO_HEIGHT(&vi);
        if (r.luma.size() >= 1000 || !GST_VIDEO_INFO_IS_YUV(&vi)) return GST_PAD_PROBE_OK;
        GstVideoFrame frame;
        if (!gst_video_frame_map(&frame, &vi, buffer, GST_MAP_READ)) return GST_PAD_PROBE_OK;
        // Plane 0 of every YUV format the decoder emits is luma; sample a 4x4 grid.
        const auto *y = static_cast<const uint8_t *>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0));
        int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0);
        uint64_t sum = 0, n = 0, hash = 1469598103934665603ull;  // FNV-1a
        for (int row = 0; row < r.height; row += 4) {
            for (int col = 0; col < r.width; col += 4, ++n) {
                uint8_t v = y[row * stride + col];
                sum += v;
                hash = (hash ^ (v >> 3)) * 1099511628211ull;  // >> 3: ignore coding noise
            }
        }
        gst_video_frame_unmap(&frame);
        r.luma.push_back(n ? double(sum) / double(n) : 0.0);
        r.signature.push_back(hash);
        r.pts_ns.push_back(GST_BUFFER_PTS_IS_VALID(buffer) ? GST_BUFFER_PTS(buffer) : 0);
        r.decoded_unix_ms.push_back(decoded_unix_ms);
        return GST_PAD_PROBE_OK;
    }

    static GstPadProbeReturn on_audio(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
        auto *self = static_cast<Impl *>(data);
        GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
        if (!buffer) return GST_PAD_PROBE_OK;
        GstCaps *caps = gst_pad_get_current_caps(pad);
        GstAudioInfo ai;
        bool have_info = caps && gst_audio_info_from_caps(&ai, caps);
        if (caps) gst_caps_unref(caps);
        std::lock_guard lock(self->mutex);
        ++self->report.audio_buffers;
        if (have_info && GST_AUDIO_INFO_BPF(&ai) > 0)
            self->report.audio_samples += gst_buffer_get_size(buffer) / GST_AUDIO_INFO_BPF(&ai);
        return GST_PAD_PROBE_OK;
    }

    // tsdemux found a stream: attach a decoder branch for H.264 and AAC, a fakesink otherwise.
    static void on_pad_added(GstElement *, GstPad *pad, gpointer data) {
        auto *self = static_cast<Impl *>(data);
        CapsPtr caps(gst_pad_get_current_caps(pad));
        if (!caps) caps.reset(gst_pad_query_caps(pad, nullptr));
        std::string media = caps && gst_caps_get_size(caps.get()) > 0
                                ? gst_structure_get_name(gst_caps_get_structure(caps.get(), 0))
                                : "";
        try {
            GstBin *bin = GST_BIN(self->pipeline.get());
            std::vector<ElementPtr> chain;
            GstPadProbeCallback probe = nullptr;
            if (media == "video/x-h264") {
                chain.push_back(make_element("queue"));
                chain.push_back(make_element("h264parse"));
                chain.push_back(make_element("avdec_h264"));
                probe = on_video;
            } else if (media == "audio/mpeg") {
                chain.push_back(make_element("queue"));
                chain.push_back(make_element("aacparse"));
                chain.push_back(make_element("avdec_aac"));
                probe = on_audio;
            }
            ElementPtr sink = make_element("fakesink");
            set_property(sink.get(), "sync", "false");
            set_property(sink.get(), "async", "false");
            chain.push_back(std::move(sink));
            std::vector<GstElement *> raw;
            for (auto &e : chain) raw.push_back(e.get());
            for (GstElement *e : raw) gst_bin_add(bin, e);
            for (size_t i = 0; i + 1 < raw.size(); ++i)
                if (!gst_element_link(raw[i], raw[i + 1])) throw Error(PP_ERR_MEDIA, "decoder: link failed");
            if (probe) {
                GstPtr<GstPad> out(gst_element_get_static_pad(raw[raw.size() - 2], "src"));
                gst_pad_add_probe(out.get(), GST_PAD_PROBE_TYPE_BUFFER, probe, self, nullptr);
            }
            for (GstElement *e : raw) gst_element_sync_state_with_parent(e);
            GstPtr<GstPad> in(gst_element_get_static_pad(raw.front(), "sink"));
            if (gst_pad_link(pad, in.get()) != GST_PAD_LINK_OK) throw Error(PP_ERR_MEDIA, "decoder: demux link failed");
        } catch (const std::exception &e) {
            std::lock_guard lock(self->mutex);
            self->report.problems.push_back(std::string("decoder setup for ") + media + ": " + e.what());
        }
    }

    void drain_bus(GstBus *bus, GstClockTime timeout) {
        for (;;) {
            MessagePtr msg(gst_bus_timed_pop_filtered(
                bus, timeout, GstMessageType(GST_MESSAGE_ERROR | GST_MESSAGE_WARNING | GST_MESSAGE_EOS)));
            if (!msg) return;
            std::lock_guard lock(mutex);
            if (GST_MESSAGE_TYPE(msg.get()) == GST_MESSAGE_EOS) {
                report.eos = true;
                return;
            }
            report.problems.push_back(describe_message(msg.get()));
            if (GST_MESSAGE_TYPE(msg.get()) == GST_MESSAGE_ERROR) return;
        }
    }
};

TsDecoder::TsDecoder() : impl_(std::make_unique<Impl>()) {
    ensure_gst();
    for (const char *e : {"appsrc", "tsdemux", "h264parse", "avdec_h264", "aacparse", "avdec_aac", "fakesink"})
        require_element(e);
    impl_->pipeline = sink_ref(gst_pipeline_new("pixelpass-decoder"));
    impl_->appsrc = make_element("appsrc", "src");
    ElementPtr demux = make_element("tsdemux", "demux");
    CapsPtr caps(gst_caps_from_string("video/mpegts,systemstream=true,packetsize=188"));
    g_object_set(impl_->appsrc.get(), "caps", caps.get(), "format", GST_FORMAT_BYTES, nullptr);
    set_property(impl_->appsrc.get(), "max-bytes", "0");  // feed() never blocks
    set_property(impl_->appsrc.get(), "block", "false");
    add_and_link(GST_BIN(impl_->pipeline.get()), {impl_->appsrc.get(), demux.get()});
    g_signal_connect(demux.get(), "pad-added", G_CALLBACK(Impl::on_pad_added), impl_.get());
    if (gst_element_set_state(impl_->pipeline.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
        throw Error(PP_ERR_MEDIA, "decoder pipeline failed to start");
}

TsDecoder::~TsDecoder() {
    if (impl_ && impl_->pipeline) gst_element_set_state(impl_->pipeline.get(), GST_STATE_NULL);
}

void TsDecoder::feed(std::span<const uint8_t> bytes) {
    if (bytes.empty()) return;
    {
        std::lock_guard lock(impl_->mutex);
        if (!impl_->first_feed) impl_->first_feed = std::chrono::steady_clock::now();
    }
    GstBuffer *buffer = gst_buffer_new_memdup(bytes.data(), bytes.size());
    gst_app_src_push_buffer(GST_APP_SRC(impl_->appsrc.get()), buffer);  // takes the buffer
}

DecodeReport TsDecoder::finish(std::chrono::milliseconds timeout) {
    if (!impl_->finished) {
        impl_->finished = true;
        gst_app_src_end_of_stream(GST_APP_SRC(impl_->appsrc.get()));
        GstPtr<GstBus> bus(gst_element_get_bus(impl_->pipeline.get()));
        impl_->drain_bus(bus.get(), static_cast<GstClockTime>(timeout.count()) * GST_MSECOND);
        gst_element_set_state(impl_->pipeline.get(), GST_STATE_NULL);
    }
    return snapshot();
}

DecodeReport TsDecoder::snapshot() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->report;
}

} // namespace pp::media
