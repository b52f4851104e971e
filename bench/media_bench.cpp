// media_bench: host CPU of the media pipeline at 720p30 and 1080p30 with x264, split into the
// encoder and everything else, plus the host-side latency (capture → TS handed to the fan-out).
//
// Method: the same test-source pipeline is run three ways for the same wall time, and the
// process CPU (getrusage) is compared:
//   convert  source → videorate → videoconvert/scale → fakesink       (no encoder)
//   encode   ... → x264enc → h264parse → fakesink                     (video only, no mux)
//   full     ... → mpegtsmux (+ AAC audio) → appsink → fan-out → one reader draining it
// encode − convert = the encoder; full − encode = audio + mux + fan-out. The test source itself
// (videotestsrc rendering SMPTE bars + a text overlay) is inside "convert"; a real capture's cost
// replaces it. Per-thread CPU of the full run is listed too.
//
// Usage: media-bench [--seconds N] [--heights 720,1080] [--encoder x264] [--no-audio]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "fanout/ts.hpp"
#include "media/media.hpp"
#include "media/pipeline.hpp"
#include "proc_cpu.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

class CountingSink final : public pp::fanout::Sink {
public:
    void on_data(std::vector<uint8_t> &&bytes) override { total += bytes.size(); }
    void on_end(pp_result, const std::string &message) override { std::cerr << "pipeline ended: " << message << "\n"; }
    std::atomic<uint64_t> total{0};
};

pp::media::PipelineSpec spec_for(unsigned height, const std::string &encoder, bool audio, pp::media::PipelineSpec::Until until) {
    pp::media::PipelineSpec spec;
    spec.encoder = pp::media::select_encoder(encoder);
    spec.fps = 30;
    spec.bitrate_kbps = 6000;
    spec.capture.fps = 30;
    spec.capture.max_height = height;
    spec.capture.audio = audio && until == pp::media::PipelineSpec::Until::mux;
    if (spec.capture.audio) spec.aac = "avenc_aac";
    spec.until = until;
    return spec;
}

struct Result {
    double cpu_percent = 0;  // of one core
    double mbit = 0;
    std::vector<double> latency_ms;
    std::map<std::string, double> threads;  // percent of one core
};

Result run_stage(unsigned height, const std::string &encoder, pp::media::PipelineSpec::Until until, double seconds) {
    pp::media::Pipeline pipeline(spec_for(height, encoder, false, until), pp::media::make_test_source(height), nullptr);
    CountingSink sink;
    pipeline.start(sink);
    std::this_thread::sleep_for(1500ms);  // warm-up: encoder init, first keyframe
    double cpu0 = bench::process_cpu_seconds();
    auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    Result r;
    r.cpu_percent = 100.0 * (bench::process_cpu_seconds() - cpu0) / wall;
    pipeline.stop();
    return r;
}

Result run_full(unsigned height, const std::string &encoder, bool audio, double seconds) {
    pp::HostConfig config;
    config.source = "test";
    config.max_height = height;
    config.fps = 30;
    config.bitrate_kbps = 6000;
    config.encoder = encoder;
    config.audio = audio;
    auto source = pp::media::make_source(config, nullptr);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> bytes{0};
    std::vector<double> latencies;
    std::mutex wake_mutex;
    std::condition_variable wake_cv;
    bool woken = false;
    auto reader = source->subscribe([&] {
        std::lock_guard lock(wake_mutex);
        woken = true;
        wake_cv.notify_all();
    });
    std::atomic<bool> measuring{false};
    std::thread drain([&] {
        pp::fanout::ts::ProgramTracker tracker;
        while (!stop) {
            auto span = reader->read(1 << 20);
            if (span.empty()) {
                std::unique_lock lock(wake_mutex);
                wake_cv.wait_for(lock, 50ms, [&] { return woken; });
                woken = false;
                continue;
            }
            auto now_ms = double(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch()).count()) / 1000.0;
            bytes += span.size();
            auto info = source->describe();
            for (size_t off = 0; off + 188 <= span.size(); off += 188) {
                auto pkt = span.subspan(off, 188);
                auto kind = tracker.feed(pkt);
                if (!measuring || !info.contains("pts_epoch_unix_ms")) continue;
                if (kind != pp::fanout::ts::Kind::video_start && kind != pp::fanout::ts::Kind::video_keyframe) continue;
                auto pts = pp::fanout::ts::pes_pts(pp::fanout::ts::parse_packet(pkt)->payload);
                if (pts) latencies.push_back(now_ms - (double(info["pts_epoch_unix_ms"].get<int64_t>()) + double(*pts) / 90.0));
            }
            reader->release(span.size());
        }
    });
    std::this_thread::sleep_for(1500ms);
    measuring = true;
    double cpu0 = bench::process_cpu_seconds();
    auto threads0 = bench::threads_cpu_by_name();
    uint64_t bytes0 = bytes;
    auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    Result r;
    r.cpu_percent = 100.0 * (bench::process_cpu_seconds() - cpu0) / wall;
    r.mbit = double(bytes - bytes0) * 8 / wall / 1e6;
    auto threads1 = bench::threads_cpu_by_name();
    for (auto &[name, cpu] : threads1) {
        double d = 100.0 * (cpu - threads0[name]) / wall;
        if (d >= 0.5) r.threads[name] = d;
    }
    stop = true;
    drain.join();
    r.latency_ms = std::move(latencies);
    reader.reset();
    return r;
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

} // namespace

int main(int argc, char **argv) {
    double seconds = 10;
    std::vector<unsigned> heights = {720, 1080};
    std::string encoder = "x264";
    bool audio = true;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc) seconds = std::stod(argv[++i]);
        else if (a == "--encoder" && i + 1 < argc) encoder = argv[++i];
        else if (a == "--no-audio") audio = false;
        else if (a == "--heights" && i + 1 < argc) {
            heights.clear();
            std::stringstream ss(argv[++i]);
            std::string h;
            while (std::getline(ss, h, ',')) heights.push_back(std::stoul(h));
        } else {
            std::cerr << "usage: media-bench [--seconds N] [--heights 720,1080] [--encoder x264] [--no-audio]\n";
            return 2;
        }
    }
    try {
        nlohmann::json report = nlohmann::json::array();
        std::printf("media-bench: %s, %.0f s per run, 30 fps, 6000 kbit/s, %u cores\n", encoder.c_str(), seconds,
                    std::thread::hardware_concurrency());
        for (unsigned h : heights) {
            using U = pp::media::PipelineSpec::Until;
            auto convert = run_stage(h, encoder, U::convert, seconds);
            auto encode = run_stage(h, encoder, U::encode, seconds);
            auto full = run_full(h, encoder, audio, seconds);
            double lat = median(full.latency_ms);
            std::printf("\n%up30: total %.1f%% of a core = encoder %.1f%% + source/convert/rate %.1f%% + "
                        "%smux/fan-out %.1f%%; stream %.2f Mbit/s; capture→TS median %.1f ms (of which the "
                        "live test source holds each frame one interval, 33 ms)\n",
                        h, full.cpu_percent, encode.cpu_percent - convert.cpu_percent, convert.cpu_percent,
                        audio ? "audio/" : "", full.cpu_percent - encode.cpu_percent, full.mbit, lat);
            std::printf("  threads (full run):");
            for (auto &[name, pct] : full.threads) std::printf(" %s=%.1f%%", name.c_str(), pct);
            std::printf("\n");
            report.push_back({{"height", h},
                              {"encoder", encoder},
                              {"total_percent", full.cpu_percent},
                              {"encoder_percent", encode.cpu_percent - convert.cpu_percent},
                              {"source_convert_percent", convert.cpu_percent},
                              {"mux_fanout_percent", full.cpu_percent - encode.cpu_percent},
                              {"mbit_per_s", full.mbit},
                              {"capture_to_ts_median_ms", lat},
                              {"threads_percent", full.threads}});
        }
        std::printf("\n%s\n", report.dump().c_str());
    } catch (const pp::Error &e) {
        std::fprintf(stderr, "media-bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
