// config: the user's settings file, $XDG_CONFIG_HOME/pixelpass/config.toml (else ~/.config/...).
// It holds the host's defaults (bitrate, viewer cap, player, encoder, relay, STUN servers) and the
// result of the bandwidth pre-flight. A missing file is the first-run state. A broken file is an
// error naming line and column and is never written over. Edits change only the lines of the keys
// they set, so the user's comments and layout survive, and land atomically (temp + fsync + rename).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/host.hpp"
#include "viewer/viewer.hpp"

namespace pp::config {

struct Bandwidth {
    std::string status = "unmeasured";  // measured | skipped | failed | unmeasured
    double upstream_mbps = 0;           // the safe estimate: raw × 0.8
    std::string measured_at;            // RFC 3339 UTC
    std::string endpoint;               // speed-test upload URL; empty = the built-in default
};

struct Config {
    std::string path;
    bool exists = false;
    std::optional<unsigned> bitrate_kbps, max_viewers;
    std::string player = "auto";  // [viewer]: the player the menu offers first
    std::string encoder = "auto", relay;
    std::optional<std::vector<std::string>> stun_servers;  // unset = the library's defaults
    std::string relay_secret;   // coturn use-auth-secret for `relay`
    std::vector<std::string> publish;  // [host] publish: media servers fed on every host start
    bool port_mapping = true;   // [network] port_mapping = "off": ask the gateway for nothing
    bool dht = true;            // [network] dht = "off": no rendezvous over the DHT
    std::optional<std::vector<std::string>> dht_bootstrap;  // unset = the public OpenDHT bootstrap
    std::string congestion_control = "auto";  // [network]: cubic | bbr | bbr2 | reno | auto (the default)
    Bandwidth bandwidth;
    std::vector<std::string> warnings;  // unknown keys, "file:line:col: ..." each
};

// The bitrate the viewer cap is sized for when none is configured: the media module's default
// video bitrate plus its AAC track.
inline constexpr unsigned kAssumedViewerKbps = 6000 + 128;
inline constexpr double kSafetyFactor = 0.8;

// Where the file lives: $XDG_CONFIG_HOME/pixelpass/config.toml, else $HOME/.config/pixelpass/...
std::string default_path();

// Parses `text` (named `path` in messages). Throws Error(PP_ERR_CONFIG, "path:line:col: what").
Config parse(std::string_view text, const std::string &path);
// Reads and parses the file; a missing file gives the defaults with exists = false.
Config load(const std::string &path = default_path());

nlohmann::json to_json(const Config &config);

// Sets "table.key" to `value` (string, number, bool or array of strings) in `text`: replaces the
// old value's characters only, or adds the key at the end of its table, or appends the table.
// Returns the new text. Throws Error(PP_ERR_INVALID_ARGUMENT) for an unknown key or a value of the
// wrong type, Error(PP_ERR_CONFIG) when `text` does not parse.
std::string edit(std::string_view text, std::string_view key, const nlohmann::json &value,
                 const std::string &path = "config.toml");

// Applies the assignments to the file (creating it and its directory when missing) in one atomic
// replacement. A file that does not parse is left byte-identical and the call throws.
void set(const std::vector<std::pair<std::string, nlohmann::json>> &assignments,
         const std::string &path = default_path());

// Writes `text` to `path` through a temp file in the same directory (random name, O_EXCL), fsync,
// rename, fsync of the directory. A new file is mode 0600; an existing one keeps its owner bits
// and loses group/other access (it may hold the relay secret). Throws Error(PP_ERR_CONFIG) when
// `path` is a symbolic link (a rename would silently replace the link with a file).
void write_atomic(const std::string &path, std::string_view text);

// The viewer cap when none is given: the configured max_viewers, else the measured upstream
// divided by the per-viewer bitrate (at least 1), else kDefaultMaxViewers.
unsigned default_max_viewers(const Config &config, unsigned bitrate_kbps);

// Fills the host's unset options (zero / empty / "auto") from the config.
void apply_host_defaults(HostConfig &host, const Config &config);
// Fills the viewer's unset connectivity options (STUN, DHT) from the config's [network].
void apply_viewer_defaults(ViewerConfig &viewer, const Config &config);
// The config's [network] dht / dht_bootstrap for a DHT setting left unset (empty bootstrap, not
// turned off): dht = "off" or an empty list turns it off. The demo uses it alone.
void apply_dht(std::vector<std::string> &bootstrap, bool &no_dht, const Config &config);

// Current UTC time as RFC 3339 ("2026-05-21T20:41:16Z").
std::string utc_now();

} // namespace pp::config
