// capture_latency: screen-change-to-decoded-frame latency through real capture (X11 or the Wayland
// portal), against the test source through the same host and viewer in the same run.
//
// Screen sources: a fullscreen window flips between black and white at irregular known times
// (every 400–600 ms; Xlib in this process for X11, bench/wl_flip.c for Wayland). The host
// captures the screen (ximagesrc / the portal's PipeWire stream) → x264 ultrafast/zerolatency →
// MPEG-TS → fan-out → QUIC/HTTP3 on loopback → viewer → its local HTTP socket → an in-process
// decoder (tsdemux → avdec_h264). Latency of a flip = wall time the first decoded picture shows
// the new colour (mean luma past mid-grey) − wall time the flip reached the display server.
// It includes the capture's sampling wait: up to one frame (33 ms at 30 fps), 17 ms on average.
//
// Baseline (the media issue's measure): the test source through the same host and viewer;
// latency = wall time a picture left the decoder − its capture time (the pipeline's PTS epoch +
// PTS). The same per-frame measure is reported for the screen source too ("capture→decoded"),
// which leaves out the sampling wait and what happens before the capture element.
//
// Usage: capture-latency --x11 [--seconds N] [--rounds N]
//          starts a private 1280x720 Xvfb
//        capture-latency --portal WL_FLIP [--seconds N] [--rounds N]
//          inside a Wayland session with a ScreenCast portal (bench/capture_latency.sh runs it in
//          tests/integration/portal_rig.sh's headless sway); WL_FLIP is the wl-flip program
// Prints one line per measurement and a JSON summary as the last line.
#include <X11/Xlib.h>
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
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "fanout/ts.hpp"
#include "host/host.hpp"
#include "media/decoder.hpp"
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

void wait_for(const std::function<bool()> &cond, std::chrono::milliseconds timeout, const std::string &what) {
    auto deadline = Clock::now() + timeout;
    while (!cond()) {
        if (Clock::now() > deadline) throw std::runtime_error("timed out waiting for " + what);
        std::this_thread::sleep_for(5ms);
    }
}

struct Flip {
    double unix_ms;
    bool white;
};

// Something that flips the screen and records when.
class Flipper {
public:
    virtual ~Flipper() = default;
    std::vector<Flip> flips() const {
        std::lock_guard lock(mutex_);
        return flips_;
    }

protected:
    void record(double t, bool white) {
        std::lock_guard lock(mutex_);
        flips_.push_back({t, white});
    }

private:
    mutable std::mutex mutex_;
    std::vector<Flip> flips_;
};

struct DisplayClose {
    void operator()(Display *d) const { if (d) XCloseDisplay(d); }
};

// An override-redirect window over the whole X screen; XSync returns once the server has
// painted it (Xvfb paints synchronously), which is when the screen changed.
class X11Flipper final : public Flipper {
public:
    explicit X11Flipper(const std::string &display) : display_(XOpenDisplay(display.c_str())) {
        if (!display_) throw std::runtime_error("cannot open X display " + display);
        Display *d = display_.get();
        int screen = DefaultScreen(d);
        XSetWindowAttributes attrs{};
        attrs.override_redirect = True;
        attrs.background_pixel = BlackPixel(d, screen);
        window_ = XCreateWindow(d, RootWindow(d, screen), 0, 0, unsigned(DisplayWidth(d, screen)),
                                unsigned(DisplayHeight(d, screen)), 0, CopyFromParent, InputOutput, CopyFromParent,
                                CWOverrideRedirect | CWBackPixel, &attrs);
        XMapRaised(d, window_);
        XSync(d, False);
        thread_ = std::thread([this] { loop(); });
    }
    ~X11Flipper() override {
        stop_ = true;
        thread_.join();
        XDestroyWindow(display_.get(), window_);
    }

private:
    void loop() {
        Display *d = display_.get();
        int screen = DefaultScreen(d);
        std::mt19937 rng(std::random_device{}());
        std::uniform_int_distribution<int> period(400, 600);
        bool white = false;
        while (!stop_) {
            white = !white;
            XSetWindowBackground(d, window_, white ? WhitePixel(d, screen) : BlackPixel(d, screen));
            XClearWindow(d, window_);
            XSync(d, False);
            record(unix_ms(), white);
            auto until = Clock::now() + std::chrono::milliseconds(period(rng));
            while (!stop_ && Clock::now() < until) std::this_thread::sleep_for(5ms);
        }
    }
    std::unique_ptr<Display, DisplayClose> display_;
    Window window_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// wl-flip as a child process; its FLIP lines are the record.
class WaylandFlipper final : public Flipper {
public:
    WaylandFlipper(const std::string &program, double seconds) {
        int out[2];
        if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
        pid_ = fork();
        if (pid_ == 0) {
            dup2(out[1], 1);
            std::string s = std::to_string(seconds);
            execl(program.c_str(), program.c_str(), s.c_str(), nullptr);
            _exit(127);
        }
        close(out[1]);
        fd_ = out[0];
        reader_ = std::thread([this] {
            std::string buf;
            char chunk[1024];
            ssize_t n;
            while ((n = read(fd_, chunk, sizeof chunk)) > 0) {
                buf.append(chunk, size_t(n));
                size_t nl;
                while ((nl = buf.find('\n')) != std::string::npos) {
                    double t;
                    int white;
                    if (std::sscanf(buf.substr(0, nl).c_str(), "FLIP %lf %d", &t, &white) == 2) record(t, white != 0);
                    buf.erase(0, nl + 1);
                }
            }
        });
    }
    ~WaylandFlipper() override {
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
        reader_.join();
        close(fd_);
    }

private:
    pid_t pid_ = -1;
    int fd_ = -1;
    std::thread reader_;
};

// Reads the viewer's local HTTP stream into a decoder and notes every video PES's PTS (90 kHz),
// so decoded pictures (whose timestamps tsdemux rebases) can be tied back to capture times.
class ViewerReader {
public:
    ViewerReader(const std::string &url, pp::media::TsDecoder &decoder)
        : decoder_(decoder), http_(url, [this](std::span<const uint8_t> body) { feed(body); }) {}
    std::vector<uint64_t> video_pts() const {
        std::lock_guard lock(mutex_);
        return pts_;
    }
    std::optional<uint64_t> first_pcr_ns() const {
        std::lock_guard lock(mutex_);
        return first_pcr_ns_;
    }

private:
    void feed(std::span<const uint8_t> bytes) {
        if (bytes.empty()) return;
        carry_.insert(carry_.end(), bytes.begin(), bytes.end());
        size_t off = 0;
        for (; off + pp::fanout::ts::kPacketSize <= carry_.size(); off += pp::fanout::ts::kPacketSize) {
            std::span<const uint8_t> pkt(carry_.data() + off, pp::fanout::ts::kPacketSize);
            tracker_.feed(pkt);
            // The first PCR after the program tables: tsdemux starts its output timeline there.
            if (!first_pcr_ns_ && tracker_.video_pid() != pp::fanout::ts::kNullPid && (pkt[3] & 0x20) && pkt[4] >= 7 &&
                (pkt[5] & 0x10)) {
                uint64_t base = (uint64_t(pkt[6]) << 25) | (uint64_t(pkt[7]) << 17) | (uint64_t(pkt[8]) << 9) |
                                (uint64_t(pkt[9]) << 1) | (pkt[10] >> 7);
                uint64_t ext = (uint64_t(pkt[10] & 1) << 8) | pkt[11];
                std::lock_guard lock(mutex_);
                first_pcr_ns_ = (base * 300 + ext) * 1000 / 27;
            }
            auto p = pp::fanout::ts::parse_packet(pkt);
            if (!p || !p->payload_start || p->pid != tracker_.video_pid()) continue;
            if (auto pts = pp::fanout::ts::pes_pts(p->payload)) {
                std::lock_guard lock(mutex_);
                pts_.push_back(*pts);
            }
        }
        carry_.erase(carry_.begin(), carry_.begin() + std::ptrdiff_t(off));
        decoder_.feed(bytes);
    }

    pp::media::TsDecoder &decoder_;
    std::vector<uint8_t> carry_;
    pp::fanout::ts::ProgramTracker tracker_;
    mutable std::mutex mutex_;
    std::vector<uint64_t> pts_;
    std::optional<uint64_t> first_pcr_ns_;
    bench::UrlReader http_;  // last: its thread stops before the members it feeds go
};

struct Stats {
    double median = 0, p95 = 0, min = 0, max = 0;
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
    s.max = v.back();
    return s;
}
nlohmann::json to_json(const Stats &s) {
    return {{"median_ms", s.median}, {"p95_ms", s.p95}, {"min_ms", s.min}, {"max_ms", s.max}, {"n", s.n}};
}

// tsdemux rebases timestamps to the first PCR it saw: stream PTS = decoded PTS + that PCR. The
// result must put (nearly) every decoded picture on a PTS seen on the wire, or it is not used.
std::optional<int64_t> pts_offset_ns(const std::vector<uint64_t> &decoded_ns, const std::vector<uint64_t> &wire_90k,
                                     std::optional<uint64_t> first_pcr_ns) {
    if (decoded_ns.empty() || wire_90k.empty() || !first_pcr_ns) return std::nullopt;
    std::vector<int64_t> wire;
    for (auto p : wire_90k) wire.push_back(int64_t(p) * 100000 / 9);
    std::sort(wire.begin(), wire.end());
    int64_t off = int64_t(*first_pcr_ns);
    size_t hits = 0;
    for (auto d : decoded_ns) {
        int64_t t = int64_t(d) + off;
        auto it = std::lower_bound(wire.begin(), wire.end(), t - 1000000);
        hits += it != wire.end() && *it <= t + 1000000;
    }
    if (hits * 10 < decoded_ns.size() * 9) return std::nullopt;
    return off;
}

struct RoundResult {
    std::vector<double> frame_ms;  // capture (PTS) → decoded, per picture
    std::vector<double> flip_ms;   // screen change → first decoded picture showing it
    size_t flips = 0, missed = 0;
};

pp::HostConfig host_config(const std::string &source) {
    pp::HostConfig c;
    c.source = source;
    c.bind_address = "127.0.0.1";
    c.encoder = "x264";
    c.fps = 30;
    c.bitrate_kbps = 6000;
    c.max_height = 720;
    c.audio = false;
    c.no_stun = c.no_port_mapping = c.no_relay = true;
    c.max_viewers = 2;
    c.grace_ms = 100;
    return c;
}

// Capture (PTS) → decoded, per picture captured since `measure_from`.
void frame_latencies(const pp::media::DecodeReport &report, double epoch_unix_ms, const std::vector<uint64_t> &wire,
                     std::optional<uint64_t> first_pcr, double measure_from, const std::string &source,
                     RoundResult &r) {
    auto off = pts_offset_ns(report.pts_ns, wire, first_pcr);
    if (!off) {
        std::fprintf(stderr, "capture-latency: could not tie decoded pictures to stream PTS (%s)\n", source.c_str());
        return;
    }
    for (size_t i = 0; i < report.decoded_unix_ms.size(); ++i) {
        double captured = epoch_unix_ms + double(int64_t(report.pts_ns[i]) + *off) / 1e6;
        if (captured >= measure_from) r.frame_ms.push_back(report.decoded_unix_ms[i] - captured);
    }
}

// Each flip: the first picture decoded after it, and after the picture that showed the
// previous flip, that shows the new colour, before the next flip. After a missed flip the
// screen already had the colour the next flip sets, so that one is not measured either.
void flip_latencies(const std::vector<Flip> &flips, const pp::media::DecodeReport &report, double measure_from,
                    RoundResult &r) {
    size_t after = 0;
    bool previous_seen = false;
    for (size_t f = 0; f < flips.size(); ++f) {
        bool measured = flips[f].unix_ms >= measure_from;
        double until = f + 1 < flips.size() ? flips[f + 1].unix_ms : flips[f].unix_ms + 1000;
        bool seen = false;
        for (size_t i = after; i < report.decoded_unix_ms.size(); ++i) {
            double t = report.decoded_unix_ms[i];
            if (t <= flips[f].unix_ms) continue;
            if (t > until) break;
            if ((report.luma[i] > 128) == flips[f].white) {
                if (measured && previous_seen) r.flip_ms.push_back(t - flips[f].unix_ms);
                after = i + 1;
                seen = true;
                break;
            }
        }
        if (measured) {
            ++r.flips;
            if (!seen) ++r.missed;
        }
        previous_seen = seen;
    }
}

void print_round(const std::string &source, const RoundResult &r, bool flipping) {
    Stats frames = summarize(r.frame_ms), changes = summarize(r.flip_ms);
    std::fprintf(stderr, "capture-latency: %s: capture→decoded median %.1f p95 %.1f ms (n=%zu)", source.c_str(),
                 frames.median, frames.p95, frames.n);
    if (flipping)
        std::fprintf(stderr, "; screen change→decoded median %.1f p95 %.1f ms (n=%zu, %zu missed)", changes.median,
                     changes.p95, changes.n, r.missed);
    std::fprintf(stderr, "\n");
}

// One host + viewer + decoder for `seconds` of measured time after a 2 s warm-up. `make_flipper`
// (screen sources) flips the screen throughout.
RoundResult run_round(const std::string &source, double seconds,
                      const std::function<std::unique_ptr<Flipper>(double)> &make_flipper) {
    pp::Host host(host_config(source), {});
    host.start();
    pp::ViewerConfig vc;
    vc.ticket_text = host.ticket_text();
    vc.no_stun = vc.no_relay = true;
    pp::Viewer viewer(vc, {});
    pp::media::TsDecoder decoder;
    RoundResult r;
    std::vector<Flip> flips;
    std::vector<uint64_t> wire;
    std::optional<uint64_t> first_pcr;
    double measure_from;
    {
        // Flipping from the start: a portal sends a first frame only once the screen changes.
        // Flips before the measured stretch are left out.
        std::unique_ptr<Flipper> flipper = make_flipper ? make_flipper(seconds + 120) : nullptr;
        ViewerReader reader(viewer.url(), decoder);
        wait_for([&] { return decoder.snapshot().video_frames > 0; }, 60s, "the first decoded picture (" + source + ")");
        std::this_thread::sleep_for(2s);
        measure_from = unix_ms();
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
        if (flipper) flips = flipper->flips();
        std::this_thread::sleep_for(1s);  // the last flip's pictures are still on their way
        wire = reader.video_pts();
        first_pcr = reader.first_pcr_ns();
    }
    auto report = decoder.snapshot();
    auto stats = nlohmann::json::parse(host.stats_json());
    auto epoch = stats["stream"].value("pts_epoch_unix_ms", nlohmann::json(nullptr));
    if (!epoch.is_number()) throw std::runtime_error("the host reported no PTS epoch");
    if (report.decoded_unix_ms.size() >= 1000)
        std::fprintf(stderr, "capture-latency: the decoder keeps 1000 pictures; shorten --seconds\n");

    frame_latencies(report, epoch.get<double>(), wire, first_pcr, measure_from, source, r);
    if (make_flipper) {
        auto [lo, hi] = std::minmax_element(report.luma.begin(), report.luma.end());
        std::fprintf(stderr, "capture-latency: %s: %zu flips, %zu pictures decoded, mean luma %.0f–%.0f\n",
                     source.c_str(), flips.size(), report.luma.size(), report.luma.empty() ? 0.0 : *lo,
                     report.luma.empty() ? 0.0 : *hi);
    }
    flip_latencies(flips, report, measure_from, r);
    print_round(source, r, bool(make_flipper));
    return r;
}

// Xvfb on a display number of its own: low numbers (:0 especially) are what other programs on
// a shared machine assume and clean up after, which took this one's :0 away mid-run.
pid_t start_xvfb(std::string &display) {
    for (int attempt = 0; attempt < 20; ++attempt) {
        int number = 100 + int((getpid() + attempt * 7) % 400);
        int fds[2];
        if (pipe(fds) != 0) throw std::runtime_error("pipe");
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            std::string fd = std::to_string(fds[1]), name = ":" + std::to_string(number);
            execlp("Xvfb", "Xvfb", name.c_str(), "-displayfd", fd.c_str(), "-screen", "0", "1280x720x24", "-nolisten",
                   "tcp", nullptr);
            _exit(127);
        }
        close(fds[1]);
        char buf[32] = {};
        pollfd p{fds[0], POLLIN, 0};
        bool ready = poll(&p, 1, 20000) > 0 && read(fds[0], buf, sizeof buf - 1) > 0;
        close(fds[0]);
        if (!ready) {  // that number is taken (Xvfb exits) or it did not start
            kill(pid, SIGTERM);
            waitpid(pid, nullptr, 0);
            continue;
        }
        display = ":" + std::to_string(number);
        // Xvfb announces its number once it listens; make sure clients really get in.
        auto deadline = Clock::now() + 10s;
        while (true) {
            std::unique_ptr<Display, DisplayClose> probe(XOpenDisplay(display.c_str()));
            if (probe) return pid;
            if (Clock::now() > deadline || waitpid(pid, nullptr, WNOHANG) == pid) break;
            std::this_thread::sleep_for(50ms);
        }
        kill(pid, SIGTERM);
        waitpid(pid, nullptr, 0);
    }
    throw std::runtime_error("Xvfb did not start on any of 20 display numbers (apt-get install xvfb)");
}

struct Args {
    double seconds = 15;
    int rounds = 2;
    std::string mode, wl_flip;  // mode "x11" or "portal"; empty: the arguments were not understood
};

Args parse_args(int argc, char **argv) {
    Args args;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc) args.seconds = std::stod(argv[++i]);
        else if (a == "--rounds" && i + 1 < argc) args.rounds = std::stoi(argv[++i]);
        else if (a == "--x11") args.mode = "x11";
        else if (a == "--portal" && i + 1 < argc) {
            args.mode = "portal";
            args.wl_flip = argv[++i];
        } else {
            args.mode.clear();
            break;
        }
    }
    return args;
}

struct Paired {
    RoundResult base, screen;
    int skipped = 0;
};

// Interleaved rounds (test source, then the screen), so load on the machine hits both alike.
Paired run_rounds(const Args &args, const std::function<std::unique_ptr<Flipper>(double)> &flipper) {
    Paired p;
    for (int r = 0; r < args.rounds; ++r) {
        std::fprintf(stderr, "capture-latency: round %d: test source\n", r + 1);
        RoundResult b, s;
        // A round that fails (a loaded machine, a desktop component that died) is reported
        // and left out on both sides, to keep the comparison paired.
        try {
            b = run_round("test", args.seconds, nullptr);
            std::fprintf(stderr, "capture-latency: round %d: %s\n", r + 1, args.mode.c_str());
            s = run_round(args.mode, args.seconds, flipper);
        } catch (const std::exception &e) {
            std::fprintf(stderr, "capture-latency: round %d left out: %s\n", r + 1, e.what());
            ++p.skipped;
            continue;
        }
        p.base.frame_ms.insert(p.base.frame_ms.end(), b.frame_ms.begin(), b.frame_ms.end());
        p.screen.frame_ms.insert(p.screen.frame_ms.end(), s.frame_ms.begin(), s.frame_ms.end());
        p.screen.flip_ms.insert(p.screen.flip_ms.end(), s.flip_ms.begin(), s.flip_ms.end());
        p.screen.flips += s.flips;
        p.screen.missed += s.missed;
    }
    return p;
}

// The three lines on stdout, and the same figures into `report`.
void report_results(const Args &args, const Paired &p, nlohmann::json &report) {
    report["rounds"] = args.rounds;
    report["rounds_left_out"] = p.skipped;
    Stats sb = summarize(p.base.frame_ms), sf = summarize(p.screen.frame_ms), sc = summarize(p.screen.flip_ms);
    if (sb.n == 0 || sc.n == 0) throw std::runtime_error("no measurements (see the messages above)");
    report["baseline_test_source_capture_to_decoded"] = to_json(sb);
    report["screen_change_to_decoded"] = to_json(sc);
    report["screen_capture_to_decoded"] = to_json(sf);
    report["flips"] = p.screen.flips;
    report["flips_missed"] = p.screen.missed;
    report["ratio_median"] = sc.median / sb.median;
    report["ratio_p95"] = sc.p95 / sb.p95;
    std::printf("baseline  test source, capture→decoded      median %6.1f ms  p95 %6.1f ms  (n=%zu pictures)\n",
                sb.median, sb.p95, sb.n);
    std::printf("%-6s    screen change→decoded picture   median %6.1f ms  p95 %6.1f ms  (n=%zu flips, %zu missed)"
                "  = %.2fx / %.2fx the baseline\n",
                args.mode.c_str(), sc.median, sc.p95, sc.n, p.screen.missed, sc.median / sb.median, sc.p95 / sb.p95);
    std::printf("%-6s    capture→decoded (PTS)           median %6.1f ms  p95 %6.1f ms  (n=%zu pictures)\n",
                args.mode.c_str(), sf.median, sf.p95, sf.n);
}

void stop_xvfb(pid_t xvfb) {
    if (xvfb <= 0) return;
    kill(xvfb, SIGTERM);
    waitpid(xvfb, nullptr, 0);
}

} // namespace

int main(int argc, char **argv) {
    Args args = parse_args(argc, argv);
    if (args.mode.empty() || args.seconds <= 0 || args.seconds > 25 || args.rounds < 1) {
        std::cerr << "usage: capture-latency --x11 | --portal WL_FLIP  [--seconds N (1-25)] [--rounds N]\n";
        return 2;
    }
    pid_t xvfb = -1;
    std::string display;
    nlohmann::json report = {{"source", args.mode}, {"size", "1280x720"}, {"fps", 30}, {"encoder", "x264"}};
    try {
        if (args.mode == "x11") {
            unsetenv("WAYLAND_DISPLAY");
            unsetenv("XDG_SESSION_TYPE");
            xvfb = start_xvfb(display);
            setenv("DISPLAY", display.c_str(), 1);
        }
        std::function<std::unique_ptr<Flipper>(double)> flipper = [&](double s) -> std::unique_ptr<Flipper> {
            if (args.mode == "x11") return std::make_unique<X11Flipper>(display);
            return std::make_unique<WaylandFlipper>(args.wl_flip, s);
        };
        report_results(args, run_rounds(args, flipper), report);
    } catch (const std::exception &e) {
        std::cerr << "capture-latency: " << e.what() << "\n";
        stop_xvfb(xvfb);
        return 1;
    }
    stop_xvfb(xvfb);
    std::printf("%s\n", report.dump().c_str());
    return 0;
}
