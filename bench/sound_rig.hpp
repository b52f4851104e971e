// Benchmark helpers for sound: a private PipeWire + WirePlumber + pipewire-pulse
// (tests/integration/audio_rig.sh) whose default sink is a null sink named "speaker" (PipeWire
// clocks it in real time, like a sound card), and a recorder of that sink's monitor that finds the
// test source's ticks (audiotestsrc wave=ticks: an 11 ms 880 Hz burst at every whole second of
// stream time) and when they were heard.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <cstdint>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace bench {

inline double now_unix_ms() {
    return double(std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count()) /
           1000.0;
}

// How the kernel schedules a process's threads, as a desktop's audio needs it: the process's nice
// value and each thread with a realtime policy (name, policy, priority), read from /proc. E.g.
// "nice -11; realtime: data-loop.0 FIFO 88"; "nice 19; no realtime thread".
inline std::string thread_priorities(pid_t pid) {
    std::string dir = "/proc/" + std::to_string(pid) + "/task";
    std::string realtime;
    long nice = 0;
    bool any = false;
    std::error_code gone;  // the process may have exited: say so instead of throwing
    for (const auto &task : std::filesystem::directory_iterator(dir, gone)) {
        std::ifstream stat_file(task.path() / "stat");
        std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
        auto open = stat.find('('), close = stat.rfind(')');
        if (open == std::string::npos || close == std::string::npos) continue;
        std::string name = stat.substr(open + 1, close - open - 1);
        std::istringstream fields(stat.substr(close + 2));  // field 3 (state) onwards
        std::vector<std::string> f{std::istream_iterator<std::string>(fields), std::istream_iterator<std::string>()};
        if (f.size() < 39) continue;
        long thread_nice = std::stol(f[16]), rt_priority = std::stol(f[37]), policy = std::stol(f[38]);
        if (task.path().filename() == std::to_string(pid)) nice = thread_nice;
        any = true;
        if (policy == 1 || policy == 2)
            realtime += (realtime.empty() ? "" : ", ") + name + (policy == 1 ? " FIFO " : " RR ") + std::to_string(rt_priority);
    }
    if (!any) return "gone";
    return "nice " + std::to_string(nice) + "; " + (realtime.empty() ? "no realtime thread" : "realtime: " + realtime);
}

// The rig's daemon called `name` (pipewire, pipewire-pulse): its pid, or -1.
inline pid_t rig_process(const std::string &rig_dir, const std::string &name) {
    std::ifstream pgid_file(rig_dir + "/pgid");
    long session = -1;
    if (!(pgid_file >> session)) return -1;
    for (const auto &proc : std::filesystem::directory_iterator("/proc")) {
        std::string pid = proc.path().filename();
        if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream stat_file(proc.path() / "stat");
        std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
        auto open = stat.find('('), close = stat.rfind(')');
        if (open == std::string::npos || close == std::string::npos) continue;
        std::istringstream fields(stat.substr(close + 2));
        std::string state, ppid, pgrp, sid;
        fields >> state >> ppid >> pgrp >> sid;
        if (stat.substr(open + 1, close - open - 1) == name && sid == std::to_string(session)) return std::stoi(pid);
    }
    return -1;
}

// Starts the rig and puts its environment into this process (players started later inherit it).
class SoundRig {
public:
    explicit SoundRig(const std::string &script) : script_(script) {
        FILE *out = popen((script_ + " start").c_str(), "r");
        if (!out) throw std::runtime_error("cannot run " + script_);
        char line[4096];
        while (std::fgets(line, sizeof line, out)) apply(line);
        if (pclose(out) != 0 || dir_.empty())
            throw std::runtime_error("the audio rig did not start (" + script_ +
                                     " start failed; needs pipewire, wireplumber, pipewire-pulse, pactl)");
    }
    ~SoundRig() {
        if (!dir_.empty()) std::system((script_ + " stop '" + dir_ + "' >/dev/null 2>&1").c_str());
    }
    const std::string &dir() const { return dir_; }
    SoundRig(const SoundRig &) = delete;
    SoundRig &operator=(const SoundRig &) = delete;

    // The pulse socket for a player run as another user (PULSE_SERVER=unix:...): a hard link of the
    // rig's socket in `dir`, a directory that user can enter. The rig's own directories stay 0700:
    // opening them does not last anyway, since every libpulse client run as root (parec) resets
    // $XDG_RUNTIME_DIR/pulse to 0700 when it connects (VLC then got "Connection refused").
    std::string pulse_server_for_others(const std::string &dir) const {
        std::string socket = std::string(std::getenv("XDG_RUNTIME_DIR")) + "/pulse/native";
        std::string link_path = dir + "/pulse-native";
        if (::link(socket.c_str(), link_path.c_str()) != 0)
            throw std::runtime_error("cannot link " + socket + " into " + dir + ": " + std::strerror(errno));
        return "unix:" + link_path;
    }

private:
    // `export K='V'` and `unset A B` lines, as audio_rig.sh prints them.
    void apply(const std::string &line) {
        std::istringstream words(line);
        std::string verb;
        words >> verb;
        if (verb == "unset") {
            std::string key;
            while (words >> key) unsetenv(key.c_str());
        } else if (verb == "export") {
            std::string rest;
            std::getline(words >> std::ws, rest);
            auto eq = rest.find('=');
            if (eq == std::string::npos) return;
            std::string key = rest.substr(0, eq), value = rest.substr(eq + 1);
            if (value.size() >= 2 && value.front() == '\'') value = value.substr(1, value.rfind('\'') - 1);
            setenv(key.c_str(), value.c_str(), 1);
            if (key == "PP_AUDIO_RIG_DIR") dir_ = value;
        }
    }
    std::string script_, dir_;
};

// Records the speaker's monitor (parec, 48 kHz mono) and notes each tick's onset in Unix ms.
//
// A sample's time comes from the sample clock, not from when a read returned: the null sink plays
// (and its monitor delivers) exactly 48 000 samples a second without a gap, so sample n was heard
// at t0 + n / 48 ms. A read that returns at t_end with n_end samples delivered so far says
// t0 <= t_end - n_end / 48 (the samples existed before the read returned); the smallest such
// bound over the reads around a sample is its t0. A read delayed by a loaded machine only gives
// a looser bound, so one prompt read within the window is enough; timing each sample by its own
// read (as before session 6) made every sound figure late by however long that read waited: the
// "recorder delay" of 23-246 ms that moved with the load. What is left is the shortest delivery
// from the sink to this process (a PipeWire cycle, pipewire-pulse, parec), a constant that
// media-latency's calibration measures against a known signal. The window is local (±2 s) so a
// stretch of lost samples (the record stream overflowing) moves only the figures around it.
class TickRecorder {
public:
    explicit TickRecorder(const std::string &sink = "speaker") {
        std::string device = "--device=" + sink + ".monitor";
        int out[2];
        if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
        pid_ = fork();
        if (pid_ == 0) {
            dup2(out[1], 1);
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 2);
            execlp("parec", "parec", device.c_str(), "--raw", "--format=s16le", "--rate=48000",
                   "--channels=1", "--latency-msec=5", nullptr);
            _exit(127);
        }
        close(out[1]);
        fd_ = out[0];
        reader_ = std::thread([this] { read_loop(); });
    }
    ~TickRecorder() { stop(); }
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
    // Each tick's onset, Unix ms, on the sample clock.
    std::vector<double> onsets() const {
        std::lock_guard lock(mutex_);
        std::vector<double> out;
        for (uint64_t n : onset_samples_) out.push_back(sample_time_ms(n));
        return out;
    }
    // How much later each onset would have been stamped by the read that delivered it (the old
    // timing): what the sample clock takes out, for the report.
    std::vector<double> read_lateness_ms() const {
        std::lock_guard lock(mutex_);
        std::vector<double> out;
        for (size_t i = 0; i < onset_samples_.size(); ++i)
            out.push_back(onset_read_ms_[i] - sample_time_ms(onset_samples_[i]));
        return out;
    }

private:
    static constexpr double kWindowMs = 2000;
    struct Read {
        double t_end_ms;
        uint64_t samples_end;
    };
    // t0 + n / 48 with t0 the tightest bound from the reads within kWindowMs of sample n.
    // Called with mutex_ held.
    double sample_time_ms(uint64_t n) const {
        if (reads_.empty()) return 0;
        double rough = reads_.front().t_end_ms - double(reads_.front().samples_end) / 48.0 + double(n) / 48.0;
        auto first = std::lower_bound(reads_.begin(), reads_.end(), rough - kWindowMs,
                                      [](const Read &r, double t) { return r.t_end_ms < t; });
        double t0 = 1e300;
        for (auto r = first; r != reads_.end() && r->t_end_ms <= rough + kWindowMs; ++r)
            t0 = std::min(t0, r->t_end_ms - double(r->samples_end) / 48.0);
        if (t0 == 1e300)  // no read near it (cannot happen for a sample that was read): all reads
            for (const auto &r : reads_) t0 = std::min(t0, r.t_end_ms - double(r.samples_end) / 48.0);
        return t0 + double(n) / 48.0;
    }
    void read_loop() {
        std::vector<int16_t> chunk(4800);
        size_t quiet = 0;
        uint64_t total = 0;
        while (true) {
            ssize_t n = read(fd_, chunk.data(), chunk.size() * 2);
            if (n <= 0) break;
            double t_end = now_unix_ms();
            size_t samples = size_t(n) / 2;  // parec writes whole samples; a split one is rare and harmless
            std::lock_guard lock(mutex_);
            for (size_t i = 0; i < samples; ++i) {
                // Ticks play at 0.3 of full scale; silence is digital zero (AAC adds a little).
                if (std::abs(int(chunk[i])) > 3000) {
                    if (quiet > 48000 * 3 / 10) {
                        onset_samples_.push_back(total + i);
                        onset_read_ms_.push_back(t_end - double(samples - i) / 48.0);
                    }
                    quiet = 0;
                } else {
                    ++quiet;
                }
            }
            total += samples;
            reads_.push_back({t_end, total});
        }
    }
    pid_t pid_ = -1;
    int fd_ = -1;
    std::thread reader_;
    mutable std::mutex mutex_;
    std::vector<Read> reads_;
    std::vector<uint64_t> onset_samples_;
    std::vector<double> onset_read_ms_;
};

// Sound latencies (ms): each tick heard after `skip_ms` since the first one, against its capture
// time. Tick k is produced at stream time k s + `phase_ms` (where the ticks really sit, read from
// the stream: bench/tick_phase.hpp; pts_epoch + 3600 s + k s + phase in Unix ms); a latency under
// 1 s is assumed (the onset's distance past the last tick).
struct HeardTick {
    double heard_ms;    // when it was played (Unix ms)
    double latency_ms;  // heard − produced
};
inline std::vector<HeardTick> heard_ticks(const std::vector<double> &onsets, double epoch_ms, double skip_ms,
                                          double phase_ms = 0) {
    std::vector<HeardTick> out;
    if (onsets.empty()) return out;
    double stream_zero = epoch_ms + 3600.0 * 1000.0 + phase_ms;
    for (double t : onsets)
        if (t - onsets.front() >= skip_ms) {
            double v = std::fmod(t - stream_zero, 1000.0);
            out.push_back({t, v < 0 ? v + 1000.0 : v});
        }
    return out;
}
inline std::vector<double> tick_latencies(const std::vector<double> &onsets, double epoch_ms, double skip_ms,
                                          double phase_ms = 0) {
    std::vector<double> out;
    for (const auto &t : heard_ticks(onsets, epoch_ms, skip_ms, phase_ms)) out.push_back(t.latency_ms);
    return out;
}

// The largest distance (ms) of a tick interval from 1 s after `skip_ms`: audio lost or
// inserted shows up here (a catch-up at a higher speed too, which is why the warm-up is skipped).
inline double worst_tick_interval_error(const std::vector<double> &onsets, double skip_ms) {
    double worst = 0;
    for (size_t i = 1; i < onsets.size(); ++i)
        if (onsets[i - 1] - onsets.front() >= skip_ms)
            worst = std::max(worst, std::abs(onsets[i] - onsets[i - 1] - 1000.0));
    return worst;
}

} // namespace bench
