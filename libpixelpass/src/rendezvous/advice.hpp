// rendezvous/advice: what each side's NAT is, as far as it can be told, and what to do when no
// path joins them. Pure functions: no I/O, any thread.
#pragma once

#include <string>
#include <vector>

#include "net/address.hpp"
#include "ticket/ticket.hpp"

namespace pp::rendezvous {

// Our NAT from what STUN servers saw of one socket (`reflexive`) and our own addresses: "none"
// (the address seen is ours), "symmetric" (servers saw different ports), "cone" (one mapping for
// all), "unknown" (no answer).
std::string classify_nat(const std::vector<net::Address> &reflexive, const std::vector<net::Address> &local);

// The host's NAT as its ticket shows it: "mapped" (a port mapping), "cone" (a reflexive address on
// the port it listens on: a cone NAT keeps it), "symmetric" (on another port), "unknown" (none).
std::string ticket_nat_kind(const ticket::Ticket &ticket);
// The same judgement from the host's own parts (so host and viewer agree on it): the port it
// listens on, the reflexive addresses STUN found (not those equal to a local one), a mapping.
std::string host_nat_kind(uint16_t port, const std::vector<net::Address> &reflexive, bool mapped);

// The end of the viewer's "host unreachable" error when the ticket has no relay: both NAT kinds
// and the one remedy that fits (a relay, the DHT rendezvous, or another try of port guessing).
std::string unreachable_hint(const std::string &viewer_nat, const std::string &host_nat, bool rendezvous_on);

} // namespace pp::rendezvous
