// net/interfaces: the machine's own addresses, as local candidates for a ticket.
#pragma once

#include <vector>

#include "net/address.hpp"

namespace pp::net {

// Addresses of interfaces that are up, usable by a socket of `family` (AF_INET6 on a dual-stack
// socket means both families): global and private addresses first, then loopback (so viewers on
// the same machine still connect, as a last resort). Link-local addresses are left out: they need
// an interface name that means nothing on the viewer's machine. Ports are 0.
std::vector<Address> local_addresses(int family, bool dual_stack);

} // namespace pp::net
