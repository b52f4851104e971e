// GraphTickRecorder: the speaker's ticks timed by PipeWire's own graph clock, with no reader in
// the way. A native PipeWire capture stream on the speaker's monitor (stream.capture.sink) gets,
// in each graph cycle, the samples the null sink consumed in that cycle, and pw_stream_get_time_n
// gives the cycle's start on CLOCK_MONOTONIC (the driver's timer, set before any client runs) and
// the delay from the device. A tick onset at sample i of a cycle's buffer was played at
// now − delay + i / rate: however late this process ran the callback, the time is the graph's.
// Monotonic → Unix time by an offset sampled at start (the smallest of several paired readings).
//
// This is the timing the A/V figures rest on; bench::TickRecorder (parec, its own sample clock)
// records the same ticks as a cross-check, so every run shows whether the two agree.
#pragma once

#include <pipewire/pipewire.h>
#include <spa/param/audio/format-utils.h>
#include <time.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace bench {

class GraphTickRecorder {
public:
    explicit GraphTickRecorder(const std::string &sink = "speaker") {
        pw_init(nullptr, nullptr);
        mono_to_unix_ms_ = mono_to_unix_offset_ms();
        loop_ = pw_thread_loop_new("pp-tick-graph", nullptr);
        if (!loop_) throw std::runtime_error("pw_thread_loop_new failed");
        // 256 samples a cycle: the same order as the players' own requests (mpv 20 ms, parec 5 ms),
        // so the recorder does not make the graph slower than the players would.
        pw_properties *props = pw_properties_new(PW_KEY_MEDIA_TYPE, "Audio", PW_KEY_MEDIA_CATEGORY, "Capture",
                                                 PW_KEY_MEDIA_ROLE, "Production", PW_KEY_STREAM_CAPTURE_SINK, "true",
                                                 PW_KEY_TARGET_OBJECT, sink.c_str(), PW_KEY_NODE_LATENCY, "256/48000",
                                                 nullptr);
        events_.version = PW_VERSION_STREAM_EVENTS;
        events_.process = &GraphTickRecorder::on_process;
        pw_thread_loop_lock(loop_);
        stream_ = pw_stream_new_simple(pw_thread_loop_get_loop(loop_), "pixelpass-bench-ticks", props, &events_, this);
        if (!stream_) {
            pw_thread_loop_unlock(loop_);
            pw_thread_loop_destroy(loop_);
            throw std::runtime_error("pw_stream_new_simple failed (is the rig's PipeWire running?)");
        }
        uint8_t buffer[1024];
        spa_pod_builder b = SPA_POD_BUILDER_INIT(buffer, sizeof buffer);
        spa_audio_info_raw info{};
        info.format = SPA_AUDIO_FORMAT_S16;
        info.rate = 48000;
        info.channels = 1;
        const spa_pod *params[1] = {spa_format_audio_raw_build(&b, SPA_PARAM_EnumFormat, &info)};
        int rc = pw_stream_connect(stream_, PW_DIRECTION_INPUT, PW_ID_ANY,
                                   pw_stream_flags(PW_STREAM_FLAG_AUTOCONNECT | PW_STREAM_FLAG_MAP_BUFFERS |
                                                   PW_STREAM_FLAG_RT_PROCESS),
                                   params, 1);
        pw_thread_loop_unlock(loop_);
        if (rc < 0 || pw_thread_loop_start(loop_) < 0) {
            stop();
            throw std::runtime_error("cannot connect a PipeWire capture stream to speaker's monitor");
        }
    }
    ~GraphTickRecorder() { stop(); }
    GraphTickRecorder(const GraphTickRecorder &) = delete;
    GraphTickRecorder &operator=(const GraphTickRecorder &) = delete;

    void stop() {
        if (!loop_) return;
        pw_thread_loop_stop(loop_);
        if (stream_) pw_stream_destroy(stream_);
        stream_ = nullptr;
        pw_thread_loop_destroy(loop_);
        loop_ = nullptr;
    }
    // Each tick's onset, Unix ms, on the graph clock.
    std::vector<double> onsets() const {
        std::lock_guard lock(mutex_);
        return onsets_;
    }
    // The graph's reported delay from the device (ms) over all cycles: the part of each figure that
    // comes from PipeWire's own account, for the report.
    std::vector<double> delays_ms() const {
        std::lock_guard lock(mutex_);
        return delays_;
    }
    size_t cycles() const {
        std::lock_guard lock(mutex_);
        return cycles_;
    }

private:
    static double mono_to_unix_offset_ms() {
        double best = 1e300, offset = 0;
        for (int i = 0; i < 20; ++i) {
            timespec m1{}, r{}, m2{};
            clock_gettime(CLOCK_MONOTONIC, &m1);
            clock_gettime(CLOCK_REALTIME, &r);
            clock_gettime(CLOCK_MONOTONIC, &m2);
            double a = double(m1.tv_sec) * 1e3 + double(m1.tv_nsec) / 1e6;
            double b = double(m2.tv_sec) * 1e3 + double(m2.tv_nsec) / 1e6;
            double real = double(r.tv_sec) * 1e3 + double(r.tv_nsec) / 1e6;
            if (b - a < best) {  // the pair least disturbed by a preemption
                best = b - a;
                offset = real - (a + b) / 2;
            }
        }
        return offset;
    }

    static void on_process(void *data) {
        auto *self = static_cast<GraphTickRecorder *>(data);
        pw_buffer *buf = pw_stream_dequeue_buffer(self->stream_);
        if (!buf) return;
        pw_time t{};
        pw_stream_get_time_n(self->stream_, &t, sizeof t);
        spa_data &d = buf->buffer->datas[0];
        if (d.data && d.chunk && t.rate.denom > 0) {
            uint32_t offset = std::min(d.chunk->offset, d.maxsize);
            uint32_t size = std::min(d.chunk->size, d.maxsize - offset);
            const auto *samples = reinterpret_cast<const int16_t *>(static_cast<const uint8_t *>(d.data) + offset);
            double delay_ms = double(t.delay) * 1000.0 * t.rate.num / t.rate.denom;
            double start_ms = self->mono_to_unix_ms_ + double(t.now) / 1e6 - delay_ms;
            self->scan(samples, size / 2, start_ms, delay_ms);
        }
        pw_stream_queue_buffer(self->stream_, buf);
    }

    void scan(const int16_t *samples, size_t n, double start_ms, double delay_ms) {
        std::lock_guard lock(mutex_);
        ++cycles_;
        if (delays_.size() < 100000) delays_.push_back(delay_ms);
        for (size_t i = 0; i < n; ++i) {
            // The same detector as TickRecorder: 0.3 of full scale after 0.3 s of quiet.
            if (std::abs(int(samples[i])) > 3000) {
                if (quiet_ > 48000 * 3 / 10) onsets_.push_back(start_ms + double(i) / 48.0);
                quiet_ = 0;
            } else {
                ++quiet_;
            }
        }
    }

    pw_thread_loop *loop_ = nullptr;
    pw_stream *stream_ = nullptr;
    pw_stream_events events_{};
    double mono_to_unix_ms_ = 0;
    mutable std::mutex mutex_;
    std::vector<double> onsets_, delays_;
    size_t quiet_ = 0, cycles_ = 0;
};

} // namespace bench
