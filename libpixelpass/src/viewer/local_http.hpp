// viewer/local_http: the viewer's HTTP/1.1 server for local players (mpv, VLC) on 127.0.0.1.
// It knows nothing of QUIC: each accepted GET for the secret path becomes one request on an
// Upstream (the tunnel turns it into an HTTP/3 request to the host) whose body it relays, with
// backpressure, until either side goes away. Upstream failures become HTTP statuses the player
// (and the user reading curl output) can understand.
//
// Threading: everything runs on the net::Loop thread. The constructor, destructor and stats()
// may be called from any thread (they hop onto the loop); Upstream/LocalResponse/UpstreamRequest
// calls happen on the loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pixelpass.h"

namespace pp::net {
class Loop;
}

namespace pp::viewer {

// The player side of one request, implemented by the server and handed to Upstream::open().
// Valid until end() is called or the UpstreamRequest is destroyed, whichever comes first.
class LocalResponse {
public:
    // Starts a `200 OK` response with this Content-Type; the body runs until end() (close-
    // delimited: Connection: close, no Content-Length). Only the first call counts.
    virtual void start(std::string_view content_type) = 0;
    // Queues body bytes (copied; the span may be reused right after). Returns false once the
    // player's backlog is above the high-water mark: send nothing more until
    // UpstreamRequest::resume(). Bytes sent anyway are still queued, so memory grows only by what
    // the upstream had already received. A body() before start() starts the response with
    // application/octet-stream.
    virtual bool body(std::span<const uint8_t> bytes) = 0;
    // Ends the response; nothing may be called on this sink afterwards.
    //  - before start(): `error` picks the status (local_http_status()) and `reason` is the body:
    //    sent as-is when it is a JSON object (e.g. the host's 503 reason), otherwise wrapped as
    //    {"error": <result name>, "code": N, "message": reason}.
    //  - after start(): the body ends; the connection closes once the queued bytes are flushed
    //    (an error cannot be signalled inside a close-delimited body; it is logged and counted).
    virtual void end(pp_result error, std::string_view reason = {}) = 0;

protected:
    ~LocalResponse() = default;
};

// One upstream request. Destroying it cancels the request (the player left, or the response is
// complete); after its destructor returns the upstream must not touch the LocalResponse again.
// The server never destroys it from inside one of its own LocalResponse calls, so the upstream
// may call the sink anywhere, including synchronously from open() and resume().
class UpstreamRequest {
public:
    virtual ~UpstreamRequest() = default;
    // The player's backlog fell below the low-water mark after body() returned false.
    virtual void resume() = 0;
};

class Upstream {
public:
    virtual ~Upstream() = default;
    // One request for `path` on the host ("/stream.ts"). May call sink.start/body/end before
    // returning. Returns the handle, or nullptr only after it already called sink.end().
    virtual std::unique_ptr<UpstreamRequest> open(const std::string &path, LocalResponse &sink) = 0;
};

// The status a failure maps to: host full → 503; ticket rejected, host key mismatch, ticket
// expired → 403; unreachable, connection lost and anything else from the upstream → 502.
int local_http_status(pp_result error) noexcept;

struct LocalHttpOptions {
    // Time from accept to a complete request header; slow or silent clients get 408 and are
    // dropped.
    std::chrono::milliseconds header_timeout{10000};
    // Request line + headers; more gets 431.
    size_t max_header_bytes = 16 * 1024;
    // An MPEG-TS body (viewer/live_queue) is never paused: a player more than `max_lag` behind
    // the newest frame the viewer has skips to the newest keyframe (counted: "skips"), and one
    // whose queue passes `max_live_bytes` drops it and waits for the next keyframe.
    std::chrono::milliseconds max_lag{1000};
    size_t max_live_bytes = 16 * 1024 * 1024;
    // Any other body: the per-player backlog (queued, not yet taken by the kernel) above which
    // the upstream is paused, and below which it is resumed.
    // Kept small: this backlog is delay for a player that reads slower than the stream comes.
    size_t high_water = 1 * 1024 * 1024;
    size_t low_water = 256 * 1024;
    // SO_SNDBUF of a player's socket (the kernel doubles it); 0 keeps the kernel's autotuning.
    // Bytes in the kernel are past the live queue's reach: a player that stops reading finds them
    // first when it resumes. 64 KiB (128 KiB in the kernel) is ~170 ms of a 6 Mbit/s stream.
    size_t socket_send_buffer = 64 * 1024;
    // TCP_NOTSENT_LOWAT of a player's socket: the kernel takes no more while this much is unsent,
    // so a player that stops reading leaves at most this (and its own receive buffer) behind the
    // live queue's reach. 0 leaves it unset.
    size_t socket_unsent_limit = 32 * 1024;
    // A player whose backlog passes this (an upstream that ignores body()'s false) is dropped.
    size_t hard_limit = 64 * 1024 * 1024;
    // Open TCP connections at once; more are closed right after accept.
    size_t max_connections = 64;
    // After the response, how long to keep draining what the client sends before closing, so
    // the kernel does not reset the connection under the player's last bytes.
    std::chrono::milliseconds linger{2000};
    // Serve only connections whose other end is a socket of this process's effective user
    // (net::loopback_peer_uid): another local user who learns the URL gets nothing. A peer whose
    // owner cannot be established is refused too.
    bool only_own_user = true;
    // Optional log sink (called on the loop thread). Never given the token.
    std::function<void(pp_log_level, const std::string &)> log;
};

class LocalHttpServer {
public:
    // Listens on 127.0.0.1:`port` (0 = a free port). `token` is the secret path component
    // (letters, digits, '-' or '_'; make_token() gives 128 random bits): only GET/HEAD
    // /<token>.ts is served, as upstream path "/stream.ts"; every other path gets 404.
    // `upstream` must outlive the server. Throws pp::Error(PP_ERR_IO) when the port is taken.
    LocalHttpServer(net::Loop &loop, uint16_t port, std::string token, Upstream &upstream,
                    LocalHttpOptions options = {});
    // Drops every player (destroying their UpstreamRequests) and stops listening. Must run before
    // the Loop is destroyed; not from inside an Upstream or UpstreamRequest call.
    ~LocalHttpServer();
    LocalHttpServer(const LocalHttpServer &) = delete;
    LocalHttpServer &operator=(const LocalHttpServer &) = delete;

    uint16_t port() const { return port_; }
    // http://127.0.0.1:<port>/<token>.ts
    std::string url() const;

    // {"clients": players being served, "connections": open TCP connections, "requests": N,
    //  "refused": N (4xx), "refused_other_user": N (closed at accept), "upstream_errors": N, "bytes": body bytes written to players,
    //  "peak_backlog": largest backlog seen, "skips": times a player was moved to the newest
    //  keyframe, "skipped_bytes": stream dropped for that (both over all players so far),
    //  "players": [{"id","bytes","backlog","paused","lag_ms","skips","skipped_bytes"}]}
    nlohmann::json stats() const;

    // 32 lowercase hex characters from pp::random_bytes.
    static std::string make_token();

    class Impl;

private:
    net::Loop &loop_;
    uint16_t port_ = 0;
    std::string token_;
    std::unique_ptr<Impl> impl_;
};

} // namespace pp::viewer
