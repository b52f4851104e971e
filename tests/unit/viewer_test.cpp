// The viewer end to end over real loopback sockets: a real Host, real QUIC, the viewer's local
// HTTP server, and a TCP "player" that checks every byte of the synthetic stream.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <future>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/random.hpp"
#include "net/loop.hpp"
#include "net/udp.hpp"
#include "player_harness.hpp"
#include "viewer/viewer.hpp"

using namespace pp;
using namespace pp::test;
using namespace std::chrono_literals;

namespace {

pp_result connect_error(const ViewerConfig &config, std::string *detail = nullptr) {
    try {
        Viewer v(config, {});
    } catch (const Error &e) {
        if (detail) *detail = e.what();
        return e.code();
    }
    return PP_OK;
}

// The host runs in a child process. killed: SIGKILL closes its socket, the viewer's next packets
// bounce (ICMP port unreachable), and the viewer confirms the host is gone within a second or so
// — no 30 s idle wait. frozen: SIGSTOP keeps the socket open and silent, as if the network went;
// only the idle timeout (shortened here) can tell.
void check_host_gone(bool frozen) {
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        close(pipefd[0]);
        try {
            Host host(loopback_host(), {});
            host.start();
            std::string t = host.ticket_text() + "\n";
            (void)!write(pipefd[1], t.data(), t.size());
            pause();
        } catch (...) {
        }
        _exit(0);  // never back into the test runner
    }
    close(pipefd[1]);
    std::string t;
    char c;
    while (read(pipefd[0], &c, 1) == 1 && c != '\n') t += c;
    close(pipefd[0]);
    auto config = viewer_for(t);
    // Something must be sent after the kill for an ICMP report to come back: an idle viewer only
    // pings every keep-alive period, so make that short (the idle timeout stays 30 s unless frozen,
    // so an answer within 3 s can only come from the ICMP path).
    config.keep_alive_ms = 500;
    if (frozen) config.idle_timeout_ms = 1500;
    EventLog events;
    {
        Viewer viewer(config, events.sink());
        auto player = std::async(std::launch::async, [&] { return play(viewer.url(), 4u << 20); });
        CHECK(player.get().bytes == (4u << 20));
        kill(child, frozen ? SIGSTOP : SIGKILL);
        auto start = std::chrono::steady_clock::now();
        CHECK(viewer.wait(6000) == PP_ERR_CONNECTION_LOST);
        CHECK(std::chrono::steady_clock::now() - start < 3s);
        auto stopped = events.wait_for(PP_EVENT_STOPPED, 1s);
        REQUIRE(stopped);
        CHECK(stopped->error == PP_ERR_CONNECTION_LOST);
        CHECK(stopped->message.find(frozen ? "stopped answering" : "the host is gone") != std::string::npos);
        // A player arriving now gets a clear 502, not a hang.
        auto late = play(viewer.url(), 1, 3s);
        CHECK(late.status == 502);
    }
    if (frozen) kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
}

} // namespace

TEST_CASE("three viewers pull 64 MiB each at once, byte-exact", "[viewer]") {
    constexpr uint64_t kBytes = 64ull << 20;
    EventLog host_events;
    Host host(loopback_host(3), host_events.sink());
    host.start();
    std::string ticket = host.ticket_text();

    std::vector<std::unique_ptr<Viewer>> viewers;
    for (int i = 0; i < 3; ++i) viewers.push_back(std::make_unique<Viewer>(viewer_for(ticket), EventSink{}));
    std::vector<std::future<PlayerResult>> players;
    for (auto &v : viewers) players.push_back(std::async(std::launch::async, [url = v->url()] { return play(url, kBytes, 45s); }));
    for (auto &p : players) {
        PlayerResult r = p.get();
        INFO(r.error << " " << r.head);
        CHECK(r.status == 200);
        CHECK(r.bytes == kBytes);
        CHECK_FALSE(r.mismatch.has_value());
    }
    auto stats = nlohmann::json::parse(host.stats_json());
    CHECK(stats["viewers"].size() == 3);
    CHECK(stats["totals"]["bytes_sent"].get<uint64_t>() >= 3 * kBytes - 3 * (16u << 20));
    CHECK(host_events.count(PP_EVENT_VIEWER_JOINED) == 3);
    auto vstats = nlohmann::json::parse(viewers[0]->stats_json());
    CHECK(vstats["path"] == "direct");
    CHECK(vstats["bytes_received"].get<uint64_t>() >= kBytes);
    CHECK(vstats.contains("rtt_ms"));
}

TEST_CASE("two players on one viewer share its connection", "[viewer]") {
    Host host(loopback_host(1), {});
    host.start();
    Viewer viewer(viewer_for(host.ticket_text()), {});
    auto a = std::async(std::launch::async, [&] { return play(viewer.url(), 8u << 20); });
    auto b = std::async(std::launch::async, [&] { return play(viewer.url(), 8u << 20); });
    for (auto *f : {&a, &b}) {
        auto r = f->get();
        CHECK(r.status == 200);
        CHECK(r.bytes == (8u << 20));
        CHECK_FALSE(r.mismatch.has_value());
    }
    // One viewer slot for both players: the cap of 1 was not hit.
    CHECK(nlohmann::json::parse(host.stats_json())["totals"]["refused_full"] == 0);
}

TEST_CASE("a wrong secret is rejected with 401: ticket rejected", "[viewer]") {
    Host host(loopback_host(), {});
    host.start();
    auto real = ticket::decode(host.ticket_text());
    std::vector<uint8_t> wrong(16);
    random_bytes(wrong);
    std::vector<std::pair<std::string, uint16_t>> cands;
    for (auto &c : real.candidates) cands.emplace_back(c.address, c.port);
    std::string detail;
    CHECK(connect_error(viewer_for(make_ticket(real.fingerprint, wrong, cands)), &detail) == PP_ERR_TICKET_REJECTED);
    CHECK(detail == "ticket rejected by host");
    auto stats = nlohmann::json::parse(host.stats_json());
    CHECK(stats["totals"]["refused_auth"] == 1);
    CHECK(stats["viewers"].empty());
    // The real ticket still works.
    Viewer ok(viewer_for(host.ticket_text()), {});
    CHECK(play(ok.url(), 1 << 20).bytes == (1u << 20));
}

TEST_CASE("a host with another key at the ticket's address is refused before the secret is sent", "[viewer]") {
    Host host(loopback_host(), {});
    host.start();
    auto real = ticket::decode(host.ticket_text());
    std::array<uint8_t, 32> other{};
    random_bytes(other);
    std::vector<std::pair<std::string, uint16_t>> cands;
    for (auto &c : real.candidates) cands.emplace_back(c.address, c.port);
    std::string detail;
    CHECK(connect_error(viewer_for(make_ticket(other, real.secret, cands)), &detail) == PP_ERR_HOST_KEY_MISMATCH);
    CHECK(detail.find("not the key the ticket pins") != std::string::npos);
    auto stats = nlohmann::json::parse(host.stats_json());
    CHECK(stats["totals"]["requests"] == 0);  // no request, so the secret never left the viewer
    CHECK(stats["totals"]["refused_auth"] == 0);
}

TEST_CASE("dead candidates before the good one do not delay the connection", "[viewer]") {
    Host host(loopback_host(), {});
    host.start();
    auto real = ticket::decode(host.ticket_text());
    // A black hole (a socket that reads and never answers) and a port nobody listens on.
    net::Loop hole_loop("hole");
    std::unique_ptr<net::UdpSocket> hole;
    uint16_t hole_port = hole_loop.call([&] {
        hole = std::make_unique<net::UdpSocket>(hole_loop, net::UdpOptions{"127.0.0.1", 0});
        return hole->local_address().port();
    });
    std::vector<std::pair<std::string, uint16_t>> cands{{"127.0.0.1", hole_port}, {"127.0.0.2", 9}};
    for (auto &c : real.candidates) cands.emplace_back(c.address, c.port);
    auto config = viewer_for(make_ticket(real.fingerprint, real.secret, cands));
    config.connect_timeout_ms = 10000;
    auto start = std::chrono::steady_clock::now();
    Viewer viewer(config, {});
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took < 1500ms);
    CHECK(play(viewer.url(), 1 << 20).bytes == (1u << 20));
    CHECK(nlohmann::json::parse(viewer.stats_json())["address"] == real.candidates[0].address + ":" +
                                                                      std::to_string(real.candidates[0].port));
    hole_loop.call([&] { hole.reset(); });
}

TEST_CASE("no host at any candidate: unreachable, naming them", "[viewer]") {
    std::array<uint8_t, 32> fp{};
    std::vector<uint8_t> secret(16, 7);
    SECTION("closed ports fail at once") {
        // Nothing listens: the ICMP port-unreachable answers end each attempt right away.
        auto config = viewer_for(make_ticket(fp, secret, {{"127.0.0.2", 9}, {"127.0.0.3", 9}}));
        config.connect_timeout_ms = 5000;
        std::string detail;
        auto start = std::chrono::steady_clock::now();
        CHECK(connect_error(config, &detail) == PP_ERR_UNREACHABLE);
        CHECK(std::chrono::steady_clock::now() - start < 1s);
        CHECK(detail.rfind("host unreachable at 127.0.0.2:9, 127.0.0.3:9 (", 0) == 0);
        CHECK(detail.find("nothing listens at 127.0.0.3:9") != std::string::npos);
    }
    SECTION("silent addresses time out") {
        net::Loop hole_loop("holes");
        std::vector<std::unique_ptr<net::UdpSocket>> holes;
        std::vector<std::pair<std::string, uint16_t>> cands;
        hole_loop.call([&] {
            for (int i = 0; i < 2; ++i) {
                holes.push_back(std::make_unique<net::UdpSocket>(hole_loop, net::UdpOptions{"127.0.0.1", 0}));
                cands.emplace_back("127.0.0.1", holes.back()->local_address().port());
            }
        });
        auto config = viewer_for(make_ticket(fp, secret, cands));
        config.connect_timeout_ms = 700;
        std::string detail;
        auto start = std::chrono::steady_clock::now();
        CHECK(connect_error(config, &detail) == PP_ERR_UNREACHABLE);
        CHECK(std::chrono::steady_clock::now() - start < 3s);
        std::string expected = "host unreachable at 127.0.0.1:" + std::to_string(cands[0].second) + ", 127.0.0.1:" +
                               std::to_string(cands[1].second) + ": timed out after 0.7 s";
        CHECK(detail.substr(0, expected.size()) == expected);
        // No relay in this ticket: the message says one may be needed, and how to set it up.
        CHECK(detail.find("A relay is needed") != std::string::npos);
        CHECK(detail.find("--relay turn:") != std::string::npos);
        hole_loop.call([&] { holes.clear(); });
    }
}

TEST_CASE("the host stopping ends the viewer cleanly; the host vanishing is a lost connection", "[viewer]") {
    SECTION("clean stop") {
        Host host(loopback_host(), {});
        host.start();
        EventLog events;
        Viewer viewer(viewer_for(host.ticket_text()), events.sink());
        CHECK(viewer.wait(0) == PP_ERR_STATE);
        host.stop();
        CHECK(viewer.wait(3000) == PP_OK);
        auto stopped = events.wait_for(PP_EVENT_STOPPED, 1s);
        REQUIRE(stopped);
        CHECK(stopped->error == PP_OK);
    }
    SECTION("killed host") { check_host_gone(false); }
    SECTION("frozen host") { check_host_gone(true); }
}
