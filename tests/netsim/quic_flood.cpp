// quic-flood: the pre-authentication attack on a host's open UDP port, for tests/netsim/
// test_flood.py. Sends real, valid QUIC Initials (pixelpass's own client: a real TLS ClientHello)
// from many source addresses at a steady rate and never completes a handshake: the test routes the
// host's answers to those addresses into a namespace that drops them, as spoofed sources would.
//
//   quic-flood HOST PORT FIRST_SOURCE COUNT RATE_PER_S SECONDS
//
// FIRST_SOURCE .. FIRST_SOURCE+COUNT-1 (IPv4) must be addresses of this namespace. Prints one JSON
// line at the end: {"initials": N}.
#include <arpa/inet.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "http3/client.hpp"
#include "net/loop.hpp"
#include "net/timer.hpp"
#include "net/udp.hpp"
#include "quic/endpoint.hpp"

using namespace pp;

namespace {

std::string nth_address(const std::string &first, uint32_t n) {
    in_addr a{};
    if (inet_pton(AF_INET, first.c_str(), &a) != 1) throw std::runtime_error("FIRST_SOURCE must be IPv4");
    a.s_addr = htonl(ntohl(a.s_addr) + n);
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, buf, sizeof buf);
    return buf;
}

struct Flood {
    Flood(net::Loop &l, net::Address t) : loop(l), target(std::move(t)) {}
    net::Loop &loop;
    net::Address target;
    std::vector<std::unique_ptr<quic::Endpoint>> endpoints;
    std::unique_ptr<net::Timer> timer;
    uint64_t interval_ns = 0, deadline_ns = 0, sent = 0;
    size_t next = 0;
    std::promise<void> done;

    void tick() {
        uint64_t now = net::monotonic_ns();
        if (now >= deadline_ns) {
            done.set_value();
            return;
        }
        quic::ClientOptions o;
        o.make_app = [](quic::Connection &c) { return std::make_unique<http3::ClientSession>(c); };
        // Each attempt keeps retransmitting its Initial (as a spoofer replaying would) for 3 s,
        // then frees its timer and socket slot: ~300 alive at 100/s, well under the fd limit.
        o.transport.handshake_timeout_ms = 3000;
        try {
            endpoints[next]->connect(target, o);
            ++sent;
        } catch (const std::exception &e) {
            std::fprintf(stderr, "quic-flood: %s\n", e.what());
        }
        next = (next + 1) % endpoints.size();
        timer->arm_at(now + interval_ns);
    }
};

} // namespace

int main(int argc, char **argv) {
    if (argc != 7) {
        std::fprintf(stderr, "usage: quic-flood HOST PORT FIRST_SOURCE COUNT RATE_PER_S SECONDS\n");
        return 2;
    }
    net::Loop loop("quic-flood");
    Flood f(loop, net::Address::parse(argv[1], static_cast<uint16_t>(std::atoi(argv[2]))));
    const uint32_t count = static_cast<uint32_t>(std::atoi(argv[4]));
    const double rate = std::atof(argv[5]), seconds = std::atof(argv[6]);
    if (count == 0 || rate <= 0 || seconds <= 0) {
        std::fprintf(stderr, "quic-flood: COUNT, RATE_PER_S and SECONDS must be positive\n");
        return 2;
    }
    auto finished = f.done.get_future();
    loop.call([&] {
        for (uint32_t i = 0; i < count; ++i) {
            net::UdpOptions o;
            o.bind_ip = nth_address(argv[3], i);
            f.endpoints.push_back(
                std::make_unique<quic::Endpoint>(loop, std::make_unique<net::UdpSocket>(loop, o), quic::Observer{}));
        }
        f.interval_ns = static_cast<uint64_t>(1e9 / rate);
        f.deadline_ns = net::monotonic_ns() + static_cast<uint64_t>(seconds * 1e9);
        f.timer = std::make_unique<net::Timer>(loop, [&f] { f.tick(); });
        f.timer->arm_at(net::monotonic_ns());
    });
    finished.wait();
    uint64_t sent = loop.call([&] {
        f.timer.reset();
        f.endpoints.clear();
        return f.sent;
    });
    std::printf("{\"initials\": %llu}\n", static_cast<unsigned long long>(sent));
    return 0;
}
