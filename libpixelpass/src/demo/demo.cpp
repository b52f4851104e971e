#include "demo/demo.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "fanout/ts.hpp"
#include "media/decoder.hpp"
#include "player/player.hpp"
#include "viewer/viewer.hpp"

extern char **environ;

namespace pp::demo {

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kDefaultSeconds = 5.0;

int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool cancelled(const Options &o) { return o.cancel && o.cancel->load(); }

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) close(fd);
    }
};

// GET http://127.0.0.1:PORT/PATH over TCP, as a player would; returns the connected socket with
// the response head consumed, and any body bytes that came with it in `first`.
int open_stream(const std::string &url, std::vector<uint8_t> &first, Clock::time_point deadline) {
    constexpr std::string_view prefix = "http://127.0.0.1:";
    if (url.compare(0, prefix.size(), prefix) != 0) throw Error(PP_ERR_INTERNAL, "unexpected viewer URL " + url);
    std::string rest = url.substr(prefix.size());
    size_t slash = rest.find('/');
    int port = std::stoi(rest.substr(0, slash));
    std::string path = rest.substr(slash);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw Error(PP_ERR_IO, std::string("socket: ") + std::strerror(errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
        int err = errno;
        close(fd);
        throw Error(PP_ERR_IO, std::string("connecting to the viewer's local server: ") + std::strerror(err));
    }
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: pixelpass-demo\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
        close(fd);
        throw Error(PP_ERR_IO, "sending the request to the viewer's local server failed");
    }
    std::string head;
    char buf[4096];
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        pollfd p{fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) {
            close(fd);
            throw Error(PP_ERR_MEDIA, "the viewer's local server sent no response head");
        }
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            close(fd);
            throw Error(PP_ERR_CONNECTION_LOST, "the viewer's local server closed before the stream started");
        }
        head.append(buf, static_cast<size_t>(n));
        size_t end = head.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        if (head.compare(9, 3, "200") != 0) {
            close(fd);
            throw Error(PP_ERR_MEDIA, "the viewer's local server answered " + head.substr(0, head.find("\r\n")));
        }
        first.assign(head.begin() + static_cast<std::ptrdiff_t>(end + 4), head.end());
        return fd;
    }
}

// Watches the TS bytes as they arrive: the wall-clock arrival of each video PES and its PTS.
class ArrivalClock {
public:
    void feed(std::span<const uint8_t> bytes, int64_t now_ms) {
        carry_.insert(carry_.end(), bytes.begin(), bytes.end());
        size_t off = 0;
        for (; off + fanout::ts::kPacketSize <= carry_.size(); off += fanout::ts::kPacketSize) {
            std::span<const uint8_t> pkt(carry_.data() + off, fanout::ts::kPacketSize);
            tracker_.feed(pkt);
            auto p = fanout::ts::parse_packet(pkt);
            if (!p || !p->payload_start || p->pid != tracker_.video_pid()) continue;
            if (auto pts = fanout::ts::pes_pts(p->payload)) samples_.push_back({now_ms, *pts});
        }
        carry_.erase(carry_.begin(), carry_.begin() + static_cast<std::ptrdiff_t>(off));
    }
    // Arrival minus capture time, per frame, given the pipeline's PTS epoch (Unix ms at PTS 0).
    std::vector<double> latencies(int64_t pts_epoch_unix_ms) const {
        std::vector<double> out;
        for (const auto &[arrival, pts] : samples_)
            out.push_back(static_cast<double>(arrival - pts_epoch_unix_ms) - static_cast<double>(pts) / 90.0);
        return out;
    }

private:
    std::vector<uint8_t> carry_;
    fanout::ts::ProgramTracker tracker_;
    std::vector<std::pair<int64_t, uint64_t>> samples_;
};

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

double round1(double v) { return static_cast<double>(static_cast<int64_t>(v * 10 + (v < 0 ? -0.5 : 0.5))) / 10; }

nlohmann::json parse_or_empty(const std::string &text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    return j.is_discarded() ? nlohmann::json::object() : j;
}

// What the headless player saw of the stream: every byte goes to the decoder and the arrival clock.
struct Reception {
    media::TsDecoder decoder;
    ArrivalClock arrivals;
    std::optional<Clock::time_point> first_byte;
    uint64_t bytes = 0;
    bool eof = false;

    void take(std::span<const uint8_t> data) {
        if (data.empty()) return;
        if (!first_byte) first_byte = Clock::now();
        arrivals.feed(data, unix_ms_now());
        decoder.feed(data);
        bytes += data.size();
    }
};

// Reads `fd` until `seconds` have passed since the first byte, the stream ends, or cancel.
void receive(const Options &o, int fd, double seconds, Reception &rx) {
    // The clock for the duration starts at the first byte: the pipeline's start-up (encoder
    // warm-up on the first viewer) is reported separately as time to first frame.
    auto hard_deadline = Clock::now() + std::chrono::duration<double>(seconds + 20);
    std::vector<uint8_t> buf(64 * 1024);
    while (!cancelled(o)) {
        auto now = Clock::now();
        if (rx.first_byte && now - *rx.first_byte >= std::chrono::duration<double>(seconds)) break;
        if (now >= hard_deadline) break;
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t n = recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) {
            rx.eof = true;
            break;
        }
        rx.take({buf.data(), static_cast<size_t>(n)});
    }
}

// Capture-to-arrival latency per frame, or null when the host reported no PTS epoch.
nlohmann::json latency_summary(const ArrivalClock &arrivals, const nlohmann::json &host_stats) {
    auto epoch = host_stats.value("stream", nlohmann::json::object()).value("pts_epoch_unix_ms", nlohmann::json(nullptr));
    if (!epoch.is_number()) return nullptr;
    auto l = arrivals.latencies(epoch.get<int64_t>());
    if (l.empty()) return nullptr;
    return {{"median", round1(percentile(l, 0.5))},
            {"p95", round1(percentile(l, 0.95))},
            {"max", round1(percentile(l, 1.0))},
            {"samples", l.size()},
            {"method", "arrival at the viewer's local socket minus the frame's capture time "
                       "(burnt-in clock = pipeline epoch + PTS)"}};
}

double mean_of(const std::vector<double> &v) {
    double sum = 0;
    for (double x : v) sum += x;
    return v.empty() ? 0 : sum / static_cast<double>(v.size());
}

// A still or black picture decodes too: motion (more than one distinct picture) and some
// brightness are what show that the moving test picture came through ("ok" below).
size_t distinct_pictures(std::vector<uint64_t> signatures) {
    std::sort(signatures.begin(), signatures.end());
    return static_cast<size_t>(std::unique(signatures.begin(), signatures.end()) - signatures.begin());
}

// Headless: read the viewer's URL for `seconds`, decode everything, measure.
nlohmann::json play_headless(const Options &o, Host &host, Viewer &viewer, const std::string &url,
                             Clock::time_point started) {
    double seconds = o.seconds > 0 ? o.seconds : kDefaultSeconds;
    Reception rx;
    std::vector<uint8_t> chunk;
    Fd sock;
    sock.fd = open_stream(url, chunk, Clock::now() + std::chrono::seconds(20));
    rx.take(chunk);
    receive(o, sock.fd, seconds, rx);
    double streamed_s = rx.first_byte ? std::chrono::duration<double>(Clock::now() - *rx.first_byte).count() : 0;
    nlohmann::json host_stats = parse_or_empty(host.stats_json());
    nlohmann::json viewer_stats = parse_or_empty(viewer.stats_json());
    close(sock.fd);
    sock.fd = -1;
    media::DecodeReport r = rx.decoder.finish(std::chrono::seconds(20));

    double ttff = -1;
    if (rx.first_byte && r.first_frame_ms >= 0)
        ttff = std::chrono::duration<double, std::milli>(*rx.first_byte - started).count() + r.first_frame_ms;
    double mean_luma = mean_of(r.luma);
    size_t distinct = distinct_pictures(r.signature);
    bool ok = r.video_frames > 0 && mean_luma > 16 && distinct > 1;
    nlohmann::json j{{"mode", "headless"},
                     {"seconds", round1(streamed_s)},
                     {"url", url},
                     {"path", viewer_stats.value("path", nlohmann::json("direct"))},
                     {"encoder", host_stats.value("encoder", nlohmann::json(nullptr))},
                     {"width", r.width},
                     {"height", r.height},
                     {"frames_decoded", r.video_frames},
                     {"fps", streamed_s > 0 ? round1(static_cast<double>(r.video_frames) / streamed_s) : 0.0},
                     {"distinct_pictures", distinct},
                     {"mean_luma", round1(mean_luma)},
                     {"audio_samples", r.audio_samples},
                     {"bytes", rx.bytes},
                     {"bitrate_kbps", streamed_s > 0 ? round1(static_cast<double>(rx.bytes) * 8 / 1000 / streamed_s) : 0.0},
                     {"time_to_first_frame_ms", round1(ttff)},
                     {"latency_ms", latency_summary(rx.arrivals, host_stats)},
                     {"problems", r.problems},
                     {"stream_ended_early", rx.eof},
                     {"ok", ok},
                     {"host", host_stats},
                     {"viewer", viewer_stats}};
    if (r.video_frames == 0)
        throw Error(PP_ERR_MEDIA, "the demo decoded no picture in " + std::to_string(static_cast<int>(seconds)) +
                                      " s (" + std::to_string(rx.bytes) + " bytes arrived)");
    return j;
}

// With a display: mpv on the URL, until it exits (or `seconds`, or cancel).
nlohmann::json play_in_player(const Options &o, Host &host, Viewer &viewer, const std::string &url,
                              const player::Installed &mpv) {
    auto args = player::command(player::Kind::mpv, url);
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    // mpv's terminal output goes to stderr: stdout belongs to the caller (the CLI's report).
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
    int err = posix_spawn(&pid, mpv.path.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (err != 0) throw Error(PP_ERR_PLAYER, "starting " + mpv.path + ": " + std::strerror(err));
    auto started = Clock::now();
    int status = 0;
    bool exited = false;
    while (!exited) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            exited = true;
            break;
        }
        bool timeout = o.seconds > 0 && Clock::now() - started >= std::chrono::duration<double>(o.seconds);
        if (cancelled(o) || timeout) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!exited) {
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
    }
    double ran = std::chrono::duration<double>(Clock::now() - started).count();
    nlohmann::json host_stats = parse_or_empty(host.stats_json());
    nlohmann::json viewer_stats = parse_or_empty(viewer.stats_json());
    return {{"mode", "player"},
            {"player", "mpv"},
            {"command", player::shell_command(player::Kind::mpv, url)},
            {"pid", pid},
            {"exit_status", WIFEXITED(status) ? WEXITSTATUS(status) : -1},
            {"closed_by_user", exited},
            {"seconds", round1(ran)},
            {"url", url},
            {"path", viewer_stats.value("path", nlohmann::json("direct"))},
            {"encoder", host_stats.value("encoder", nlohmann::json(nullptr))},
            {"ok", true},
            {"host", host_stats},
            {"viewer", viewer_stats}};
}

// The rendezvous as it ran: the viewer's sealed offer went onto the DHT and the host got it. The
// loopback connection is up long before the DHT has carried the offer, so this waits (polling
// both sides' statistics, bounded) until the host has received it or the viewer's put failed.
nlohmann::json rendezvous_summary(Host &host, Viewer &viewer, const Options &o) {
    auto deadline = Clock::now() + std::chrono::seconds(30);
    nlohmann::json h, v;
    while (true) {
        h = parse_or_empty(host.stats_json()).value("rendezvous", nlohmann::json::object());
        v = parse_or_empty(viewer.stats_json());
        auto vr = v.value("rendezvous", nlohmann::json::object());
        bool received = h.value("punch", nlohmann::json::object()).value("offers", 0) + h.value("ignored", 0) > 0;
        bool put_failed = vr.value("puts_failed", 0) > 0;
        if (received || put_failed || cancelled(o) || Clock::now() >= deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling, with the deadline above
    }
    auto vr = v.value("rendezvous", nlohmann::json::object());
    return {{"bootstrap", o.dht_bootstrap},
            {"offers_received", h.value("punch", nlohmann::json::object()).value("offers", 0)},
            {"offers_ignored", h.value("ignored", 0)},
            {"values_received", h.value("values_received", 0)},
            {"host_status", h.value("status", nlohmann::json(nullptr))},
            {"viewer_puts", vr.value("puts", 0)},
            {"viewer_puts_failed", vr.value("puts_failed", 0)},
            {"viewer_put_ms", vr.value("last_put_ms", 0)},
            {"found", v.value("found", nlohmann::json(nullptr))}};
}

thread_local std::optional<std::string> pending;

} // namespace

bool have_display() {
    for (const char *name : {"DISPLAY", "WAYLAND_DISPLAY"})
        if (const char *v = std::getenv(name); v && *v) return true;
    return false;
}

nlohmann::json run(const Options &o, EventSink events) {
    if (o.seconds < 0 || o.seconds > 24 * 3600)
        throw Error(PP_ERR_INVALID_ARGUMENT, "demo seconds must be between 0 and 86400");
    std::optional<player::Installed> mpv;
    if (!o.headless && have_display()) {
        for (const auto &p : player::detect())
            if (p.kind == player::Kind::mpv && p.usable) mpv = p;
    }
    auto started = Clock::now();
    HostConfig hc;
    hc.source = "test";
    hc.bind_address = "127.0.0.1";  // loopback only: the demo never leaves the machine
    hc.encoder = o.encoder.empty() ? "auto" : o.encoder;
    hc.bitrate_kbps = o.bitrate_kbps;
    hc.fps = o.fps;
    hc.max_height = o.max_height;
    hc.audio = o.audio;
    hc.no_stun = hc.no_port_mapping = hc.no_relay = hc.no_dht = true;
    // Explicit DHT nodes (never the public default): the loopback host joins them, so the
    // rendezvous runs end to end here.
    bool rendezvous = !o.no_dht && !o.dht_bootstrap.empty();
    if (rendezvous) {
        hc.no_dht = false;
        hc.dht_bootstrap = o.dht_bootstrap;
    }
    hc.name = "pixelpass demo";
    hc.publish = o.publish;  // the one thing that does leave the machine, when asked for
    hc.publish_key = o.publish_key;
    Host host(hc, events);
    host.start();

    ViewerConfig vc;
    vc.ticket_text = host.ticket_text();
    vc.no_stun = vc.no_relay = true;
    vc.no_dht = !rendezvous;
    if (rendezvous) vc.dht_bootstrap = o.dht_bootstrap;
    Viewer viewer(vc, events);
    std::string url = viewer.url();
    nlohmann::json report = mpv ? play_in_player(o, host, viewer, url, *mpv)
                                : play_headless(o, host, viewer, url, started);
    if (rendezvous) report["rendezvous"] = rendezvous_summary(host, viewer, o);
    if (!mpv && !o.headless)
        report["why_headless"] = have_display() ? "mpv is not installed or not usable" : "no display (DISPLAY and WAYLAND_DISPLAY unset)";
    return report;
}

std::string run_for_buffer(const Options &options, EventSink events, size_t capacity) {
    std::string report;
    if (pending) {
        report = std::move(*pending);
        pending.reset();
    } else {
        report = run(options, std::move(events)).dump();
    }
    if (report.size() + 1 > capacity) pending = report;
    return report;
}

} // namespace pp::demo
