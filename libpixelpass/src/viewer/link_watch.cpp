#include "viewer/link_watch.hpp"

#include <span>

namespace pp::viewer {

namespace {

// A report is a few hundred bytes; anything longer is not one.
constexpr size_t kMaxReport = 4096;

} // namespace

struct LinkWatch::Handler : http3::ResponseHandler {
    LinkWatch *owner;  // null once the watch is gone: the session may outlive it
    int status = 0;
    std::string body;

    explicit Handler(LinkWatch *o) : owner(o) {}
    void on_headers(int s, const std::vector<http3::Header> &) override { status = s; }
    void on_data(int64_t stream_id, std::span<const uint8_t> data) override {
        if (body.size() <= kMaxReport) body.append(reinterpret_cast<const char *>(data.data()), data.size());
        if (owner)
            if (auto *s = owner->session_()) s->consume(stream_id, data.size());
    }
    void on_end() override {
        // answered() drops pending_, which may be the last reference to this handler: it gets
        // copies, and nothing here runs after it.
        if (owner) owner->answered(status, body);
    }
    void on_error(uint64_t, const std::string &) override {
        // The stream or the connection was cut: ask again at the next tick.
        if (owner) owner->pending_.reset();
    }
};

LinkWatch::LinkWatch(net::Loop &loop, SessionGetter session, std::vector<http3::Header> auth, NoticeSink notices)
    : session_(std::move(session)), auth_(std::move(auth)), notices_(std::move(notices)) {
    timer_ = std::make_unique<net::Timer>(loop, [this] { tick(); });
    timer_->arm_at(net::monotonic_ns() + kPollNs);
}

LinkWatch::~LinkWatch() {
    if (pending_) pending_->owner = nullptr;
}

void LinkWatch::tick() {
    if (!supported_) return;
    timer_->arm_at(net::monotonic_ns() + kPollNs);
    http3::ClientSession *s = session_();
    // Only while a stream runs: the verdict is about carrying one, and an idle viewer sends nothing.
    if (!s || pending_ || s->active_requests() == 0) return;
    auto h = std::make_shared<Handler>(this);
    try {
        s->request("GET", "/link", auth_, h);
        pending_ = std::move(h);
    } catch (const std::exception &) {
        // No stream credit right now: the next tick asks again.
    }
}

void LinkWatch::answered(int status, std::string body) {
    pending_.reset();
    std::optional<ratecontrol::LinkReport> report;
    if (status == 200 && body.size() <= kMaxReport) report = ratecontrol::parse_link_report(body);
    if (!report) {
        ++failures_;
        // 404: a host from before /link. Any other answer may be passing: ask again.
        if (status == 404) supported_ = false;
        return;
    }
    if (auto notice = verdict_.update(*report)) notices_(*notice, stats());
}

nlohmann::json LinkWatch::stats() const {
    nlohmann::json j = verdict_.stats();
    j["supported"] = supported_;
    if (failures_) j["failures"] = failures_;
    return j;
}

} // namespace pp::viewer
