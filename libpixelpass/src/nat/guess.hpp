// nat/guess: port guessing (the birthday technique) for the pair hole punching cannot join: a
// symmetric NAT (a fresh random port per destination) facing a filtering cone NAT (port-restricted:
// only the exact address and port it sent to may answer).
//
// The symmetric side "fans": it opens kFanSockets extra UDP sockets and sends, from each, an
// authenticated probe to the cone side's public address. Its NAT gives every one a random port;
// the cone side's NAT drops them all, but now kFanSockets ports of the symmetric NAT are open
// toward that one address. The cone side "sprays": from its QUIC socket (whose public address is
// the same toward everybody) it probes random ports of the symmetric side's IP, at most
// kMaxGuesses, rate-limited. Each of its probes opens its own NAT toward the guessed port; when a
// guess meets one of the open ports (probability 1 - exp(-fan × guesses / 64512): 99.97 % for
// 256 × 2048), the probe reaches a fan socket, which answers; both NATs now hold a matching pair
// of flows. That fan socket then carries the connection: the QUIC socket routes the peer's
// address through it (net::UdpSocket set_route) and it hands what it receives back (inject), so
// QUIC never knows.
//
// Every probe and answer is a STUN Binding with USERNAME = the rendezvous offer's session and
// MESSAGE-INTEGRITY keyed with the ticket's probe key (nat/paths probe_key): a fan socket answers
// and opens only for a ticket holder, and a spray counts only authenticated answers. Guessing is
// IPv4 only (IPv6 has no NAT to guess), bounded (kMaxFans fans and kMaxSprays sprays at once,
// each for a few seconds) and stops as soon as the peer is connected another way.
// Its bounds are nat/guess_limits (unit-tested there). Loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nat/guess_limits.hpp"
#include "nat/stun.hpp"
#include "net/address.hpp"
#include "net/loop.hpp"
#include "net/timer.hpp"
#include "net/udp.hpp"

namespace pp::nat::guess {

// What this side does, from both NAT kinds as rendezvous/advice names them: "fan" (we are
// symmetric, they are a cone), "spray" (the reverse), "" (nothing to guess: a public or mapped
// side, two symmetric NATs, or a kind we do not know).
std::string role(const std::string &ours, const std::string &theirs);

class Guesser {
public:
    // A path was found for `session`: `peer` is the peer's address on it. For a fan, the main
    // socket routes `peer` through the fan socket now; for a spray, `peer` is the guessed port.
    using Found = std::function<void(const std::string &session, const net::Address &peer)>;

    Guesser(net::Loop &loop, net::UdpSocket &main, std::vector<uint8_t> key, Found found);
    ~Guesser();  // closes every fan socket and removes their routes
    Guesser(const Guesser &) = delete;
    Guesser &operator=(const Guesser &) = delete;

    // The symmetric side: kFanSockets sockets probe `peer` (the cone side's public address),
    // opened `after_ms` from now unless settle() toward the peer came first. False (nothing
    // opened) for an unfit peer, a session seen before, or kMaxFans running.
    bool fan(const std::string &session, const net::Address &peer, unsigned after_ms = 0);
    // The cone side: probes random ports of `peer`'s IP from the main socket. False as above.
    bool spray(const std::string &session, const net::Address &peer);
    // Asked before a delayed fan opens: whether the peer (at that IP) is connected or connecting
    // already, another way (then the fan is dropped: its route would take that peer's traffic).
    void set_connected(std::function<bool(const net::Address &peer)> fn) { connected_ = std::move(fn); }
    // STUN on the main socket: an answer to one of our guesses, or an authenticated probe from a
    // sprayed IP (a fan socket that got through first). True when taken (and answered).
    bool on_stun(const stun::Message &m, const net::Datagram &d);

    // The peer at `in_use` is connected: sprays toward its IP stop; fans toward it close every
    // socket but the one that carries it (all of them when none does).
    void settle(const net::Address &in_use);
    // The connection to `peer` ended: the fan socket carrying it closes and its route goes.
    void release(const net::Address &peer);
    // Whether the path to `a` was found by guessing (a fan's route, a spray's hit).
    bool guessed(const net::Address &a) const;
    // Whether a fan waits or a spray sends.
    bool active() const;
    nlohmann::json stats() const;

private:
    struct Fan;
    struct Spray;
    void tick();
    void open_fan(Fan &f);
    void drop_fans(const std::function<bool(const Fan &)> &which);
    void fan_probe(Fan &f);
    bool on_fan_stun(Fan &f, net::UdpSocket &s, const net::Datagram &d);
    void fan_opened(Fan &f, net::UdpSocket &s, const net::Address &from);
    std::vector<uint8_t> probe(const std::string &session) const;
    std::vector<uint8_t> answer(const std::string &session, const stun::TransactionId &tid,
                                const net::Address &to) const;
    bool authentic(const stun::Message &m, const std::string &session) const;
    void rearm();

    net::Loop &loop_;
    net::UdpSocket &main_;
    std::vector<uint8_t> key_;
    Found found_;
    std::function<bool(const net::Address &)> connected_;
    std::vector<std::unique_ptr<Fan>> fans_;
    std::vector<std::unique_ptr<Fan>> retired_;  // dropped, destroyed on the next loop turn
    std::vector<std::unique_ptr<Spray>> sprays_;
    Limits limits_;                  // what may start, and the spray rate shared by all
    std::vector<net::Address> hits_; // what sprays found (bounded), for guessed()
    net::Timer timer_;
    struct Counters {
        uint64_t fans = 0, sprays = 0, refused = 0, fan_probes = 0, guesses = 0, hits = 0, answered = 0;
    } counters_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace pp::nat::guess
