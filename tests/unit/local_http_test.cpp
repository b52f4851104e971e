// local_http: the viewer's HTTP/1.1 server for players, over real TCP sockets on 127.0.0.1.
// The upstream is a real implementation of the interface backed by the synthetic source (what the
// tunnel does with an HTTP/3 response body, minus QUIC); clients are raw sockets with their own
// minimal response parser, and curl as an independent client.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "net/loop.hpp"
#include "viewer/http_request.hpp"
#include "stream/synthetic.hpp"
#include "viewer/live_queue.hpp"
#include "viewer/local_http.hpp"
#include "fanout/ts.hpp"
#include "ts_packets.hpp"

using namespace pp;
using namespace pp::viewer;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t MiB = 1024 * 1024;

template <typename Pred> bool wait_until(Pred pred, std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// An Upstream that serves the synthetic source the way the tunnel serves a host's response:
// headers a loop turn after open(), body in slices per loop turn, honouring body()'s backpressure.
class SyntheticUpstream final : public Upstream {
public:
    struct Failure {
        pp_result code;
        std::string reason;
        bool synchronous = false; // end() from inside open() (vs. a loop turn later)
        bool throw_in_open = false;
    };

    SyntheticUpstream(net::Loop &loop, stream::SyntheticConfig config)
        : loop_(loop), source_(config) {}
    // Tasks this upstream posted may still be queued: let them run (they find no request).
    ~SyntheticUpstream() override {
        loop_.call([] {});
    }

    void fail_next(std::optional<Failure> failure) {
        std::lock_guard lock(mutex_);
        failure_ = std::move(failure);
    }
    // Requests end with `error` once this many body bytes went out (0 = never).
    void break_after(uint64_t bytes, pp_result error) {
        std::lock_guard lock(mutex_);
        break_after_ = bytes;
        break_with_ = error;
    }
    std::vector<std::string> paths() const {
        std::lock_guard lock(mutex_);
        return paths_;
    }

    std::atomic<int> opened{0}, live{0}, pauses{0}, resumes{0};
    // Interface contract breaches seen by the upstream (checked on the test thread: Catch
    // assertions are not thread-safe).
    std::atomic<int> violations{0};
    std::atomic<uint64_t> generated{0};

    std::unique_ptr<UpstreamRequest> open(const std::string &path, LocalResponse &sink) override {
        if (!loop_.on_loop_thread()) ++violations;
        ++opened;
        std::optional<Failure> failure;
        {
            std::lock_guard lock(mutex_);
            paths_.push_back(path);
            failure = failure_;
        }
        if (failure && failure->throw_in_open) throw Error(failure->code, failure->reason);
        if (failure && failure->synchronous) {
            sink.end(failure->code, failure->reason);
            return nullptr;
        }
        auto request = std::make_unique<Request>(*this, next_id_++, sink, failure);
        request->post_pump();
        return request;
    }

private:
    class Request final : public UpstreamRequest {
    public:
        Request(SyntheticUpstream &up, uint64_t id, LocalResponse &sink,
                std::optional<Failure> failure)
            : up_(up), id_(id), sink_(sink), failure_(std::move(failure)),
              reader_(
                  up.source_.subscribe([&up, id] { up.loop_.post([&up, id] { up.pump(id); }); })) {
            up_.requests_[id_] = this;
            ++up_.live;
        }
        ~Request() override {
            if (!up_.loop_.on_loop_thread()) ++up_.violations;
            reader_.reset(); // no wake after this
            up_.requests_.erase(id_);
            --up_.live;
        }

        // Synchronous on purpose: the server must take body() calls from inside resume().
        void resume() override {
            ++up_.resumes;
            if (!paused_ || !up_.loop_.on_loop_thread())
                ++up_.violations; // resume() owed only after pause
            paused_ = false;
            pump();
        }

        void post_pump() {
            up_.loop_.post([&up = up_, id = id_] { up.pump(id); });
        }

        void pump() {
            if (paused_ || done_) return;
            if (!started_) {
                started_ = true;
                if (failure_) {
                    done_ = true;
                    sink_.end(failure_->code, failure_->reason);
                    return;
                }
                sink_.start("video/mp2t");
            }
            uint64_t break_after;
            pp_result break_with;
            {
                std::lock_guard lock(up_.mutex_);
                break_after = up_.break_after_;
                break_with = up_.break_with_;
            }
            size_t budget = 1 * MiB; // then yield to the loop, as a network source would
            while (budget > 0) {
                auto span = reader_->read(std::min<size_t>(budget, 256 * 1024));
                if (span.empty()) {
                    if (reader_->at_end()) {
                        done_ = true;
                        sink_.end(PP_OK);
                    }
                    return; // a paced source wakes us
                }
                bool more = sink_.body(span);
                sent_ += span.size();
                up_.generated += span.size();
                budget -= span.size();
                reader_->release(span.size());
                if (break_after && sent_ >= break_after) {
                    done_ = true;
                    sink_.end(break_with, "the host went away");
                    return;
                }
                if (!more) {
                    paused_ = true;
                    ++up_.pauses;
                    return;
                }
            }
            post_pump();
        }

    private:
        SyntheticUpstream &up_;
        const uint64_t id_;
        LocalResponse &sink_;
        std::optional<Failure> failure_;
        std::unique_ptr<stream::Reader> reader_;
        bool started_ = false, paused_ = false, done_ = false;
        uint64_t sent_ = 0;
    };

    void pump(uint64_t id) {
        auto it = requests_.find(id);
        if (it != requests_.end()) it->second->pump();
    }

    net::Loop &loop_;
    stream::SyntheticSource source_;
    mutable std::mutex mutex_;
    std::optional<Failure> failure_;
    uint64_t break_after_ = 0;
    pp_result break_with_ = PP_OK;
    std::vector<std::string> paths_;
    uint64_t next_id_ = 1;
    std::map<uint64_t, Request *> requests_; // loop thread only
};

// Client failures throw (Catch macros are for the test thread; players run on threads too).
void expect(bool ok, const std::string &what) {
    if (!ok) throw std::runtime_error(what);
}

// A blocking HTTP/1.1 client on a raw socket, with its own (deliberately simple) response parser.
class Client {
public:
    struct Head {
        int status = 0;
        std::map<std::string, std::string> headers; // names lowercased
        bool has(const std::string &name) const { return headers.count(name) != 0; }
    };

    explicit Client(uint16_t port, int rcvbuf = 0) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        expect(fd_ >= 0, "socket failed");
        if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        timeval tv{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        expect(::connect(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0,
               std::string("connect: ") + std::strerror(errno));
    }
    ~Client() { close(); }
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;

    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

    void send(std::string_view data) {
        while (!data.empty()) {
            ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            expect(n > 0, std::string("send: ") + std::strerror(errno));
            data.remove_prefix(static_cast<size_t>(n));
        }
    }
    void get(const std::string &path, const char *method = "GET") {
        send(std::string(method) + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
             "User-Agent: pixelpass-test\r\nAccept: */*\r\n\r\n");
    }

    Head read_head() {
        std::string buf = std::move(leftover_);
        leftover_.clear();
        size_t end;
        while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
            char tmp[4096];
            ssize_t n = recv_some(tmp, sizeof tmp);
            expect(n > 0, "connection closed before the response head");
            buf.append(tmp, static_cast<size_t>(n));
            expect(buf.size() < 65536, "response head too long");
        }
        leftover_ = buf.substr(end + 4);
        std::istringstream lines(buf.substr(0, end));
        std::string line;
        std::getline(lines, line);
        Head head;
        expect(line.rfind("HTTP/1.1 ", 0) == 0, "bad status line: " + line);
        head.status = std::stoi(line.substr(9, 3));
        while (std::getline(lines, line)) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            auto colon = line.find(':');
            expect(colon != std::string::npos, "bad header line: " + line);
            std::string name = line.substr(0, colon);
            for (auto &c : name) c = static_cast<char>(std::tolower(c));
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            head.headers[name] = value;
        }
        return head;
    }

    // Next body bytes; 0 at end of stream. A reset counts as the end only if allowed.
    size_t read(uint8_t *out, size_t max) {
        if (!leftover_.empty()) {
            size_t n = std::min(max, leftover_.size());
            std::memcpy(out, leftover_.data(), n);
            leftover_.erase(0, n);
            return n;
        }
        return static_cast<size_t>(recv_some(reinterpret_cast<char *>(out), max));
    }

    std::string read_to_end() {
        std::string all = std::move(leftover_);
        leftover_.clear();
        char tmp[4096];
        for (;;) {
            ssize_t n = recv_some(tmp, sizeof tmp);
            if (n == 0) return all;
            all.append(tmp, static_cast<size_t>(n));
        }
    }

    // Reads the body to the end, checking it byte for byte against the synthetic stream.
    uint64_t read_verified(uint64_t limit = UINT64_MAX) {
        std::vector<uint8_t> buf(256 * 1024);
        uint64_t offset = 0;
        while (offset < limit) {
            size_t n = read(buf.data(), std::min<uint64_t>(buf.size(), limit - offset));
            if (n == 0) break;
            auto bad = stream::synthetic_mismatch(offset, std::span(buf.data(), n));
            expect(!bad, "body byte " + std::to_string(bad.value_or(0)) +
                             " differs from the synthetic stream");
            offset += n;
        }
        return offset;
    }

    // True when the server closes the connection (EOF or reset) within `timeout`.
    bool closed_within(std::chrono::milliseconds timeout) {
        pollfd p{fd_, POLLIN, 0};
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return false;
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            char tmp[4096];
            ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
            if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
        }
    }

private:
    ssize_t recv_some(char *out, size_t max) {
        for (;;) {
            ssize_t n = ::recv(fd_, out, max, 0);
            if (n >= 0) return n;
            if (errno == EINTR) continue;
            expect(errno != EAGAIN && errno != EWOULDBLOCK, "timed out waiting for the server");
            expect(false, std::string("recv: ") + std::strerror(errno));
        }
    }

    int fd_ = -1;
    std::string leftover_;
};

// Loop, upstream and server, torn down in the safe order (server, upstream, loop).
struct Harness {
    explicit Harness(stream::SyntheticConfig config = {}, LocalHttpOptions options = {})
        : upstream(loop, config) {
        options.log = [this](pp_log_level, const std::string &line) {
            std::lock_guard lock(log_mutex);
            log_lines.push_back(line);
        };
        token = LocalHttpServer::make_token();
        server = std::make_unique<LocalHttpServer>(loop, 0, token, upstream, options);
    }
    ~Harness() {
        server.reset();
        CHECK(upstream.live == 0);
        CHECK(upstream.violations == 0);
    }

    std::string path() const { return "/" + token + ".ts"; }
    uint16_t port() const { return server->port(); }
    nlohmann::json stats() const { return server->stats(); }
    std::vector<std::string> logs() {
        std::lock_guard lock(log_mutex);
        return log_lines;
    }

    net::Loop loop{"pp-test-http"};
    SyntheticUpstream upstream;
    std::string token;
    std::mutex log_mutex;
    std::vector<std::string> log_lines;
    std::unique_ptr<LocalHttpServer> server;
};

stream::SyntheticConfig finite_stream(uint64_t length) {
    stream::SyntheticConfig c;
    c.length = length;
    return c;
}

} // namespace

TEST_CASE("the secret path streams the synthetic source byte-exact", "[local_http]") {
    const uint64_t length = 48 * MiB;
    Harness h(finite_stream(length));
    CHECK(h.server->url() == "http://127.0.0.1:" + std::to_string(h.port()) + h.path());
    CHECK(h.token.size() == 32);

    Client c(h.port());
    c.get(h.path());
    auto head = c.read_head();
    CHECK(head.status == 200);
    CHECK(head.headers["content-type"] == "video/mp2t");
    CHECK(head.headers["connection"] == "close");
    CHECK(head.headers["cache-control"] == "no-store");
    CHECK_FALSE(head.has("content-length")); // the body runs until close
    CHECK_FALSE(head.has("transfer-encoding"));
    CHECK(c.read_verified() == length);

    CHECK(h.upstream.paths() == std::vector<std::string>{"/stream.ts"});
    CHECK(wait_until([&] { return h.upstream.live == 0; }));
    CHECK(wait_until([&] { return h.stats()["clients"] == 0; }));
    auto stats = h.stats();
    CHECK(stats["bytes"] == length);
    CHECK(stats["requests"] == 1);
    CHECK(stats["upstream_errors"] == 0);
    CHECK(stats["peak_backlog"].get<uint64_t>() <= 4 * MiB + 256 * 1024);
    for (auto &line : h.logs()) CHECK(line.find(h.token) == std::string::npos);
}

TEST_CASE("curl, an independent client, gets the exact stream and HEAD", "[local_http]") {
    REQUIRE(::access("/usr/bin/curl", X_OK) == 0); // Debian package: curl
    const uint64_t length = 8 * MiB + 77;
    Harness h(finite_stream(length));

    std::string command = "/usr/bin/curl -sS --fail --max-time 20 '" + h.server->url() + "'";
    FILE *pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe);
    std::vector<uint8_t> buf(65536);
    uint64_t offset = 0;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) {
        auto bad = stream::synthetic_mismatch(offset, std::span(buf.data(), n));
        if (bad) FAIL("curl got a wrong byte at " << *bad);
        offset += n;
    }
    CHECK(::pclose(pipe) == 0);
    CHECK(offset == length);

    // HEAD: 200 with the stream's headers and no body; the upstream request is let go.
    command = "/usr/bin/curl -sS --fail --max-time 10 -I '" + h.server->url() + "'";
    pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe);
    std::string out;
    while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0)
        out.append(reinterpret_cast<char *>(buf.data()), n);
    CHECK(::pclose(pipe) == 0);
    CHECK(out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(out.find("Content-Type: video/mp2t\r\n") != std::string::npos);
    CHECK(h.upstream.opened == 2);
    CHECK(wait_until([&] { return h.upstream.live == 0; }));
}

TEST_CASE("HEAD over a raw socket sends headers only, then closes", "[local_http]") {
    Harness h; // endless stream: HEAD must not wait for its end
    Client c(h.port());
    c.get(h.path(), "HEAD");
    auto head = c.read_head();
    CHECK(head.status == 200);
    CHECK(head.headers["content-type"] == "video/mp2t");
    CHECK(c.read_to_end().empty());
    CHECK(wait_until([&] { return h.upstream.live == 0; }));
}

TEST_CASE("any path but the secret one is 404 and never reaches the upstream", "[local_http]") {
    Harness h(finite_stream(1000));
    std::string wrong_token(h.token);
    wrong_token[5] = wrong_token[5] == 'a' ? 'b' : 'a';
    for (const std::string &path :
         {std::string("/"), std::string("/stream.ts"), "/" + wrong_token + ".ts", "/" + h.token,
          "/" + h.token + ".tsx", "/" + h.token + ".ts/x", "/x/" + h.token + ".ts",
          std::string("/info")}) {
        Client c(h.port());
        c.get(path);
        auto head = c.read_head();
        INFO(path);
        CHECK(head.status == 404);
        CHECK(head.headers["content-type"] == "application/json");
        auto body = c.read_to_end();
        CHECK(body.size() == std::stoul(head.headers["content-length"]));
        CHECK(nlohmann::json::parse(body)["error"] == "not found");
    }
    CHECK(h.upstream.opened == 0);
    CHECK(h.stats()["refused"] == 8);

    // A query string and the absolute form still name the secret path.
    for (const std::string &target :
         {h.path() + "?start=0", "http://127.0.0.1:" + std::to_string(h.port()) + h.path()}) {
        Client c(h.port());
        c.get(target);
        CHECK(c.read_head().status == 200);
        CHECK(c.read_verified() == 1000);
    }
    for (auto &line : h.logs()) CHECK(line.find(h.token) == std::string::npos);
}

TEST_CASE("garbage, other methods and oversized headers get 4xx", "[local_http]") {
    Harness h;
    SECTION("garbage is 400") {
        Client c(h.port());
        c.send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", 23));
        CHECK(c.read_head().status == 400);
        CHECK(c.closed_within(3s));
    }
    SECTION("a broken request line is 400") {
        Client c(h.port());
        c.send("GET /" + h.token + ".ts HTTP/9\r\n\r\n");
        CHECK(c.read_head().status == 400);
    }
    SECTION("a client that half-closes after garbage still gets its 400") {
        Client c(h.port());
        c.send("NOT HTTP AT ALL\r\n\r\n");
        c.shutdown_write();
        CHECK(c.read_head().status == 400);
        CHECK(c.closed_within(3s));
    }
    SECTION("POST is 405 with Allow") {
        Client c(h.port());
        c.send("POST " + h.path() + " HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        auto head = c.read_head();
        CHECK(head.status == 405);
        CHECK(head.headers["allow"] == "GET, HEAD");
    }
    SECTION("headers over the limit are 431") {
        Client c(h.port());
        std::string request = "GET " + h.path() + " HTTP/1.1\r\n";
        for (int i = 0; i < 400; ++i)
            request += "X-Padding-" + std::to_string(i) + ": " + std::string(60, 'p') + "\r\n";
        request += "\r\n";
        c.send(request.substr(0, 17000)); // never completes within 16 KiB
        CHECK(c.read_head().status == 431);
    }
    CHECK(h.upstream.opened == 0);
    // The server survives all of it.
    Client ok(h.port());
    ok.get(h.path());
    CHECK(ok.read_head().status == 200);
    CHECK(ok.read_verified(MiB) == MiB);
}

TEST_CASE("random bytes never crash the server or reach the upstream", "[local_http]") {
    LocalHttpOptions options;
    options.header_timeout = 200ms; // incomplete junk gets its 408 quickly
    Harness h({}, options);
    std::mt19937 rng(20240601);
    int answered = 0;
    for (int i = 0; i < 60; ++i) {
        std::string junk(1 + rng() % 3000, '\0');
        for (auto &c : junk) c = static_cast<char>(rng());
        if (i % 3 == 0) junk = "GET /" + junk; // past the method, into the target and headers
        Client c(h.port());
        c.send(junk);
        std::string reply = c.read_to_end(); // the server always ends the connection
        INFO("junk #" << i);
        if (!reply.empty()) {
            ++answered;
            CHECK(reply.rfind("HTTP/1.1 4", 0) == 0);
        }
    }
    CHECK(answered == 60); // 400, 405, 431 or 408: always an answer, never a hang
    CHECK(h.upstream.opened == 0);
    Client ok(h.port());
    ok.get(h.path());
    CHECK(ok.read_head().status == 200);
    CHECK(ok.read_verified(MiB) == MiB);
}

TEST_CASE("slow and silent clients time out with 408", "[local_http]") {
    LocalHttpOptions options;
    options.header_timeout = 300ms;
    Harness h({}, options);

    Client silent(h.port());
    Client slowloris(h.port());
    auto start = std::chrono::steady_clock::now();
    slowloris.send("GET " + h.path() + " HTTP/1.1\r\n");
    std::this_thread::sleep_for(100ms);
    slowloris.send("X-A: 1\r\n"); // trickling headers does not extend the deadline
    auto head = slowloris.read_head();
    auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(head.status == 408);
    CHECK(elapsed >= 290ms);
    CHECK(elapsed < 2s);
    CHECK(slowloris.closed_within(3s));
    CHECK(silent.read_head().status == 408);
    CHECK(silent.closed_within(3s));
    CHECK(h.upstream.opened == 0);
    // The server lingers after its response until the client closes (or 2 s pass).
    CHECK(h.stats()["connections"] == 2);
    silent.close();
    slowloris.close();
    CHECK(wait_until([&] { return h.stats()["connections"] == 0; }, 1000ms));
}

TEST_CASE("two players at once each get the whole stream", "[local_http]") {
    const uint64_t length = 24 * MiB;
    Harness h(finite_stream(length));
    std::atomic<bool> both_seen{false};
    std::mutex errors_mutex;
    std::vector<std::string> errors;
    auto player = [&](uint64_t *got, int *status) {
        try {
            Client c(h.port());
            c.get(h.path());
            *status = c.read_head().status;
            *got = c.read_verified();
        } catch (const std::exception &e) {
            std::lock_guard lock(errors_mutex);
            errors.push_back(e.what());
        }
    };
    uint64_t got1 = 0, got2 = 0;
    int s1 = 0, s2 = 0;
    std::thread watcher(
        [&] { both_seen = wait_until([&] { return h.stats()["clients"] == 2; }, 5000ms); });
    std::thread t1(player, &got1, &s1), t2(player, &got2, &s2);
    t1.join();
    t2.join();
    watcher.join();
    CHECK(errors.empty());
    for (auto &e : errors) UNSCOPED_INFO(e);
    CHECK(s1 == 200);
    CHECK(s2 == 200);
    CHECK(got1 == length);
    CHECK(got2 == length);
    CHECK(h.upstream.opened == 2);
    CHECK(both_seen);
    CHECK(wait_until([&] { return h.stats()["bytes"] == 2 * length; }));
}

TEST_CASE("a slow player pauses the upstream and server memory stays bounded", "[local_http]") {
    Harness h; // endless
    Client c(h.port(), 64 * 1024);
    c.get(h.path());
    REQUIRE(c.read_head().status == 200);

    // Read at most ~6 MB/s, far below what the upstream could produce, until the upstream has
    // been paused and resumed a few times (each cycle drains 3 MiB, high- to low-water mark).
    std::vector<uint8_t> buf(96 * 1024);
    uint64_t received = 0;
    uint64_t peak_gap = 0;
    auto start = std::chrono::steady_clock::now();
    while ((h.upstream.pauses < 3 || h.upstream.resumes < 2) &&
           std::chrono::steady_clock::now() - start < 10s) {
        size_t want = buf.size(), got = 0;
        while (got < want) {
            size_t n = c.read(buf.data() + got, want - got);
            REQUIRE(n > 0);
            got += n;
        }
        auto bad = stream::synthetic_mismatch(received, std::span(buf.data(), got));
        if (bad) FAIL("wrong byte at " << *bad);
        received += got;
        peak_gap = std::max(peak_gap, h.upstream.generated.load() - received);
        std::this_thread::sleep_for(15ms);
    }
    auto stats = h.stats();
    INFO("received " << received << ", upstream generated " << h.upstream.generated << ", peak gap "
                     << peak_gap << ", stats " << stats.dump());
    CHECK(h.upstream.pauses >= 3);
    CHECK(h.upstream.resumes >= 2);
    // The server's own queue never goes much past the high-water mark (plus one slice).
    CHECK(stats["peak_backlog"].get<uint64_t>() <= 4 * MiB + 256 * 1024);
    REQUIRE(stats["players"].size() == 1);
    CHECK(stats["players"][0]["backlog"].get<uint64_t>() <= 4 * MiB + 256 * 1024);
    // What the upstream produced beyond what the player took: the server's queue plus the
    // kernel's socket buffers (a few MiB on loopback) — not the whole stream.
    CHECK(peak_gap < 16 * MiB);
    CHECK(h.upstream.generated < received + 16 * MiB);
}

TEST_CASE("a player that leaves cancels its upstream request", "[local_http]") {
    Harness h; // endless
    {
        Client c(h.port());
        c.get(h.path());
        REQUIRE(c.read_head().status == 200);
        CHECK(c.read_verified(3 * MiB) == 3 * MiB);
        CHECK(h.upstream.live == 1);
        CHECK(h.stats()["clients"] == 1);
    } // closed mid-stream
    CHECK(wait_until([&] { return h.upstream.live == 0; }, 3000ms));
    CHECK(wait_until([&] { return h.stats()["clients"] == 0; }));
    CHECK(wait_until([&] { return h.stats()["connections"] == 0; }));
    auto logs = h.logs();
    CHECK(std::any_of(logs.begin(), logs.end(),
                      [](auto &l) { return l.find("left after") != std::string::npos; }));

    // And one that disconnects before the upstream answered at all.
    {
        Client c(h.port());
        c.get(h.path());
    }
    CHECK(wait_until([&] { return h.upstream.opened == 2 && h.upstream.live == 0; }, 3000ms));
}

TEST_CASE("upstream failures map to HTTP statuses with their reasons", "[local_http]") {
    Harness h;
    struct Case {
        pp_result code;
        std::string reason;
        bool synchronous;
        bool throws;
        int status;
    };
    const std::string full = R"({"error":"host is full","cap":2,"current":2})";
    for (const Case &k :
         {Case{PP_ERR_HOST_FULL, full, true, false, 503},
          Case{PP_ERR_HOST_FULL, full, false, false, 503},
          Case{PP_ERR_TICKET_REJECTED, "ticket rejected by host", false, false, 403},
          Case{PP_ERR_HOST_KEY_MISMATCH, "", true, false, 403},
          Case{PP_ERR_UNREACHABLE, "host unreachable at 192.0.2.1:4433", false, false, 502},
          Case{PP_ERR_CONNECTION_LOST, "the host went away", true, false, 502},
          Case{PP_ERR_CONNECTION_LOST, "no connection", false, true, 502}}) {
        INFO(pp::result_name(k.code)
             << (k.synchronous ? " sync" : " async") << (k.throws ? " thrown" : ""));
        h.upstream.fail_next(SyntheticUpstream::Failure{k.code, k.reason, k.synchronous, k.throws});
        Client c(h.port());
        c.get(h.path());
        auto head = c.read_head();
        CHECK(head.status == k.status);
        CHECK(head.headers["content-type"] == "application/json");
        auto body = c.read_to_end();
        CHECK(body.size() == std::stoul(head.headers["content-length"]));
        auto json = nlohmann::json::parse(body);
        if (k.reason == full) {
            CHECK(body == full); // the host's own JSON reason, untouched
        } else {
            CHECK(json["code"] == static_cast<int>(k.code));
            CHECK(json["error"] == pp::result_name(k.code));
            if (!k.reason.empty()) CHECK(json["message"] == k.reason);
        }
        // HEAD gets the same status, without the body.
        Client hc(h.port());
        hc.get(h.path(), "HEAD");
        auto hhead = hc.read_head();
        CHECK(hhead.status == k.status);
        CHECK(hc.read_to_end().empty());
    }
    CHECK(wait_until([&] { return h.upstream.live == 0; }));
    CHECK(h.stats()["upstream_errors"] == 14);
    CHECK(local_http_status(PP_ERR_TICKET_EXPIRED) == 403);
    CHECK(local_http_status(PP_ERR_PROTOCOL) == 502);

    // A stream that breaks mid-way: the player gets every byte sent so far, then the close.
    h.upstream.fail_next(std::nullopt);
    h.upstream.break_after(5 * MiB, PP_ERR_CONNECTION_LOST);
    Client c(h.port());
    c.get(h.path());
    REQUIRE(c.read_head().status == 200);
    uint64_t got = c.read_verified();
    CHECK(got >= 5 * MiB);
    CHECK(got < 5 * MiB + 1 * MiB);
    CHECK(wait_until([&] { return h.upstream.live == 0; }));
}

TEST_CASE("a paced upstream trickles through and the player sees each burst", "[local_http]") {
    stream::SyntheticConfig config;
    config.rate_bps = 16'000'000; // 2 MB/s
    config.length = 1'000'000;
    Harness h(config);
    Client c(h.port());
    auto start = std::chrono::steady_clock::now();
    c.get(h.path());
    REQUIRE(c.read_head().status == 200);
    CHECK(c.read_verified() == 1'000'000);
    auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(elapsed >= 450ms); // 1 MB at 2 MB/s, minus the first 20 kB burst
    CHECK(elapsed < 3s);
}

TEST_CASE("listening is on 127.0.0.1 only, tokens are fresh, limits hold", "[local_http]") {
    Harness h;
    // /proc/net/tcp lists the listener as 0100007F:<port hex> (127.0.0.1), not 00000000.
    std::ifstream tcp("/proc/net/tcp");
    std::string line;
    char port_hex[8];
    std::snprintf(port_hex, sizeof port_hex, ":%04X", h.port());
    bool found = false;
    while (std::getline(tcp, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state;
        fields >> slot >> local >> remote >> state;
        if (state == "0A" && local.size() > 5 && local.substr(local.size() - 5) == port_hex) {
            CHECK(local == std::string("0100007F") + port_hex);
            found = true;
        }
    }
    CHECK(found);

    // The port is taken: a clear I/O error.
    try {
        LocalHttpServer clash(h.loop, h.port(), "abc", h.upstream);
        FAIL("a second server bound the same port");
    } catch (const Error &e) {
        CHECK(e.code() == PP_ERR_IO);
        CHECK(std::string(e.what()).find(std::to_string(h.port())) != std::string::npos);
    }
    CHECK_THROWS_AS(LocalHttpServer(h.loop, 0, "../x", h.upstream), Error);
    CHECK_THROWS_AS(LocalHttpServer(h.loop, 0, "", h.upstream), Error);

    auto t1 = LocalHttpServer::make_token(), t2 = LocalHttpServer::make_token();
    CHECK(t1.size() == 32);
    CHECK(t1 != t2);
    CHECK(t1.find_first_not_of("0123456789abcdef") == std::string::npos);
}

TEST_CASE("connections over the cap are closed at once", "[local_http]") {
    LocalHttpOptions options;
    options.max_connections = 2;
    Harness h({}, options);
    Client a(h.port()), b(h.port());
    REQUIRE(wait_until([&] { return h.stats()["connections"] == 2; }));
    Client over(h.port());
    CHECK(over.closed_within(2s));
    a.get(h.path());
    CHECK(a.read_head().status == 200);
    CHECK(a.read_verified(MiB) == MiB);
}

TEST_CASE("destroying the server drops players and their upstream requests", "[local_http]") {
    Harness h;
    Client a(h.port()), b(h.port());
    a.get(h.path());
    b.get(h.path());
    REQUIRE(a.read_head().status == 200);
    REQUIRE(b.read_head().status == 200);
    REQUIRE(wait_until([&] { return h.upstream.live == 2; }));
    h.server.reset();
    CHECK(h.upstream.live == 0);
    CHECK(a.closed_within(3s));
    CHECK(b.closed_within(3s));
}

TEST_CASE("the request reader decides the same whatever the read sizes", "[local_http]") {
    using Outcome = viewer::RequestReader::Outcome;
    auto read = [](std::string_view input, size_t chunk) {
        viewer::RequestReader reader(1024);
        for (size_t off = 0; off < input.size() && reader.outcome().kind == Outcome::more; off += chunk)
            reader.feed(input.substr(off, chunk));
        return reader.outcome();
    };
    for (size_t chunk : {size_t(1), size_t(3), size_t(1000)}) {
        auto get = read("GET /abc.ts?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", chunk);
        CHECK(get.kind == Outcome::serve);
        CHECK(get.path == "/abc.ts");
        CHECK_FALSE(get.head);
        auto head = read("HEAD http://127.0.0.1:1/abc.ts HTTP/1.1\r\n\r\n", chunk);
        CHECK(head.kind == Outcome::serve);
        CHECK(head.head);
        CHECK(head.path == "/abc.ts");
        CHECK(read("POST /abc.ts HTTP/1.1\r\n\r\n", chunk).status == 405);
        CHECK(read("GET /\x01 HTTP/1.1\r\n\r\n", chunk).status == 400);
        CHECK(read("GET /" + std::string(2000, 'a') + " HTTP/1.1\r\n\r\n", chunk).status == 431);
        CHECK(read("GET /abc.ts HTTP/1.1\r\n", chunk).kind == Outcome::more);
    }
    viewer::RequestReader reader(1024);
    reader.feed("GET /a HTTP/1.1\r\n\r\n");
    CHECK(reader.feed("GET /b HTTP/1.1\r\n\r\n").path == "/a");  // what follows is ignored
}

// ---- viewer/live_queue: a player's queue of a live TS stream, bounded in time ----

namespace {

// A live stream as the host's muxer writes it: 30 fps, a keyframe every `gop` frames behind PAT
// and PMT, keyframes 20 packets, other frames 5.
struct TsStream {
    int gop = 60;
    int next = 0;
    uint8_t cc = 0, table_cc = 0;
    static constexpr uint64_t kStart = 900000; // 10 s, in 90 kHz

    std::vector<uint8_t> frame() {
        bool key = next % gop == 0;
        std::vector<uint8_t> out;
        if (key) {
            auto a = test::tsp::pat(table_cc), b = test::tsp::pmt(table_cc);
            ++table_cc;
            out.insert(out.end(), a.begin(), a.end());
            out.insert(out.end(), b.begin(), b.end());
        }
        auto f = test::tsp::frame(key, key ? 20 : 5, cc, kStart + static_cast<uint64_t>(next) * 3000);
        out.insert(out.end(), f.begin(), f.end());
        ++next;
        return out;
    }
};

// What a decoder would see first in `bytes`: the PIDs of the first packets, and the first video
// frame's PTS and whether it is a keyframe.
fanout::ts::StreamSummary summary(std::span<const uint8_t> bytes) {
    return fanout::ts::summarize(bytes, 3);
}

} // namespace

TEST_CASE("live queue: a player that keeps up gets every byte as it came, no skip", "[live_queue]") {
    LiveQueue q;
    TsStream stream;
    std::vector<uint8_t> sent, got;
    for (int i = 0; i < 300; ++i) {
        auto f = stream.frame();
        sent.insert(sent.end(), f.begin(), f.end());
        // Split anywhere, as the tunnel delivers: here in 1000-byte pieces.
        for (size_t at = 0; at < f.size(); at += 1000)
            q.push(std::span(f).subspan(at, std::min<size_t>(1000, f.size() - at)));
        auto front = q.front();
        got.insert(got.end(), front.begin(), front.end());
        q.pop(front.size());
        CHECK(q.lag() <= 40ms);
    }
    CHECK(q.is_ts());
    CHECK(q.skips() == 0);
    CHECK(q.skipped_bytes() == 0);
    CHECK(got == sent);
}

TEST_CASE("live queue: a player that stops reading for 5 s resumes at the newest keyframe", "[live_queue]") {
    LiveQueue q({std::chrono::milliseconds(1000), 16 * MiB});
    TsStream stream;
    size_t pushed = 0;
    for (int i = 0; i < 30; ++i) { // one second read as it comes
        auto f = stream.frame();
        q.push(f);
        q.pop(q.size());
    }
    size_t max_size = 0;
    for (int i = 0; i < 150; ++i) { // five seconds nobody reads
        auto f = stream.frame();
        pushed += f.size();
        q.push(f);
        max_size = std::max(max_size, q.size());
        // Never more than a GOP (2 s) plus the allowed lag behind.
        CHECK(q.lag() <= std::chrono::milliseconds(3000));
    }
    INFO("skips " << q.skips() << ", skipped " << q.skipped_bytes() << " of " << pushed << ", max queue " << max_size);
    // Keyframes came at 2 s and 4 s of the pause (frames 60, 120, 150 of the stream): each found
    // the player over a second behind.
    CHECK(q.skips() == 2);
    CHECK(q.skipped_bytes() > 0);
    CHECK(max_size < pushed / 2);
    // Resuming: PAT, PMT, then the newest keyframe (frame 120 of the stream, 1 s before the newest).
    auto s = summary(q.front());
    REQUIRE(s.first_pids.size() == 3);
    CHECK(s.first_pids[0] == 0);
    CHECK(s.first_pids[1] == test::tsp::kPmtPid);
    CHECK(s.first_pids[2] == test::tsp::kVideoPid);
    CHECK(s.first_video_is_keyframe);
    CHECK(s.first_video_pts == TsStream::kStart + 120 * 3000);
    CHECK(s.bad_packets == 0);
    CHECK(q.lag() == std::chrono::milliseconds(59 * 100 / 3)); // frames 120..179: 59 frames of 33.3 ms
    // Caught up, it streams on without another skip.
    q.pop(q.size());
    for (int i = 0; i < 90; ++i) {
        q.push(stream.frame());
        q.pop(q.size());
    }
    CHECK(q.skips() == 2);
}

TEST_CASE("live queue: without a keyframe in reach, a queue past its byte bound waits for the next", "[live_queue]") {
    LiveQueue q({std::chrono::milliseconds(1000), 64 * 1024});
    TsStream stream;
    stream.gop = 1000; // one keyframe, then none for 33 s
    for (int i = 0; i < 200; ++i) q.push(stream.frame()); // ~190 kB, nobody reads
    CHECK(q.skips() >= 1);
    CHECK(q.size() <= 64 * 1024);
    uint64_t skips = q.skips();
    stream.gop = 1; // the next frame is a keyframe
    q.pop(q.size());
    // Whatever came after the drop and before the keyframe is not handed out.
    auto s = summary(q.front());
    CHECK(q.size() == 0);
    q.push(stream.frame());
    s = summary(q.front());
    REQUIRE(s.first_pids.size() == 3);
    CHECK(s.first_pids[0] == 0);
    CHECK(s.first_pids[2] == test::tsp::kVideoPid);
    CHECK(s.first_video_is_keyframe);
    CHECK(q.skips() == skips);
}

TEST_CASE("live queue: bytes that are not MPEG-TS pass through untouched and unbounded", "[live_queue]") {
    LiveQueue q({std::chrono::milliseconds(1), 1024});
    std::vector<uint8_t> bytes(100000);
    stream::synthetic_fill(0, bytes);
    REQUIRE(bytes[0] != 0x47);
    q.push(std::span(bytes).first(50000));
    q.push(std::span(bytes).subspan(50000));
    CHECK_FALSE(q.is_ts());
    CHECK(q.size() == bytes.size());
    CHECK(std::equal(bytes.begin(), bytes.end(), q.front().begin()));
    CHECK(q.skips() == 0);

    // A TS start that loses its sync later switches to passing through from there on.
    LiveQueue r({std::chrono::milliseconds(1), 1 * MiB});
    TsStream stream;
    auto f = stream.frame();
    r.push(f);
    CHECK(r.is_ts());
    r.push(std::span(bytes).first(5000));
    CHECK_FALSE(r.is_ts());
    CHECK(r.size() == f.size() + 5000);
}
