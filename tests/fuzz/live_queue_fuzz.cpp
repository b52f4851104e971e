// libFuzzer target for the viewer's player queue (viewer/live_queue), which parses the host's
// MPEG-TS stream as it arrives: arbitrary bytes, pushed in pieces whose sizes the input picks and
// taken out in between, must never break its bounds. In TS mode what it hands out is whole packets
// with the sync byte; it never holds more than its byte bound plus one push; what comes out plus
// what it holds, and what it dropped, never exceed what went in plus the tables it inserts at skips.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "viewer/live_queue.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    // The first byte sets the bounds (small, so the fuzzer reaches the skips and the byte cap).
    pp::viewer::LiveQueue q({std::chrono::milliseconds(1 + data[0] % 64), size_t{188} * (1 + data[1] % 32u)});
    std::span<const uint8_t> rest(data + 2, size - 2);
    uint64_t in = 0, out = 0;
    while (!rest.empty()) {
        // Each step: a piece length (1..512) from one byte, whether to take everything after it.
        size_t n = std::min<size_t>(rest.size(), 1 + (rest[0] * 2u));
        bool take = rest[0] & 1;
        q.push(rest.first(n));
        in += n;
        rest = rest.subspan(n);
        auto front = q.front();
        if (front.size() != q.size()) std::abort();
        if (q.is_ts()) {
            if (front.size() % 188 != 0) std::abort();
            for (size_t i = 0; i < front.size(); i += 188)
                if (front[i] != 0x47) std::abort();
            if (q.size() > 188 * 32 + 512 + 2 * 188) std::abort();
        }
        if (q.lag().count() < 0) std::abort();
        if (take) {
            out += front.size();
            q.pop(front.size());
            if (q.size() != 0) std::abort();
        }
    }
    if (out + q.size() > in + q.skips() * 2 * 188 + 2 * 188) std::abort();
    if (q.skipped_bytes() > in + q.skips() * 2 * 188) std::abort(); // tables it inserted may be dropped too
    return 0;
}
