// media/decoder: decodes an MPEG-TS byte stream in-process (tsdemux → h264parse → avdec_h264,
// aacparse → avdec_aac) and reports what came out: frames, size, audio, decoder complaints, how
// soon the first picture appeared, and each picture's mean brightness. Tests use it to prove a
// stream is really playable; `pixelpass demo` uses it when there is no display for a player.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pp::media {

struct DecodeReport {
    uint64_t video_frames = 0;   // decoded pictures
    uint64_t audio_buffers = 0;  // decoded audio buffers
    uint64_t audio_samples = 0;  // decoded audio samples per channel
    int width = 0, height = 0;
    bool eos = false;            // the decoder drained everything it was fed
    std::vector<std::string> problems;  // decoder/demuxer errors and warnings from the bus
    double first_frame_ms = -1;  // first feed() → first decoded picture
    std::vector<double> luma;    // mean luma (0–255) of the first decoded pictures (up to 1000)
    std::vector<uint64_t> signature;  // a hash of each of those pictures' sampled luma: motion
    std::vector<uint64_t> pts_ns;  // their timestamps (demuxer's timeline)
    std::vector<double> decoded_unix_ms;  // when each of them left the decoder (wall clock)

    nlohmann::json to_json() const;
};

class TsDecoder {
public:
    // Throws PP_ERR_MISSING_PLUGIN (naming the package) when a decoder element is missing.
    TsDecoder();
    ~TsDecoder();
    TsDecoder(const TsDecoder &) = delete;
    TsDecoder &operator=(const TsDecoder &) = delete;

    // Queues bytes for decoding (copied). Any thread, one at a time.
    void feed(std::span<const uint8_t> bytes);
    // Ends the input, waits (up to `timeout`) for everything to be decoded, and reports.
    DecodeReport finish(std::chrono::milliseconds timeout = std::chrono::seconds(20));
    // What has been decoded so far.
    DecodeReport snapshot() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace pp::media
