// fanout/ts: just enough MPEG-TS parsing to cut a multiplex at clean start points. It follows
// PAT → PMT to learn the video PID, keeps the newest PAT and PMT packets (a late joiner needs
// them first), and spots video random-access points (PUSI + random_access_indicator, which
// mpegtsmux sets on every IDR). Pure functions over bytes: no GStreamer, easy to test and fuzz.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace pp::fanout::ts {

inline constexpr size_t kPacketSize = 188;
inline constexpr uint8_t kSyncByte = 0x47;
inline constexpr uint16_t kPatPid = 0x0000;
inline constexpr uint16_t kNullPid = 0x1fff;

// Header fields of one 188-byte packet.
struct Packet {
    uint16_t pid = kNullPid;
    bool payload_start = false;   // PUSI: a PES or a section starts in this packet
    bool random_access = false;   // adaptation field random_access_indicator
    bool has_payload = false;
    uint8_t continuity = 0;
    std::span<const uint8_t> payload;  // after the adaptation field
};

// `count` null packets (PID 0x1fff): filler every demuxer discards.
std::vector<uint8_t> null_packets(size_t count);

// Parses one packet header; nullopt when `bytes` is not a well-formed TS packet.
std::optional<Packet> parse_packet(std::span<const uint8_t> bytes);

// PTS (90 kHz) of a PES that starts in `payload` (the payload of a PUSI packet), if it has one.
std::optional<uint64_t> pes_pts(std::span<const uint8_t> payload);

// What a packet is, for the fan-out's cutting decisions.
enum class Kind { other, pat, pmt, video_start, video_keyframe, audio_start };

// Follows the program tables of one multiplex. Feed every packet in order.
class ProgramTracker {
public:
    Kind feed(std::span<const uint8_t> packet);

    uint16_t pmt_pid() const { return pmt_pid_; }
    uint16_t video_pid() const { return video_pid_; }
    uint16_t audio_pid() const { return audio_pid_; }
    uint8_t video_stream_type() const { return video_type_; }
    // The newest PAT and PMT packets (empty until seen). A joiner gets these before its keyframe.
    std::span<const uint8_t> pat() const { return {pat_.data(), have_pat_ ? kPacketSize : 0}; }
    std::span<const uint8_t> pmt() const { return {pmt_.data(), have_pmt_ ? kPacketSize : 0}; }

private:
    void parse_pat(std::span<const uint8_t> payload);
    void parse_pmt(std::span<const uint8_t> payload);

    uint16_t pmt_pid_ = kNullPid, video_pid_ = kNullPid, audio_pid_ = kNullPid;
    uint8_t video_type_ = 0;
    std::array<uint8_t, kPacketSize> pat_{}, pmt_{};
    bool have_pat_ = false, have_pmt_ = false;
};

// Summary of a TS byte stream, for tests and diagnostics: how it starts and what it carries.
struct StreamSummary {
    size_t packets = 0;
    size_t bad_packets = 0;         // wrong sync byte or truncated
    size_t video_pes = 0;           // video PES starts (≈ frames)
    size_t video_keyframes = 0;
    size_t audio_pes = 0;
    size_t continuity_errors = 0;   // CC jumps on the video PID (a cut or a loss)
    std::vector<uint16_t> first_pids;  // PIDs of the first few packets, in order
    bool first_video_is_keyframe = false;
    std::optional<uint64_t> first_video_pts;  // 90 kHz
};
StreamSummary summarize(std::span<const uint8_t> bytes, size_t first_pid_count = 4);

} // namespace pp::fanout::ts
