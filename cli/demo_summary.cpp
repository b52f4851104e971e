#include "demo_summary.hpp"

#include <cstdio>

#include <nlohmann/json.hpp>

namespace pixelpass_cli {

namespace {
std::string num(const nlohmann::json &v, const char *fmt = "%.0f") {
    if (!v.is_number()) return "n/a";
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v.get<double>());
    return buf;
}
} // namespace

std::string demo_summary(const std::string &report_json) {
    auto j = nlohmann::json::parse(report_json);
    std::string out;
    std::string path = j.value("path", "direct");
    std::string encoder = j["encoder"].is_string() ? j["encoder"].get<std::string>() : "?";
    if (j.at("mode") == "player") {
        out += "played in mpv for " + num(j["seconds"], "%.1f") + " s (exit status " + num(j["exit_status"]) + ")\n";
        out += "  path " + path + ", encoder " + encoder + "\n";
        out += "  command: " + j.value("command", "") + "\n";
        return out;
    }
    out += "decoded " + num(j.at("frames_decoded")) + " frames of " + num(j["width"]) + "x" + num(j["height"]) +
           " in " + num(j["seconds"], "%.1f") + " s (" + num(j["fps"], "%.1f") + " fps)";
    out += j.value("audio_samples", 0) > 0 ? ", with audio\n" : ", no audio\n";
    out += "  bitrate " + num(j["bitrate_kbps"]) + " kbit/s over " + path + " QUIC on loopback, encoder " + encoder + "\n";
    out += "  first frame " + num(j["time_to_first_frame_ms"]) + " ms after start (host, viewer, encoder warm-up)\n";
    if (j["latency_ms"].is_object())
        out += "  latency capture→viewer: median " + num(j["latency_ms"]["median"], "%.1f") + " ms, p95 " +
               num(j["latency_ms"]["p95"], "%.1f") + " ms (burnt-in clock vs arrival; add your player's)\n";
    else
        out += "  latency: not measurable (no PTS clock in the report)\n";
    if (j["rendezvous"].is_object()) {
        const auto &r = j["rendezvous"];
        out += "  rendezvous: the viewer's offer went onto the DHT (" + num(r["viewer_puts"]) + " put, " +
               num(r["viewer_puts_failed"]) + " failed), the host received " + num(r["offers_received"]) +
               " offer(s) and ignored " + num(r["offers_ignored"]) + "; path found " +
               (r["found"].is_string() ? r["found"].get<std::string>() : "?") + "\n";
    }
    if (j.contains("why_headless")) out += "  headless because " + j["why_headless"].get<std::string>() + "\n";
    for (const auto &p : j.value("problems", nlohmann::json::array()))
        out += "  decoder: " + p.get<std::string>() + "\n";
    if (!j.value("ok", false)) out += "  the pictures look wrong (black or frozen)\n";
    return out;
}

bool demo_ok(const std::string &report_json) { return nlohmann::json::parse(report_json).value("ok", false); }

} // namespace pixelpass_cli
