// nat/: STUN message codec (RFC 8489 integrity and fingerprint) and the STUN agent on real
// loopback sockets: one agent learns its reflexive address from another that answers Bindings.
#include <catch2/catch.hpp>

#include <atomic>
#include <algorithm>
#include <chrono>
#include <set>
#include <cstdlib>
#include <functional>
#include <future>
#include <optional>
#include <mutex>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/error.hpp"
#include "nat/agent.hpp"
#include "nat/portmap.hpp"
#include "nat/stun.hpp"
#include "nat/guess.hpp"
#include "nat/path_offer.hpp"
#include "nat/paths.hpp"
#include "nat/probe_budget.hpp"
#include "nat/portmap_wire.hpp"
#include "nat/turn.hpp"
#include "net/loop.hpp"
#include "net/udp.hpp"
#include "loopback_relay.hpp"

using namespace pp;
using namespace pp::nat;

TEST_CASE("STUN messages round-trip with integrity and fingerprint", "[nat]") {
    auto tid = stun::new_transaction_id();
    auto peer = net::Address::parse("192.0.2.7", 40000);
    auto peer6 = net::Address::parse("2001:db8::9", 3478);
    auto key = stun::long_term_key("1700000000:pixelpass", "pixelpass.test", "secret");
    auto wire = stun::Builder(stun::Method::allocate, stun::Class::request, tid)
                    .add_u32(stun::attr::requested_transport, 17u << 24)
                    .add_xor_address(stun::attr::xor_peer_address, peer)
                    .add_xor_address(stun::attr::xor_relayed_address, peer6)
                    .add(stun::attr::username, "1700000000:pixelpass")
                    .finish(key);
    auto m = stun::parse(wire);
    REQUIRE(m);
    CHECK(m->method == stun::Method::allocate);
    CHECK(m->cls == stun::Class::request);
    CHECK(m->tid == tid);
    CHECK(m->xor_address(stun::attr::xor_peer_address) == peer);
    CHECK(m->xor_address(stun::attr::xor_relayed_address) == peer6);
    CHECK(m->u32(stun::attr::requested_transport) == (17u << 24));
    CHECK(m->text(stun::attr::username) == "1700000000:pixelpass");
    CHECK(m->integrity_ok(key));
    CHECK_FALSE(m->integrity_ok(stun::long_term_key("1700000000:pixelpass", "pixelpass.test", "wrong")));

    SECTION("a flipped bit breaks the fingerprint") {
        wire[25] ^= 1;
        CHECK_FALSE(stun::parse(wire));
    }
    SECTION("error responses carry their code") {
        auto err = stun::Builder(stun::Method::allocate, stun::Class::error, tid)
                       .add(stun::attr::error_code, std::vector<uint8_t>{0, 0, 4, 1, 'U', 'n'})
                       .finish();
        auto e = stun::parse(err);
        REQUIRE(e);
        CHECK(e->cls == stun::Class::error);
        std::string reason;
        CHECK(e->error_code(&reason) == 401);
        CHECK(reason == "Un");
    }
    SECTION("a malformed error code is no code (fuzz-stun finding): class 3 number 101 is not 401") {
        for (std::vector<uint8_t> value : {std::vector<uint8_t>{0, 0, 3, 101, 'U', 'n'},
                                           std::vector<uint8_t>{0, 0, 2, 0}, std::vector<uint8_t>{0, 0, 7, 1}}) {
            auto err = stun::Builder(stun::Method::allocate, stun::Class::error, tid)
                           .add(stun::attr::error_code, value)
                           .finish();
            auto e = stun::parse(err);
            REQUIRE(e);
            std::string reason;
            CHECK(e->error_code(&reason) == 0);
            CHECK(reason.empty());
        }
    }
    SECTION("truncated and non-STUN input is refused") {
        CHECK_FALSE(stun::parse(std::span(wire).first(19)));
        std::vector<uint8_t> quic(wire);
        quic[0] = 0xc0;
        CHECK_FALSE(stun::parse(quic));
    }
}

TEST_CASE("server names resolve; malformed ones are refused", "[nat]") {
    CHECK(resolve("127.0.0.1:3479", 3478) == std::vector{net::Address::parse("127.0.0.1", 3479)});
    CHECK(resolve("stun:127.0.0.1", 3478) == std::vector{net::Address::parse("127.0.0.1", 3478)});
    CHECK(resolve("[::1]:5000", 3478) == std::vector{net::Address::parse("::1", 5000)});
    CHECK_THROWS_AS(resolve("127.0.0.1:0", 3478), Error);
    CHECK_THROWS_AS(resolve("127.0.0.1:x", 3478), Error);
    CHECK_THROWS_AS(resolve("[::1", 3478), Error);
}

TEST_CASE("an agent learns its reflexive address from a peer agent over real UDP", "[nat]") {
    net::Loop loop("nat-test");
    std::unique_ptr<net::UdpSocket> a_sock, b_sock;
    std::unique_ptr<Agent> a, b;
    net::UdpOptions opt;
    opt.bind_ip = "127.0.0.1";
    loop.call([&] {
        a_sock = std::make_unique<net::UdpSocket>(loop, opt);
        b_sock = std::make_unique<net::UdpSocket>(loop, opt);
        a = std::make_unique<Agent>(loop, *a_sock);
        b = std::make_unique<Agent>(loop, *b_sock);  // answers Binding requests
    });
    auto done = std::make_shared<std::promise<void>>();
    auto f = done->get_future();
    loop.call([&] { a->discover({b_sock->local_address()}, [done] { done->set_value(); }); });
    REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    loop.call([&] {
        REQUIRE(a->reflexive().size() == 1);
        CHECK(a->reflexive()[0] == a_sock->local_address());
        CHECK(b->counters().bindings_answered >= 1);
        CHECK(a->counters().answers >= 1);
    });

    SECTION("a silent server times out after retransmitting") {
        auto done2 = std::make_shared<std::promise<void>>();
        auto f2 = done2->get_future();
        loop.call([&] {
            b.reset();  // nobody answers on b's socket any more
            a->discover({b_sock->local_address()}, [done2] { done2->set_value(); }, 1200);
        });
        REQUIRE(f2.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
        loop.call([&] {
            CHECK(a->counters().timeouts >= 1);
            CHECK(a->counters().retransmits >= 2);
        });
    }
    loop.call([&] {
        a.reset();
        b.reset();
        a_sock.reset();
        b_sock.reset();
    });
}

TEST_CASE("TURN REST-API credentials match coturn's use-auth-secret scheme", "[nat]") {
    // Reference value: base64(HMAC-SHA1("s3cret", "1700000000:pixelpass")) from Python's hmac.
    auto c = rest_credentials("s3cret", 1700000000);
    CHECK(c.username == "1700000000:pixelpass");
    CHECK(c.password == "b6bLLRLZ8auS2j5o86ahsqhjz9I=");
}

TEST_CASE("relay specs parse; malformed ones say what a spec looks like", "[nat]") {
    CHECK(parse_relay("turn:relay.example.org") == std::pair<std::string, uint16_t>{"relay.example.org", 3478});
    CHECK(parse_relay("turn:192.0.2.1:5000") == std::pair<std::string, uint16_t>{"192.0.2.1", 5000});
    CHECK(parse_relay("relay.example.org:3479?transport=udp") == std::pair<std::string, uint16_t>{"relay.example.org", 3479});
    CHECK(parse_relay("turn:[2001:db8::1]:3478") == std::pair<std::string, uint16_t>{"2001:db8::1", 3478});
    CHECK_THROWS_AS(parse_relay("turn:"), Error);
    CHECK_THROWS_AS(parse_relay("turn:host:0"), Error);
    CHECK_THROWS_AS(parse_relay("turn:host:99999"), Error);
    try {
        parse_relay("turns:relay.example.org");
        FAIL("turns: should be refused");
    } catch (const Error &e) {
        CHECK(e.code() == PP_ERR_UNSUPPORTED);
    }
}

// ---- port mapping (nat/portmap) ----------------------------------------------------------------
// The real protocols run against miniupnpd in tests/netsim/test_portmap.py; here: the settings
// and how a gateway that speaks none of them is reported. Only loopback is ever asked.

TEST_CASE("PIXELPASS_PORTMAP picks the port-mapping protocols", "[nat][portmap]") {
    using portmap::Protocol;
    const char *saved = std::getenv("PIXELPASS_PORTMAP");
    std::string restore = saved ? saved : "";
    ::unsetenv("PIXELPASS_PORTMAP");
    auto all = portmap::options_from_environment();
    REQUIRE(all);
    CHECK(all->protocols == std::vector<Protocol>{Protocol::pcp, Protocol::natpmp, Protocol::upnp});
    ::setenv("PIXELPASS_PORTMAP", "upnp,pcp", 1);
    CHECK(portmap::options_from_environment()->protocols == std::vector<Protocol>{Protocol::upnp, Protocol::pcp});
    ::setenv("PIXELPASS_PORTMAP", "off", 1);
    CHECK_FALSE(portmap::options_from_environment());
    ::setenv("PIXELPASS_PORTMAP", "upnp,igd", 1);
    try {
        portmap::options_from_environment();
        FAIL("accepted igd");
    } catch (const Error &e) {
        CHECK(e.code() == PP_ERR_INVALID_ARGUMENT);
        CHECK(std::string(e.what()).find("'igd' is not off, pcp, natpmp or upnp") != std::string::npos);
    }
    if (saved) ::setenv("PIXELPASS_PORTMAP", restore.c_str(), 1);
    else ::unsetenv("PIXELPASS_PORTMAP");
}

TEST_CASE("a gateway without PCP or NAT-PMP is reported per protocol, quickly", "[nat][portmap]") {
    portmap::Options o;
    o.protocols = {portmap::Protocol::pcp, portmap::Protocol::natpmp};
    o.gateway = "127.0.0.1";  // nothing listens on UDP 5351 there: ICMP says so at once
    o.timeout_ms = 3000;
    auto started = std::chrono::steady_clock::now();
    try {
        portmap::map_udp(40000, o);
        FAIL("mapped on loopback");
    } catch (const Error &e) {
        std::string what = e.what();
        CHECK(e.code() == PP_ERR_UNREACHABLE);
        CHECK(what.find("PCP: gateway 127.0.0.1 refused (nothing listens on UDP 5351)") != std::string::npos);
        CHECK(what.find("; NAT-PMP: gateway 127.0.0.1 refused") != std::string::npos);
    }
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::milliseconds(2500));

    std::vector<std::string> lines;
    std::mutex m;
    {
        portmap::Keeper keeper(40000, o, [&](bool, const std::string &line) {
            std::lock_guard lock(m);
            lines.push_back(line);
        });
        CHECK_FALSE(keeper.wait(std::chrono::seconds(10)));
        auto stats = keeper.stats();
        CHECK(stats["state"] == "failed");
        CHECK(stats["error"].get<std::string>().find("PCP: gateway 127.0.0.1 refused") != std::string::npos);
        CHECK(stats["map_ms"].get<double>() >= 0);
    }
    std::lock_guard lock(m);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].rfind("no port mapping (PCP: ", 0) == 0);
}

TEST_CASE("the path probe key comes from the ticket secret alone", "[nat]") {
    std::vector<uint8_t> a(32, 1), b(32, 2);
    auto ka = pp::nat::probe_key(a);
    CHECK(ka.size() == 32);
    CHECK(ka == pp::nat::probe_key(a));  // both sides derive the same key
    CHECK(ka != pp::nat::probe_key(b));
    CHECK(ka != a);                      // never the secret itself on the wire
    CHECK(std::string(pp::nat::path_kind_name(pp::nat::PathKind::punched)) == "punched");
}

TEST_CASE("a peer's candidates are probed only when routable unicast of the connection's scope", "[nat]") {
    auto a = [](const char *ip, uint16_t port = 4433) { return net::Address::parse(ip, port); };
    const auto internet_peer = a("203.0.113.7"), loopback_peer = a("127.0.0.1");
    // What a viewer legitimately offers: public and LAN addresses, IPv4 and IPv6.
    for (const char *ok : {"198.51.100.1", "192.168.1.20", "10.0.0.5", "2001:db8::1", "::ffff:198.51.100.1"})
        CHECK(nat::probe_target_allowed(a(ok), internet_peer));
    // What would turn the host into a prober: loopback (from a remote peer), multicast, broadcast,
    // unspecified, this-network, reserved, link-local, port 0.
    for (const char *bad : {"127.0.0.1", "::1", "224.0.0.251", "239.255.255.250", "255.255.255.255", "0.0.0.0",
                            "0.1.2.3", "240.0.0.1", "169.254.1.1", "fe80::1", "ff02::1", "::"})
        CHECK_FALSE(nat::probe_target_allowed(a(bad), internet_peer));
    CHECK_FALSE(nat::probe_target_allowed(a("198.51.100.1", 0), internet_peer));
    // A peer on loopback may offer loopback.
    CHECK(nat::probe_target_allowed(a("127.0.0.1"), loopback_peer));
}

TEST_CASE("an offer of a thousand candidates gets at most sixteen probes", "[nat]") {
    net::Loop loop("nat-test");
    std::unique_ptr<net::UdpSocket> sock;
    std::unique_ptr<Agent> agent;
    std::unique_ptr<nat::PeerPaths> paths;
    net::UdpOptions opt;
    opt.bind_ip = "127.0.0.1";
    loop.call([&] {
        sock = std::make_unique<net::UdpSocket>(loop, opt);
        agent = std::make_unique<Agent>(loop, *sock);
        nat::PeerPaths::Options o;
        o.virtual_remote = net::Address::parse("127.0.0.1", 9);
        o.virtual_local = sock->local_address();
        o.key = nat::probe_key(std::vector<uint8_t>(16, 1));
        o.session = "0123456789abcdef";
        paths = std::make_unique<nat::PeerPaths>(loop, *sock, *agent, nullptr, o, [](nat::PathKind, const net::Address &) {});
        // What GET /paths used to turn into ~1,100 probes from the host's port.
        std::vector<net::Address> offer;
        for (int i = 0; i < 1100; ++i)
            offer.push_back(net::Address::parse("127.0." + std::to_string(i / 250) + "." + std::to_string(1 + i % 250),
                                                static_cast<uint16_t>(1000 + i)));
        paths->add_candidates(offer);
        CHECK(paths->candidates() <= nat::kMaxPeerCandidates + 1);
        CHECK(paths->counters().probes_sent <= nat::kMaxPeerCandidates + 1);
        paths.reset();
        agent.reset();
        sock.reset();
    });
}

TEST_CASE("a token bucket gives its burst at once, then its rate", "[nat]") {
    TokenBucket b(10, 4);
    uint64_t t = 7'000'000'000;
    int taken = 0;
    while (b.take(t)) ++taken;
    CHECK(taken == 10);
    CHECK_FALSE(b.take(t + 200'000'000));  // 0.8 of a token after 200 ms
    CHECK(b.take(t + 250'000'000));        // one after 250 ms
    CHECK(b.available(t + 100'000'000'000) == 10);  // never more than the burst
    CHECK(b.available(t) == 10);  // a clock that steps back takes nothing
}

TEST_CASE("a ticket holder's flood of authenticated probes is answered at a bounded rate", "[nat]") {
    // A ticket holder knows the probe key, not where its probes come from: signed Binding requests
    // with spoofed sources were each answered toward that source, one for one. Now answers and
    // probes of a peer come from its budget (kPeerProbeBurst, then kPeerProbesPerSecond), and all
    // peers of a host share the host's.
    net::Loop loop("nat-test");
    std::unique_ptr<net::UdpSocket> sock;
    std::unique_ptr<Agent> agent;
    std::unique_ptr<nat::PeerPaths> a, b;
    ProbeBudget host_budget(20, 1);
    net::UdpOptions opt;
    opt.bind_ip = "127.0.0.1";
    const auto key = nat::probe_key(std::vector<uint8_t>(16, 3));
    auto make = [&](const std::string &session, ProbeBudget *shared) {
        nat::PeerPaths::Options o;
        o.virtual_remote = sock->local_address();  // anything we send lands on our own socket
        o.virtual_local = sock->local_address();
        o.key = key;
        o.session = session;
        o.shared_budget = shared;
        return std::make_unique<nat::PeerPaths>(loop, *sock, *agent, nullptr, o, [](nat::PathKind, const net::Address &) {});
    };
    // From before the peer exists: every probe and answer it sends falls in the measured span.
    auto start = std::chrono::steady_clock::now();
    loop.call([&] {
        sock = std::make_unique<net::UdpSocket>(loop, opt);
        agent = std::make_unique<Agent>(loop, *sock);
        a = make("0123456789abcdef", nullptr);
    });
    const int flood = 2000;
    loop.call([&] {
        for (int i = 0; i < flood; ++i) {
            auto wire = stun::Builder(stun::Method::binding, stun::Class::request, stun::new_transaction_id())
                            .add(stun::attr::username, "0123456789abcdef")
                            .finish(key);
            auto m = stun::parse(wire);
            net::Address from = sock->local_address();
            net::Datagram d{std::span<const uint8_t>(wire), from, from, 0};
            REQUIRE(a->on_stun(*m, d));
        }
    });
    double elapsed = 0;
    loop.call([&] {
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const auto &c = a->counters();
        INFO(c.probes_answered << " answered, " << c.answers_refused << " refused in " << elapsed << " s");
        CHECK(c.probes_answered + c.answers_refused == flood);
        CHECK(c.probes_answered + c.probes_sent <= kPeerProbeBurst + kPeerProbesPerSecond * elapsed + 1);
        CHECK(c.answers_refused > 0);
    });

    // Two peers sharing a host budget of 20, then 1/s: their offers of 16 candidates each are
    // probed 20 times in all, the rest put off (counted) to later ticks.
    start = std::chrono::steady_clock::now();
    loop.call([&] {
        a.reset();
        a = make("aaaaaaaaaaaaaaaa", &host_budget);
        b = make("bbbbbbbbbbbbbbbb", &host_budget);
        std::vector<net::Address> offer;
        for (int i = 0; i < 16; ++i) offer.push_back(net::Address::parse("127.0.0.1", static_cast<uint16_t>(9 + i)));
        a->add_candidates(offer);
        b->add_candidates(offer);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a window of ticks (50 ms each)
    loop.call([&] {
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        uint64_t sent = a->counters().probes_sent + b->counters().probes_sent;
        INFO(sent << " probes in " << elapsed << " s");
        CHECK(sent <= 20 + elapsed + 1);
        CHECK(a->counters().probes_deferred + b->counters().probes_deferred > 0);
        CHECK(host_budget.deferred > 0);
        a.reset();
        b.reset();
        agent.reset();
        sock.reset();
    });
}

TEST_CASE("STUN parsing is strict about what follows MESSAGE-INTEGRITY (RFC 8489)", "[nat]") {
    auto key = stun::long_term_key("u", "pixelpass.test", "secret");
    auto tid = stun::new_transaction_id();
    // Signed, without a fingerprint; then an attribute appended after the signature, which
    // MESSAGE-INTEGRITY does not cover: anyone on the path could add it.
    auto wire = stun::Builder(stun::Method::binding, stun::Class::success, tid).add(stun::attr::username, "u").finish(key, false);
    auto appended = wire;
    for (uint8_t b : std::initializer_list<uint8_t>{0x00, 0x06, 0x00, 0x04, 'e', 'v', 'i', 'l'}) appended.push_back(b);  // USERNAME "evil"
    size_t len = appended.size() - 20;
    appended[2] = static_cast<uint8_t>(len >> 8);
    appended[3] = static_cast<uint8_t>(len);
    REQUIRE(stun::parse(wire));
    REQUIRE(stun::parse(wire)->integrity_ok(key));
    CHECK_FALSE(stun::parse(appended));
    // FINGERPRINT must be the last attribute.
    auto fingerprinted = stun::Builder(stun::Method::binding, stun::Class::request, tid).finish({}, true);
    REQUIRE(stun::parse(fingerprinted));
    auto after_fp = fingerprinted;
    for (uint8_t b : std::initializer_list<uint8_t>{0x00, 0x06, 0x00, 0x00}) after_fp.push_back(b);  // an empty USERNAME after it
    len = after_fp.size() - 20;
    after_fp[2] = static_cast<uint8_t>(len >> 8);
    after_fp[3] = static_cast<uint8_t>(len);
    CHECK_FALSE(stun::parse(after_fp));
    // Signed and fingerprinted, in that order: fine.
    auto both = stun::Builder(stun::Method::binding, stun::Class::request, tid).add(stun::attr::username, "u").finish(key, true);
    auto m = stun::parse(both);
    REQUIRE(m);
    CHECK(m->integrity_ok(key));
}

TEST_CASE("unauthenticated Binding requests are answered at a bounded rate", "[nat]") {
    net::Loop loop("nat-test");
    std::unique_ptr<net::UdpSocket> sock;
    std::unique_ptr<Agent> agent;
    net::UdpOptions opt;
    opt.bind_ip = "127.0.0.1";
    loop.call([&] {
        sock = std::make_unique<net::UdpSocket>(loop, opt);
        agent = std::make_unique<Agent>(loop, *sock);
    });
    // 200 Binding requests at once from one sender, as a reflection attack would send them.
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    auto to = sock->local_address();
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 200; ++i) {
        auto wire = stun::Builder(stun::Method::binding, stun::Class::request, stun::new_transaction_id()).finish();
        REQUIRE(sendto(fd, wire.data(), wire.size(), 0, to.sa(), to.len()) == static_cast<ssize_t>(wire.size()));
    }
    Agent::Counters c;
    for (int i = 0; i < 500; ++i) {
        c = loop.call([&] { return agent->counters(); });
        if (c.bindings_answered + c.bindings_refused >= 200) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    close(fd);
    CHECK(c.bindings_answered + c.bindings_refused == 200);
    CHECK(c.bindings_answered >= 40);                          // the burst
    CHECK(c.bindings_answered <= 41 + 20 * (elapsed + 0.1));   // then 20 per second
    CHECK(c.bindings_refused >= 100);
    loop.call([&] {
        agent.reset();
        sock.reset();
    });
}

TEST_CASE("port guessing refuses what it must never probe, and nothing is sent for it", "[nat]") {
    // Only refusals here: a fit target would be probed, and unit tests send nothing off the machine
    // (the real guessing runs in netsim: test_rendezvous.py, bench_guess.py).
    net::Loop loop("nat-test");
    std::unique_ptr<net::UdpSocket> sock;
    std::unique_ptr<guess::Guesser> g;
    net::UdpOptions opt;
    opt.bind_ip = "127.0.0.1";
    loop.call([&] {
        sock = std::make_unique<net::UdpSocket>(loop, opt);
        g = std::make_unique<guess::Guesser>(loop, *sock, std::vector<uint8_t>(32, 7), nullptr);
        const char *session = "0123456789abcdef";
        for (const char *bad : {"127.0.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "169.254.1.1", "::1", "2001:db8::1"}) {
            CHECK_FALSE(g->fan(session, net::Address::parse(bad, 4000)));
            CHECK_FALSE(g->spray(std::string(session) + "0", net::Address::parse(bad, 4000)));
        }
        auto st = g->stats();
        CHECK(st["fans"] == 0);
        CHECK(st["sprays"] == 0);
        CHECK(st["guesses"] == 0);
        CHECK(st["fan_probes"] == 0);
        CHECK(st["refused"] == 14);
        CHECK_FALSE(g->active());
        CHECK(sock->counters().tx_datagrams == 0);
        g.reset();
        sock.reset();
    });
}

TEST_CASE("a /paths offer takes only ports that are whole numbers in 0..65535 (fuzz-paths_offer finding)", "[nat]") {
    auto ok = parse_path_offer(R"({"session":"0123456789abcdef","candidates":[["192.0.2.7",40001]],"relayed":["198.51.100.9",50000]})");
    REQUIRE(ok);
    CHECK(ok->candidates.size() == 1);
    CHECK(ok->candidates[0].port() == 40001);
    CHECK(ok->relayed.port() == 50000);
    // nlohmann's get<uint16_t>() wrapped these to 4464, 65535 and 1: another address than sent.
    CHECK_FALSE(parse_path_offer(R"({"session":"s","candidates":[["192.0.2.7",70000]]})"));
    CHECK_FALSE(parse_path_offer(R"({"session":"s","candidates":[["192.0.2.7",-1]]})"));
    CHECK_FALSE(parse_path_offer(R"({"session":"s","candidates":[["192.0.2.7",1.5]]})"));
    CHECK_FALSE(parse_path_offer(R"({"session":"s","candidates":[],"relayed":["192.0.2.7",65536]})"));
    CHECK_FALSE(parse_path_offer(R"({"session":"s","candidates":{"a":1}})"));
    CHECK_FALSE(parse_path_offer("not json"));
    std::string many = R"({"session":"s","candidates":[)";
    for (int i = 0; i < 1000; ++i) many += std::string(i ? "," : "") + R"(["10.0.0.1",)" + std::to_string(1 + i) + "]";
    auto big = parse_path_offer(many + "]}");
    REQUIRE(big);
    CHECK(big->candidates.size() == kMaxOfferedCandidates);
}

namespace {
std::vector<uint8_t> pcp_answer(uint8_t result, const std::array<uint8_t, 12> &nonce, uint8_t protocol, uint16_t port,
                                bool v4_mapped = true) {
    std::vector<uint8_t> b(60, 0);
    b[0] = 2;
    b[1] = 0x81;
    b[3] = result;
    b[7] = 120;  // lifetime 120 s
    std::copy(nonce.begin(), nonce.end(), b.begin() + 24);
    b[36] = protocol;
    b[40] = b[42] = uint8_t(port >> 8);
    b[41] = b[43] = uint8_t(port);
    if (v4_mapped) b[54] = b[55] = 0xff;
    b[56] = 203, b[57] = 0, b[58] = 113, b[59] = 5;
    return b;
}
} // namespace

TEST_CASE("a PCP answer counts only when nonce, protocol and internal port match (RFC 6887 11.3)", "[nat][portmap]") {
    std::array<uint8_t, 12> nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    auto r = portmap::parse_pcp_reply(pcp_answer(0, nonce, IPPROTO_UDP, 4433), nonce, 4433);
    CHECK(r.kind == portmap::PcpReply::mapped);
    CHECK(r.external_ip == "203.0.113.5");
    CHECK(r.external_port == 4433);
    CHECK(r.lifetime == 120);
    CHECK(portmap::parse_pcp_reply(pcp_answer(2, nonce, IPPROTO_UDP, 4433), nonce, 4433).kind == portmap::PcpReply::refused);
    // The old reader took these for our mapping: another protocol, another internal port, an
    // external address that is not IPv4.
    CHECK(portmap::parse_pcp_reply(pcp_answer(0, nonce, IPPROTO_TCP, 4433), nonce, 4433).kind == portmap::PcpReply::ignore);
    CHECK(portmap::parse_pcp_reply(pcp_answer(0, nonce, IPPROTO_UDP, 4434), nonce, 4433).kind == portmap::PcpReply::ignore);
    CHECK(portmap::parse_pcp_reply(pcp_answer(0, nonce, IPPROTO_UDP, 4433, false), nonce, 4433).kind ==
          portmap::PcpReply::ignore);
    auto other = nonce;
    other[0] ^= 1;
    CHECK(portmap::parse_pcp_reply(pcp_answer(0, other, IPPROTO_UDP, 4433), nonce, 4433).kind == portmap::PcpReply::ignore);
    CHECK(portmap::parse_pcp_reply(std::vector<uint8_t>{0, 0x80, 0, 1}, nonce, 4433).kind == portmap::PcpReply::natpmp_only);
}

TEST_CASE("a NAT-PMP answer of the wrong type, port or length is not taken for the mapping", "[nat][portmap]") {
    // Real loopback UDP: a fake gateway socket and libnatpmp's socket connected to it.
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int gw = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), cl = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    REQUIRE((gw >= 0 && cl >= 0));
    sockaddr_in g = a, c = a;
    socklen_t len = sizeof g;
    REQUIRE(::bind(gw, reinterpret_cast<sockaddr *>(&g), sizeof g) == 0);
    REQUIRE(::bind(cl, reinterpret_cast<sockaddr *>(&c), sizeof c) == 0);
    REQUIRE(::getsockname(gw, reinterpret_cast<sockaddr *>(&g), &len) == 0);
    REQUIRE(::getsockname(cl, reinterpret_cast<sockaddr *>(&c), &(len = sizeof c)) == 0);
    REQUIRE(::connect(cl, reinterpret_cast<sockaddr *>(&g), sizeof g) == 0);
    natpmp_t n{};
    n.s = cl;
    n.gateway = htonl(INADDR_LOOPBACK);
    n.has_pending_request = 1;
    n.pending_request[1] = 1;
    n.pending_request_len = 12;
    gettimeofday(&n.retry_time, nullptr);
    n.retry_time.tv_sec += 60;
    auto answer = [&](std::vector<uint8_t> datagram) {
        REQUIRE(::sendto(gw, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr *>(&c), sizeof c) ==
                ssize_t(datagram.size()));
        natpmpresp_t r{};
        int rc = portmap::natpmp_read_answer(n, r, NATPMP_RESPTYPE_UDPPORTMAPPING, 4433);
        return std::pair(rc, r);
    };
    std::vector<uint8_t> mapping{0, 129, 0, 0, 0, 0, 0, 100, 0x11, 0x51, 0x11, 0x52, 0, 0, 0x0e, 0x10};
    // A public-address answer (the wrong type: libnatpmp returns it as a success) and a short
    // mapping answer (libnatpmp would decode its port and lifetime from stale stack bytes).
    CHECK(answer({0, 128, 0, 0, 0, 0, 0, 100, 203, 0, 113, 5}).first == NATPMP_TRYAGAIN);
    CHECK(answer({0, 129, 0, 0, 0, 0, 0, 100}).first == NATPMP_TRYAGAIN);
    auto other_port = mapping;
    other_port[9] = 0x52;
    CHECK(answer(other_port).first == NATPMP_TRYAGAIN);
    CHECK(n.has_pending_request);
    auto [rc, r] = answer(mapping);
    CHECK(rc == 0);
    CHECK(r.pnu.newportmapping.privateport == 4433);
    CHECK(r.pnu.newportmapping.mappedpublicport == 4434);
    CHECK(r.pnu.newportmapping.lifetime == 3600);
    ::close(gw);
    ::close(cl);
}

namespace {

// A TURN relay of the test's own on loopback, on its own thread. It asks an unsigned Allocate for
// credentials (401, realm "realm", nonce "nonce"; user "user", password "pass") and hands every
// other request to `answer`, which returns the reply's bytes or nothing to stay silent.
class FakeRelay {
public:
    using Answer = std::function<std::optional<std::vector<uint8_t>>(const stun::Message &, const net::Address &client)>;

    explicit FakeRelay(Answer answer) : answer_(std::move(answer)) {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t sl = sizeof sa;
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr *>(&sa), sizeof sa) == 0);
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr *>(&sa), &sl) == 0);
        address_ = net::Address(reinterpret_cast<sockaddr *>(&sa), sizeof sa);
        // A receive timeout, so the thread sees `stop_` without a datagram to wake it.
        timeval tv{0, 200 * 1000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeRelay() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    const net::Address &address() const { return address_; }

private:
    void serve() {
        uint8_t buf[1500];
        while (!stop_) {
            sockaddr_in from{};
            socklen_t fl = sizeof from;
            ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr *>(&from), &fl);
            if (n <= 0) continue;
            auto m = stun::parse(std::span<const uint8_t>(buf, size_t(n)));
            if (!m || m->cls != stun::Class::request) continue;
            std::optional<std::vector<uint8_t>> out;
            if (m->method == stun::Method::allocate && !m->find(stun::attr::message_integrity))
                out = stun::Builder(m->method, stun::Class::error, m->tid)
                          .add(stun::attr::error_code, std::vector<uint8_t>{0, 0, 4, 1})
                          .add(stun::attr::realm, "realm")
                          .add(stun::attr::nonce, "nonce")
                          .finish();
            else
                out = answer_(*m, net::Address(reinterpret_cast<sockaddr *>(&from), fl));
            if (out) ::sendto(fd_, out->data(), out->size(), 0, reinterpret_cast<sockaddr *>(&from), fl);
        }
    }

    Answer answer_;
    int fd_ = -1;
    net::Address address_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// Our TURN client on `loop` (its own loopback socket and agent), allocating on a FakeRelay with
// its credentials. Created and destroyed on the loop thread, as the loop's objects must be.
struct TestTurn {
    TestTurn(net::Loop &l, const net::Address &relay) : loop(l) {
        auto done = std::make_shared<std::promise<pp_result>>();
        allocated = done->get_future();
        loop.call([&] {
            net::UdpOptions opt;
            opt.bind_ip = "127.0.0.1";
            sock = std::make_unique<net::UdpSocket>(loop, opt);
            agent = std::make_unique<Agent>(loop, *sock);
            TurnConfig config;
            config.server = relay;
            config.username = "user";
            config.password = "pass";
            config.label = "turn:test";
            turn = std::make_unique<TurnClient>(*agent, *sock, loop, config);
            turn->allocate([done](pp_result rc, const std::string &) { done->set_value(rc); });
        });
    }
    ~TestTurn() {
        loop.call([&] {
            turn.reset();
            agent.reset();
            sock.reset();
        });
    }
    // The allocation's outcome; fails the test if there is none within 15 s.
    pp_result wait_allocated() {
        REQUIRE(allocated.wait_for(std::chrono::seconds(15)) == std::future_status::ready);
        return allocated.get();
    }

    net::Loop &loop;
    std::unique_ptr<net::UdpSocket> sock;
    std::unique_ptr<Agent> agent;
    std::unique_ptr<TurnClient> turn;
    std::future<pp_result> allocated;
};

} // namespace

TEST_CASE("a TURN refresh answer without the relay's MESSAGE-INTEGRITY is ignored", "[nat][turn]") {
    // A relay of our own on loopback: 401 with realm and nonce, then a signed allocation of 8 s;
    // the refresh (due after 5 s) is answered with an unsigned success claiming 3600 s, as anyone
    // who sees the transaction id could send. The old client took it and would have refreshed
    // an hour later, long after the relay dropped the allocation.
    std::atomic<int> refreshes_answered{0};
    const auto key = stun::long_term_key("user", "realm", "pass");
    FakeRelay relay([&](const stun::Message &m, const net::Address &client) -> std::optional<std::vector<uint8_t>> {
        if (m.method == stun::Method::allocate)
            return stun::Builder(m.method, stun::Class::success, m.tid)
                .add_xor_address(stun::attr::xor_relayed_address, net::Address::parse("127.0.0.1", 50000))
                .add_xor_address(stun::attr::xor_mapped_address, client)
                .add_u32(stun::attr::lifetime, 8)
                .finish(key);
        if (m.method != stun::Method::refresh) return std::nullopt;
        ++refreshes_answered;
        return stun::Builder(m.method, stun::Class::success, m.tid).add_u32(stun::attr::lifetime, 3600).finish();
    });

    net::Loop loop("turn-test");
    TestTurn t(loop, relay.address());
    CHECK(t.wait_allocated() == PP_OK);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    uint64_t unauthenticated = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        loop.call([&] { unauthenticated = t.turn->counters().unauthenticated; });
        if (unauthenticated >= 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(refreshes_answered >= 1);
    CHECK(unauthenticated >= 1);
    loop.call([&] { CHECK(t.turn->lifetime_s() == 8); });
}

// The bounds of port guessing, on its bookkeeping alone (nat/guess_limits): no socket, a fake
// clock. The guessing itself runs in netsim (test_rendezvous.py, bench_guess.py).
TEST_CASE("port guessing sends at most 800 guesses a second, whatever the tick", "[nat]") {
    for (uint64_t tick_ms : {1, 10, 250, 3000}) {
        guess::Limits limits;
        uint64_t now = 5'000'000'000;  // any start
        size_t sent = 0;
        const uint64_t span_ms = 10'000;
        for (uint64_t t = 0; t <= span_ms; t += tick_ms) {
            size_t n = limits.allowance(now + t * 1'000'000);
            limits.spend(n);
            sent += n;
        }
        INFO("tick " << tick_ms << " ms: " << sent << " guesses in 10 s");
        // The bucket fills at 800/s and holds at most kBurst: never more than that, nearly that
        // much with fine ticks (coarse ticks lose what overflows the burst).
        CHECK(sent <= guess::kGuessesPerSecond * span_ms / 1000 + size_t(guess::kBurst));
        if (tick_ms <= 10) CHECK(sent >= guess::kGuessesPerSecond * span_ms / 1000 - 2);
        if (tick_ms >= 250) CHECK(sent <= size_t(guess::kBurst) * (span_ms / tick_ms));
    }
    // Time going backwards (or standing still) gives nothing new.
    guess::Limits limits;
    CHECK(limits.allowance(1'000'000'000) == 0);
    CHECK(limits.allowance(1'020'000'000) == 16);
    limits.spend(16);
    CHECK(limits.allowance(1'000'000'000) == 0);
    CHECK(limits.allowance(1'020'000'000) == 0);
}

TEST_CASE("a spray guesses at most 2048 distinct ports, all of 1024-65535", "[nat]") {
    std::vector<uint32_t> draws(guess::kMaxGuesses * 2);
    for (size_t i = 0; i < draws.size(); ++i) draws[i] = uint32_t(i * 2654435761u);
    auto ports = guess::guess_ports(draws);
    CHECK(ports.size() == guess::kMaxGuesses);
    std::set<uint16_t> distinct(ports.begin(), ports.end());
    CHECK(distinct.size() == ports.size());
    CHECK(*distinct.begin() >= guess::kFirstPort);
    // Worst draws (all zero, all max) still give distinct ports.
    for (uint32_t v : {0u, 0xffffffffu}) {
        auto p = guess::guess_ports(std::vector<uint32_t>(guess::kMaxGuesses, v));
        CHECK(std::set<uint16_t>(p.begin(), p.end()).size() == guess::kMaxGuesses);
        CHECK(*std::min_element(p.begin(), p.end()) >= guess::kFirstPort);
    }
    CHECK(guess::guess_ports(std::vector<uint32_t>(10, 7)).size() == 10);
}

TEST_CASE("at most 2 fans and 2 sprays at once, each session once, IPv4 only", "[nat]") {
    using Kind = guess::Limits::Kind;
    guess::Limits limits;
    auto peer = net::Address::parse("198.51.100.7", 4000);
    CHECK(limits.admit(Kind::fan, "s1", peer, 0));
    CHECK(limits.admit(Kind::fan, "s2", peer, 1));
    CHECK_FALSE(limits.admit(Kind::fan, "s3", peer, guess::kMaxFans));
    CHECK(limits.admit(Kind::spray, "s4", peer, 1));
    CHECK_FALSE(limits.admit(Kind::spray, "s5", peer, guess::kMaxSprays));
    // A session admitted once never is again, as fan or spray, even with room.
    CHECK_FALSE(limits.admit(Kind::fan, "s1", peer, 0));
    CHECK_FALSE(limits.admit(Kind::spray, "s1", peer, 0));
    // A refused session was not remembered: it may start once there is room.
    CHECK(limits.admit(Kind::fan, "s3", peer, 0));
    CHECK(limits.admit(Kind::spray, "s5", net::Address::parse("::ffff:198.51.100.7", 4000), 0));
    // IPv6 (no NAT to guess) and what no peer may make us probe.
    for (const char *bad : {"2001:db8::1", "::1", "127.0.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "169.254.1.1"}) {
        CHECK_FALSE(guess::guessable(net::Address::parse(bad, 4000)));
        CHECK_FALSE(limits.admit(Kind::spray, std::string("x") + bad, net::Address::parse(bad, 4000), 0));
    }
    // The session memory is bounded: the oldest are forgotten first.
    for (size_t i = 0; i < guess::kSessionMemory; ++i)
        CHECK(limits.admit(Kind::spray, "fill" + std::to_string(i), peer, 0));
    CHECK(limits.admit(Kind::spray, "s1", peer, 0));
    CHECK_FALSE(limits.admit(Kind::spray, "fill" + std::to_string(guess::kSessionMemory - 1), peer, 0));
}

namespace {

// The addresses a FakeRelay was asked to permit, written by its thread, read by the test's.
class PermissionLog {
public:
    void add(const std::string &ip) {
        std::lock_guard lock(mutex_);
        ips_.insert(ip);
    }
    bool has(const std::string &ip) const {
        std::lock_guard lock(mutex_);
        return ips_.count(ip) > 0;
    }
    bool wait_for(const std::string &ip) const {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!has(ip) && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        return has(ip);
    }

private:
    mutable std::mutex mutex_;
    std::set<std::string> ips_;
};

// The host's paths to one viewer whose QUIC path comes from 127.0.0.1:viewer_port, on the
// TestTurn's socket, agent and relay. Call on the loop thread.
std::unique_ptr<nat::PeerPaths> test_paths(TestTurn &t, uint16_t viewer_port, const std::vector<uint8_t> &key,
                                           const std::string &session) {
    nat::PeerPaths::Options o;
    o.virtual_remote = net::Address::parse("127.0.0.1", viewer_port);
    o.virtual_local = t.sock->local_address();
    o.key = key;
    o.session = session;
    return std::make_unique<nat::PeerPaths>(t.loop, *t.sock, *t.agent, t.turn.get(), o,
                                            [](nat::PathKind, const net::Address &) {});
}

} // namespace

TEST_CASE("a TURN permission goes only to a relayed address the viewer proved is its own", "[nat][turn]") {
    // A relay of our own on loopback (127.0.0.1) that allocates 127.0.0.1:50000 and records the
    // peer of every CreatePermission. A ticket holder's /paths offer names 127.0.0.2:40000 (a
    // third party) as its relayed address: the host used to grant it a permission at once.
    PermissionLog permitted;  // peer IPs of CreatePermission requests
    const auto key = stun::long_term_key("user", "realm", "pass");
    FakeRelay relay([&](const stun::Message &m, const net::Address &client) -> std::optional<std::vector<uint8_t>> {
        stun::Builder b(m.method, stun::Class::success, m.tid);
        if (m.method == stun::Method::allocate) {
            b.add_xor_address(stun::attr::xor_relayed_address, net::Address::parse("127.0.0.1", 50000))
                .add_xor_address(stun::attr::xor_mapped_address, client)
                .add_u32(stun::attr::lifetime, 600);
        } else if (m.method == stun::Method::create_permission) {
            if (auto peer = m.xor_address(stun::attr::xor_peer_address)) permitted.add(peer->unmapped().ip());
        } else if (m.method != stun::Method::refresh) {
            return std::nullopt;
        }
        return b.finish(key);
    });

    net::Loop loop("turn-perm-test");
    TestTurn t(loop, relay.address());
    REQUIRE(t.wait_allocated() == PP_OK);
    std::unique_ptr<nat::PeerPaths> stranger, sibling;

    const auto probe_key = nat::probe_key(std::vector<uint8_t>(16, 7));
    const std::string session = "0123456789abcdef0123";
    auto make_paths = [&](uint16_t viewer_port) { return test_paths(t, viewer_port, probe_key, session); };
    const auto third_party = net::Address::parse("127.0.0.2", 40000);
    loop.call([&] {
        stranger = make_paths(9);
        stranger->set_peer_relayed(third_party);
        CHECK_FALSE(stranger->relay_permitted());
        CHECK(stranger->counters().relay_unverified == 1);
        // A viewer's own allocation on our relay: evidence enough (same relay, the ticket's
        // credentials), permitted at once.
        sibling = make_paths(10);
        sibling->set_peer_relayed(net::Address::parse("127.0.0.1", 50001));
        CHECK(sibling->relay_permitted());
    });
    // Requests leave in order on one socket: once the sibling's permission arrived, the stranger's
    // would have too.
    REQUIRE(permitted.wait_for("127.0.0.1"));
    CHECK_FALSE(permitted.has("127.0.0.2"));

    // A probe from the third party without the probe key proves nothing...
    auto probe_from = [&](const std::vector<uint8_t> &with_key) {
        auto wire = stun::Builder(stun::Method::binding, stun::Class::request, stun::new_transaction_id())
                        .add(stun::attr::username, session)
                        .finish(with_key);
        auto m = stun::parse(wire);
        REQUIRE(m);
        return loop.call([&] {
            net::Address local = t.sock->local_address();
            net::Datagram d{std::span<const uint8_t>(wire), third_party, local, 0};
            stranger->on_stun(*m, d);
            return stranger->relay_permitted();
        });
    };
    CHECK_FALSE(probe_from(nat::probe_key(std::vector<uint8_t>(16, 8))));
    // ... one with it (the viewer probing from its relayed address) does: now it is permitted.
    CHECK(probe_from(probe_key));
    CHECK(permitted.wait_for("127.0.0.2"));

    loop.call([&] {  // before the TURN client they use
        stranger.reset();
        sibling.reset();
    });
}

namespace {

// A TURN client on its own loop and socket, allocating on `relay`.
struct TurnRig {
    net::Loop loop{"turn-rig"};
    std::unique_ptr<net::UdpSocket> sock;
    std::unique_ptr<Agent> agent;
    std::unique_ptr<TurnClient> turn;

    explicit TurnRig(const test::LoopbackRelay &relay) {
        loop.call([&] {
            net::UdpOptions opt;
            opt.bind_ip = "127.0.0.1";
            sock = std::make_unique<net::UdpSocket>(loop, opt);
            agent = std::make_unique<Agent>(loop, *sock);
            TurnConfig config;
            config.server = relay.address();
            config.username = test::LoopbackRelay::kUser;
            config.password = test::LoopbackRelay::kPassword;
            config.label = "turn:test";
            turn = std::make_unique<TurnClient>(*agent, *sock, loop, config);
        });
    }
    ~TurnRig() {
        loop.call([&] {
            turn.reset();
            agent.reset();
            sock.reset();
        });
    }
    std::pair<pp_result, std::string> allocate() {
        auto done = std::make_shared<std::promise<std::pair<pp_result, std::string>>>();
        auto f = done->get_future();
        loop.call([&] { turn->allocate([done](pp_result rc, const std::string &d) { done->set_value({rc, d}); }); });
        if (f.wait_for(std::chrono::seconds(20)) != std::future_status::ready) return {PP_ERR_INTERNAL, "no outcome in 20 s"};
        return f.get();
    }
    TurnClient::Counters counters() {
        return loop.call([&] { return turn->counters(); });
    }
};

template <typename Pred> bool eventually(Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

std::vector<uint8_t> stale_nonce(const stun::Message &m, const std::string &realm, const std::string &nonce) {
    return stun::Builder(m.method, stun::Class::error, m.tid)
        .add(stun::attr::error_code, std::vector<uint8_t>{0, 0, 4, 38})
        .add(stun::attr::realm, realm)
        .add(stun::attr::nonce, nonce)
        .finish();
}

} // namespace

TEST_CASE("an unsigned TURN 438 cannot change the realm, and its nonce lasts one request (RFC 8489 9.2.5)", "[nat][turn]") {
    // The relay signs with realm "realm" and nonce "nonce". Anyone who sees a transaction id can
    // answer it first with an unsigned 438. The old client took its realm and nonce for good: every
    // later request was signed for the forger's realm, or carried its nonce.
    struct Seen {
        std::string peer, realm, nonce;
        bool signed_ok;
    };
    std::mutex mutex;
    std::vector<Seen> seen;  // every CreatePermission the relay got
    std::set<std::string> forged_once;
    const auto good_key = stun::long_term_key(test::LoopbackRelay::kUser, test::LoopbackRelay::kRealm,
                                              test::LoopbackRelay::kPassword);
    test::LoopbackRelay relay([&](const stun::Message &m, const net::Address &) -> std::optional<std::vector<uint8_t>> {
        if (m.method != stun::Method::create_permission) return std::nullopt;
        auto peer = m.xor_address(stun::attr::xor_peer_address);
        std::string ip = peer ? peer->unmapped().ip() : "";
        std::lock_guard lock(mutex);
        seen.push_back({ip, m.text(stun::attr::realm), m.text(stun::attr::nonce), m.integrity_ok(good_key)});
        if (ip == "127.0.0.3" && forged_once.insert(ip).second) return stale_nonce(m, "evil", "evil-nonce");
        if (ip == "127.0.0.4" && forged_once.insert(ip).second) return stale_nonce(m, "realm", "forged");
        if (m.text(stun::attr::nonce) != "nonce") return stale_nonce(m, "realm", "nonce");  // the relay's own
        return std::nullopt;  // signed success
    });
    auto seen_for = [&](const std::string &ip) {
        std::lock_guard lock(mutex);
        std::vector<Seen> out;
        for (const auto &s : seen)
            if (s.peer == ip) out.push_back(s);
        return out;
    };
    TurnRig rig(relay);
    REQUIRE(rig.allocate().first == PP_OK);

    // Another realm: refused, never re-signed for it; later requests keep the relay's realm.
    rig.loop.call([&] { rig.turn->permit(net::Address::parse("127.0.0.3", 1)); });
    REQUIRE(eventually([&] { return rig.counters().realm_refused == 1; }));
    rig.loop.call([&] { rig.turn->permit(net::Address::parse("127.0.0.5", 1)); });
    REQUIRE(eventually([&] { return !seen_for("127.0.0.5").empty(); }));
    CHECK(seen_for("127.0.0.3").size() == 1);
    CHECK(seen_for("127.0.0.5").front().realm == "realm");
    CHECK(seen_for("127.0.0.5").front().signed_ok);

    // The relay's realm with a forged nonce: tried for that request, once; not kept.
    rig.loop.call([&] { rig.turn->permit(net::Address::parse("127.0.0.4", 1)); });
    REQUIRE(eventually([&] { return seen_for("127.0.0.4").size() == 2; }));
    rig.loop.call([&] { rig.turn->permit(net::Address::parse("127.0.0.6", 1)); });
    REQUIRE(eventually([&] { return !seen_for("127.0.0.6").empty(); }));
    CHECK(seen_for("127.0.0.4").at(1).nonce == "forged");
    CHECK(seen_for("127.0.0.6").front().nonce == "nonce");
    CHECK(seen_for("127.0.0.6").size() == 1);  // no stale-nonce round trip: signed with the proven nonce
    CHECK(seen_for("127.0.0.4").size() == 2);  // re-signed at most once
    std::lock_guard lock(mutex);
    for (const auto &s : seen) CHECK(s.realm != "evil");
}

TEST_CASE("a second 401 for the re-signed Allocate is a credentials error; an unsigned 400 is no answer", "[nat][turn]") {
    SECTION("401 twice") {
        std::atomic<int> allocates{0};
        test::LoopbackRelay relay([&](const stun::Message &m, const net::Address &) -> std::optional<std::vector<uint8_t>> {
            if (m.method != stun::Method::allocate) return std::nullopt;
            ++allocates;
            return stun::Builder(m.method, stun::Class::error, m.tid)
                .add(stun::attr::error_code, std::vector<uint8_t>{0, 0, 4, 1})
                .add(stun::attr::realm, "realm")
                .add(stun::attr::nonce, "nonce")
                .finish();
        });
        TurnRig rig(relay);
        auto [rc, detail] = rig.allocate();
        CHECK(rc == PP_ERR_TICKET_REJECTED);
        CHECK(detail.find("rejected the credentials (401") != std::string::npos);
        CHECK(allocates == 2);  // the unsigned one and one re-signed, no more
    }
    SECTION("unsigned 400") {
        // Anyone who sees the transaction id could refuse our allocation with it.
        test::LoopbackRelay relay([&](const stun::Message &m, const net::Address &) -> std::optional<std::vector<uint8_t>> {
            if (m.method != stun::Method::allocate || !m.find(stun::attr::message_integrity)) return std::nullopt;
            return stun::Builder(m.method, stun::Class::error, m.tid)
                .add(stun::attr::error_code, std::vector<uint8_t>{0, 0, 4, 0})
                .finish();
        });
        TurnRig rig(relay);
        auto [rc, detail] = rig.allocate();
        INFO(detail);
        CHECK(rc == PP_ERR_PROTOCOL);
        CHECK(detail.find("without its MESSAGE-INTEGRITY") != std::string::npos);
        CHECK(rig.counters().unauthenticated == 1);
    }
}
