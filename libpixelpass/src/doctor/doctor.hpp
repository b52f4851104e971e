// doctor: checks everything sharing and viewing depend on — config file, GStreamer and the H.264
// encoders (and why hardware encoding is or is not available), screen capture (portal, X11),
// PipeWire, players and VLC plugins, the clipboard tool, and the STUN servers and relay the user
// configured — and says how to fix each problem. Network probes go only to configured servers.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pixelpass.h"

namespace pp::doctor {

struct Options {
    std::string config_path;  // empty = config::default_path()
    unsigned probe_timeout_ms = 1500;
};

// {"checks": [{"name", "status": "ok"|"warning"|"error"|"skipped", "detail", "fix"}...],
//  "can_share": bool, "can_view": bool}
nlohmann::json run(const Options &options = {});

// One STUN Binding request over UDP to "HOST[:PORT]" (default port 3478). Returns the mapped
// address "IP:PORT" the server saw, or throws Error(PP_ERR_UNREACHABLE / PP_ERR_IO) saying why.
std::string stun_mapped_address(const std::string &server, unsigned timeout_ms);

// The NAT's mapping behaviour, from one UDP socket asking every server in `servers` (STUN, or a
// TURN relay, which answers Binding too) for the address it sees:
//   "none"                  the address is ours, port unchanged: no NAT in the way
//   "endpoint-independent"  every server saw the same address ("cone": direct paths work)
//   "endpoint-dependent"    servers saw different ports ("symmetric": many viewers need a relay)
//   "unknown"               only one server answered: the behaviour needs two
//   "unreachable"           no server answered
// Filtering behaviour (full cone vs port-restricted) would need RFC 5780 servers and is not told.
struct NatClassification {
    std::string kind;
    uint16_t local_port = 0;
    size_t asked = 0;                                        // distinct server addresses asked
    std::vector<std::pair<std::string, std::string>> seen;  // server, mapped address
};
NatClassification classify_nat(const std::vector<std::string> &servers, unsigned timeout_ms);

// A TURN Allocate on `relay` ("turn:HOST[:PORT]") with these credentials, released at once.
// code: PP_OK (relayed = the allocated address), PP_ERR_TICKET_REJECTED (credentials refused),
// PP_ERR_UNREACHABLE, PP_ERR_PROTOCOL; detail says which.
struct TurnCheck {
    pp_result code = PP_OK;
    std::string detail, relayed;
};
TurnCheck check_turn(const std::string &relay, const std::string &username, const std::string &password,
                     unsigned timeout_ms);

} // namespace pp::doctor
