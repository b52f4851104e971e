#include "gather/gather.hpp"

#include <algorithm>

#include "common/error.hpp"
#include "nat/agent.hpp"

namespace pp::gather {

namespace {

// How long a viewer's TURN credentials in a ticket last at most: a leaked ticket's relay access ends.
constexpr int64_t kViewerRelayCredentialS = 12 * 3600;
// The host's own allocation lives as long as the session.
constexpr int64_t kOwnRelayCredentialS = 7 * 86400;

bool is_loopback(const Candidate &c) { return net::Address::parse(c.ip, c.port).is_loopback(); }

} // namespace

bool loopback_only(const std::string &bind_address) {
    if (bind_address.empty()) return false;
    try {
        return net::Address::parse(bind_address, 0).is_loopback();
    } catch (const Error &) {
        return false;
    }
}

RelayPlan plan_relay(const RelaySettings &s, int64_t ticket_expiry, int64_t now) {
    if (s.relay_only && s.no_relay)
        throw Error(PP_ERR_INVALID_ARGUMENT, "--relay-only and --no-relay contradict each other: pick one");
    if (s.relay_only && s.relay.empty())
        throw Error(PP_ERR_INVALID_ARGUMENT,
                    "--relay-only needs a relay: add --relay turn:HOST[:PORT] with --relay-secret (docs/relay.md)");
    RelayPlan plan;
    if (s.relay.empty() || s.no_relay) return plan;
    auto [host, port] = nat::parse_relay(s.relay);
    auto found = nat::resolve(host + ":" + std::to_string(port), port);
    if (found.empty()) {
        if (s.relay_only) throw Error(PP_ERR_UNREACHABLE, "relay " + s.relay + " does not resolve");
        plan.warnings.push_back({PP_ERR_UNREACHABLE, "relay " + s.relay + " does not resolve: sharing without a relay"});
        return plan;
    }
    nat::TurnConfig tc;
    tc.server = found.front();
    tc.label = "turn:" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    ticket::Relay tr{host, port, "", ""};
    if (!s.secret.empty()) {
        auto own = nat::rest_credentials(s.secret, now + kOwnRelayCredentialS);
        tc.username = own.username;
        tc.password = own.password;
        int64_t limit = now + kViewerRelayCredentialS;
        auto theirs = nat::rest_credentials(s.secret, ticket_expiry ? std::min(ticket_expiry, limit) : limit);
        tr.username = theirs.username;
        tr.credential = theirs.password;
    } else if (!s.username.empty()) {
        tc.username = tr.username = s.username;
        tc.password = tr.credential = s.password;
        plan.warnings.push_back({PP_OK, "static relay credentials: every ticket carries this username and password, so "
                                        "anyone holding a ticket can use the relay; prefer --relay-secret (short-lived "
                                        "credentials)"});
    } else {
        throw Error(PP_ERR_INVALID_ARGUMENT, "relay " + s.relay +
                                                 " needs credentials: --relay-secret (coturn use-auth-secret) "
                                                 "or --relay-username/--relay-password");
    }
    plan.turn = tc;
    plan.ticket = tr;
    return plan;
}

std::vector<net::Address> stun_servers(const std::vector<std::string> &configured, bool loopback,
                                       std::vector<Warning> &warnings) {
    auto names = configured;
    if (names.empty() && !loopback) names = nat::default_stun_servers();
    std::vector<net::Address> out;
    for (const auto &name : names) {
        auto found = nat::resolve(name, 3478);
        if (found.empty()) warnings.push_back({PP_ERR_UNREACHABLE, "STUN server '" + name + "' does not resolve; skipped"});
        out.insert(out.end(), found.begin(), found.end());
    }
    return out;
}

std::vector<Candidate> order_candidates(const Found &found, size_t max) {
    std::vector<Candidate> out = found.local;
    // Reflexive addresses go after the LAN ones and before loopback: a remote viewer tries them
    // early, a local one has already connected. One equal to a local address means no NAT.
    auto at = std::find_if(out.begin(), out.end(), is_loopback) - out.begin();
    for (const auto &r : found.reflexive) {
        Candidate c{r.ip(), r.port(), PP_CANDIDATE_REFLEXIVE};
        bool known = std::any_of(out.begin(), out.end(), [&](const Candidate &o) { return o.ip == c.ip && o.port == c.port; });
        if (!known) out.insert(out.begin() + at++, c);
    }
    // The mapped address goes first among the public ones: it is open to every viewer, whatever
    // its NAT. When STUN found the same address, that candidate becomes the mapped one.
    if (found.mapped) {
        Candidate m = *found.mapped;
        m.kind = PP_CANDIDATE_MAPPED;
        std::erase_if(out, [&](const Candidate &o) { return o.ip == m.ip && o.port == m.port; });
        auto first_public = std::find_if(out.begin(), out.end(), [](const Candidate &o) {
            return o.kind == PP_CANDIDATE_REFLEXIVE || is_loopback(o);
        });
        out.insert(first_public, m);
    }
    if (found.relayed && found.relay_only) out.clear();
    if (out.size() > max - (found.relayed ? 1 : 0)) out.resize(max - (found.relayed ? 1 : 0));
    if (found.relayed) out.push_back({found.relayed->ip(), found.relayed->port(), PP_CANDIDATE_RELAYED});
    return out;
}

} // namespace pp::gather
