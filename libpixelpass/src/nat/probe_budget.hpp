// nat/probe_budget: how many path probes (STUN Binding requests, and answers to the peer's) a
// host sends on its viewers' behalf. A ticket holder names up to 16 addresses in GET /paths and
// can open a connection per viewer slot and reconnect at will; without a rate every connection's
// punch (17 probes at once, then 5 a second each for 5 s, again every 37 s) adds up, and
// authenticated probes sent from spoofed sources are answered one for one. So each peer
// connection has a budget of its own and all of them share the host's (docs/SECURITY.md).
// Plain bookkeeping on the caller's clock, so each bound is checked without a network.
#pragma once

#include <cstdint>

namespace pp::nat {

// A token bucket: `burst` at once, then `per_second`.
class TokenBucket {
public:
    TokenBucket(double burst, double per_second) : burst_(burst), per_second_(per_second), tokens_(burst) {}
    // Tokens available at `now_ns` (refilled first).
    double available(uint64_t now_ns);
    // Takes one token if there is one.
    bool take(uint64_t now_ns);

private:
    double burst_, per_second_, tokens_;
    uint64_t refill_ns_ = 0;
};

// One peer connection: its punch (up to 17 candidates at 5/s = 85/s) and the answers to the
// viewer's probes of our few candidates fit; a flood of authenticated requests does not.
inline constexpr double kPeerProbeBurst = 48;
inline constexpr double kPeerProbesPerSecond = 128;
// Every peer connection of a host together: two viewers punching toward 16 candidates each fit.
inline constexpr double kHostProbeBurst = 128;
inline constexpr double kHostProbesPerSecond = 256;

// The host-wide budget, shared by the host's PeerPaths (loop thread only).
struct ProbeBudget {
    ProbeBudget(double burst = kHostProbeBurst, double per_second = kHostProbesPerSecond)
        : bucket(burst, per_second), per_second(per_second) {}
    TokenBucket bucket;
    double per_second;
    uint64_t deferred = 0;  // probes and answers held back (a probe goes out at a later tick)
};

} // namespace pp::nat
