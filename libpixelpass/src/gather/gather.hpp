// gather/: what a host learns about where it can be reached, before its ticket goes out — the
// relay it allocates on (and the credentials its ticket hands viewers), the STUN servers it asks,
// and the order its candidates take in the ticket. Plain values and blocking resolution (DNS):
// call it off the loop. host/ runs the steps and owns the sockets; this only decides.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "nat/turn.hpp"
#include "net/address.hpp"
#include "pixelpass.h"
#include "ticket/ticket.hpp"

namespace pp::gather {

// A line for the host's log, with the result code its event carries.
using Warning = std::pair<pp_result, std::string>;

// The host's relay options, as the C options give them.
struct RelaySettings {
    std::string relay;  // "turn:HOST[:PORT]"; empty = none
    std::string username, password, secret;
    bool relay_only = false, no_relay = false;
};

struct RelayPlan {
    std::optional<nat::TurnConfig> turn;  // our own allocation's server and credentials
    std::optional<ticket::Relay> ticket;  // what the ticket tells viewers (their own credentials)
    std::vector<Warning> warnings;        // for the host's log
};

// Checks, resolves and mints credentials: with a secret (coturn use-auth-secret), ours last a
// week and the viewers' end with the ticket or after 12 h, whichever is first. Throws
// pp::Error: PP_ERR_INVALID_ARGUMENT for contradicting or incomplete settings, PP_ERR_UNREACHABLE
// when a --relay-only relay does not resolve (otherwise that is a warning and no relay).
RelayPlan plan_relay(const RelaySettings &settings, int64_t ticket_expiry, int64_t now);

// The STUN servers to ask: the configured ones, else the public defaults (not for a loopback-only
// host, which no server could answer). Names that do not resolve are skipped with a warning.
std::vector<net::Address> stun_servers(const std::vector<std::string> &configured, bool loopback_only,
                                       std::vector<Warning> &warnings);

// Whether `bind_address` (numeric, may be empty) is a loopback address.
bool loopback_only(const std::string &bind_address);

struct Candidate {
    std::string ip;  // numeric
    uint16_t port = 0;
    pp_candidate_kind kind = PP_CANDIDATE_LOCAL;
    bool operator==(const Candidate &) const = default;
};

struct Found {
    std::vector<Candidate> local;            // the socket's own addresses (LAN first, loopback last)
    std::vector<net::Address> reflexive;     // what STUN servers saw
    std::optional<Candidate> mapped;         // the gateway's port mapping
    std::optional<net::Address> relayed;     // the relay allocation
    bool relay_only = false;                 // the ticket offers the relayed address alone
};

// The ticket's candidates in the order a viewer should try them: the mapped address first among
// the public ones (open to every viewer), LAN addresses, reflexive ones (those equal to a local
// one are no NAT and dropped), loopback, the relayed address last; at most `max`.
std::vector<Candidate> order_candidates(const Found &found, size_t max);

} // namespace pp::gather
