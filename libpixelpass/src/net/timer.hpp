// net/timer: a one-shot timer on the loop at an absolute CLOCK_MONOTONIC instant with nanosecond
// precision. libuv timers tick in whole milliseconds, too coarse for QUIC loss detection, ACK
// delay and pacing at gigabit rates, so this is a timerfd watched by the loop.
#pragma once

#include <cstdint>
#include <functional>

#include "net/handle.hpp"
#include "net/loop.hpp"

namespace pp::net {

// Nanoseconds on CLOCK_MONOTONIC: the time base of every QUIC timestamp.
uint64_t monotonic_ns();

class Timer {
public:
    // `fire` runs on the loop thread when the timer expires. Construct on the loop thread.
    Timer(Loop &loop, std::function<void()> fire);
    ~Timer();
    Timer(const Timer &) = delete;
    Timer &operator=(const Timer &) = delete;

    // (Re)arms for `deadline_ns` (monotonic_ns() time base); a past deadline fires on the next
    // loop iteration. UINT64_MAX disarms.
    void arm_at(uint64_t deadline_ns);
    void cancel() { arm_at(UINT64_MAX); }
    uint64_t deadline() const { return wanted_; }

private:
    static void on_poll(uv_poll_t *handle, int status, int events);
    void program(uint64_t at);

    std::function<void()> fire_;
    int fd_ = -1;
    Handle<uv_poll_t> poll_;
    // QUIC moves its deadline on nearly every packet, mostly later. The kernel timer is only
    // reprogrammed when the deadline moves earlier; firing before a later deadline just re-arms.
    // timerfd_settime is costly under virtualisation, and this saves most calls.
    uint64_t wanted_ = UINT64_MAX;  // when fire_ should run
    uint64_t armed_ = UINT64_MAX;   // what the kernel timer is set to
};

// Wakes the loop from any thread (a uv_async): for byte sources signalling new data.
class Waker {
public:
    Waker(Loop &loop, std::function<void()> on_wake);  // on the loop thread
    // Thread-safe and cheap; several wakes before the loop runs coalesce into one call.
    void wake();

private:
    static void on_async(uv_async_t *handle);
    std::function<void()> on_wake_;
    Handle<uv_async_t> async_;
};

} // namespace pp::net
