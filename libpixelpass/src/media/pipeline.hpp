// media/pipeline: one GStreamer pipeline as a fan-out producer.
//
//   capture video → queue (leaky) → videorate → videoconvert → videoscale → raw caps
//                 → H.264 encoder → h264parse config-interval=-1 ┐
//   capture audio → queue (leaky) → audioconvert → audioresample → AAC → aacparse ┴→ mpegtsmux → appsink
//
// The appsink callback (mpegtsmux's streaming thread) copies each muxed buffer list once into a
// fan-out segment; from there every viewer shares it. A bus thread turns errors into events and
// ends the run. Each start() builds a fresh pipeline on a CLOCK_REALTIME clock, so a frame's
// capture Unix time is base time + PTS (mpegtsmux adds 3600 s to the PTS it writes).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "fanout/fanout.hpp"
#include "host/host.hpp"
#include "media/capture_source.hpp"
#include "media/encoder.hpp"
#include "media/gst.hpp"

typedef struct _GstAppSink GstAppSink;

namespace pp::media {

struct PipelineSpec {
    EncoderChoice encoder;
    std::string aac;             // AAC encoder element; empty = no audio
    unsigned fps = 30;
    unsigned bitrate_kbps = 6000;
    unsigned audio_bitrate = 128000;
    CaptureParams capture;
    // For benchmarks: end the pipeline in a fakesink after this stage instead of muxing.
    enum class Until { convert, encode, mux } until = Until::mux;
};

class Pipeline final : public fanout::Producer {
public:
    Pipeline(PipelineSpec spec, std::unique_ptr<CaptureSource> capture, EventSink events);
    ~Pipeline() override;

    void start(fanout::Sink &sink) override;
    void stop() override;
    void request_keyframe() override;
    bool set_bitrate(unsigned kbps, std::string &why_not) override;
    nlohmann::json describe() const override;
    // {"state": "PLAYING"|"NULL"|..., "encoder", "buffers", "bytes", "videorate": {...}}
    nlohmann::json stats() const override;

private:
    struct Run;  // one start()..stop(): the GStreamer objects and the bus thread

    void build(Run &run);
    void bus_loop(Run *run);
    static GstFlowReturn on_sample(GstAppSink *appsink, gpointer self);
    static GstPadProbeReturn on_raw_caps(GstPad *pad, GstPadProbeInfo *info, gpointer self);
    void emit(pp_event_type type, pp_log_level level, pp_result code, const std::string &message) const;

    const PipelineSpec spec_;
    std::unique_ptr<CaptureSource> capture_;
    EventSink events_;
    std::unique_ptr<Run> run_;

    mutable std::mutex mutex_;  // guards the fields below (read by describe/stats)
    int width_ = 0, height_ = 0;
    uint64_t base_time_unix_ns_ = 0;
    std::atomic<uint64_t> buffers_{0}, bytes_{0};
    std::atomic<unsigned> bitrate_kbps_{spec_.bitrate_kbps};  // what the encoder runs at now
};

} // namespace pp::media
