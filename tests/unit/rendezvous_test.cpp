// rendezvous/: the sealed offer (keys, AEAD, freshness, bounds) and the punch's candidate filter.
// The DHT itself is exercised against real dhtnode processes in tests/netsim/test_rendezvous.py.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "nat/guess.hpp"
#include "rendezvous/advice.hpp"
#include "rendezvous/punch.hpp"
#include "rendezvous/seal.hpp"

using namespace pp;
using namespace pp::rendezvous;

namespace {

std::vector<uint8_t> secret_of(uint8_t fill) { return std::vector<uint8_t>(32, fill); }

Offer sample(int64_t now) {
    Offer o;
    o.session = "0123456789abcdef01234567";
    o.nat = "cone";
    o.issued = now;
    o.candidates = {net::Address::parse("203.0.113.7", 40000), net::Address::parse("10.2.0.2", 40000),
                    net::Address::parse("2001:db8::1", 40000)};
    return o;
}

bool contains(const std::vector<uint8_t> &hay, const std::string &needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

} // namespace

TEST_CASE("rendezvous keys are derived, distinct per ticket and never the secret") {
    auto a = secret_of(1), b = secret_of(2);
    Key ka = rendezvous_key(a), kb = rendezvous_key(b);
    CHECK(ka != kb);
    CHECK(ka == rendezvous_key(a));
    CHECK(!std::equal(ka.begin(), ka.end(), a.begin()));
}

TEST_CASE("a sealed offer opens with the same ticket only, and shows nothing in the clear") {
    int64_t now = 1'800'000'000;
    auto secret = secret_of(7);
    Offer o = sample(now);
    auto sealed = seal(o, secret);
    CHECK(sealed.size() == kSealedSize);
    for (const char *plain : {"203.0.113.7", "10.2.0.2", "2001:db8", "0123456789abcdef", "cone"})
        CHECK_FALSE(contains(sealed, plain));
    auto opened = open(sealed, secret, now);
    REQUIRE(opened);
    CHECK(opened->session == o.session);
    CHECK(opened->nat == "cone");
    CHECK(opened->candidates == o.candidates);
    CHECK_FALSE(open(sealed, secret_of(8), now));  // another ticket
    // Every offer seals to the same size, whatever it holds; two seals of one offer differ.
    Offer small = o;
    small.candidates.resize(1);
    CHECK(seal(small, secret).size() == sealed.size());
    CHECK(seal(o, secret) != sealed);
}

TEST_CASE("forged, truncated, tampered and stale values are refused") {
    int64_t now = 1'800'000'000;
    auto secret = secret_of(7);
    auto sealed = seal(sample(now), secret);
    auto tampered = sealed;
    tampered[40] ^= 1;
    CHECK_FALSE(open(tampered, secret, now));
    CHECK_FALSE(open(std::vector<uint8_t>(sealed.begin(), sealed.end() - 1), secret, now));
    CHECK_FALSE(open(std::vector<uint8_t>(kSealedSize, 0x41), secret, now));
    CHECK_FALSE(open({}, secret, now));
    CHECK_FALSE(open(sealed, secret, now + kOfferLifetimeS + 1));
    CHECK_FALSE(open(sealed, secret, now - kOfferLifetimeS - 1));
    CHECK(open(sealed, secret, now + kOfferLifetimeS));
}

TEST_CASE("offers are bounded") {
    Offer o = sample(1);
    o.candidates.assign(kMaxCandidates + 1, net::Address::parse("203.0.113.7", 1));
    CHECK_THROWS_AS(seal(o, secret_of(1)), Error);
    o.candidates.assign(kMaxCandidates, net::Address::parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535));
    CHECK(seal(o, secret_of(1)).size() == kSealedSize);  // the largest offer still fits
    CHECK_FALSE(parse_offer(R"({"v":1,"t":1,"s":"short","n":"cone","c":[]})"));
    CHECK_FALSE(parse_offer(R"({"v":1,"t":1,"s":"0123456789abcdeX","n":"cone","c":[]})"));
    CHECK_FALSE(parse_offer(R"({"v":1,"t":1,"s":"0123456789abcdef","n":"weird","c":[]})"));
    CHECK_FALSE(parse_offer(R"({"v":2,"t":1,"s":"0123456789abcdef","n":"cone","c":[]})"));
    CHECK_FALSE(parse_offer(R"({"v":1,"t":1,"s":"0123456789abcdef","n":"cone","c":[["nope",1]]})"));
    CHECK(parse_offer(R"({"v":1,"t":1,"s":"0123456789abcdef","n":"cone","c":[["192.0.2.1",9]]}   )"));
}

TEST_CASE("a remote peer cannot make the host probe loopback, multicast or unspecified addresses") {
    for (const char *ip : {"127.0.0.1", "::1", "0.0.0.0", "::", "224.0.0.251", "239.1.2.3", "255.255.255.255",
                           "ff02::1", "fe80::1", "169.254.1.1", "0.1.2.3"})
        CHECK(unfit_candidate(net::Address::parse(ip, 4433)));
    CHECK(unfit_candidate(net::Address::parse("192.0.2.1", 0)));
    for (const char *ip : {"192.0.2.1", "10.2.0.2", "2001:db8::1", "20.0.0.20"})
        CHECK_FALSE(unfit_candidate(net::Address::parse(ip, 4433)));
}

TEST_CASE("NAT kinds: ours from STUN, the host's from its ticket, and the remedy that fits") {
    using A = net::Address;
    CHECK(classify_nat({}, {A::parse("10.0.0.2", 0)}) == "unknown");
    CHECK(classify_nat({A::parse("198.51.100.2", 5000)}, {A::parse("198.51.100.2", 0)}) == "none");
    CHECK(classify_nat({A::parse("203.0.113.1", 5000), A::parse("203.0.113.1", 5000)}, {A::parse("10.0.0.2", 0)}) == "cone");
    CHECK(classify_nat({A::parse("203.0.113.1", 5000), A::parse("203.0.113.1", 6001)}, {A::parse("10.0.0.2", 0)}) ==
          "symmetric");

    ticket::Ticket t;
    CHECK(ticket_nat_kind(t) == "unknown");
    ticket::add_candidate(t, PP_CANDIDATE_LOCAL, "10.1.0.2", 4433);
    ticket::add_candidate(t, PP_CANDIDATE_REFLEXIVE, "203.0.113.9", 4433);
    CHECK(ticket_nat_kind(t) == "cone");
    ticket::Ticket moved;
    ticket::add_candidate(moved, PP_CANDIDATE_LOCAL, "10.1.0.2", 4433);
    ticket::add_candidate(moved, PP_CANDIDATE_REFLEXIVE, "203.0.113.9", 61000);
    CHECK(ticket_nat_kind(moved) == "symmetric");
    ticket::add_candidate(moved, PP_CANDIDATE_MAPPED, "203.0.113.9", 4433);
    CHECK(ticket_nat_kind(moved) == "mapped");

    auto both = unreachable_hint("symmetric", "symmetric", true);
    CHECK(both.find("only a relay") != std::string::npos);
    CHECK(both.find("--relay turn:") != std::string::npos);
    auto guess = unreachable_hint("cone", "symmetric", true);
    CHECK(guess.find("port guessing") != std::string::npos);
    CHECK(guess.find("symmetric (a new port per peer)") != std::string::npos);
    CHECK(guess.find("try again") != std::string::npos);
    CHECK(unreachable_hint("symmetric", "cone", false).find("--no-dht") != std::string::npos);
    CHECK(unreachable_hint("cone", "cone", false).find("--no-dht") != std::string::npos);
    // The host judges itself as the viewer judges it from the ticket.
    CHECK(host_nat_kind(4433, {net::Address::parse("203.0.113.9", 4433)}, false) == "cone");
    CHECK(host_nat_kind(4433, {net::Address::parse("203.0.113.9", 50001)}, false) == "symmetric");
    CHECK(host_nat_kind(4433, {}, false) == "unknown");
    CHECK(host_nat_kind(4433, {}, true) == "mapped");
    // Who guesses: the symmetric side fans, the cone side sprays; nothing else guesses.
    CHECK(nat::guess::role("symmetric", "cone") == "fan");
    CHECK(nat::guess::role("cone", "symmetric") == "spray");
    CHECK(nat::guess::role("symmetric", "symmetric").empty());
    CHECK(nat::guess::role("cone", "cone").empty());
    CHECK(nat::guess::role("cone", "mapped").empty());
    CHECK(nat::guess::role("unknown", "symmetric").empty());
    CHECK(unreachable_hint("unknown", "symmetric", true).find("A relay is needed") != std::string::npos);
}
