// quic_bench: the tunnel's numbers on loopback, with plain TCP measured in the same run as the
// reference.
//
//  goodput  One QUIC connection, one HTTP/3 GET of --bytes (default 2 GiB) from a source that
//           hands out a pre-filled pattern (so the transport is measured, not a generator), the
//           client checking every byte. Gbit/s, and CPU seconds per GiB of each side's loop
//           thread (CLOCK_THREAD_CPUTIME_ID). Then the same bytes over a plain TCP socket pair,
//           sender and receiver on their own threads, checked the same way.
//  setup    --connections (200) viewers in a row: ticket text → pp::Viewer (dial, TLS with the
//           pinned key, GET /info) → local player GET → first body byte. Median and p99.
//  fanout   --viewers (50) QUIC viewers of a real pp::Host whose synthetic source is paced to
//           --rate bit/s (8 Mbit/s) per viewer, for --seconds (30): CPU % of one core used by the
//           host's loop thread, and every viewer's bytes checked.
//
// Usage: quic-bench [goodput] [setup] [fanout] [--bytes N] [--connections N] [--viewers N]
//                   [--seconds N] [--rate BPS] [--no-gso] [--no-gro] [--congestion-control cubic|bbr|bbr2|reno]
//                   (no mode = all three; fanout's host uses the default congestion control unless given)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <future>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/hex.hpp"
#include "host/host.hpp"
#include "http3/client.hpp"
#include "http3/server.hpp"
#include "net/loop.hpp"
#include "net/udp.hpp"
#include "proc_cpu.hpp"
#include "quic/endpoint.hpp"
#include "stream/synthetic.hpp"
#include "ticket/ticket.hpp"
#include "viewer/viewer.hpp"

using namespace pp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double thread_cpu() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

double loop_cpu(net::Loop &loop) { return loop.call([] { return thread_cpu(); }); }

// A pattern of a prime size, pre-filled from the synthetic stream: byte i of a transfer is
// pattern[i % size], so a receiver checks with memcmp instead of regenerating.
constexpr size_t kPatternSize = (1u << 20) + 7;
const std::vector<uint8_t> &pattern() {
    static std::vector<uint8_t> p = [] {
        std::vector<uint8_t> v(kPatternSize * 2);
        stream::synthetic_fill(0, {v.data(), kPatternSize});
        std::memcpy(v.data() + kPatternSize, v.data(), kPatternSize);  // doubled: any window is contiguous
        return v;
    }();
    return p;
}

bool check_pattern(uint64_t offset, std::span<const uint8_t> data) {
    const auto &p = pattern();
    size_t done = 0;
    while (done < data.size()) {
        size_t at = (offset + done) % kPatternSize;
        size_t n = std::min(data.size() - done, kPatternSize);
        if (std::memcmp(p.data() + at, data.data() + done, n) != 0) return false;
        done += n;
    }
    return true;
}

class PatternReader final : public stream::Reader {
public:
    explicit PatternReader(uint64_t length) : length_(length) {}
    std::span<const uint8_t> read(size_t max) override {
        if (offset_ >= length_) return {};
        size_t n = static_cast<size_t>(std::min<uint64_t>({max, length_ - offset_, 256 * 1024}));
        auto out = std::span<const uint8_t>(pattern().data() + offset_ % kPatternSize, n);
        offset_ += n;
        return out;
    }
    void release(size_t) override {}
    bool at_end() const override { return offset_ >= length_; }
    nlohmann::json stats() const override { return {{"bytes", offset_}, {"drops", 0}}; }

private:
    uint64_t length_, offset_ = 0;
};

struct Counter : http3::ResponseHandler {
    http3::ClientSession *session;
    bool pattern_check = true;
    std::atomic<uint64_t> bytes{0};
    std::atomic<bool> bad{false}, done{false};
    std::atomic<int> status{0};
    Clock::time_point first_byte{};
    explicit Counter(http3::ClientSession *s) : session(s) {}
    void on_headers(int s, const std::vector<http3::Header> &) override { status = s; }
    void on_data(int64_t id, std::span<const uint8_t> data) override {
        if (bytes == 0) first_byte = Clock::now();
        if (pattern_check) {
            if (!check_pattern(bytes, data)) bad = true;
        } else if (!bad && stream::synthetic_mismatch(bytes, data)) {
            bad = true;
        }
        bytes += data.size();
        session->consume(id, data.size());
    }
    void on_end() override { done = true; }
    void on_error(uint64_t, const std::string &) override {
        bad = true;
        done = true;
    }
};

// ---------------------------------------------------------------------------------------------

// The serving side: an HTTP/3 server whose every GET answers `length` bytes of the pattern.
std::unique_ptr<quic::Endpoint> pattern_server(net::Loop &loop, const std::shared_ptr<Identity> &identity,
                                               uint64_t length, bool gso, bool gro, uint16_t &port) {
    std::unique_ptr<quic::Endpoint> server;
    port = loop.call([&] {
        net::UdpOptions uo{"127.0.0.1", 0};
        uo.gso = gso;
        uo.gro = gro;
        auto sock = std::make_unique<net::UdpSocket>(loop, uo);
        uint16_t p = sock->local_address().port();
        server = std::make_unique<quic::Endpoint>(loop, std::move(sock), quic::Observer{});
        server->listen({identity,
                        [length](quic::Connection &c) {
                            return std::make_unique<http3::ServerSession>(c, [length](quic::Connection &, const http3::Request &) {
                                http3::Response r;
                                r.reader = std::make_unique<PatternReader>(length);
                                return r;
                            });
                        },
                        {}});
        return p;
    });
    return server;
}

// One HTTP/3 GET of `length` bytes between two loop threads, each byte checked.
nlohmann::json quic_goodput(uint64_t length, bool gso, bool gro) {
    auto identity = Identity::generate();
    net::Loop server_loop("bench-server"), client_loop("bench-client");
    uint16_t port = 0;
    std::unique_ptr<quic::Endpoint> server = pattern_server(server_loop, identity, length, gso, gro, port);
    std::unique_ptr<quic::Endpoint> client;
    std::promise<void> up;
    quic::Connection *conn = nullptr;
    client_loop.call([&] {
        net::UdpOptions uo;
        uo.gso = gso;
        uo.gro = gro;
        auto sock = std::make_unique<net::UdpSocket>(client_loop, uo);
        quic::Observer obs;
        obs.established = [&](quic::Connection &) { up.set_value(); };
        client = std::make_unique<quic::Endpoint>(client_loop, std::move(sock), obs);
        conn = &client->connect(net::Address::parse("127.0.0.1", port),
                                {identity->fingerprint(),
                                 [](quic::Connection &c) { return std::make_unique<http3::ClientSession>(c); },
                                 {}});
    });
    up.get_future().wait();
    std::shared_ptr<Counter> counter;
    double s0 = loop_cpu(server_loop), c0 = loop_cpu(client_loop);
    auto t0 = Clock::now();
    client_loop.call([&] {
        auto *session = dynamic_cast<http3::ClientSession *>(conn->app());
        counter = std::make_shared<Counter>(session);
        session->request("GET", "/stream.ts", {}, counter);
    });
    while (!counter->done) std::this_thread::sleep_for(2ms);
    double secs = seconds_since(t0);
    double s1 = loop_cpu(server_loop), c1 = loop_cpu(client_loop);
    auto cstats = client_loop.call([&] { return conn->stats(); });
    auto ssock = server_loop.call([&] { return server->socket().counters(); });
    double gib = double(length) / double(1ull << 30);
    nlohmann::json out = {{"bytes", counter->bytes.load()},
                         {"byte_exact", !counter->bad && counter->bytes == length},
                         {"seconds", secs},
                         {"gbit_s", double(counter->bytes) * 8 / secs / 1e9},
                         {"sender_cpu_s_per_gib", (s1 - s0) / gib},
                         {"receiver_cpu_s_per_gib", (c1 - c0) / gib},
                         {"sender_cpu_pct", 100 * (s1 - s0) / secs},
                         {"receiver_cpu_pct", 100 * (c1 - c0) / secs},
                         {"rtt_ms", cstats.rtt_ms},
                         {"udp_payload", cstats.max_udp_payload},
                         {"gso", ssock.gso},
                         {"gro", ssock.gro},
                         {"datagrams_per_send_call", double(ssock.tx_datagrams) / double(std::max<uint64_t>(1, ssock.tx_calls))}};
    client_loop.call([&] { client.reset(); });
    server_loop.call([&] { server.reset(); });
    return out;
}

// Plain TCP over loopback, the same bytes, the same check: sender and receiver on their own threads.
nlohmann::json tcp_goodput(uint64_t length) {
    double gib = double(length) / double(1ull << 30);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    socklen_t alen = sizeof a;
    getsockname(lfd, reinterpret_cast<sockaddr *>(&a), &alen);
    listen(lfd, 1);
    std::atomic<double> send_cpu{0}, recv_cpu{0};
    std::atomic<bool> tcp_ok{true};
    auto t1 = Clock::now();
    std::thread sender([&] {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
        double c = thread_cpu();
        uint64_t off = 0;
        while (off < length) {
            size_t n = static_cast<size_t>(std::min<uint64_t>(length - off, 256 * 1024));
            ssize_t w = send(fd, pattern().data() + off % kPatternSize, n, 0);
            if (w <= 0) break;
            off += static_cast<uint64_t>(w);
        }
        send_cpu = thread_cpu() - c;
        close(fd);
    });
    std::thread receiver([&] {
        int fd = accept(lfd, nullptr, nullptr);
        double c = thread_cpu();
        std::vector<uint8_t> buf(256 * 1024);
        uint64_t off = 0;
        while (off < length) {
            ssize_t r = recv(fd, buf.data(), buf.size(), 0);
            if (r <= 0) break;
            if (!check_pattern(off, {buf.data(), static_cast<size_t>(r)})) tcp_ok = false;
            off += static_cast<uint64_t>(r);
        }
        if (off != length) tcp_ok = false;
        recv_cpu = thread_cpu() - c;
        close(fd);
    });
    sender.join();
    receiver.join();
    double tsecs = seconds_since(t1);
    close(lfd);
    return {{"bytes", length},
            {"byte_exact", tcp_ok.load()},
            {"seconds", tsecs},
            {"gbit_s", double(length) * 8 / tsecs / 1e9},
            {"sender_cpu_s_per_gib", send_cpu / gib},
            {"receiver_cpu_s_per_gib", recv_cpu / gib}};
}

nlohmann::json goodput(uint64_t length, bool gso, bool gro) {
    nlohmann::json out;
    out["quic"] = quic_goodput(length, gso, gro);
    out["tcp"] = tcp_goodput(length);
    out["quic_vs_tcp"] = out["quic"]["gbit_s"].get<double>() / out["tcp"]["gbit_s"].get<double>();
    return out;
}

// ---------------------------------------------------------------------------------------------

// One local-player GET; returns the time of the first body byte.
Clock::time_point first_body_byte(const std::string &url) {
    auto rest = url.substr(std::strlen("http://127.0.0.1:"));
    int port = std::stoi(rest.substr(0, rest.find('/')));
    std::string path = rest.substr(rest.find('/'));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    send(fd, req.data(), req.size(), 0);
    std::string head;
    char buf[4096];
    Clock::time_point t{};
    while (true) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
        auto end = head.find("\r\n\r\n");
        if (end != std::string::npos && head.size() > end + 4) {
            t = Clock::now();
            break;
        }
    }
    close(fd);
    return t;
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(p * double(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

nlohmann::json setup(int connections) {
    HostConfig config;
    config.source = "synthetic";
    config.bind_address = "127.0.0.1";
    config.max_viewers = 1000;
    Host host(config, {});
    host.start();
    std::string ticket = host.ticket_text();
    std::vector<double> total, connect;
    int failures = 0;
    for (int i = 0; i < connections; ++i) {
        auto t0 = Clock::now();
        try {
            ViewerConfig vc;
            vc.ticket_text = ticket;
            Viewer viewer(vc, {});
            auto t1 = Clock::now();
            auto t2 = first_body_byte(viewer.url());
            if (t2 == Clock::time_point{}) {
                ++failures;
                continue;
            }
            connect.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
            total.push_back(std::chrono::duration<double, std::milli>(t2 - t0).count());
        } catch (const std::exception &e) {
            ++failures;
            std::fprintf(stderr, "connection %d: %s\n", i, e.what());
        }
    }
    if (total.empty()) return {{"failures", failures}};
    return {{"connections", total.size()},
            {"failures", failures},
            {"ticket_to_first_byte_ms", {{"median", percentile(total, 0.5)}, {"p99", percentile(total, 0.99)}, {"max", percentile(total, 1.0)}}},
            {"ticket_to_connected_ms", {{"median", percentile(connect, 0.5)}, {"p99", percentile(connect, 0.99)}}}};
}

// ---------------------------------------------------------------------------------------------

// The host admits at most 8 unauthenticated connections per source address (docs/SECURITY.md)
// and every viewer here comes from 127.0.0.1: they connect in groups of 8, each authenticated (its
// GET answered with stream bytes) before the next group dials. Exits with one line on a failure.
std::vector<std::shared_ptr<Counter>> connect_viewers(net::Loop &loop, quic::Endpoint &ep, std::atomic<int> &up,
                                                      const ticket::Ticket &t, const std::string &auth, int viewers) {
    std::vector<quic::Connection *> conns;
    std::vector<std::shared_ptr<Counter>> counters;
    constexpr int kGroup = 8;
    for (int first = 0; first < viewers; first += kGroup) {
        int n = std::min(kGroup, viewers - first);
        loop.call([&] {
            for (int i = 0; i < n; ++i)
                conns.push_back(&ep.connect(net::Address::parse(t.candidates[0].address, t.candidates[0].port),
                                             {t.fingerprint,
                                              [](quic::Connection &c) { return std::make_unique<http3::ClientSession>(c); },
                                              {}}));
        });
        auto wait_start = Clock::now();
        while (up < first + n && seconds_since(wait_start) < 20) std::this_thread::sleep_for(10ms);
        if (up < first + n) {
            // A viewer without a session would crash the request loop below: say what happened.
            std::fprintf(stderr, "quic-bench fanout: only %d of %d viewers connected to %s:%u within 20 s\n",
                         up.load(), first + n, t.candidates[0].address.c_str(), unsigned(t.candidates[0].port));
            std::exit(1);
        }
        loop.call([&] {
            for (int i = first; i < first + n; ++i) {
                auto *s = dynamic_cast<http3::ClientSession *>(conns[static_cast<size_t>(i)]->app());
                auto counter = std::make_shared<Counter>(s);
                counter->pattern_check = false;  // the synthetic stream itself
                s->request("GET", "/stream.ts", {{"authorization", auth}}, counter);
                counters.push_back(counter);
            }
        });
        wait_start = Clock::now();
        auto all_started = [&] {
            for (int i = first; i < first + n; ++i)
                if (counters[static_cast<size_t>(i)]->bytes == 0) return false;
            return true;
        };
        while (!all_started() && seconds_since(wait_start) < 20) std::this_thread::sleep_for(10ms);
    }
    return counters;
}

nlohmann::json fanout(int viewers, int seconds, uint64_t rate, const std::string &cc) {
    HostConfig config;
    config.source = "synthetic";
    config.bind_address = "127.0.0.1";
    config.max_viewers = static_cast<unsigned>(viewers);
    config.bitrate_kbps = static_cast<unsigned>(rate / 1000);
    config.congestion_control = cc;  // empty: the default (BBRv2)
    Host host(config, {});
    host.start();
    auto t = ticket::decode(host.ticket_text());
    std::string auth = "Bearer " + to_hex(t.secret);

    net::Loop loop("bench-viewers");
    std::unique_ptr<quic::Endpoint> ep;
    std::atomic<int> up{0};
    loop.call([&] {
        auto sock = std::make_unique<net::UdpSocket>(loop, net::UdpOptions{});
        quic::Observer obs;
        obs.established = [&](quic::Connection &) { ++up; };
        ep = std::make_unique<quic::Endpoint>(loop, std::move(sock), obs);
    });
    auto counters = connect_viewers(loop, *ep, up, t, auth, viewers);
    // Let the streams start (the first burst), then measure a steady window.
    std::this_thread::sleep_for(1s);
    double h0 = bench::threads_cpu_by_name()["pp-host"], v0 = loop_cpu(loop);
    std::vector<uint64_t> b0;
    for (auto &c : counters) b0.push_back(c->bytes);
    auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    double secs = seconds_since(t0);
    double h1 = bench::threads_cpu_by_name()["pp-host"], v1 = loop_cpu(loop);
    uint64_t min_bytes = UINT64_MAX, total = 0;
    int exact = 0;
    for (size_t i = 0; i < counters.size(); ++i) {
        uint64_t got = counters[i]->bytes - b0[i];
        min_bytes = std::min(min_bytes, got);
        total += got;
        exact += (!counters[i]->bad && counters[i]->status == 200) ? 1 : 0;
    }
    auto host_stats = nlohmann::json::parse(host.stats_json());
    loop.call([&] { ep.reset(); });
    double expected = double(rate) / 8 * secs;
    return {{"viewers", viewers},
            {"connected", up.load()},
            {"seconds", secs},
            {"rate_bps_each", rate},
            {"host_loop_cpu_pct_of_one_core", 100 * (h1 - h0) / secs},
            {"viewers_loop_cpu_pct", 100 * (v1 - v0) / secs},
            {"byte_exact_viewers", exact},
            {"min_viewer_rate_fraction", double(min_bytes) / expected},
            {"aggregate_mbit_s", double(total) * 8 / secs / 1e6},
            {"host_drops", host_stats["totals"]["drops"]}};
}

} // namespace

int main(int argc, char **argv) {
    std::set<std::string> modes;
    uint64_t bytes = 2ull << 30;
    int connections = 200, viewers = 50, seconds = 30;
    uint64_t rate = 8'000'000;
    bool gso = true, gro = true;
    std::string cc;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string("0"); };
        if (a == "--bytes") bytes = std::stoull(next());
        else if (a == "--connections") connections = std::stoi(next());
        else if (a == "--viewers") viewers = std::stoi(next());
        else if (a == "--seconds") seconds = std::stoi(next());
        else if (a == "--rate") rate = std::stoull(next());
        else if (a == "--no-gso") gso = false;
        else if (a == "--congestion-control") cc = next();
        else if (a == "--no-gro") gro = false;
        else modes.insert(a);
    }
    if (modes.empty()) modes = {"goodput", "setup", "fanout"};
    nlohmann::json report;
    if (modes.count("goodput")) {
        report["goodput"] = goodput(bytes, gso, gro);
        std::printf("%s\n", report["goodput"].dump(2).c_str());
        std::fflush(stdout);
    }
    if (modes.count("setup")) {
        report["setup"] = setup(connections);
        std::printf("%s\n", report["setup"].dump(2).c_str());
        std::fflush(stdout);
    }
    if (modes.count("fanout")) {
        report["fanout"] = fanout(viewers, seconds, rate, cc);
        std::printf("%s\n", report["fanout"].dump(2).c_str());
        std::fflush(stdout);
    }
    bool ok = true;
    if (report.contains("goodput")) ok &= report["goodput"]["quic"]["byte_exact"].get<bool>();
    if (report.contains("fanout")) ok &= report["fanout"]["byte_exact_viewers"] == viewers;
    if (report.contains("setup")) ok &= report["setup"]["failures"] == 0;
    return ok ? 0 : 1;
}
