#include "rendezvous/advice.hpp"

#include <algorithm>

namespace pp::rendezvous {

namespace {

std::string nat_text(const std::string &kind) {
    if (kind == "symmetric") return "symmetric (a new port per peer)";
    if (kind == "cone") return "a cone NAT (port-restricted or milder)";
    if (kind == "none") return "no NAT";
    if (kind == "mapped") return "port-mapped (UPnP / NAT-PMP)";
    return "unknown (no STUN answer)";
}

} // namespace

std::string classify_nat(const std::vector<net::Address> &reflexive, const std::vector<net::Address> &local) {
    if (reflexive.empty()) return "unknown";
    for (const auto &a : local)
        if (a.unmapped().ip() == reflexive.front().unmapped().ip()) return "none";
    for (const auto &a : reflexive)
        if (a.port() != reflexive.front().port()) return "symmetric";
    return "cone";
}

std::string ticket_nat_kind(const ticket::Ticket &ticket) {
    std::vector<uint16_t> local_ports;
    bool reflexive = false, moved = false;
    for (const auto &c : ticket.candidates)
        if (c.kind == PP_CANDIDATE_LOCAL) local_ports.push_back(c.port);
    for (const auto &c : ticket.candidates) {
        if (c.kind == PP_CANDIDATE_MAPPED) return "mapped";
        if (c.kind != PP_CANDIDATE_REFLEXIVE) continue;
        reflexive = true;
        moved |= std::find(local_ports.begin(), local_ports.end(), c.port) == local_ports.end();
    }
    if (!reflexive) return "unknown";
    return moved ? "symmetric" : "cone";
}

std::string host_nat_kind(uint16_t port, const std::vector<net::Address> &reflexive, bool mapped) {
    if (mapped) return "mapped";
    if (reflexive.empty()) return "unknown";
    for (const auto &r : reflexive)
        if (r.port() != port) return "symmetric";
    return "cone";
}

std::string unreachable_hint(const std::string &mine, const std::string &theirs, bool rendezvous_on) {
    static const std::string relay = "start the host with --relay turn:HOST[:PORT] --relay-secret SECRET (see "
                                     "docs/relay.md; `pixelpass relay config` prints a matching coturn setup)";
    std::string text = ". This viewer's network: " + nat_text(mine) + "; the host's: " + nat_text(theirs) + ". ";
    if (mine == "symmetric" && theirs == "symmetric") return text + "Both are symmetric: only a relay can join them: " + relay;
    if ((mine == "symmetric" && theirs == "cone") || (mine == "cone" && theirs == "symmetric"))
        return text + (rendezvous_on
                           ? "A symmetric NAT facing a filtering one is joined by port guessing over the DHT rendezvous, "
                             "which found no open port this time (it succeeds in most tries): try again, or use a relay ("
                           : "A symmetric NAT facing a filtering one needs port guessing, which runs over the DHT "
                             "rendezvous, off here: drop --no-dht (and dht = \"off\" in the config) on both sides, or "
                             "use a relay (") +
                      relay + ") or a port mapping on the host's router (UPnP / NAT-PMP)";
    if (!rendezvous_on && mine != "unknown" && theirs != "unknown")
        return text + "These can be punched, but only through the DHT rendezvous, which is off here: drop --no-dht "
                      "(and dht = \"off\" in the config) on both sides, or " + relay;
    return text + "A relay is needed when both sides are behind NATs that cannot be punched (symmetric), or when the "
                  "DHT rendezvous is unreachable: " + relay;
}

} // namespace pp::rendezvous
