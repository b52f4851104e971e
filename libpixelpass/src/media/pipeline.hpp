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
//
// Encoders that fail late fall back: an error from the encoder (at PLAYING or mid-stream) tears
// that graph down and builds it again with the next usable encoder of the catalogue, on the same
// clock and base time, into the same sink. Viewers stay connected, PTS continue, and the new
// encoder's first picture is a keyframe. The failed encoder is not tried again by this pipeline.
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
    struct Run;    // one start()..stop(): the sink, the clock, the current graph and the bus thread
    struct Graph;  // one GstPipeline with one encoder; a fallback replaces it within a run

    std::unique_ptr<Graph> build(Run &run, const EncoderSpec &encoder);
    void build_video(Graph &graph, const EncoderSpec &encoder);
    GstElement *build_encoder(Graph &graph, const EncoderSpec &encoder);
    void build_mux(Run &run, Graph &graph, GstElement *h264);
    std::unique_ptr<Graph> launch(Run &run, const EncoderSpec *encoder, uint64_t base_time);
    const EncoderSpec *next_encoder(const EncoderSpec &failed, std::string &skipped) const;
    void note_fallback(const EncoderSpec &failed, const EncoderSpec &next, const std::string &why,
                       const std::string &skipped);
    std::string fail_over(Run *run, const std::string &why);
    bool read_bus(Run *run, GstElement *pipeline);
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
    const EncoderSpec *encoder_ = nullptr;  // the encoder in use (or next start's); a fallback moves it on
    nlohmann::json fallbacks_ = nlohmann::json::array();  // {"from","to","reason"} per late failure
};

} // namespace pp::media
