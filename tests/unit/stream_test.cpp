// stream: the deterministic synthetic Source (byte function, zero-copy reader, pacing, wakes).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "stream/synthetic.hpp"

using namespace pp;
using namespace pp::stream;
using namespace std::chrono_literals;

TEST_CASE("synthetic bytes are a pure function of the offset", "[stream]") {
    // Fill at every alignment and length agrees with the byte function.
    std::vector<uint8_t> buf(100);
    for (uint64_t offset : {0ULL, 1ULL, 7ULL, 8ULL, 13ULL, 4096ULL + 3, (1ULL << 40) + 5}) {
        for (size_t len : {0UL, 1UL, 7UL, 8UL, 9UL, 63UL, 100UL}) {
            synthetic_fill(offset, std::span(buf.data(), len));
            for (size_t i = 0; i < len; ++i) REQUIRE(buf[i] == synthetic_byte(offset + i));
        }
    }
    // Not a short period: no 8-byte window repeats at the shifts a transport bug would cause.
    std::vector<uint8_t> a(1 << 16), b(1 << 16);
    synthetic_fill(0, a);
    for (uint64_t shift : {1ULL, 8ULL, 1200ULL, 65536ULL, 1ULL << 20}) {
        synthetic_fill(shift, b);
        CHECK(a != b);
        CHECK(synthetic_mismatch(0, b).has_value());
    }
}

TEST_CASE("synthetic_mismatch finds the exact offset of a bad byte", "[stream]") {
    std::vector<uint8_t> data(20000);
    const uint64_t base = 123457;
    synthetic_fill(base, data);
    CHECK_FALSE(synthetic_mismatch(base, data).has_value());
    for (size_t bad : {0UL, 1UL, 4095UL, 4096UL, 9999UL, 19999UL}) {
        auto copy = data;
        copy[bad] ^= 0x01;
        auto at = synthetic_mismatch(base, copy);
        REQUIRE(at.has_value());
        CHECK(*at == base + bad);
    }
    CHECK(synthetic_mismatch(base + 1, data).value() == base + 1);
}

TEST_CASE("an unpaced finite reader yields exactly the stream, zero-copy until release",
          "[stream]") {
    const uint64_t length = 3 * 1024 * 1024 + 12345; // not a multiple of the chunk size
    SyntheticSource source(SyntheticConfig{length, 0, 10ms});
    auto describe = source.describe();
    CHECK(describe["kind"] == "synthetic");
    CHECK(describe["length"] == length);
    CHECK(describe["rate_bps"] == 0);

    auto reader = source.subscribe(nullptr);
    uint64_t offset = 0;
    std::vector<std::pair<uint64_t, std::span<const uint8_t>>> held; // read, not yet released
    size_t round = 0;
    while (!reader->at_end()) {
        size_t max = 1 + (round * 7919) % 200000; // odd sizes across chunk boundaries
        auto span = reader->read(max);
        REQUIRE_FALSE(span.empty()); // unpaced: never dry before the end
        REQUIRE(span.size() <= max);
        held.emplace_back(offset, span);
        offset += span.size();
        // Release in bursts, checking that every held span is still intact first.
        if (++round % 5 == 0) {
            size_t n = 0;
            for (auto &[at, s] : held) {
                REQUIRE_FALSE(synthetic_mismatch(at, s).has_value());
                n += s.size();
            }
            reader->release(n);
            held.clear();
        }
    }
    for (auto &[at, s] : held) REQUIRE_FALSE(synthetic_mismatch(at, s).has_value());
    CHECK(offset == length);
    CHECK(reader->read(1000).empty());
    CHECK(reader->stats()["bytes"] == length);
    CHECK(reader->stats()["drops"] == 0);

    // Releasing more than was read is a caller bug and says so.
    auto other = source.subscribe(nullptr);
    auto s = other->read(10);
    REQUIRE(s.size() == 10);
    CHECK_THROWS_AS(other->release(11), pp::Error);
    // Each reader starts at 0.
    CHECK_FALSE(synthetic_mismatch(0, s).has_value());
}

TEST_CASE("an endless reader keeps memory to what is unreleased", "[stream]") {
    SyntheticSource source;
    CHECK(source.describe()["length"].is_null());
    auto reader = source.subscribe(nullptr);
    uint64_t offset = 0;
    while (offset < 64ULL * 1024 * 1024) {
        auto span = reader->read(1 << 20);
        REQUIRE_FALSE(span.empty());
        if (offset % (8 << 20) < span.size())
            REQUIRE_FALSE(synthetic_mismatch(offset, span).has_value());
        offset += span.size();
        reader->release(span.size());
        REQUIRE(reader->stats()["unreleased"] == 0);
    }
    CHECK_FALSE(reader->at_end());
}

TEST_CASE("a paced reader gets bytes at the rate and is woken when more is due", "[stream]") {
    const uint64_t rate = 2'000'000; // 250 kB/s: slow enough for a sanitizer build to keep up
    SyntheticSource source(SyntheticConfig{std::nullopt, rate, 10ms});
    CHECK(source.describe()["rate_bps"] == rate);

    std::mutex m;
    std::condition_variable cv;
    int wakes = 0;
    auto start =
        std::chrono::steady_clock::now(); // before subscribe: the reader's clock starts there
    auto reader = source.subscribe([&] {
        std::lock_guard lock(m);
        ++wakes;
        cv.notify_all();
    });

    uint64_t offset = 0;
    int empties = 0;
    size_t min_read = SIZE_MAX;
    while (std::chrono::steady_clock::now() - start < 400ms) {
        int seen;
        {
            std::lock_guard lock(m);
            seen = wakes;
        }
        auto span = reader->read(1 << 20);
        if (span.empty()) {
            ++empties;
            std::unique_lock lock(m);
            // A dry reader must be woken: a burst is due within ~10 ms.
            REQUIRE(cv.wait_for(lock, 1s, [&] { return wakes > seen; }));
            continue;
        }
        REQUIRE_FALSE(synthetic_mismatch(offset, span).has_value());
        offset += span.size();
        min_read = std::min(min_read, span.size());
        reader->release(span.size());
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double expected = seconds * rate / 8 + 2'500; // plus the initial 10 ms burst
    INFO("got " << offset << " bytes in " << seconds << " s; expected about " << expected);
    CHECK(offset <= expected + 1);
    CHECK(offset >= expected * 0.8);
    // Bytes come in 10 ms bursts (2500 bytes here): it ran dry between them and was woken per
    // burst, never finding a trickle of a few new bytes at each try.
    CHECK(empties > 5);
    CHECK(empties <= 45);
    CHECK(min_read >= 2500); // (all within the first 128 KiB chunk: no read split at its end)

    // After the reader is gone, its wake is never called again.
    reader.reset();
    int after;
    {
        std::lock_guard lock(m);
        after = wakes;
    }
    std::this_thread::sleep_for(50ms);
    std::lock_guard lock(m);
    CHECK(wakes == after);
}

TEST_CASE("paced readers are independent and may outlive their source", "[stream]") {
    // 100 kB/s in 1000-byte bursts every 10 ms.
    auto source = std::make_unique<SyntheticSource>(SyntheticConfig{4000, 800'000, 10ms});
    std::mutex m;
    std::condition_variable cv;
    int wakes = 0;
    auto wake = [&] {
        std::lock_guard lock(m);
        ++wakes;
        cv.notify_all();
    };
    auto r1 = source->subscribe(wake);
    std::this_thread::sleep_for(25ms);
    auto r2 = source->subscribe(wake);
    source.reset(); // the ticker lives on with the readers

    // r1 started earlier: more is due for it.
    auto a = r1->read(1 << 20);
    auto b = r2->read(1 << 20);
    CHECK(b.size() >= 1000);
    CHECK(a.size() >= b.size() + 2000); // at least two more bursts
    CHECK_FALSE(synthetic_mismatch(0, a).has_value());
    CHECK_FALSE(synthetic_mismatch(0, b).has_value());
    r1->release(a.size());
    r2->release(b.size());

    uint64_t got = b.size();
    while (!r2->at_end()) {
        int seen;
        {
            std::lock_guard lock(m);
            seen = wakes;
        }
        auto s = r2->read(1 << 20);
        if (s.empty()) {
            std::unique_lock lock(m);
            REQUIRE(cv.wait_for(lock, 1s, [&] { return wakes > seen; }));
            continue;
        }
        REQUIRE_FALSE(synthetic_mismatch(got, s).has_value());
        got += s.size();
        r2->release(s.size());
    }
    CHECK(got == 4000);
    CHECK(r2->read(1).empty());
}
