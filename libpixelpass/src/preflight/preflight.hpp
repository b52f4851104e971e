// preflight: measures the host's upstream bandwidth once (a ~5 s / ~5 MB HTTP upload to a
// speed-test endpoint, with the user's consent) and stores a safe estimate in the config, from
// which the default viewer cap is derived. Never runs by itself: the caller asks first.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "config/config.hpp"

namespace pp::preflight {

// Cloudflare's public upload endpoint: accepts and discards a POST body.
inline constexpr const char *kDefaultEndpoint = "https://speed.cloudflare.com/__up";

struct Options {
    std::string endpoint;                 // empty = endpoint(config)
    double seconds = 5.0;                 // stop uploading after this long
    uint64_t max_bytes = 5'000'000;       // or after this much
    std::function<void(double fraction, double mbps)> progress;  // may be empty
};

struct Result {
    bool ok = false;
    double raw_mbps = 0;       // what the upload achieved
    double upstream_mbps = 0;  // raw × kSafetyFactor: what we plan with
    uint64_t bytes = 0;
    double seconds = 0;
    std::string endpoint;
    std::string error;         // why it failed
};

// The endpoint to use: $PIXELPASS_SPEEDTEST_URL, else [bandwidth] endpoint, else the default.
std::string endpoint(const config::Config &config);

// Uploads and measures; touches no file. Never throws for network failures (see Result::error).
Result measure(const Options &options);

// Measures and records the outcome in the config ([bandwidth] status measured or failed,
// upstream_mbps, measured_at). A broken config file is reported before any upload.
Result run(Options options, const std::string &config_path = config::default_path());

// Records that the user declined: the test is not offered again until --reconfigure.
void skip(const std::string &config_path = config::default_path());

// True on the first run: nothing measured, skipped or failed yet.
bool needed(const config::Config &config);

} // namespace pp::preflight
