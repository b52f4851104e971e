#include "fanout/fanout.hpp"

#include <deque>
#include <optional>

#include "common/error.hpp"
#include "fanout/ts.hpp"

namespace pp::fanout {

struct FanoutSource::Control {
    explicit Control(Options o) : options(std::move(o)) {}

    const Options options;
    std::mutex mutex;
    std::condition_variable cv;
    size_t readers = 0;
    Clock::time_point idle_since = Clock::now();
    bool quit = false;
    bool start_pending = false;
    bool keyframe_wanted = false;
    bool running = false;
    uint64_t generation = 0;                    // the current run
    std::optional<uint64_t> failed_generation;  // a run that stopped by itself
    std::shared_ptr<Ring> ring;                 // the current run's ring; null when idle
    uint64_t starts = 0, stops = 0;

    void reader_gone() {
        std::lock_guard lock(mutex);
        if (--readers == 0) {
            idle_since = Clock::now();
            cv.notify_all();
        }
    }
};

namespace {

// The producer's view of one run: bytes go to that run's ring; an end is reported once.
class RunSink final : public Sink {
public:
    RunSink(std::shared_ptr<Ring> ring, FanoutSource::Control &control, uint64_t generation)
        : ring_(std::move(ring)), control_(control), generation_(generation) {}

    void on_data(std::vector<uint8_t> &&bytes) override { ring_->push(std::move(bytes)); }

    void on_end(pp_result code, const std::string &message) override {
        // The error event first: whoever sees a reader end can already know why.
        if (code != PP_OK && control_.options.on_failure) control_.options.on_failure(code, message);
        ring_->end(code, message);
        std::lock_guard lock(control_.mutex);
        if (control_.generation == generation_) control_.failed_generation = generation_;
        control_.cv.notify_all();
    }

private:
    std::shared_ptr<Ring> ring_;
    FanoutSource::Control &control_;
    uint64_t generation_;
};

// The control thread's side of the producer's runs, one at a time. Each step is entered and left
// with c.mutex held through `lock`; the producer is called with it released, so that subscribing
// and reading never wait for a producer that is starting or stopping.
class RunControl {
public:
    RunControl(FanoutSource::Control &c, Producer &producer, std::unique_lock<std::mutex> &lock)
        : c_(c), producer_(producer), lock_(lock) {}

    // Starts a run on the current ring. A start that fails ends that ring with the error, so
    // its readers learn why; the next reader asks for a new start.
    void start() {
        auto ring = c_.ring;
        uint64_t generation = ++c_.generation;
        sink_ = std::make_unique<RunSink>(ring, c_, generation);
        lock_.unlock();
        std::optional<Error> failure;
        try {
            producer_.start(*sink_);
        } catch (const Error &e) {
            failure = e;
        } catch (const std::exception &e) {
            failure = Error(PP_ERR_INTERNAL, e.what());
        }
        if (failure) {
            producer_.stop();
            if (c_.options.on_failure) c_.options.on_failure(failure->code(), failure->what());
            ring->end(failure->code(), failure->what());
        }
        lock_.lock();
        if (failure) {
            sink_.reset();
            if (c_.ring == ring) c_.ring = nullptr;
        } else {
            run_ring_ = std::move(ring);
            c_.running = true;
            ++c_.starts;
        }
    }

    void stop(const char *why) {
        auto ring = std::move(run_ring_);
        if (c_.ring == ring) c_.ring = nullptr;
        lock_.unlock();
        producer_.stop();
        if (ring) ring->end(PP_OK, why);
        lock_.lock();
        sink_.reset();
        c_.running = false;
        ++c_.stops;
    }

private:
    FanoutSource::Control &c_;
    Producer &producer_;
    std::unique_lock<std::mutex> &lock_;
    std::unique_ptr<RunSink> sink_;
    std::shared_ptr<Ring> run_ring_;  // the running producer's ring (c.ring may already be a newer one)
};

// A viewer's cursor plus the segments it was handed and has not released yet.
class RingReader final : public stream::Reader {
public:
    RingReader(std::shared_ptr<FanoutSource::Control> control, std::shared_ptr<Ring> ring,
               std::function<void()> wake)
        : control_(std::move(control)), ring_(std::move(ring)) {
        cursor_.wake = std::move(wake);
    }

    ~RingReader() override {
        if (attached_) ring_->detach(cursor_);
        control_->reader_gone();
    }

    bool attach(stream::KeyframeBudget *keyframes) {
        attached_ = true;
        return ring_->attach(cursor_, keyframes);
    }

    std::span<const uint8_t> read(size_t max) override {
        if (max == 0) return {};
        if (held_.empty() || read_off_ == held_.back()->bytes.size()) {
            auto seg = pad_pending_ ? take_padding() : ring_->next(cursor_);
            if (!seg) return {};
            held_.push_back(std::move(seg));
            read_off_ = 0;
        }
        const auto &bytes = held_.back()->bytes;
        size_t n = std::min(max, bytes.size() - read_off_);
        std::span<const uint8_t> out(bytes.data() + read_off_, n);
        read_off_ += n;
        bytes_read_ += n;
        return out;
    }

    void release(size_t n) override {
        while (n > 0) {
            if (held_.empty()) throw Error(PP_ERR_INVALID_ARGUMENT, "release() of bytes never read");
            bool is_back = held_.size() == 1;
            size_t end = is_back ? read_off_ : held_.front()->bytes.size();
            size_t take = std::min(n, end - release_off_);
            if (take == 0) throw Error(PP_ERR_INVALID_ARGUMENT, "release() of bytes never read");
            release_off_ += take;
            n -= take;
            if (release_off_ == held_.front()->bytes.size()) {
                held_.pop_front();
                release_off_ = 0;
                if (is_back) read_off_ = 0;
            }
        }
    }

    // Between two segments, so the filler never splits the stream's packets.
    bool pad(size_t bytes) override {
        pad_pending_ = std::min(kMaxPadding, pad_pending_ + bytes);
        return true;
    }

    bool at_end() const override {
        bool drained = held_.empty() || read_off_ == held_.back()->bytes.size();
        return drained && ring_->finished(cursor_);
    }

    nlohmann::json stats() const override {
        auto s = ring_->stats(cursor_);
        size_t held = 0, padding_held = 0;
        for (const auto &seg : held_) {
            size_t unreleased = seg->bytes.size() - (seg == held_.front() ? release_off_ : 0);
            held += unreleased;
            if (seg->padding) padding_held += unreleased;
        }
        nlohmann::json j = {{"bytes", bytes_read_},
                            {"drops", s.drops},
                            {"dropped_bytes", s.dropped_bytes},
                            {"backlog", s.backlog_bytes},
                            {"backlog_ms", s.backlog_ms},
                            {"held_bytes", held},
                            {"padding_bytes", padding_bytes_},
                            {"padding_held_bytes", padding_held}};
        if (ring_->ended()) {
            auto [code, message] = ring_->end_reason();
            if (code != PP_OK) j["error"] = message;
        }
        return j;
    }

private:
    // More than this is not a probe but a second stream.
    static constexpr size_t kMaxPadding = 256 * 1024;

    SegmentPtr take_padding() {
        auto seg = std::make_shared<Segment>();
        seg->bytes = ts::null_packets((pad_pending_ + ts::kPacketSize - 1) / ts::kPacketSize);
        seg->padding = true;
        padding_bytes_ += seg->bytes.size();
        pad_pending_ = 0;
        return seg;
    }

    std::shared_ptr<FanoutSource::Control> control_;
    std::shared_ptr<Ring> ring_;
    Cursor cursor_;
    bool attached_ = false;
    std::deque<SegmentPtr> held_;  // handed out, not fully released; back() is being read
    size_t release_off_ = 0;       // released bytes of held_.front()
    size_t read_off_ = 0;          // read bytes of held_.back()
    uint64_t bytes_read_ = 0;
    size_t pad_pending_ = 0;      // filler asked for and not yet handed out
    uint64_t padding_bytes_ = 0;  // filler handed out
};

} // namespace

FanoutSource::FanoutSource(std::unique_ptr<Producer> producer, Options options)
    : producer_(std::move(producer)), control_(std::make_shared<Control>(std::move(options))) {
    thread_ = std::thread([this] { control_loop(); });
}

FanoutSource::~FanoutSource() {
    {
        std::lock_guard lock(control_->mutex);
        control_->quit = true;
        control_->cv.notify_all();
    }
    thread_.join();
}

std::unique_ptr<stream::Reader> FanoutSource::subscribe(std::function<void()> wake,
                                                        stream::KeyframeBudget *keyframes) {
    auto &c = *control_;
    std::lock_guard lock(c.mutex);
    if (c.quit) throw Error(PP_ERR_STATE, "the stream source is shutting down");
    // No run, or one that just failed and is being torn down: a reader gets a fresh run.
    if (!c.ring || c.ring->ended()) {
        c.ring = std::make_shared<Ring>(c.options.limits);
        c.start_pending = true;
    }
    ++c.readers;  // the reader's destructor gives it back
    auto reader = std::make_unique<RingReader>(control_, c.ring, std::move(wake));
    if (reader->attach(keyframes)) c.keyframe_wanted = true;
    c.cv.notify_all();
    return reader;
}

void FanoutSource::control_loop() {
    auto &c = *control_;
    std::unique_lock lock(c.mutex);
    RunControl run(c, *producer_, lock);

    while (!c.quit) {
        if (c.running && c.failed_generation == c.generation) {
            // The run stopped by itself (error or end of stream): release the producer so a new
            // reader can start it again. Readers of the ended ring drain and end.
            c.failed_generation.reset();
            run.stop("the stream ended");
            continue;
        }
        if (c.start_pending) {
            c.start_pending = false;
            run.start();
            continue;
        }
        if (c.keyframe_wanted) {
            c.keyframe_wanted = false;
            if (c.running) {
                lock.unlock();
                producer_->request_keyframe();
                lock.lock();
            }
            continue;
        }
        if (c.running && c.readers == 0) {
            auto deadline = c.idle_since + c.options.grace;
            if (Clock::now() >= deadline) {
                run.stop("stopped: no readers left");
                continue;
            }
            c.cv.wait_until(lock, deadline);
            continue;
        }
        c.cv.wait(lock);
    }
    if (c.running) run.stop("the stream source was closed");
    if (c.ring) {  // a start that never happened
        c.ring->end(PP_OK, "the stream source was closed");
        c.ring = nullptr;
    }
}

nlohmann::json FanoutSource::describe() const { return producer_->describe(); }

bool FanoutSource::running() const {
    std::lock_guard lock(control_->mutex);
    return control_->running;
}

nlohmann::json FanoutSource::stats() const {
    nlohmann::json j;
    std::shared_ptr<Ring> ring;
    {
        std::lock_guard lock(control_->mutex);
        j["running"] = control_->running;
        j["starts"] = control_->starts;
        j["stops"] = control_->stops;
        j["readers"] = control_->readers;
        ring = control_->ring;
    }
    j["ring"] = ring ? ring->stats() : nlohmann::json(nullptr);
    j["producer"] = producer_->stats();
    return j;
}

} // namespace pp::fanout
