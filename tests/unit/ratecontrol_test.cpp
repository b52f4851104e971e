// ratecontrol: the bitrate policy against simulated paths — a path model delivers at most its
// capacity, queues the rest as fan-out backlog and skips to a keyframe past 1 s of backlog, as the
// real fan-out does. The live end-to-end checks are tests/netsim/test_lossy.py.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

#include "ratecontrol/link_report.hpp"
#include "ratecontrol/ratecontrol.hpp"

using namespace pp::ratecontrol;
using namespace std::chrono_literals;

namespace {

// One viewer's path: capacity in kbit/s, what it acknowledged, its backlog and skips. A probe's
// filler goes out before the stream's backlog, as the fan-out hands it out at its next segment.
struct Path {
    double capacity_kbps;
    double overhead = 1.0;  // stream bits per encoded bit (MPEG-TS packets and PES headers: ~1.05)
    double acked_bytes = 0;
    double backlog_kbit = 0;
    uint64_t skips = 0;
    double padding_kbit = 0;  // filler not yet delivered
    uint64_t padding_bytes = 0;
    bool pads = true;  // false: the filler never goes out (stream::Reader::pad refused it)

    // The stream (video + audio) offered at `offered_kbps` for `dt` seconds, after `pad_bytes` of filler.
    Sample step(uint64_t id, double offered_kbps, double dt, size_t pad_bytes = 0) {
        offered_kbps *= overhead;
        if (!pads) pad_bytes = 0;
        padding_bytes += pad_bytes;
        padding_kbit += static_cast<double>(pad_bytes) * 8 / 1000;
        double padding_sent = std::min(padding_kbit, capacity_kbps * dt);
        padding_kbit -= padding_sent;
        double queued = backlog_kbit + offered_kbps * dt;
        double sent = std::min(queued, capacity_kbps * dt - padding_sent);
        acked_bytes += (sent + padding_sent) * 1000 / 8;
        backlog_kbit = queued - sent;
        double backlog_ms = offered_kbps > 0 ? backlog_kbit / offered_kbps * 1000 : 0;
        if (backlog_ms > 1000) {  // the fan-out's jump to the newest keyframe
            backlog_kbit = 0;
            backlog_ms = 0;
            ++skips;
        }
        Sample s{id, static_cast<uint64_t>(acked_bytes), static_cast<int64_t>(backlog_ms), skips};
        s.padding_bytes = padding_bytes;
        s.padding_held_bytes = static_cast<uint64_t>(padding_kbit * 1000 / 8);
        return s;
    }
};

struct Sim {
    Controller controller;
    std::map<uint64_t, Path> paths;
    Clock::time_point now = Clock::time_point{} + 1h;
    double t = 0;
    static constexpr double kTick = 0.5;

    std::vector<Sample> last;

    explicit Sim(Options o = {}) : controller(o) {}

    // The probe the controller asked for at its last update.
    size_t pad_bytes(uint64_t id) const {
        for (const auto &v : controller.viewers())
            if (v.id == id) return v.pad_bytes;
        return 0;
    }

    unsigned tick() {
        std::vector<Sample> samples;
        double offered = controller.target_kbps() + controller.options().audio_kbps;
        for (auto &[id, path] : paths) samples.push_back(path.step(id, offered, kTick, pad_bytes(id)));
        last = samples;
        now += std::chrono::milliseconds(static_cast<int>(kTick * 1000));
        t += kTick;
        return controller.update(samples, now);
    }
    // Runs until `pred(target)` or `seconds` pass; returns the time it took (or -1).
    template <class Pred> double until(double seconds, Pred pred) {
        double start = t;
        while (t - start < seconds)
            if (pred(tick())) return t - start;
        return -1;
    }
    void run(double seconds) {
        double end = t + seconds;
        while (t < end) tick();
    }
};

} // namespace

TEST_CASE("a clean path keeps the configured bitrate") {
    Sim sim;
    sim.paths[1] = Path{20000};
    sim.run(30);
    REQUIRE(sim.controller.target_kbps() == 6000);
    REQUIRE(sim.controller.stats()["decreases"] == 0);
}

TEST_CASE("a capacity drop is followed within 3 s, its return within 10 s, with few skips") {
    Sim sim;
    sim.paths[1] = Path{8000};
    sim.run(10);
    REQUIRE(sim.controller.target_kbps() == 6000);
    sim.paths[1].capacity_kbps = 2000;
    uint64_t skips_before = sim.paths[1].skips;
    double reacted = sim.until(10, [](unsigned kbps) { return kbps + 128 <= 2000; });
    REQUIRE(reacted >= 0);
    REQUIRE(reacted <= 3.0);
    // Settled: the encoder stays near what the path carries and the viewer stops skipping.
    sim.run(20);
    uint64_t skips_settled = sim.paths[1].skips;
    unsigned low = 6000, high = 0;
    double sum = 0;
    for (int i = 0; i < 60; ++i) {
        unsigned k = sim.tick();
        low = std::min(low, k);
        high = std::max(high, k);
        sum += k;
    }
    CHECK(low >= 1200);
    CHECK(high <= 3000);           // a probe overshoots briefly, then backs off
    CHECK(sum / 60 + 128 <= 2000);  // on average the stream fits the path
    CHECK(sim.paths[1].skips - skips_settled <= 2);  // at most the odd probe overshoot in 30 s
    CHECK(skips_settled - skips_before <= 2);
    sim.paths[1].capacity_kbps = 8000;
    double recovered = sim.until(12, [](unsigned kbps) { return kbps >= 5700; });
    REQUIRE(recovered >= 0);
    REQUIRE(recovered <= 10.0);
}

TEST_CASE("a delivery-rate estimate that reads a token bucket's bursts does not hold the capacity above the path") {
    // Behind a 2 Mbit/s tbf ngtcp2's estimate read 3.4 Mbit/s; bounded only by what the viewer
    // received before the congestion (the open path's 6 Mbit/s), the capacity stayed at
    // 0.85 × 3.4 Mbit/s for as long as the congestion lasted.
    Sim sim;
    sim.paths[1] = Path{8000};
    sim.run(10);
    REQUIRE(sim.controller.target_kbps() == 6000);
    sim.paths[1].capacity_kbps = 2000;
    double fits = -1;
    for (double t = 0; t < 10 && fits < 0; t += Sim::kTick) {
        double offered = sim.controller.target_kbps() + sim.controller.options().audio_kbps;
        Sample s = sim.paths[1].step(1, offered, Sim::kTick);
        s.delivery_kbps = 3400;
        sim.now += 500ms;
        sim.controller.update({s}, sim.now);
        if (sim.controller.viewers()[0].capacity_kbps + 128 <= 2000) fits = t + Sim::kTick;
    }
    REQUIRE(fits >= 0);
    CHECK(fits <= 2.0);  // before the bound on the last 1.5 s: 3.5 s, by a queue back-off after a skip
}

TEST_CASE("a narrow path is probed with filler, not the encoder: the probes fail, the lag stays small") {
    // The 2 Mbit/s bottleneck with the 6 Mbit/s setting, with the multiplex's overhead. The
    // model's path sends the filler first, so the filler is always acknowledged in time: what fails
    // the probes is the stream falling behind it (or the last probe's filler still queued). Session 12's
// encoder probes overshot such a path
    // by up to a third every ~5 s (lag 400–1400 ms through mpv).
    Sim sim;
    sim.paths[1] = Path{8000, 1.05};
    sim.run(10);
    sim.paths[1].capacity_kbps = 2000;
    sim.run(10);  // the first reaction and its drain
    uint64_t skips = sim.paths[1].skips;
    auto before = sim.controller.viewers().at(0);
    int64_t worst_lag = 0;
    double sum = 0;
    unsigned highest = 0;
    const int ticks = 120;  // 60 s
    for (int i = 0; i < ticks; ++i) {
        unsigned kbps = sim.tick();
        sum += kbps;
        highest = std::max(highest, kbps);
        worst_lag = std::max(worst_lag, sim.last.at(0).backlog_ms);
    }
    const auto &v = sim.controller.viewers().at(0);
    INFO("worst lag " << worst_lag << " ms; mean " << sum / ticks << " kbit/s; highest " << highest << "; probes "
                      << v.probes - before.probes << ", passed " << v.probes_passed - before.probes_passed
                      << "; backoffs " << v.backoffs - before.backoffs);
    CHECK(v.probes - before.probes >= 10);  // once the last one's queue drained: ~4 s on a path used to 98 %
    // Some pass (the path has ~10 % to spare), never two in a row: the second finds the first's
    // filler still queued. The ceiling stays under the path.
    CHECK((v.ceiling_kbps + 128) * 1.05 <= 2000);
    CHECK(v.congestions == before.congestions);
    CHECK(v.backoffs == before.backoffs);  // the encoder never went above the path to find it
    CHECK(worst_lag < 150);  // a probe's filler: 0.15 × half a second of the stream
    CHECK(sim.paths[1].skips == skips);
    CHECK((highest + 128) * 1.05 <= 2000);
    CHECK((sum / ticks + 128) * 1.05 >= 0.85 * 2000);  // it still uses most of the path
    // The stats show the ceiling the probes test, and the probes.
    auto stats = sim.controller.stats()["viewers"][0];
    CHECK(stats["ceiling_kbps"].get<double>() == Approx(v.ceiling_kbps).margin(1));
    CHECK(stats["bandwidth_probes"] == v.probes);
    CHECK(stats["bandwidth_probes_passed"] == v.probes_passed);
    CHECK(v.ceiling_kbps > 1500);
}

namespace {

// 20 s on a 2 Mbit/s path after 10 s on an open one: settled at a ceiling the probes test.
void settle_on_a_narrow_path(Sim &sim, bool pads = true) {
    sim.paths[1] = Path{8000, 1.05};
    sim.paths[1].pads = pads;
    sim.run(10);
    sim.paths[1].capacity_kbps = 2000;
    sim.run(20);
}

} // namespace

TEST_CASE("a path that widens passes two probes in a row, and the encoder climbs behind the probes") {
    Sim sim;
    settle_on_a_narrow_path(sim);
    double ceiling = sim.controller.viewers().at(0).ceiling_kbps;
    REQUIRE(ceiling > 0);
    sim.paths[1].capacity_kbps = 8000;
    // One pass alone raises nothing (a token bucket's burst can pass one); the second does.
    uint64_t passed = sim.controller.viewers().at(0).probes_passed;
    double capacity_at_first_pass = -1;
    double recovered = sim.until(10, [&](unsigned kbps) {
        const auto &v = sim.controller.viewers().at(0);
        if (v.probes_passed == passed + 1 && capacity_at_first_pass < 0) {
            capacity_at_first_pass = v.capacity_kbps;
            CHECK(v.ceiling_kbps == ceiling);
        }
        return kbps >= 5700;
    });
    CHECK(capacity_at_first_pass > 0);
    REQUIRE(recovered >= 0);
    CHECK(recovered <= 7.0);  // netsim: 5.5–8.1 s, with the real encoder trailing its target
    const auto &v = sim.controller.viewers().at(0);
    CHECK(v.probes_passed >= passed + 4);
    CHECK(v.ceiling_kbps == 0);  // at the configured bitrate: nothing left to probe
}

TEST_CASE("filler that never went out proves nothing: the encoder stays at its ceiling") {
    Sim sim;
    settle_on_a_narrow_path(sim, false);
    double ceiling = sim.controller.viewers().at(0).ceiling_kbps;
    REQUIRE(ceiling > 0);
    sim.paths[1].capacity_kbps = 8000;
    sim.run(20);
    const auto &v = sim.controller.viewers().at(0);
    CHECK(v.probes > 5);
    CHECK(v.probes_passed == 0);
    CHECK(v.ceiling_kbps == ceiling);
    CHECK(sim.controller.target_kbps() <= ceiling);
}

TEST_CASE("a keyframe's one-tick lag is not a forming queue") {
    // Every 2 s a keyframe raised the sampled lag to ~100 ms for one tick (netsim, 2 Mbit/s path).
    // Session 12 tried a queue threshold of 50 ms + RTT / 2 with the one-tick rule: each keyframe
    // then backed the encoder off by a fifth, 1700 → 500 kbit/s within 10 s (15 back-offs here).
    Controller c(Options{});
    auto now = Clock::time_point{} + 1h;
    Sample s{1, 0, 0, 0};
    s.min_rtt_ms = 20;
    unsigned kbps = 0;
    for (int i = 0; i < 60; ++i) {  // 30 s on a path that carries the whole stream
        s.acked_bytes += 6200 * 1000 / 8 / 2;
        s.backlog_ms = i % 4 == 3 ? 110 : 5;
        now += 500ms;
        kbps = c.update({s}, now);
    }
    CHECK(c.viewers().at(0).backoffs == 0);
    CHECK(kbps == 6000);
}

TEST_CASE("a lag that stays put is not a forming queue") {
    // A lossy path's retransmissions hold bytes for a round trip or so: a lag that is high but not
    // rising leaves the bitrate alone.
    Controller c(Options{});
    auto t = Clock::time_point{} + 1h;
    Sample s{1, 0, 0, 0, 0, 0, 100};
    for (int i = 0; i <= 40; ++i) {
        s.acked_bytes += 6000 * 1000 / 8 / 2;
        s.backlog_ms = i % 2 ? 240 : 210;  // past the queue threshold (100 ms + the RTT), noisy, not growing
        c.update({s}, t + i * 500ms);
    }
    CHECK(c.viewers().at(0).backoffs == 0);
    CHECK(c.target_kbps() == 6000);
}

TEST_CASE("a lost packet's recovery is not congestion; a queue on a lossy path still is") {
    // 2 % random loss at 100 ms RTT (netsim): every other tick a retransmission holds the stream
    // for two round trips or so, a one-tick lag of up to 250 ms, with the stream's lost-packet count
    // rising. Counted as congestion or a forming queue it took 6000 kbit/s to 3600.
    Controller c(Options{});
    auto t = Clock::time_point{} + 1h;
    Sample s{1, 0, 0, 0, 0, 0, 100};
    const int64_t spikes[] = {0, 206, 30, 252, 0, 240};
    for (int i = 0; i <= 40; ++i) {
        s.acked_bytes += 6000 * 1000 / 8 / 2;
        s.backlog_ms = spikes[i % 6];
        if (s.backlog_ms > 0) s.lost_packets += 3;
        c.update({s}, t + i * 500ms);
    }
    const auto &v = c.viewers().at(0);
    CHECK(v.congestions == 0);
    CHECK(v.backoffs == 0);
    CHECK(c.target_kbps() == 6000);
    SECTION("the same spikes with no loss declared are a queue") {
        Controller clean(Options{});
        Sample q{1, 0, 0, 0, 0, 0, 100};
        for (int i = 0; i <= 40; ++i) {
            q.acked_bytes += 6000 * 1000 / 8 / 2;
            q.backlog_ms = spikes[i % 6];
            clean.update({q}, t + i * 500ms);
        }
        CHECK(clean.viewers().at(0).congestions + clean.viewers().at(0).backoffs > 0);
        CHECK(clean.target_kbps() < 6000);
    }
    SECTION("a bottleneck on the lossy path is followed within 3 s") {
        Sim sim;
        sim.paths[1] = Path{8000};
        sim.run(10);
        REQUIRE(sim.controller.target_kbps() == 6000);
        sim.paths[1].capacity_kbps = 2000;
        uint64_t lost = 0;
        double reacted = -1;
        for (double at = 0; at < 10 && reacted < 0; at += Sim::kTick) {
            double offered = sim.controller.target_kbps() + sim.controller.options().audio_kbps;
            Sample p = sim.paths[1].step(1, offered, Sim::kTick);
            p.min_rtt_ms = 100;
            p.lost_packets = lost += 3;  // the path loses packets on every tick, and queues
            sim.now += 500ms;
            if (sim.controller.update({p}, sim.now) + 128 <= 2000) reacted = at + Sim::kTick;
        }
        REQUIRE(reacted >= 0);
        CHECK(reacted <= 3.0);
    }
}

TEST_CASE("a viewer joining behind the live edge does not take the bitrate down while it catches up") {
    Controller c(Options{});
    auto t = Clock::time_point{} + 1h;
    // Viewer 1 watches at 6 Mbit/s. Viewer 2 joins at a keyframe 1.8 s old and catches up in 3 s
    // (slow start): its lag falls from 1800 ms to 0 while it receives more than the stream.
    Sample one{1, 0, 0, 0, 0, 0, 20}, two{2, 0, 1800, 0, 0, 0, 20};
    for (int i = 0; i <= 10; ++i) {
        one.acked_bytes += 6128 * 1000 / 8 / 2;
        two.acked_bytes += 8000 * 1000 / 8 / 2;
        two.backlog_ms = std::max(0, 1800 - i * 300);
        c.update({one, two}, t + i * 500ms);
        INFO("tick " << i);
        CHECK(c.target_kbps() == 6000);
        CHECK(c.viewers().at(1).congested == false);
    }
    CHECK(c.viewers().at(1).catching_up == false);  // caught up: from now on its lag counts

    // One that never catches up is congested once the grace has passed.
    Controller d(Options{});
    Sample slow{3, 0, 1800, 0, 0, 0, 20};
    double congested_at = -1;
    for (int i = 0; i <= 20 && congested_at < 0; ++i) {
        slow.acked_bytes += 1500 * 1000 / 8 / 2;
        d.update({slow}, t + i * 500ms);
        if (d.viewers().at(0).congested) congested_at = i * 0.5;
    }
    CHECK(congested_at >= 6.0);
    CHECK(congested_at <= 6.5);
    CHECK(d.target_kbps() < 1500);
}

TEST_CASE("several viewers: the slowest is followed unless far below the rest") {
    Sim sim;
    sim.paths[1] = Path{20000};
    sim.paths[2] = Path{3000};
    sim.run(20);
    double sum = 0;
    for (int i = 0; i < 40; ++i) sum += sim.tick();
    REQUIRE(sum / 40 + 128 <= 3000);  // the slow viewer bounds the encoder, on average
    REQUIRE(sum / 40 >= 1800);

    Sim outlier;
    outlier.paths[1] = Path{20000};
    outlier.paths[2] = Path{20000};
    outlier.paths[3] = Path{700};
    outlier.run(20);
    REQUIRE(outlier.controller.target_kbps() >= 5700);  // the two good viewers keep their quality
    auto viewers = outlier.controller.stats()["viewers"];
    for (const auto &v : viewers) CHECK(v["followed"] == (v["id"] != 3));
}

TEST_CASE("a path below the floor leaves the encoder at the floor and is flagged") {
    Sim sim;
    sim.paths[1] = Path{300};
    sim.run(15);
    REQUIRE(sim.controller.target_kbps() == 500);
    REQUIRE(sim.controller.viewers().at(0).below_floor);
}

TEST_CASE("a slow viewer leaving lets the bitrate climb back") {
    Sim sim;
    sim.paths[1] = Path{20000};
    sim.paths[2] = Path{2000};
    sim.run(15);
    REQUIRE(sim.controller.target_kbps() < 2000);
    sim.paths.erase(2);
    REQUIRE(sim.until(10, [](unsigned kbps) { return kbps == 6000; }) >= 0);
    REQUIRE(sim.controller.viewers().size() == 1);
}

TEST_CASE("no viewers: the configured bitrate") {
    Controller c({});
    REQUIRE(c.update({}, Clock::now()) == 6000);
}

TEST_CASE("bytes QUIC holds beyond a round trip count as lag: a viewer is congested before its fan-out backlog shows it") {
    Controller c(Options{});
    auto t = Clock::time_point{} + 1h;
    // 2 Mbit/s delivered; no fan-out backlog, but 100 KB held in QUIC (400 ms at 2 Mbit/s) on a 20 ms path.
    Sample s{1, 0, 0, 0, 0, 0, 20};
    c.update({s}, t);
    for (int i = 1; i <= 4; ++i) {
        s.acked_bytes += 2000 * 1000 / 8 / 2;  // 0.5 s at 2 Mbit/s
        c.update({s}, t + i * 500ms);
    }
    REQUIRE_FALSE(c.viewers().at(0).congested);  // nothing held: fine
    CHECK(c.viewers().at(0).lag_ms == 0);
    s.held_bytes = 100'000;
    s.acked_bytes += 2000 * 1000 / 8 / 2;
    c.update({s}, t + 2500ms);
    const auto &v = c.viewers().at(0);
    CHECK(v.congested);
    CHECK(v.lag_ms > 300);
    CHECK(v.lag_ms < 450);
    CHECK(c.target_kbps() < 2000);  // the encoder goes below what the path delivers
    // Held bytes within one round trip are just in flight: no lag.
    s.held_bytes = 4000;  // 16 ms at 2 Mbit/s on a 20 ms path
    s.acked_bytes += 2000 * 1000 / 8 / 2;
    c.update({s}, t + 3000ms);
    CHECK(c.viewers().at(0).lag_ms == 0);
}

TEST_CASE("a congested viewer's lag is drained: the encoder goes lower by the lag's share, its capacity does not") {
    Controller c(Options{});
    auto t = Clock::time_point{} + 1h;
    Sample s{1, 0, 0, 0, 0, 0, 20};
    c.update({s}, t);
    for (int i = 1; i <= 4; ++i) {
        s.acked_bytes += 2000 * 1000 / 8 / 2;  // 0.5 s at 2 Mbit/s
        c.update({s}, t + i * 500ms);
    }
    s.held_bytes = 125'000;  // 500 ms at 2 Mbit/s beyond the 20 ms round trip: 480 ms of lag
    s.acked_bytes += 2000 * 1000 / 8 / 2;
    c.update({s}, t + 2500ms);
    const auto &v = c.viewers().at(0);
    REQUIRE(v.congested);
    // Capacity: 0.85 × 2000 − 128 audio = 1572. The encoder: a further 480/2000 × 2000 lower.
    CHECK(v.capacity_kbps == Approx(1572).margin(5));
    CHECK(v.drain_kbps == Approx(480).margin(10));
    CHECK(c.target_kbps() == Approx(1092).margin(15));
    // Drained: the encoder climbs back to the capacity at the usual pace, not at once.
    s.held_bytes = 0;
    s.acked_bytes += 2000 * 1000 / 8 / 2;
    c.update({s}, t + 3000ms);
    CHECK(c.viewers().at(0).drain_kbps == 0);
    CHECK(c.target_kbps() > 1092);
    CHECK(c.target_kbps() <= 1092 * 1.12 + 1);  // 25 %/s for 0.5 s
    // Back at the capacity within ~1.5 s (meanwhile the capacity stays: within the hold).
    s.acked_bytes += 2000 * 1000 / 8 / 2;
    c.update({s}, t + 3500ms);
    CHECK(c.viewers().at(0).capacity_kbps == Approx(1572).margin(5));
    for (int i = 8; i <= 9; ++i) {
        s.acked_bytes += 2000 * 1000 / 8 / 2;
        c.update({s}, t + i * 500ms);
    }
    CHECK(c.target_kbps() >= 1500);
}

// ---- link_report: the host's verdict on one viewer's path, and the viewer's reading of it ----

TEST_CASE("the host reports a path below the floor as too poor, and the viewer reads it back") {
    Sim sim;
    sim.paths[1] = Path{300};
    sim.run(15);
    LinkReport r = report_for(&sim.controller, 1, sim.controller.target_kbps());
    REQUIRE(r.measured);
    REQUIRE(r.poorness == Poorness::below_floor);
    CHECK(r.floor_kbps == 500);
    CHECK(r.max_kbps == 6000);
    CHECK(r.receive_kbps > 100);
    CHECK(r.receive_kbps < 400);  // what the 300 kbit/s path carried, not the stream's rate
    auto back = parse_link_report(to_json(r).dump());
    REQUIRE(back);
    CHECK(back->poorness == Poorness::below_floor);
    CHECK(back->receive_kbps == r.receive_kbps);
    CHECK(back->bitrate_kbps == 500);
    // A viewer the controller does not know (not streaming) is unmeasured; no controller: fixed.
    CHECK_FALSE(report_for(&sim.controller, 7, 500).measured);
    LinkReport fixed = report_for(nullptr, 1, 6000);
    CHECK_FALSE(fixed.adaptive);
    CHECK_FALSE(fixed.too_poor());
    CHECK(fixed.bitrate_kbps == 6000);
}

// Acknowledgements count a stream's bytes once the bytes before them are acknowledged: a lost
// packet holds back 1.5 s of them, then one tick releases them all. The controller's per-tick rate
// spikes (the netsim CI run that reported 710 kbit/s on a 300 kbit/s path); what users are told
// is the rate over the last seconds.
TEST_CASE("the rate reported to users is not a burst of late acknowledgements") {
    Controller c(Options{});
    Sample s{1};
    auto t = Clock::time_point{} + 1h;
    constexpr uint64_t kTickBytes = 300 * 1000 / 8 / 2;  // 300 kbit/s for 0.5 s
    int tick = 0;
    auto step = [&](uint64_t bytes) {
        s.acked_bytes += bytes;
        c.update({s}, t + ++tick * 500ms);
    };
    for (int i = 0; i < 12; ++i) step(kTickBytes);
    CHECK(c.viewers().at(0).delivered_kbps() == Approx(300).margin(1));
    for (int i = 0; i < 3; ++i) step(0);
    step(4 * kTickBytes);
    const auto &v = c.viewers().at(0);
    CHECK(v.receive_kbps > 500);  // the burst: the controller's own per-tick view
    LinkReport r = report_for(&c, 1, c.target_kbps());
    CHECK(r.receive_kbps == Approx(300).margin(1));
    CHECK(c.stats()["viewers"][0]["delivered_kbps"] == r.receive_kbps);

    // A path that just narrowed from 2000 kbit/s: the seconds before still fill most of the window.
    Controller d(Options{});
    Sample n{1};
    tick = 0;
    auto narrowed = [&](uint64_t kbps) {
        n.acked_bytes += kbps * 1000 / 8 / 2;
        d.update({n}, t + ++tick * 500ms);
    };
    for (int i = 0; i < 12; ++i) narrowed(2000);
    for (int i = 0; i < 4; ++i) narrowed(300);
    CHECK(d.viewers().at(0).delivered_kbps() < 450);
}

TEST_CASE("an outlier viewer is reported as slower than the others") {
    Sim sim;
    sim.paths[1] = Path{20000};
    sim.paths[2] = Path{20000};
    sim.paths[3] = Path{1500};  // above the floor, far below the others
    sim.run(20);
    CHECK(report_for(&sim.controller, 3, sim.controller.target_kbps()).poorness == Poorness::slower_than_others);
    CHECK_FALSE(report_for(&sim.controller, 1, sim.controller.target_kbps()).too_poor());
}

TEST_CASE("a link report that is not one is refused") {
    CHECK_FALSE(parse_link_report(""));
    CHECK_FALSE(parse_link_report("[]"));
    CHECK_FALSE(parse_link_report("{\"too_poor\": 1}"));
    CHECK_FALSE(parse_link_report("{\"reason\": \"cosmic rays\", \"too_poor\": true}"));
    CHECK_FALSE(parse_link_report("{\"too_poor\": true}"));  // says poor, gives no reason
    CHECK_FALSE(parse_link_report("{\"reason\": \"below_floor\"}"));  // a reason without the flag
    CHECK_FALSE(parse_link_report("{\"receive_kbps\": -1}"));
    CHECK_FALSE(parse_link_report("{\"receive_kbps\": 1.5}"));
    CHECK_FALSE(parse_link_report("{\"receive_kbps\": 18446744073709551615}"));
    CHECK_FALSE(parse_link_report("{\"receive_kbps\": 10000001}"));
    auto empty = parse_link_report("{}");  // nothing known: not poor
    REQUIRE(empty);
    CHECK_FALSE(empty->too_poor());
    auto more = parse_link_report("{\"too_poor\": false, \"reason\": \"none\", \"later_field\": [1]}");
    REQUIRE(more);  // fields a newer host adds are ignored
}

TEST_CASE("the viewer's verdict is told once, and recovery after three good reports") {
    PathVerdict v;
    LinkReport poor;
    poor.adaptive = poor.measured = true;
    poor.poorness = Poorness::below_floor;
    poor.receive_kbps = 290;
    poor.bitrate_kbps = poor.floor_kbps = 500;
    LinkReport fine = poor;
    fine.poorness = Poorness::none;
    fine.receive_kbps = 1900;
    LinkReport idle = fine;
    idle.measured = false;

    CHECK_FALSE(v.update(fine));  // fine from the start: nothing to say
    auto told = v.update(poor);
    REQUIRE(told);
    CHECK(told->too_poor);
    CHECK(told->message.find("about 290 kbit/s") != std::string::npos);
    CHECK(told->message.find("lowest bitrate (500 kbit/s)") != std::string::npos);
    CHECK_FALSE(v.update(poor));  // once, not every report
    CHECK(v.stats()["too_poor"] == true);
    CHECK(v.stats()["reason"] == "below_floor");
    CHECK_FALSE(v.update(fine));
    CHECK_FALSE(v.update(poor));  // flapping at the edge: still poor, said nothing new
    CHECK_FALSE(v.update(fine));
    CHECK_FALSE(v.update(idle));  // no stream measured: says nothing about the path
    CHECK_FALSE(v.update(fine));
    auto back = v.update(fine);
    REQUIRE(back);
    CHECK_FALSE(back->too_poor);
    CHECK(back->message.find("carries the stream again") != std::string::npos);
    CHECK(v.stats()["too_poor"] == false);
    CHECK(v.stats()["reason"] == "none");
    CHECK(v.times_too_poor() == 1);
    CHECK(v.reports() == 9);
    LinkReport outlier = poor;
    outlier.poorness = Poorness::slower_than_others;
    outlier.bitrate_kbps = 5800;
    auto slow = v.update(outlier);
    REQUIRE(slow);
    CHECK(slow->message.find("keeps the stream at 5800 kbit/s") != std::string::npos);
    CHECK(v.times_too_poor() == 2);
}
