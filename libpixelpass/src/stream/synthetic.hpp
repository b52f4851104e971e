// stream/synthetic: a deterministic byte Source for integrity tests and benchmarks. Every byte is a
// pure function of its offset in the stream, so any reader can check what it received
// incrementally, without a copy of what was sent: a lost, duplicated, reordered or corrupted byte
// shows up at its exact offset. Optionally finite, optionally paced to a bit rate.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>

#include "stream/source.hpp"

namespace pp::stream {

// The byte at `offset` of every synthetic stream (SplitMix64 of offset / 8, little-endian).
uint8_t synthetic_byte(uint64_t offset) noexcept;

// Fills `out` with the stream's bytes starting at `offset`. Fast path for generators and checkers.
void synthetic_fill(uint64_t offset, std::span<uint8_t> out) noexcept;

// Checks `bytes` as received at stream offset `offset`: nullopt when all are right, otherwise the
// stream offset of the first wrong byte.
std::optional<uint64_t> synthetic_mismatch(uint64_t offset,
                                           std::span<const uint8_t> bytes) noexcept;

struct SyntheticConfig {
    // Total bytes per reader; nullopt = endless.
    std::optional<uint64_t> length;
    // Pacing in bits per second, per reader, counted from its subscribe(); 0 = as fast as read.
    uint64_t rate_bps = 0;
    // With pacing, bytes become due in one burst per interval (the first at subscribe), like
    // video frames, and a reader that ran dry is woken at the next burst (10 ms at 8 Mbit/s:
    // 10 kB, 100 wakes a second).
    std::chrono::microseconds wake_interval{10000};
};

class SyntheticSource final : public Source {
public:
    explicit SyntheticSource(SyntheticConfig config = {});
    ~SyntheticSource() override;

    // Every reader starts at offset 0 and sees the same bytes. `wake` is only ever called for a
    // paced source, from the source's ticker thread, after read() came back empty.
    // Its bytes have no keyframes: `keyframes` is not used.
    using Source::subscribe;
    std::unique_ptr<Reader> subscribe(std::function<void()> wake, KeyframeBudget *keyframes) override;
    // {"kind":"synthetic","rate_bps":N,"length":N|null}
    nlohmann::json describe() const override;

    const SyntheticConfig &config() const { return config_; }

    class Ticker; // the pacing thread, shared with readers (which may outlive the source)

private:
    SyntheticConfig config_;
    std::shared_ptr<Ticker> ticker_; // null when unpaced
};

} // namespace pp::stream
