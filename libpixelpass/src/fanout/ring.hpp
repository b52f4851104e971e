// fanout/ring: the shared window of one encode's MPEG-TS output. The producer's thread pushes
// buffers; the ring cuts them into segments at video keyframes, remembers the newest PAT/PMT and
// the newest keyframe, and hands each reader's cursor the next segment. Segments are immutable and
// shared_ptr-owned, so every reader sends the same bytes without copying and keeps the ones it
// still needs (unacknowledged) alive after the ring has moved on. The producer never waits for a
// reader: a reader that falls behind is moved to the newest keyframe and the drop is counted.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fanout/ts.hpp"
#include "pixelpass.h"
#include "stream/keyframe_budget.hpp"

namespace pp::fanout {

using Clock = std::chrono::steady_clock;

struct Segment {
    std::vector<uint8_t> bytes;  // whole TS packets
    bool keyframe = false;       // starts with the first packet of a video random-access point
    Clock::time_point arrived;
    uint64_t offset = 0;         // position of bytes[0] in the ring's stream
    bool padding = false;        // null packets one reader was given (RingReader::pad), not the ring's
};
using SegmentPtr = std::shared_ptr<const Segment>;

struct Limits {
    // A reader further behind than either bound skips to the newest keyframe (one drop).
    std::chrono::milliseconds max_backlog{1000};
    size_t max_backlog_bytes = size_t{8} << 20;
    // Hard cap on what the ring itself holds, for a producer that stops sending keyframes.
    size_t max_ring_bytes = size_t{32} << 20;
    // A joiner starts at the newest keyframe when it is at most this old; otherwise it waits for
    // a fresh one (and the source asks the encoder for it), so it starts live, not up to a GOP late.
    std::chrono::milliseconds fresh_keyframe{250};
};

// One reader's position. Its fields are guarded by the ring's mutex.
struct Cursor {
    std::function<void()> wake;
    uint64_t next_seq = 0;          // next ring segment to hand out
    bool awaiting_keyframe = true;  // skip forward to a keyframe before handing anything out
    bool need_psi = true;           // hand out PAT+PMT before the next segment
    bool want_wake = true;          // the reader's last read came back empty
    uint64_t drops = 0;
    uint64_t dropped_bytes = 0;
};

struct CursorStats {
    uint64_t drops = 0, dropped_bytes = 0, backlog_bytes = 0;
    int64_t backlog_ms = 0;
};

class Ring {
public:
    explicit Ring(Limits limits) : limits_(limits) {}
    Ring(const Ring &) = delete;
    Ring &operator=(const Ring &) = delete;

    // Producer thread: appends TS bytes (ideally whole packets; a trailing partial packet is kept
    // for the next push). Never blocks on readers. Calls wake callbacks under the ring's lock, so
    // a wake never runs after its reader's detach() returned: wakes must not call into the ring.
    void push(std::vector<uint8_t> &&bytes);
    // The stream ended (producer stopped or failed). Readers drain what they have, then end.
    void end(pp_result code, std::string message);

    // Registers a cursor. Returns true when the caller should ask the producer for a keyframe:
    // the newest keyframe is stale, none is on its way, and `keyframes` (the joining viewer's
    // budget; null: no limit) allows forcing one. A joiner the budget refuses starts at the newest
    // keyframe the ring holds (at most a GOP old) rather than waiting for the next one.
    bool attach(Cursor &cursor, stream::KeyframeBudget *keyframes = nullptr);
    void detach(Cursor &cursor);
    // The next segment for `cursor`, or null when nothing is ready (the cursor is then woken on
    // the next data). The PAT+PMT segment precedes the first keyframe and every skip.
    SegmentPtr next(Cursor &cursor);
    // True once the ring has ended and `cursor` has been handed everything.
    bool finished(const Cursor &cursor) const;
    CursorStats stats(const Cursor &cursor) const;

    bool ended() const;
    std::pair<pp_result, std::string> end_reason() const;
    // Ring-wide counters: bytes held, segments, keyframes seen, readers.
    nlohmann::json stats() const;

private:
    uint64_t end_seq() const { return front_seq_ + segments_.size(); }
    const SegmentPtr &at(uint64_t seq) const { return segments_[seq - front_seq_]; }
    void skip_to_newest_keyframe(Cursor &c);
    // push()'s steps. Producer thread, no lock:
    SegmentPtr psi_if_changed();
    std::vector<std::shared_ptr<Segment>> cut_at_keyframes(std::vector<uint8_t> &&bytes, size_t start, size_t whole,
                                                           bool &psi_seen);
    // Under the lock:
    void append(std::vector<std::shared_ptr<Segment>> &pieces);
    void skip_slow_readers();
    void wake_readers();
    bool has_data_for(const Cursor &c) const;
    std::optional<uint64_t> keyframe_at_or_after(uint64_t seq) const;
    void evict();

    const Limits limits_;
    mutable std::mutex mutex_;
    std::deque<SegmentPtr> segments_;
    uint64_t front_seq_ = 0;
    uint64_t end_offset_ = 0;  // bytes ever pushed
    size_t bytes_ = 0;         // bytes held in segments_
    std::optional<uint64_t> newest_keyframe_;
    SegmentPtr psi_;           // PAT + PMT, for joiners and skippers
    std::vector<Cursor *> cursors_;
    bool ended_ = false;
    pp_result end_code_ = PP_OK;
    std::string end_message_;
    uint64_t keyframes_seen_ = 0;
    bool keyframe_pending_ = false;  // attach() asked for one that has not arrived yet
    uint64_t keyframes_forced_ = 0, keyframes_refused_ = 0;
    uint64_t segments_seen_ = 0;

    // Producer thread only (no lock).
    ts::ProgramTracker tracker_;
    std::vector<uint8_t> carry_;
    std::array<uint8_t, 2 * ts::kPacketSize> last_psi_{};  // to notice a changed PAT/PMT
};

} // namespace pp::fanout
