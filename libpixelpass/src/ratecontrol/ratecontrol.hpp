// ratecontrol: the one encoder's bitrate, chosen from what the viewers' paths deliver. The host
// feeds it, every tick, each viewer's acknowledged byte count, how far its fan-out cursor lags
// the live edge and its keyframe skips; it answers with the video bitrate to encode at, between a
// floor and the configured bitrate, and with the filler to send each viewer that is probed
// (ViewerState::pad_bytes). Pure logic (no clock, no I/O): unit-tested with made-up paths.
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
//    The estimate counts only up to the best the viewer received in the last seconds before the
//    congestion and in the last 1.5 s: behind a token bucket it reads the bucket's bursts.
//    A capacity never goes below the floor (the viewer is then flagged below_floor instead), so
//    the recovery starts from there. What the path carried (less the audio) is the viewer's
//    ceiling; within a hold of the last congestion or back-off it only rises (a stalled tick reads
//    the path far too low, and the probes below cannot climb from there).
//  * A lost packet's recovery is not congestion: on a tick where packets of the viewer's stream were
//    declared lost (or the tick before), both thresholds allow two more round trips of lag, the
//    time a retransmission takes to fill the hole (2 % random loss at 100 ms RTT: lag spikes of
//    200–250 ms, one tick long, took the bitrate down from 6000 to 3600 kbit/s; a tbf's queue
//    that overflows loses packets too, and is caught two round trips later: 40 ms at 20 ms RTT).
//  * A queue forming is caught before it is congestion and before a router's buffer overflows:
//    when a viewer's lag is past `queue_forming` (plus half its minimum RTT), rose over the last
//    two ticks and was past half of that the tick before, the encoder runs faster than the path.
//    The rate the path carries is then the encoder's rate divided by the lag's growth (a lag
//    growing 100 ms per second: the stream is 10 % too fast); the capacity backs off to
//    `backoff_headroom` × that, without a drain, and that rate becomes the viewer's ceiling.
//  * A joining viewer starts up to a GOP behind: until it first catches up its lag is not
//    congestion (at most `join_grace`, and not while the lag keeps rising).
//  * An uncongested viewer's capacity grows by `increase_per_s` (compounded) once `hold` has
//    passed since its last congestion or back-off and its lag is below the queue threshold, up to
//    the configured bitrate or its ceiling (the rate it last congested or queued at). Above the
//    ceiling the encoder never probes (its output trails its target, so it overshot a narrow path
//    by up to a third before the queue showed): filler does. At the ceiling, with an empty queue,
//    the viewer is offered `probe_share` more than the stream for a tick; the probe passes when
//    all the filler was acknowledged by the next tick and the stream did not fall behind it. Two
//    passes in a row raise the ceiling to what the path carried, the probes go on every tick while
//    they pass, and the encoder follows at up to `increase_proven_per_s`; a failure waits
//    `probe_every`. A narrow path pays a failed probe's filler (~75 ms of queue); capacity that
//    returns is found again within seconds.
//  * Several viewers: the encoder follows the slowest viewer, except one whose capacity is below
//    `outlier_ratio` × the median of all viewers' capacities: following it would degrade everyone
//    for one bad path. Such a viewer (and any viewer below the floor) keeps skipping to keyframes;
//    it is reported as not followed, and the host tells it so.
//  * Decreases apply at once; increases at most `increase_per_s` (`increase_proven_per_s` while
//    every followed viewer's probes pass). The controller never asks for a
//    keyframe: a rate change alone does not cost a keyframe (no storm).
#pragma once

#include <array>
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
    // Up to a ceiling the probes just proved (two passes in a row, for every followed viewer), the
    // encoder climbs this fast: the path has carried the rate already.
    double increase_proven_per_s = 0.5;
    std::chrono::milliseconds hold{1500};
    // A congested viewer's lag is drained over about this long: its capacity is lowered by the
    // lag's share of it (a 500 ms lag at 2 Mbit/s: 500 kbit/s less). With the headroom alone a
    // probe's overshoot took ~3 s to drain at a 2 Mbit/s bottleneck, most of the p95 there.
    std::chrono::milliseconds drain{2000};
    // The drain takes at most this share of the path's rate: a lag near the fan-out's 1 s bound
    // took the encoder to the floor for a second, worse than the skip it was avoiding.
    double drain_max_share = 0.35;
    // A lag past this (plus half the minimum RTT) that keeps rising is a queue forming: under a
    // router's buffer, which overflows into losses and congestion (the netsim's tbf holds 100 ms).
    std::chrono::milliseconds queue_forming{50};
    // At its ceiling, a viewer's path is probed with filler instead of a higher bitrate: for one
    // tick the path is offered `probe_share` more than the stream sends (more while the encoder's
    // output still trails its target: up to 3 × that). It passes when all the
    // filler was acknowledged by the next tick and the stream did not fall behind meanwhile. From
    // the second pass in a row the ceiling rises to what the path carried in the tick, by at most
    // `probe_step`, and the probes go on every tick while they pass (the encoder climbs behind
    // them); a probe that fails waits `probe_every`.
    double probe_share = 0.15;
    double probe_step = 1.3;
    std::chrono::milliseconds probe_every{1500};
    double backoff_headroom = 0.85;
    double outlier_ratio = 0.4;
    // A viewer that just joined starts at the newest keyframe, up to a GOP (2 s) behind the live
    // edge, over a connection still in slow start: its lag says nothing about its path until it
    // first catches up (lag within `congested_backlog`) or this long has passed. Counted as
    // congestion, every join took every viewer's bitrate down (6000 → 1526 kbit/s, seen in a soak).
    std::chrono::milliseconds join_grace{6000};
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
    uint64_t lost_packets = 0;  // packets with its stream's data declared lost
    // Filler (probes) handed to QUIC, cumulative, and how much of it is not yet acknowledged.
    uint64_t padding_bytes = 0;
    uint64_t padding_held_bytes = 0;
};

struct ViewerState {
    uint64_t id = 0;
    double receive_kbps = 0;   // smoothed rate of acknowledged bytes
    double capacity_kbps = 0;  // video bitrate this path is believed to carry
    double ceiling_kbps = 0;   // video bitrate it carried when it last congested (0 = never)
    bool congested = false;
    bool catching_up = true;   // joined and not yet at the live edge (see Options::join_grace)
    bool queue_rising = false; // backed off this tick: its lag kept rising past the queue threshold
    bool recovering = false;   // packets were declared lost this tick or the last: its lag may hold a retransmission
    int64_t lag_ms = 0;        // fan-out backlog + QUIC-held time beyond one round trip
    double drain_kbps = 0;     // while congested: taken off its capacity for the encoder, to drain the lag
    bool followed = true;      // its capacity bounds the encoder
    bool below_floor = false;  // cannot carry even the floor bitrate
    uint64_t congestions = 0;  // ticks it was congested on
    uint64_t backoffs = 0;     // ticks it backed off on a forming queue
    size_t pad_bytes = 0;      // filler to send it now: a probe (the host sends it after update())
    bool probing = false;      // a probe is out; the next tick says whether the path carried it
    uint64_t probes = 0, probes_passed = 0;
    unsigned passes_in_row = 0;
    // Internal bookkeeping.
    uint64_t last_acked = 0, last_skips = 0, last_lost = 0;
    bool lost_last_tick = false;
    bool padding_held_last_tick = false;
    uint64_t probe_padding_from = 0;  // padding_bytes when the probe was asked for
    uint64_t last_padding_acked = 0;
    double stream_kbps = 0;           // smoothed rate of acknowledged stream bytes, the probes' filler left out
    Clock::time_point next_probe{};
    int64_t last_lag_ms = 0;
    unsigned lag_rises = 0;  // consecutive ticks the lag rose
    std::array<double, 8> receive_history{};  // receive_kbps of the last ticks outside a hold (a few seconds)
    size_t receive_next = 0;
    std::array<double, 3> last_receives{};    // the rate acknowledged in each of the last ticks (1.5 s), whatever happened
    size_t last_receive_next = 0;
    // (time, acknowledged bytes) at the last ticks, for delivered_kbps().
    std::array<std::pair<Clock::time_point, uint64_t>, 9> acked_history{};
    size_t acked_next = 0;
    double recent_receive_kbps() const;
    double last_receives_kbps() const;
    // What the path delivers: the figure told to users. Acknowledgements count a stream's bytes
    // only once the bytes before them are acknowledged, so a lost packet holds them back for a few
    // round trips and then releases them in one burst; the smoothed receive_kbps then read
    // 710 kbit/s on a 300 kbit/s path, and half the path's rate a tick later. Over the last ~4 s
    // the burst averages out, but that window still remembers a path that just narrowed; the best
    // single tick of the last 1.5 s does not, and is one burst only if the ticks around it stalled:
    // the lower of the two.
    double delivered_kbps() const;
    Clock::time_point last_time{}, last_congested{}, joined{};
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
    int64_t recovery_allowance_ms(const ViewerState &v, const Sample &s) const;
    int64_t congested_threshold_ms(const ViewerState &v, const Sample &s) const;
    int64_t queue_threshold_ms(const ViewerState &v, const Sample &s) const;
    void on_congested(ViewerState &v, const Sample &s, double inst_kbps, Clock::time_point now);
    void on_queue_forming(ViewerState &v, double dt_s, Clock::time_point now);
    void grow(ViewerState &v, const Sample &s, double dt_s, Clock::time_point now);
    double increase_for(const ViewerState &v) const;
    void judge_probe(ViewerState &v, const Sample &s, double inst_kbps, Clock::time_point now);
    void maybe_probe(ViewerState &v, const Sample &s, double dt_s, Clock::time_point now);
    unsigned choose(Clock::time_point now, double dt_s);

    Options options_;
    std::vector<ViewerState> viewers_;
    unsigned target_kbps_;
    Clock::time_point last_update_{}, last_decrease_{};
    uint64_t decreases_ = 0, increases_ = 0;
};

} // namespace pp::ratecontrol
