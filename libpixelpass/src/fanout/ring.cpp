#include "fanout/ring.hpp"

#include <algorithm>
#include <cstring>

namespace pp::fanout {

namespace {

// PAT/PMT packets repeat ten times a second with a new continuity counter; only a change in the
// tables themselves needs a new PSI segment.
void mask_continuity(std::span<uint8_t> packet) { packet[3] &= 0xf0; }

} // namespace

void Ring::push(std::vector<uint8_t> &&in) {
    std::vector<uint8_t> bytes;
    if (!carry_.empty()) {
        bytes = std::move(carry_);
        carry_.clear();
        bytes.insert(bytes.end(), in.begin(), in.end());
    } else {
        bytes = std::move(in);
    }
    // Resynchronise on a sync byte if the producer ever handed us garbage in front.
    size_t start = 0;
    while (start < bytes.size() && bytes[start] != ts::kSyncByte) ++start;
    size_t whole = start + (bytes.size() - start) / ts::kPacketSize * ts::kPacketSize;
    if (whole < bytes.size()) carry_.assign(bytes.begin() + static_cast<ptrdiff_t>(whole), bytes.end());
    if (whole == start) return;

    // Everything but the bookkeeping happens outside the lock.
    bool psi_seen = false;
    auto pieces = cut_at_keyframes(std::move(bytes), start, whole, psi_seen);
    SegmentPtr new_psi = psi_seen ? psi_if_changed() : nullptr;

    std::lock_guard lock(mutex_);
    if (ended_) return;
    if (new_psi) psi_ = std::move(new_psi);
    append(pieces);
    skip_slow_readers();
    evict();
    wake_readers();
}

// Segments [start, cut0), [cut0, cut1), ... with a cut before every video keyframe, so that a
// segment starts there. The common case (no keyframe inside, no resync) keeps the producer's
// vector as is: one copy in total, made by the producer.
std::vector<std::shared_ptr<Segment>> Ring::cut_at_keyframes(std::vector<uint8_t> &&bytes, size_t start,
                                                             size_t whole, bool &psi_seen) {
    std::vector<size_t> cuts;  // offsets where a keyframe segment begins
    for (size_t off = start; off < whole; off += ts::kPacketSize) {
        auto kind = tracker_.feed(std::span(bytes).subspan(off, ts::kPacketSize));
        if (kind == ts::Kind::video_keyframe) cuts.push_back(off);
        if (kind == ts::Kind::pat || kind == ts::Kind::pmt) psi_seen = true;
    }
    auto now = Clock::now();
    std::vector<size_t> bounds{start};
    for (size_t c : cuts)
        if (c != bounds.back()) bounds.push_back(c);
    bounds.push_back(whole);
    std::vector<std::shared_ptr<Segment>> pieces;
    for (size_t i = 0; i + 1 < bounds.size(); ++i) {
        auto seg = std::make_shared<Segment>();
        if (bounds.size() == 2 && start == 0 && whole == bytes.size()) {
            seg->bytes = std::move(bytes);
        } else {
            seg->bytes.assign(bytes.begin() + static_cast<ptrdiff_t>(bounds[i]),
                              bytes.begin() + static_cast<ptrdiff_t>(bounds[i + 1]));
        }
        seg->keyframe = std::find(cuts.begin(), cuts.end(), bounds[i]) != cuts.end();
        seg->arrived = now;
        pieces.push_back(std::move(seg));
    }
    return pieces;
}

// A PAT + PMT segment when the tracker's tables changed (continuity counters aside) since the
// last one: joiners and skippers get it first. Called when the chunk carried a PAT or PMT.
SegmentPtr Ring::psi_if_changed() {
    if (tracker_.pat().empty() || tracker_.pmt().empty()) return nullptr;
    std::array<uint8_t, 2 * ts::kPacketSize> psi{};
    std::memcpy(psi.data(), tracker_.pat().data(), ts::kPacketSize);
    std::memcpy(psi.data() + ts::kPacketSize, tracker_.pmt().data(), ts::kPacketSize);
    auto masked = psi;
    mask_continuity(std::span(masked).first(ts::kPacketSize));
    mask_continuity(std::span(masked).subspan(ts::kPacketSize, ts::kPacketSize));
    if (masked == last_psi_) return nullptr;
    last_psi_ = masked;
    auto seg = std::make_shared<Segment>();
    seg->bytes.assign(psi.begin(), psi.end());
    seg->arrived = Clock::now();
    return seg;
}

void Ring::append(std::vector<std::shared_ptr<Segment>> &pieces) {
    for (auto &seg : pieces) {
        seg->offset = end_offset_;
        end_offset_ += seg->bytes.size();
        bytes_ += seg->bytes.size();
        if (seg->keyframe) {
            newest_keyframe_ = end_seq();
            ++keyframes_seen_;
            keyframe_pending_ = false;
        }
        segments_.push_back(std::move(seg));
        ++segments_seen_;
    }
}

// Slow readers: past either bound, and a newer keyframe exists → jump there.
void Ring::skip_slow_readers() {
    const auto &newest = segments_.back();
    for (Cursor *c : cursors_) {
        if (c->awaiting_keyframe) continue;
        if (c->next_seq < front_seq_) {
            skip_to_newest_keyframe(*c);
            continue;
        }
        if (c->next_seq >= end_seq() || !newest_keyframe_ || *newest_keyframe_ <= c->next_seq) continue;
        const auto &seg = at(c->next_seq);
        uint64_t backlog_bytes = end_offset_ - seg->offset;
        auto backlog_time = newest->arrived - seg->arrived;
        if (backlog_bytes > limits_.max_backlog_bytes || backlog_time > limits_.max_backlog)
            skip_to_newest_keyframe(*c);
    }
}

void Ring::wake_readers() {
    for (Cursor *c : cursors_) {
        if (c->want_wake && has_data_for(*c)) {
            c->want_wake = false;
            if (c->wake) c->wake();
        }
    }
}

void Ring::skip_to_newest_keyframe(Cursor &c) {
    uint64_t from_offset = c.next_seq >= front_seq_ && c.next_seq < end_seq() ? at(c.next_seq)->offset
                           : segments_.empty()                                 ? end_offset_
                                                                               : segments_.front()->offset;
    ++c.drops;
    c.need_psi = true;
    if (newest_keyframe_ && *newest_keyframe_ >= front_seq_) {
        c.dropped_bytes += at(*newest_keyframe_)->offset - from_offset;
        c.next_seq = *newest_keyframe_;
        c.awaiting_keyframe = false;
    } else {
        // The hard cap evicted even the keyframe: wait for the next one.
        c.dropped_bytes += end_offset_ - from_offset;
        c.next_seq = end_seq();
        c.awaiting_keyframe = true;
    }
}

void Ring::evict() {
    // Keep everything from the newest keyframe (joiners start there) and everything a
    // non-skipped reader has yet to read; the slow-reader rule bounds the latter.
    uint64_t keep_from = newest_keyframe_ ? *newest_keyframe_ : end_seq();
    for (const Cursor *c : cursors_)
        if (!c->awaiting_keyframe) keep_from = std::min(keep_from, c->next_seq);
    while (!segments_.empty() &&
           (front_seq_ < keep_from || (bytes_ > limits_.max_ring_bytes && segments_.size() > 1))) {
        bytes_ -= segments_.front()->bytes.size();
        segments_.pop_front();
        ++front_seq_;
    }
    // Cursors the hard cap overtook are moved now rather than on their next read.
    for (Cursor *c : cursors_)
        if (!c->awaiting_keyframe && c->next_seq < front_seq_) skip_to_newest_keyframe(*c);
}

std::optional<uint64_t> Ring::keyframe_at_or_after(uint64_t seq) const {
    if (!newest_keyframe_ || *newest_keyframe_ < seq) return std::nullopt;
    for (uint64_t s = std::max(seq, front_seq_); s < end_seq(); ++s)
        if (at(s)->keyframe) return s;
    return std::nullopt;
}

bool Ring::has_data_for(const Cursor &c) const {
    if (c.awaiting_keyframe) return keyframe_at_or_after(c.next_seq).has_value();
    return c.next_seq < end_seq() || (c.need_psi && psi_);
}

void Ring::end(pp_result code, std::string message) {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    ended_ = true;
    end_code_ = code;
    end_message_ = std::move(message);
    for (Cursor *c : cursors_) {
        if (c->want_wake) {
            c->want_wake = false;
            if (c->wake) c->wake();
        }
    }
}

bool Ring::attach(Cursor &c, stream::KeyframeBudget *keyframes) {
    std::lock_guard lock(mutex_);
    c.awaiting_keyframe = true;
    c.need_psi = true;
    c.want_wake = true;
    cursors_.push_back(&c);
    bool held = newest_keyframe_ && *newest_keyframe_ >= front_seq_;
    if (held && Clock::now() - at(*newest_keyframe_)->arrived <= limits_.fresh_keyframe) {
        c.next_seq = *newest_keyframe_;
        return false;
    }
    c.next_seq = end_seq();
    // Before the first output the encoder's first frame is a keyframe anyway, and one asked for
    // by an earlier joiner is on its way: this joiner waits for it with no new request.
    if (end_offset_ == 0 || keyframe_pending_) return false;
    if (!keyframes || keyframes->try_force()) {
        keyframe_pending_ = true;
        ++keyframes_forced_;
        return true;
    }
    // Refused: the viewer forced one moments ago. Starting at the held keyframe serves it at once
    // (mpv's second request must not wait a GOP); the data is a little late, and the player's
    // live-edge catch-up or the slow-reader rule brings it back to live.
    ++keyframes_refused_;
    if (held) c.next_seq = *newest_keyframe_;
    return false;
}

void Ring::detach(Cursor &c) {
    std::lock_guard lock(mutex_);
    std::erase(cursors_, &c);
    evict();
}

SegmentPtr Ring::next(Cursor &c) {
    std::lock_guard lock(mutex_);
    if (c.next_seq < front_seq_) {
        if (c.awaiting_keyframe)
            c.next_seq = front_seq_;
        else
            skip_to_newest_keyframe(c);
    }
    if (c.awaiting_keyframe) {
        auto kf = keyframe_at_or_after(c.next_seq);
        if (!kf) {
            c.next_seq = end_seq();
            c.want_wake = true;
            return nullptr;
        }
        c.next_seq = *kf;
        c.awaiting_keyframe = false;
    }
    if (c.need_psi && psi_) {
        c.need_psi = false;
        return psi_;
    }
    if (c.next_seq >= end_seq()) {
        c.want_wake = true;
        return nullptr;
    }
    c.need_psi = false;
    return at(c.next_seq++);
}

bool Ring::finished(const Cursor &c) const {
    std::lock_guard lock(mutex_);
    return ended_ && !has_data_for(c);
}

CursorStats Ring::stats(const Cursor &c) const {
    std::lock_guard lock(mutex_);
    CursorStats s;
    s.drops = c.drops;
    s.dropped_bytes = c.dropped_bytes;
    if (!c.awaiting_keyframe && c.next_seq >= front_seq_ && c.next_seq < end_seq()) {
        const auto &seg = at(c.next_seq);
        s.backlog_bytes = end_offset_ - seg->offset;
        s.backlog_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           segments_.back()->arrived - seg->arrived)
                           .count();
    }
    return s;
}

bool Ring::ended() const {
    std::lock_guard lock(mutex_);
    return ended_;
}

std::pair<pp_result, std::string> Ring::end_reason() const {
    std::lock_guard lock(mutex_);
    return {end_code_, end_message_};
}

nlohmann::json Ring::stats() const {
    std::lock_guard lock(mutex_);
    return {{"bytes_held", bytes_},
            {"segments_held", segments_.size()},
            {"bytes_total", end_offset_},
            {"segments_total", segments_seen_},
            {"keyframes", keyframes_seen_},
            {"keyframes_forced", keyframes_forced_},
            {"keyframes_refused", keyframes_refused_},
            {"readers", cursors_.size()},
            {"ended", ended_}};
}

} // namespace pp::fanout
