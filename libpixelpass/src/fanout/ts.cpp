#include "fanout/ts.hpp"

#include <algorithm>
#include <cstring>

namespace pp::fanout::ts {

namespace {

// Stream types (ISO 13818-1 table 2-34 and its amendments) we treat as video or audio.
bool is_video_type(uint8_t t) { return t == 0x01 || t == 0x02 || t == 0x1b || t == 0x24; }
bool is_audio_type(uint8_t t) { return t == 0x03 || t == 0x04 || t == 0x0f || t == 0x11 || t == 0x81; }

// The section that starts in a PUSI packet's payload: skips the pointer field and checks the
// table id and that the declared length fits (our muxer's PAT/PMT always fit one packet).
std::optional<std::span<const uint8_t>> section(std::span<const uint8_t> payload, uint8_t table_id) {
    if (payload.empty()) return std::nullopt;
    size_t pointer = payload[0];
    if (1 + pointer + 3 > payload.size()) return std::nullopt;
    auto s = payload.subspan(1 + pointer);
    if (s[0] != table_id) return std::nullopt;
    size_t length = ((s[1] & 0x0f) << 8) | s[2];
    if (3 + length > s.size() || length < 9) return std::nullopt;
    return s.first(3 + length);
}

} // namespace

std::vector<uint8_t> null_packets(size_t count) {
    std::vector<uint8_t> bytes(count * kPacketSize, 0xff);
    for (size_t i = 0; i < count; ++i) {
        uint8_t *p = bytes.data() + i * kPacketSize;
        p[0] = kSyncByte;
        p[1] = kNullPid >> 8;
        p[2] = kNullPid & 0xff;
        p[3] = 0x10;  // payload only; the continuity counter of null packets is not checked
    }
    return bytes;
}

std::optional<Packet> parse_packet(std::span<const uint8_t> b) {
    if (b.size() < kPacketSize || b[0] != kSyncByte) return std::nullopt;
    Packet p;
    p.payload_start = (b[1] & 0x40) != 0;
    p.pid = static_cast<uint16_t>(((b[1] & 0x1f) << 8) | b[2]);
    uint8_t afc = (b[3] >> 4) & 0x3;
    p.continuity = b[3] & 0x0f;
    p.has_payload = (afc & 0x1) != 0;
    size_t offset = 4;
    if (afc & 0x2) {
        size_t af_length = b[4];
        if (5 + af_length > kPacketSize) return std::nullopt;
        if (af_length > 0) p.random_access = (b[5] & 0x40) != 0;
        offset = 5 + af_length;
    }
    if (p.has_payload) p.payload = b.subspan(offset, kPacketSize - offset);
    return p;
}

std::optional<uint64_t> pes_pts(std::span<const uint8_t> p) {
    // packet_start_code_prefix, stream_id, PES_packet_length, flags, header length, PTS
    if (p.size() < 14 || p[0] != 0 || p[1] != 0 || p[2] != 1) return std::nullopt;
    if ((p[7] & 0x80) == 0) return std::nullopt;
    uint64_t pts = (uint64_t(p[9] & 0x0e) << 29) | (uint64_t(p[10]) << 22) |
                   (uint64_t(p[11] & 0xfe) << 14) | (uint64_t(p[12]) << 7) | (uint64_t(p[13]) >> 1);
    return pts;
}

void ProgramTracker::parse_pat(std::span<const uint8_t> payload) {
    auto s = section(payload, 0x00);
    if (!s) return;
    // 8 bytes of header after table_id/length, 4 bytes of CRC at the end.
    for (size_t i = 8; i + 4 <= s->size() - 4; i += 4) {
        uint16_t program = static_cast<uint16_t>(((*s)[i] << 8) | (*s)[i + 1]);
        uint16_t pid = static_cast<uint16_t>((((*s)[i + 2] & 0x1f) << 8) | (*s)[i + 3]);
        if (program != 0) {  // program 0 is the network PID
            pmt_pid_ = pid;
            return;
        }
    }
}

void ProgramTracker::parse_pmt(std::span<const uint8_t> payload) {
    auto s = section(payload, 0x02);
    if (!s || s->size() < 12 + 4) return;
    size_t info_length = (((*s)[10] & 0x0f) << 8) | (*s)[11];
    size_t i = 12 + info_length;
    uint16_t video = kNullPid, audio = kNullPid;
    uint8_t video_type = 0;
    while (i + 5 <= s->size() - 4) {
        uint8_t type = (*s)[i];
        uint16_t pid = static_cast<uint16_t>((((*s)[i + 1] & 0x1f) << 8) | (*s)[i + 2]);
        size_t es_info = (((*s)[i + 3] & 0x0f) << 8) | (*s)[i + 4];
        if (is_video_type(type) && video == kNullPid) {
            video = pid;
            video_type = type;
        } else if (is_audio_type(type) && audio == kNullPid) {
            audio = pid;
        }
        i += 5 + es_info;
    }
    video_pid_ = video;
    video_type_ = video_type;
    audio_pid_ = audio;
}

Kind ProgramTracker::feed(std::span<const uint8_t> bytes) {
    auto p = parse_packet(bytes);
    if (!p) return Kind::other;
    if (p->pid == kPatPid && p->payload_start) {
        std::memcpy(pat_.data(), bytes.data(), kPacketSize);
        have_pat_ = true;
        parse_pat(p->payload);
        return Kind::pat;
    }
    if (p->pid == pmt_pid_ && p->pid != kNullPid && p->payload_start) {
        std::memcpy(pmt_.data(), bytes.data(), kPacketSize);
        have_pmt_ = true;
        parse_pmt(p->payload);
        return Kind::pmt;
    }
    if (p->pid == video_pid_ && p->payload_start)
        return p->random_access ? Kind::video_keyframe : Kind::video_start;
    if (p->pid == audio_pid_ && p->payload_start) return Kind::audio_start;
    return Kind::other;
}

StreamSummary summarize(std::span<const uint8_t> bytes, size_t first_pid_count) {
    StreamSummary out;
    ProgramTracker tracker;
    int last_cc = -1;
    for (size_t off = 0; off < bytes.size(); off += kPacketSize) {
        auto pkt = bytes.subspan(off, std::min(kPacketSize, bytes.size() - off));
        auto p = parse_packet(pkt);
        if (!p) {
            ++out.bad_packets;
            continue;
        }
        ++out.packets;
        if (out.first_pids.size() < first_pid_count) out.first_pids.push_back(p->pid);
        Kind kind = tracker.feed(pkt);
        if (p->pid == tracker.video_pid() && p->has_payload) {
            if (last_cc >= 0 && p->continuity != ((last_cc + 1) & 0x0f)) ++out.continuity_errors;
            last_cc = p->continuity;
        }
        if (kind == Kind::video_start || kind == Kind::video_keyframe) {
            if (out.video_pes == 0) {
                out.first_video_is_keyframe = kind == Kind::video_keyframe;
                out.first_video_pts = pes_pts(p->payload);
            }
            ++out.video_pes;
            if (kind == Kind::video_keyframe) ++out.video_keyframes;
        } else if (kind == Kind::audio_start) {
            ++out.audio_pes;
        }
    }
    return out;
}

} // namespace pp::fanout::ts
