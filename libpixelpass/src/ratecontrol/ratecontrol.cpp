#include "ratecontrol/ratecontrol.hpp"

#include <algorithm>
#include <cmath>

namespace pp::ratecontrol {

namespace {

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Two samples closer than this give a rate too noisy to act on.
constexpr auto kMinInterval = std::chrono::milliseconds(100);

// A probe passes only if the stream's lag grew less than this meanwhile (jitter, not a queue).
constexpr int64_t kProbeLagSlackMs = 20;

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
    v.pad_bytes = 0;
    if (!v.seen) {
        v.seen = true;
        v.last_acked = s.acked_bytes;
        v.last_skips = s.skips;
        v.last_lost = s.lost_packets;
        v.last_padding_acked = s.padding_bytes - std::min(s.padding_bytes, s.padding_held_bytes);
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
    uint64_t padding_acked = s.padding_bytes - std::min(s.padding_bytes, s.padding_held_bytes);
    double filler_kbps = static_cast<double>(padding_acked - std::min(padding_acked, v.last_padding_acked)) * 8 / 1000 / dt_s;
    double stream_inst_kbps = std::max(0.0, inst_kbps - filler_kbps);
    v.stream_kbps = v.stream_kbps == 0 ? stream_inst_kbps : 0.5 * v.stream_kbps + 0.5 * stream_inst_kbps;
    v.last_padding_acked = padding_acked;
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
    // Past the threshold, rising for a second, and past half of it the tick before: a queue persists. A
    // keyframe (several times the other frames' size) raises the lag by up to ~100 ms for one tick
    // on a 2 Mbit/s path; counted, each one backed the encoder off by a fifth, down to the floor
    // within 10 s (netsim, session 12). A retransmission's spike is one tick long too. The stream
    // waiting behind a probe's filler is no queue of the encoder's making.
    bool padding_out = s.padding_held_bytes > 0 || v.padding_held_last_tick;
    v.padding_held_last_tick = s.padding_held_bytes > 0;
    int64_t queue_threshold = queue_threshold_ms(v, s);
    v.queue_rising = !v.catching_up && !v.congested && !padding_out && v.lag_ms >= queue_threshold &&
                     v.lag_rises >= 2 && 2 * v.last_lag_ms >= queue_threshold;
    if (v.congested)
        on_congested(v, s, inst_kbps, now);
    else
        v.drain_kbps = 0;
    if (v.queue_rising) on_queue_forming(v, dt_s, now);
    judge_probe(v, s, inst_kbps, now);
    grow(v, s, dt_s, now);
    maybe_probe(v, s, dt_s, now);
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
    return options_.queue_forming.count() + std::lround(s.min_rtt_ms / 2) + recovery_allowance_ms(v, s);
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
    // Within a hold of the last congestion or back-off the ceiling only rises: a tick stalled by
    // retransmissions reads the path at a fraction of its rate (534 kbit/s on a 2 Mbit/s path), and
    // so low the probes' filler waits in the sender's pacing (BBRv2 paces at about the stream's
    // rate) and never passes: the encoder stayed there for the whole run. A ceiling too high is
    // found by the queue back-off instead. Never below the floor.
    double ceiling = std::max(path_kbps - options_.audio_kbps, static_cast<double>(options_.floor_kbps));
    bool again = now - v.last_congested < options_.hold && v.ceiling_kbps > 0;
    v.ceiling_kbps = again ? std::max(v.ceiling_kbps, ceiling) : ceiling;
    v.passes_in_row = 0;
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
    fits = std::max(fits, static_cast<double>(options_.floor_kbps));
    // A second back-off within a hold of the first: the encoder takes about a second to slow down
    // and the lag goes on rising meanwhile. Measured against the lowered target that reads as a
    // path of half the rate (ceilings of 1.0–1.2 Mbit/s on a 2 Mbit/s path): it backs off
    // further, the ceiling stays.
    bool again = now - v.last_congested < options_.hold;
    v.ceiling_kbps = again ? std::max(v.ceiling_kbps, fits) : fits;
    v.passes_in_row = 0;
    v.capacity_kbps = std::min(v.capacity_kbps, std::max<double>(options_.backoff_headroom * fits, options_.floor_kbps));
    v.last_congested = now;
    v.lag_rises = 0;
    ++v.backoffs;
}

// A capacity grows only once the encoder runs at it (while the encoder climbs back from a drain,
// the path carrying less than the capacity proves nothing about more) and no queue is left; up to
// the ceiling, where the path last congested or queued. Past it only a probe that passed takes it
// (maybe_probe): an encoder probing above a narrow path overshot it by a third before the queue
// showed (its output trails its target by a second), and each overshoot cost 400–1400 ms of lag.
void Controller::grow(ViewerState &v, const Sample &s, double dt_s, Clock::time_point now) {
    if (v.congested || now - v.last_congested < options_.hold || target_kbps_ < 0.95 * v.capacity_kbps) return;
    if (v.lag_ms >= queue_threshold_ms(v, s)) return;
    double grown = std::min<double>(options_.max_kbps, v.capacity_kbps * std::pow(1 + increase_for(v), dt_s));
    if (v.ceiling_kbps > 0) grown = std::min(grown, std::max(v.capacity_kbps, v.ceiling_kbps));
    v.capacity_kbps = grown;
}

double Controller::increase_for(const ViewerState &v) const {
    return v.passes_in_row >= 2 ? options_.increase_proven_per_s : options_.increase_per_s;
}

// The probe's filler was acknowledged within a tick and the stream behind it did not fall behind:
// the path carried both, and the ceiling rises to that. A narrow path delivers the filler just as
// fast, at the stream's expense: its lag grows by the filler's time on the path. Filler never
// handed out (flow control) proves nothing.
void Controller::judge_probe(ViewerState &v, const Sample &s, double inst_kbps, Clock::time_point now) {
    if (!v.probing) return;
    v.probing = false;
    bool stream_kept_up = v.lag_ms <= v.last_lag_ms + kProbeLagSlackMs && 2 * v.lag_ms < queue_threshold_ms(v, s);
    bool passed = s.padding_bytes > v.probe_padding_from && s.padding_held_bytes == 0 && stream_kept_up &&
                  !v.congested && !v.queue_rising;
    if (!passed) {
        v.passes_in_row = 0;
        v.next_probe = now + options_.probe_every;
        return;
    }
    ++v.probes_passed;
    // One pass can be the timing of a tick's acknowledgements (a token bucket's burst); two in a
    // row, the second with the first's filler still on the path, are room.
    if (++v.passes_in_row < 2) return;
    // What the path carried in the tick: the filler and the stream, none of it left behind.
    double carried = inst_kbps - options_.audio_kbps;
    v.ceiling_kbps = std::max(v.ceiling_kbps, std::min(carried, options_.probe_step * v.ceiling_kbps));
    if (v.ceiling_kbps >= options_.max_kbps) v.ceiling_kbps = 0;  // nothing above to find
}

// At its ceiling (or climbing to one a probe just proved), no queue: offer the path more than the
// ceiling's stream for a tick, one probe at a time.
void Controller::maybe_probe(ViewerState &v, const Sample &s, double dt_s, Clock::time_point now) {
    if (v.ceiling_kbps <= 0 || v.congested || v.catching_up || v.probing || s.padding_held_bytes > 0) return;
    // Only on an empty queue: the filler on top of the last probe's overflowed the router's buffer.
    if (now - v.last_congested < options_.hold || now < v.next_probe || 2 * v.lag_ms >= options_.queue_forming.count()) return;
    bool settled = v.capacity_kbps >= 0.95 * v.ceiling_kbps && target_kbps_ >= 0.95 * v.capacity_kbps;
    if (!settled && v.passes_in_row == 0) return;
    // The encoder's output trails its target after a climb: the filler makes up for that too (up to
    // twice as much again), so that a pass proves the rate the encoder is about to run at, and more.
    double want_kbps = (1 + options_.probe_share) * (v.capacity_kbps + options_.audio_kbps);
    double filler_kbps = std::clamp(want_kbps - v.stream_kbps, options_.probe_share * v.stream_kbps,
                                    3 * options_.probe_share * v.stream_kbps);
    v.pad_bytes = static_cast<size_t>(filler_kbps * 1000 / 8 * dt_s);
    v.probing = true;
    v.probe_padding_from = s.padding_bytes;
    ++v.probes;
}

// The fan-out backlog plus the time QUIC's held bytes take at the rate the path delivers, beyond
// the one round trip any sent data needs.
int64_t Controller::lag_ms(const ViewerState &v, const Sample &s) const {
    double rate_kbps = std::max(v.receive_kbps, static_cast<double>(options_.floor_kbps));
    // The probes' filler is not the stream: the stream waiting behind it is counted, as it waits.
    double held_ms = static_cast<double>(s.held_bytes - std::min(s.held_bytes, s.padding_held_bytes)) * 8 / rate_kbps;
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
            bool proven = std::all_of(viewers_.begin(), viewers_.end(),
                                      [](const ViewerState &v) { return !v.followed || v.passes_in_row >= 2; });
            double allowed = target * std::pow(1 + (proven ? options_.increase_proven_per_s : options_.increase_per_s), dt_s);
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
                        {"bandwidth_probes", v.probes},
                        {"bandwidth_probes_passed", v.probes_passed},
                        {"bandwidth_probing", v.probing},
                        {"lag_ms", v.lag_ms},
                        {"drain_kbps", std::lround(v.drain_kbps)},
                        {"followed", v.followed},
                        {"below_floor", v.below_floor},
                        {"congestions", v.congestions}});
    return {{"target_kbps", target_kbps_}, {"floor_kbps", options_.floor_kbps}, {"max_kbps", options_.max_kbps},
            {"decreases", decreases_},     {"increases", increases_},           {"viewers", list}};
}

} // namespace pp::ratecontrol
