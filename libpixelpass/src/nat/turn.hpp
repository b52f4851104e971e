// nat/turn: a TURN client (RFC 8656) on an endpoint's one UDP socket, beside STUN and QUIC.
// Allocates a relayed address (long-term credentials: 401 → realm/nonce → signed request),
// refreshes it, keeps permissions, and carries peer traffic in Send/Data indications. Each peer
// reached through the relay becomes a route on the socket (net::UdpSocket::set_route), so QUIC
// simply sees that peer's relayed address and never knows a relay is in between.
// Also: REST-API credentials for a coturn `use-auth-secret` server. Loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nat/agent.hpp"
#include "nat/stun.hpp"
#include "net/timer.hpp"
#include "pixelpass.h"

namespace pp::nat {

struct RestCredentials {
    std::string username;  // "<expiry unix seconds>:pixelpass"
    std::string password;  // base64(HMAC-SHA1(secret, username))
};
// The TURN REST API scheme coturn's use-auth-secret checks.
RestCredentials rest_credentials(std::string_view secret, int64_t expiry_unix, std::string_view user = "pixelpass");

// "turn:HOST[:PORT]" (or "HOST[:PORT]"): the host and port, default 3478. Throws
// pp::Error(PP_ERR_INVALID_ARGUMENT) with what a relay spec looks like.
std::pair<std::string, uint16_t> parse_relay(const std::string &spec);

struct TurnConfig {
    net::Address server;
    std::string username, password;
    std::string label;  // "turn:HOST:PORT" for messages
};

class TurnClient {
public:
    // Takes the agent's listener (Data indications come through it).
    TurnClient(Agent &agent, net::UdpSocket &socket, net::Loop &loop, TurnConfig config);
    // Releases the allocation (Refresh with lifetime 0) and removes the routes.
    ~TurnClient();
    TurnClient(const TurnClient &) = delete;
    TurnClient &operator=(const TurnClient &) = delete;

    // ok, or why not: PP_ERR_UNREACHABLE (no answer), PP_ERR_TICKET_REJECTED (credentials
    // refused), PP_ERR_PROTOCOL (another error) with a one-line detail naming the relay.
    using Done = std::function<void(pp_result, const std::string &detail)>;
    void allocate(Done done, unsigned timeout_ms = 5000);
    bool allocated() const { return !relayed_.empty(); }
    const net::Address &relayed() const { return relayed_; }
    const net::Address &mapped() const { return mapped_; }  // our reflexive address, as the relay saw it
    const TurnConfig &config() const { return config_; }

    // Lets packets from `peer`'s IP address through our allocation (refreshed every 4 minutes).
    // Counted per IP: each permit() is undone by one unpermit(); at none the permission is no
    // longer refreshed and lapses at the relay (5 min), so the table holds what live peers need.
    void permit(const net::Address &peer);
    void unpermit(const net::Address &peer);
    size_t permissions() const { return permitted_.size(); }
    // Sends to `peer` through the relay: makes it a route on the socket.
    void route(const net::Address &peer);
    // Sends to `peer` through the relay without touching the socket's routes (a standby path).
    net::UdpSocket::SendStatus send(const net::Address &peer, std::span<const uint8_t> data, size_t segment) {
        return send_to(peer.unmapped(), data, segment);
    }

    struct Counters {
        uint64_t tx_datagrams = 0, rx_datagrams = 0, tx_bytes = 0, rx_bytes = 0, refreshes = 0, keepalives = 0;
        // Responses to our signed requests without a valid MESSAGE-INTEGRITY (other than the
        // 401/438 that hand us a nonce): ignored, as if unanswered.
        uint64_t unauthenticated = 0;
        // A 401/438 naming another realm than the one we signed with: refused, not re-signed.
        uint64_t realm_refused = 0;
    };
    const Counters &counters() const { return counters_; }
    // The allocation's lifetime as the relay last confirmed it (seconds).
    uint32_t lifetime_s() const { return lifetime_s_; }

private:
    // What a request is signed with (long-term credentials, RFC 8489 9.2). A 401/438 is unsigned
    // by necessity, so what it hands us is tried for that one request and becomes ours only when
    // the relay's signed answer to it proves it (a forged one cannot poison later requests).
    struct Auth {
        std::string realm, nonce;
        std::vector<uint8_t> key;
    };
    std::vector<uint8_t> signed_request(stun::Builder &b, const Auth &auth);
    using Reply = std::function<void(const stun::Message *)>;
    // `retry`: the credentials a 401/438 handed us; a request is re-signed at most once.
    void request(stun::Method method, std::function<void(stun::Builder &)> fill, Reply reply, unsigned timeout_ms,
                 std::shared_ptr<const Auth> retry = nullptr);
    // The answer to one of our requests: re-signed once on 401/438, checked, then to `reply`.
    void answered(const stun::Message *m, const Auth &used, bool retried, stun::Method method,
                  std::function<void(stun::Builder &)> fill, Reply reply, unsigned timeout_ms);
    bool on_message(const stun::Message &m, const net::Datagram &d);
    void refresh();
    void refresh_permissions();
    void keepalive();
    net::UdpSocket::SendStatus send_to(const net::Address &peer, std::span<const uint8_t> data, size_t segment);

    Agent &agent_;
    net::UdpSocket &socket_;
    net::Loop &loop_;
    TurnConfig config_;
    Auth auth_;  // proven by a signed answer (empty before the first allocation)
    std::string problem_;  // why the last request got no usable answer, for messages
    net::Address relayed_, mapped_;
    uint32_t lifetime_s_ = 600;
    std::vector<std::pair<net::Address, unsigned>> permitted_;  // by IP (port ignored), with holders
    std::vector<net::Address> routes_;
    std::unique_ptr<net::Timer> refresh_timer_, permission_timer_, keepalive_timer_;
    Counters counters_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace pp::nat
