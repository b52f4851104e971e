// Test helpers for the host/viewer tests: a blocking HTTP/1.1 "player" that reads a viewer's
// local URL over real TCP and checks the synthetic stream byte by byte, an event recorder, and
// ticket construction. Not a test by itself.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "host/host.hpp"
#include "stream/synthetic.hpp"
#include "ticket/ticket.hpp"
#include "viewer/viewer.hpp"

namespace pp::test {

struct PlayerResult {
    int status = 0;
    std::string head;
    std::string body;  // non-200 bodies
    uint64_t bytes = 0;
    std::optional<uint64_t> mismatch;
    bool eof = false;
    std::string error;
};

// GETs `url` (http://127.0.0.1:PORT/PATH) and reads up to `max_bytes` of body, checking it
// against the synthetic stream; `progress` is called with the byte count as it grows.
inline PlayerResult play(const std::string &url, uint64_t max_bytes,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30),
                         std::function<void(uint64_t)> progress = {}) {
    PlayerResult r;
    auto rest = url.substr(std::strlen("http://127.0.0.1:"));
    auto slash = rest.find('/');
    int port = std::stoi(rest.substr(0, slash));
    std::string path = rest.substr(slash);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
        r.error = std::string("connect: ") + strerror(errno);
        close(fd);
        return r;
    }
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n\r\n";
    if (send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) r.error = "send failed";
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<uint8_t> buf(256 * 1024);
    bool in_body = false;
    while (r.error.empty() && r.bytes < max_bytes) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            r.error = "timed out";
            break;
        }
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        ssize_t n = recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) {
            r.eof = true;
            break;
        }
        std::span<const uint8_t> data(buf.data(), static_cast<size_t>(n));
        if (!in_body) {
            r.head.append(reinterpret_cast<const char *>(data.data()), data.size());
            auto end = r.head.find("\r\n\r\n");
            if (end == std::string::npos) continue;
            in_body = true;
            r.status = std::stoi(r.head.substr(9, 3));
            std::string extra = r.head.substr(end + 4);
            r.head.resize(end + 4);
            data = {reinterpret_cast<const uint8_t *>(extra.data()), extra.size()};
            if (r.status != 200) {
                r.body = extra;
                continue;
            }
            if (!extra.empty()) {
                if (auto bad = stream::synthetic_mismatch(0, data)) r.mismatch = *bad;
                r.bytes += data.size();
            }
            continue;
        }
        if (r.status != 200) {
            r.body.append(reinterpret_cast<const char *>(data.data()), data.size());
            continue;
        }
        size_t take = static_cast<size_t>(std::min<uint64_t>(data.size(), max_bytes - r.bytes));
        if (!r.mismatch)
            if (auto bad = stream::synthetic_mismatch(r.bytes, data.first(take))) r.mismatch = *bad;
        r.bytes += take;
        if (progress) progress(r.bytes);
    }
    close(fd);
    return r;
}

// Records events from a callback thread; wait_for() blocks until a matching one arrives.
class EventLog {
public:
    EventSink sink() {
        return [this](const Event &e) {
            std::lock_guard lock(m_);
            events_.push_back(e);
            cv_.notify_all();
        };
    }
    std::optional<Event> wait_for(pp_event_type type, std::chrono::milliseconds timeout,
                                  std::function<bool(const Event &)> match = {}) {
        std::unique_lock lock(m_);
        std::optional<Event> found;
        cv_.wait_for(lock, timeout, [&] {
            for (const auto &e : events_)
                if (e.type == type && (!match || match(e))) {
                    found = e;
                    return true;
                }
            return false;
        });
        return found;
    }
    size_t count(pp_event_type type) {
        std::lock_guard lock(m_);
        size_t n = 0;
        for (const auto &e : events_) n += e.type == type;
        return n;
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    std::vector<Event> events_;
};

// A ticket with the given key and secret and these candidates, in this order.
inline std::string make_ticket(std::span<const uint8_t> fingerprint, std::span<const uint8_t> secret,
                               const std::vector<std::pair<std::string, uint16_t>> &candidates) {
    ticket::Ticket t = ticket::make(fingerprint, secret);
    for (const auto &[ip, port] : candidates) ticket::add_candidate(t, PP_CANDIDATE_LOCAL, ip, port);
    return ticket::encode(t);
}

inline HostConfig loopback_host(unsigned max_viewers = 0) {
    HostConfig c;
    c.source = "synthetic";
    c.bind_address = "127.0.0.1";
    c.max_viewers = max_viewers;
    return c;
}

// A viewer of this ticket that gives up on the host after 3 s (loopback answers at once).
inline ViewerConfig viewer_for(const std::string &ticket_text) {
    ViewerConfig c;
    c.ticket_text = ticket_text;
    c.connect_timeout_ms = 3000;
    return c;
}

} // namespace pp::test
