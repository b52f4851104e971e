// rendezvous/punch: the host's side of a rendezvous offer. It sends the viewer's candidates the
// authenticated path probes of nat/paths (STUN Binding, MESSAGE-INTEGRITY with the ticket's probe
// key, USERNAME = the offer's session) for a few seconds, so the host's NAT opens a mapping toward
// each of them and the viewer's QUIC Initial, retransmitted or dialled anew at the probe's source,
// gets in. Bounded: kMaxCandidates per offer, no loopback, multicast, broadcast or unspecified
// address from a remote peer, few offers at once, each session once. Loop thread only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/address.hpp"
#include "net/loop.hpp"
#include "net/timer.hpp"
#include "net/udp.hpp"
#include "rendezvous/seal.hpp"

namespace pp::rendezvous {

// True for an address no remote peer may make us probe: unspecified, loopback, link-local,
// multicast, broadcast.
bool unfit_candidate(const net::Address &a);

class Puncher {
public:
    Puncher(net::Loop &loop, net::UdpSocket &socket, std::vector<uint8_t> probe_key);
    Puncher(const Puncher &) = delete;
    Puncher &operator=(const Puncher &) = delete;

    // Starts probing the offer's fit candidates. False (nothing sent) for a session seen before,
    // or when kMaxActive offers are being punched already.
    bool punch(const Offer &offer);
    // Whether we punched toward `a`'s address (any port) before: how a connection from it was found.
    bool punched(const net::Address &a) const;
    nlohmann::json stats() const;

    static constexpr size_t kMaxActive = 4;

private:
    struct Target {
        std::string session;
        std::vector<net::Address> candidates;
        uint64_t until_ns;
    };
    void tick();
    void probe(const std::string &session, const net::Address &to);

    net::UdpSocket &socket_;
    std::vector<uint8_t> key_;
    std::vector<Target> active_;
    std::vector<std::string> seen_;        // sessions punched already (bounded, oldest dropped)
    std::vector<net::Address> punched_;    // every address probed (bounded, oldest dropped)
    net::Timer timer_;
    uint64_t offers_ = 0, refused_ = 0, probes_ = 0;
};

} // namespace pp::rendezvous
