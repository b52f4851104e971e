// host: one sharing session — its identity and secret, the network service that viewers reach,
// and (with media) the capture pipeline. Owned by the C facade's pp_host.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "identity/identity.hpp"
#include "pixelpass.h"

namespace pp {

// The C options, copied into owned C++ values (the caller's strings may die after pp_host_new).
struct HostConfig {
    std::string source = "auto";
    std::string bind_address;  // empty = all interfaces
    uint16_t port = 0;
    unsigned max_viewers = 0;
    unsigned bitrate_kbps = 0;
    unsigned fps = 0;
    unsigned max_height = 0;
    std::string encoder = "auto";
    bool audio = true;
    std::vector<std::string> apps;
    int monitor = -1;
    std::string relay, relay_username, relay_password, relay_secret;
    std::vector<std::string> stun_servers;
    bool no_stun = false, no_port_mapping = false, relay_only = false, no_relay = false;
    int64_t ticket_lifetime_s = 0;
    unsigned grace_ms = 0;
    std::string name;
};

// An event for the user's callback; the facade converts it to pp_event.
struct Event {
    pp_event_type type = PP_EVENT_LOG;
    pp_log_level level = PP_LOG_INFO;
    uint64_t viewer_id = 0;
    pp_result error = PP_OK;
    std::string message;
    std::string json = "{}";
};
using EventSink = std::function<void(const Event &)>;

class Host {
public:
    Host(HostConfig config, EventSink events);
    ~Host();

    void start();
    void stop();
    std::string ticket_text() const;
    std::string fingerprint_hex() const { return identity_->fingerprint_hex(); }
    std::string stats_json() const;

private:
    HostConfig config_;
    EventSink events_;
    std::shared_ptr<Identity> identity_;
    std::vector<uint8_t> secret_;
    mutable std::mutex mutex_;
};

} // namespace pp
