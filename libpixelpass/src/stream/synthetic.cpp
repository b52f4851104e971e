#include "stream/synthetic.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.hpp"

namespace pp::stream {

namespace {

using Clock = std::chrono::steady_clock;

// SplitMix64 (Steele, Lea, Flood): a bijection on 64-bit words with good avalanche, so no two
// 8-byte words of the stream repeat and an offset error of any size changes the bytes.
constexpr uint64_t splitmix64(uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

inline uint8_t word_byte(uint64_t word, unsigned index) noexcept {
    return static_cast<uint8_t>(word >> (8 * index));
}

constexpr size_t kChunkSize = 128 * 1024;

} // namespace

uint8_t synthetic_byte(uint64_t offset) noexcept {
    return word_byte(splitmix64(offset / 8), static_cast<unsigned>(offset % 8));
}

void synthetic_fill(uint64_t offset, std::span<uint8_t> out) noexcept {
    size_t i = 0;
    // Leading partial word, whole words, trailing partial word.
    while (i < out.size() && (offset + i) % 8 != 0) {
        out[i] = synthetic_byte(offset + i);
        ++i;
    }
    uint64_t word_index = (offset + i) / 8;
    for (; i + 8 <= out.size(); i += 8, ++word_index) {
        uint64_t w = splitmix64(word_index);
        if constexpr (std::endian::native == std::endian::little) {
            std::memcpy(out.data() + i, &w, 8);
        } else {
            for (unsigned b = 0; b < 8; ++b) out[i + b] = word_byte(w, b);
        }
    }
    for (; i < out.size(); ++i) out[i] = synthetic_byte(offset + i);
}

std::optional<uint64_t> synthetic_mismatch(uint64_t offset,
                                           std::span<const uint8_t> bytes) noexcept {
    uint8_t expected[4096];
    for (size_t done = 0; done < bytes.size();) {
        size_t n = std::min(sizeof expected, bytes.size() - done);
        synthetic_fill(offset + done, std::span<uint8_t>(expected, n));
        if (std::memcmp(expected, bytes.data() + done, n) != 0) {
            for (size_t i = 0; i < n; ++i)
                if (expected[i] != bytes[done + i]) return offset + done + i;
        }
        done += n;
    }
    return std::nullopt;
}

// One thread per paced source that calls each dry reader's wake when its next burst is due.
// A thread rather than a loop timer because a Source does not know which loop (if any) its
// readers live on; the wake callback is the only contact and it is thread-safe by contract.
class SyntheticSource::Ticker {
public:
    Ticker() : thread_([this] { run(); }) {}
    ~Ticker() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    Ticker(const Ticker &) = delete;
    Ticker &operator=(const Ticker &) = delete;

    // One pending wake per reader (keyed by its address); a new one replaces the old.
    void schedule(const void *key, Clock::time_point when, const std::function<void()> *wake) {
        {
            std::lock_guard lock(mutex_);
            pending_[key] = Pending{when, wake};
        }
        cv_.notify_all();
    }

    // After this returns, the reader's wake is neither pending nor running, so the reader (and
    // whatever its wake points to) can go away.
    void cancel(const void *key) {
        std::unique_lock lock(mutex_);
        pending_.erase(key);
        if (std::this_thread::get_id() == thread_.get_id()) return; // cancelled from inside wake
        cv_.wait(lock, [&] { return firing_ != key; });
    }

private:
    struct Pending {
        Clock::time_point when;
        const std::function<void()> *wake;
    };

    void run() {
        std::unique_lock lock(mutex_);
        while (!stopping_) {
            auto now = Clock::now();
            auto next = Clock::time_point::max();
            auto due = pending_.end();
            for (auto it = pending_.begin(); it != pending_.end(); ++it) {
                if (it->second.when <= now) {
                    due = it;
                    break;
                }
                next = std::min(next, it->second.when);
            }
            if (due != pending_.end()) {
                // Call outside the lock so a wake that reads (and reschedules) cannot deadlock;
                // cancel() waits on firing_ instead.
                const void *key = due->first;
                const std::function<void()> *wake = due->second.wake;
                pending_.erase(due);
                firing_ = key;
                lock.unlock();
                (*wake)();
                lock.lock();
                firing_ = nullptr;
                cv_.notify_all();
                continue;
            }
            if (next == Clock::time_point::max())
                cv_.wait(lock);
            else
                cv_.wait_until(lock, next);
        }
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    std::map<const void *, Pending> pending_;
    const void *firing_ = nullptr;
    bool stopping_ = false;
    std::thread thread_; // last: starts after the members above exist
};

namespace {

class SyntheticReader final : public Reader {
public:
    SyntheticReader(const SyntheticConfig &config, std::shared_ptr<SyntheticSource::Ticker> ticker,
                    std::function<void()> wake)
        : length_(config.length.value_or(std::numeric_limits<uint64_t>::max())),
          step_(std::chrono::duration_cast<Clock::duration>(config.wake_interval)),
          bytes_per_step_(static_cast<double>(config.rate_bps) / 8.0 *
                          std::chrono::duration<double>(config.wake_interval).count()),
          ticker_(std::move(ticker)), wake_(std::move(wake)), start_(Clock::now()) {}

    ~SyntheticReader() override {
        if (ticker_) ticker_->cancel(this);
    }

    std::span<const uint8_t> read(size_t max) override {
        if (max == 0 || read_offset_ >= length_) return {};
        uint64_t limit = std::min(length_, due(Clock::now()));
        if (read_offset_ >= limit) {
            schedule_wake();
            return {};
        }
        if (read_offset_ == generated_end_) generate();
        Chunk &chunk = chunks_.back(); // reads are sequential: the cursor is in the newest chunk
        uint64_t chunk_end = chunk.offset + chunk.size;
        size_t n = static_cast<size_t>(
            std::min<uint64_t>({max, limit - read_offset_, chunk_end - read_offset_}));
        std::span<const uint8_t> out(chunk.data.get() + (read_offset_ - chunk.offset), n);
        read_offset_ += n;
        return out;
    }

    void release(size_t n) override {
        if (n > read_offset_ - released_)
            throw Error(PP_ERR_INTERNAL, "synthetic stream: released more bytes than were read");
        released_ += n;
        while (!chunks_.empty() && chunks_.front().offset + chunks_.front().size <= released_) {
            if (spare_.size() < 2) spare_.push_back(std::move(chunks_.front().data));
            chunks_.pop_front();
        }
    }

    bool at_end() const override { return read_offset_ >= length_; }

    nlohmann::json stats() const override {
        return {{"bytes", read_offset_}, {"drops", 0}, {"unreleased", read_offset_ - released_}};
    }

private:
    struct Chunk {
        uint64_t offset;
        size_t size;
        std::unique_ptr<uint8_t[]> data;
    };

    // Bytes due by `now`. Paced, they come in steps of one interval's worth, the first at once:
    // whole bursts like video frames, so a transport sends full packets and a dry reader is woken
    // once per step rather than finding a few new bytes at every try. Unpaced: everything.
    uint64_t due(Clock::time_point now) const {
        if (bytes_per_step_ <= 0) return std::numeric_limits<uint64_t>::max();
        auto steps = static_cast<double>((now - start_) / step_) + 1;
        return static_cast<uint64_t>(steps * bytes_per_step_);
    }

    // Wakes the reader at the first step that makes read_offset_ due.
    void schedule_wake() {
        if (!ticker_ || !wake_) return;
        auto n = static_cast<int64_t>(
            std::ceil(static_cast<double>(read_offset_ + 1) / bytes_per_step_) - 1);
        n = std::max<int64_t>(n, 0);
        while (static_cast<uint64_t>(static_cast<double>(n + 1) * bytes_per_step_) <= read_offset_)
            ++n; // floating-point rounding
        ticker_->schedule(this, start_ + n * step_, &wake_);
    }

    void generate() {
        size_t size = static_cast<size_t>(std::min<uint64_t>(kChunkSize, length_ - generated_end_));
        std::unique_ptr<uint8_t[]> data;
        if (!spare_.empty()) {
            data = std::move(spare_.back());
            spare_.pop_back();
        } else {
            data = std::make_unique_for_overwrite<uint8_t[]>(kChunkSize);
        }
        synthetic_fill(generated_end_, std::span<uint8_t>(data.get(), size));
        chunks_.push_back(Chunk{generated_end_, size, std::move(data)});
        generated_end_ += size;
    }

    const uint64_t length_;
    const Clock::duration step_;
    const double bytes_per_step_;
    std::shared_ptr<SyntheticSource::Ticker> ticker_;
    std::function<void()> wake_;
    const Clock::time_point start_;

    uint64_t read_offset_ = 0;   // next byte read() hands out
    uint64_t released_ = 0;      // bytes before this are released
    uint64_t generated_end_ = 0; // bytes before this are in chunks_ (or were released)
    std::deque<Chunk> chunks_;   // unreleased generated bytes, oldest first
    std::vector<std::unique_ptr<uint8_t[]>> spare_; // recycled chunk buffers
};

} // namespace

SyntheticSource::SyntheticSource(SyntheticConfig config) : config_(config) {
    if (config_.rate_bps > 0) {
        if (config_.wake_interval <= std::chrono::microseconds::zero())
            throw Error(PP_ERR_INVALID_ARGUMENT,
                        "synthetic stream: wake interval must be positive");
        ticker_ = std::make_shared<Ticker>();
    }
}

SyntheticSource::~SyntheticSource() = default;

std::unique_ptr<Reader> SyntheticSource::subscribe(std::function<void()> wake, KeyframeBudget *) {
    return std::make_unique<SyntheticReader>(config_, ticker_, std::move(wake));
}

nlohmann::json SyntheticSource::describe() const {
    nlohmann::json length = nullptr;
    if (config_.length) length = *config_.length;
    return {{"kind", "synthetic"}, {"rate_bps", config_.rate_bps}, {"length", length}};
}

} // namespace pp::stream
