// publish/target: what `--publish URL` names — an RTMP(S) or SRT media server that receives the
// host's encoded stream beside the P2P viewers. Parsing only (no GStreamer), so the CLI, the
// config file and the fuzzer share one checked reading of outside input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pp::publish {

enum class Protocol { rtmp, rtmps, srt };

struct Target {
    Protocol protocol = Protocol::rtmp;
    std::string url;    // what the sink element gets, stream key included: never log it
    std::string label;  // the URL with the stream key and SRT passphrase masked, for logs and stats
    std::string host;
    uint16_t port = 0;
    std::string srt_mode;  // "caller" or "listener" (SRT only)
    bool uses_key = false; // the stream name came from --publish-key-file
};

// Parses one URL. `key` (may be empty) is the stream key read from --publish-key-file: it is
// appended to an rtmp(s):// URL that names only the application ("rtmp://host/live"). Throws
// pp::Error(PP_ERR_INVALID_ARGUMENT) with one line saying what is wrong and what to do.
Target parse_target(std::string_view url, std::string_view key = {});

// Parses every URL; a non-empty `key` must be used by at least one of them.
std::vector<Target> parse_targets(const std::vector<std::string> &urls, std::string_view key);

const char *protocol_name(Protocol p) noexcept;

} // namespace pp::publish
