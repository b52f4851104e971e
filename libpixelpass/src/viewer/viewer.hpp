// viewer: dials the host named by a ticket, verifies its pinned key, and serves the stream to
// local players on 127.0.0.1. Owned by the C facade's pp_viewer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "host/host.hpp"  // Event, EventSink
#include "pixelpass.h"
#include "ticket/ticket.hpp"

namespace pp {

struct ViewerConfig {
    std::string ticket_text;
    uint16_t listen_port = 0;
    unsigned connect_timeout_ms = 10000;
    bool relay_only = false, no_relay = false, no_stun = false;
    std::vector<std::string> stun_servers;
};

class Viewer {
public:
    // Decodes the ticket (ticket errors surface here) and connects; blocks until connected.
    Viewer(ViewerConfig config, EventSink events);
    ~Viewer();

    std::string url() const;
    std::string stats_json() const;
    // Why the connection ended, or PP_ERR_STATE if still up after timeout_ms (negative = forever).
    pp_result wait(int timeout_ms);

private:
    ViewerConfig config_;
    EventSink events_;
    ticket::Ticket ticket_;
};

} // namespace pp
