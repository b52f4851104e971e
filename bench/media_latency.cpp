// media_latency: glass-to-glass latency of the test source into mpv, with pixelpass in between and
// without it (the baseline), plus the time to the first clean frame for a late joiner.
//
// Glass-to-glass: each frame carries its capture time (the burnt-in clock; as a number: the
// pipeline's PTS epoch + PTS). A Lua script in mpv reports, after each displayed frame ("tick"),
// mpv's clock and the frame's time-pos (the TS PTS, 3600 s based) on stdout; mpv's clock is mapped to Unix time by the smallest
// (arrival − mpv clock) over all lines (pipe delay only ever adds). Latency = display − capture.
//   baseline   the same media::Pipeline (720p30, x264 ultrafast/zerolatency) written straight from
//              its appsink to mpv over a plain HTTP socket on loopback — no QUIC, no fan-out
//   pixelpass  the host (pipeline → fan-out → QUIC/HTTP3) → viewer → its local HTTP socket → mpv
// Each with and without audio. mpv gets the low-latency flags the player module uses, --ao=null,
// and --vo=x11 on an Xvfb display the benchmark starts (or --vo=null when Xvfb is missing).
//
// Late joiner: with a stream running for 5 s, a new viewer connects; the time from the start of
// its connect to its first decoded picture (in-process decoder = "first clean frame"), and to
// mpv's first displayed frame (mpv's own start-up included).
//
// Usage: media-latency [--seconds N] [--rounds N] [--json]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <span>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "host/host.hpp"
#include "media/decoder.hpp"
#include "media/media.hpp"
#include "media/pipeline.hpp"
#include "player/player.hpp"
#include "viewer/viewer.hpp"
#include "url_reader.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

double unix_ms() {
    return double(std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count()) /
           1000.0;
}

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
mp.add_periodic_timer(0.02, function() out("C", 0) end)
)";

std::string g_lua_path, g_display;

// mpv on `url`, its script lines collected; display times mapped to Unix ms.
class Mpv {
public:
    explicit Mpv(const std::string &url) {
        auto args = pp::player::command(pp::player::Kind::mpv, url);
        args.insert(args.begin() + 1, {"--no-config", "--really-quiet", "--ao=null",
                                       g_display.empty() ? "--vo=null" : "--vo=x11",
                                       "--script=" + g_lua_path});
        // PP_MPV_EXTRA: more mpv options, space-separated (to compare player settings).
        if (const char *extra = getenv("PP_MPV_EXTRA")) {
            std::istringstream words(extra);
            std::string w;
            while (words >> w) args.insert(args.end() - 1, w);  // after ours, before the URL
        }
        int out[2];
        if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
        pid_ = fork();
        if (pid_ == 0) {
            dup2(out[1], 1);
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 2);
            if (!g_display.empty()) setenv("DISPLAY", g_display.c_str(), 1);
            std::vector<char *> argv;
            for (auto &a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            execvp("mpv", argv.data());
            _exit(127);
        }
        close(out[1]);
        fd_ = out[0];
        reader_ = std::thread([this] { read_loop(); });
    }
    ~Mpv() { stop(); }

    void stop() {
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
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
        double offset = 1e300;
        for (const auto &l : lines_) offset = std::min(offset, l.arrival_ms - l.mpv_s * 1000);
        std::vector<Frame> out;
        for (const auto &l : lines_)
            if (l.frame) out.push_back({l.mpv_s * 1000 + offset, l.pts});
        return out;
    }
    std::optional<double> first_frame_unix_ms() const {
        auto f = frames();
        if (f.empty()) return std::nullopt;
        return f.front().display_unix_ms;
    }
    bool has_frames() const {
        std::lock_guard lock(mutex_);
        for (const auto &l : lines_)
            if (l.frame) return true;
        return false;
    }

private:
    struct Line {
        bool frame;
        double mpv_s, pts, arrival_ms;
    };
    void read_loop() {
        std::string buf;
        char chunk[4096];
        while (true) {
            ssize_t n = read(fd_, chunk, sizeof chunk);
            if (n <= 0) break;
            double now = unix_ms();
            buf.append(chunk, size_t(n));
            size_t nl;
            while ((nl = buf.find('\n')) != std::string::npos) {
                std::string line = buf.substr(0, nl);
                buf.erase(0, nl + 1);
                char kind;
                double t, pts;
                if (std::sscanf(line.c_str(), "PPLAT %c %lf %lf", &kind, &t, &pts) == 3) {
                    std::lock_guard lock(mutex_);
                    lines_.push_back({kind == 'F', t, pts, now});
                }
            }
        }
    }
    pid_t pid_ = -1;
    int fd_ = -1;
    std::thread reader_;
    mutable std::mutex mutex_;
    std::vector<Line> lines_;
};

// Latencies (ms) of frames displayed after `skip_s` of playback. mpv reports the TS PTS as
// written (with mpegtsmux's 3600 s), which `epoch_ms` already accounts for.
std::vector<double> glass_to_glass(const std::vector<Mpv::Frame> &frames, double epoch_ms, double skip_s) {
    std::vector<double> out;
    if (frames.empty()) return out;
    double start = frames.front().display_unix_ms;
    for (const auto &f : frames)
        if (f.display_unix_ms - start >= skip_s * 1000) out.push_back(f.display_unix_ms - (epoch_ms + f.pts_s * 1000));
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
nlohmann::json to_json(const Stats &s) { return {{"median", s.median}, {"p95", s.p95}, {"min", s.min}, {"frames", s.n}}; }

void wait_for(const std::function<bool()> &cond, std::chrono::milliseconds timeout, const char *what) {
    auto deadline = Clock::now() + timeout;
    while (!cond()) {
        if (Clock::now() > deadline) throw std::runtime_error(std::string("timed out waiting for ") + what);
        std::this_thread::sleep_for(5ms);
    }
}

// The baseline server: one HTTP client gets the pipeline's TS straight from the appsink.
class PlainServer final : public pp::fanout::Sink {
public:
    explicit PlainServer(bool audio) {
        listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(listen_fd_, reinterpret_cast<sockaddr *>(&a), sizeof a);
        socklen_t len = sizeof a;
        getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&a), &len);
        port_ = ntohs(a.sin_port);
        listen(listen_fd_, 1);
        pp::media::PipelineSpec spec;
        spec.encoder = pp::media::select_encoder("x264");
        spec.fps = 30;
        spec.bitrate_kbps = 6000;
        spec.capture.fps = 30;
        spec.capture.audio = audio;
        if (audio) spec.aac = "avenc_aac";
        pipeline_ = std::make_unique<pp::media::Pipeline>(spec, pp::media::make_test_source(720), nullptr);
        // Every connection gets the stream from then on (a player may reconnect after probing);
        // the pipeline starts with the first, like the host's.
        accept_ = std::thread([this] {
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
        });
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
    void on_data(std::vector<uint8_t> &&bytes) override {
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
    int listen_fd_ = -1, client_ = -1;
    uint16_t port_ = 0;
    std::unique_ptr<pp::media::Pipeline> pipeline_;
    std::thread accept_;
    std::atomic<bool> started_{false};
    std::mutex client_mutex_;
};

pp::HostConfig host_config(bool audio) {
    pp::HostConfig c;
    c.source = "test";
    c.bind_address = "127.0.0.1";
    c.encoder = "x264";
    c.fps = 30;
    c.bitrate_kbps = 6000;
    c.max_height = 720;
    c.audio = audio;
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

std::vector<double> run_baseline(bool audio, double seconds) {
    PlainServer server(audio);
    Mpv mpv(server.url());
    wait_for([&] { return mpv.has_frames(); }, 60s, "mpv's first frame (baseline)");
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    double epoch = server.epoch_ms();
    mpv.stop();
    return glass_to_glass(mpv.frames(), epoch, 2.0);
}

std::vector<double> run_pixelpass(bool audio, double seconds) {
    pp::Host host(host_config(audio), {});
    host.start();
    pp::Viewer viewer(viewer_config(host), {});
    Mpv mpv(viewer.url());
    wait_for([&] { return mpv.has_frames(); }, 60s, "mpv's first frame (pixelpass)");
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    double epoch = host_epoch_ms(host);
    mpv.stop();
    return glass_to_glass(mpv.frames(), epoch, 2.0);
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
        double t0 = unix_ms();
        pp::Viewer late(viewer_config(host), {});
        Mpv mpv(late.url());
        wait_for([&] { return mpv.has_frames(); }, 30s, "mpv's first frame (late joiner)");
        std::this_thread::sleep_for(300ms);
        mpv.stop();
        if (auto f = mpv.first_frame_unix_ms()) r.mpv_ms = *f - t0;
    }
    return r;
}

// An Xvfb display for mpv --vo=x11, when Xvfb exists and no display is set.
pid_t start_xvfb() {
    if (const char *d = getenv("DISPLAY"); d && *d) {
        g_display = d;
        return -1;
    }
    if (access("/usr/bin/Xvfb", X_OK) != 0) return -1;
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        std::string fd = std::to_string(fds[1]);
        execl("/usr/bin/Xvfb", "Xvfb", "-displayfd", fd.c_str(), "-screen", "0", "1920x1080x24", "-nolisten",
              "tcp", nullptr);
        _exit(127);
    }
    close(fds[1]);
    char buf[32] = {};
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, 10000) > 0 && read(fds[0], buf, sizeof buf - 1) > 0) g_display = ":" + std::string(buf, strcspn(buf, "\n"));
    close(fds[0]);
    return pid;
}

} // namespace

int main(int argc, char **argv) {
    double seconds = 10;
    int rounds = 2;
    bool json_only = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc) seconds = std::stod(argv[++i]);
        else if (a == "--rounds" && i + 1 < argc) rounds = std::stoi(argv[++i]);
        else if (a == "--json") json_only = true;
        else {
            std::cerr << "usage: media-latency [--seconds N] [--rounds N] [--json]\n";
            return 2;
        }
    }
    char lua_template[] = "/tmp/pp-latency-XXXXXX.lua";
    int lua_fd = mkstemps(lua_template, 4);
    if (lua_fd < 0 || write(lua_fd, kLua, std::strlen(kLua)) < 0) return 1;
    close(lua_fd);
    g_lua_path = lua_template;
    pid_t xvfb = start_xvfb();
    nlohmann::json report;
    try {
        report["display"] = g_display.empty() ? "mpv --vo=null" : "mpv --vo=x11 on " + g_display;
        for (bool audio : {false, true}) {
            std::vector<double> base, ours;
            // Interleaved rounds, so load on the machine hits both alike.
            for (int r = 0; r < rounds; ++r) {
                std::fprintf(stderr, "media-latency: %s round %d\n", audio ? "audio" : "video only", r + 1);
                // On a loaded machine mpv occasionally never shows a frame; such a round is
                // reported and left out (for both sides, to keep the comparison paired).
                try {
                    auto b = run_baseline(audio, seconds);
                    auto o = run_pixelpass(audio, seconds);
                    base.insert(base.end(), b.begin(), b.end());
                    ours.insert(ours.end(), o.begin(), o.end());
                } catch (const std::exception &e) {
                    std::fprintf(stderr, "media-latency: round skipped: %s\n", e.what());
                    report["skipped_rounds"] = report.value("skipped_rounds", 0) + 1;
                }
            }
            Stats sb = summarize(base), so = summarize(ours);
            std::string key = audio ? "with_audio" : "video_only";
            report[key] = {{"baseline", to_json(sb)}, {"pixelpass", to_json(so)},
                           {"added_median_ms", so.median - sb.median}};
            if (!json_only)
                std::printf("glass-to-glass 720p30 x264 %-10s baseline median %6.1f ms (p95 %6.1f, n=%zu)   "
                            "pixelpass median %6.1f ms (p95 %6.1f, n=%zu)   added %+.1f ms\n",
                            audio ? "+audio" : "video only", sb.median, sb.p95, sb.n, so.median, so.p95, so.n,
                            so.median - sb.median);
        }
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
    } catch (const std::exception &e) {
        std::cerr << "media-latency: " << e.what() << "\n";
        if (xvfb > 0) kill(xvfb, SIGTERM);
        unlink(g_lua_path.c_str());
        return 1;
    }
    if (xvfb > 0) {
        kill(xvfb, SIGTERM);
        waitpid(xvfb, nullptr, 0);
    }
    unlink(g_lua_path.c_str());
    std::printf("%s\n", report.dump().c_str());
    return 0;
}
