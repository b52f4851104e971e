// stream: the seam between what the host serves and how it is served. The tunnel serves any
// Source; the deterministic generator (tests, benchmarks) and the media fan-out (MPEG-TS with a
// GOP cache) are the two Sources.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include <nlohmann/json.hpp>

#include "stream/keyframe_budget.hpp"

namespace pp::stream {

// One viewer's cursor into the stream. Used only on the network loop thread.
class Reader {
public:
    virtual ~Reader() = default;
    // The next contiguous unread bytes (at most `max`), or an empty span when nothing is ready.
    // The bytes stay valid until release() covers them, so the transport can send them without
    // copying and resend them on loss.
    virtual std::span<const uint8_t> read(size_t max) = 0;
    // The oldest `n` bytes handed out by read() are no longer needed (the peer acknowledged them).
    virtual void release(size_t n) = 0;
    // True once the stream has ended and every byte has been read.
    virtual bool at_end() const = 0;
    // Per-reader counters for stats: at least "bytes" and "drops".
    virtual nlohmann::json stats() const = 0;
    // Queues about `bytes` of filler the player ignores, sent before the next stream bytes: rate
    // control offers the path more than the stream to learn whether it would carry more, without
    // the encoder going there first. False when this stream has no such filler (then nothing is
    // queued; rate control runs only over the media fan-out, whose readers have it). Its bytes
    // count in stats as "padding_bytes", those not yet released as "padding_held_bytes".
    virtual bool pad(size_t bytes) {
        (void)bytes;
        return false;
    }
};

class Source {
public:
    virtual ~Source() = default;
    // Starts a reader at a clean start point (for media: the newest keyframe, after PAT/PMT).
    // `wake` is called from any thread when data arrives after read() came back empty; it must be
    // cheap and thread-safe (the tunnel passes a uv_async_send).
    std::unique_ptr<Reader> subscribe(std::function<void()> wake) { return subscribe(std::move(wake), nullptr); }
    // The same for a viewer: `keyframes` (the viewer's budget, used only during the call) limits
    // how often its joins may force a keyframe on everybody's stream; null means no limit (the
    // host's own readers, e.g. the publisher).
    virtual std::unique_ptr<Reader> subscribe(std::function<void()> wake, KeyframeBudget *keyframes) = 0;
    // Stream parameters for GET /info (codec, size, fps, bitrate, ...).
    virtual nlohmann::json describe() const = 0;
};

} // namespace pp::stream
