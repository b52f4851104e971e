#include "nat/guess_limits.hpp"

#include <netinet/in.h>

#include <algorithm>

#include "nat/paths.hpp"

namespace pp::nat::guess {

bool guessable(const net::Address &address) {
    net::Address a = address.unmapped();
    return a.family() == AF_INET && !a.is_loopback() && probe_target_allowed(a, a);
}

std::vector<uint16_t> guess_ports(std::span<const uint32_t> draws) {
    std::vector<uint16_t> all;
    all.reserve(65536 - kFirstPort);
    for (uint32_t p = kFirstPort; p <= 65535; ++p) all.push_back(static_cast<uint16_t>(p));
    size_t n = std::min(draws.size(), kMaxGuesses);
    for (size_t i = 0; i < n; ++i) std::swap(all[i], all[i + draws[i] % (all.size() - i)]);
    all.resize(n);
    return all;
}

bool Limits::admit(Kind kind, const std::string &session, const net::Address &peer, size_t running) {
    if (!guessable(peer) || running >= (kind == Kind::fan ? kMaxFans : kMaxSprays)) return false;
    if (std::find(seen_.begin(), seen_.end(), session) != seen_.end()) return false;
    if (seen_.size() >= kSessionMemory) seen_.erase(seen_.begin());
    seen_.push_back(session);
    return true;
}

size_t Limits::allowance(uint64_t now_ns) {
    if (refill_ns_ && now_ns > refill_ns_)
        tokens_ = std::min(kBurst, tokens_ + double(now_ns - refill_ns_) * kGuessesPerSecond / 1e9);
    if (now_ns > refill_ns_) refill_ns_ = now_ns;
    return tokens_ >= 1 ? static_cast<size_t>(tokens_) : 0;
}

void Limits::spend(size_t n) { tokens_ = std::max(0.0, tokens_ - static_cast<double>(n)); }

} // namespace pp::nat::guess
