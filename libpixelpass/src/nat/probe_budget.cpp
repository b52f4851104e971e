#include "nat/probe_budget.hpp"

#include <algorithm>

namespace pp::nat {

double TokenBucket::available(uint64_t now_ns) {
    if (refill_ns_ && now_ns > refill_ns_)
        tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_ns - refill_ns_) * 1e-9 * per_second_);
    if (now_ns > refill_ns_) refill_ns_ = now_ns;
    return tokens_;
}

bool TokenBucket::take(uint64_t now_ns) {
    if (available(now_ns) < 1) return false;
    tokens_ -= 1;
    return true;
}

} // namespace pp::nat
