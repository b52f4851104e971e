// media_latency: glass-to-glass latency of the test source into the player the viewer launches,
// with pixelpass in between and without it (the baseline), with sound and without, plus the time
// to the first clean frame for a late joiner.
//
// Sound goes where users hear it: the benchmark starts a private PipeWire + WirePlumber +
// pipewire-pulse (tests/integration/audio_rig.sh) whose default sink is a null sink ("speaker",
// clocked in real time by PipeWire like a sound card), and the players pick their audio output
// themselves. mpv runs with exactly the command `pixelpass view` prints (player::command), plus
// only what the measurement needs: --no-config, --really-quiet, --vo=x11 on an Xvfb display the
// benchmark starts (--vo=null without Xvfb) and a reporting script.
//
// Picture: each frame carries its capture time (pipeline PTS epoch + PTS). The reporting script
// prints, after each displayed frame ("tick"), mpv's clock and the frame's time-pos; mpv's clock is
// mapped to Unix time by the smallest (arrival − mpv clock) over all lines. Latency = display −
// capture. Sound: the test source ticks at every whole second of stream time; a PipeWire capture
// stream on the speaker's monitor notes when each tick is played, on the graph's own clock
// (bench/graph_recorder.hpp: no reader's wake-up in the figure), and parec on its sample clock
// records the same ticks as a cross-check. Latency = heard − capture; A/V offset = sound −
// picture (positive: the sound comes late), with the range over the player sessions. Audio continuity: after the warm-up the ticks must be
// 1 s apart (a gap or an underrun moves them), and the stream's AAC timestamps must have no holes.
//   baseline   the same media::Pipeline (720p30, x264 ultrafast/zerolatency) written straight from
//              its appsink to the player over a plain HTTP socket on loopback: no QUIC, no fan-out
//   pixelpass  the host (pipeline → fan-out → QUIC/HTTP3) → viewer → its local HTTP socket → player
//   VLC        the command `pixelpass view --player vlc` launches, run as an unprivileged user (VLC
//              refuses root) with -I dummy; sound latency only (VLC has no per-frame hook)
// --before uses the mpv command as it was before issue 15 (no live-edge script, mpv's 100 ms
// PulseAudio buffer), for the before/after table in docs/BENCHMARKS.md.
//
// --stages: where the time goes inside the host pipeline (GStreamer's latency tracer, per element)
// and when each stream's packets leave it (TS arrival − capture time), with sound, no player.
//
// Late joiner: with a stream running for 5 s, a new viewer connects; the time from the start of
// its connect to its first decoded picture (in-process decoder = "first clean frame"), and to
// mpv's first displayed frame (mpv's own start-up included).
//
// --calibrate: the known-signal check alone (ticks played by a pulsesink against the graph clock,
// see recorder_delay_once), --rounds times.
// --drift: one pixelpass session with sound for --seconds; first vs last minute (see run_drift).
// --x11-sound: the X11 desktop source (the benchmark's Xvfb) with the desktop's sound, one
// pixelpass session into the printed mpv command (see run_x11_sound).
//
// Usage: media-latency [--seconds N] [--rounds N] [--json] [--before] [--no-vlc] [--sound-only] | --stages | --calibrate
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/executable.hpp"
#include "fanout/ts.hpp"
#include "host/host.hpp"
#include "media/decoder.hpp"
#include "media/gst.hpp"
#include "media/media.hpp"
#include "media/pipeline.hpp"
#include "player/player.hpp"
#include "viewer/viewer.hpp"
#if PP_BENCH_PIPEWIRE
#include "graph_recorder.hpp"
#endif
#include "sound_rig.hpp"
#include "tick_phase.hpp"
#include "url_reader.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using bench::now_unix_ms;

namespace {

const char *kLua = R"(
local last = nil
local function out(kind, pts)
  io.stdout:write(string.format("PPLAT %s %.6f %.6f\n", kind, mp.get_time(), pts or 0))
  io.stdout:flush()
end
mp.register_event("tick", function()
  local pts = mp.get_property_number("time-pos")  -- the TS PTS as written (3600 s + ...)
  if pts and pts ~= last then last = pts; out("F", pts) end
end)
-- clock lines carry the demuxer's queue (s): the player's share of the latency
mp.add_periodic_timer(0.02, function() out("C", mp.get_property_number("demuxer-cache-duration") or -1) end)
-- playback speed (the live-edge script's catch-up) and mpv's own A/V estimate, for the tail analysis
mp.observe_property("speed", "number", function(_, v) if v then out("S", v) end end)
mp.add_periodic_timer(0.1, function()
  local d = mp.get_property_number("avsync")
  if d then out("A", d) end
end)
-- the audio output's underruns (mpv warns "Audio device underrun detected."): gaps in the sound
mp.enable_messages("warn")
mp.register_event("log-message", function(e)
  if e.text and e.text:find("underrun") then out("U", 0) end
end)
mp.observe_property("current-ao", "string", function(_, ao)
  if ao then io.stdout:write("PPAO " .. ao .. "\n"); io.stdout:flush() end
end)
)";

std::string g_lua_path, g_display;
bool g_before = false;         // the mpv command from before issue 15
bool g_sound_only = false;     // skip the video-only rows (for comparing player settings)
// How the kernel schedules the audio path (issue 15: underruns came with stalls): the rig's
// PipeWire daemons and the player, read while a player with sound runs.
std::string g_pipewire_sched, g_player_sched;
double g_warmup_s = 4.0;       // left out of every figure: start-up and the player's catch-up

// The mpv command as `pixelpass view` prints it (or as it was, with --before).
std::vector<std::string> mpv_command(const std::string &url) {
    auto args = pp::player::command(pp::player::Kind::mpv, url);
    if (g_before)
        std::erase_if(args, [](const std::string &a) {
            return a.rfind("--script=", 0) == 0 || a.rfind("--pulse-buffer=", 0) == 0;
        });
    return args;
}

pid_t spawn(std::vector<std::string> args, int stdout_fd, int stderr_fd = -1) {
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(stdout_fd >= 0 ? stdout_fd : null, 1);
        dup2(stderr_fd >= 0 ? stderr_fd : null, 2);
        dup2(null, 0);
        std::vector<char *> argv;
        for (auto &a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execvp(argv[0], argv.data());
        _exit(127);
    }
    return pid;
}

void stop_child(pid_t &pid) {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    pid = -1;
}

// mpv on `url`, its script lines collected; display times mapped to Unix ms.
class Mpv {
public:
    explicit Mpv(const std::string &url) {
        auto args = mpv_command(url);
        args.insert(args.begin() + 1, {"--no-config", "--really-quiet", g_display.empty() ? "--vo=null" : "--vo=x11",
                                       "--script=" + g_lua_path});
        // PP_MPV_EXTRA: more mpv options, space-separated (to compare player settings).
        if (const char *extra = getenv("PP_MPV_EXTRA")) {
            std::istringstream words(extra);
            std::string w;
            while (words >> w) args.insert(args.end() - 1, w);  // after ours, before the URL
        }
        if (!g_display.empty()) setenv("DISPLAY", g_display.c_str(), 1);
        for (const auto &a : args) args_ += a + " ";
        int out[2];
        if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
        char log[] = "/tmp/pp-latency-mpv-XXXXXX";
        int log_fd = mkstemp(log);
        log_ = log;
        pid_ = spawn(args, out[1], log_fd);  // --really-quiet: only errors reach the log
        close(log_fd);
        close(out[1]);
        fd_ = out[0];
        reader_ = std::thread([this] { read_loop(); });
    }
    ~Mpv() {
        stop();
        unlink(log_.c_str());
    }
    const std::string &exit_reason() const { return exit_; }
    pid_t pid() const { return pid_; }
    std::string log_tail() const {
        std::ifstream in(log_);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::lock_guard lock(mutex_);
        text = args_ + "\n" + other_ + text;
        return text.substr(text.size() > 600 ? text.size() - 600 : 0);
    }

    void stop() {
        stop_child(pid_);
        if (reader_.joinable()) reader_.join();
        if (fd_ >= 0) close(fd_);
        fd_ = -1;
    }

    struct Frame {
        double display_unix_ms;
        double pts_s;
    };
    // After stop(): every displayed frame.
    std::vector<Frame> frames() const {
        std::lock_guard lock(mutex_);
        double offset = clock_offset_locked();
        std::vector<Frame> out;
        for (const auto &l : lines_)
            if (l.kind == 'F') out.push_back({l.mpv_s * 1000 + offset, l.pts});
        return out;
    }
    // The demuxer's queue (ms) sampled every 20 ms after the warm-up: data that has arrived but
    // waits for its turn.
    std::vector<double> queue_ms() const {
        std::lock_guard lock(mutex_);
        std::vector<double> out;
        double first = -1;
        for (const auto &l : lines_) {
            if (l.kind == 'F' && first < 0) first = l.arrival_ms;
            if (l.kind == 'C' && first >= 0 && l.arrival_ms - first >= g_warmup_s * 1000 && l.pts >= 0)
                out.push_back(l.pts * 1000);
        }
        return out;
    }
    // Audio underruns mpv reported after the warm-up (counted from its first frame).
    size_t underruns() const {
        std::lock_guard lock(mutex_);
        size_t n = 0;
        double first = -1;
        for (const auto &l : lines_) {
            if (l.kind == 'F' && first < 0) first = l.arrival_ms;
            if (l.kind == 'U' && first >= 0 && l.arrival_ms - first >= g_warmup_s * 1000) ++n;
        }
        return n;
    }
    // When mpv reported an audio underrun (Unix ms, after the clock mapping), warm-up included.
    std::vector<double> underrun_times_ms() const {
        std::lock_guard lock(mutex_);
        double offset = clock_offset_locked();
        std::vector<double> out;
        for (const auto &l : lines_)
            if (l.kind == 'U') out.push_back(l.mpv_s * 1000 + offset);
        return out;
    }
    // mpv's own A/V estimate (s, audio − video as mpv sees it) after the warm-up, in ms.
    std::vector<double> avsync_ms() const { return after_warmup('A', 1000); }
    // Unix ms spans (after the clock mapping) in which mpv played faster than 1x: the live-edge
    // script catching up on a backlog.
    std::vector<std::pair<double, double>> speedup_spans() const {
        std::lock_guard lock(mutex_);
        double offset = clock_offset_locked();
        std::vector<std::pair<double, double>> out;
        double since = -1;
        for (const auto &l : lines_) {
            if (l.kind != 'S') continue;
            double t = l.mpv_s * 1000 + offset;
            if (l.pts > 1.0 && since < 0) since = t;
            if (l.pts <= 1.0 && since >= 0) {
                out.push_back({since, t});
                since = -1;
            }
        }
        if (since >= 0) out.push_back({since, 1e300});
        return out;
    }
    std::optional<double> first_frame_unix_ms() const {
        auto f = frames();
        if (f.empty()) return std::nullopt;
        return f.front().display_unix_ms;
    }
    // False once mpv has exited (a bad option, no display): no use waiting for its frames.
    bool running() {
        if (pid_ <= 0) return false;
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            exit_ = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                      : "signal " + std::to_string(WTERMSIG(status));
        }
        return pid_ > 0;
    }
    bool has_frames() const {
        std::lock_guard lock(mutex_);
        for (const auto &l : lines_)
            if (l.kind == 'F') return true;
        return false;
    }
    std::string audio_output() const {
        std::lock_guard lock(mutex_);
        return ao_;
    }

private:
    struct Line {
        char kind;  // F frame shown, C clock (pts = demuxer queue), U audio underrun, S speed, A avsync
        double mpv_s, pts, arrival_ms;
    };
    // mpv's clock → Unix ms: the smallest (arrival − mpv clock) over all lines.
    double clock_offset_locked() const {
        double offset = 1e300;
        for (const auto &l : lines_) offset = std::min(offset, l.arrival_ms - l.mpv_s * 1000);
        return offset;
    }
    // The values of `kind` lines after the warm-up (counted from the first frame), times `scale`.
    std::vector<double> after_warmup(char kind, double scale) const {
        std::lock_guard lock(mutex_);
        std::vector<double> out;
        double first = -1;
        for (const auto &l : lines_) {
            if (l.kind == 'F' && first < 0) first = l.arrival_ms;
            if (l.kind == kind && first >= 0 && l.arrival_ms - first >= g_warmup_s * 1000) out.push_back(l.pts * scale);
        }
        return out;
    }
    void read_loop() {
        std::string buf;
        char chunk[4096];
        while (true) {
            ssize_t n = read(fd_, chunk, sizeof chunk);
            if (n <= 0) break;
            double now = now_unix_ms();
            buf.append(chunk, size_t(n));
            size_t nl;
            while ((nl = buf.find('\n')) != std::string::npos) {
                std::string line = buf.substr(0, nl);
                buf.erase(0, nl + 1);
                char kind;
                double t, pts;
                std::lock_guard lock(mutex_);
                if (std::sscanf(line.c_str(), "PPLAT %c %lf %lf", &kind, &t, &pts) == 3)
                    lines_.push_back({kind, t, pts, now});
                else if (line.rfind("PPAO ", 0) == 0)
                    ao_ = line.substr(5);
                else if (other_.size() < 2000)
                    other_ += line + "\n";  // mpv's own messages, for a failure report
            }
        }
    }
    pid_t pid_ = -1;
    int fd_ = -1;
    std::thread reader_;
    mutable std::mutex mutex_;
    std::vector<Line> lines_;
    std::string ao_, log_;
    std::string exit_, other_, args_;
};

// Latencies (ms) of frames displayed after the warm-up. mpv reports the TS PTS as written (with
// mpegtsmux's 3600 s), which `epoch_ms` already accounts for.
std::vector<double> glass_to_glass(const std::vector<Mpv::Frame> &frames, double epoch_ms) {
    std::vector<double> out;
    if (frames.empty()) return out;
    double start = frames.front().display_unix_ms;
    for (const auto &f : frames)
        if (f.display_unix_ms - start >= g_warmup_s * 1000)
            out.push_back(f.display_unix_ms - (epoch_ms + f.pts_s * 1000));
    return out;
}

struct Stats {
    double median = 0, p95 = 0, min = 0;
    size_t n = 0;
};
Stats summarize(std::vector<double> v) {
    Stats s;
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    s.n = v.size();
    s.median = v[v.size() / 2];
    s.p95 = v[std::min(v.size() - 1, size_t(double(v.size()) * 0.95))];
    s.min = v.front();
    return s;
}
nlohmann::json to_json(const Stats &s) { return {{"median", s.median}, {"p95", s.p95}, {"min", s.min}, {"n", s.n}}; }

void wait_for(const std::function<bool()> &cond, std::chrono::milliseconds timeout, const char *what) {
    auto deadline = Clock::now() + timeout;
    while (!cond()) {
        if (Clock::now() > deadline) throw std::runtime_error(std::string("timed out waiting for ") + what);
        std::this_thread::sleep_for(5ms);
    }
}

// When each stream's PES left the pipeline (arrival at the socket − capture time), and holes in
// the audio timestamps (AAC frames are 1024 samples = 1920 ticks of 90 kHz apart).
class TsTimer {
public:
    void feed(std::span<const uint8_t> bytes, double arrival_ms) {
        namespace ts = pp::fanout::ts;
        std::lock_guard lock(mutex_);
        for (size_t at = 0; at + ts::kPacketSize <= bytes.size(); at += ts::kPacketSize) {
            auto packet = bytes.subspan(at, ts::kPacketSize);
            tracker_.feed(packet);
            auto p = ts::parse_packet(packet);
            if (!p || !p->payload_start) continue;
            bool video = p->pid == tracker_.video_pid(), audio = p->pid == tracker_.audio_pid();
            if (!video && !audio) continue;
            auto pts = ts::pes_pts(p->payload);
            if (!pts) continue;
            (video ? video_ : audio_).push_back({arrival_ms, double(*pts) / 90.0});
        }
    }
    // Lateness (ms) of each stream's PES after the warm-up.
    std::vector<double> lateness(bool video, double epoch_ms) const {
        std::lock_guard lock(mutex_);
        const auto &v = video ? video_ : audio_;
        std::vector<double> out;
        for (const auto &e : v)
            if (!v.empty() && e.arrival_ms - v.front().arrival_ms >= g_warmup_s * 1000)
                out.push_back(e.arrival_ms - (epoch_ms + e.pts_ms));
        return out;
    }
    // Audio timestamp holes (> 1.5 AAC frames) anywhere, and the largest, in ms.
    std::pair<size_t, double> audio_holes() const {
        std::lock_guard lock(mutex_);
        size_t holes = 0;
        double worst = 0;
        for (size_t i = 1; i < audio_.size(); ++i) {
            double d = audio_[i].pts_ms - audio_[i - 1].pts_ms;
            if (d > 1.5 * 1024 / 48.0) {
                ++holes;
                worst = std::max(worst, d);
            }
        }
        return {holes, worst};
    }

private:
    struct Entry {
        double arrival_ms, pts_ms;
    };
    mutable std::mutex mutex_;
    pp::fanout::ts::ProgramTracker tracker_;
    std::vector<Entry> video_, audio_;
};

pp::media::PipelineSpec plain_spec(bool sound) {
    pp::media::PipelineSpec spec;
    spec.encoder = pp::media::select_encoder("x264");
    spec.fps = 30;
    spec.bitrate_kbps = 6000;
    spec.capture.fps = 30;
    spec.capture.audio = sound;
    if (sound) spec.aac = pp::media::select_aac().value_or("avenc_aac");
    return spec;
}

// The baseline server: one HTTP client gets the pipeline's TS straight from the appsink.
class PlainServer final : public pp::fanout::Sink {
public:
    explicit PlainServer(bool sound) {
        listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(listen_fd_, reinterpret_cast<sockaddr *>(&a), sizeof a);
        socklen_t len = sizeof a;
        getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&a), &len);
        port_ = ntohs(a.sin_port);
        listen(listen_fd_, 1);
        pipeline_ = std::make_unique<pp::media::Pipeline>(plain_spec(sound), pp::media::make_test_source(720), nullptr);
        accept_ = std::thread([this] { accept_loop(); });
    }
    ~PlainServer() override {
        shutdown(listen_fd_, SHUT_RDWR);
        if (accept_.joinable()) accept_.join();
        pipeline_->stop();
        if (client_ >= 0) close(client_);
        close(listen_fd_);
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/stream.ts"; }
    double epoch_ms() const {
        auto d = pipeline_->describe();
        return d.contains("pts_epoch_unix_ms") ? double(d["pts_epoch_unix_ms"].get<int64_t>()) : 0;
    }
    const TsTimer &timer() const { return timer_; }
    const bench::AudioTrack &audio() const { return audio_; }
    void on_data(std::vector<uint8_t> &&bytes) override {
        timer_.feed(bytes, now_unix_ms());
        audio_.feed(bytes);
        std::lock_guard lock(client_mutex_);
        size_t off = 0;
        while (off < bytes.size()) {
            ssize_t n = send(client_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return;
            off += size_t(n);
        }
    }
    void on_end(pp_result, const std::string &) override {}

private:
    // Every connection gets the stream from then on (a player may reconnect after probing); the
    // pipeline starts with the first, like the host's.
    void accept_loop() {
        while (true) {
            int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) return;
            char buf[4096];
            std::string head;
            while (head.find("\r\n\r\n") == std::string::npos) {
                ssize_t n = recv(fd, buf, sizeof buf, 0);
                if (n <= 0) break;
                head.append(buf, size_t(n));
            }
            std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n";
            send(fd, resp.data(), resp.size(), MSG_NOSIGNAL);
            {
                std::lock_guard lock(client_mutex_);
                if (client_ >= 0) close(client_);
                client_ = fd;
            }
            if (!started_.exchange(true)) pipeline_->start(*this);
        }
    }
    int listen_fd_ = -1, client_ = -1;
    uint16_t port_ = 0;
    std::unique_ptr<pp::media::Pipeline> pipeline_;
    TsTimer timer_;
    bench::AudioTrack audio_;
    std::thread accept_;
    std::atomic<bool> started_{false};
    std::mutex client_mutex_;
};

pp::HostConfig host_config(bool sound) {
    pp::HostConfig c;
    c.source = "test";
    c.bind_address = "127.0.0.1";
    c.encoder = "x264";
    c.fps = 30;
    c.bitrate_kbps = 6000;
    c.max_height = 720;
    c.audio = sound;
    c.no_stun = c.no_port_mapping = c.no_relay = true;
    c.max_viewers = 8;
    return c;
}

pp::ViewerConfig viewer_config(const pp::Host &host) {
    pp::ViewerConfig v;
    v.ticket_text = host.ticket_text();
    v.no_stun = v.no_relay = true;
    return v;
}

double host_epoch_ms(const pp::Host &host) {
    auto s = nlohmann::json::parse(host.stats_json());
    auto e = s["stream"].value("pts_epoch_unix_ms", nlohmann::json(nullptr));
    return e.is_number() ? e.get<double>() : 0;
}

// One player session's figures.
struct Run {
    std::vector<double> picture, sound;  // glass-to-glass, ms
    std::vector<double> queue;           // mpv's demuxer queue, ms
    double tick_error_ms = 0;            // worst tick interval's distance from 1 s
    size_t ticks = 0;
    size_t underruns = 0;                // mpv's audio underruns after the warm-up
    bool underruns_known = false;
    std::string audio_output;
    std::vector<double> avsync;          // mpv's own A/V estimate, ms
    std::vector<double> read_lateness;   // what the parec recorder's sample clock took out, ms per tick
    std::vector<double> recorder_diff;   // per tick: parec recorder − graph recorder, ms (the cross-check)
    std::vector<double> av_sessions;     // each player session's A/V offset (sound − picture medians), ms
    bool graph_clock = false;            // sound timed by PipeWire's graph clock (else parec's sample clock)
    std::vector<double> tick_phase;      // where the ticks sit past each whole second, read from the stream, ms
    std::vector<double> picture_steady;  // picture latencies outside the live-edge script's catch-ups
    double catchup_ms = 0;               // time spent playing faster than 1x after the warm-up
    size_t catchups = 0;
    std::vector<bench::HeardTick> heard; // this session's ticks (not merged by add)
    std::vector<double> av_ticks;        // per tick: sound − picture of the same moment, ms
    std::vector<double> av_ticks_steady; // the same, for ticks away from catch-ups and underruns
    std::vector<double> av_tick_sessions;  // each session's median of av_ticks
};

void add(Run &into, const Run &r) {
    into.picture.insert(into.picture.end(), r.picture.begin(), r.picture.end());
    into.sound.insert(into.sound.end(), r.sound.begin(), r.sound.end());
    into.queue.insert(into.queue.end(), r.queue.begin(), r.queue.end());
    into.tick_error_ms = std::max(into.tick_error_ms, r.tick_error_ms);
    into.ticks += r.ticks;
    into.underruns += r.underruns;
    into.underruns_known = into.underruns_known || r.underruns_known;
    if (!r.audio_output.empty()) into.audio_output = r.audio_output;
    into.avsync.insert(into.avsync.end(), r.avsync.begin(), r.avsync.end());
    into.read_lateness.insert(into.read_lateness.end(), r.read_lateness.begin(), r.read_lateness.end());
    into.recorder_diff.insert(into.recorder_diff.end(), r.recorder_diff.begin(), r.recorder_diff.end());
    into.av_sessions.insert(into.av_sessions.end(), r.av_sessions.begin(), r.av_sessions.end());
    into.graph_clock = into.graph_clock || r.graph_clock;
    into.tick_phase.insert(into.tick_phase.end(), r.tick_phase.begin(), r.tick_phase.end());
    into.picture_steady.insert(into.picture_steady.end(), r.picture_steady.begin(), r.picture_steady.end());
    into.catchup_ms += r.catchup_ms;
    into.catchups += r.catchups;
    into.av_ticks.insert(into.av_ticks.end(), r.av_ticks.begin(), r.av_ticks.end());
    into.av_ticks_steady.insert(into.av_ticks_steady.end(), r.av_ticks_steady.begin(), r.av_ticks_steady.end());
    into.av_tick_sessions.insert(into.av_tick_sessions.end(), r.av_tick_sessions.begin(), r.av_tick_sessions.end());
}

// The speaker's recorders, started before the player: PipeWire's graph clock (the figures) when it
// can connect, and parec on its sample clock (the cross-check, or the figures without the other).
#if !PP_BENCH_PIPEWIRE
namespace bench {
struct GraphTickRecorder {  // never constructed: built without libpipewire
    explicit GraphTickRecorder(const std::string &) {}
    std::vector<double> onsets() const { return {}; }
    void stop() {}
};
} // namespace bench
#endif
// The sink the players' sound is recorded from ("listener" in --x11-sound, where "speaker" is the
// desktop's sound the host captures).
std::string g_player_sink = "speaker";

struct Recorders {
    std::optional<bench::GraphTickRecorder> graph;
    bench::TickRecorder parec{g_player_sink};
    Recorders() {
#if PP_BENCH_PIPEWIRE
        try {
            graph.emplace(g_player_sink);
        } catch (const std::exception &e) {
            std::fprintf(stderr, "media-latency: no graph-clock recorder (%s): sound timed by parec alone\n", e.what());
        }
#else
        std::fprintf(stderr, "media-latency: built without libpipewire: sound timed by parec alone\n");
#endif
    }
};

// The sound figures of one session into `r`: tick latencies after the warm-up, continuity, and
// the two recorders' disagreement per tick.
void record_sound(Run &r, Recorders &rec, double epoch_ms, const bench::AudioTrack *stream) {
    if (stream) r.tick_phase = stream->tick_phases_ms();
    // Without the stream's own account (it could not be decoded) the ticks are taken at whole
    // seconds, as before session 6, and the report says so.
    double phase = r.tick_phase.empty() ? 0 : summarize(r.tick_phase).median;
    rec.parec.stop();
    if (rec.graph) rec.graph->stop();
    auto parec = rec.parec.onsets();
    auto late = rec.parec.read_lateness_ms();
    for (size_t i = 0; i < parec.size(); ++i)
        if (parec[i] - parec.front() >= g_warmup_s * 1000) r.read_lateness.push_back(late[i]);
    auto onsets = rec.graph ? rec.graph->onsets() : parec;
    r.graph_clock = rec.graph.has_value();
    r.heard = bench::heard_ticks(onsets, epoch_ms, g_warmup_s * 1000, phase);
    r.sound = bench::tick_latencies(onsets, epoch_ms, g_warmup_s * 1000, phase);
    r.tick_error_ms = bench::worst_tick_interval_error(onsets, g_warmup_s * 1000);
    r.ticks = r.sound.size();
    if (!rec.graph || onsets.empty()) return;
    for (double g : onsets) {
        if (g - onsets.front() < g_warmup_s * 1000) continue;
        auto near = std::min_element(parec.begin(), parec.end(),
                                     [g](double a, double b) { return std::abs(a - g) < std::abs(b - g); });
        if (near != parec.end() && std::abs(*near - g) < 300) r.recorder_diff.push_back(*near - g);
    }
}

// Splits the picture figures by the live-edge script's catch-ups (mpv faster than 1x, plus 1 s
// after each, while the last of the backlog plays): is the tail a backlog being played away (a
// stall upstream or in mpv), or steady lateness?
void split_by_catchup(Run &r, const Mpv &mpv, double epoch_ms) {
    auto frames = mpv.frames();
    if (frames.empty()) return;
    double start = frames.front().display_unix_ms + g_warmup_s * 1000;
    auto spans = mpv.speedup_spans();
    double end = frames.back().display_unix_ms;
    for (auto [from, to] : spans) {
        double a = std::max(from, start), b = std::min(to, end);
        if (b > a) {
            r.catchup_ms += b - a;
            ++r.catchups;
        }
    }
    for (const auto &f : frames) {
        if (f.display_unix_ms < start) continue;
        bool in_catchup = std::any_of(spans.begin(), spans.end(), [&](auto s) {
            return f.display_unix_ms >= s.first && f.display_unix_ms <= s.second + 1000;
        });
        if (!in_catchup) r.picture_steady.push_back(f.display_unix_ms - (epoch_ms + f.pts_s * 1000));
    }
}

// A/V per tick: each tick's sound latency against the picture latency of the frame captured at
// the same moment of stream time (nearest in capture time, within a frame period), so both sides
// of a pair went through the same stall or catch-up; the session medians' difference mixes
// moments. A tick is steady when the live-edge script was not catching up (nor in the second
// after) and mpv reported no underrun in the 2 s before: the sync when nothing disturbs it.
void av_per_tick(Run &r, const Mpv &mpv, double epoch_ms) {
    auto frames = mpv.frames();
    auto spans = mpv.speedup_spans();
    auto underruns = mpv.underrun_times_ms();
    for (const auto &t : r.heard) {
        double captured = t.heard_ms - t.latency_ms, nearest = 1e300, picture = 0;
        for (const auto &f : frames) {
            double c = epoch_ms + f.pts_s * 1000;
            if (std::abs(c - captured) < nearest) {
                nearest = std::abs(c - captured);
                picture = f.display_unix_ms - c;
            }
        }
        if (nearest > 34) continue;  // that frame was not shown
        double av = t.latency_ms - picture;
        r.av_ticks.push_back(av);
        bool catching_up = std::any_of(spans.begin(), spans.end(), [&](auto s) {
            return t.heard_ms >= s.first && t.heard_ms <= s.second + 1000;
        });
        bool after_underrun = std::any_of(underruns.begin(), underruns.end(),
                                          [&](double u) { return u <= t.heard_ms && t.heard_ms - u <= 2000; });
        if (!catching_up && !after_underrun) r.av_ticks_steady.push_back(av);
        if (const char *v = getenv("PP_BENCH_TICKS"); v && *v)  // each pair, for looking into a session
            std::fprintf(stderr, "media-latency: tick heard %.0f: sound %.0f ms, picture %.0f ms, A/V %+.0f ms%s%s\n",
                         t.heard_ms, t.latency_ms, picture, av, catching_up ? ", catching up" : "",
                         after_underrun ? ", after an underrun" : "");
    }
    if (!r.av_ticks.empty()) r.av_tick_sessions.push_back(summarize(r.av_ticks).median);
}

// mpv on `url` for warm-up + `seconds`, the speaker recorded when there is sound.
Run measure_mpv(const std::string &url, bool sound, double seconds, const std::function<double()> &epoch,
                const bench::AudioTrack *stream) {
    std::optional<Recorders> ticks;
    if (sound) ticks.emplace();
    Mpv mpv(url);
    wait_for([&] {
        if (!mpv.running() && !mpv.has_frames()) throw std::runtime_error("mpv exited before its first frame (" + mpv.exit_reason() + "): " + mpv.log_tail());
        return mpv.has_frames();
    }, 60s, "mpv's first frame");
    std::this_thread::sleep_for(std::chrono::duration<double>(g_warmup_s + seconds));
    if (sound) g_player_sched = bench::thread_priorities(mpv.pid());
    mpv.stop();
    Run r;
    double e = epoch();
    r.picture = glass_to_glass(mpv.frames(), e);
    r.queue = mpv.queue_ms();
    r.audio_output = mpv.audio_output();
    r.underruns = mpv.underruns();
    r.underruns_known = sound;
    r.avsync = mpv.avsync_ms();
    split_by_catchup(r, mpv, e);
    if (ticks) {
        record_sound(r, *ticks, e, stream);
        if (!r.sound.empty() && !r.picture.empty())
            r.av_sessions.push_back(summarize(r.sound).median - summarize(r.picture).median);
        av_per_tick(r, mpv, e);
    }
    return r;
}

// When the plain-socket stream's PES left the pipeline (TS at the socket − capture), with sound.
std::vector<double> g_video_out, g_audio_out;

// A second viewer of the host whose stream only feeds an AudioTrack: where the ticks sit on the
// timeline of the stream the player gets (the same pipeline; a viewer more on loopback).
struct StreamTap {
    bench::AudioTrack track;
    pp::Viewer viewer;
    bench::UrlReader reader;
    explicit StreamTap(const pp::Host &host)
        : viewer(viewer_config(host), {}),
          reader(viewer.url(), [this](std::span<const uint8_t> body) { track.feed(body); }) {}
};

Run run_baseline(bool sound, double seconds, std::pair<size_t, double> *holes) {
    PlainServer server(sound);
    Run r = measure_mpv(server.url(), sound, seconds, [&] { return server.epoch_ms(); }, &server.audio());
    if (sound) {
        auto v = server.timer().lateness(true, server.epoch_ms()), a = server.timer().lateness(false, server.epoch_ms());
        g_video_out.insert(g_video_out.end(), v.begin(), v.end());
        g_audio_out.insert(g_audio_out.end(), a.begin(), a.end());
    }
    if (holes) {
        auto h = server.timer().audio_holes();
        holes->first += h.first;
        holes->second = std::max(holes->second, h.second);
    }
    return r;
}

Run run_pixelpass(bool sound, double seconds) {
    pp::Host host(host_config(sound), {});
    host.start();
    pp::Viewer viewer(viewer_config(host), {});
    std::optional<StreamTap> tap;
    if (sound) tap.emplace(host);
    return measure_mpv(viewer.url(), sound, seconds, [&] { return host_epoch_ms(host); }, tap ? &tap->track : nullptr);
}

// VLC as `pixelpass view --player vlc` launches it, run as `user` (VLC refuses root), reaching the
// rig's pulse socket; its sound latency from the speaker's monitor.
// The viewer's local server serves only its own user, so the viewer runs as `user` too: the CLI
// (`pixelpass view - --player none`, the ticket on stdin), which prints the URL on its first line.
// It gets `home` and none of the rig's XDG directories (root's, closed to that user).
class CliViewer {
public:
    CliViewer(const std::string &user, const std::string &ticket, const std::string &home) {
        std::string log = home + "/view.log";
        int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        std::string home_env = "HOME=" + home;
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
        pid_ = fork();
        if (pid_ == 0) {
            dup2(in[0], 0);
            dup2(out[1], 1);
            if (log_fd >= 0) dup2(log_fd, 2);
            execlp("runuser", "runuser", "-u", user.c_str(), "--", "env", "-u", "XDG_RUNTIME_DIR", "-u",
                   "XDG_CONFIG_HOME", "-u", "XDG_STATE_HOME", "-u", "XDG_DATA_HOME", "-u", "DBUS_SESSION_BUS_ADDRESS",
                   home_env.c_str(), PP_CLI_PATH, "view", "-", "--player", "none", "--no-stun", "--no-relay", nullptr);
            _exit(127);
        }
        close(in[0]);
        close(out[1]);
        if (log_fd >= 0) close(log_fd);
        std::string line = ticket + "\n";
        (void)!write(in[1], line.data(), line.size());
        close(in[1]);
        out_ = out[0];
        pollfd p{out_, POLLIN, 0};
        std::string got;
        char c;
        auto deadline = Clock::now() + 60s;
        while (got.find('\n') == std::string::npos && Clock::now() < deadline)
            if (poll(&p, 1, 200) > 0) {
                if (read(out_, &c, 1) != 1) break;
                got += c;
            }
        url_ = got.substr(0, got.find('\n'));
        if (url_.rfind("http://127.0.0.1:", 0) != 0) {
            stop_child(pid_);
            close(out_);
            std::ifstream in(log);
            std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            throw std::runtime_error("pixelpass view as " + user + " printed no URL: " + text.substr(0, 300));
        }
    }
    ~CliViewer() {
        stop_child(pid_);
        close(out_);
    }
    const std::string &url() const { return url_; }

private:
    pid_t pid_ = -1;
    int out_ = -1;
    std::string url_;
};

Run run_vlc(const std::string &user, const bench::SoundRig &rig, double seconds) {
    pp::Host host(host_config(true), {});
    host.start();
    char home[] = "/tmp/pp-latency-vlc-XXXXXX";
    if (!mkdtemp(home)) throw std::runtime_error("mkdtemp");
    chmod(home, 0777);
    std::optional<CliViewer> viewer;
    try {
        viewer.emplace(user, host.ticket_text(), home);
    } catch (...) {
        std::filesystem::remove_all(home);
        throw;
    }
    auto args = pp::player::command(pp::player::Kind::vlc, viewer->url());
    // No interface; no picture either (only the sound is measured for VLC, and VLC's X11 output
    // fails for another user on the benchmark's Xvfb).
    args.insert(args.begin() + 1, {"-I", "dummy", "--vout=dummy"});
    // PP_VLC_EXTRA: more VLC options, space-separated (to compare player settings).
    if (const char *extra = getenv("PP_VLC_EXTRA")) {
        std::istringstream words(extra);
        std::string w;
        while (words >> w) args.insert(args.end() - 1, w);
    }
    std::vector<std::string> cmd = {"runuser", "-u", user, "--", "env", "-u", "XDG_RUNTIME_DIR", "-u",
                                    "DBUS_SESSION_BUS_ADDRESS", std::string("HOME=") + home,
                                    "PULSE_SERVER=" + rig.pulse_server_for_others(home)};
    cmd.insert(cmd.begin() + 5, {"-u", "DISPLAY"});  // no picture; and libpulse would ask X11 for a server
    cmd.insert(cmd.end(), args.begin(), args.end());
    Recorders ticks;
    StreamTap tap(host);
    std::string log = std::string(home) + "/vlc.log";
    int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    pid_t vlc = spawn(cmd, -1, log_fd);
    close(log_fd);
    // Started once the speaker hears the first tick (VLC has no per-frame report).
    try {
        wait_for([&] { return !ticks.parec.onsets().empty(); }, 60s, "VLC's first tick on the speaker");
    } catch (const std::exception &) {
        stop_child(vlc);
        std::ifstream in(log);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::filesystem::remove_all(home);
        auto pulse = text.find("vlcpulse");  // why the sound did not reach the rig, if it did not
        std::string why = pulse != std::string::npos ? text.substr(pulse, text.find('\n', pulse) - pulse) : "";
        throw std::runtime_error("VLC played nothing (" + why + "); its log ends: " +
                                 text.substr(text.size() > 300 ? text.size() - 300 : 0));
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(g_warmup_s + seconds));
    stop_child(vlc);
    std::filesystem::remove_all(home);
    Run r;
    record_sound(r, ticks, host_epoch_ms(host), &tap.track);
    r.audio_output = "vlc default (pulse)";
    return r;
}

// The unprivileged user VLC runs as (created like tests/integration/media_test.py does), or why not.
std::optional<std::string> vlc_user(std::string &why) {
    if (!pp::find_executable("vlc")) {
        why = "vlc is not installed (apt-get install vlc)";
        return std::nullopt;
    }
    if (geteuid() != 0) {
        why = "switching to an unprivileged user for VLC needs root";
        return std::nullopt;
    }
    const char *user = "pixelpass-test";
    if (!getpwnam(user) && std::system("useradd -r -M -s /usr/sbin/nologin pixelpass-test") != 0) {
        why = "could not create the user pixelpass-test";
        return std::nullopt;
    }
    return std::string(user);
}

// Reads a viewer URL and throws the bytes away (keeps a stream running), or feeds a decoder.
class UrlReader : public bench::UrlReader {
public:
    UrlReader(const std::string &url, pp::media::TsDecoder *decoder)
        : bench::UrlReader(url, [decoder](std::span<const uint8_t> body) {
              if (decoder) decoder->feed(body);
          }) {}
};

struct LateJoin {
    double decoder_ms = -1, mpv_ms = -1;
};

LateJoin run_late_joiner() {
    pp::Host host(host_config(true), {});
    host.start();
    pp::Viewer first(viewer_config(host), {});
    UrlReader keep_running(first.url(), nullptr);
    std::this_thread::sleep_for(5s);
    LateJoin r;
    {
        pp::media::TsDecoder decoder;
        auto t0 = Clock::now();
        pp::Viewer late(viewer_config(host), {});
        UrlReader reader(late.url(), &decoder);
        wait_for([&] { return decoder.snapshot().video_frames > 0; }, 30s, "the late joiner's first picture");
        r.decoder_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        auto s = decoder.snapshot();
        if (!s.problems.empty()) std::cerr << "late joiner decoder problems: " << s.problems.front() << "\n";
    }
    std::this_thread::sleep_for(700ms);  // mid-GOP again
    {
        double t0 = now_unix_ms();
        pp::Viewer late(viewer_config(host), {});
        Mpv mpv(late.url());
        wait_for([&] { return mpv.has_frames(); }, 30s, "mpv's first frame (late joiner)");
        std::this_thread::sleep_for(300ms);
        mpv.stop();
        if (auto f = mpv.first_frame_unix_ms()) r.mpv_ms = *f - t0;
    }
    return r;
}

// A private Xvfb display for mpv --vo=x11 (and VLC, another user: -ac): the same display
// whatever session the benchmark runs in. A random high display number, not -displayfd's first
// free one: X servers of other sessions on this machine (other mount namespaces) hold low numbers
// in the shared abstract socket namespace without a lock file we could see.
pid_t start_xvfb() {
    if (access("/usr/bin/Xvfb", X_OK) != 0) {
        // No Xvfb: the session's display if there is one (else mpv --vo=null).
        if (const char *d = getenv("DISPLAY"); d && *d) g_display = d;
        return -1;
    }
    srand(unsigned(getpid()) ^ unsigned(time(nullptr)));
    for (int attempt = 0; attempt < 10; ++attempt) {
        std::string display = ":" + std::to_string(200 + rand() % 700);
        pid_t pid = fork();
        if (pid == 0) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            execl("/usr/bin/Xvfb", "Xvfb", display.c_str(), "-screen", "0", "1920x1080x24", "-nolisten", "tcp",
                  "-ac", nullptr);
            _exit(127);
        }
        std::string socket_path = "/tmp/.X11-unix/X" + display.substr(1);
        auto deadline = Clock::now() + 10s;
        while (Clock::now() < deadline) {
            if (waitpid(pid, nullptr, WNOHANG) == pid) break;  // taken: try another number
            if (access(socket_path.c_str(), F_OK) == 0) {
                g_display = display;
                return pid;
            }
            std::this_thread::sleep_for(20ms);
        }
        kill(pid, SIGTERM);
        waitpid(pid, nullptr, 0);
    }
    return -1;
}

// ---- the recorder's own delay ----

// Measured with a known signal: a GStreamer pipeline on a CLOCK_REALTIME clock plays the test
// source's ticks into the speaker. GStreamer's audio sink places each sample by the device delay
// the sound server reports, so the sample of running time t is due at the speaker at base time +
// t + the pipeline's latency: tick k at base + k s + latency. Recorder delay = heard − due over the
// ticks after the first second; it is what the monitor (a PipeWire cycle) and parec add to every
// sound figure that the recorder's sample clock cannot see (TickRecorder: the shortest delivery).
// The sink keeps its first placement (slave-method=none: skew slaving jumps by its 40 ms tolerance
// when a loaded machine delays the sink's thread), and that placement varies from start to start,
// so the calibration restarts the sink `starts` times: the median of all ticks is the delay, the
// spread of the starts' medians its uncertainty (within one start the ticks are whole seconds of
// samples apart, so they vary only with the recorder's clock). Nothing when it cannot play.
bool recorder_delay_once(double seconds, std::vector<double> &delays, std::string &why) {
    pp::media::ensure_gst();
    GError *raw = nullptr;
    pp::media::ElementPtr pipeline = pp::media::sink_ref(gst_parse_launch(
        "audiotestsrc is-live=true wave=ticks freq=880 volume=0.3 samplesperbuffer=480 ! "
        "audio/x-raw,format=S16LE,rate=48000,channels=2 ! "
        "pulsesink buffer-time=40000 latency-time=10000 slave-method=none",
        &raw));
    if (!pipeline) {
        why = raw ? raw->message : "gst_parse_launch failed";
        if (raw) g_error_free(raw);
        return false;
    }
    if (raw) g_error_free(raw);
    pp::media::GstPtr<GstClock> clock(GST_CLOCK(gst_object_ref_sink(
        g_object_new(GST_TYPE_SYSTEM_CLOCK, "clock-type", GST_CLOCK_TYPE_REALTIME, "name", "pp-cal", nullptr))));
    gst_pipeline_use_clock(GST_PIPELINE(pipeline.get()), clock.get());
    Recorders ticks;
    gst_element_set_state(pipeline.get(), GST_STATE_PLAYING);
    GstState state = GST_STATE_NULL;
    if (gst_element_get_state(pipeline.get(), &state, nullptr, 10 * GST_SECOND) == GST_STATE_CHANGE_FAILURE ||
        state != GST_STATE_PLAYING) {
        gst_element_set_state(pipeline.get(), GST_STATE_NULL);
        why = "pulsesink did not reach PLAYING";
        return false;
    }
    gboolean live = FALSE;
    GstClockTime min_latency = 0, max_latency = 0;
    GstQuery *query = gst_query_new_latency();
    if (gst_element_query(pipeline.get(), query)) gst_query_parse_latency(query, &live, &min_latency, &max_latency);
    gst_query_unref(query);
    double due_zero_ms = double(gst_element_get_base_time(pipeline.get()) + min_latency) / 1e6;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    ticks.parec.stop();
    if (ticks.graph) ticks.graph->stop();
    gst_element_set_state(pipeline.get(), GST_STATE_NULL);
    size_t before = delays.size();
    for (double t : ticks.graph ? ticks.graph->onsets() : ticks.parec.onsets())
        if (t - due_zero_ms >= 1000) delays.push_back(std::fmod(t - due_zero_ms, 1000.0));
    if (delays.size() - before < 2) {
        why = "the recorder heard " + std::to_string(delays.size() - before) + " of the calibration ticks";
        return false;
    }
    return true;
}

struct RecorderDelay {
    double median = 0, low = 0, high = 0;  // over all ticks
    std::vector<double> ticks;             // every tick's heard − due
    std::vector<double> starts;            // each sink start's median
    double start_low() const { return *std::min_element(starts.begin(), starts.end()); }
    double start_high() const { return *std::max_element(starts.begin(), starts.end()); }
};

// `starts` more sink starts into `d` (the benchmark calibrates before and after the players, so
// the spread covers the whole run). False, with `why`, when the known signal could not be played.
bool calibrate_more(RecorderDelay &d, int starts, std::string &why) {
    for (int i = 0; i < starts; ++i) {
        size_t before = d.ticks.size();
        if (!recorder_delay_once(5, d.ticks, why)) return false;
        d.starts.push_back(summarize({d.ticks.begin() + long(before), d.ticks.end()}).median);
    }
    Stats all = summarize(d.ticks);
    d.median = all.median;
    d.low = all.min;
    d.high = *std::max_element(d.ticks.begin(), d.ticks.end());
    return true;
}

std::optional<RecorderDelay> recorder_delay_ms(int starts, std::string &why) {
    RecorderDelay d;
    if (!calibrate_more(d, starts, why)) return std::nullopt;
    return d;
}

// --calibrate: the recorder's delay alone, `rounds` times, in one rig (how repeatable it is).
int run_calibration(int rounds) {
    try {
        bench::SoundRig rig(std::string(PP_SOURCE_ROOT) + "/tests/integration/audio_rig.sh");
        for (int r = 0; r < rounds; ++r) {
            std::string why;
            auto d = recorder_delay_ms(3, why);
            if (!d) throw std::runtime_error(why);
            std::printf("recorder delay median %.1f ms (ticks %.1f–%.1f; sink starts' medians %.1f / %.1f / %.1f)\n",
                        d->median, d->low, d->high, d->starts[0], d->starts[1], d->starts[2]);
        }
        return 0;
    } catch (const std::exception &e) {
        std::cerr << "media-latency: " << e.what() << "\n";
        return 1;
    }
}

// The rig's daemons' scheduling, as a desktop gives it (PipeWire's module-rt: nice -11, its data
// threads SCHED_FIFO), next to the player's (Debian 12's client.conf loads no module-rt, so a
// native PipeWire client such as mpv's audio output runs SCHED_OTHER at the player's nice value,
// on a desktop too: 0 there, the benchmark's own here).
void note_rig_priorities(const bench::SoundRig &rig, nlohmann::json &report) {
    std::string out;
    for (const char *name : {"pipewire", "pipewire-pulse"}) {
        pid_t pid = bench::rig_process(rig.dir(), name);
        out += (out.empty() ? "" : "; ") + std::string(name) + " " + (pid > 0 ? bench::thread_priorities(pid) : "not found");
    }
    g_pipewire_sched = out;
    report["scheduling"] = {{"pipewire", g_pipewire_sched}};
}

void print_priorities(bool print, nlohmann::json &report) {
    report["scheduling"]["player"] = g_player_sched;
    if (print)
        std::printf("scheduling: %s; mpv (last session with sound) %s\n", g_pipewire_sched.c_str(),
                    g_player_sched.c_str());
}

// --drift: one pixelpass session with sound for `seconds` (a benchmark of its own, not the default
// run): the first minute's picture median against the last minute's (issue 15: within 20 ms, no
// drift between the capture clock and the player's audio clock).
int run_drift(double seconds) {
    bench::SoundRig rig(std::string(PP_SOURCE_ROOT) + "/tests/integration/audio_rig.sh");
    nlohmann::json sched;
    note_rig_priorities(rig, sched);
    Run r = run_pixelpass(true, seconds);
    size_t minute = 30 * 60;  // frames at 30 fps
    if (r.picture.size() < 2 * minute) throw std::runtime_error("fewer than two minutes of frames");
    Stats first = summarize({r.picture.begin(), r.picture.begin() + long(minute)});
    Stats last = summarize({r.picture.end() - long(minute), r.picture.end()});
    std::vector<double> s = r.sound;
    Stats sf = summarize({s.begin(), s.begin() + long(std::min<size_t>(60, s.size()))});
    Stats sl = summarize({s.end() - long(std::min<size_t>(60, s.size())), s.end()});
    std::printf("drift over %.0f s with sound (pixelpass, the printed mpv command): picture first minute median %.0f ms "
                "(p95 %.0f), last minute %.0f ms (p95 %.0f), change %+.0f ms; sound as recorded %.0f → %.0f ms; "
                "%zu underruns after the warm-up\n",
                seconds, first.median, first.p95, last.median, last.p95, last.median - first.median, sf.median,
                sl.median, r.underruns);
    // A/V (per tick) in the first and last minute: a skew between the capture clock and the
    // player's audio clock would move it.
    std::vector<double> av = r.av_ticks;
    Stats af = summarize({av.begin(), av.begin() + long(std::min<size_t>(60, av.size()))});
    Stats al = summarize({av.end() - long(std::min<size_t>(60, av.size())), av.end()});
    std::printf("A/V per tick first minute median %+.0f ms, last minute %+.0f ms; ", af.median, al.median);
    // Every minute's picture median: a start starved by the machine's load shows here, not as drift.
    std::vector<double> minutes;
    for (size_t at = 0; at + minute <= r.picture.size(); at += minute)
        minutes.push_back(summarize({r.picture.begin() + long(at), r.picture.begin() + long(at + minute)}).median);
    std::printf("picture median per minute:");
    for (double m : minutes) std::printf(" %.0f", m);
    std::printf(" ms; ");
    print_priorities(true, sched);
    nlohmann::json j = {{"first_minute", to_json(first)}, {"last_minute", to_json(last)},
                        {"change_ms", last.median - first.median}, {"underruns", r.underruns},
                        {"av_first_minute", to_json(af)}, {"av_last_minute", to_json(al)},
                        {"picture_median_per_minute_ms", minutes},
                        {"scheduling", sched["scheduling"]}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
}

// ---- --stages: GStreamer's latency tracer inside the host pipeline ----

struct ElementTimes {
    std::vector<std::pair<double, double>> samples;  // (tracer ts ms, latency ms)
};

std::map<std::string, ElementTimes> read_tracer_log(const std::string &path) {
    static const std::regex line(
        R"(element-latency, .*element=\(string\)([^,]+), src=\(string\)([^,]+), time=\(guint64\)(\d+), ts=\(guint64\)(\d+))");
    static const std::regex whole(
        R"(: latency, src-element-id=.*src-element=\(string\)([^,]+), src=.*sink-element=\(string\)([^,]+), sink=.*time=\(guint64\)(\d+), ts=\(guint64\)(\d+))");
    std::map<std::string, ElementTimes> out;
    std::ifstream in(path);
    std::string l;
    std::smatch m;
    while (std::getline(in, l))
        if (l.find("element-latency,") != std::string::npos && std::regex_search(l, m, line))
            out[m[1].str()].samples.push_back({std::stod(m[4].str()) / 1e6, std::stod(m[3].str()) / 1e6});
        else if (l.find(": latency,") != std::string::npos && std::regex_search(l, m, whole))
            out[m[1].str() + " → " + m[2].str() + " (source push → appsink)"].samples.push_back(
                {std::stod(m[4].str()) / 1e6, std::stod(m[3].str()) / 1e6});
    return out;
}

void print_stage(const char *what, std::vector<double> v, nlohmann::json &report, const std::string &key) {
    Stats s = summarize(std::move(v));
    std::printf("  %-46s median %7.1f ms   p95 %7.1f ms   (n=%zu)\n", what, s.median, s.p95, s.n);
    report[key] = to_json(s);
}

int run_stages(double seconds, const std::string &log_path) {
    nlohmann::json report;
    double epoch = 0;
    std::pair<size_t, double> holes;
    std::vector<double> video, audio;
    {
        PlainServer server(true);
        bench::UrlReader reader(server.url(), [](std::span<const uint8_t>) {});
        std::this_thread::sleep_for(std::chrono::duration<double>(g_warmup_s + seconds));
        epoch = server.epoch_ms();
        video = server.timer().lateness(true, epoch);
        audio = server.timer().lateness(false, epoch);
        holes = server.timer().audio_holes();
    }
    std::printf("media-latency --stages: the host pipeline with sound (test source, %s), %.0f s after a %.0f s warm-up\n",
                plain_spec(true).aac.c_str(), seconds, g_warmup_s);
    std::printf("per element (buffer in → out, GStreamer latency tracer):\n");
    auto elements = read_tracer_log(log_path);
    for (auto &[name, t] : elements) {
        if (t.samples.empty()) continue;
        std::vector<double> v;
        for (auto [ts, ms] : t.samples)
            if (ts - t.samples.front().first >= g_warmup_s * 1000) v.push_back(ms);
        print_stage(name.c_str(), v, report["elements"], name);
    }
    std::printf("leaving the pipeline (TS at the socket − capture time):\n");
    print_stage("video PES", video, report, "video_out");
    print_stage("audio PES", audio, report, "audio_out");
    std::printf("audio timestamp holes in the stream: %zu (largest %.1f ms)\n", holes.first, holes.second);
    report["audio_holes"] = holes.first;
    std::printf("%s\n", report.dump().c_str());
    return 0;
}

// ---- the main comparison ----

struct Row {
    std::string label;
    Run run;
    bool picture = true, sound = false;
};

// The sound figures are heard − capture on PipeWire's graph clock (Recorders). The A/V offset is
// the medians' difference over all sessions, with the range of the sessions' own offsets.
void print_row(const Row &r, bool print, nlohmann::json &report) {
    Stats p = summarize(r.run.picture), s = summarize(r.run.sound);
    char pic[64] = "          -", snd[64] = "          -", av[48] = "      -", cont[80] = "-";
    if (r.picture) std::snprintf(pic, sizeof pic, "%6.0f %6.0f %5zu", p.median, p.p95, p.n);
    if (r.sound) {
        std::snprintf(snd, sizeof snd, "%6.0f %6.0f %5zu", s.median, s.p95, s.n);
        int at = std::snprintf(cont, sizeof cont, "%zu ticks, worst %.0f ms off 1 s", r.run.ticks, r.run.tick_error_ms);
        if (r.run.underruns_known && at > 0 && size_t(at) < sizeof cont)
            std::snprintf(cont + at, sizeof cont - size_t(at), ", %zu underruns", r.run.underruns);
    }
    bool has_av = r.picture && r.sound && p.n && s.n;
    const auto &sessions = r.run.av_sessions;
    if (has_av && !sessions.empty())
        std::snprintf(av, sizeof av, "%+.0f (%+.0f..%+.0f)", s.median - p.median,
                      *std::min_element(sessions.begin(), sessions.end()),
                      *std::max_element(sessions.begin(), sessions.end()));
    else if (has_av)
        std::snprintf(av, sizeof av, "%+.0f", s.median - p.median);
    Stats q = summarize(r.run.queue);
    char queue[32] = "    -";
    if (q.n) std::snprintf(queue, sizeof queue, "%5.0f", q.median);
    if (print) std::printf("%-28s %-20s  %-20s  %-17s  %-6s  %s\n", r.label.c_str(), pic, snd, av, queue, cont);
    nlohmann::json j = {{"audio_output", r.run.audio_output}};
    if (q.n) j["mpv_queue_ms"] = to_json(q);
    if (r.picture) {
        j["picture"] = to_json(p);
        j["picture_outside_catchups"] = to_json(summarize(r.run.picture_steady));
        j["catchups"] = {{"count", r.run.catchups}, {"total_ms", r.run.catchup_ms}};
    }
    if (r.sound) {
        j["sound"] = to_json(s);
        j["sound_clock"] = r.run.graph_clock ? "pipewire graph" : "parec sample clock";
        j["tick_interval_worst_error_ms"] = r.run.tick_error_ms;
        j["parec_read_lateness_ms"] = to_json(summarize(r.run.read_lateness));
        j["parec_minus_graph_ms"] = to_json(summarize(r.run.recorder_diff));
        j["tick_phase_ms"] = to_json(summarize(r.run.tick_phase));
        if (r.run.underruns_known) j["underruns"] = r.run.underruns;
        if (has_av) j["av_offset_ms"] = s.median - p.median;
        if (!sessions.empty()) j["av_offset_sessions_ms"] = sessions;
        if (!r.run.avsync.empty()) j["mpv_avsync_ms"] = to_json(summarize(r.run.avsync));
        if (!r.run.av_ticks.empty()) {
            j["av_per_tick_ms"] = to_json(summarize(r.run.av_ticks));
            j["av_per_tick_steady_ms"] = to_json(summarize(r.run.av_ticks_steady));
            j["av_per_tick_sessions_ms"] = r.run.av_tick_sessions;
        }
    }
    report["rows"][r.label] = j;
}

// Where each row's picture tail comes from: the frames outside the live-edge script's catch-ups
// (and 1 s after each) against all, mpv's own A/V estimate, and how late the recorder's reads were
// (what its sample clock took out of the sound figures).
void print_tail(const Row &r) {
    if (r.run.picture.empty() && r.run.sound.empty()) return;
    std::printf("  %-26s", r.label.c_str());
    if (!r.run.picture.empty()) {
        Stats all = summarize(r.run.picture), steady = summarize(r.run.picture_steady);
        std::printf(" picture p95 %.0f ms; outside catch-ups median %.0f / p95 %.0f ms (n=%zu); %zu catch-ups, %.1f s "
                    "at > 1x;",
                    all.p95, steady.median, steady.p95, steady.n, r.run.catchups, r.run.catchup_ms / 1000);
    }
    if (!r.run.avsync.empty()) std::printf(" mpv's A/V estimate median %+.0f ms;", summarize(r.run.avsync).median);
    if (!r.run.av_ticks.empty()) {
        const auto &v = r.run.av_tick_sessions;
        Stats all = summarize(r.run.av_ticks), steady = summarize(r.run.av_ticks_steady);
        std::printf(" A/V per tick (sound − the picture of the same moment) median %+.0f ms, sessions %+.0f..%+.0f, "
                    "steady ticks (no catch-up, no underrun in 2 s) %+.0f ms (n=%zu of %zu);",
                    all.median, *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()),
                    steady.median, steady.n, all.n);
    }
    if (r.sound && r.run.tick_phase.empty())
        std::printf(" ticks taken at whole seconds (the stream's audio was not decoded);");
    else if (r.sound)
        std::printf(" ticks sit %+.1f ms from the whole second (read from the stream);",
                    summarize(r.run.tick_phase).median);
    if (!r.run.recorder_diff.empty()) {
        Stats d = summarize(r.run.recorder_diff), l = summarize(r.run.read_lateness);
        std::printf(" parec − graph clock median %+.1f ms (p95 %+.1f; parec's reads were late by median %.0f / p95 %.0f "
                    "ms, taken out by its sample clock)",
                    d.median, d.p95, l.median, l.p95);
    }
    std::printf("\n");
}

// Issue 15's Done-when from this run: the printed mpv command through pixelpass with sound,
// picture median ≤ 150 ms and p95 ≤ 200 ms, and every session's A/V (per tick) within ±40 ms.
void print_done_when(const Row &sound, bool print, nlohmann::json &report) {
    Stats p = summarize(sound.run.picture);
    const auto &av = sound.run.av_tick_sessions;
    bool median_ok = p.n && p.median <= 150, p95_ok = p.n && p.p95 <= 200;
    bool av_ok = !av.empty() && std::all_of(av.begin(), av.end(), [](double v) { return std::abs(v) <= 40; });
    report["done_when"] = {{"median_le_150", median_ok}, {"p95_le_200", p95_ok}, {"av_every_session_within_40", av_ok}};
    if (!print) return;
    std::string sessions;
    for (double v : av) sessions += (sessions.empty() ? "" : ", ") + std::to_string(int(std::lround(v)));
    std::printf("Done-when (%s): picture median %.0f ms ≤ 150: %s; p95 %.0f ms ≤ 200: %s; A/V per session (%s ms) "
                "within ±40: %s\n",
                sound.label.c_str(), p.median, median_ok ? "yes" : "NO", p.p95, p95_ok ? "yes" : "NO",
                sessions.c_str(), av_ok ? "yes" : "NO");
}

std::vector<Row> measure_players(double seconds, int rounds, std::pair<size_t, double> &holes, nlohmann::json &report) {
    std::vector<Row> rows = {{"video only, plain socket", {}}, {"video only, pixelpass", {}},
                             {"with sound, plain socket", {}, true, true}, {"with sound, pixelpass", {}, true, true}};
    for (bool sound : {false, true}) {
        if (!sound && g_sound_only) continue;
        // Interleaved rounds, so load on the machine hits both alike.
        for (int r = 0; r < rounds; ++r) {
            std::fprintf(stderr, "media-latency: %s round %d\n", sound ? "with sound" : "video only", r + 1);
            // On a loaded machine mpv occasionally never shows a frame; such a round is reported
            // and left out (for both sides, to keep the comparison paired).
            try {
                Run b = run_baseline(sound, seconds, sound ? &holes : nullptr);
                Run o = run_pixelpass(sound, seconds);
                add(rows[sound ? 2 : 0].run, b);
                add(rows[sound ? 3 : 1].run, o);
            } catch (const std::exception &e) {
                std::fprintf(stderr, "media-latency: round skipped: %s\n", e.what());
                report["skipped_rounds"] = report.value("skipped_rounds", 0) + 1;
            }
        }
    }
    return rows;
}

void measure_vlc(std::vector<Row> &rows, const bench::SoundRig &rig, double seconds, int rounds, nlohmann::json &report) {
    std::string why;
    auto user = vlc_user(why);
    if (!user) {
        std::fprintf(stderr, "media-latency: VLC not measured: %s\n", why.c_str());
        report["vlc"] = why;
        return;
    }
    Row row{"with sound, pixelpass, VLC", {}, false, true};
    for (int r = 0; r < rounds; ++r) {
        std::fprintf(stderr, "media-latency: VLC round %d\n", r + 1);
        try {
            add(row.run, run_vlc(*user, rig, seconds));
        } catch (const std::exception &e) {
            std::fprintf(stderr, "media-latency: VLC round skipped: %s\n", e.what());
        }
    }
    rows.push_back(row);
}

void late_joiner(int rounds, bool json_only, nlohmann::json &report) {
    std::vector<double> dec, mpv;
    for (int r = 0; r < std::max(rounds, 2); ++r) {
        auto l = run_late_joiner();
        dec.push_back(l.decoder_ms);
        if (l.mpv_ms >= 0) mpv.push_back(l.mpv_ms);
    }
    Stats sd = summarize(dec), sm = summarize(mpv);
    report["late_joiner"] = {{"first_clean_frame_ms", dec}, {"mpv_first_frame_ms", mpv}};
    if (!json_only)
        std::printf("late joiner (5 s in): first clean frame median %.0f ms after connect (decoder); "
                    "mpv first frame median %.0f ms (mpv start-up included)\n",
                    sd.median, sm.median);
}

int run_comparison(double seconds, int rounds, bool json_only, bool vlc) {
    nlohmann::json report;
    bench::SoundRig rig(std::string(PP_SOURCE_ROOT) + "/tests/integration/audio_rig.sh");
    report["display"] = g_display.empty() ? "mpv --vo=null" : "mpv --vo=x11 on " + g_display;
    report["mpv_command"] = mpv_command("URL");
    std::pair<size_t, double> holes;
    note_rig_priorities(rig, report);
    // The recorder against a known signal before and after the players: 2 + 2 sink starts.
    std::string why;
    std::optional<RecorderDelay> recorder;
    if (RecorderDelay d; calibrate_more(d, 2, why)) recorder = d;
    auto rows = measure_players(seconds, rounds, holes, report);
    if (vlc) measure_vlc(rows, rig, seconds, rounds, report);
    if (recorder && !calibrate_more(*recorder, 2, why)) recorder.reset();
    if (recorder)
        report["recorder_delay_ms"] = {{"median", recorder->median}, {"low", recorder->low}, {"high", recorder->high},
                                       {"sink_starts", recorder->starts}};
    else
        report["recorder_delay_ms"] = nullptr;
    if (!json_only) {
        std::string cmd;
        for (const auto &a : mpv_command("URL")) cmd += (cmd.empty() ? "" : " ") + a;
        std::printf("glass-to-glass, 720p30 x264 test source, %s; sound to a PipeWire null sink; %.0f s warm-up "
                    "left out\nmpv command%s: %s (audio output: %s)\n",
                    report["display"].get<std::string>().c_str(), g_warmup_s, g_before ? " (before issue 15)" : "",
                    cmd.c_str(), rows[3].run.audio_output.c_str());
        std::printf("%-28s %-20s  %-20s  %-17s  %-6s  %s\n", "", "picture ms: med  p95     n", "sound ms: med  p95     n",
                    "A/V ms (range)", "queue", "sound continuity");
    }
    if (!json_only) {
        std::printf("sound timed where PipeWire plays it (the graph clock of a capture stream on the null sink's "
                    "monitor); A/V = sound − picture, in brackets the range over the player sessions\n");
        if (recorder) {
            std::string starts;
            for (double v : recorder->starts) starts += (starts.empty() ? "" : " / ") + std::to_string(int(std::lround(v)));
            std::printf("known-signal check (ticks played by a GStreamer pulsesink on the realtime clock, heard − due): "
                        "median %.0f ms, sink starts before and after the players %s ms (pulsesink's own placement "
                        "varies per start; not taken out of anything)\n",
                        recorder->median, starts.c_str());
        } else {
            std::printf("known-signal check not run (%s)\n", why.c_str());
        }
    }
    for (const auto &r : rows) print_row(r, !json_only, report);
    if (!json_only)
        for (const auto &r : rows) print_tail(r);
    print_done_when(rows[3], !json_only, report);
    print_priorities(!json_only, report);
    report["stream_audio_holes"] = {{"count", holes.first}, {"largest_ms", holes.second}};
    Stats vo = summarize(g_video_out), ao = summarize(g_audio_out);
    report["leaving_pipeline_ms"] = {{"video", to_json(vo)}, {"audio", to_json(ao)}};
    if (!json_only)
        std::printf("with sound, plain socket: PES leave the pipeline (TS at the socket − capture) video median %.0f "
                    "ms (p95 %.0f), audio median %.0f ms (p95 %.0f)\n",
                    vo.median, vo.p95, ao.median, ao.p95);
    if (!json_only)
        std::printf("audio timestamp holes in the plain-socket stream: %zu (largest %.1f ms)\n", holes.first,
                    holes.second);
    late_joiner(rounds, json_only, report);
    std::printf("%s\n", report.dump().c_str());
    return 0;
}

// ---- --x11-sound: the X11 desktop source with sound ----

// A real desktop share with sound: the host captures the benchmark's Xvfb (where mpv's own window
// moves) and what the machine plays: the default sink's monitor ("speaker"). A GStreamer tick
// player plays the test ticks there (the desktop's sound); so that the player's sound is not
// captured again, mpv's stream, started with the printed command, is moved to a second null sink
// "listener" once it appears (pactl move-sink-input), and the recorders listen there. The ticks'
// capture times come from the stream itself (tick_phase.hpp), so the tick player's own timing
// does not matter.
std::string pactl(const std::string &args) {
    std::string out;
    FILE *p = popen(("pactl " + args + " 2>/dev/null").c_str(), "r");
    if (!p) return out;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
    return out;
}

// Moves every playback stream on "speaker" but the tick player's to "listener"; true once one was.
bool move_players_to_speaker() {
    bool moved = false;
    std::istringstream lines(pactl("list short sink-inputs"));
    std::string line;
    auto desktop = pactl("list short sinks");
    std::string desktop_id;
    std::istringstream sinks(desktop);
    while (std::getline(sinks, line)) {
        std::istringstream w(line);
        std::string id, name;
        w >> id >> name;
        if (name == "speaker") desktop_id = id;
    }
    while (std::getline(lines, line)) {
        std::istringstream w(line);
        std::string id, sink, client, driver;
        w >> id >> sink >> client >> driver;
        if (sink != desktop_id) continue;
        std::string props = pactl("list sink-inputs");
        auto at = props.find("Sink Input #" + id);
        auto end = props.find("Sink Input #", at + 1);
        std::string mine = props.substr(at, end == std::string::npos ? std::string::npos : end - at);
        if (mine.find("pp-desktop-ticks") != std::string::npos) continue;
        pactl("move-sink-input " + id + " listener");
        moved = true;
    }
    return moved;
}

int run_x11_sound(double seconds) {
    bench::SoundRig rig(std::string(PP_SOURCE_ROOT) + "/tests/integration/audio_rig.sh");
    if (g_display.empty()) throw std::runtime_error("--x11-sound needs Xvfb (apt-get install xvfb)");
    pactl("load-module module-null-sink sink_name=listener");
    wait_for([] { return pactl("list short sinks").find("listener") != std::string::npos; }, 20s, "the 'listener' sink");
    g_player_sink = "listener";
    pp::media::ensure_gst();
    GError *raw = nullptr;
    pp::media::ElementPtr ticks = pp::media::sink_ref(gst_parse_launch(
        "audiotestsrc is-live=true wave=ticks freq=880 volume=0.3 samplesperbuffer=480 ! "
        "audio/x-raw,format=S16LE,rate=48000,channels=2 ! "
        "pulsesink device=speaker client-name=pp-desktop-ticks stream-properties=\"props,application.name=pp-desktop-ticks\"",
        &raw));
    if (raw) g_error_free(raw);
    if (!ticks) throw std::runtime_error("cannot build the desktop tick player");
    gst_element_set_state(ticks.get(), GST_STATE_PLAYING);
    setenv("DISPLAY", g_display.c_str(), 1);
    pp::HostConfig c = host_config(true);
    c.source = "x11";
    Run r;
    {
        pp::Host host(c, {});
        host.start();
        pp::Viewer viewer(viewer_config(host), {});
        StreamTap tap(host);
        std::atomic<bool> done{false};
        std::thread mover([&] {
            auto deadline = Clock::now() + 60s;
            while (!done && Clock::now() < deadline && !move_players_to_speaker()) std::this_thread::sleep_for(50ms);
        });
        try {
            r = measure_mpv(viewer.url(), true, seconds, [&] { return host_epoch_ms(host); }, &tap.track);
        } catch (...) {
            done = true;
            mover.join();
            throw;
        }
        done = true;
        mover.join();
    }
    gst_element_set_state(ticks.get(), GST_STATE_NULL);
    nlohmann::json report;
    Row row{"X11 + sound, pixelpass", r, true, true};
    std::printf("X11 desktop (Xvfb %s, 1920x1080 → 720p30 x264) with its sound (ticks played into the default sink "
                "'speaker', captured from its monitor), the printed mpv command moved to 'listener':\n",
                g_display.c_str());
    print_row(row, true, report);
    print_tail(row);
    std::printf("%s\n", report.dump().c_str());
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    double seconds = 10;
    int rounds = 2;
    bool json_only = false, stages = false, vlc = true, calibrate = false, drift = false, x11 = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc) seconds = std::stod(argv[++i]);
        else if (a == "--rounds" && i + 1 < argc) rounds = std::stoi(argv[++i]);
        else if (a == "--json") json_only = true;
        else if (a == "--before") g_before = true;
        else if (a == "--no-vlc") vlc = false;
        else if (a == "--sound-only") g_sound_only = true;
        else if (a == "--stages") stages = true;
        else if (a == "--calibrate") calibrate = true;
        else if (a == "--drift") drift = true;
        else if (a == "--x11-sound") x11 = true;
        else {
            std::cerr << "usage: media-latency [--seconds N] [--rounds N] [--json] [--before] [--no-vlc] [--sound-only] | --stages | --calibrate | --drift | --x11-sound\n";
            return 2;
        }
    }
    if (calibrate) return run_calibration(rounds);
    if (stages) {
        char log[] = "/tmp/pp-latency-tracer-XXXXXX";
        int fd = mkstemp(log);
        if (fd < 0) return 1;
        close(fd);
        // Before anything initialises GStreamer: the tracer is read from the environment.
        setenv("GST_TRACERS", "latency(flags=pipeline+element)", 1);
        setenv("GST_DEBUG", "GST_TRACER:7", 1);
        setenv("GST_DEBUG_FILE", log, 1);
        setenv("GST_DEBUG_NO_COLOR", "1", 1);
        int rc = 1;
        try {
            rc = run_stages(seconds, log);
        } catch (const std::exception &e) {
            std::cerr << "media-latency: " << e.what() << "\n";
        }
        unlink(log);
        return rc;
    }
    char lua_template[] = "/tmp/pp-latency-XXXXXX.lua";
    int lua_fd = mkstemps(lua_template, 4);
    if (lua_fd < 0 || write(lua_fd, kLua, std::strlen(kLua)) < 0) return 1;
    close(lua_fd);
    g_lua_path = lua_template;
    pid_t xvfb = start_xvfb();
    int rc = 1;
    try {
        rc = x11 ? run_x11_sound(seconds) : drift ? run_drift(seconds) : run_comparison(seconds, rounds, json_only, vlc);
    } catch (const std::exception &e) {
        std::cerr << "media-latency: " << e.what() << "\n";
    }
    if (xvfb > 0) {
        kill(xvfb, SIGTERM);
        waitpid(xvfb, nullptr, 0);
    }
    unlink(g_lua_path.c_str());
    return rc;
}
