// viewer: dials the host named by a ticket (every candidate, staggered — happy eyeballs), insists
// on the pinned host key during the handshake, proves it holds the ticket with GET /info, and
// then serves the stream to local players on 127.0.0.1, each player's GET becoming one HTTP/3
// request on the one QUIC connection. Owned by the C facade's pp_viewer. Thread-safe: every
// public function may be called from any thread, including from inside an event callback.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "host/host.hpp"  // Event, EventSink
#include "pixelpass.h"

namespace pp {

struct ViewerConfig {
    std::string ticket_text;
    uint16_t listen_port = 0;
    unsigned connect_timeout_ms = 10000;
    bool relay_only = false, no_relay = false, no_stun = false;
    std::vector<std::string> stun_servers;
    // Rendezvous over OpenDHT: bootstrap nodes ("HOST:PORT"; empty = the public default) or none.
    std::vector<std::string> dht_bootstrap;
    bool no_dht = false;
    // Internal (not in the C options): QUIC idle timeout / keep-alive (0 = 30 s / 15 s) and the
    // happy-eyeballs stagger between candidates.
    unsigned idle_timeout_ms = 0, keep_alive_ms = 0;
    unsigned stagger_ms = 75;
};

class Viewer {
public:
    // Decodes the ticket (ticket errors surface here), connects and checks the ticket with the
    // host; blocks until connected. Throws pp::Error with PP_ERR_UNREACHABLE,
    // PP_ERR_HOST_KEY_MISMATCH, PP_ERR_TICKET_REJECTED, PP_ERR_HOST_FULL, ticket errors.
    Viewer(ViewerConfig config, EventSink events);
    ~Viewer();
    Viewer(const Viewer &) = delete;
    Viewer &operator=(const Viewer &) = delete;

    // http://127.0.0.1:<port>/<random>.ts
    std::string url() const;
    std::string stats_json() const;
    // Why the connection ended, or PP_ERR_STATE if still up after timeout_ms (negative = forever).
    pp_result wait(int timeout_ms);

    struct Core;

private:
    std::shared_ptr<Core> core_;
};

} // namespace pp
