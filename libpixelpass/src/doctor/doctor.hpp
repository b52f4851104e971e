// doctor: checks everything sharing and viewing depend on — config file, GStreamer and the H.264
// encoders (and why hardware encoding is or is not available), screen capture (portal, X11),
// PipeWire, players and VLC plugins, the clipboard tool, and the STUN servers and relay the user
// configured — and says how to fix each problem. Network probes go only to configured servers.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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

} // namespace pp::doctor
