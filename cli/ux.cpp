#include "ux.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace pixelpass_cli::ux {
namespace {

std::mutex output_mutex;
bool status_shown = false;  // a status line is on screen and must be cleared before a log line
std::atomic<bool> host_stopped{false};

// Calls a string getter twice: once for the size, once for the text. Empty on failure.
std::string get(const std::function<pp_result(char *, size_t, size_t *)> &getter, pp_result *rc_out = nullptr) {
    size_t needed = 0;
    pp_result rc = getter(nullptr, 0, &needed);
    std::string out;
    if (rc == PP_OK || rc == PP_ERR_BUFFER_TOO_SMALL) {
        out.assign(needed, '\0');
        rc = getter(out.data(), out.size(), &needed);
        out.resize(rc == PP_OK && needed ? needed - 1 : 0);
    }
    if (rc_out) *rc_out = rc;
    return out;
}

std::string detail(pp_result rc) {
    const char *d = pp_last_error();
    return (d && *d) ? d : pp_strerror(rc);
}

// One line on stderr, clearing the status line first so it can be redrawn below.
void log_line(const std::string &text) {
    std::lock_guard lock(output_mutex);
    if (status_shown) {
        std::fputs("\r\033[K", stderr);
        status_shown = false;
    }
    std::fprintf(stderr, "pixelpass: %s\n", text.c_str());
}

void json_line(const nlohmann::json &j) {
    std::lock_guard lock(output_mutex);
    std::fputs((j.dump() + "\n").c_str(), stdout);
    std::fflush(stdout);
}

const char *event_name(pp_event_type t) {
    static const char *const names[] = {"log",         "ready",      "viewer_joined", "viewer_left", "viewer_refused",
                                        "path_changed", "stats",     "error",         "stopped"};
    return unsigned(t) < 9 ? names[t] : "unknown";
}

void say(const std::string &text) {
    std::lock_guard lock(output_mutex);
    std::fputs(text.c_str(), stderr);
    std::fflush(stderr);
}

// While waiting for an answer nothing has started yet, so Ctrl-C simply ends the program (the
// regular handler only sets a flag, and a blocked read would not notice it).
struct InterruptEndsProgram {
    void (*previous)(int) = std::signal(SIGINT, SIG_DFL);
    ~InterruptEndsProgram() { std::signal(SIGINT, previous); }
};

bool read_line(std::string &line) {
    InterruptEndsProgram guard;
    return static_cast<bool>(std::getline(std::cin, line));
}

std::string ask(const std::string &question) {
    say(question);
    std::string line;
    if (!read_line(line)) return "";
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    return line;
}

nlohmann::json config_json() {
    pp_result rc = PP_OK;
    std::string text = get([](char *b, size_t s, size_t *n) { return pp_config_json(b, s, n); }, &rc);
    if (rc != PP_OK) {
        log_line("error: " + detail(rc));
        return nullptr;
    }
    return nlohmann::json::parse(text);
}

void draw_progress(double fraction, double mbps, void *) {
    int filled = int(std::lround(fraction * 30));
    std::lock_guard lock(output_mutex);
    std::fprintf(stderr, "\r\033[Kpixelpass: measuring upload [%s%s] %3d%%  %.1f Mbit/s",
                 std::string(size_t(filled), '#').c_str(), std::string(size_t(30 - filled), ' ').c_str(),
                 int(fraction * 100), mbps);
    std::fflush(stderr);
}

// Runs the test (consent already given) and reports the outcome.
bool run_bandwidth_test() {
    double mbps = 0;
    pp_result rc = pp_bandwidth_test(nullptr, isatty(STDERR_FILENO) ? draw_progress : nullptr, nullptr, &mbps);
    std::string why = rc == PP_OK ? "" : detail(rc);
    if (isatty(STDERR_FILENO)) std::fputs("\r\033[K", stderr);
    nlohmann::json cfg = config_json();
    unsigned cap = cfg.is_object() ? cfg["default_max_viewers"].get<unsigned>() : 2;
    if (rc == PP_OK) {
        char line[160];
        std::snprintf(line, sizeof line, "upstream about %.1f Mbit/s (80%% of what was measured): default viewer cap %u",
                      mbps, cap);
        log_line(line);
        if (mode().json) json_line({{"event", "bandwidth"}, {"status", "measured"}, {"upstream_mbps", mbps}, {"default_max_viewers", cap}});
        return true;
    }
    log_line("warning: " + why + "; using the default viewer cap " + std::to_string(cap) +
             " (retry with `pixelpass --reconfigure`)");
    if (mode().json) json_line({{"event", "bandwidth"}, {"status", "failed"}, {"error", why}, {"default_max_viewers", cap}});
    return false;
}

bool consent(const std::string &endpoint) {
    std::string host = endpoint;
    if (auto p = host.find("://"); p != std::string::npos) host = host.substr(p + 3);
    host = host.substr(0, host.find('/'));
    std::string answer = ask("pixelpass: measure your upload speed once, to pick how many viewers you can serve?\n"
                             "           This uploads about 5 MB to " + host + " for about 5 seconds. [y/N] ");
    return answer == "y" || answer == "Y" || answer == "yes";
}

std::string endpoint_for_prompt(const nlohmann::json &cfg) {
    if (const char *env = std::getenv("PIXELPASS_SPEEDTEST_URL"); env && *env) return env;
    std::string configured = cfg["bandwidth"].value("endpoint", "");
    return configured.empty() ? "speed.cloudflare.com" : configured;
}

std::string status_text(const nlohmann::json &s, double mbps) {
    std::string out = "viewers " + std::to_string(s["viewers"].size()) + "/" + s["max_viewers"].dump();
    for (const auto &v : s["viewers"]) {
        out += " | #" + v["id"].dump() + " " + v.value("path", "?");
        if (v.contains("rtt_ms")) out += " " + std::to_string(int(v["rtt_ms"].get<double>())) + " ms";
        if (unsigned switches = v.value("switches", 0u); switches > 0)
            out += ", " + std::to_string(switches) + (switches == 1 ? " switch" : " switches");
        if (v.contains("receive_kbps")) out += ", gets " + v["receive_kbps"].dump() + " kbit/s";
        if (v.value("lost_packets", 0u) > 0) {
            char loss[32];
            snprintf(loss, sizeof loss, ", loss %.1f %%", v.value("loss_pct", 0.0));
            out += loss;
        }
        if (unsigned skips = v.value("skips", 0u); skips > 0) out += ", " + std::to_string(skips) + " skips";
        if (v.value("followed", true) == false) out += " (too slow)";
    }
    char rate[32];
    std::snprintf(rate, sizeof rate, " | %.1f Mbit/s", mbps);
    out += rate;
    if (s.contains("encoder") && s["encoder"].is_string()) out += " | " + s["encoder"].get<std::string>();
    else if (s.contains("media") && s["media"].is_object() && s["media"].contains("encoder"))
        out += " | " + s["media"]["encoder"].dump();
    if (s.contains("rate_control") && s["rate_control"]["bitrate_kbps"].is_number())
        out += " @ " + s["rate_control"]["bitrate_kbps"].dump() + " kbit/s" +
               (s["rate_control"].value("adaptive", false) ? "" : " (fixed)");
    out += " | drops " + s["totals"]["drops"].dump();
    // Each media server: "rtmp://host/live/*** live 4012 kbit/s" or "... retrying: connection refused".
    if (s.contains("publish") && s["publish"].is_array())
        for (const auto &p : s["publish"]) {
            out += " | " + p.value("target", std::string("?")) + " " + p.value("state", std::string("?"));
            if (p.contains("reason")) out += ": " + p["reason"].get<std::string>();
            else out += " " + std::to_string(p.value("bitrate_kbps", 0u)) + " kbit/s";
            if (uint64_t d = p.value("drops", uint64_t(0)); d) out += ", " + std::to_string(d) + " drops";
        }
    return out;
}

} // namespace

Mode &mode() {
    static Mode m;
    return m;
}

bool interactive() { return isatty(STDIN_FILENO) && isatty(STDERR_FILENO); }

void print_event(const pp_event *event, void *) {
    if (event->type == PP_EVENT_STOPPED) host_stopped = true;
    if (mode().json) {
        if (event->type == PP_EVENT_LOG && event->level == PP_LOG_DEBUG) return;
        nlohmann::json j{{"event", event_name(event->type)}, {"message", event->message}};
        if (event->viewer_id) j["viewer_id"] = event->viewer_id;
        if (event->error != PP_OK) j["error"] = pp_strerror(event->error);
        auto details = nlohmann::json::parse(event->json, nullptr, false);
        if (!details.is_discarded() && !details.empty()) j["details"] = details;
        json_line(j);
        return;
    }
    static const char *const levels[] = {"error", "warning", "info", "debug"};
    if (event->type == PP_EVENT_LOG && event->level == PP_LOG_DEBUG) return;
    const char *level = event->type == PP_EVENT_ERROR ? "error" : levels[event->level & 3];
    log_line(std::string(level) + ": " + event->message);
}

bool before_host() {
    nlohmann::json cfg = config_json();
    if (!cfg.is_object()) return false;
    for (const auto &w : cfg["warnings"]) log_line("warning: " + w.get<std::string>());
    if (cfg["bandwidth"]["status"] == "unmeasured" && interactive() && !mode().json) {
        if (consent(endpoint_for_prompt(cfg))) {
            run_bandwidth_test();
        } else {
            pp_result rc = pp_bandwidth_skip();
            if (rc != PP_OK) log_line("warning: " + detail(rc));
            else log_line("skipped; it will not be offered again (`pixelpass --reconfigure` runs it)");
        }
    }
    return true;
}

int reconfigure(bool assume_yes) {
    nlohmann::json cfg = config_json();
    if (!cfg.is_object()) return 1;
    if (!assume_yes) {
        if (!interactive()) {
            log_line("error: --reconfigure uploads about 5 MB to a speed-test server; confirm with --yes when "
                     "not at a terminal");
            return 2;
        }
        if (!consent(endpoint_for_prompt(cfg))) {
            pp_bandwidth_skip();
            log_line("skipped; nothing was sent");
            return 0;
        }
    }
    return run_bandwidth_test() ? 0 : 1;
}

void announce_ticket(const std::string &ticket) {
    if (mode().json) json_line({{"event", "ticket"}, {"ticket", ticket}});
    else {
        std::lock_guard lock(output_mutex);
        std::printf("%s\n", ticket.c_str());
        std::fflush(stdout);
        // The ticket is all a script reads: let go of stdout so `T=$(pixelpass host &)` returns
        // now instead of when the host ends.
        if (!isatty(STDOUT_FILENO))
            if (int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC); null >= 0) {
                ::dup2(null, STDOUT_FILENO);
                ::close(null);
            }
    }
    if (!mode().copy) return;
    pp_result rc = PP_OK;
    int tty = isatty(STDERR_FILENO) ? STDERR_FILENO : -1;
    std::string method = get([&](char *b, size_t s, size_t *n) { return pp_clipboard_copy(ticket.c_str(), tty, b, s, n); }, &rc);
    if (rc == PP_OK)
        log_line("ticket copied to the clipboard with " + method +
                 (method == "osc52" ? " (a terminal escape: works if your terminal allows it)" : ""));
    else
        log_line("warning: " + detail(rc));
    if (mode().json) json_line({{"event", "clipboard"}, {"method", rc == PP_OK ? method : ""}});
}

void host_loop(pp_host *host, const std::atomic<bool> &stop) {
    using Clock = std::chrono::steady_clock;
    auto last = Clock::now();
    uint64_t last_bytes = 0;
    int ticks = 0;
    while (!stop && !host_stopped) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (++ticks % 10 != 0) continue;
        pp_result rc = PP_OK;
        std::string text = get([&](char *b, size_t s, size_t *n) { return pp_host_stats_json(host, b, s, n); }, &rc);
        auto stats = nlohmann::json::parse(text, nullptr, false);
        if (rc != PP_OK || stats.is_discarded() || !stats.contains("totals")) continue;
        auto now = Clock::now();
        uint64_t bytes = stats["totals"].value("bytes_sent", uint64_t(0));
        double seconds = std::chrono::duration<double>(now - last).count();
        double mbps = bytes >= last_bytes && seconds > 0 ? double(bytes - last_bytes) * 8 / seconds / 1e6 : 0;
        last = now;
        last_bytes = bytes;
        if (mode().json) {
            if (ticks % 50 == 0) json_line({{"event", "status"}, {"mbit_per_s", std::round(mbps * 100) / 100}, {"stats", stats}});
        } else if (mode().status_line) {
            std::lock_guard lock(output_mutex);
            std::fprintf(stderr, "\r\033[K%s", status_text(stats, mbps).c_str());
            std::fflush(stderr);
            status_shown = true;
        }
    }
    std::lock_guard lock(output_mutex);
    if (status_shown) std::fputs("\r\033[K", stderr);
    status_shown = false;
}

int doctor(bool json, unsigned probe_timeout_ms) {
    pp_result rc = PP_OK;
    std::string text = get([&](char *b, size_t s, size_t *n) { return pp_doctor_json(probe_timeout_ms, b, s, n); }, &rc);
    if (rc != PP_OK) {
        log_line("error: " + detail(rc));
        return 1;
    }
    auto report = nlohmann::json::parse(text);
    bool can_share = report["can_share"].get<bool>();
    if (json) {
        std::printf("%s\n", text.c_str());
        return can_share ? 0 : 1;
    }
    size_t width = 0;
    for (const auto &c : report["checks"]) width = std::max(width, c["name"].get<std::string>().size());
    for (const auto &c : report["checks"]) {
        std::string status = c["status"];
        std::string mark = status == "ok" ? "ok  " : status == "warning" ? "warn" : status == "error" ? "FAIL" : "--  ";
        std::printf("%s  %-*s  %s\n", mark.c_str(), int(width), c["name"].get<std::string>().c_str(),
                    c["detail"].get<std::string>().c_str());
        if (!c["fix"].get<std::string>().empty())
            std::printf("      %-*s  fix: %s\n", int(width), "", c["fix"].get<std::string>().c_str());
    }
    std::printf("\n%s\n%s\n", can_share ? "Sharing: ready." : "Sharing: cannot work here yet (see FAIL lines).",
                report["can_view"].get<bool>() ? "Viewing: ready." : "Viewing: install mpv to watch.");
    return can_share ? 0 : 1;
}

namespace {

// The ticket may arrive over several lines (a pasted wrap): keep reading until it decodes. A line
// starting with the prefix starts a new paste; an empty line gives up on the current one. Empty
// at the end of input.
std::string read_pasted_ticket() {
    std::string ticket;
    pp_result last = PP_OK;
    say("Paste the ticket, then press Enter:\n");
    for (;;) {
        std::string line;
        if (!read_line(line)) return {};
        size_t first = line.find_first_not_of(" \t\r<>\"'");
        if (first == std::string::npos) {
            if (ticket.empty()) continue;
            log_line("error: " + detail(last) + "; paste the whole ticket again");
            ticket.clear();
            continue;
        }
        if (!ticket.empty() && (line.compare(first, 3, "pxp") == 0 || line.compare(first, 3, "PXP") == 0))
            ticket.clear();
        ticket += line;
        pp_ticket *t = nullptr;
        last = pp_ticket_decode(&t, ticket.c_str());
        pp_ticket_free(t);
        if (last == PP_OK) return ticket;
        if (last == PP_ERR_TICKET_PREFIX || last == PP_ERR_TICKET_CHARACTER || last == PP_ERR_TICKET_EXPIRED ||
            last == PP_ERR_TICKET_VERSION) {
            log_line("error: " + detail(last));
            ticket.clear();
            say("Paste the ticket again:\n");
        }
        // Otherwise (truncated, checksum) more lines may be on their way.
    }
}

// The usable players, the configured one ([viewer] player) first; asks when there is a choice.
// False when no player is usable.
bool choose_player(pp_player_kind &kind) {
    std::vector<std::pair<pp_player_kind, std::string>> choices;
    auto players = nlohmann::json::parse(get([](char *b, size_t s, size_t *n) { return pp_players_json(b, s, n); }));
    for (const auto &p : players) {
        if (!p["usable"].get<bool>()) {
            log_line("note: " + p["name"].get<std::string>() + " is installed but " + p["problem"].get<std::string>());
            continue;
        }
        choices.push_back({p["name"] == "mpv" ? PP_PLAYER_MPV : PP_PLAYER_VLC, p["name"]});
    }
    if (nlohmann::json cfg = config_json(); cfg.is_object() && cfg["viewer"]["player"] != "auto")
        std::stable_partition(choices.begin(), choices.end(),
                              [&](const auto &c) { return c.second == cfg["viewer"]["player"]; });
    kind = PP_PLAYER_AUTO;
    if (choices.empty()) return false;
    size_t pick = 1;
    if (choices.size() > 1) {
        std::string menu = "Play with:\n";
        for (size_t i = 0; i < choices.size(); ++i)
            menu += "  " + std::to_string(i + 1) + ") " + choices[i].second + (i == 0 ? " (recommended)" : "") + "\n";
        std::string answer = ask(menu + "Choose [1]: ");
        pick = answer.empty() ? 1 : size_t(std::atoi(answer.c_str()));
        if (pick < 1 || pick > choices.size()) pick = 1;
    }
    kind = choices[pick - 1].first;
    return true;
}

void start_player(bool have_player, pp_player_kind kind, const std::string &url) {
    if (!have_player) {
        std::string command = get([&](char *b, size_t s, size_t *n) { return pp_player_command(PP_PLAYER_MPV, url.c_str(), b, s, n); });
        log_line("no usable player installed (install mpv); play the stream with: " + command);
        return;
    }
    int64_t pid = 0;
    if (pp_result rc = pp_player_launch(kind, url.c_str(), &pid); rc != PP_OK)
        log_line("error: " + detail(rc));
    else
        log_line((kind == PP_PLAYER_VLC ? std::string("vlc") : std::string("mpv")) + " started (pid " +
                 std::to_string(pid) + ") on " + url + "; press Ctrl-C to stop watching");
}

} // namespace

int interactive_view(const std::atomic<bool> &stop) {
    std::string ticket = read_pasted_ticket();
    if (ticket.empty()) return 1;
    pp_player_kind kind;
    bool have_player = choose_player(kind);

    pp_viewer_options o;
    pp_viewer_options_init(&o, PP_VIEWER_OPTIONS_VERSION);
    o.ticket = ticket.c_str();
    pp_viewer *viewer = nullptr;
    log_line("connecting...");
    if (pp_result rc = pp_viewer_connect(&viewer, &o, print_event, nullptr); rc != PP_OK) {
        log_line("error: " + detail(rc));
        return 1;
    }
    start_player(have_player, kind, get([&](char *b, size_t s, size_t *n) { return pp_viewer_url(viewer, b, s, n); }));
    pp_result rc = PP_ERR_STATE;
    while (!stop && rc == PP_ERR_STATE) rc = pp_viewer_wait(viewer, 200);
    if (rc == PP_OK) log_line("the host ended the stream");
    else if (rc != PP_ERR_STATE) log_line("error: " + detail(rc));
    pp_viewer_free(viewer);
    return (rc == PP_OK || rc == PP_ERR_STATE) ? 0 : 1;
}

int menu(int (*run_host)(), const std::atomic<bool> &stop) {
    std::string answer = ask("pixelpass: share your screen peer to peer\n"
                             "  1) Host: share this screen\n"
                             "  2) View: watch a shared screen\n"
                             "Choose [1/2]: ");
    while (answer != "1" && answer != "2" && answer != "h" && answer != "v") {
        if (!std::cin) return 1;
        answer = ask("Please type 1 (Host) or 2 (View): ");
    }
    if (answer == "1" || answer == "h") {
        mode().copy = true;
        return run_host();
    }
    return interactive_view(stop);
}

} // namespace pixelpass_cli::ux
