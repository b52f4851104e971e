// nat/paths: hole punching, path upgrade and failover for one peer of a QUIC connection.
//
// QUIC keeps the one path it was established on (a "virtual" peer address); below it, the socket
// routes that address to whichever real path works best and aliases every real path of the peer
// back to it (net::UdpSocket set_route / set_alias). No QUIC migration is needed, so either side
// may switch on its own, at any time, and the stream never notices.
//
// Both sides learn each other's candidates (the viewer sends its own with GET /paths; the host's
// are in the ticket and in the answer) and probe them all at once with STUN Binding requests
// authenticated by a key derived from the ticket secret (MESSAGE-INTEGRITY), so each NAT opens a
// mapping toward the other — the simultaneous open of hole punching. A probe's answer validates a
// path; an authenticated probe from an unknown address is a peer-reflexive candidate (how a
// symmetric NAT's fresh port is found). Traffic moves to the first validated direct path. The
// relay stays allocated as standby: when the direct path goes silent for kDeadMs (probes every
// kActiveProbeMs, and any datagram heard counts), traffic falls back to the relay; probing goes on
// and the direct path is taken again when it answers.
//
// Punch rounds: a Linux NAT that receives the peer's probe before it forwarded one of its own
// keeps that unreplied flow for 30 s and maps its own flow to the peer onto another port. So a
// round that found nothing is followed by 32 s of quiet (the viewer meanwhile refreshes its own
// NAT's mappings with TTL-1 keepers that never reach the host), then the host probes first and the
// viewer 300 ms later. Loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nat/agent.hpp"
#include "nat/probe_budget.hpp"
#include "nat/stun.hpp"
#include "nat/turn.hpp"
#include "net/address.hpp"
#include "net/timer.hpp"
#include "net/udp.hpp"

namespace pp::nat {

// The probe key both sides derive from the ticket secret: HMAC-SHA256(secret, label).
std::vector<uint8_t> probe_key(std::span<const uint8_t> ticket_secret);

// Whether a candidate the peer offers may be probed: routable unicast of the connection's scope.
// Never multicast, broadcast, unspecified, 0.0.0.0/8 or link-local (no interface is known for
// it); loopback only when the QUIC peer itself is on loopback. A ticket holder must not turn the
// host into a prober of its LAN or of arbitrary services.
bool probe_target_allowed(const net::Address &candidate, const net::Address &quic_peer);

// At most this many of the peer's candidates (offered and peer-reflexive) are kept per peer.
inline constexpr size_t kMaxPeerCandidates = 16;

// "direct" (the path the connection started on), "punched" (another direct path, found by
// probing), "relayed" (through the TURN relay).
enum class PathKind { direct, punched, relayed };
const char *path_kind_name(PathKind kind);

class PeerPaths {
public:
    struct Options {
        net::Address virtual_remote;  // the peer's address as QUIC knows it
        net::Address virtual_local;   // our side of QUIC's path (a server's per-path local address)
        bool started_relayed = false; // QUIC's path is the relay
        std::vector<uint8_t> key;     // probe_key()
        std::string session;          // USERNAME of every probe: which connection it belongs to
        bool leads = false;           // probes first in the first round (the viewer)
        bool behind_nat = false;      // our reflexive address is none of our own
        // The host's budget shared by all its peers (nat/probe_budget); null = this one's only.
        ProbeBudget *shared_budget = nullptr;
    };
    using Changed = std::function<void(PathKind kind, const net::Address &via)>;

    // `turn` may be null (no relay: nothing to fall back to, so nothing is probed).
    PeerPaths(net::Loop &loop, net::UdpSocket &socket, Agent &agent, TurnClient *turn, Options options,
              Changed changed);
    // Removes this peer's routes and aliases (QUIC's path goes back to what it started as).
    ~PeerPaths();
    PeerPaths(const PeerPaths &) = delete;
    PeerPaths &operator=(const PeerPaths &) = delete;

    // The peer's direct candidates (local, reflexive, mapped): probing starts at once.
    void add_candidates(const std::vector<net::Address> &candidates);
    // The peer's relayed address: the standby path of a connection that started direct. The TURN
    // permission for it (which lets that IP send into our allocation and us send to it) is created
    // only with evidence that the address is this peer's: it is on our own relay (the peer
    // allocated with the ticket's relay credentials), or an authenticated probe came from it.
    // Until then the relay is no standby (docs/SECURITY.md, "TURN permissions").
    void set_peer_relayed(const net::Address &relayed);
    bool relay_permitted() const { return relay_permitted_; }
    // An authenticated probe (request or answer) of ours? Then it is handled and true comes back.
    bool on_stun(const stun::Message &m, const net::Datagram &d);

    const std::string &session() const { return options_.session; }
    PathKind kind() const { return kind_; }
    net::Address via() const;  // the real address traffic goes to now
    unsigned switches() const { return switches_; }
    struct Counters {
        uint64_t probes_sent = 0, probes_answered = 0, answers_received = 0, peer_reflexive = 0, punch_rounds = 0;
        // A relayed address offered with no evidence it is the peer's: no permission (yet).
        uint64_t relay_unverified = 0;
        // Over budget (ours or the host's): probes put off to a later tick, answers not sent.
        uint64_t probes_deferred = 0, answers_refused = 0;
    };
    const Counters &counters() const { return counters_; }
    size_t candidates() const { return candidates_.size(); }

private:
    struct Candidate {
        net::Address address;
        bool validated = false;      // answered at least once
        uint64_t last_ok_ns = 0;     // last authenticated answer or probe from it
        uint64_t last_probe_ns = 0;
    };
    Candidate *find(const net::Address &a);
    Candidate *add(const net::Address &a);  // null when the table is full
    bool spend();  // one probe or answer from our budget and the host's; false = over budget
    void probe(Candidate &c, int ttl = 0);
    void tick();
    void use_relay();
    void use_direct(Candidate &c);
    uint64_t heard(const Candidate &c) const;
    bool has_relay() const;
    bool on_our_relay(const net::Address &a) const;
    void permit_peer_relayed();

    net::Loop &loop_;
    net::UdpSocket &socket_;
    Agent &agent_;
    TurnClient *turn_;
    Options options_;
    Changed changed_;
    net::Address peer_relayed_;  // where the relay path reaches the peer
    bool relay_permitted_ = false;  // the TURN permission for peer_relayed_ exists
    std::vector<Candidate> candidates_;
    int active_ = -1;  // index into candidates_, -1 = relay (or the first path when no relay)
    PathKind kind_;
    unsigned switches_ = 0;
    uint64_t punch_until_ns_ = 0;  // fast probing of every candidate until then
    uint64_t quiet_until_ns_ = 0;  // a failed round: no probes until then
    uint64_t round_start_ns_ = 0;
    uint64_t last_keeper_ns_ = 0;
    unsigned rounds_ = 0;          // punch rounds after the first
    // Probes awaiting an answer, by transaction id (any datagram to the port may claim to be an
    // answer: a lookup, not a scan), and their ids oldest first, for expiry from the front.
    // Bounded by the probe budget x kSentMemoryMs and by kMaxSent.
    struct Sent {
        net::Address to;
        uint64_t at_ns;
    };
    std::map<stun::TransactionId, Sent> sent_;
    std::deque<std::pair<uint64_t, stun::TransactionId>> sent_order_;
    TokenBucket budget_{kPeerProbeBurst, kPeerProbesPerSecond};
    net::Timer timer_;
    Counters counters_;
};

} // namespace pp::nat
