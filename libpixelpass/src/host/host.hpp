// host: one sharing session — its identity and secret, the network service that viewers reach
// (QUIC + HTTP/3 on one UDP socket: GET /stream.ts, GET /info, the secret check, the viewer cap),
// and the byte Source it serves (the media pipeline behind its fan-out, or the synthetic
// generator). Owned by the C facade's pp_host. Thread-safe: every public function may be called
// from any thread, including from inside an event callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "identity/identity.hpp"
#include "ticket/ticket.hpp"
#include "pixelpass.h"

namespace pp {

namespace stream {
class Source;
}

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
    // Rendezvous over OpenDHT: bootstrap nodes ("HOST:PORT"; empty = the public default) or none.
    std::vector<std::string> dht_bootstrap;
    bool no_dht = false;
    std::string congestion_control;  // "cubic", "bbr", "bbr2", "reno"; empty = the default
    bool fixed_bitrate = false;      // no adaptive bitrate
    // Media servers that get the same encode (publish/): rtmp(s):// and srt:// URLs, and the
    // stream key for the rtmp ones that name only their application.
    std::vector<std::string> publish;
    std::string publish_key;
    // The ticket admits one viewer: once a connection's secret was accepted, every other
    // connection is refused (403), also after that viewer left.
    bool one_viewer = false;
    // Internal (not in the C options): QUIC idle timeout and keep-alive; 0 = 30 s and 15 s.
    // Tests shorten them to see dead viewers go quickly.
    unsigned idle_timeout_ms = 0, keep_alive_ms = 0;
    // Concurrent GET /stream.ts per viewer connection; 0 = 2. More get 429: a ticket holder
    // cannot make the host encode-and-send the stream many times over one connection.
    unsigned max_streams_per_viewer = 0;
    // Internal: the host-wide path-probe budget (nat/probe_budget); 0 = its defaults. Tests
    // shrink it to see refusals without dozens of connections.
    unsigned probe_burst = 0, probes_per_second = 0;
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

inline constexpr unsigned kDefaultMaxViewers = 2;

class Host {
public:
    Host(HostConfig config, EventSink events);
    // Stops; called from inside an event callback it returns at once and the teardown finishes
    // on another thread after the callback (no callback runs after this returns).
    ~Host();
    Host(const Host &) = delete;
    Host &operator=(const Host &) = delete;

    // Binds the UDP port, fills the ticket's candidates and starts serving; returns once viewers
    // can connect (PP_EVENT_READY has then been emitted). Throws pp::Error: PP_ERR_STATE when
    // running, PP_ERR_UNSUPPORTED for sources that are not built yet, PP_ERR_MISSING_PLUGIN
    // (naming the package) when the pipeline cannot be built, PP_ERR_IO when the port is taken.
    void start();
    // Closes every viewer connection (cleanly: viewers see the host stop) and stops listening.
    void stop();
    std::string ticket_text() const;
    std::string fingerprint_hex() const { return identity_->fingerprint_hex(); }
    std::string stats_json() const;

    // Serves `source` instead of the one config.source names (tests and benchmarks). Call before
    // start().
    void set_source(std::shared_ptr<stream::Source> source);

    struct Core;  // the running service, owned by the loop thread

private:
    HostConfig config_;
    std::shared_ptr<EventSink> events_;
    std::shared_ptr<Identity> identity_;
    std::vector<uint8_t> secret_;
    std::shared_ptr<stream::Source> source_override_;
    mutable std::mutex mutex_;
    std::shared_ptr<Core> core_;
    std::vector<std::pair<std::string, uint16_t>> candidates_;  // numeric address, port
    std::vector<std::pair<std::string, uint16_t>> reflexive_;   // those of candidates_ STUN found
    std::vector<std::pair<std::string, uint16_t>> relayed_;     // the relay allocation's address
    std::vector<std::pair<std::string, uint16_t>> mapped_;      // the gateway's port mapping
    std::optional<ticket::Relay> relay_;                        // relay + the viewer's credentials
    int64_t expiry_ = 0;
};

} // namespace pp
