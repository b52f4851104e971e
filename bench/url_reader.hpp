// Benchmark helper: GETs a viewer's local URL (http://127.0.0.1:PORT/PATH) over plain TCP and
// hands every body chunk to a callback on its own thread until destroyed. Not a player: no
// status check, no chunked encoding (the viewer streams a raw body).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace bench {

class UrlReader {
public:
    using Body = std::function<void(std::span<const uint8_t>)>;

    UrlReader(const std::string &url, Body on_body) : on_body_(std::move(on_body)) {
        auto rest = url.substr(std::strlen("http://127.0.0.1:"));
        int port = std::stoi(rest.substr(0, rest.find('/')));
        fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(uint16_t(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
            close(fd_);
            throw std::runtime_error("cannot connect to " + url);
        }
        std::string req = "GET " + rest.substr(rest.find('/')) + " HTTP/1.1\r\nHost: x\r\n\r\n";
        send(fd_, req.data(), req.size(), MSG_NOSIGNAL);
        thread_ = std::thread([this] { loop(); });
    }
    ~UrlReader() {
        stop_ = true;
        thread_.join();
        close(fd_);
    }
    UrlReader(const UrlReader &) = delete;
    UrlReader &operator=(const UrlReader &) = delete;

private:
    void loop() {
        std::vector<uint8_t> buf(65536);
        std::string head;
        bool body = false;
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 100) <= 0) continue;
            ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
            if (n <= 0) break;
            std::span<const uint8_t> data(buf.data(), size_t(n));
            if (body) {
                on_body_(data);
                continue;
            }
            head.append(reinterpret_cast<const char *>(data.data()), data.size());
            auto end = head.find("\r\n\r\n");
            if (end == std::string::npos) continue;
            body = true;
            std::string first = head.substr(end + 4);
            if (!first.empty()) on_body_({reinterpret_cast<const uint8_t *>(first.data()), first.size()});
        }
    }

    Body on_body_;
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

} // namespace bench
