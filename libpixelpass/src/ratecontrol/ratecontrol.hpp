// ratecontrol: the one encoder's bitrate, chosen from what the viewers' paths deliver. The host
// feeds it, every tick, each viewer's acknowledged byte count, how far its fan-out cursor lags
// the live edge and its keyframe skips; it answers with the video bitrate to encode at, between a
// floor and the configured bitrate. Pure logic (no clock, no I/O): unit-tested with made-up paths.
//
// Policy (docs/network.md has the long form):
//  * A viewer is congested when its lag exceeds `congested_backlog` or it skipped ahead since the
//    last tick: its path carries less than the stream. Its lag is the fan-out backlog plus what
//    QUIC holds for it beyond one round trip (held bytes at the rate the path delivers, less the
//    minimum RTT): on a narrow path QUIC's send buffer hides several hundred ms from the fan-out. Its capacity is then
//    `headroom` × what its path carries, minus the audio track; while it is congested the encoder
//    goes a further `lag / drain` × that rate lower, to drain the lag within about `drain` (the
//    capacity the viewers are compared by stays). What it carries is the rate of
//    acknowledged bytes, or the transport's delivery-rate estimate when that is higher:
//    acknowledgements stall on a congested path (retransmissions), the bandwidth estimate not.
//    A capacity never goes below the floor (the viewer is then flagged below_floor instead), so
//    the recovery starts from there.
//  * An uncongested viewer's capacity grows by `increase_per_s` (compounded) once `hold` has
//    passed since its last congestion, up to the configured bitrate, and by only
//    `increase_near_ceiling_per_s` within -5..+8 % of the rate at which it last congested:
//    capacity that returns is found again within seconds, a still-narrow path is probed gently.
//  * Several viewers: the encoder follows the slowest viewer, except one whose capacity is below
//    `outlier_ratio` × the median of all viewers' capacities: following it would degrade everyone
//    for one bad path. Such a viewer (and any viewer below the floor) keeps skipping to keyframes;
//    it is reported as not followed, and the host tells it so.
//  * Decreases apply at once; increases at most `increase_per_s`. The controller never asks for a
//    keyframe: a rate change alone does not cost a keyframe (no storm).
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace pp::ratecontrol {

using Clock = std::chrono::steady_clock;

struct Options {
    unsigned floor_kbps = 500;
    unsigned max_kbps = 6000;   // the configured --bitrate
    unsigned audio_kbps = 128;  // the rest of the multiplex, not adjustable here
    std::chrono::milliseconds congested_backlog{250};
    double headroom = 0.85;
    double increase_per_s = 0.25;
    // Just around the rate at which the path last congested, probe slower: most overshoots (and
    // the skips they cost) happen there.
    double increase_near_ceiling_per_s = 0.10;
    std::chrono::milliseconds hold{1500};
    // A congested viewer's lag is drained over about this long: its capacity is lowered by the
    // lag's share of it (a 500 ms lag at 2 Mbit/s: 500 kbit/s less). With the headroom alone a
    // probe's overshoot took ~3 s to drain at a 2 Mbit/s bottleneck, most of the p95 there.
    std::chrono::milliseconds drain{2000};
    double outlier_ratio = 0.4;
};

// One viewer at one tick. Counters are cumulative (the controller takes differences).
struct Sample {
    uint64_t id = 0;
    uint64_t acked_bytes = 0;  // stream bytes the viewer acknowledged
    int64_t backlog_ms = 0;    // how far behind the live edge its fan-out cursor is
    uint64_t skips = 0;        // jumps to the newest keyframe
    double delivery_kbps = 0;  // the transport's own bandwidth estimate (ngtcp2's delivery rate); 0 = none
    // Stream bytes handed to QUIC and not yet acknowledged, and the path's smallest RTT: what QUIC
    // holds beyond one round trip is backlog too, only hidden from the fan-out (0 = unknown).
    uint64_t held_bytes = 0;
    double min_rtt_ms = 0;
};

struct ViewerState {
    uint64_t id = 0;
    double receive_kbps = 0;   // smoothed rate of acknowledged bytes
    double capacity_kbps = 0;  // video bitrate this path is believed to carry
    double ceiling_kbps = 0;   // video bitrate it carried when it last congested (0 = never)
    bool congested = false;
    int64_t lag_ms = 0;        // fan-out backlog + QUIC-held time beyond one round trip
    double drain_kbps = 0;     // while congested: taken off its capacity for the encoder, to drain the lag
    bool followed = true;      // its capacity bounds the encoder
    bool below_floor = false;  // cannot carry even the floor bitrate
    uint64_t congestions = 0;  // ticks it was congested on
    // Internal bookkeeping.
    uint64_t last_acked = 0, last_skips = 0;
    Clock::time_point last_time{}, last_congested{};
    bool seen = false;
};

class Controller {
public:
    explicit Controller(Options options);

    // Feeds the current viewers (one sample each; viewers absent here are forgotten) and returns
    // the video bitrate to encode at. With no viewers the target returns to the maximum.
    unsigned update(const std::vector<Sample> &samples, Clock::time_point now);

    unsigned target_kbps() const { return target_kbps_; }
    const std::vector<ViewerState> &viewers() const { return viewers_; }
    const Options &options() const { return options_; }
    // {"target_kbps", "floor_kbps", "max_kbps", "decreases", "increases", "viewers": [...]}
    nlohmann::json stats() const;

private:
    ViewerState &state_for(uint64_t id);
    void observe(ViewerState &v, const Sample &s, Clock::time_point now);
    int64_t lag_ms(const ViewerState &v, const Sample &s) const;
    unsigned choose(Clock::time_point now, double dt_s);

    Options options_;
    std::vector<ViewerState> viewers_;
    unsigned target_kbps_;
    Clock::time_point last_update_{}, last_decrease_{};
    uint64_t decreases_ = 0, increases_ = 0;
};

} // namespace pp::ratecontrol
