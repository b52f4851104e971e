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

// Collects the AAC track of a TS byte stream as ADTS, with the first PES's PTS (90 kHz).
class AudioTrack {
public:
    void feed(std::span<const uint8_t> bytes) {
        namespace ts = pp::fanout::ts;
        std::lock_guard lock(mutex_);
        for (size_t at = 0; at + ts::kPacketSize <= bytes.size(); at += ts::kPacketSize) {
            auto packet = bytes.subspan(at, ts::kPacketSize);
            tracker_.feed(packet);
            auto p = ts::parse_packet(packet);
            if (!p || !p->has_payload || tracker_.audio_pid() == 0 || p->pid != tracker_.audio_pid()) continue;
            auto payload = p->payload;
            if (p->payload_start) {
                if (payload.size() < 9 || 9 + size_t(payload[8]) > payload.size()) continue;
                auto pts = ts::pes_pts(payload);
                if (!pts) continue;
                pes_.push_back({*pts, adts_.size()});
                payload = payload.subspan(9 + size_t(payload[8]));
                in_pes_ = true;
            }
            if (in_pes_ && adts_.size() < 16u << 20) adts_.insert(adts_.end(), payload.begin(), payload.end());
        }
    }
    // Each tick's place past the whole second on the stream's timeline (ms, −500..500), except the
    // stream's first (audiotestsrc's sample 0, not one buffer early); empty if nothing decoded.
    // A decoded sample's time is its AAC frame's (from the PES that carries the frame) plus its
    // place in the frame: the decoder gives 1024 samples per frame, in order, so a hole in what
    // was read moves nothing.
    std::vector<double> tick_phases_ms() const {
        std::vector<uint8_t> adts;
        std::vector<Pes> pes;
        {
            std::lock_guard lock(mutex_);
            adts = adts_;
            pes = pes_;
        }
        std::vector<double> out;
        auto frames = frame_times_ms(adts, pes);
        if (frames.empty()) return out;
        auto samples = decode(adts);
        size_t quiet = 0;  // a tick at the very start of what was read may be cut: not counted
        for (size_t i = 0; i < samples.size() && i / 1024 < frames.size(); ++i) {
            if (std::abs(int(samples[i])) > 3000) {
                if (quiet > 48000 * 3 / 10) {
                    double t = frames[i / 1024] + double(i % 1024) / 48.0;
                    double past = std::fmod(t, 1000.0);
                    if (i >= 4800) out.push_back(past > 500 ? past - 1000 : past);
                }
                quiet = 0;
            } else {
                ++quiet;
            }
        }
        return out;
    }

private:
    struct Pes {
        uint64_t pts;      // 90 kHz
        size_t adts_at;    // where its payload starts in adts_
    };
    // Each ADTS frame's time (ms on the TS timeline): its PES's PTS + 1024 samples per frame before
    // it in that PES.
    static std::vector<double> frame_times_ms(const std::vector<uint8_t> &adts, const std::vector<Pes> &pes) {
        std::vector<double> out;
        size_t at = 0, p = 0, in_pes = 0;
        while (at + 7 <= adts.size() && adts[at] == 0xFF && (adts[at + 1] & 0xF0) == 0xF0) {
            while (p + 1 < pes.size() && pes[p + 1].adts_at <= at) {
                ++p;
                in_pes = 0;
            }
            if (pes.empty()) break;
            out.push_back(double(pes[p].pts) / 90.0 + double(in_pes++) * 1024 / 48.0);
            size_t length = (size_t(adts[at + 3] & 0x03) << 11) | (size_t(adts[at + 4]) << 3) | (adts[at + 5] >> 5);
            if (length < 7) break;
            at += length;
        }
        return out;
    }

    // ADTS → 48 kHz mono S16 with FFmpeg's decoder (what mpv uses).
    static std::vector<int16_t> decode(const std::vector<uint8_t> &adts) {
        pp::media::ensure_gst();
        std::vector<int16_t> samples;
        GError *err = nullptr;
        pp::media::ElementPtr pipeline = pp::media::sink_ref(gst_parse_launch(
            "appsrc name=in caps=audio/mpeg,mpegversion=4,stream-format=adts ! aacparse ! avdec_aac ! audioconvert ! "
            "audioresample ! audio/x-raw,format=S16LE,channels=1,rate=48000 ! fakesink name=out signal-handoffs=true",
            &err));
        if (err) g_error_free(err);
        if (!pipeline) return samples;
        pp::media::GstPtr<GstElement> out(gst_bin_get_by_name(GST_BIN(pipeline.get()), "out"));
        pp::media::GstPtr<GstElement> in(gst_bin_get_by_name(GST_BIN(pipeline.get()), "in"));
        g_signal_connect(out.get(), "handoff", G_CALLBACK(+[](GstElement *, GstBuffer *b, GstPad *, gpointer data) {
            GstMapInfo map;
            if (!gst_buffer_map(b, &map, GST_MAP_READ)) return;
            auto *into = static_cast<std::vector<int16_t> *>(data);
            const auto *s = reinterpret_cast<const int16_t *>(map.data);
            into->insert(into->end(), s, s + map.size / 2);
            gst_buffer_unmap(b, &map);
        }), &samples);
        if (gst_element_set_state(pipeline.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) return {};
        GstBuffer *buffer = gst_buffer_new_memdup(adts.data(), adts.size());
        GstFlowReturn flow;
        g_signal_emit_by_name(in.get(), "push-buffer", buffer, &flow);
        gst_buffer_unref(buffer);
        g_signal_emit_by_name(in.get(), "end-of-stream", &flow);
        pp::media::GstPtr<GstBus> bus(gst_element_get_bus(pipeline.get()));
        pp::media::MessagePtr msg(gst_bus_timed_pop_filtered(
            bus.get(), 60 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR)));
        gst_element_set_state(pipeline.get(), GST_STATE_NULL);
        if (!msg || GST_MESSAGE_TYPE(msg.get()) != GST_MESSAGE_EOS) return {};
        return samples;
    }

    mutable std::mutex mutex_;
    pp::fanout::ts::ProgramTracker tracker_;
    std::vector<uint8_t> adts_;
    std::vector<Pes> pes_;
    bool in_pes_ = false;
};

} // namespace bench
