// The host's open port against a client that speaks QUIC and HTTP/3 directly (no pixelpass
// viewer to be polite): a refused request ends the connection, one connection gets at most two
// streams of the video, and the pre-auth limits of the QUIC endpoint (docs/SECURITY.md).
#include <catch2/catch.hpp>

#include <thread>

#include <nlohmann/json.hpp>

#include "host/host.hpp"
#include "ticket/ticket.hpp"
#include "tunnel_harness.hpp"

using namespace pp;
using namespace pp::test;

namespace {

HostConfig loopback(unsigned max_viewers = 2) {
    HostConfig c;
    c.source = "synthetic";
    c.bind_address = "127.0.0.1";
    c.max_viewers = max_viewers;
    return c;
}

struct Target {
    uint16_t port;
    Fingerprint pin;
    std::string bearer;  // what a ticket holder sends
};

Target target_of(const Host &host) {
    auto t = ticket::decode(host.ticket_text());
    return {t.candidates.front().port, t.fingerprint, "Bearer " + ticket::access_token(t.secret, t.expiry)};
}

std::shared_ptr<CheckingHandler> request(Client &client, const std::string &path, const std::string &bearer,
                                         uint64_t stop_after = UINT64_MAX) {
    return client.loop.call([&] {
        auto h = std::make_shared<CheckingHandler>(client.session(), stop_after);
        h->synthetic = path == "/stream.ts";  // checked as it comes, not kept
        client.session()->request("GET", path, {{"authorization", bearer}}, h);
        return h;
    });
}

nlohmann::json stats(const Host &host) { return nlohmann::json::parse(host.stats_json()); }

} // namespace

TEST_CASE("a request with the wrong secret gets 401 and then the connection is closed", "[security]") {
    Host host(loopback(), {});
    host.start();
    Target t = target_of(host);
    Client client(t.port, t.pin);
    REQUIRE(client.up.wait(5s));
    auto refused = request(client, "/info", "Bearer 00112233445566778899aabbccddeeff");
    REQUIRE(refused->finished.wait(10s));
    CHECK(refused->status == 401);
    // The host, not the client, ends it: no second guess on the same connection.
    REQUIRE(client.down.wait(10s));
    REQUIRE(client.close_info);
    CHECK(client.close_info->kind == quic::CloseKind::peer);
    auto s = stats(host);
    CHECK(s["totals"]["refused_auth"] == 1);
    CHECK(s["viewers"].empty());  // a refused connection never held a viewer slot
}

TEST_CASE("one connection gets at most two concurrent streams of the video", "[security]") {
    // Paced (8 Mbit/s), as the real video is: an unpaced endless stream would keep the others'
    // headers queued behind it.
    HostConfig config = loopback();
    config.bitrate_kbps = 8000;
    Host host(config, {});
    host.start();
    Target t = target_of(host);
    Client client(t.port, t.pin);
    REQUIRE(client.up.wait(5s));
    auto first = request(client, "/stream.ts", t.bearer);
    auto second = request(client, "/stream.ts", t.bearer);
    REQUIRE(first->got_headers.wait(10s));
    REQUIRE(second->got_headers.wait(10s));
    CHECK(first->status == 200);
    CHECK(second->status == 200);
    auto third = request(client, "/stream.ts", t.bearer);
    REQUIRE(third->finished.wait(10s));
    CHECK(third->status == 429);
    auto s = stats(host);
    CHECK(s["totals"]["refused_streams"] == 1);
    CHECK(s["viewers"].size() == 1);
    // The connection itself is fine: other requests are served.
    auto info = request(client, "/info", t.bearer);
    REQUIRE(info->finished.wait(10s));
    CHECK(info->status == 200);
}

TEST_CASE("connections that never authenticate are capped per source address", "[security]") {
    Host host(loopback(), {});
    host.start();
    Target t = target_of(host);
    // Ten completed handshakes from one address that never send the secret: the host keeps at
    // most 8 of them (quic::ServerOptions::max_unauthenticated_per_source) and refuses the rest.
    std::vector<std::unique_ptr<Client>> idle;
    int up = 0;
    for (int i = 0; i < 10; ++i) {
        auto c = std::make_unique<Client>(t.port, t.pin);
        if (c->up.wait(3s)) {
            ++up;
            idle.push_back(std::move(c));
        }  // else: refused, and gone (it would keep retrying for the next free slot)
    }
    CHECK(up == 8);
    auto s = stats(host);
    CHECK(s["quic"]["refused_source"] >= 2);
    CHECK(s["quic"]["unauthenticated"] == 8);
    // Once an idle one leaves, a ticket holder from the same address gets in.
    idle.front().reset();
    for (int i = 0; i < 500 && stats(host)["quic"]["unauthenticated"] != 7; ++i) std::this_thread::sleep_for(20ms);
    REQUIRE(stats(host)["quic"]["unauthenticated"] == 7);
    Client viewer(t.port, t.pin);
    REQUIRE(viewer.up.wait(10s));
    auto info = request(viewer, "/info", t.bearer);
    REQUIRE(info->finished.wait(10s));
    CHECK(info->status == 200);
    CHECK(stats(host)["quic"]["unauthenticated"] == 7);  // the viewer left the pre-auth count
}

TEST_CASE("refusals are counted, but their events do not flood the log", "[security]") {
    std::atomic<int> refused_events{0};
    Host host(loopback(), [&](const Event &e) {
        if (e.type == PP_EVENT_VIEWER_REFUSED) ++refused_events;
    });
    host.start();
    Target t = target_of(host);
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 30; ++i) {
        Client client(t.port, t.pin);
        REQUIRE(client.up.wait(5s));
        auto refused = request(client, "/info", "Bearer wrong");
        REQUIRE(refused->finished.wait(10s));
        CHECK(refused->status == 401);
    }
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    auto s = stats(host);
    CHECK(s["totals"]["refused_auth"] == 30);
    CHECK(refused_events <= 10 + static_cast<int>(elapsed) + 1);  // a burst of 10, then 1 per second
    CHECK(s["totals"]["refusals_not_logged"].get<int>() + refused_events == 30);
}
