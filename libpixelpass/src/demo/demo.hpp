// demo: the main job on its embedded default. One process hosts the test source (pattern with a
// burnt-in clock, plus a tone) and connects a viewer to it over real QUIC on loopback. With a
// display and mpv it opens mpv on the viewer's URL; without one it plays the URL headlessly — an
// HTTP client like a player, feeding an in-process decoder — and reports what it got.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/host.hpp"

namespace pp::demo {

struct Options {
    double seconds = 0;        // headless: decode this long (0 = 5 s); player: stop after this long
                               // (0 = when the player window closes)
    bool headless = false;     // never open a player, even with a display
    std::string encoder = "auto";
    unsigned bitrate_kbps = 0, fps = 0, max_height = 0;
    bool audio = true;
    std::vector<std::string> publish;  // also send the demo stream to these media servers
    std::string publish_key;
    // Rendezvous DHT nodes ("HOST:PORT"). Given (and not no_dht), the loopback host joins them and
    // the viewer leaves its sealed offer there: the rendezvous runs end to end on this machine.
    // Empty: no rendezvous (a demo never joins the public DHT).
    std::vector<std::string> dht_bootstrap;
    bool no_dht = false;
    const std::atomic<bool> *cancel = nullptr;  // set to end early (Ctrl-C); may be null
};

// True when a player window can be shown: DISPLAY or WAYLAND_DISPLAY is set.
bool have_display();

// Runs the demo and returns its report:
// {"mode": "headless"|"player", "seconds", "url", "path", "encoder", "width", "height",
//  "frames_decoded", "fps", "audio_samples", "bytes", "bitrate_kbps", "time_to_first_frame_ms",
//  "latency_ms": {"median", "p95", "max", "samples", "method"}, "problems": [...], "ok",
//  "host": {stats}, "viewer": {stats}, "rendezvous" (with DHT nodes: {"offers_received",
//  "offers_ignored", "values_received", "viewer_puts", "viewer_puts_failed", "found"})}
// ("player" mode: "player", "pid", "exit_status" instead of the decode fields). `events` gets the
// host's and the viewer's log lines. Throws pp::Error when the pipeline cannot be built
// (PP_ERR_MISSING_PLUGIN naming the package), the viewer cannot connect, or nothing decodes.
nlohmann::json run(const Options &options, EventSink events);

// run() whose report is kept for the calling thread's next call when it does not fit in
// `capacity` bytes (the C API's string convention: a demo acts, so it is not run twice).
std::string run_for_buffer(const Options &options, EventSink events, size_t capacity);

} // namespace pp::demo
