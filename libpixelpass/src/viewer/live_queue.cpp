#include "viewer/live_queue.hpp"

#include <algorithm>

namespace pp::viewer {

namespace ts = fanout::ts;

namespace {

constexpr uint64_t kPtsMask = (uint64_t{1} << 33) - 1; // PTS are 33 bits and wrap (every 26.5 h)
// A written prefix is cut off the buffer once it is this big and most of the buffer.
constexpr size_t kCompactAt = 256 * 1024;

} // namespace

LiveQueue::LiveQueue(LiveQueueOptions options) : options_(options) {}

void LiveQueue::push(std::span<const uint8_t> bytes) {
    if (mode_ == Mode::unknown && !bytes.empty())
        mode_ = bytes[0] == ts::kSyncByte ? Mode::ts : Mode::passthrough;
    if (mode_ == Mode::passthrough) {
        buf_.insert(buf_.end(), bytes.begin(), bytes.end());
        return;
    }
    size_t i = 0;
    if (!partial_.empty()) {
        size_t take = std::min(ts::kPacketSize - partial_.size(), bytes.size());
        partial_.insert(partial_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(take));
        i = take;
        if (partial_.size() < ts::kPacketSize) return;
        std::vector<uint8_t> packet;
        packet.swap(partial_);
        push_packet(packet);
    }
    for (; i + ts::kPacketSize <= bytes.size() && mode_ == Mode::ts; i += ts::kPacketSize)
        push_packet(bytes.subspan(i, ts::kPacketSize));
    if (mode_ == Mode::passthrough)
        buf_.insert(buf_.end(), bytes.begin() + static_cast<ptrdiff_t>(i), bytes.end());
    else
        partial_.assign(bytes.begin() + static_cast<ptrdiff_t>(i), bytes.end());
}

void LiveQueue::push_packet(std::span<const uint8_t> packet) {
    if (packet[0] != ts::kSyncByte) {
        to_passthrough();
        buf_.insert(buf_.end(), packet.begin(), packet.end());
        return;
    }
    ts::Kind kind = tracker_.feed(packet);
    if (awaiting_keyframe_) {
        if (kind != ts::Kind::video_keyframe) {
            skipped_bytes_ += packet.size();
            return;
        }
        awaiting_keyframe_ = false;
        buf_.insert(buf_.end(), tracker_.pat().begin(), tracker_.pat().end());
        buf_.insert(buf_.end(), tracker_.pmt().begin(), tracker_.pmt().end());
    }
    int64_t position = base_ + static_cast<int64_t>(buf_.size());
    buf_.insert(buf_.end(), packet.begin(), packet.end());
    if (kind == ts::Kind::video_start || kind == ts::Kind::video_keyframe) {
        auto parsed = ts::parse_packet(packet);
        auto pts = parsed ? ts::pes_pts(parsed->payload) : std::nullopt;
        if (pts) {
            frames_.push_back({position, *pts});
            newest_pts_ = *pts;
            if (kind == ts::Kind::video_keyframe) keyframe_ = Frame{position, *pts};
            if (lag() > options_.max_lag) skip_to_newest_keyframe();
        }
    }
    if (size() > options_.max_bytes) drop_all_and_wait();
}

void LiveQueue::to_passthrough() {
    mode_ = Mode::passthrough;
    frames_.clear();
    keyframe_.reset();
    awaiting_keyframe_ = false;
}

// Keeps the newest keyframe and what follows, behind the program tables a decoder needs first.
void LiveQueue::skip_to_newest_keyframe() {
    // Nothing to gain unless an older frame is still queued ahead of the keyframe (right after a
    // skip the queue starts with the tables and the keyframe).
    if (!keyframe_ || frames_.empty() || frames_.front().position >= keyframe_->position) return;
    size_t from = static_cast<size_t>(keyframe_->position - base_);
    skipped_bytes_ += from - head_;
    std::vector<uint8_t> next;
    next.reserve(2 * ts::kPacketSize + buf_.size() - from);
    next.insert(next.end(), tracker_.pat().begin(), tracker_.pat().end());
    next.insert(next.end(), tracker_.pmt().begin(), tracker_.pmt().end());
    base_ = keyframe_->position - static_cast<int64_t>(next.size());
    next.insert(next.end(), buf_.begin() + static_cast<ptrdiff_t>(from), buf_.end());
    buf_.swap(next);
    head_ = 0;
    while (!frames_.empty() && frames_.front().position < keyframe_->position) frames_.pop_front();
    ++skips_;
}

void LiveQueue::drop_all_and_wait() {
    skipped_bytes_ += size();
    base_ += static_cast<int64_t>(buf_.size());
    buf_.clear();
    head_ = 0;
    frames_.clear();
    keyframe_.reset();
    awaiting_keyframe_ = true;
    ++skips_;
}

std::span<const uint8_t> LiveQueue::front() const {
    return {buf_.data() + head_, size()};
}

void LiveQueue::pop(size_t n) {
    head_ += std::min(n, size());
    while (!frames_.empty() && frames_.front().position < head_position()) frames_.pop_front();
    compact();
}

void LiveQueue::compact() {
    if (head_ == buf_.size()) {
        base_ += static_cast<int64_t>(head_);
        buf_.clear();
        head_ = 0;
    } else if (head_ >= kCompactAt && head_ * 2 >= buf_.size()) {
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<ptrdiff_t>(head_));
        base_ += static_cast<int64_t>(head_);
        head_ = 0;
    }
}

std::chrono::milliseconds LiveQueue::lag() const {
    if (frames_.empty()) return std::chrono::milliseconds(0);
    uint64_t ticks = (newest_pts_ - frames_.front().pts) & kPtsMask;
    if (ticks > kPtsMask / 2) return std::chrono::milliseconds(0); // reordered (B-frames): not behind
    return std::chrono::milliseconds(ticks / 90);
}

} // namespace pp::viewer
