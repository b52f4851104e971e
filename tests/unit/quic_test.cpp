// QUIC over real loopback sockets: handshake with the pinned key, a byte-exact HTTP/3 transfer,
// refusal of an unpinned key before any request, malformed datagrams, idle timeout.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "common/random.hpp"
#include "tunnel_harness.hpp"

using namespace pp;
using namespace pp::test;

TEST_CASE("a client pulls 64 MiB over QUIC + HTTP/3, byte-exact", "[quic]") {
    constexpr uint64_t kLength = 64ull << 20;
    auto source = std::make_shared<stream::SyntheticSource>(stream::SyntheticConfig{kLength});
    Server server(synthetic_handler(source));
    Client client(server.port, server.identity->fingerprint());
    REQUIRE(client.up.wait(5s));

    std::shared_ptr<CheckingHandler> handler;
    client.loop.call([&] {
        handler = std::make_shared<CheckingHandler>(client.session());
        client.session()->request("GET", "/stream.ts", {}, handler);
    });
    REQUIRE(handler->finished.wait(30s));
    CHECK(handler->status == 200);
    CHECK(handler->ended);
    CHECK_FALSE(handler->failed);
    CHECK(handler->received == kLength);
    CHECK_FALSE(handler->mismatch.has_value());
    auto stats = client.loop.call([&] { return client.conn->stats(); });
    CHECK(stats.rx_bytes > kLength);
    CHECK(server.requests == 1);
}

TEST_CASE("a client refuses a server whose key is not the pinned one, before any request", "[quic]") {
    auto source = std::make_shared<stream::SyntheticSource>();
    Server server(synthetic_handler(source));
    Fingerprint wrong{};
    random_bytes(wrong);
    Client client(server.port, wrong);
    REQUIRE(client.down.wait(5s));
    CHECK_FALSE(client.up.is_set());
    REQUIRE(client.close_info);
    CHECK(client.close_info->kind == quic::CloseKind::key_mismatch);
    CHECK(client.close_info->detail.find("not the key the ticket pins") != std::string::npos);
    // The server saw a failed handshake and never an HTTP request.
    for (int i = 0; i < 50 && server.closed == 0; ++i) std::this_thread::sleep_for(20ms);
    CHECK(server.established == 0);
    CHECK(server.requests == 0);
}

TEST_CASE("malformed datagrams are ignored and the server keeps serving", "[quic]") {
    auto source = std::make_shared<stream::SyntheticSource>(stream::SyntheticConfig{1 << 20});
    Server server(synthetic_handler(source));

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    auto target = net::Address::parse("127.0.0.1", server.port);
    std::mt19937 rng(42);
    std::vector<uint8_t> buf(1400);
    for (int i = 0; i < 2000; ++i) {
        size_t len = rng() % buf.size() + 1;
        for (auto &b : buf) b = static_cast<uint8_t>(rng());
        if (i % 3 == 0) buf[0] = 0xc0 | (buf[0] & 0x0f);  // looks like a long header
        if (i % 5 == 0) {  // a QUIC v1 Initial header, truncated or with garbage after it
            buf[0] = 0xc3;
            buf[1] = 0;
            buf[2] = 0;
            buf[3] = 0;
            buf[4] = 1;
            buf[5] = 8;
        }
        if (i % 7 == 0) len = std::max<size_t>(len, 1200);  // Initial-sized
        sendto(fd, buf.data(), len, 0, target.sa(), target.len());
    }
    close(fd);

    Client client(server.port, server.identity->fingerprint());
    REQUIRE(client.up.wait(5s));
    std::shared_ptr<CheckingHandler> handler;
    client.loop.call([&] {
        handler = std::make_shared<CheckingHandler>(client.session());
        client.session()->request("GET", "/stream.ts", {}, handler);
    });
    bool finished = handler->finished.wait(10s);
    auto sstats = server.loop.call([&] { auto cs = server.endpoint->connections(); return cs.empty() ? quic::Connection::Stats{} : cs.back()->stats(); });
    auto cstats = client.loop.call([&] { return client.conn ? client.conn->stats() : quic::Connection::Stats{}; });
    auto csock = client.loop.call([&] { return client.endpoint->socket().counters(); });
    INFO("server conn rx " << sstats.rx_datagrams << " tx " << sstats.tx_datagrams << " client conn rx " << cstats.rx_datagrams << " tx " << cstats.tx_datagrams << " client sock tx " << csock.tx_datagrams << " failed " << csock.tx_failed << " calls " << csock.tx_calls);
    INFO("status " << handler->status << " received " << handler->received << " requests " << server.requests
         << " server connections " << server.open_connections() << " established " << server.established
         << " closed " << server.closed << " last close " << server.last_close_kind << " unroutable "
         << server.loop.call([&] { return server.endpoint->counters().unroutable; }) << " rx "
         << server.loop.call([&] { return server.endpoint->socket().counters().rx_datagrams; }) << " dropped "
         << server.loop.call([&] { return server.endpoint->socket().counters().dropped; }) << " accepted "
         << server.loop.call([&] { return server.endpoint->counters().accepted; }));
    REQUIRE(finished);
    CHECK(handler->received == (1u << 20));
    CHECK_FALSE(handler->mismatch.has_value());
    CHECK(server.requests == 1);
}

TEST_CASE("a peer that vanishes is freed by the idle timeout", "[quic]") {
    quic::TransportOptions fast;
    fast.idle_timeout_ms = 1000;
    fast.keep_alive_ms = 300;
    auto source = std::make_shared<stream::SyntheticSource>();
    Server server(synthetic_handler(source), fast);
    auto client = std::make_unique<Client>(server.port, server.identity->fingerprint(), fast);
    REQUIRE(client->up.wait(5s));
    REQUIRE(server.open_connections() == 1);
    // Silence the client without a CONNECTION_CLOSE: detach its packets from the connection.
    client->loop.call([&] { client->endpoint->socket().set_quic_handler(nullptr); });
    client->loop.call([&] { client->endpoint->socket().set_batch_end(nullptr); });
    auto start = std::chrono::steady_clock::now();
    // Keep the client from answering: its timers still send, but the server's replies go unread
    // and the client's own idle timer fires too. The server must drop it within ~1 s.
    while (server.open_connections() != 0 && std::chrono::steady_clock::now() - start < 5s)
        std::this_thread::sleep_for(50ms);
    CHECK(server.open_connections() == 0);
}

TEST_CASE("the server refuses any ALPN but pixelpass/1", "[quic]") {
    auto source = std::make_shared<stream::SyntheticSource>();
    Server server(synthetic_handler(source));
    quic::TransportOptions transport;
    transport.handshake_timeout_ms = 2000;
    Client client(server.port, server.identity->fingerprint(), transport, "127.0.0.1", "h3");
    REQUIRE(client.down.wait(5s));
    CHECK_FALSE(client.up.is_set());
    REQUIRE(client.close_info);
    CHECK(client.close_info->kind == quic::CloseKind::handshake_failed);
    CHECK(server.established == 0);
    CHECK(server.requests == 0);
}

TEST_CASE("keep-alive holds an idle connection open past the idle timeout", "[quic]") {
    quic::TransportOptions transport;
    transport.idle_timeout_ms = 800;
    transport.keep_alive_ms = 250;
    auto source = std::make_shared<stream::SyntheticSource>();
    Server server(synthetic_handler(source), transport);
    Client client(server.port, server.identity->fingerprint(), transport);
    REQUIRE(client.up.wait(5s));
    std::this_thread::sleep_for(2500ms);  // three idle timeouts without a request
    CHECK_FALSE(client.down.is_set());
    CHECK(server.open_connections() == 1);
    auto stats = client.loop.call([&] { return client.conn->stats(); });
    CHECK(stats.tx_datagrams > 5);  // the PINGs
}
