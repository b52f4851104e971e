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
        v.last_lost = s.lost_packets;
        v.last_time = now;
        v.joined = now;
        v.lag_ms = s.backlog_ms;  // QUIC's share needs a receive rate, known from the next tick
        v.acked_history[v.acked_next++ % v.acked_history.size()] = {now, s.acked_bytes};
        return;
    }
    auto dt = now - v.last_time;
    if (dt < kMinInterval) return;
    double dt_s = seconds(dt);
    double inst_kbps = static_cast<double>(s.acked_bytes - std::min(s.acked_bytes, v.last_acked)) * 8 / 1000 / dt_s;
    v.receive_kbps = v.receive_kbps == 0 ? inst_kbps : 0.5 * v.receive_kbps + 0.5 * inst_kbps;
    // Not just after a congestion or back-off: the queue draining then is acknowledged in a burst
    // (2.2 Mbit/s through a 2 Mbit/s path) that says nothing about the path.
    if (now - v.last_congested >= options_.hold)
        v.receive_history[v.receive_next++ % v.receive_history.size()] = v.receive_kbps;
    // Unsmoothed: the smoothed rate takes 1.5 s to forget a wider path.
    v.last_receives[v.last_receive_next++ % v.last_receives.size()] = inst_kbps;
    v.acked_history[v.acked_next++ % v.acked_history.size()] = {now, s.acked_bytes};
    bool skipped = s.skips > v.last_skips;
    bool lost_now = s.lost_packets > v.last_lost;
    v.recovering = lost_now || v.lost_last_tick;
    v.lost_last_tick = lost_now;
    v.last_lag_ms = v.lag_ms;
    v.lag_ms = lag_ms(v, s);
    v.lag_rises = v.lag_ms > v.last_lag_ms ? v.lag_rises + 1 : 0;
    // Caught up, out of grace, or not catching up at all: a lag that rose for a second is a path
    // narrower than the stream (one that narrowed just after the join is followed within ~1.5 s).
    if (v.catching_up && (v.lag_ms <= options_.congested_backlog.count() || now - v.joined >= options_.join_grace ||
                          v.lag_rises >= 2))
        v.catching_up = false;
    v.congested = !v.catching_up && (skipped || v.lag_ms > congested_threshold_ms(v, s));
    // Rising for a second, or by the whole threshold in one tick (a fast probe leaves no time for
    // two; half of it fired on the retransmission noise of a 2 % lossy path).
    int64_t queue_threshold = queue_threshold_ms(v, s);
    v.queue_rising = !v.catching_up && !v.congested && v.lag_ms >= queue_threshold &&
                     (v.lag_rises >= 2 || v.lag_ms - v.last_lag_ms >= queue_threshold);
    if (v.congested)
        on_congested(v, s, inst_kbps, now);
    else
        v.drain_kbps = 0;
    if (v.queue_rising) on_queue_forming(v, dt_s, now);
    grow(v, s, dt_s, now);
    if (!v.congested && v.capacity_kbps > options_.floor_kbps) v.below_floor = false;
    v.last_acked = s.acked_bytes;
    v.last_skips = s.skips;
    v.last_lost = s.lost_packets;
    v.last_time = now;
}

// A lost packet holds the stream's bytes behind it until its retransmission is acknowledged: about
// a round trip to notice the loss and one more to repair it.
int64_t Controller::recovery_allowance_ms(const ViewerState &v, const Sample &s) const {
    return v.recovering ? 2 * std::lround(s.min_rtt_ms) : 0;
}

int64_t Controller::congested_threshold_ms(const ViewerState &v, const Sample &s) const {
    return options_.congested_backlog.count() + recovery_allowance_ms(v, s);
}

int64_t Controller::queue_threshold_ms(const ViewerState &v, const Sample &s) const {
    return options_.queue_forming.count() + std::lround(s.min_rtt_ms) + recovery_allowance_ms(v, s);
}

double ViewerState::recent_receive_kbps() const {
    return *std::max_element(receive_history.begin(), receive_history.end());
}

double ViewerState::last_receives_kbps() const {
    return *std::max_element(last_receives.begin(), last_receives.end());
}

double ViewerState::delivered_kbps() const {
    if (acked_next < 2) return 0;
    size_t n = acked_history.size();
    const auto &newest = acked_history[(acked_next - 1) % n];
    const auto &oldest = acked_history[acked_next >= n ? acked_next % n : 0];
    double span_s = seconds(newest.first - oldest.first);
    double window_kbps = static_cast<double>(newest.second - std::min(newest.second, oldest.second)) * 8 / 1000 / span_s;
    return std::min(window_kbps, last_receives_kbps());
}

// What the path really carried just now (the smoothed rate still remembers better times), less a
// margin to drain the backlog, less the audio; the encoder goes a further share lower while the lag lasts.
// Acknowledgements stall on a congested path (retransmissions), so the transport's delivery-rate
// estimate counts too, but only up to the best rate the viewer received in the last seconds: behind
// a token bucket it measures the bucket's bursts (3.4 Mbit/s at a 2 Mbit/s tbf), not the path.
// "The last seconds" are both those before the congestion (a hold keeps the queue's draining burst
// out of them) and the last 1.5 s whatever happened: the history before it remembers the wider path
// for as long as the congestion lasts, and with it the capacity stayed at 0.85 × the bucket's
// bursts (2.8 Mbit/s on a 2 Mbit/s path) for 5 s, seen in a netsim soak.
void Controller::on_congested(ViewerState &v, const Sample &s, double inst_kbps, Clock::time_point now) {
    double acked_kbps = std::min(inst_kbps, v.receive_kbps);
    double received_kbps = std::min(v.recent_receive_kbps(), v.last_receives_kbps());
    double path_kbps = std::max(acked_kbps, std::min(s.delivery_kbps, received_kbps));
    double carried = options_.headroom * path_kbps - options_.audio_kbps;
    v.ceiling_kbps = std::max(path_kbps - options_.audio_kbps, 1.0);
    v.below_floor = carried < options_.floor_kbps;
    v.capacity_kbps = std::min(v.capacity_kbps, std::max<double>(carried, options_.floor_kbps));
    double share = static_cast<double>(v.lag_ms) / static_cast<double>(options_.drain.count());
    v.drain_kbps = path_kbps * std::min(options_.drain_max_share, share);
    v.last_congested = now;
    ++v.congestions;
}

// The lag grew by `growth` seconds per second: the stream runs (1 + growth) × what the path carries.
void Controller::on_queue_forming(ViewerState &v, double dt_s, Clock::time_point now) {
    double growth = std::clamp(static_cast<double>(v.lag_ms - v.last_lag_ms) / 1000 / dt_s, 0.02, 1.0);
    double stream_kbps = static_cast<double>(target_kbps_) + options_.audio_kbps;
    // The lag's growth measures against the encoder's target, which the encoder reaches only over a
    // second or so; what the saturated path delivers bounds the estimate from the other side.
    double fits = std::min(stream_kbps / (1 + growth), v.recent_receive_kbps()) - options_.audio_kbps;
    fits = std::max(fits, 1.0);
    v.ceiling_kbps = fits;
    v.capacity_kbps = std::min(v.capacity_kbps, std::max<double>(options_.backoff_headroom * fits, options_.floor_kbps));
    v.last_congested = now;
    v.lag_rises = 0;
    ++v.backoffs;
}

// A capacity grows only once the encoder runs at it (while the encoder climbs back from a drain,
// the path carrying less than the capacity proves nothing about more) and no queue is left.
void Controller::grow(ViewerState &v, const Sample &s, double dt_s, Clock::time_point now) {
    if (v.congested || now - v.last_congested < options_.hold || target_kbps_ < 0.95 * v.capacity_kbps) return;
    if (v.lag_ms >= queue_threshold_ms(v, s)) return;
    // Near the rate the path last congested or queued at, and the viewer has not received more since:
    // probe slowly. Once it receives more (the path widened), the usual pace finds the rest. (The
    // encoder's output trails its target by a second, so a capacity bound alone let the probe run
    // on at the usual pace above a path that had not widened.)
    bool at_ceiling = v.capacity_kbps >= 0.95 * v.ceiling_kbps;
    bool path_widened = v.recent_receive_kbps() > 1.08 * (v.ceiling_kbps + options_.audio_kbps);
    bool near = at_ceiling && !path_widened;
    double rate = near ? options_.increase_near_ceiling_per_s : options_.increase_per_s;
    v.capacity_kbps = std::min<double>(options_.max_kbps, v.capacity_kbps * std::pow(1 + rate, dt_s));
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
                        {"delivered_kbps", std::lround(v.delivered_kbps())},
                        {"capacity_kbps", std::lround(v.capacity_kbps)},
                        {"ceiling_kbps", std::lround(v.ceiling_kbps)},
                        {"congested", v.congested},
                        {"catching_up", v.catching_up},
                        {"queue_rising", v.queue_rising},
                        {"recovering", v.recovering},
                        {"backoffs", v.backoffs},
                        {"lag_ms", v.lag_ms},
                        {"drain_kbps", std::lround(v.drain_kbps)},
                        {"followed", v.followed},
                        {"below_floor", v.below_floor},
                        {"congestions", v.congestions}});
    return {{"target_kbps", target_kbps_}, {"floor_kbps", options_.floor_kbps}, {"max_kbps", options_.max_kbps},
            {"decreases", decreases_},     {"increases", increases_},           {"viewers", list}};
}

} // namespace pp::ratecontrol
