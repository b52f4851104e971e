// A single RFC 5389 Binding request: enough for doctor to tell whether a configured STUN server
// (or a TURN relay, which answers Binding too) is reachable and what public address it sees.
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <memory>
#include <chrono>

#include "common/error.hpp"
#include "common/random.hpp"
#include "doctor/doctor.hpp"

namespace pp::doctor {
namespace {

constexpr uint32_t kMagicCookie = 0x2112A442;

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

void split_host_port(const std::string &server, std::string &host, std::string &port) {
    std::string s = server;
    if (s.rfind("stun:", 0) == 0) s = s.substr(5);
    else if (s.rfind("turn:", 0) == 0) s = s.substr(5);
    if (auto q = s.find('?'); q != std::string::npos) s.resize(q);
    port = "3478";
    if (!s.empty() && s[0] == '[') {
        auto close = s.find(']');
        if (close == std::string::npos) throw Error(PP_ERR_INVALID_ARGUMENT, "bad address " + server);
        host = s.substr(1, close - 1);
        if (close + 1 < s.size() && s[close + 1] == ':') port = s.substr(close + 2);
        return;
    }
    auto colon = s.rfind(':');
    if (colon != std::string::npos && s.find(':') == colon) {
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    } else {
        host = s;
    }
}

} // namespace

std::string stun_mapped_address(const std::string &server, unsigned timeout_ms) {
    std::string host, port;
    split_host_port(server, host, port);
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_DGRAM;
    if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
        throw Error(PP_ERR_UNREACHABLE, "cannot resolve " + host + ": " + ::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(res, ::freeaddrinfo);
    Fd sock;
    sock.fd = ::socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock.fd < 0) throw Error(PP_ERR_IO, std::string("socket: ") + std::strerror(errno));
    if (::connect(sock.fd, res->ai_addr, res->ai_addrlen) != 0)
        throw Error(PP_ERR_UNREACHABLE, "cannot reach " + server + ": " + std::strerror(errno));

    std::array<uint8_t, 20> request{};
    request[1] = 0x01;  // Binding request, no attributes
    uint32_t cookie = htonl(kMagicCookie);
    std::memcpy(&request[4], &cookie, 4);
    std::array<uint8_t, 12> txid{};
    random_bytes(txid);
    std::memcpy(&request[8], txid.data(), 12);

    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto next_send = std::chrono::steady_clock::now();
    uint8_t buf[1500];
    for (;;) {
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) throw Error(PP_ERR_UNREACHABLE, "no answer from " + server + " within " +
                                                                 std::to_string(timeout_ms) + " ms");
        if (now >= next_send) {  // retransmit: a lost datagram is not an unreachable server
            ::send(sock.fd, request.data(), request.size(), 0);
            next_send = now + std::chrono::milliseconds(300);
        }
        auto wait = std::min(deadline, next_send) - now;
        pollfd p{sock.fd, POLLIN, 0};
        int n = ::poll(&p, 1, int(std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()) + 1);
        if (n <= 0) continue;
        ssize_t got = ::recv(sock.fd, buf, sizeof buf, 0);
        if (got < 0) {
            if (errno == ECONNREFUSED)
                throw Error(PP_ERR_UNREACHABLE, server + " refused (nothing listens on that port)");
            continue;
        }
        if (got < 20 || buf[0] != 0x01 || buf[1] != 0x01 || std::memcmp(buf + 8, txid.data(), 12) != 0) continue;
        size_t len = size_t(buf[2]) << 8 | buf[3];
        size_t off = 20, end = std::min<size_t>(20 + len, size_t(got));
        while (off + 4 <= end) {
            uint16_t type = uint16_t(buf[off] << 8 | buf[off + 1]);
            uint16_t alen = uint16_t(buf[off + 2] << 8 | buf[off + 3]);
            const uint8_t *v = buf + off + 4;
            if (off + 4 + alen > end) break;
            bool xored = type == 0x0020;
            if ((xored || type == 0x0001) && alen >= 8) {
                uint16_t mport = uint16_t(v[2] << 8 | v[3]);
                if (xored) mport ^= uint16_t(kMagicCookie >> 16);
                char text[INET6_ADDRSTRLEN] = "";
                if (v[1] == 0x01) {
                    uint8_t a[4];
                    std::memcpy(a, v + 4, 4);
                    if (xored)
                        for (int i = 0; i < 4; ++i) a[i] ^= uint8_t(kMagicCookie >> (24 - 8 * i));
                    ::inet_ntop(AF_INET, a, text, sizeof text);
                    return std::string(text) + ":" + std::to_string(mport);
                }
                if (v[1] == 0x02 && alen >= 20) {
                    uint8_t a[16];
                    std::memcpy(a, v + 4, 16);
                    if (xored)
                        for (int i = 0; i < 16; ++i)
                            a[i] ^= i < 4 ? uint8_t(kMagicCookie >> (24 - 8 * i)) : txid[size_t(i - 4)];
                    ::inet_ntop(AF_INET6, a, text, sizeof text);
                    return "[" + std::string(text) + "]:" + std::to_string(mport);
                }
            }
            off += 4 + ((alen + 3u) & ~3u);
        }
        throw Error(PP_ERR_PROTOCOL, server + " answered without a mapped address");
    }
}

} // namespace pp::doctor
