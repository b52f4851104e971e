// libFuzzer target for the MPEG-TS parser the fan-out (host) and the viewer's checks run over
// the multiplex: arbitrary bytes fed as 188-byte packets must never read outside a packet,
// every payload must lie inside its packet, and the program tracker must keep only what a packet
// carried (its PAT/PMT copies are whole packets with the sync byte).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "fanout/ts.hpp"

namespace ts = pp::fanout::ts;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::span<const uint8_t> bytes(data, size);
    ts::ProgramTracker tracker;
    for (size_t off = 0; off < size; off += ts::kPacketSize) {
        auto pkt = bytes.subspan(off, std::min(ts::kPacketSize, size - off));
        auto p = ts::parse_packet(pkt);
        if (p) {
            if (pkt.size() < ts::kPacketSize) std::abort();  // a short packet never parses
            if (p->has_payload) {
                if (p->payload.data() < pkt.data() ||
                    p->payload.data() + p->payload.size() != pkt.data() + ts::kPacketSize)
                    std::abort();
                if (p->payload_start) (void)ts::pes_pts(p->payload);
            } else if (!p->payload.empty()) {
                std::abort();
            }
        }
        ts::Kind kind = tracker.feed(pkt);
        if (kind != ts::Kind::other && !p) std::abort();
        if ((kind == ts::Kind::video_start || kind == ts::Kind::video_keyframe) && p->pid != tracker.video_pid())
            std::abort();
    }
    for (auto table : {tracker.pat(), tracker.pmt()})
        if (!table.empty() && (table.size() != ts::kPacketSize || table[0] != ts::kSyncByte)) std::abort();
    auto s = ts::summarize(bytes);
    if (s.packets + s.bad_packets != (size + ts::kPacketSize - 1) / ts::kPacketSize) std::abort();
    if (s.video_keyframes > s.video_pes || s.first_pids.size() > 4) std::abort();
    return 0;
}
