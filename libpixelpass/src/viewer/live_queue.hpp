// viewer/live_queue: what the viewer holds for one player of a live MPEG-TS stream, bounded in
// time instead of paced by the player. Pausing the upstream when a player stops reading (the
// backpressure used for other bodies) parks the stream in the QUIC receive window and the host's
// fan-out: a player that resumes after 5 s then plays 5 s of old stream. This queue keeps taking
// the stream and, once the player is more than `max_lag` behind the newest frame (by the video
// PTS), drops what the player has not taken up to the newest keyframe, the PAT and PMT first (as
// the host's fan-out does for a slow viewer); each such jump is one skip. A queue that passes
// `max_bytes` without a keyframe to jump to (no PTS, a long GOP) drops everything and waits for
// the next keyframe. Bytes that do not start with a TS sync byte, or lose it, pass through
// unchanged and unbounded: the caller paces those with backpressure (is_ts()).
// Pure data structure: no sockets, no threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "fanout/ts.hpp"

namespace pp::viewer {

struct LiveQueueOptions {
    // Stream a player may be behind the newest frame the viewer has before it skips.
    std::chrono::milliseconds max_lag{1000};
    // Whatever the timestamps say (no keyframe to jump to for long, no PTS at all).
    size_t max_bytes = 16 * 1024 * 1024;
};

class LiveQueue {
public:
    explicit LiveQueue(LiveQueueOptions options = {});

    // Appends stream bytes, split anywhere; may skip (see above).
    void push(std::span<const uint8_t> bytes);
    // The bytes to hand to the player next (whole TS packets in TS mode) and, once written, how
    // many of them were taken.
    std::span<const uint8_t> front() const;
    void pop(size_t n);
    size_t size() const { return buf_.size() - head_; }

    // False once the bytes turned out not to be MPEG-TS (first byte, or a later packet, without
    // the sync byte): everything since passes through, and nothing is dropped.
    bool is_ts() const { return mode_ != Mode::passthrough; }
    // How far the next frame to hand out is behind the newest frame pushed (video PTS).
    std::chrono::milliseconds lag() const;
    uint64_t skips() const { return skips_; }
    uint64_t skipped_bytes() const { return skipped_bytes_; }

private:
    enum class Mode { unknown, ts, passthrough };
    struct Frame {
        int64_t position; // stream position of its first packet (see base_)
        uint64_t pts;     // 90 kHz
    };

    void push_packet(std::span<const uint8_t> packet);
    void to_passthrough();
    void skip_to_newest_keyframe();
    void drop_all_and_wait();
    void compact();
    int64_t head_position() const { return base_ + static_cast<int64_t>(head_); }

    const LiveQueueOptions options_;
    Mode mode_ = Mode::unknown;
    fanout::ts::ProgramTracker tracker_;
    std::vector<uint8_t> buf_;     // [head_, end) is queued
    size_t head_ = 0;
    int64_t base_ = 0;             // stream position of buf_[0] (positions only compare)
    std::vector<uint8_t> partial_; // the start of a packet not complete yet
    std::deque<Frame> frames_;     // video frames starting in the queue, oldest first
    std::optional<Frame> keyframe_; // the newest keyframe in the queue
    uint64_t newest_pts_ = 0;
    bool awaiting_keyframe_ = false;
    uint64_t skips_ = 0, skipped_bytes_ = 0;
};

} // namespace pp::viewer
