#include "viewer/local_http.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <uv.h>

#include "common/error.hpp"
#include "common/hex.hpp"
#include "common/random.hpp"
#include "net/loop.hpp"
#include "net/peer_uid.hpp"
#include "viewer/http_request.hpp"
#include "viewer/live_queue.hpp"

namespace pp::viewer {

namespace {

using Clock = std::chrono::steady_clock;

const char *status_text(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

// Length leaks nothing (the token length is public); the content compares in constant time so a
// local process cannot find the token byte by byte from response timing.
bool constant_time_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i)
        diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
    return diff == 0;
}

std::string format_bytes(uint64_t n) {
    char buf[32];
    if (n >= 10'000'000)
        std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(n) / 1e6);
    else if (n >= 10'000)
        std::snprintf(buf, sizeof buf, "%.1f kB", static_cast<double>(n) / 1e3);
    else
        std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(n));
    return buf;
}

} // namespace

int local_http_status(pp_result error) noexcept {
    switch (error) {
    case PP_ERR_HOST_FULL: return 503;
    case PP_ERR_TICKET_REJECTED:
    case PP_ERR_HOST_KEY_MISMATCH:
    case PP_ERR_TICKET_EXPIRED: return 403;
    default: return 502; // unreachable, connection lost, protocol, and whatever else went wrong
    }
}

class LocalHttpConnection;

class LocalHttpServer::Impl {
public:
    Impl(net::Loop &loop, std::string token, Upstream &upstream, LocalHttpOptions options);
    ~Impl();

    uint16_t listen(uint16_t port);
    // Closes every connection and handle; `self` (this) is freed once libuv has let go.
    static void shutdown(std::unique_ptr<Impl> self);
    nlohmann::json stats() const;

    // For connections.
    void log(pp_log_level level, const std::string &line) const {
        if (options_.log) options_.log(level, line);
    }
    bool path_matches(std::string_view path) const {
        return constant_time_equal(path, expected_path_);
    }
    std::unique_ptr<LocalHttpConnection> detach(uint64_t id);
    void schedule_reap(uint64_t id);

    net::Loop &loop_;
    Upstream &upstream_;
    const LocalHttpOptions options_;
    std::array<char, 64 * 1024> read_buffer_; // one read is processed before the next

    // Counters.
    size_t clients_ = 0;
    uint64_t requests_ = 0, refused_ = 0, refused_other_user_ = 0, upstream_errors_ = 0, bytes_ = 0;
    uint64_t skips_ = 0, skipped_bytes_ = 0; // players moved to the live edge (all players so far)
    size_t peak_backlog_ = 0;

private:
    bool peer_is_own_user(uv_tcp_t *tcp);
    static void on_connection(uv_stream_t *listener, int status);
    static void on_sweep(uv_timer_t *timer);
    static void on_reap(uv_timer_t *timer);
    static void on_handle_closed(uv_handle_t *handle);

    const std::string expected_path_;
    uv_tcp_t listener_{};
    uv_timer_t sweep_{}; // header/linger/stall deadlines
    uv_timer_t reap_{};  // work that must not run inside an upstream's call into the sink
    int open_handles_ = 0;
    std::unique_ptr<Impl> self_; // set during shutdown: the handles' close callbacks free us
    uint64_t next_id_ = 1;
    std::map<uint64_t, std::unique_ptr<LocalHttpConnection>> connections_;
    std::vector<uint64_t> reap_ids_;
};

// One TCP connection from a player: parses one request, then relays one response.
class LocalHttpConnection final : public LocalResponse {
public:
    enum class State {
        reading,   // waiting for a complete request header
        waiting,   // upstream opened, no response yet
        streaming, // 200 sent, body flowing
        flushing,  // response complete: sending what is queued
        lingering, // write side shut down: draining the client until it closes or time runs out
    };

    LocalHttpConnection(LocalHttpServer::Impl &server, uint64_t id)
        : server_(&server), id_(id), request_(server.options_.max_header_bytes),
          live_({server.options_.max_lag, server.options_.max_live_bytes}) {
        tcp_.data = this;
        deadline_ = Clock::now() + server.options_.header_timeout;
    }

    uv_tcp_t *tcp() { return &tcp_; }
    uint64_t id() const { return id_; }

    // Hands the connection to libuv for closing; it frees itself in the close callback.
    static void close_handle(std::unique_ptr<LocalHttpConnection> self) {
        uv_tcp_t *tcp = &self->tcp_;
        tcp->data = self.release();
        uv_close(reinterpret_cast<uv_handle_t *>(tcp), [](uv_handle_t *h) {
            std::unique_ptr<LocalHttpConnection> dying(static_cast<LocalHttpConnection *>(h->data));
        });
    }

    void start_reading() {
        int rc = uv_read_start(reinterpret_cast<uv_stream_t *>(&tcp_),
                               &LocalHttpConnection::on_alloc, &LocalHttpConnection::on_read);
        if (rc < 0) fail_later();
    }

    // Drops the connection now: cancels the upstream, closes the socket.
    void close_now() {
        if (!server_) return;
        LocalHttpServer::Impl *server = server_;
        sink_open_ = false;
        set_client(false);
        if (streamed_ && !head_request_) {
            server->log(PP_LOG_INFO, "player " + std::to_string(id_) + " left after " +
                                         format_bytes(body_written()));
        }
        upstream_.reset();
        auto self = server->detach(id_);
        server_ = nullptr;
        close_handle(std::move(self));
    }

    // Deferred work: see LocalHttpServer::Impl::reap_.
    void on_reap() {
        if (!server_) return;
        if (fail_pending_)
            close_now();
        else if (state_ == State::flushing && !writing_ && backlog() == 0)
            finish_response();
    }

    // Deadlines, checked by the server's sweep timer.
    void on_sweep(Clock::time_point now) {
        if (!server_) return;
        switch (state_) {
        case State::reading:
            if (now >= deadline_) {
                server_->log(PP_LOG_DEBUG, "local client " + std::to_string(id_) +
                                               ": no complete request in time (408)");
                respond_local(408, "request header timeout");
            }
            break;
        case State::lingering:
            if (now >= deadline_) close_now();
            break;
        default:
            // A player that stopped reading entirely would hold its host stream forever.
            if (writing_ && now - last_progress_ > stall_timeout()) {
                server_->log(PP_LOG_WARNING,
                             "player " + std::to_string(id_) + " stopped reading; dropping it");
                close_now();
            }
            break;
        }
    }

    size_t backlog() const { return inflight_.size() + pending_.size() + live_.size(); }
    nlohmann::json stats() const {
        return {{"id", id_},
                {"bytes", body_written()},
                {"backlog", backlog()},
                {"paused", paused_},
                {"lag_ms", live_.lag().count()},
                {"skips", live_.skips()},
                {"skipped_bytes", live_.skipped_bytes()}};
    }
    bool is_client() const { return client_; }

    // --- LocalResponse (called by the upstream) ---

    void start(std::string_view content_type) override {
        if (!sink_open_ || response_started_) return;
        response_started_ = true;
        streamed_ = true;
        std::string head = "HTTP/1.1 200 OK\r\nContent-Type: ";
        head += content_type;
        head += "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
        stream_head_bytes_ = head.size();
        queue(std::as_bytes(std::span(head.data(), head.size())));
        if (head_request_) {
            // HEAD: the status is known now; the upstream is let go once the head is sent.
            state_ = State::flushing;
        } else {
            state_ = State::streaming;
            server_->log(PP_LOG_INFO, "player " + std::to_string(id_) + " is watching");
        }
    }

    bool body(std::span<const uint8_t> bytes) override {
        if (!sink_open_) return false;
        if (!response_started_) start("application/octet-stream");
        if (state_ != State::streaming) return false;
        uint64_t skips = live_.skips(), skipped = live_.skipped_bytes();
        live_.push(bytes);
        if (live_.skips() != skips) on_skipped(live_.skips() - skips, live_.skipped_bytes() - skipped);
        if (!writing_) write_pending();
        size_t b = backlog();
        server_->peak_backlog_ = std::max(server_->peak_backlog_, b);
        // A TS stream is bounded by the live queue's skips: the upstream never waits for the
        // player (waiting would park the stream in the tunnel, to be played late). Anything else
        // is paced by the player with backpressure.
        if (live_.is_ts()) return true;
        if (b > server_->options_.hard_limit) {
            server_->log(PP_LOG_WARNING, "player " + std::to_string(id_) +
                                             ": upstream ignored backpressure; dropping it");
            fail_later();
            return false;
        }
        if (b > server_->options_.high_water) paused_ = true;
        return !paused_;
    }

    void end(pp_result error, std::string_view reason) override {
        if (!sink_open_) return;
        sink_open_ = false;
        if (!response_started_) {
            int status = error == PP_OK ? 502 : local_http_status(error);
            if (error == PP_OK) error = PP_ERR_PROTOCOL;
            std::string body;
            auto parsed = nlohmann::json::parse(reason, nullptr, false);
            if (!parsed.is_discarded() && parsed.is_object()) {
                body = std::string(reason);
            } else {
                body = nlohmann::json{{"error", result_name(error)},
                                      {"code", static_cast<int>(error)},
                                      {"message",
                                       reason.empty() ? result_name(error) : std::string(reason)}}
                           .dump();
            }
            ++server_->upstream_errors_;
            server_->log(PP_LOG_WARNING, "player " + std::to_string(id_) + ": " +
                                             (reason.empty() ? std::string(result_name(error))
                                                             : std::string(reason)) +
                                             " (" + std::to_string(status) + ")");
            respond(status, body);
        } else {
            if (error != PP_OK) {
                ++server_->upstream_errors_;
                server_->log(PP_LOG_WARNING, "player " + std::to_string(id_) +
                                                 ": stream broke: " + result_name(error));
            }
            state_ = State::flushing;
        }
        // Finishing destroys the upstream handle: never inside its own call.
        server_->schedule_reap(id_);
    }

private:
    static void on_alloc(uv_handle_t *handle, size_t, uv_buf_t *buf) {
        auto *self = static_cast<LocalHttpConnection *>(handle->data);
        auto &storage = self->server_->read_buffer_;
        *buf = uv_buf_init(storage.data(), static_cast<unsigned>(storage.size()));
    }

    static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
        auto *self = static_cast<LocalHttpConnection *>(stream->data);
        if (!self->server_ || nread == 0) return;
        if (nread < 0) {
            self->on_peer_closed();
            return;
        }
        if (self->state_ == State::reading) self->parse(buf->base, static_cast<size_t>(nread));
        // Anything after the request (pipelined requests, junk) is read and dropped: the response
        // closes the connection.
    }

    void on_peer_closed() {
        if (state_ == State::flushing && !streamed_) {
            // The client half-closed after its request: still deliver the (error) response.
            uv_read_stop(reinterpret_cast<uv_stream_t *>(&tcp_));
            peer_closed_ = true;
            return;
        }
        close_now(); // for a player this means it left: cancel the upstream
    }

    void parse(const char *data, size_t size) {
        const auto &request = request_.feed({data, size});
        if (request.kind == RequestReader::Outcome::more) return;
        if (request.kind == RequestReader::Outcome::serve) return dispatch(request);
        if (request.status == 400)
            server_->log(PP_LOG_DEBUG, "local client " + std::to_string(id_) +
                                           ": bad request: " + request.llhttp_error);
        respond_local(request.status, request.message);
    }

    friend class LocalHttpServer::Impl;

    void dispatch(const RequestReader::Outcome &request) {
        head_request_ = request.head;
        if (!server_->path_matches(request.path)) {
            // Never log the path: it may be the token with a typo.
            server_->log(PP_LOG_DEBUG,
                         "local client " + std::to_string(id_) + ": unknown path (404)");
            respond_local(404, "not found");
            return;
        }
        ++server_->requests_;
        state_ = State::waiting;
        sink_open_ = true;
        set_client(true);
        try {
            upstream_ = server_->upstream_.open("/stream.ts", *this);
            if (!upstream_ && sink_open_) end(PP_ERR_INTERNAL, "the tunnel refused the request");
        } catch (const Error &e) {
            if (sink_open_) end(e.code(), e.what());
        } catch (const std::exception &e) {
            if (sink_open_) end(PP_ERR_INTERNAL, e.what());
        }
    }

    // A response the server makes itself (4xx): counted as refused.
    void respond_local(int status, const char *message) {
        ++server_->refused_;
        respond(status, nlohmann::json{{"error", message}}.dump());
    }

    // A complete non-streaming response, then close.
    void respond(int status, const std::string &body) {
        response_started_ = true;
        std::string head =
            "HTTP/1.1 " + std::to_string(status) + " " + status_text(status) +
            "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\nCache-Control: no-store\r\nConnection: close\r\n";
        if (status == 405) head += "Allow: GET, HEAD\r\n";
        head += "\r\n";
        queue(std::as_bytes(std::span(head.data(), head.size())));
        if (!head_request_) queue(std::as_bytes(std::span(body.data(), body.size())));
        state_ = State::flushing;
        set_client(false);
    }

    void queue(std::span<const std::byte> bytes) {
        auto *p = reinterpret_cast<const uint8_t *>(bytes.data());
        pending_.insert(pending_.end(), p, p + bytes.size());
        if (!writing_) write_pending();
    }

    // One write in flight at a time; everything queued meanwhile goes out as the next write, so
    // many small upstream chunks per loop iteration cost one syscall, not one each. A TS body goes
    // in slices of at most kLiveWrite: what is handed to libuv can no longer be skipped.
    void write_pending() {
        if (fail_pending_) return;
        if (!pending_.empty()) {
            inflight_.swap(pending_);
            pending_.clear();
        } else if (live_.size() > 0) {
            auto bytes = live_.front();
            if (live_.is_ts()) bytes = bytes.first(std::min(bytes.size(), kLiveWrite));
            inflight_.assign(bytes.begin(), bytes.end());
            live_.pop(bytes.size());
        } else {
            return;
        }
        uv_buf_t buf = uv_buf_init(reinterpret_cast<char *>(inflight_.data()),
                                   static_cast<unsigned>(inflight_.size()));
        int rc = uv_write(&write_req_, reinterpret_cast<uv_stream_t *>(&tcp_), &buf, 1,
                          &LocalHttpConnection::on_write);
        if (rc < 0) {
            fail_later();
            return;
        }
        writing_ = true;
        last_progress_ = Clock::now(); // a stall is one write that does not complete
    }

    static void on_write(uv_write_t *req, int status) {
        auto *self = static_cast<LocalHttpConnection *>(req->handle->data);
        self->writing_ = false;
        if (!self->server_) return; // closing: the write was cancelled
        if (status < 0) {
            self->close_now(); // the player went away
            return;
        }
        self->after_write();
    }

    void after_write() {
        uint64_t body_before = body_written();
        written_ += inflight_.size();
        server_->bytes_ += body_written() - body_before;
        inflight_.clear();
        write_pending();
        if (paused_ && backlog() <= server_->options_.low_water && state_ == State::streaming &&
            upstream_) {
            paused_ = false;
            upstream_->resume(); // may call body()/end() right here
        }
        if (!server_) return;
        if (state_ == State::flushing && !writing_ && backlog() == 0) finish_response();
    }

    // Bytes of a 200 stream's body the kernel has taken (the head and error responses excluded).
    uint64_t body_written() const {
        return streamed_ && written_ > stream_head_bytes_ ? written_ - stream_head_bytes_ : 0;
    }

    // Everything is sent: let the upstream go, send FIN, drain the client until it closes.
    void finish_response() {
        upstream_.reset();
        set_client(false);
        int rc = uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t *>(&tcp_),
                             &LocalHttpConnection::on_shutdown);
        if (rc < 0) {
            close_now();
            return;
        }
        state_ = State::lingering;
        deadline_ = Clock::now() + server_->options_.linger;
    }

    static void on_shutdown(uv_shutdown_t *req, int status) {
        auto *self = static_cast<LocalHttpConnection *>(req->handle->data);
        if (!self->server_) return;
        if (status < 0 || self->peer_closed_) self->close_now();
    }

    void fail_later() {
        fail_pending_ = true;
        server_->schedule_reap(id_);
    }

    // Logged at the 1st, 2nd, 4th, 8th... skip of a player: a paused one skips every keyframe.
    void on_skipped(uint64_t skips, uint64_t bytes) {
        server_->skips_ += skips;
        server_->skipped_bytes_ += bytes;
        uint64_t n = live_.skips();
        if ((n & (n - 1)) != 0) return;
        server_->log(PP_LOG_INFO, "player " + std::to_string(id_) + " fell more than " +
                                      std::to_string(server_->options_.max_lag.count()) +
                                      " ms behind the stream: skipped to the newest keyframe (" +
                                      std::to_string(n) + " skips so far)");
    }

    void set_client(bool on) {
        if (on == client_ || !server_) return;
        client_ = on;
        if (on)
            ++server_->clients_;
        else
            --server_->clients_;
    }

    std::chrono::milliseconds stall_timeout() const {
        return std::max(std::chrono::milliseconds(30000), server_->options_.header_timeout);
    }

    LocalHttpServer::Impl *server_; // null once the connection is closing
    const uint64_t id_;
    uv_tcp_t tcp_{};
    uv_write_t write_req_{};
    uv_shutdown_t shutdown_req_{};
    RequestReader request_;

    State state_ = State::reading;
    Clock::time_point deadline_;
    Clock::time_point last_progress_{};
    bool head_request_ = false;
    bool sink_open_ = false;        // the upstream may still call the LocalResponse methods
    bool response_started_ = false; // a status line is queued
    bool streamed_ = false;         // it is a 200 stream (counts toward "bytes")
    bool client_ = false;           // counted in clients_
    bool paused_ = false;           // body() said false; resume() owed
    bool fail_pending_ = false;
    bool peer_closed_ = false;
    bool writing_ = false;
    std::unique_ptr<UpstreamRequest> upstream_;

    // 64 KiB of whole TS packets: ~90 ms of a 6 Mbit/s stream.
    static constexpr size_t kLiveWrite = 348 * 188;

    std::vector<uint8_t> inflight_, pending_; // pending_: heads and error bodies
    LiveQueue live_;                          // a 200 response's body
    uint64_t written_ = 0;
    uint64_t stream_head_bytes_ = 0;
};

// ---------------------------------------------------------------------------------------------

LocalHttpServer::Impl::Impl(net::Loop &loop, std::string token, Upstream &upstream,
                            LocalHttpOptions options)
    : loop_(loop), upstream_(upstream), options_(std::move(options)),
      expected_path_("/" + token + ".ts") {
    uv_tcp_init(loop_.uv(), &listener_);
    uv_timer_init(loop_.uv(), &sweep_);
    uv_timer_init(loop_.uv(), &reap_);
    listener_.data = sweep_.data = reap_.data = this;
}

LocalHttpServer::Impl::~Impl() = default;

uint16_t LocalHttpServer::Impl::listen(uint16_t port) {
    sockaddr_in addr{};
    uv_ip4_addr("127.0.0.1", port, &addr);
    int rc = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr *>(&addr), 0);
    if (rc == 0)
        rc = uv_listen(reinterpret_cast<uv_stream_t *>(&listener_), 128, &Impl::on_connection);
    if (rc < 0)
        throw Error(PP_ERR_IO, "cannot serve players on 127.0.0.1:" + std::to_string(port) + ": " +
                                   uv_strerror(rc));
    sockaddr_storage bound{};
    int len = sizeof bound;
    uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr *>(&bound), &len);
    auto interval = std::clamp<uint64_t>(options_.header_timeout.count() / 4, 10, 1000);
    uv_timer_start(&sweep_, &Impl::on_sweep, interval, interval);
    return ntohs(reinterpret_cast<sockaddr_in *>(&bound)->sin_port);
}

void LocalHttpServer::Impl::shutdown(std::unique_ptr<Impl> self) {
    Impl &me = *self;
    while (!me.connections_.empty()) me.connections_.begin()->second->close_now();
    me.self_ = std::move(self);
    me.open_handles_ = 3;
    uv_close(reinterpret_cast<uv_handle_t *>(&me.listener_), &Impl::on_handle_closed);
    uv_close(reinterpret_cast<uv_handle_t *>(&me.sweep_), &Impl::on_handle_closed);
    uv_close(reinterpret_cast<uv_handle_t *>(&me.reap_), &Impl::on_handle_closed);
}

void LocalHttpServer::Impl::on_handle_closed(uv_handle_t *handle) {
    auto *me = static_cast<Impl *>(handle->data);
    if (--me->open_handles_ == 0) {
        std::unique_ptr<Impl> dying = std::move(me->self_);
    }
}

std::unique_ptr<LocalHttpConnection> LocalHttpServer::Impl::detach(uint64_t id) {
    auto it = connections_.find(id);
    if (it == connections_.end()) return nullptr;
    auto conn = std::move(it->second);
    connections_.erase(it);
    return conn;
}

void LocalHttpServer::Impl::schedule_reap(uint64_t id) {
    reap_ids_.push_back(id);
    if (!uv_is_active(reinterpret_cast<uv_handle_t *>(&reap_)))
        uv_timer_start(&reap_, &Impl::on_reap, 0, 0);
}

void LocalHttpServer::Impl::on_reap(uv_timer_t *timer) {
    auto *me = static_cast<Impl *>(timer->data);
    std::vector<uint64_t> ids;
    ids.swap(me->reap_ids_);
    for (uint64_t id : ids) {
        auto it = me->connections_.find(id);
        if (it != me->connections_.end()) it->second->on_reap();
    }
}

void LocalHttpServer::Impl::on_sweep(uv_timer_t *timer) {
    auto *me = static_cast<Impl *>(timer->data);
    auto now = Clock::now();
    std::vector<uint64_t> ids;
    for (auto &[id, conn] : me->connections_) ids.push_back(id);
    for (uint64_t id : ids) { // a connection may close (and leave the map) while we iterate
        auto it = me->connections_.find(id);
        if (it != me->connections_.end()) it->second->on_sweep(now);
    }
}

void LocalHttpServer::Impl::on_connection(uv_stream_t *listener, int status) {
    auto *me = static_cast<Impl *>(listener->data);
    if (status < 0) {
        me->log(PP_LOG_WARNING, std::string("local server: accept failed: ") + uv_strerror(status));
        return;
    }
    auto conn = std::make_unique<LocalHttpConnection>(*me, me->next_id_++);
    uv_tcp_init(me->loop_.uv(), conn->tcp());
    if (uv_accept(listener, reinterpret_cast<uv_stream_t *>(conn->tcp())) != 0) {
        LocalHttpConnection::close_handle(std::move(conn));
        return;
    }
    if (me->connections_.size() >= me->options_.max_connections) {
        me->log(PP_LOG_WARNING, "local server: too many connections; refusing one");
        LocalHttpConnection::close_handle(std::move(conn));
        return;
    }
    if (me->options_.only_own_user && !me->peer_is_own_user(conn->tcp())) {
        ++me->refused_other_user_;
        LocalHttpConnection::close_handle(std::move(conn));
        return;
    }
    uv_tcp_nodelay(conn->tcp(), 1);
    // A fixed send buffer instead of the kernel's autotuned one (megabytes): bytes parked there
    // are delay the backpressure above cannot see.
    int send_buffer = static_cast<int>(me->options_.socket_send_buffer);
    if (send_buffer > 0) uv_send_buffer_size(reinterpret_cast<uv_handle_t *>(conn->tcp()), &send_buffer);
    uv_os_fd_t fd = -1;
    int unsent = static_cast<int>(me->options_.socket_unsent_limit);
    if (unsent > 0 && uv_fileno(reinterpret_cast<uv_handle_t *>(conn->tcp()), &fd) == 0)
        ::setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &unsent, sizeof unsent);
    LocalHttpConnection &c = *conn;
    me->connections_.emplace(c.id(), std::move(conn));
    c.start_reading();
}

// The URL is a bearer token any local user might learn (from a player's command line, a shell
// history, a screenshot); the owner of the connecting socket is what actually tells our user.
bool LocalHttpServer::Impl::peer_is_own_user(uv_tcp_t *tcp) {
    uv_os_fd_t fd = -1;
    if (uv_fileno(reinterpret_cast<uv_handle_t *>(tcp), &fd) != 0) return false;
    net::PeerUid peer = net::loopback_peer_uid(fd);
    if (peer.uid && *peer.uid == geteuid()) return true;
    // Logged at the 1st, 2nd, 4th, 8th... refusal, so a local flood cannot flood the log.
    uint64_t n = refused_other_user_ + 1;
    if ((n & (n - 1)) != 0) return false;
    std::string why = peer.uid ? "uid " + std::to_string(*peer.uid) + " is not uid " + std::to_string(geteuid()) +
                                     ", who runs the viewer"
                               : "its user is unknown: " + peer.error;
    log(PP_LOG_WARNING, "local server: refused a connection (" + why + "); " + std::to_string(n) + " refused so far");
    return false;
}

nlohmann::json LocalHttpServer::Impl::stats() const {
    auto players = nlohmann::json::array();
    for (const auto &[id, conn] : connections_)
        if (conn->is_client()) players.push_back(conn->stats());
    return {{"clients", clients_},
            {"connections", connections_.size()},
            {"requests", requests_},
            {"refused", refused_},
            {"refused_other_user", refused_other_user_},
            {"upstream_errors", upstream_errors_},
            {"bytes", bytes_},
            {"peak_backlog", peak_backlog_},
            {"skips", skips_},
            {"skipped_bytes", skipped_bytes_},
            {"players", std::move(players)}};
}

// ---------------------------------------------------------------------------------------------

LocalHttpServer::LocalHttpServer(net::Loop &loop, uint16_t port, std::string token,
                                 Upstream &upstream, LocalHttpOptions options)
    : loop_(loop), token_(std::move(token)) {
    if (token_.empty() || !std::all_of(token_.begin(), token_.end(), [](char c) {
            return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   c == '-' || c == '_';
        }))
        throw Error(PP_ERR_INVALID_ARGUMENT,
                    "local server token must be non-empty letters, digits, '-' or '_'");
    if (options.low_water > options.high_water || options.high_water > options.hard_limit ||
        options.max_header_bytes == 0 || options.max_connections == 0 || options.max_lag.count() <= 0 ||
        options.max_live_bytes == 0)
        throw Error(PP_ERR_INVALID_ARGUMENT, "local server limits are inconsistent");
    loop_.call([&] {
        // A write to a player that just left raises SIGPIPE, which would kill the whole
        // application; libuv does not guard against it. Blocked on the loop thread (which this
        // library owns), the write fails with EPIPE instead and the process-wide disposition
        // stays the application's. (Belongs in net::Loop once TCP is used elsewhere.)
        sigset_t pipe_only;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);

        auto impl = std::make_unique<Impl>(loop_, token_, upstream, std::move(options));
        try {
            port_ = impl->listen(port);
        } catch (...) {
            Impl::shutdown(std::move(impl));
            throw;
        }
        impl_ = std::move(impl);
    });
}

LocalHttpServer::~LocalHttpServer() {
    loop_.call([this] { Impl::shutdown(std::move(impl_)); });
}

std::string LocalHttpServer::url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + token_ + ".ts";
}

nlohmann::json LocalHttpServer::stats() const {
    return loop_.call([this] { return impl_->stats(); });
}

std::string LocalHttpServer::make_token() {
    uint8_t bytes[16];
    random_bytes(bytes);
    return to_hex(bytes);
}

} // namespace pp::viewer
