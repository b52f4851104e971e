#include "stream/keyframe_budget.hpp"

#include "common/error.hpp"

namespace pp::stream {

KeyframeBudget::KeyframeBudget(std::chrono::milliseconds interval) : interval_(interval) {
    if (interval_.count() < 0) throw Error(PP_ERR_INVALID_ARGUMENT, "keyframe budget: the interval must not be negative");
}

bool KeyframeBudget::try_force(Clock::time_point now) {
    if (spent_once_ && now - last_forced_ < interval_) {
        ++refused_;
        return false;
    }
    spent_once_ = true;
    last_forced_ = now;
    ++forced_;
    return true;
}

} // namespace pp::stream
