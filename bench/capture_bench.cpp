// capture_bench: host CPU of X11 capture (ximagesrc → x264 → MPEG-TS → fan-out → one reader) at
// 720p30 and 1080p30, against the built-in test source through the same pipeline in the same run.
//
// Each size gets a private Xvfb showing the test source's own scrolling SMPTE bars (a window drawn by
// a separate gst-launch process, so its cost is not ours). CPU is this process's getrusage over
// the measured stretch (after the first bytes), as a percentage of one core.
//
// Usage: capture-bench [--seconds N] [--heights 720,1080]     (needs Xvfb and gst-launch-1.0)
//        capture-bench --portal HEIGHT [--seconds N]
//          inside a Wayland session (e.g. tests/integration/portal_rig.sh as DIR ...): the portal
//          capture of the screen as it is, against the test source at HEIGHT.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "capture/capture.hpp"
#include "common/error.hpp"
#include "media/media.hpp"
#include "proc_cpu.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

pid_t spawn(const std::vector<std::string> &argv, int out_fd = -1) {
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 2);
        if (out_fd < 0) dup2(null, 1);
        std::vector<char *> args;
        for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        _exit(127);
    }
    return pid;
}

void stop(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
}

// Runs `source` for `seconds` after its first bytes; returns the CPU % of one core.
double measure(std::unique_ptr<pp::fanout::FanoutSource> source, int seconds, size_t *bytes_out) {
    std::atomic<bool> woken{false};
    auto reader = source->subscribe([&] { woken = true; });
    auto deadline = Clock::now() + 30s;
    size_t total = 0;
    while (total == 0 && Clock::now() < deadline) {
        auto span = reader->read(1 << 20);
        total += span.size();
        reader->release(span.size());
        if (span.empty()) std::this_thread::sleep_for(5ms);
    }
    if (total == 0) throw pp::Error(PP_ERR_MEDIA, "no bytes within 30 s");
    double cpu0 = bench::process_cpu_seconds();
    auto t0 = Clock::now();
    size_t bytes = 0;
    while (Clock::now() - t0 < std::chrono::seconds(seconds)) {
        auto span = reader->read(1 << 20);
        bytes += span.size();
        reader->release(span.size());
        if (span.empty()) std::this_thread::sleep_for(5ms);
    }
    double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    double cpu = bench::process_cpu_seconds() - cpu0;
    *bytes_out = bytes;
    return 100.0 * cpu / wall;
}

// The host configuration both sides of a comparison share: only the source and its size differ.
pp::HostConfig bench_config(const char *source, unsigned max_height) {
    pp::HostConfig config;
    config.encoder = "x264";
    config.fps = 30;
    config.audio = false;
    config.grace_ms = 100;
    config.source = source;
    config.max_height = max_height;
    return config;
}

// Measures `source` and prints its JSON line; `size_field` is the line's "height" or "size" member.
void measure_and_print(const char *source, unsigned max_height, int seconds, const std::string &size_field) {
    pp::HostConfig config = bench_config(source, max_height);
    size_t bytes = 0;
    double cpu = measure(pp::media::make_source(config, nullptr, pp::capture::make_capture_source(config)), seconds,
                         &bytes);
    std::printf("{\"source\":\"%s\",%s,\"fps\":30,\"encoder\":\"x264\",\"cpu_percent\":%.1f,\"kbit_s\":%.0f}\n", source,
                size_field.c_str(), cpu, bytes * 8.0 / 1000 / seconds);
}

// A private Xvfb of w×h; its display name goes to `display`.
pid_t start_xvfb(int w, int h, std::string &display) {
    int fds[2];
    if (pipe(fds) != 0) throw pp::Error(PP_ERR_IO, std::string("pipe: ") + std::strerror(errno));
    std::string geometry = std::to_string(w) + "x" + std::to_string(h) + "x24";
    pid_t xvfb = spawn({"Xvfb", "-displayfd", std::to_string(fds[1]), "-screen", "0", geometry, "-nolisten", "tcp"},
                       fds[1]);
    close(fds[1]);
    std::string number;
    char c;
    while (read(fds[0], &c, 1) == 1 && c != '\n') number += c;
    close(fds[0]);
    if (number.empty()) throw pp::Error(PP_ERR_IO, "Xvfb did not start");
    display = ":" + number;
    return xvfb;
}

// One size: the test source, then the X11 capture of an Xvfb showing a moving picture.
void x11_round(int h, int seconds) {
    int w = h * 16 / 9;
    std::string display;
    pid_t xvfb = start_xvfb(w, h, display);
    setenv("DISPLAY", display.c_str(), 1);
    pid_t motion = spawn({"gst-launch-1.0", "-q", "videotestsrc", "pattern=smpte", "horizontal-speed=4", "is-live=true", "!",
                          "video/x-raw,width=" + std::to_string(w) + ",height=" + std::to_string(h) + ",framerate=30/1",
                          "!", "ximagesink", "display=" + display, "sync=false"});
    std::this_thread::sleep_for(2s);
    std::string size = "\"size\":\"" + std::to_string(w) + "x" + std::to_string(h) + "\"";
    measure_and_print("test", static_cast<unsigned>(h), seconds, size);
    measure_and_print("x11", 0, seconds, size);
    std::fflush(stdout);
    stop(motion);
    stop(xvfb);
}

} // namespace

int main(int argc, char **argv) {
    int seconds = 10;
    std::vector<int> heights = {720, 1080};
    int portal_height = 0;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc) seconds = std::atoi(argv[++i]);
        else if (a == "--portal" && i + 1 < argc) portal_height = std::atoi(argv[++i]);
        else if (a == "--heights" && i + 1 < argc) {
            heights.clear();
            std::stringstream list(argv[++i]);
            for (std::string h; std::getline(list, h, ',');) heights.push_back(std::stoi(h));
        } else {
            std::fprintf(stderr, "usage: capture-bench [--seconds N] [--heights 720,1080]\n");
            return 2;
        }
    }
    try {
        if (portal_height) {
            for (const char *source : {"test", "portal"}) {
                measure_and_print(source, static_cast<unsigned>(portal_height), seconds,
                                  "\"height\":" + std::to_string(portal_height));
                std::fflush(stdout);
            }
            return 0;
        }
        unsetenv("WAYLAND_DISPLAY");
        unsetenv("XDG_SESSION_TYPE");
        for (int h : heights) x11_round(h, seconds);
    } catch (const pp::Error &e) {
        std::fprintf(stderr, "capture-bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
