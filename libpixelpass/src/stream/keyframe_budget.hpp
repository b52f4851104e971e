// stream/keyframe_budget: how often one viewer may make the source force a keyframe. A forced
// keyframe lands in every reader's stream (one encode serves all), so a viewer that opens and
// reopens GET /stream.ts in a loop could otherwise turn everybody's stream into keyframes only.
// The host keeps one budget per viewer connection and hands it to Source::subscribe(); the source
// spends it only when the joiner really needs a fresh keyframe, and a joiner it refuses is served
// from what the source already holds (see fanout::Ring::attach).
#pragma once

#include <chrono>
#include <cstdint>

namespace pp::stream {

class KeyframeBudget {
public:
    using Clock = std::chrono::steady_clock;
    // At most one forced keyframe per this interval per viewer: the encoders' natural keyframe
    // interval (media/encoder: 2 s), so a viewer never gets more than the GOP gives anyway.
    static constexpr std::chrono::milliseconds kDefaultInterval{2000};

    explicit KeyframeBudget(std::chrono::milliseconds interval = kDefaultInterval);

    // True, and spent, when a keyframe may be forced at `now`; false (counted) otherwise. The first
    // call always succeeds: a viewer's start is never slowed down. Not thread-safe: a budget
    // belongs to one viewer and is used on that viewer's (the host's loop) thread.
    bool try_force(Clock::time_point now = Clock::now());

    uint64_t forced() const { return forced_; }
    uint64_t refused() const { return refused_; }

private:
    std::chrono::milliseconds interval_;
    bool spent_once_ = false;
    Clock::time_point last_forced_{};
    uint64_t forced_ = 0, refused_ = 0;
};

} // namespace pp::stream
