// Hand-made MPEG-TS packets for tests: PAT → PMT (video 0x41 H.264, audio 0x42) and video frames
// whose first packet carries a PES header with a PTS (and, for a keyframe, the random access flag).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace pp::test::tsp {

constexpr uint16_t kPmtPid = 0x20, kVideoPid = 0x41, kAudioPid = 0x42;

inline std::vector<uint8_t> packet(uint16_t pid, bool pusi, uint8_t cc, bool random_access = false) {
    std::vector<uint8_t> p(188, 0xff);
    p[0] = 0x47;
    p[1] = static_cast<uint8_t>((pusi ? 0x40 : 0) | (pid >> 8));
    p[2] = static_cast<uint8_t>(pid & 0xff);
    if (random_access) {
        p[3] = static_cast<uint8_t>(0x30 | (cc & 0x0f)); // adaptation + payload
        p[4] = 1;
        p[5] = 0x40; // random_access_indicator
    } else {
        p[3] = static_cast<uint8_t>(0x10 | (cc & 0x0f));
    }
    return p;
}

inline std::vector<uint8_t> pat(uint8_t cc = 0) {
    auto p = packet(0, true, cc);
    const uint8_t section[] = {0x00, 0x00, 0xb0, 13, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01,
                               static_cast<uint8_t>(0xe0 | (kPmtPid >> 8)), kPmtPid & 0xff, 0, 0, 0, 0};
    std::copy(std::begin(section), std::end(section), p.begin() + 4);
    return p;
}

inline std::vector<uint8_t> pmt(uint8_t cc = 0) {
    auto p = packet(kPmtPid, true, cc);
    const uint8_t section[] = {0x00, 0x02, 0xb0, 23,   0x00, 0x01,      0xc1, 0x00, 0x00, 0xe0,
                               kVideoPid, 0xf0, 0x00, 0x1b, 0xe0, kVideoPid, 0xf0, 0x00, 0x0f, 0xe0,
                               kAudioPid, 0xf0, 0x00, 0,    0,    0,         0};
    std::copy(std::begin(section), std::end(section), p.begin() + 4);
    return p;
}

// A video frame of `packets` TS packets; the first carries a PES header with `pts` (90 kHz).
inline std::vector<uint8_t> frame(bool key, size_t packets, uint8_t &cc, uint64_t pts) {
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

} // namespace pp::test::tsp
