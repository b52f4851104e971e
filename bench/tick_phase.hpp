// Where the test source's ticks really sit on the stream's timeline, read from the stream itself.
// audiotestsrc puts its ticks one buffer early after the first (at k × 48000 − samplesperbuffer
// samples: k s − 10 ms for the test source's 10 ms blocks), and its samples start at the running
// time the source started (a few ms, more on a loaded machine): assuming ticks at whole seconds
// made every sound figure, and so the A/V offset, 8-10 ms too small. The AAC track's timestamps are
// capture times (the encoder's priming is taken out, tests/unit/media_test.cpp checks it), so a
// tick's decoded timestamp is when it was produced.
#pragma once

#include <gst/gst.h>

#include <cmath>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "fanout/ts.hpp"
#include "media/gst.hpp"

namespace bench {

// Collects the AAC track of a TS byte stream: each PES's ADTS payload with its PTS (90 kHz).
class AudioTrack {
public:
    // Any slicing of the byte stream (an HTTP body arrives in arbitrary pieces): a packet split
    // between two calls is put together first.
    void feed(std::span<const uint8_t> body) {
        namespace ts = pp::fanout::ts;
        std::lock_guard lock(mutex_);
        pending_.insert(pending_.end(), body.begin(), body.end());
        size_t at = 0;
        while (at < pending_.size() && pending_[at] != 0x47) ++at;  // sync byte
        for (; at + ts::kPacketSize <= pending_.size(); at += ts::kPacketSize) {
            if (pending_[at] != 0x47) {  // lost sync: find the next sync byte
                at -= ts::kPacketSize - 1;
                continue;
            }
            auto packet = std::span<const uint8_t>(pending_).subspan(at, ts::kPacketSize);
            tracker_.feed(packet);
            auto p = ts::parse_packet(packet);
            if (!p || !p->has_payload || tracker_.audio_pid() == 0 || p->pid != tracker_.audio_pid()) continue;
            auto payload = p->payload;
            if (p->payload_start) {
                if (payload.size() < 9 || 9 + size_t(payload[8]) > payload.size()) continue;
                auto pts = ts::pes_pts(payload);
                if (!pts || bytes_ > (16u << 20)) continue;
                pes_.push_back({*pts, {}});
                payload = payload.subspan(9 + size_t(payload[8]));
            }
            if (pes_.empty()) continue;
            pes_.back().adts.insert(pes_.back().adts.end(), payload.begin(), payload.end());
            bytes_ += payload.size();
        }
        pending_.erase(pending_.begin(), pending_.begin() + long(std::min(at, pending_.size())));
    }
    // Each tick's place past the whole second on the stream's timeline (ms, −500..500), except
    // ticks in the first 100 ms of what was read (the stream's first tick, audiotestsrc's sample 0,
    // is not early, and one read from the middle may be cut); empty if nothing decoded. Each PES
    // goes to the decoder with its PTS, so a decoded sample's time is its frame's timestamp: a
    // frame lost or dropped on the way moves nothing after it.
    std::vector<double> tick_phases_ms() const {
        std::vector<Pes> pes;
        {
            std::lock_guard lock(mutex_);
            pes = pes_;
        }
        std::vector<double> out;
        if (pes.empty()) return out;
        double start_ms = double(pes.front().pts) / 90.0;
        size_t quiet = 0;
        for (const auto &[pts_ms, samples] : decode(pes)) {
            for (size_t i = 0; i < samples.size(); ++i) {
                if (std::abs(int(samples[i])) > 3000) {
                    double t = pts_ms + double(i) / 48.0;
                    if (quiet > 48000 * 3 / 10 && t > start_ms + 100) {
                        double past = std::fmod(t, 1000.0);
                        out.push_back(past > 500 ? past - 1000 : past);
                    }
                    quiet = 0;
                } else {
                    ++quiet;
                }
            }
        }
        return out;
    }

private:
    struct Pes {
        uint64_t pts;  // 90 kHz
        std::vector<uint8_t> adts;
    };
    using Decoded = std::vector<std::pair<double, std::vector<int16_t>>>;  // (PTS ms, 48 kHz mono S16)

    // The PES payloads through FFmpeg's AAC decoder (what mpv uses), each with its PTS.
    static Decoded decode(const std::vector<Pes> &pes) {
        pp::media::ensure_gst();
        Decoded out;
        GError *err = nullptr;
        pp::media::ElementPtr pipeline = pp::media::sink_ref(gst_parse_launch(
            "appsrc name=in format=time caps=audio/mpeg,mpegversion=4,stream-format=adts ! aacparse ! avdec_aac ! "
            "audioconvert ! audioresample ! audio/x-raw,format=S16LE,channels=1,rate=48000 ! "
            "fakesink name=out sync=false signal-handoffs=true",
            &err));
        if (err) g_error_free(err);
        if (!pipeline) return out;
        pp::media::GstPtr<GstElement> sink(gst_bin_get_by_name(GST_BIN(pipeline.get()), "out"));
        pp::media::GstPtr<GstElement> in(gst_bin_get_by_name(GST_BIN(pipeline.get()), "in"));
        g_signal_connect(sink.get(), "handoff", G_CALLBACK(+[](GstElement *, GstBuffer *b, GstPad *, gpointer data) {
            GstMapInfo map;
            if (!GST_BUFFER_PTS_IS_VALID(b) || !gst_buffer_map(b, &map, GST_MAP_READ)) return;
            const auto *s = reinterpret_cast<const int16_t *>(map.data);
            static_cast<Decoded *>(data)->push_back({double(GST_BUFFER_PTS(b)) / 1e6, {s, s + map.size / 2}});
            gst_buffer_unmap(b, &map);
        }), &out);
        if (gst_element_set_state(pipeline.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) return {};
        for (const auto &p : pes) {
            GstBuffer *buffer = gst_buffer_new_memdup(p.adts.data(), p.adts.size());
            GST_BUFFER_PTS(buffer) = gst_util_uint64_scale(p.pts, GST_SECOND, 90000);
            GstFlowReturn flow;
            g_signal_emit_by_name(in.get(), "push-buffer", buffer, &flow);
            gst_buffer_unref(buffer);
        }
        GstFlowReturn flow;
        g_signal_emit_by_name(in.get(), "end-of-stream", &flow);
        pp::media::GstPtr<GstBus> bus(gst_element_get_bus(pipeline.get()));
        pp::media::MessagePtr msg(gst_bus_timed_pop_filtered(
            bus.get(), 60 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR)));
        gst_element_set_state(pipeline.get(), GST_STATE_NULL);
        if (!msg || GST_MESSAGE_TYPE(msg.get()) != GST_MESSAGE_EOS) return {};
        return out;
    }

    mutable std::mutex mutex_;
    pp::fanout::ts::ProgramTracker tracker_;
    std::vector<Pes> pes_;
    std::vector<uint8_t> pending_;
    size_t bytes_ = 0;
};

} // namespace bench
