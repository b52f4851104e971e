// fanout: one producer (the media pipeline) serving any number of readers through a shared ring
// of MPEG-TS segments. It implements stream::Source: the tunnel subscribes a reader per viewer.
// The producer starts with the first reader and stops a grace period after the last one left;
// a reader starts at a keyframe preceded by PAT/PMT; a slow reader skips ahead and never stalls
// the producer or the other readers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "fanout/ring.hpp"
#include "pixelpass.h"
#include "stream/source.hpp"

namespace pp::fanout {

// Where a producer delivers. Called on the producer's own threads.
class Sink {
public:
    virtual ~Sink() = default;
    // TS bytes, whole 188-byte packets. The sink takes ownership (no further copy).
    virtual void on_data(std::vector<uint8_t> &&bytes) = 0;
    // Production stopped by itself: an error (code, one human line) or the end of the stream.
    virtual void on_end(pp_result code, const std::string &message) = 0;
};

// Something that produces an MPEG-TS multiplex on demand (the media pipeline).
class Producer {
public:
    virtual ~Producer() = default;
    // Starts producing into `sink`. May block (a capture dialog); throws pp::Error on failure.
    // Called on the fan-out's control thread, never concurrently with stop().
    virtual void start(Sink &sink) = 0;
    // Stops; once it returns, `sink` is never called again. Safe to call when not started.
    virtual void stop() = 0;
    // A reader joined and wants a fresh keyframe soon. Best effort.
    virtual void request_keyframe() {}
    // Changes the video bitrate on the fly (rate control). False, with why_not filled, when the
    // producer cannot. Called on the host's loop thread; must not block on the stream.
    virtual bool set_bitrate(unsigned kbps, std::string &why_not) {
        (void)kbps;
        why_not = "this source has no adjustable bitrate";
        return false;
    }
    // Stream parameters for GET /info.
    virtual nlohmann::json describe() const = 0;
    // Live state for stats and tests (e.g. the pipeline's GStreamer state).
    virtual nlohmann::json stats() const { return nlohmann::json::object(); }
};

struct Options {
    std::chrono::milliseconds grace{5000};  // keep producing this long after the last reader
    Limits limits;
    // Told when the producer fails to start or stops on an error. Runs on the control thread or a
    // producer thread; must be cheap and thread-safe.
    std::function<void(pp_result, const std::string &)> on_failure;
};

class FanoutSource final : public stream::Source {
public:
    FanoutSource(std::unique_ptr<Producer> producer, Options options);
    // Stops the producer; readers still alive end (at_end) after draining what they hold.
    ~FanoutSource() override;
    FanoutSource(const FanoutSource &) = delete;
    FanoutSource &operator=(const FanoutSource &) = delete;

    // Thread-safe; never blocks on the producer (it is started on the control thread).
    using stream::Source::subscribe;
    std::unique_ptr<stream::Reader> subscribe(std::function<void()> wake, stream::KeyframeBudget *keyframes) override;
    nlohmann::json describe() const override;

    // Forwards to the producer (see Producer::set_bitrate).
    bool set_bitrate(unsigned kbps, std::string &why_not) { return producer_->set_bitrate(kbps, why_not); }

    // {"running", "starts", "stops", "readers", "ring": {...}, "producer": {...}}
    nlohmann::json stats() const;
    bool running() const;

    struct Control;  // shared with readers, which outlive nothing but may outlive the source

private:
    void control_loop();

    std::unique_ptr<Producer> producer_;
    std::shared_ptr<Control> control_;
    std::thread thread_;
};

} // namespace pp::fanout
