// nat/guess_limits: the bounds of port guessing (nat/guess), as plain bookkeeping with no socket
// and no clock of its own, so each bound is checked by a unit test without a NAT: which targets
// may be guessed at (public IPv4 only), how many fans and sprays run at once, each rendezvous
// session once, at most kMaxGuesses distinct ports per spray, at most kGuessesPerSecond.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "net/address.hpp"

namespace pp::nat::guess {

inline constexpr size_t kFanSockets = 256;
inline constexpr size_t kMaxGuesses = 2048;
inline constexpr unsigned kGuessesPerSecond = 800;  // ~70 KB/s of probes: far below a stream
inline constexpr uint16_t kFirstPort = 1024;        // Linux (and most NATs) map to 1024-65535
inline constexpr size_t kMaxFans = 2;               // 2 x 256 sockets at most
inline constexpr size_t kMaxSprays = 2;
inline constexpr double kBurst = 32;                // guesses sent back to back at most
inline constexpr size_t kSessionMemory = 64;        // sessions remembered

// Whether `a` may be guessed at: a plain (or v4-mapped) IPv4 address a remote peer may make us
// probe. IPv6 has no NAT to guess; loopback, private-use rules etc. are nat/paths' probe rules.
bool guessable(const net::Address &a);

// kMaxGuesses distinct ports of kFirstPort..65535 in random order, from kMaxGuesses random
// draws (a partial Fisher-Yates shuffle).
std::vector<uint16_t> guess_ports(std::span<const uint32_t> draws);

class Limits {
public:
    enum class Kind { fan, spray };
    // Whether a fan or spray for `session` toward `peer` may start while `running` of that kind
    // are at work. A yes remembers the session: it is never admitted again (bounded memory).
    bool admit(Kind kind, const std::string &session, const net::Address &peer, size_t running);
    // The guesses that may go out at `now_ns` (a token bucket: kGuessesPerSecond, kBurst back to
    // back), shared by every spray. Each one sent is taken with spend().
    size_t allowance(uint64_t now_ns);
    void spend(size_t n);

private:
    std::vector<std::string> seen_;
    double tokens_ = 0;
    uint64_t refill_ns_ = 0;
};

} // namespace pp::nat::guess
