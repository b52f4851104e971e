// Test helpers for stream::Reader consumers: a wake flag the reader's callback sets, and a drain
// loop that reads like the tunnel does (read, then release once "acknowledged").
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "stream/source.hpp"

namespace pp::test {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// Set from any thread by the reader's wake callback; waited on by the test thread.
struct WakeFlag {
    std::mutex mutex;
    std::condition_variable cv;
    bool woken = false;
    int count = 0;

    std::function<void()> callback() {
        return [this] {
            std::lock_guard lock(mutex);
            woken = true;
            ++count;
            cv.notify_all();
        };
    }
    bool wait(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex);
        bool ok = cv.wait_for(lock, timeout, [this] { return woken; });
        woken = false;
        return ok;
    }
};

struct Chunk {
    SteadyClock::time_point at;
    std::vector<uint8_t> bytes;
};

// Reads `reader` until `until` returns true or `timeout` passes, releasing everything read.
// Returns the bytes in chunks with their arrival time. Waits on the wake flag between reads.
inline std::vector<Chunk> drain(stream::Reader &reader, WakeFlag &flag, std::chrono::milliseconds timeout,
                                const std::function<bool(size_t total_bytes, SteadyClock::time_point first)> &until) {
    std::vector<Chunk> out;
    size_t total = 0;
    auto deadline = SteadyClock::now() + timeout;
    SteadyClock::time_point first{};
    while (SteadyClock::now() < deadline) {
        auto span = reader.read(64 * 1024);
        if (span.empty()) {
            if (reader.at_end()) break;
            flag.wait(50ms);
            continue;
        }
        auto now = SteadyClock::now();
        if (out.empty()) first = now;
        out.push_back({now, std::vector<uint8_t>(span.begin(), span.end())});
        total += span.size();
        reader.release(span.size());
        if (until(total, first)) break;
    }
    return out;
}

inline std::vector<uint8_t> concat(const std::vector<Chunk> &chunks) {
    std::vector<uint8_t> all;
    for (const auto &c : chunks) all.insert(all.end(), c.bytes.begin(), c.bytes.end());
    return all;
}

// Reads for `duration` measured from the first byte (or until `timeout` when nothing arrives).
inline std::vector<Chunk> read_for(stream::Reader &reader, WakeFlag &flag, std::chrono::milliseconds duration,
                                   std::chrono::milliseconds timeout = 20s) {
    return drain(reader, flag, timeout, [duration](size_t, SteadyClock::time_point first) {
        return SteadyClock::now() - first >= duration;
    });
}

} // namespace pp::test
