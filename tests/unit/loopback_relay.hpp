// A TURN relay in miniature on a loopback UDP socket, on a thread of its own: an unsigned
// Allocate gets 401 with realm and nonce, and every signed request (Allocate, Refresh,
// CreatePermission) a signed success, unless `answer` says otherwise. Enough for a host or a
// TURN client to hold an allocation; relaying itself is coturn's, tested in netsim
// (test_turn.py, test_paths.py). Not a test by itself.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "nat/stun.hpp"
#include "net/address.hpp"

namespace pp::test {

class LoopbackRelay {
public:
    // What to send for a request instead of the default answer; nullopt = the default,
    // an empty vector = no answer at all.
    using Answer = std::function<std::optional<std::vector<uint8_t>>(const nat::stun::Message &, const net::Address &from)>;

    static constexpr const char *kUser = "user", *kRealm = "realm", *kPassword = "pass";

    explicit LoopbackRelay(Answer answer = {}) : answer_(std::move(answer)) {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t sl = sizeof sa;
        ::bind(fd_, reinterpret_cast<sockaddr *>(&sa), sizeof sa);
        ::getsockname(fd_, reinterpret_cast<sockaddr *>(&sa), &sl);
        address_ = net::Address(reinterpret_cast<sockaddr *>(&sa), sl);
        timeval tv{0, 100 * 1000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        thread_ = std::thread([this] { run(); });
    }
    ~LoopbackRelay() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    LoopbackRelay(const LoopbackRelay &) = delete;
    LoopbackRelay &operator=(const LoopbackRelay &) = delete;

    const net::Address &address() const { return address_; }
    std::string spec() const { return "turn:127.0.0.1:" + std::to_string(address_.port()); }
    std::vector<uint8_t> key() const { return nat::stun::long_term_key(kUser, kRealm, kPassword); }
    std::atomic<int> requests{0};

private:
    void run() {
        uint8_t buf[1500];
        while (!stop_) {
            sockaddr_storage from{};
            socklen_t fl = sizeof from;
            ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr *>(&from), &fl);
            if (n <= 0) continue;
            auto m = nat::stun::parse(std::span<const uint8_t>(buf, size_t(n)));
            if (!m || m->cls != nat::stun::Class::request) continue;
            ++requests;
            net::Address client(reinterpret_cast<sockaddr *>(&from), fl);
            std::optional<std::vector<uint8_t>> out;
            if (answer_) out = answer_(*m, client);
            if (!out) out = default_answer(*m, client);
            if (!out->empty()) ::sendto(fd_, out->data(), out->size(), 0, reinterpret_cast<sockaddr *>(&from), fl);
        }
    }
    std::vector<uint8_t> default_answer(const nat::stun::Message &m, const net::Address &client) {
        namespace stun = nat::stun;
        if (m.method == stun::Method::binding)  // the client's keepalive
            return stun::Builder(m.method, stun::Class::success, m.tid).add_xor_address(stun::attr::xor_mapped_address, client).finish();
        if (!m.find(stun::attr::message_integrity))
            return stun::Builder(m.method, stun::Class::error, m.tid)
                .add(stun::attr::error_code, std::vector<uint8_t>{0, 0, 4, 1})
                .add(stun::attr::realm, kRealm)
                .add(stun::attr::nonce, "nonce")
                .finish();
        stun::Builder b(m.method, stun::Class::success, m.tid);
        if (m.method == stun::Method::allocate)
            b.add_xor_address(stun::attr::xor_relayed_address, net::Address::parse("127.0.0.1", 50000))
                .add_xor_address(stun::attr::xor_mapped_address, client)
                .add_u32(stun::attr::lifetime, 600);
        else if (m.method == stun::Method::refresh)
            b.add_u32(stun::attr::lifetime, 600);
        else if (m.method != stun::Method::create_permission)
            return {};
        return b.finish(key());
    }

    int fd_ = -1;
    net::Address address_;
    Answer answer_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

} // namespace pp::test
