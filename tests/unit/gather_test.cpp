// gather/: the host's relay plan and the order of its ticket's candidates. Pure decisions; the
// relay addresses are numeric, so nothing resolves over the network.
#include <catch2/catch.hpp>

#include "common/error.hpp"
#include "gather/gather.hpp"

using namespace pp;
using namespace pp::gather;

namespace {

std::vector<std::string> texts(const std::vector<Candidate> &cs) {
    std::vector<std::string> out;
    for (const auto &c : cs) out.push_back(std::to_string(c.kind) + " " + c.ip + ":" + std::to_string(c.port));
    return out;
}

} // namespace

TEST_CASE("candidates: LAN, mapped, reflexive, loopback, relayed last") {
    Found f;
    f.local = {{"192.168.1.5", 4433, PP_CANDIDATE_LOCAL}, {"10.0.0.7", 4433, PP_CANDIDATE_LOCAL},
               {"127.0.0.1", 4433, PP_CANDIDATE_LOCAL}};
    f.reflexive = {net::Address::parse("203.0.113.9", 4433), net::Address::parse("192.168.1.5", 4433)};
    f.relayed = net::Address::parse("198.51.100.2", 50000);
    auto plain = order_candidates(f, 16);
    // The reflexive address equal to a local one is no NAT: dropped.
    CHECK(texts(plain) == std::vector<std::string>{"0 192.168.1.5:4433", "0 10.0.0.7:4433", "1 203.0.113.9:4433",
                                                   "0 127.0.0.1:4433", "3 198.51.100.2:50000"});
    // A mapping equal to the reflexive address replaces it, first among the public ones.
    f.mapped = Candidate{"203.0.113.9", 4433, PP_CANDIDATE_LOCAL};
    CHECK(texts(order_candidates(f, 16)) == std::vector<std::string>{"0 192.168.1.5:4433", "0 10.0.0.7:4433",
                                                                     "2 203.0.113.9:4433", "0 127.0.0.1:4433",
                                                                     "3 198.51.100.2:50000"});
    // At most `max`, the relayed address kept.
    auto few = order_candidates(f, 2);
    CHECK(texts(few) == std::vector<std::string>{"0 192.168.1.5:4433", "3 198.51.100.2:50000"});
    f.relay_only = true;
    CHECK(texts(order_candidates(f, 16)) == std::vector<std::string>{"3 198.51.100.2:50000"});
}

TEST_CASE("relay plan: credentials, contradictions, what the ticket carries") {
    RelaySettings s;
    CHECK_FALSE(plan_relay(s, 0, 1000).turn);
    s.relay = "turn:192.0.2.1:3478";
    s.secret = "0123456789abcdef0123";
    auto p = plan_relay(s, 0, 1000);
    REQUIRE(p.turn);
    REQUIRE(p.ticket);
    CHECK(p.turn->label == "turn:192.0.2.1:3478");
    CHECK(p.ticket->host == "192.0.2.1");
    // REST usernames carry their expiry: ours a week, the viewers' 12 h (or the ticket's end).
    CHECK(p.turn->username.rfind(std::to_string(1000 + 7 * 86400) + ":", 0) == 0);
    CHECK(p.ticket->username.rfind(std::to_string(1000 + 12 * 3600) + ":", 0) == 0);
    CHECK(plan_relay(s, 2000, 1000).ticket->username.rfind("2000:", 0) == 0);
    CHECK(p.warnings.empty());
    s.secret.clear();
    s.username = "u";
    s.password = "p";
    auto fixed = plan_relay(s, 0, 1000);
    CHECK(fixed.ticket->username == "u");
    REQUIRE(fixed.warnings.size() == 1);
    CHECK(fixed.warnings[0].second.find("static relay credentials") != std::string::npos);
    s.username.clear();
    CHECK_THROWS_AS(plan_relay(s, 0, 1000), Error);  // no credentials
    s.relay_only = s.no_relay = true;
    CHECK_THROWS_AS(plan_relay(s, 0, 1000), Error);
    s.no_relay = false;
    s.relay.clear();
    CHECK_THROWS_AS(plan_relay(s, 0, 1000), Error);  // --relay-only without a relay
    CHECK(loopback_only("127.0.0.1"));
    CHECK(loopback_only("::1"));
    CHECK_FALSE(loopback_only(""));
    CHECK_FALSE(loopback_only("10.0.0.1"));
}
