// net/: addresses, the UDP socket on real loopback (GSO batches, GRO, IP_PKTINFO, the STUN/QUIC
// demultiplexer, ICMP unreachable reports) and the nanosecond timer.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "net/address.hpp"
#include "net/interfaces.hpp"
#include "net/loop.hpp"
#include "net/timer.hpp"
#include "net/udp.hpp"

using namespace pp;
using namespace pp::net;
using namespace std::chrono_literals;

TEST_CASE("addresses parse, print, map and classify", "[net]") {
    auto v4 = Address::parse("192.0.2.1", 4433);
    CHECK(v4.family() == AF_INET);
    CHECK(v4.to_string() == "192.0.2.1:4433");
    auto mapped = v4.to_v4_mapped();
    CHECK(mapped.family() == AF_INET6);
    CHECK(mapped.is_v4_mapped());
    CHECK(mapped.to_string() == "192.0.2.1:4433");  // users never see the mapping
    CHECK(mapped.unmapped() == v4);
    auto v6 = Address::parse("2001:db8::1", 80);
    CHECK(v6.to_string() == "[2001:db8::1]:80");
    CHECK(Address::parse("127.0.0.5", 1).is_loopback());
    CHECK(Address::parse("::1", 1).is_loopback());
    CHECK(Address::parse("::ffff:127.0.0.1", 1).is_loopback());
    CHECK(Address::parse("fe80::1", 1).is_link_local());
    CHECK(Address::parse("169.254.3.4", 1).is_link_local());
    CHECK_FALSE(v4.is_loopback());
    CHECK(Address::any(AF_INET6, 0).is_any());
    CHECK_THROWS_AS(Address::parse("example.com", 1), Error);
    CHECK_THROWS_AS(Address::parse("1.2.3", 1), Error);
}

TEST_CASE("local addresses list loopback last and no link-local", "[net]") {
    auto list = local_addresses(AF_INET6, true);
    REQUIRE_FALSE(list.empty());
    bool loopback_seen = false;
    for (const auto &a : list) {
        CHECK_FALSE(a.is_link_local());
        if (a.is_loopback()) loopback_seen = true;
        else CHECK_FALSE(loopback_seen);
    }
    CHECK(loopback_seen);
    for (const auto &a : local_addresses(AF_INET, false)) CHECK(a.family() == AF_INET);
}

namespace {

struct Received {
    std::mutex m;
    std::vector<std::vector<uint8_t>> quic, stun;
    std::vector<Address> local, remote;
    std::atomic<int> batches{0};
};

} // namespace

TEST_CASE("a GSO batch arrives as separate datagrams, routed by kind", "[net]") {
    Loop loop("udp-test");
    Received got;
    std::unique_ptr<UdpSocket> rx, tx;
    loop.call([&] {
        rx = std::make_unique<UdpSocket>(loop, UdpOptions{"", 0});  // dual-stack
        tx = std::make_unique<UdpSocket>(loop, UdpOptions{"127.0.0.1", 0});
        rx->set_quic_handler([&](const Datagram &d) {
            std::lock_guard lock(got.m);
            got.quic.emplace_back(d.data.begin(), d.data.end());
            got.local.push_back(d.local);
            got.remote.push_back(d.remote);
        });
        rx->set_stun_handler([&](const Datagram &d) {
            std::lock_guard lock(got.m);
            got.stun.emplace_back(d.data.begin(), d.data.end());
        });
        rx->set_batch_end([&] { ++got.batches; });
    });
    REQUIRE(rx->dual_stack());
    auto target = Address::parse("127.0.0.1", rx->local_address().port());

    // Ten QUIC-looking datagrams of 1200 bytes and a short last one, in one send call.
    std::vector<uint8_t> batch;
    for (int i = 0; i < 11; ++i) {
        size_t len = i == 10 ? 300 : 1200;
        for (size_t j = 0; j < len; ++j) batch.push_back(static_cast<uint8_t>(j == 0 ? 0x40 | i : i));
    }
    // A STUN binding request (magic cookie), and a QUIC short header with the fixed bit greased
    // off (first byte 0x00) that must still go to QUIC.
    std::vector<uint8_t> stun{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
    stun.resize(20, 0x55);
    std::vector<uint8_t> greased(100, 0x07);
    greased[0] = 0x00;
    loop.call([&] {
        size_t sent = 0;
        CHECK(tx->send(target, nullptr, batch, 1200, &sent) == UdpSocket::SendStatus::sent);
        CHECK(sent == batch.size());
        tx->send(target, nullptr, stun, stun.size());
        tx->send(target, nullptr, greased, greased.size());
    });
    for (int i = 0; i < 200; ++i) {
        {
            std::lock_guard lock(got.m);
            if (got.quic.size() == 12 && got.stun.size() == 1) break;
        }
        std::this_thread::sleep_for(5ms);
    }
    std::lock_guard lock(got.m);
    REQUIRE(got.quic.size() == 12);
    for (int i = 0; i < 10; ++i) {
        CHECK(got.quic[i].size() == 1200);
        CHECK(got.quic[i][0] == (0x40 | i));
        CHECK(got.quic[i][5] == i);
    }
    CHECK(got.quic[10].size() == 300);
    CHECK(got.quic[11] == greased);
    REQUIRE(got.stun.size() == 1);
    CHECK(got.stun[0] == stun);
    // IP_PKTINFO: the datagrams' destination, in the socket's (mapped) form, with its port.
    CHECK(got.local[0].to_string() == "127.0.0.1:" + std::to_string(rx->local_address().port()));
    CHECK(got.remote[0].to_string() == "127.0.0.1:" + std::to_string(tx->local_address().port()));
    CHECK(tx->counters().gso);
    CHECK(tx->counters().tx_calls <= 3 + 10);  // the batch went in one call when GSO works
    CHECK(got.batches > 0);
    loop.call([&] {
        rx.reset();
        tx.reset();
    });
}

TEST_CASE("a datagram to a closed port comes back as an unreachable report", "[net]") {
    Loop loop("icmp-test");
    std::unique_ptr<UdpSocket> sock, closed;
    std::mutex m;
    std::vector<Address> reports;
    uint16_t dead_port = loop.call([&] {
        closed = std::make_unique<UdpSocket>(loop, UdpOptions{"127.0.0.1", 0});
        uint16_t p = closed->local_address().port();
        closed.reset();  // nobody listens there now
        sock = std::make_unique<UdpSocket>(loop, UdpOptions{"", 0});
        sock->set_unreachable([&](const Address &a) {
            std::lock_guard lock(m);
            reports.push_back(a);
        });
        return p;
    });
    auto dead = sock->sendable(Address::parse("127.0.0.1", dead_port));
    std::vector<uint8_t> payload(50, 0x41);
    loop.call([&] { sock->send(dead, nullptr, payload, payload.size()); });
    for (int i = 0; i < 100; ++i) {
        {
            std::lock_guard lock(m);
            if (!reports.empty()) break;
        }
        std::this_thread::sleep_for(5ms);
    }
    {
        std::lock_guard lock(m);
        REQUIRE_FALSE(reports.empty());
        CHECK(reports[0] == dead);
    }
    // The socket still works afterwards (libuv stops a handle on POLLERR; it must be re-armed).
    std::atomic<int> n{0};
    loop.call([&] { sock->set_quic_handler([&](const Datagram &) { ++n; }); });
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    auto back = Address::parse("127.0.0.1", sock->local_address().port());
    std::vector<uint8_t> q(30, 0x41);
    sendto(fd, q.data(), q.size(), 0, back.sa(), back.len());
    close(fd);
    for (int i = 0; i < 100 && n == 0; ++i) std::this_thread::sleep_for(5ms);
    CHECK(n == 1);
    loop.call([&] { sock.reset(); });
}

TEST_CASE("the timer fires at its nanosecond deadline, moves, and cancels", "[net]") {
    Loop loop("timer-test");
    std::atomic<uint64_t> fired_at{0};
    std::atomic<int> fires{0};
    std::unique_ptr<Timer> timer;
    loop.call([&] {
        timer = std::make_unique<Timer>(loop, [&] {
            fired_at = monotonic_ns();
            ++fires;
        });
    });
    // Sub-millisecond: 300 µs ahead.
    uint64_t deadline = loop.call([&] {
        uint64_t d = monotonic_ns() + 300'000;
        timer->arm_at(d);
        return d;
    });
    for (int i = 0; i < 200 && fires == 0; ++i) std::this_thread::sleep_for(1ms);
    REQUIRE(fires == 1);
    CHECK(fired_at >= deadline);
    CHECK(fired_at - deadline < 20'000'000);  // not a rounded-up millisecond tick
    // Moved later: fires once, at the later time.
    deadline = loop.call([&] {
        timer->arm_at(monotonic_ns() + 2'000'000);
        uint64_t d = monotonic_ns() + 30'000'000;
        timer->arm_at(d);
        return d;
    });
    std::this_thread::sleep_for(60ms);
    CHECK(fires == 2);
    CHECK(fired_at >= deadline);
    // Cancelled: never fires.
    loop.call([&] {
        timer->arm_at(monotonic_ns() + 2'000'000);
        timer->cancel();
    });
    std::this_thread::sleep_for(20ms);
    CHECK(fires == 2);
    loop.call([&] { timer.reset(); });
}

TEST_CASE("aliases show QUIC one path while the real one changes; unrouted sends pass routes", "[net]") {
    Loop loop("alias-test");
    std::mutex m;
    std::vector<std::pair<Address, Address>> seen;  // (remote, local) as QUIC saw them
    std::unique_ptr<UdpSocket> rx, tx;
    int routed_sends = 0;
    loop.call([&] {
        rx = std::make_unique<UdpSocket>(loop, UdpOptions{"127.0.0.1", 0});
        tx = std::make_unique<UdpSocket>(loop, UdpOptions{"127.0.0.1", 0});
        rx->set_quic_handler([&](const Datagram &d) {
            std::lock_guard lock(m);
            seen.emplace_back(d.remote, d.local);
        });
    });
    auto virtual_peer = Address::parse("192.0.2.7", 4000);   // e.g. the peer's relayed address
    auto virtual_local = Address::parse("127.0.0.1", 9);
    auto real = Address::parse("127.0.0.1", tx->local_address().port());
    auto target = Address::parse("127.0.0.1", rx->local_address().port());
    std::vector<uint8_t> quic(50, 0x41);
    auto wait_seen = [&](size_t n) {
        for (int i = 0; i < 400; ++i) {
            {
                std::lock_guard lock(m);
                if (seen.size() >= n) return true;
            }
            std::this_thread::sleep_for(5ms);
        }
        return false;
    };
    loop.call([&] {
        CHECK(rx->last_heard(real) == 0);
        rx->set_alias(real, virtual_peer, virtual_local);
        tx->send(target, nullptr, quic, quic.size());
    });
    REQUIRE(wait_seen(1));
    {
        std::lock_guard lock(m);
        CHECK(seen[0].first == virtual_peer);
        CHECK(seen[0].second == virtual_local);
    }
    CHECK(loop.call([&] { return rx->last_heard(real); }) > 0);
    // Without the alias the real sender shows again.
    loop.call([&] {
        rx->clear_alias(real);
        tx->send(target, nullptr, quic, quic.size());
    });
    REQUIRE(wait_seen(2));
    {
        std::lock_guard lock(m);
        CHECK(seen[1].first == real);
    }
    // A route takes send(); send_unrouted() goes to the kernel anyway (a probe of the real path),
    // also with a TTL of its own.
    loop.call([&] {
        tx->set_route(target, [&](std::span<const uint8_t>, size_t) {
            ++routed_sends;
            return UdpSocket::SendStatus::sent;
        });
        tx->send(target, nullptr, quic, quic.size());
        CHECK(tx->send_unrouted(target, quic) == UdpSocket::SendStatus::sent);
        CHECK(tx->send_unrouted(target, quic, 1) == UdpSocket::SendStatus::sent);  // loopback: TTL 1 arrives
    });
    REQUIRE(wait_seen(4));
    CHECK(routed_sends == 1);
    loop.call([&] {
        rx.reset();
        tx.reset();
    });
}
