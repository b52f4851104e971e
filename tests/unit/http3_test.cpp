// HTTP/3 on a real QUIC connection over loopback: concurrent requests on one connection, short
// bodies and statuses, flow-control backpressure from a consumer that stops reading, cancelling a
// stream mid-body, a paced source that runs dry and is resumed, and oversized headers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <thread>

#include "common/error.hpp"
#include "tunnel_harness.hpp"

using namespace pp;
using namespace pp::test;

namespace {

std::shared_ptr<CheckingHandler> get(Client &client, const std::string &path, uint64_t stop_after = UINT64_MAX,
                                     std::vector<http3::Header> headers = {}) {
    return client.loop.call([&] {
        auto h = std::make_shared<CheckingHandler>(client.session(), stop_after);
        if (path != "/stream.ts") h->synthetic = false;
        client.session()->request("GET", path, headers, h);
        return h;
    });
}

} // namespace

TEST_CASE("several GETs run concurrently on one connection", "[http3]") {
    auto source = std::make_shared<stream::SyntheticSource>(stream::SyntheticConfig{16u << 20});
    Server server(synthetic_handler(source));
    Client client(server.port, server.identity->fingerprint());
    REQUIRE(client.up.wait(5s));
    std::vector<std::shared_ptr<CheckingHandler>> handlers;
    for (int i = 0; i < 4; ++i) handlers.push_back(get(client, "/stream.ts"));
    auto hello = get(client, "/hello", UINT64_MAX, {{"authorization", "Bearer 00"}});
    auto missing = get(client, "/nothing-here");
    for (auto &h : handlers) {
        REQUIRE(h->finished.wait(20s));
        CHECK(h->status == 200);
        CHECK(h->ended);
        CHECK(h->received == (16u << 20));
        CHECK_FALSE(h->mismatch.has_value());
    }
    REQUIRE(hello->finished.wait(5s));
    CHECK(hello->status == 200);
    CHECK(hello->body == "hello Bearer 00");
    bool has_length = false;
    for (auto &h : hello->headers) has_length |= h.name == "content-length" && h.value == "15";
    CHECK(has_length);
    REQUIRE(missing->finished.wait(5s));
    CHECK(missing->status == 404);
    CHECK(missing->body.empty());
    CHECK(server.requests == 6);
    // All of it on the one connection.
    CHECK(server.established == 1);
}

TEST_CASE("a consumer that stops reading stops the sender at the flow-control window", "[http3]") {
    auto source = std::make_shared<stream::SyntheticSource>(stream::SyntheticConfig{64u << 20});
    quic::TransportOptions transport;
    transport.stream_window = 2u << 20;
    transport.max_stream_window = 4u << 20;
    Server server(synthetic_handler(source), transport);
    Client client(server.port, server.identity->fingerprint(), transport);
    REQUIRE(client.up.wait(5s));
    auto h = client.loop.call([&] {
        auto handler = std::make_shared<CheckingHandler>(client.session());
        handler->auto_consume = false;
        client.session()->request("GET", "/stream.ts", {}, handler);
        return handler;
    });
    std::this_thread::sleep_for(500ms);
    uint64_t stalled = h->received;
    std::this_thread::sleep_for(300ms);
    CHECK(h->received == stalled);          // nothing more comes without credit
    CHECK(stalled <= transport.max_stream_window);
    CHECK(stalled > 0);
    // Credit what arrived, then let it run to the end.
    client.loop.call([&] {
        h->auto_consume = true;
        client.session()->consume(0, h->unconsumed.exchange(0));
    });
    REQUIRE(h->finished.wait(20s));
    CHECK(h->received == (64u << 20));
    CHECK_FALSE(h->mismatch.has_value());
}

TEST_CASE("cancelling a response mid-body releases the stream on both sides", "[http3]") {
    auto source = std::make_shared<stream::SyntheticSource>();  // endless
    Server server(synthetic_handler(source));
    Client client(server.port, server.identity->fingerprint());
    REQUIRE(client.up.wait(5s));
    auto h = get(client, "/stream.ts", 4u << 20);
    REQUIRE(h->finished.wait(10s));
    CHECK(h->received >= (4u << 20));
    CHECK_FALSE(h->mismatch.has_value());
    // The server sees the stream go: no open streams left on its session.
    size_t open = 1;
    for (int i = 0; i < 100 && open; ++i) {
        std::this_thread::sleep_for(10ms);
        open = server.loop.call([&] {
            auto conns = server.endpoint->connections();
            return conns.empty() ? size_t{0} : dynamic_cast<http3::ServerSession *>(conns[0]->app())->stats().open_streams;
        });
    }
    CHECK(open == 0);
    // The connection still serves.
    auto again = get(client, "/stream.ts", 1u << 20);
    REQUIRE(again->finished.wait(10s));
    CHECK(again->received >= (1u << 20));
}

TEST_CASE("a paced source that runs dry is resumed by its wake", "[http3]") {
    // 8 Mbit/s: 1 MB/s, so 300 kB takes about 0.3 s and the stream runs dry many times.
    stream::SyntheticConfig sc;
    sc.length = 300'000;
    sc.rate_bps = 8'000'000;
    auto source = std::make_shared<stream::SyntheticSource>(sc);
    std::unique_ptr<net::Waker> waker;
    Server *srv = nullptr;
    auto handler = [&](quic::Connection &c, const http3::Request &r) {
        return synthetic_handler(source, [&] { waker->wake(); })(c, r);
    };
    Server server(handler);
    srv = &server;
    server.loop.call([&] { waker = std::make_unique<net::Waker>(server.loop, [srv] { srv->resume_all(); }); });
    Client client(server.port, server.identity->fingerprint());
    REQUIRE(client.up.wait(5s));
    auto start = std::chrono::steady_clock::now();
    auto h = get(client, "/stream.ts");
    REQUIRE(h->finished.wait(5s));
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(h->ended);
    CHECK(h->received == 300'000u);
    CHECK_FALSE(h->mismatch.has_value());
    CHECK(took > 150ms);  // paced, not burst
    server.loop.call([&] { waker.reset(); });
}

TEST_CASE("an oversized header block gets 431", "[http3]") {
    auto source = std::make_shared<stream::SyntheticSource>();
    Server server(synthetic_handler(source));
    Client client(server.port, server.identity->fingerprint());
    REQUIRE(client.up.wait(5s));
    std::vector<http3::Header> big;
    for (int i = 0; i < 40; ++i) big.push_back({"x-filler-" + std::to_string(i), std::string(500, 'a')});
    auto h = get(client, "/hello", UINT64_MAX, big);
    REQUIRE(h->finished.wait(5s));
    CHECK(h->status == 431);
    CHECK(server.requests == 0);  // the handler never saw it
}

namespace {

// A reader whose release() throws, as fanout's does when the transport releases bytes it never
// read: the exception comes up inside nghttp3's acked_stream_data callback.
class ThrowingReader : public stream::Reader {
public:
    std::span<const uint8_t> read(size_t max) override {
        if (given_ >= kLength) return {};
        size_t n = std::min({max, kLength - given_, bytes_.size()});
        given_ += n;
        return {bytes_.data(), n};
    }
    void release(size_t) override { throw Error(PP_ERR_INVALID_ARGUMENT, "release() of bytes never read"); }
    bool at_end() const override { return given_ >= kLength; }
    nlohmann::json stats() const override { return {{"bytes", given_}, {"drops", 0}}; }

private:
    static constexpr size_t kLength = 4u << 20;
    std::vector<uint8_t> bytes_ = std::vector<uint8_t>(64 * 1024, 0x47);
    size_t given_ = 0;
};

} // namespace

TEST_CASE("an exception in an nghttp3 callback resets that stream only and is counted", "[http3]") {
    auto source = std::make_shared<stream::SyntheticSource>();
    auto good = synthetic_handler(source);
    Server server([good](quic::Connection &c, const http3::Request &r) {
        if (r.path != "/throws") return good(c, r);
        http3::Response resp;
        resp.reader = std::make_unique<ThrowingReader>();
        return resp;
    });
    Client client(server.port, server.identity->fingerprint());
    REQUIRE(client.up.wait(5s));
    auto bad = get(client, "/throws");
    REQUIRE(bad->finished.wait(20s));
    CHECK(bad->failed);  // reset, not a clean end
    CHECK_FALSE(bad->ended);
    auto errors = [&] {
        return server.loop.call([&] {
            auto conns = server.endpoint->connections();
            return conns.empty() ? uint64_t{0}
                                 : dynamic_cast<http3::ServerSession *>(conns[0]->app())->stats().callback_errors;
        });
    };
    CHECK(errors() >= 1);
    // The connection and its other streams carry on.
    auto after = get(client, "/stream.ts", 1u << 20);
    REQUIRE(after->finished.wait(10s));
    CHECK(after->received >= (1u << 20));
    CHECK_FALSE(after->mismatch.has_value());
    CHECK(server.established == 1);
    CHECK(server.closed == 0);
}
