// fanout: the ring's cutting, joining, skipping and eviction rules on hand-built TS packets, then
// the same promises end to end on the real media pipeline (late joiner, slow reader, teardown,
// one shared encode), checked by parsing TS headers and by decoding with a real decoder.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <optional>
#include <set>
#include <thread>

#include "common/error.hpp"
#include "fanout/fanout.hpp"
#include "fanout/ring.hpp"
#include "fanout/ts.hpp"
#include "media/decoder.hpp"
#include "media/media.hpp"
#include "reader_helpers.hpp"

using namespace pp;
using namespace pp::fanout;
using namespace pp::test;

namespace {

constexpr uint16_t kPmtPid = 0x20, kVideoPid = 0x41, kAudioPid = 0x42;

std::vector<uint8_t> packet(uint16_t pid, bool pusi, uint8_t cc, bool random_access = false) {
    std::vector<uint8_t> p(188, 0xff);
    p[0] = 0x47;
    p[1] = static_cast<uint8_t>((pusi ? 0x40 : 0) | (pid >> 8));
    p[2] = static_cast<uint8_t>(pid & 0xff);
    if (random_access) {
        p[3] = static_cast<uint8_t>(0x30 | (cc & 0x0f));  // adaptation + payload
        p[4] = 1;
        p[5] = 0x40;  // random_access_indicator
    } else {
        p[3] = static_cast<uint8_t>(0x10 | (cc & 0x0f));
    }
    return p;
}

std::vector<uint8_t> pat(uint8_t cc) {
    auto p = packet(0, true, cc);
    const uint8_t section[] = {0x00, 0x00, 0xb0, 13, 0x00, 0x01, 0xc1, 0x00, 0x00,
                               0x00, 0x01, static_cast<uint8_t>(0xe0 | (kPmtPid >> 8)), kPmtPid & 0xff,
                               0, 0, 0, 0};
    std::copy(std::begin(section), std::end(section), p.begin() + 4);
    return p;
}

std::vector<uint8_t> pmt(uint8_t cc) {
    auto p = packet(kPmtPid, true, cc);
    const uint8_t section[] = {0x00, 0x02, 0xb0, 23, 0x00, 0x01, 0xc1, 0x00, 0x00,
                               0xe0, kVideoPid, 0xf0, 0x00,
                               0x1b, 0xe0, kVideoPid, 0xf0, 0x00,
                               0x0f, 0xe0, kAudioPid, 0xf0, 0x00,
                               0, 0, 0, 0};
    std::copy(std::begin(section), std::end(section), p.begin() + 4);
    return p;
}

// A video frame of `packets` TS packets; the first carries a PES header (with a PTS).
std::vector<uint8_t> frame(bool key, size_t packets, uint8_t &cc, uint64_t pts = 0) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i < packets; ++i) {
        auto p = packet(kVideoPid, i == 0, cc++, key && i == 0);
        if (i == 0) {
            size_t at = key ? 6 : 4;
            const uint8_t pes[] = {0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5,
                                   static_cast<uint8_t>(0x21 | ((pts >> 29) & 0x0e)), static_cast<uint8_t>(pts >> 22),
                                   static_cast<uint8_t>(0x01 | ((pts >> 14) & 0xfe)), static_cast<uint8_t>(pts >> 7),
                                   static_cast<uint8_t>(0x01 | ((pts << 1) & 0xfe))};
            std::copy(std::begin(pes), std::end(pes), p.begin() + static_cast<ptrdiff_t>(at));
        }
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

std::vector<uint8_t> cat(std::initializer_list<std::vector<uint8_t>> parts) {
    std::vector<uint8_t> out;
    for (const auto &p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

uint16_t pid_of(const SegmentPtr &s, size_t packet_index = 0) {
    auto p = ts::parse_packet(std::span(s->bytes).subspan(packet_index * 188, 188));
    return p ? p->pid : 0xffff;
}

Limits test_limits() {
    Limits l;
    l.max_backlog = std::chrono::milliseconds(60 * 1000);  // byte bounds drive these tests
    l.max_backlog_bytes = 40 * 188;
    l.max_ring_bytes = 400 * 188;
    l.fresh_keyframe = std::chrono::milliseconds(60 * 1000);
    return l;
}

// A clean start for cursor `c`: its next segments are PAT+PMT, then a keyframe. Returns that
// keyframe's PTS (90 kHz), if it carries one.
std::optional<uint64_t> expect_clean_start(Ring &ring, Cursor &c) {
    auto psi = ring.next(c);
    REQUIRE(psi);
    CHECK(pid_of(psi) == 0);
    auto key = ring.next(c);
    REQUIRE(key);
    CHECK(key->keyframe);
    return ts::pes_pts(ts::parse_packet(std::span(key->bytes).first(188))->payload);
}

} // namespace

TEST_CASE("ts: headers, PTS and the program tables are parsed", "[fanout][ts]") {
    uint8_t cc = 0;
    auto kf = frame(true, 3, cc, 123456789);
    auto p = ts::parse_packet(std::span(kf).first(188));
    REQUIRE(p);
    CHECK(p->pid == kVideoPid);
    CHECK(p->payload_start);
    CHECK(p->random_access);
    CHECK(ts::pes_pts(p->payload) == 123456789u);

    ts::ProgramTracker tracker;
    CHECK(tracker.feed(pat(0)) == ts::Kind::pat);
    CHECK(tracker.pmt_pid() == kPmtPid);
    CHECK(tracker.feed(pmt(0)) == ts::Kind::pmt);
    CHECK(tracker.video_pid() == kVideoPid);
    CHECK(tracker.audio_pid() == kAudioPid);
    CHECK(tracker.feed(std::span(kf).first(188)) == ts::Kind::video_keyframe);
    CHECK(tracker.feed(std::span(kf).subspan(188, 188)) == ts::Kind::other);
    auto delta = frame(false, 1, cc);
    CHECK(tracker.feed(delta) == ts::Kind::video_start);

    auto bad = kf;
    bad[0] = 0x46;
    CHECK_FALSE(ts::parse_packet(bad));
    auto summary = ts::summarize(cat({pat(0), pmt(0), kf, delta}));
    CHECK(summary.packets == 6);
    CHECK(summary.video_pes == 2);
    CHECK(summary.video_keyframes == 1);
    CHECK(summary.first_video_is_keyframe);
    CHECK(summary.first_pids == std::vector<uint16_t>{0, kPmtPid, kVideoPid, kVideoPid});
}

TEST_CASE("ring: a keyframe inside a push starts its own segment; partial packets carry over", "[fanout]") {
    Ring ring(test_limits());
    uint8_t cc = 0;
    auto bytes = cat({pat(0), pmt(0), frame(true, 4, cc), frame(false, 2, cc)});
    // Split mid-packet: the ring must carry the partial packet into the next push.
    std::vector<uint8_t> first(bytes.begin(), bytes.begin() + 300), rest(bytes.begin() + 300, bytes.end());
    ring.push(std::move(first));
    ring.push(std::move(rest));
    auto stats = ring.stats();
    CHECK(stats["bytes_total"] == bytes.size());
    CHECK(stats["keyframes"] == 1);

    Cursor c;
    ring.attach(c);
    auto psi = ring.next(c);
    REQUIRE(psi);
    CHECK(psi->bytes.size() == 2 * 188);
    CHECK(pid_of(psi, 0) == 0);
    CHECK(pid_of(psi, 1) == kPmtPid);
    auto key = ring.next(c);
    REQUIRE(key);
    CHECK(key->keyframe);
    CHECK(pid_of(key) == kVideoPid);
    CHECK(ts::parse_packet(std::span(key->bytes).first(188))->random_access);
    ring.detach(c);
}

TEST_CASE("ring: a joiner starts at PAT+PMT and the newest keyframe, skipping older data", "[fanout]") {
    Ring ring(test_limits());
    uint8_t cc = 0;
    ring.push(cat({pat(0), pmt(0)}));
    ring.push(frame(true, 3, cc));
    ring.push(frame(false, 2, cc));
    ring.push(frame(true, 3, cc, 9000));  // newest keyframe
    ring.push(frame(false, 2, cc));

    Cursor c;
    CHECK_FALSE(ring.attach(c));  // a fresh keyframe is there: no need to ask the encoder
    CHECK(expect_clean_start(ring, c) == 9000u);  // the newest keyframe
    auto s3 = ring.next(c);
    REQUIRE(s3);
    CHECK_FALSE(s3->keyframe);
    CHECK_FALSE(ring.next(c));  // caught up
    CHECK(c.want_wake);
    ring.detach(c);
}

TEST_CASE("ring: with a stale keyframe a joiner asks for a fresh one and is woken by it", "[fanout]") {
    auto limits = test_limits();
    limits.fresh_keyframe = std::chrono::milliseconds(0);
    Ring ring(limits);
    uint8_t cc = 0;
    ring.push(cat({pat(0), pmt(0), frame(true, 3, cc)}));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));

    int wakes = 0;
    Cursor c;
    c.wake = [&wakes] { ++wakes; };
    CHECK(ring.attach(c));  // the caller should request a keyframe
    CHECK_FALSE(ring.next(c));
    ring.push(frame(false, 2, cc));
    CHECK(wakes == 0);  // a delta frame is of no use to it
    CHECK_FALSE(ring.next(c));
    ring.push(frame(true, 3, cc, 4242));
    CHECK(wakes == 1);
    CHECK(expect_clean_start(ring, c) == 4242u);
    ring.detach(c);
}

TEST_CASE("ring: a slow cursor skips to the newest keyframe, counted; a fast one never drops", "[fanout]") {
    Ring ring(test_limits());  // backlog bound: 40 packets
    uint8_t cc = 0;
    ring.push(cat({pat(0), pmt(0), frame(true, 3, cc)}));
    Cursor slow, fast;
    int fast_wakes = 0;
    fast.wake = [&fast_wakes] { ++fast_wakes; };
    ring.attach(slow);
    ring.attach(fast);
    REQUIRE(ring.next(slow));  // PSI
    REQUIRE(ring.next(slow));  // keyframe; then it stops reading
    size_t fast_segments = 0;
    auto drain_fast = [&] {
        while (auto s = ring.next(fast)) ++fast_segments;
    };
    drain_fast();

    for (int gop = 0; gop < 5; ++gop) {
        ring.push(frame(true, 5, cc));
        for (int i = 0; i < 9; ++i) ring.push(frame(false, 2, cc));
        drain_fast();
        auto st = ring.stats(slow);
        CHECK(st.backlog_bytes <= 40 * 188 + 23 * 188);  // bound + one GOP
    }
    CHECK(ring.stats(fast).drops == 0);
    CHECK(fast_segments == 2 + 5 * 10);
    auto st = ring.stats(slow);
    CHECK(st.drops >= 1);
    CHECK(st.dropped_bytes > 0);
    // Its next bytes are a clean start again: PAT+PMT, then a keyframe.
    expect_clean_start(ring, slow);
    // The ring itself holds at most the bound plus the current GOP.
    CHECK(ring.stats()["bytes_held"].get<size_t>() <= 40 * 188 + 23 * 188);
    ring.detach(slow);
    ring.detach(fast);
}

TEST_CASE("ring: memory stays bounded without keyframes; held segments outlive eviction", "[fanout]") {
    Ring ring(test_limits());  // hard cap: 400 packets
    uint8_t cc = 0;
    ring.push(cat({pat(0), pmt(0), frame(true, 3, cc)}));
    Cursor c;
    ring.attach(c);
    ring.next(c);
    SegmentPtr held = ring.next(c);  // the keyframe, held as an unacknowledged transport would
    REQUIRE(held);
    auto copy = held->bytes;
    for (int i = 0; i < 2000; ++i) ring.push(frame(false, 2, cc));  // never another keyframe
    CHECK(ring.stats()["bytes_held"].get<size_t>() <= 400 * 188);
    CHECK(held->bytes == copy);  // still valid and unchanged
    CHECK(ring.stats(c).drops >= 1);
    ring.detach(c);
}

TEST_CASE("ring: end wakes waiting cursors and finishes them after they drained", "[fanout]") {
    Ring ring(test_limits());
    uint8_t cc = 0;
    ring.push(cat({pat(0), pmt(0), frame(true, 3, cc)}));
    int wakes = 0;
    Cursor c;
    c.wake = [&wakes] { ++wakes; };
    ring.attach(c);
    while (ring.next(c)) {
    }
    CHECK_FALSE(ring.finished(c));
    ring.end(PP_ERR_MEDIA, "boom");
    CHECK(wakes == 1);
    CHECK(ring.finished(c));
    CHECK(ring.end_reason().second == "boom");
    ring.detach(c);
}

// ------------------------------------------------------------------------------------------------
// End to end on the real pipeline.

namespace {

HostConfig pipeline_config() {
    HostConfig c;
    c.source = "test";
    c.max_height = 240;
    c.bitrate_kbps = 800;
    c.encoder = "x264";
    c.grace_ms = 300;
    return c;
}

media::DecodeReport decode(const std::vector<uint8_t> &bytes) {
    media::TsDecoder decoder;
    for (size_t off = 0; off < bytes.size(); off += 16 * 1024)
        decoder.feed(std::span(bytes).subspan(off, std::min<size_t>(16 * 1024, bytes.size() - off)));
    return decoder.finish();
}

bool wait_until(const std::function<bool()> &pred, std::chrono::milliseconds timeout) {
    auto deadline = SteadyClock::now() + timeout;
    while (SteadyClock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return pred();
}

} // namespace

TEST_CASE("late joiner: PAT, PMT, then a keyframe; every frame decodes, the first at once", "[fanout][media]") {
    if (!media::available()) return;
    auto source = media::make_source(pipeline_config(), nullptr);
    WakeFlag first_flag;
    auto first = source->subscribe(first_flag.callback());
    std::atomic<bool> stop{false};
    std::thread keep_reading([&] {
        while (!stop) {
            auto s = first->read(65536);
            if (s.empty()) {
                first_flag.wait(50ms);
                continue;
            }
            first->release(s.size());
        }
    });
    std::this_thread::sleep_for(3s);

    WakeFlag flag;
    auto joined_at = SteadyClock::now();
    auto late = source->subscribe(flag.callback());
    auto chunks = read_for(*late, flag, 2s);
    stop = true;
    keep_reading.join();
    REQUIRE(!chunks.empty());
    double first_byte_ms = std::chrono::duration<double, std::milli>(chunks.front().at - joined_at).count();
    auto bytes = concat(chunks);

    auto summary = ts::summarize(bytes);
    REQUIRE(summary.first_pids.size() >= 3);
    CHECK(summary.first_pids[0] == 0);
    CHECK(summary.first_pids[1] == 0x20);  // mpegtsmux's PMT PID
    // The third packet opens the keyframe's PES, flagged random-access.
    auto third = ts::parse_packet(std::span(bytes).subspan(2 * 188, 188));
    REQUIRE(third);
    CHECK(third->payload_start);
    CHECK(third->random_access);
    CHECK(summary.first_video_is_keyframe);
    CHECK(summary.bad_packets == 0);

    auto report = decode(bytes);
    INFO(report.to_json().dump());
    CHECK(report.problems.empty());
    // Every video PES that arrived became a picture: nothing was thrown away waiting for a
    // keyframe or for SPS/PPS. (The last PES may be incomplete when reading stopped.)
    CHECK(report.video_frames + 1 >= summary.video_pes);
    CHECK(report.video_frames >= 45);
    CHECK(report.first_frame_ms >= 0);
    WARN("late joiner: first byte " << first_byte_ms << " ms after subscribe; first picture decoded "
                                    << report.first_frame_ms << " ms after its first byte was fed");
    CHECK(first_byte_ms < 500);
    CHECK(source->stats()["starts"] == 1);  // one encode for both
}

TEST_CASE("slow reader: skipped and counted; the other reader stays on time; memory bounded", "[fanout][media]") {
    if (!media::available()) return;
    auto source = media::make_source(pipeline_config(), nullptr);
    WakeFlag slow_flag, fast_flag;
    auto slow = source->subscribe(slow_flag.callback());
    auto fast = source->subscribe(fast_flag.callback());

    // The slow reader takes its first bytes and then never reads or releases again.
    auto slow_first = drain(*slow, slow_flag, 10s, [](size_t total, SteadyClock::time_point) { return total > 0; });
    REQUIRE(!slow_first.empty());

    size_t max_ring = 0;
    std::vector<Chunk> fast_chunks;
    auto start = SteadyClock::now();
    while (SteadyClock::now() - start < 5s) {
        auto more = drain(*fast, fast_flag, 200ms, [](size_t, SteadyClock::time_point) { return false; });
        fast_chunks.insert(fast_chunks.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
        max_ring = std::max(max_ring, source->stats()["ring"]["bytes_held"].get<size_t>());
    }
    REQUIRE(fast_chunks.size() > 10);
    // On time: a reader held back by the slow one would get nothing until the slow one is
    // skipped, which takes its 1 s backlog bound, so the fast reader's longest gap stays well
    // under that. (Not "a few frame intervals": on a loaded 2-core machine the encoder itself
    // pauses for half a second, seen at 551 ms under load 17, and that is not the fan-out's doing.)
    double max_gap = 0;
    for (size_t i = 1; i < fast_chunks.size(); ++i)
        max_gap = std::max(max_gap, std::chrono::duration<double, std::milli>(fast_chunks[i].at - fast_chunks[i - 1].at).count());
    auto fast_report = decode(concat(fast_chunks));
    INFO(fast_report.to_json().dump());
    CHECK(fast_report.problems.empty());
    CHECK(fast_report.video_frames >= 5 * 30 * 8 / 10);
    CHECK(max_gap < 900);
    CHECK(fast->stats()["drops"] == 0);

    auto slow_stats = slow->stats();
    INFO(slow_stats.dump());
    CHECK(slow_stats["drops"].get<uint64_t>() >= 1);
    CHECK(slow_stats["dropped_bytes"].get<uint64_t>() > 0);
    // Bounded: 800 kbit/s × (1 s backlog bound + 2 s GOP) ≈ 300 kB; allow for bursts.
    WARN("slow reader: " << slow_stats.dump() << "; ring peak " << max_ring << " bytes; fast reader max gap "
                         << max_gap << " ms");
    CHECK(max_ring < 1024 * 1024);

    // When it reads again it starts cleanly: PAT, PMT, keyframe, all decodable.
    auto resumed = concat(read_for(*slow, slow_flag, 1s));
    auto resumed_summary = ts::summarize(resumed);
    REQUIRE(resumed_summary.first_pids.size() >= 3);
    CHECK(resumed_summary.first_pids[0] == 0);
    CHECK(resumed_summary.first_video_is_keyframe);
    auto report = decode(resumed);
    INFO(report.to_json().dump());
    CHECK(report.video_frames >= 20);
    CHECK(source->stats()["starts"] == 1);
}

TEST_CASE("teardown: the pipeline stops a grace period after the last reader; a new reader restarts it", "[fanout][media]") {
    if (!media::available()) return;
    auto source = media::make_source(pipeline_config(), nullptr);  // grace 300 ms
    CHECK_FALSE(source->running());
    CHECK(source->stats()["producer"]["state"] == "NULL");
    {
        WakeFlag flag;
        auto reader = source->subscribe(flag.callback());
        auto bytes = concat(read_for(*reader, flag, 500ms));
        CHECK(!bytes.empty());
        CHECK(source->running());
        CHECK(source->stats()["producer"]["state"] == "PLAYING");
    }
    auto left = SteadyClock::now();
    std::this_thread::sleep_for(100ms);
    CHECK(source->running());  // still within the grace period
    REQUIRE(wait_until([&] { return !source->running(); }, 5s));
    double stopped_after = std::chrono::duration<double, std::milli>(SteadyClock::now() - left).count();
    CHECK(stopped_after >= 300);
    auto stats = source->stats();
    CHECK(stats["producer"]["state"] == "NULL");
    CHECK(stats["stops"] == 1);
    CHECK(stats["ring"].is_null());

    // A reader inside the grace period keeps it alive; this one comes after: a fresh run.
    WakeFlag flag;
    auto again = source->subscribe(flag.callback());
    auto bytes = concat(read_for(*again, flag, 1s));
    REQUIRE(!bytes.empty());
    CHECK(source->stats()["starts"] == 2);
    auto summary = ts::summarize(bytes);
    CHECK(summary.first_pids[0] == 0);
    CHECK(summary.first_video_is_keyframe);
    auto report = decode(bytes);
    CHECK(report.problems.empty());
    CHECK(report.video_frames >= 20);
    WARN("teardown: pipeline stopped " << stopped_after << " ms after the last reader left (grace 300 ms)");
}

TEST_CASE("a reader back within the grace period keeps the same run", "[fanout][media]") {
    if (!media::available()) return;
    auto cfg = pipeline_config();
    cfg.grace_ms = 2000;
    auto source = media::make_source(cfg, nullptr);
    {
        WakeFlag flag;
        auto r = source->subscribe(flag.callback());
        CHECK(!concat(read_for(*r, flag, 300ms)).empty());
    }
    std::this_thread::sleep_for(200ms);
    WakeFlag flag;
    auto r = source->subscribe(flag.callback());
    CHECK(!concat(read_for(*r, flag, 300ms)).empty());
    auto stats = source->stats();
    CHECK(stats["starts"] == 1);
    CHECK(stats["stops"] == 0);
}

TEST_CASE("readers share one encode and the same bytes in memory (zero-copy)", "[fanout][media]") {
    if (!media::available()) return;
    auto source = media::make_source(pipeline_config(), nullptr);
    WakeFlag fa, fb;
    auto a = source->subscribe(fa.callback());
    auto b = source->subscribe(fb.callback());
    std::set<const uint8_t *> spans_a;
    size_t shared = 0;
    auto deadline = SteadyClock::now() + 3s;
    // Read both without releasing for a while: the spans must point into the same segments.
    std::vector<std::pair<const uint8_t *, size_t>> held_a, held_b;
    while (SteadyClock::now() < deadline && shared < 20) {
        auto sa = a->read(1 << 20);
        if (!sa.empty()) {
            spans_a.insert(sa.data());
            held_a.emplace_back(sa.data(), sa.size());
        }
        auto sb = b->read(1 << 20);
        if (!sb.empty()) {
            held_b.emplace_back(sb.data(), sb.size());
            if (spans_a.count(sb.data())) ++shared;
        }
        if (sa.empty() && sb.empty()) fa.wait(20ms);
    }
    CHECK(shared >= 20);
    CHECK(source->stats()["starts"] == 1);
    // Held spans stay valid until released.
    size_t total_a = 0;
    for (auto &[p, n] : held_a) total_a += n;
    a->release(total_a);
    size_t total_b = 0;
    for (auto &[p, n] : held_b) total_b += n;
    b->release(total_b);
    CHECK_THROWS_AS(a->release(1), Error);  // more than was read
}

TEST_CASE("keyframe budget: the first force at once, then at most one per interval, refusals counted", "[fanout][keyframes]") {
    stream::KeyframeBudget budget;  // the default: 2 s
    auto t0 = stream::KeyframeBudget::Clock::now();
    CHECK(budget.try_force(t0));
    CHECK_FALSE(budget.try_force(t0 + std::chrono::milliseconds(1)));
    CHECK_FALSE(budget.try_force(t0 + std::chrono::milliseconds(1999)));
    CHECK(budget.try_force(t0 + std::chrono::milliseconds(2000)));
    CHECK_FALSE(budget.try_force(t0 + std::chrono::milliseconds(3000)));
    CHECK(budget.forced() == 2);
    CHECK(budget.refused() == 3);
    CHECK_THROWS_AS(stream::KeyframeBudget(std::chrono::milliseconds(-1)), Error);
}

TEST_CASE("ring: joiners while a keyframe is on its way ask once; a refused joiner starts at the held one", "[fanout][keyframes]") {
    auto limits = test_limits();
    limits.fresh_keyframe = std::chrono::milliseconds(0);  // every held keyframe is stale
    Ring ring(limits);
    uint8_t cc = 0;
    ring.push(cat({pat(0), pmt(0), frame(true, 3, cc, 1000), frame(false, 2, cc)}));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // so that "stale" holds

    Cursor a, b;
    CHECK(ring.attach(a));        // asks
    CHECK_FALSE(ring.attach(b));  // the one asked for is coming: no second request
    ring.push(frame(true, 3, cc, 2000));
    for (Cursor *c : {&a, &b}) {
        REQUIRE(ring.next(*c));  // PAT+PMT
        auto key = ring.next(*c);
        REQUIRE(key);
        CHECK(ts::pes_pts(ts::parse_packet(std::span(key->bytes).first(188))->payload) == 2000u);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));

    // A viewer that just forced one is refused, and served at once from the held keyframe.
    stream::KeyframeBudget budget(std::chrono::hours(1));
    Cursor first, again;
    CHECK(ring.attach(first, &budget));
    ring.push(frame(true, 3, cc, 3000));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    CHECK_FALSE(ring.attach(again, &budget));
    CHECK(budget.refused() == 1);
    CHECK(expect_clean_start(ring, again) == 3000u);
    auto s = ring.stats();
    CHECK(s["keyframes_forced"] == 2);
    CHECK(s["keyframes_refused"] == 1);
    for (Cursor *c : {&a, &b, &first, &again}) ring.detach(*c);
}

namespace {

// PAT, PMT and a keyframe at start, then a keyframe whenever one is asked for (counted), as an
// encoder honouring force-key-unit does; nothing else, so every later joiner finds a stale one.
class KeyframeOnRequestProducer final : public Producer {
public:
    void start(Sink &sink) override {
        sink_ = &sink;
        sink.on_data(cat({pat(0), pmt(0), frame(true, 4, cc_, 9000)}));
    }
    void stop() override { sink_ = nullptr; }
    // On the control thread, like start() and stop().
    void request_keyframe() override {
        ++asked;
        if (sink_) sink_->on_data(frame(true, 4, cc_, 9000));
    }
    nlohmann::json describe() const override { return {{"kind", "test"}}; }
    std::atomic<int> asked{0};

private:
    Sink *sink_ = nullptr;
    uint8_t cc_ = 0;
};

// Subscribes and reads until the first bytes arrive; returns how long that took.
std::chrono::milliseconds join_and_read(FanoutSource &source, stream::KeyframeBudget *budget) {
    WakeFlag flag;
    auto t0 = SteadyClock::now();
    auto reader = source.subscribe(flag.callback(), budget);
    auto deadline = t0 + 30s;
    for (;;) {
        auto span = reader->read(64 * 1024);
        if (!span.empty()) {
            reader->release(span.size());
            break;
        }
        REQUIRE(SteadyClock::now() < deadline);
        flag.wait(50ms);
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0);
}

} // namespace

TEST_CASE("one viewer reopening the stream in a loop forces at most one keyframe; each join is served", "[fanout][keyframes]") {
    auto producer = std::make_unique<KeyframeOnRequestProducer>();
    auto *p = producer.get();
    Options o;
    o.limits = test_limits();
    o.limits.fresh_keyframe = std::chrono::milliseconds(0);  // every joiner wants a fresh one
    FanoutSource source(std::move(producer), o);

    stream::KeyframeBudget viewer;  // the host's default, 2 s: ten joins come well within it
    auto t0 = SteadyClock::now();
    join_and_read(source, &viewer);  // starts the producer: its first frame is a keyframe anyway
    for (int i = 0; i < 9; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the held keyframe is now stale
        // A refused join is served from the held keyframe: no waiting for one (30 s = stuck).
        join_and_read(source, &viewer);
    }
    auto took = SteadyClock::now() - t0;
    // Each join used to force one (9 here). A machine so loaded that the loop took over 2 s may
    // rightly grant a second.
    CHECK(p->asked <= (took < 2s ? 1 : 1 + took / 2s));
    CHECK(viewer.forced() == static_cast<uint64_t>(p->asked.load()));
    CHECK(viewer.refused() + viewer.forced() == 9);
    auto ring = source.stats()["ring"];
    CHECK(ring["keyframes_refused"] == viewer.refused());

    // Another viewer's budget is its own: its join still gets a fresh keyframe.
    int before = p->asked;
    stream::KeyframeBudget other;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    join_and_read(source, &other);
    CHECK(p->asked == before + 1);
    CHECK(other.forced() == 1);
}

// Rate control probes a path with filler (ratecontrol::Options::probe_share): null packets a reader
// hands out between two segments, never inside one, counted apart until they are released.
TEST_CASE("a reader's filler is null packets between segments, counted until released", "[fanout][padding]") {
    auto producer = std::make_unique<KeyframeOnRequestProducer>();
    auto *p = producer.get();
    Options o;
    o.limits = test_limits();
    FanoutSource source(std::move(producer), o);
    WakeFlag flag;
    auto reader = source.subscribe(flag.callback());
    std::vector<uint8_t> start;  // PAT, PMT and the first keyframe: whole segments
    auto deadline = SteadyClock::now() + 30s;
    while (start.size() < 6 * 188) {
        auto span = reader->read(1 << 20);
        start.insert(start.end(), span.begin(), span.end());
        if (span.empty()) {
            REQUIRE(SteadyClock::now() < deadline);
            flag.wait(50ms);
        }
    }
    CHECK(start.size() == 6 * 188);

    REQUIRE(reader->pad(1000));  // rounded up to whole packets: 6
    p->request_keyframe();        // the next segment, queued behind the filler
    auto filler = reader->read(1 << 20);
    REQUIRE(filler.size() == 6 * 188);
    for (size_t i = 0; i < 6; ++i) {
        auto pkt = ts::parse_packet(filler.subspan(i * 188, 188));
        REQUIRE(pkt);
        CHECK(pkt->pid == ts::kNullPid);
    }
    auto stats = reader->stats();
    CHECK(stats["padding_bytes"] == 6 * 188);
    CHECK(stats["padding_held_bytes"] == 6 * 188);
    CHECK(stats["held_bytes"] == 12 * 188);

    std::span<const uint8_t> next;
    while ((next = reader->read(1 << 20)).empty()) {
        REQUIRE(SteadyClock::now() < deadline);
        flag.wait(50ms);
    }
    auto key = ts::parse_packet(next.first(188));
    REQUIRE(key);
    CHECK(key->pid == kVideoPid);
    CHECK(key->random_access);  // the stream resumes at the segment's start, whole

    reader->release(6 * 188 + 3 * 188);  // the start, and half the filler
    CHECK(reader->stats()["padding_held_bytes"] == 3 * 188);
    reader->release(3 * 188 + next.size());
    stats = reader->stats();
    CHECK(stats["padding_held_bytes"] == 0);
    CHECK(stats["held_bytes"] == 0);
    CHECK(stats["padding_bytes"] == 6 * 188);
}
