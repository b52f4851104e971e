#include "ratecontrol/ratecontrol.hpp"

#include <algorithm>
#include <cmath>

namespace pp::ratecontrol {

namespace {

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Two samples closer than this give a rate too noisy to act on.
constexpr auto kMinInterval = std::chrono::milliseconds(100);

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    size_t n = values.size();
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

} // namespace

Controller::Controller(Options options) : options_(options), target_kbps_(options.max_kbps) {
    options_.floor_kbps = std::min(options_.floor_kbps, options_.max_kbps);
}

ViewerState &Controller::state_for(uint64_t id) {
    for (auto &v : viewers_)
        if (v.id == id) return v;
    ViewerState v;
    v.id = id;
    v.capacity_kbps = options_.max_kbps;  // unknown: it does not bound the encoder yet
    viewers_.push_back(v);
    return viewers_.back();
}

void Controller::observe(ViewerState &v, const Sample &s, Clock::time_point now) {
    if (!v.seen) {
        v.seen = true;
        v.last_acked = s.acked_bytes;
        v.last_skips = s.skips;
        v.last_time = now;
        return;
    }
    auto dt = now - v.last_time;
    if (dt < kMinInterval) return;
    double dt_s = seconds(dt);
    double inst_kbps = static_cast<double>(s.acked_bytes - std::min(s.acked_bytes, v.last_acked)) * 8 / 1000 / dt_s;
    v.receive_kbps = v.receive_kbps == 0 ? inst_kbps : 0.5 * v.receive_kbps + 0.5 * inst_kbps;
    bool skipped = s.skips > v.last_skips;
    v.lag_ms = lag_ms(v, s);
    v.congested = skipped || v.lag_ms > options_.congested_backlog.count();
    if (v.congested) {
        // What the path really carried just now (the smoothed rate still remembers better times),
        // less a margin to drain the backlog, less the audio.
        double path_kbps = std::max(std::min(inst_kbps, v.receive_kbps), s.delivery_kbps);
        double carried = options_.headroom * path_kbps - options_.audio_kbps;
        v.ceiling_kbps = std::max(path_kbps - options_.audio_kbps, 1.0);
        v.below_floor = carried < options_.floor_kbps;
        v.capacity_kbps = std::min(v.capacity_kbps, std::max<double>(carried, options_.floor_kbps));
        v.drain_kbps = path_kbps * std::min(1.0, static_cast<double>(v.lag_ms) / static_cast<double>(options_.drain.count()));
        v.last_congested = now;
        ++v.congestions;
    } else {
        v.drain_kbps = 0;
    }
    // A capacity grows only once the encoder runs at it: while the encoder climbs back from a
    // drain, the path carrying less than the capacity proves nothing about more.
    if (!v.congested && now - v.last_congested >= options_.hold && target_kbps_ >= 0.95 * v.capacity_kbps) {
        bool near = v.capacity_kbps >= 0.95 * v.ceiling_kbps && v.capacity_kbps < 1.08 * v.ceiling_kbps;
        double rate = near ? options_.increase_near_ceiling_per_s : options_.increase_per_s;
        v.capacity_kbps = std::min<double>(options_.max_kbps, v.capacity_kbps * std::pow(1 + rate, dt_s));
    }
    if (!v.congested && v.capacity_kbps > options_.floor_kbps) v.below_floor = false;
    v.last_acked = s.acked_bytes;
    v.last_skips = s.skips;
    v.last_time = now;
}

// The fan-out backlog plus the time QUIC's held bytes take at the rate the path delivers, beyond
// the one round trip any sent data needs.
int64_t Controller::lag_ms(const ViewerState &v, const Sample &s) const {
    double rate_kbps = std::max(v.receive_kbps, static_cast<double>(options_.floor_kbps));
    double held_ms = static_cast<double>(s.held_bytes) * 8 / rate_kbps;
    return s.backlog_ms + std::lround(std::max(0.0, held_ms - s.min_rtt_ms));
}

unsigned Controller::choose(Clock::time_point now, double dt_s) {
    double target = target_kbps_;
    if (viewers_.empty()) {
        target = options_.max_kbps;
    } else {
        std::vector<double> caps;
        for (const auto &v : viewers_) caps.push_back(v.capacity_kbps);
        double mid = median(caps);
        double want = options_.max_kbps;
        for (auto &v : viewers_) {
            v.followed = viewers_.size() == 1 || v.capacity_kbps >= options_.outlier_ratio * mid;
            // The drain lowers the encoder, not the capacity the viewers are compared by: a
            // draining viewer is not an outlier for it.
            if (v.followed) want = std::min(want, v.capacity_kbps - v.drain_kbps);
        }
        want = std::clamp<double>(want, options_.floor_kbps, options_.max_kbps);
        if (want < target) {
            target = want;
            ++decreases_;
            last_decrease_ = now;
        } else if (want > target) {
            double allowed = target * std::pow(1 + options_.increase_per_s, dt_s);
            double next = std::min(want, allowed);
            if (std::lround(next) > std::lround(target)) ++increases_;
            target = next;
        }
    }
    return static_cast<unsigned>(std::lround(std::clamp<double>(target, options_.floor_kbps, options_.max_kbps)));
}

unsigned Controller::update(const std::vector<Sample> &samples, Clock::time_point now) {
    std::erase_if(viewers_, [&](const ViewerState &v) {
        return std::none_of(samples.begin(), samples.end(), [&](const Sample &s) { return s.id == v.id; });
    });
    for (const auto &s : samples) observe(state_for(s.id), s, now);
    double dt_s = last_update_ == Clock::time_point{} ? 0 : seconds(now - last_update_);
    last_update_ = now;
    target_kbps_ = choose(now, dt_s);
    return target_kbps_;
}

nlohmann::json Controller::stats() const {
    nlohmann::json list = nlohmann::json::array();
    for (const auto &v : viewers_)
        list.push_back({{"id", v.id},
                        {"receive_kbps", std::lround(v.receive_kbps)},
                        {"capacity_kbps", std::lround(v.capacity_kbps)},
                        {"congested", v.congested},
                        {"lag_ms", v.lag_ms},
                        {"drain_kbps", std::lround(v.drain_kbps)},
                        {"followed", v.followed},
                        {"below_floor", v.below_floor},
                        {"congestions", v.congestions}});
    return {{"target_kbps", target_kbps_}, {"floor_kbps", options_.floor_kbps}, {"max_kbps", options_.max_kbps},
            {"decreases", decreases_},     {"increases", increases_},           {"viewers", list}};
}

} // namespace pp::ratecontrol
