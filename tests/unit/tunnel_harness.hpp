// Test harness for the tunnel: a QUIC/HTTP/3 server and client, each on its own loop thread with
// a real UDP socket on loopback, plus a response handler that checks a synthetic body byte by
// byte as it arrives. Shared by quic_test.cpp and http3_test.cpp (not a test by itself).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "http3/client.hpp"
#include "http3/server.hpp"
#include "identity/identity.hpp"
#include "net/loop.hpp"
#include "net/udp.hpp"
#include "quic/endpoint.hpp"
#include "stream/synthetic.hpp"

namespace pp::test {

using namespace std::chrono_literals;

// Waits for a condition set from a loop thread.
class Latch {
public:
    void set() {
        std::lock_guard lock(m_);
        done_ = true;
        cv_.notify_all();
    }
    bool wait(std::chrono::milliseconds timeout) {
        std::unique_lock lock(m_);
        return cv_.wait_for(lock, timeout, [&] { return done_; });
    }
    bool is_set() {
        std::lock_guard lock(m_);
        return done_;
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool done_ = false;
};

struct Server {
    net::Loop loop{"test-server"};
    std::shared_ptr<Identity> identity = Identity::generate();
    std::unique_ptr<quic::Endpoint> endpoint;
    std::atomic<int> requests{0}, established{0}, closed{0};
    std::atomic<int> last_close_kind{-1};
    uint16_t port = 0;

    explicit Server(http3::RequestHandler handler, quic::TransportOptions transport = {},
                    std::string bind = "127.0.0.1") {
        loop.call([&] {
            auto socket = std::make_unique<net::UdpSocket>(loop, net::UdpOptions{bind, 0});
            port = socket->local_address().port();
            quic::Observer observer;
            observer.established = [this](quic::Connection &) { ++established; };
            observer.closed = [this](quic::Connection &, const quic::CloseInfo &info) {
                last_close_kind = static_cast<int>(info.kind);
                ++closed;
            };
            endpoint = std::make_unique<quic::Endpoint>(loop, std::move(socket), observer);
            auto counted = [this, handler](quic::Connection &c, const http3::Request &r) {
                ++requests;
                return handler(c, r);
            };
            endpoint->listen({identity,
                              [counted](quic::Connection &c) {
                                  return std::make_unique<http3::ServerSession>(c, counted);
                              },
                              transport});
        });
    }
    ~Server() {
        loop.call([&] { endpoint.reset(); });
    }
    size_t open_connections() {
        return loop.call([&] { return endpoint->connections().size(); });
    }
    void resume_all() {
        for (auto *c : endpoint->connections())
            if (auto *s = dynamic_cast<http3::ServerSession *>(c->app())) s->resume_starved();
    }
};

// One client connection; `established`/`closed` latch when they happen.
struct Client {
    net::Loop loop{"test-client"};
    std::unique_ptr<quic::Endpoint> endpoint;
    quic::Connection *conn = nullptr;
    Latch up, down;
    std::optional<quic::CloseInfo> close_info;

    Client(uint16_t port, const Fingerprint &pin, quic::TransportOptions transport = {},
           std::string host = "127.0.0.1", std::string alpn = std::string(quic::kAlpn)) {
        loop.call([&] {
            auto socket = std::make_unique<net::UdpSocket>(loop, net::UdpOptions{});
            quic::Observer observer;
            observer.established = [this](quic::Connection &) { up.set(); };
            observer.closed = [this](quic::Connection &, const quic::CloseInfo &info) {
                close_info = info;
                conn = nullptr;
                down.set();
            };
            endpoint = std::make_unique<quic::Endpoint>(loop, std::move(socket), observer);
            conn = &endpoint->connect(net::Address::parse(host, port),
                                      {pin,
                                       [](quic::Connection &c) {
                                           return std::make_unique<http3::ClientSession>(c);
                                       },
                                       transport, alpn});
        });
    }
    ~Client() {
        loop.call([&] { endpoint.reset(); });
    }
    http3::ClientSession *session() { return conn ? dynamic_cast<http3::ClientSession *>(conn->app()) : nullptr; }
};

// Collects a response; checks a synthetic body incrementally and consumes (credits) it at once.
class CheckingHandler : public http3::ResponseHandler {
public:
    CheckingHandler(http3::ClientSession *session, uint64_t stop_after = UINT64_MAX)
        : session_(session), stop_after_(stop_after) {}

    void on_headers(int s, const std::vector<http3::Header> &h) override {
        status = s;
        headers = h;
        got_headers.set();
    }
    void on_data(int64_t stream_id, std::span<const uint8_t> data) override {
        if (synthetic) {
            if (!mismatch) {
                if (auto bad = stream::synthetic_mismatch(received, data)) mismatch = *bad;
            }
        } else {
            body.append(reinterpret_cast<const char *>(data.data()), data.size());
        }
        received += data.size();
        if (auto_consume)
            session_->consume(stream_id, data.size());
        else
            unconsumed += data.size();
        if (received >= stop_after_ && !finished.is_set()) {
            session_->cancel(stream_id);
            finished.set();
        }
    }
    void on_end() override {
        ended = true;
        finished.set();
    }
    void on_error(uint64_t code, const std::string &) override {
        error = code;
        failed = true;
        finished.set();
    }

    bool synthetic = true;
    bool auto_consume = true;        // credit flow control as soon as bytes arrive
    std::atomic<uint64_t> unconsumed{0};
    std::atomic<int> status{0};
    std::vector<http3::Header> headers;
    std::string body;
    std::atomic<uint64_t> received{0};
    std::optional<uint64_t> mismatch;
    std::atomic<bool> ended{false}, failed{false};
    uint64_t error = 0;
    Latch got_headers, finished;

private:
    http3::ClientSession *session_;
    uint64_t stop_after_;
};

// Serves a synthetic stream of `length` bytes on /stream.ts, a small text on /hello, 404 else.
inline http3::RequestHandler synthetic_handler(std::shared_ptr<stream::Source> source,
                                               std::function<void()> wake = {}) {
    return [source, wake](quic::Connection &, const http3::Request &r) {
        http3::Response resp;
        if (r.path == "/stream.ts") {
            resp.headers.push_back({"content-type", "video/mp2t"});
            resp.reader = source->subscribe(wake);
        } else if (r.path == "/hello") {
            resp.body = "hello " + r.authorization;
        } else {
            resp.status = 404;
        }
        return resp;
    };
}

} // namespace pp::test
