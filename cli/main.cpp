// pixelpass CLI: parses arguments, calls the C API (pixelpass.h, like any other consumer), prints.
// Logs and errors go to stderr; stdout carries only what scripts consume (ticket, JSON, URL).
#include <CLI/CLI.hpp>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <cerrno>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "pixelpass.h"
#include "demo_summary.hpp"
#include "repair_summary.hpp"
#include "ux.hpp"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::atomic<bool> interrupted{false};

void on_signal(int) { interrupted = true; }

// One clear line on stderr: what went wrong (the library's detail), non-zero exit.
int report(pp_result rc, const std::string &context = "") {
    const char *detail = pp_last_error();
    std::fprintf(stderr, "pixelpass: %s%s%s\n", context.c_str(), context.empty() ? "" : ": ",
                 (detail && *detail) ? detail : pp_strerror(rc));
    return kExitFailure;
}

// Calls a string getter twice: once for the size, once for the text.
std::string get_string(const std::function<pp_result(char *, size_t, size_t *)> &getter) {
    size_t needed = 0;
    pp_result rc = getter(nullptr, 0, &needed);
    if (rc != PP_OK && rc != PP_ERR_BUFFER_TOO_SMALL) throw rc;
    std::string out(needed, '\0');
    rc = getter(out.data(), out.size(), &needed);
    if (rc != PP_OK) throw rc;
    out.resize(needed ? needed - 1 : 0);
    return out;
}

// The C API's optional strings and string lists: empty means "not given", which is NULL there.
const char *or_null(const std::string &s) { return s.empty() ? nullptr : s.c_str(); }

// A list of strings as the options' (const char *const *, count) pair. It must outlive every
// call that is handed the options pointing into it.
class CList {
public:
    explicit CList(const std::vector<std::string> &items) {
        for (const auto &item : items) ptrs_.push_back(item.c_str());
    }
    const char *const *data() const { return ptrs_.empty() ? nullptr : ptrs_.data(); }
    size_t size() const { return ptrs_.size(); }

private:
    std::vector<const char *> ptrs_;
};

// Secrets need not go on the command line, where every local user reads them (ps, /proc):
// "-" stands for a ticket on stdin, and a file holds the relay secret.
constexpr size_t kMaxSecretInput = 64 * 1024;

// The whole of stdin (a ticket piped in), or nullopt with the one-line error printed.
std::optional<std::string> read_stdin_ticket() {
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0 && text.size() <= kMaxSecretInput) text.append(buf, n);
    if (text.size() > kMaxSecretInput) {
        std::fprintf(stderr, "pixelpass: standard input holds more than 64 KiB: pipe in the ticket only\n");
        return std::nullopt;
    }
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
        std::fprintf(stderr, "pixelpass: no ticket on standard input: pipe it in, e.g. pixelpass view - < ticket.txt\n");
        return std::nullopt;
    }
    return text;
}

// The first line of PATH without its line end, or nullopt with the one-line error printed.
std::optional<std::string> read_secret_file(const std::string &path) {
    FILE *f = std::fopen(path.c_str(), "re");
    if (!f) {
        std::fprintf(stderr, "pixelpass: cannot read the relay secret file %s: %s\n", path.c_str(), std::strerror(errno));
        return std::nullopt;
    }
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && text.size() <= kMaxSecretInput) text.append(buf, n);
    std::fclose(f);
    text = text.substr(0, text.find_first_of("\r\n"));
    if (text.empty()) {
        std::fprintf(stderr, "pixelpass: the relay secret file %s is empty: put the secret on its first line\n", path.c_str());
        return std::nullopt;
    }
    return text;
}

struct HostArgs {
    std::string source = "auto";
    unsigned max_viewers = 0;
    unsigned bitrate = 0;
    unsigned fps = 0;
    unsigned max_height = 0;
    std::string encoder = "auto";
    std::vector<std::string> apps;
    bool no_audio = false;
    int monitor = -1;
    bool forget_screen = false;
    std::string bind;
    uint16_t port = 0;
    int64_t expires = 0;
    // connectivity (NAT traversal)
    std::string relay, relay_secret, relay_secret_file, relay_username, relay_password;
    std::vector<std::string> stun;
    bool no_stun = false, no_port_mapping = false, relay_only = false, no_relay = false;
    std::vector<std::string> dht_bootstrap;
    bool no_dht = false;
    std::string congestion_control;
    bool fixed_bitrate = false;
    bool one_viewer = false;
    unsigned max_streams_per_viewer = 0;
    // media servers fed the same encode
    std::vector<std::string> publish;
    std::string publish_key_file;
};

// Connectivity flags a viewer takes.
struct ViewArgs {
    std::vector<std::string> stun;
    bool no_stun = false, relay_only = false, no_relay = false;
    std::vector<std::string> dht_bootstrap;
    bool no_dht = false;
};

void add_view_options(CLI::App *cmd, ViewArgs &a) {
    cmd->add_flag("--relay-only", a.relay_only, "Connect only through the ticket's relay");
    cmd->add_flag("--no-relay", a.no_relay, "Never use the ticket's relay");
    cmd->add_option("--stun", a.stun, "STUN server HOST[:PORT] (repeatable)");
    cmd->add_flag("--no-stun", a.no_stun, "Use no STUN server");
    cmd->add_option("--dht-bootstrap", a.dht_bootstrap,
                    "Rendezvous DHT node HOST:PORT (repeatable; default: the public OpenDHT network)");
    cmd->add_flag("--no-dht", a.no_dht, "Leave no candidates on the DHT (the host then needs a public address, a port mapping or a relay)");
}

void add_publish_options(CLI::App *cmd, HostArgs &a) {
    cmd->add_option("--publish", a.publish,
                    "Also send the stream to a media server: rtmp://HOST/APP/STREAM, rtmps://..., "
                    "srt://HOST:PORT[?mode=caller|listener] (repeatable)");
    cmd->add_option("--publish-key-file", a.publish_key_file,
                    "Read the RTMP stream key from this file (- = stdin); it completes --publish rtmp://HOST/APP");
}

// The --publish targets and key for pp_host_options or pp_demo_options; the options point into
// this, so it lives as long as they are used.
struct PublishOptions {
    std::string key;
    std::vector<const char *> urls;
    template <class Options> bool fill(const HostArgs &a, Options &o);
};

// The stream key from --publish-key-file: a file or stdin, never the command line (where `ps`
// shows it). Its first line, surrounding whitespace removed. Empty when no file was given.
bool read_publish_key(const HostArgs &a, std::string &key) {
    if (a.publish_key_file.empty()) return true;
    FILE *f = a.publish_key_file == "-" ? stdin : std::fopen(a.publish_key_file.c_str(), "r");
    if (!f) {
        std::fprintf(stderr, "pixelpass: --publish-key-file %s: %s\n", a.publish_key_file.c_str(), std::strerror(errno));
        return false;
    }
    char line[1024] = {};
    bool got = std::fgets(line, sizeof line, f) != nullptr;
    if (f != stdin) std::fclose(f);
    key = got ? line : "";
    while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
    size_t first = 0;
    while (first < key.size() && std::isspace(static_cast<unsigned char>(key[first]))) ++first;
    key.erase(0, first);
    if (key.empty()) {
        std::fprintf(stderr, "pixelpass: --publish-key-file %s: no stream key in it (put the key on the first line)\n",
                     a.publish_key_file.c_str());
        return false;
    }
    return true;
}

template <class Options> bool PublishOptions::fill(const HostArgs &a, Options &o) {
    if (!read_publish_key(a, key)) return false;
    for (const auto &url : a.publish) urls.push_back(url.c_str());
    o.publish = urls.empty() ? nullptr : urls.data();
    o.publish_count = urls.size();
    o.publish_key = or_null(key);
    return true;
}

void add_host_options(CLI::App *cmd, HostArgs &a) {
    cmd->add_option("--source", a.source, "What to share: auto, portal, x11, test, synthetic")
        ->check(CLI::IsMember({"auto", "portal", "x11", "test", "synthetic"}));
    cmd->add_option("--max-viewers", a.max_viewers, "Viewer cap (default: from the bandwidth estimate, else 2)")
        ->check(CLI::Range(1u, 1000u));
    cmd->add_option("--bitrate", a.bitrate, "Video bitrate in kbit/s")->check(CLI::Range(100u, 200000u));
    cmd->add_option("--fps", a.fps, "Output frame rate")->check(CLI::Range(1u, 240u));
    cmd->add_option("--max-height", a.max_height, "Downscale to at most this height")->check(CLI::Range(64u, 8640u));
    cmd->add_option("--encoder", a.encoder, "H.264 encoder: auto, va, vaapi, nvenc, x264, openh264")
        ->check(CLI::IsMember({"auto", "va", "vaapi", "nvenc", "x264", "openh264"}));
    cmd->add_option("--app", a.apps, "Share only this application's audio (repeatable)");
    cmd->add_flag("--no-audio", a.no_audio, "Share video only");
    cmd->add_option("--monitor", a.monitor, "X11: share only this monitor (as `xrandr --listmonitors` numbers them)")
        ->check(CLI::Range(0, 63));
    cmd->add_flag("--forget-screen", a.forget_screen,
                  "Wayland: forget the screen chosen in the share dialog, so it asks again");
    cmd->add_option("--bind", a.bind, "Listen on this address only");
    cmd->add_option("--port", a.port, "UDP port to listen on (default: any free port)");
    cmd->add_option("--expires", a.expires, "Ticket lifetime in seconds (default: no expiry)")
        ->check(CLI::Range(int64_t{1}, int64_t{365} * 24 * 3600));
    cmd->add_option("--relay", a.relay, "TURN relay turn:HOST[:PORT] for viewers behind hard NATs (docs/relay.md)");
    auto *secret = cmd->add_option("--relay-secret", a.relay_secret,
                                   "The relay's coturn static-auth-secret: tickets carry short-lived credentials "
                                   "(visible in ps: prefer --relay-secret-file)");
    cmd->add_option("--relay-secret-file", a.relay_secret_file,
                    "Read the relay secret from the first line of this file (not visible in ps)")
        ->excludes(secret);
    cmd->add_option("--relay-username", a.relay_username, "Static relay username (tickets carry it)");
    cmd->add_option("--relay-password", a.relay_password, "Static relay password (tickets carry it)");
    cmd->add_flag("--relay-only", a.relay_only, "Offer viewers only the relayed address");
    cmd->add_flag("--no-relay", a.no_relay, "Never use a relay");
    cmd->add_option("--stun", a.stun, "STUN server HOST[:PORT] (repeatable; default: public servers)");
    cmd->add_flag("--no-stun", a.no_stun, "Use no STUN server (the ticket then holds local addresses only)");
    cmd->add_flag("--no-port-mapping", a.no_port_mapping, "Ask the router for no UPnP / NAT-PMP port mapping");
    cmd->add_option("--dht-bootstrap", a.dht_bootstrap,
                    "Rendezvous DHT node HOST:PORT (repeatable; default: the public OpenDHT network)");
    cmd->add_flag("--no-dht", a.no_dht, "Do not listen for viewers' candidates on the DHT");
    cmd->add_option("--congestion-control", a.congestion_control,
                    "QUIC congestion control: cubic, bbr, bbr2, reno (default: [network] congestion_control, else bbr2)")
        ->check(CLI::IsMember({"cubic", "bbr", "bbr2", "reno"}));
    cmd->add_flag("--fixed-bitrate", a.fixed_bitrate,
                  "Keep --bitrate even when a viewer's path cannot carry it (default: adapt, down to 500 kbit/s)");
    cmd->add_flag("--one-viewer", a.one_viewer,
                  "The ticket admits one viewer: any other is refused, and this one too once it leaves");
    cmd->add_option("--max-streams-per-viewer", a.max_streams_per_viewer,
                    "Players one viewer may run at once over its connection (default 2)")
        ->check(CLI::Range(1u, 64u));
    add_publish_options(cmd, a);
}

int run_host(const HostArgs &args) {
    HostArgs a = args;
    if (!a.relay_secret_file.empty()) {
        auto secret = read_secret_file(a.relay_secret_file);
        if (!secret) return kExitFailure;
        a.relay_secret = *secret;
    }
    pp_host_options o;
    pp_host_options_init(&o, PP_HOST_OPTIONS_VERSION);
    o.source = a.source.c_str();
    o.max_viewers = a.max_viewers;
    o.bitrate_kbps = a.bitrate;
    o.fps = a.fps;
    o.max_height = a.max_height;
    o.encoder = a.encoder.c_str();
    o.audio = a.no_audio ? 0 : 1;
    o.monitor = a.monitor;
    if (a.forget_screen) {
        int forgotten = 0;
        if (pp_result rc = pp_forget_screen(&forgotten); rc != PP_OK) return report(rc);
        std::fprintf(stderr, "pixelpass: %s\n", forgotten ? "forgot the screen chosen earlier; the share dialog will ask"
                                                        : "no screen choice was stored");
    }
    CList apps(a.apps);
    o.apps = apps.data();
    o.app_count = apps.size();
    o.bind_address = or_null(a.bind);
    o.port = a.port;
    o.ticket_lifetime_s = a.expires;
    o.relay = or_null(a.relay);
    o.relay_secret = or_null(a.relay_secret);
    o.relay_username = or_null(a.relay_username);
    o.relay_password = or_null(a.relay_password);
    CList stun(a.stun);
    o.stun_servers = stun.data();
    o.stun_server_count = stun.size();
    o.no_stun = a.no_stun;
    o.no_port_mapping = a.no_port_mapping;
    o.relay_only = a.relay_only;
    o.no_relay = a.no_relay;
    CList dht(a.dht_bootstrap);
    o.dht_bootstrap = dht.data();
    o.dht_bootstrap_count = dht.size();
    o.no_dht = a.no_dht;
    o.congestion_control = or_null(a.congestion_control);
    o.fixed_bitrate = a.fixed_bitrate;
    o.one_viewer = a.one_viewer ? 1 : 0;
    o.max_streams_per_viewer = a.max_streams_per_viewer;
    PublishOptions publish;
    if (!publish.fill(a, o)) return kExitUsage;

    if (!pixelpass_cli::ux::before_host()) return kExitFailure;
    pp_host *host = nullptr;
    if (pp_result rc = pp_host_new(&host, &o, pixelpass_cli::ux::print_event, nullptr); rc != PP_OK) return report(rc);
    pp_result rc = pp_host_start(host);
    if (rc != PP_OK) {
        int code = report(rc);
        pp_host_free(host);
        return code;
    }
    try {
        std::string ticket = get_string([&](char *b, size_t s, size_t *n) { return pp_host_ticket(host, b, s, n); });
        pixelpass_cli::ux::announce_ticket(ticket);
        if (a.one_viewer)
            std::fprintf(stderr, "pixelpass: this ticket admits one viewer: any other is refused, and this one too once it leaves\n");
    } catch (pp_result e) {
        pp_host_free(host);
        return report(e);
    }
    std::fprintf(stderr, "pixelpass: sharing; press Ctrl-C to stop\n");
    pixelpass_cli::ux::host_loop(host, interrupted);
    std::fprintf(stderr, "pixelpass: stopping\n");
    pp_host_stop(host);
    pp_host_free(host);
    return 0;
}

int run_view(const std::string &ticket, const std::string &player, const ViewArgs &v = {}) {
    pp_viewer_options o;
    pp_viewer_options_init(&o, PP_VIEWER_OPTIONS_VERSION);
    o.ticket = ticket.c_str();
    CList stun(v.stun);
    o.stun_servers = stun.data();
    o.stun_server_count = stun.size();
    o.no_stun = v.no_stun;
    o.relay_only = v.relay_only;
    o.no_relay = v.no_relay;
    CList dht(v.dht_bootstrap);
    o.dht_bootstrap = dht.data();
    o.dht_bootstrap_count = dht.size();
    o.no_dht = v.no_dht;
    pp_viewer *viewer = nullptr;
    if (pp_result rc = pp_viewer_connect(&viewer, &o, pixelpass_cli::ux::print_event, nullptr); rc != PP_OK) return report(rc);
    std::string url, command;
    pp_player_kind kind = player == "vlc" ? PP_PLAYER_VLC : player == "mpv" ? PP_PLAYER_MPV : PP_PLAYER_AUTO;
    try {
        url = get_string([&](char *b, size_t s, size_t *n) { return pp_viewer_url(viewer, b, s, n); });
        // With no player installed there is no command to suggest; the URL alone still works.
        command = get_string([&](char *b, size_t s, size_t *n) { return pp_player_command(kind, url.c_str(), b, s, n); });
    } catch (pp_result e) {
        if (url.empty() || player != "none") {
            pp_viewer_free(viewer);
            return report(e);
        }
    }
    std::printf("%s\n", url.c_str());
    if (!command.empty()) std::printf("%s\n", command.c_str());
    std::fflush(stdout);
    if (player != "none") {
        int64_t pid = 0;
        if (pp_result rc = pp_player_launch(kind, url.c_str(), &pid); rc != PP_OK) {
            int code = report(rc, "starting the player");
            pp_viewer_free(viewer);
            return code;
        }
        std::fprintf(stderr, "pixelpass: started %s (pid %lld)\n", player.c_str(), static_cast<long long>(pid));
    }
    pp_result rc = PP_ERR_STATE;
    while (!interrupted && rc == PP_ERR_STATE) rc = pp_viewer_wait(viewer, 200);
    int code = (rc == PP_OK || rc == PP_ERR_STATE) ? 0 : report(rc);
    pp_viewer_free(viewer);
    return code;
}

void print_demo_event(const pp_event *event, void *verbose) {
    if (verbose || event->type == PP_EVENT_ERROR || (event->type == PP_EVENT_LOG && event->level <= PP_LOG_WARNING))
        pixelpass_cli::ux::print_event(event, nullptr);
}

// `pixelpass demo`: the library does the work; this prints its report.
int run_demo(double seconds, bool headless, bool json, bool verbose, const HostArgs &a) {
    pp_demo_options o;
    pp_demo_options_init(&o, PP_DEMO_OPTIONS_VERSION);
    o.seconds = seconds;
    o.headless = headless;
    o.encoder = a.encoder.c_str();
    o.bitrate_kbps = a.bitrate;
    o.fps = a.fps;
    o.max_height = a.max_height;
    o.audio = a.no_audio ? 0 : 1;
    PublishOptions publish;
    if (!publish.fill(a, o)) return kExitUsage;
    CList dht(a.dht_bootstrap);
    o.dht_bootstrap = dht.data();
    o.dht_bootstrap_count = dht.size();
    o.no_dht = a.no_dht;
    std::fprintf(stderr, "pixelpass: demo: hosting the test source and viewing it over QUIC on loopback\n");
    std::string text;
    try {
        text = get_string([&](char *b, size_t s, size_t *n) {
            return pp_demo_run(&o, print_demo_event, verbose ? &o : nullptr, b, s, n);
        });
    } catch (pp_result e) {
        return report(e, "demo");
    }
    if (json) {
        std::printf("%s\n", text.c_str());
        return 0;
    }
    try {
        std::fputs(pixelpass_cli::demo_summary(text).c_str(), stdout);
        return pixelpass_cli::demo_ok(text) ? 0 : kExitFailure;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "pixelpass: unreadable demo report (%s): %s\n", e.what(), text.c_str());
        return kExitFailure;
    }
}

// The main job until media lands: a real host identity, its ticket encoded and decoded back.
int run_ticket_roundtrip() {
    pp_host *host = nullptr;
    if (pp_result rc = pp_host_new(&host, nullptr, nullptr, nullptr); rc != PP_OK) return report(rc);
    try {
        std::string text = get_string([&](char *b, size_t s, size_t *n) { return pp_host_ticket(host, b, s, n); });
        std::string fingerprint = get_string([&](char *b, size_t s, size_t *n) { return pp_host_fingerprint(host, b, s, n); });
        pp_ticket *decoded = nullptr;
        if (pp_result rc = pp_ticket_decode(&decoded, text.c_str()); rc != PP_OK) throw rc;
        uint8_t pinned[PP_FINGERPRINT_SIZE];
        pp_ticket_fingerprint(decoded, pinned);
        char hex[2 * PP_FINGERPRINT_SIZE + 1];
        for (size_t i = 0; i < PP_FINGERPRINT_SIZE; ++i) std::snprintf(hex + 2 * i, 3, "%02x", pinned[i]);
        std::string json = get_string([&](char *b, size_t s, size_t *n) { return pp_ticket_to_json(decoded, b, s, n); });
        pp_ticket_free(decoded);
        if (fingerprint != hex) {
            std::fprintf(stderr, "pixelpass: ticket round trip changed the fingerprint\n");
            pp_host_free(host);
            return kExitFailure;
        }
        std::printf("%s\n", text.c_str());
        std::fprintf(stderr, "pixelpass: fresh host identity %s\n", fingerprint.c_str());
        std::fprintf(stderr, "pixelpass: ticket (%zu characters) decodes back to: %s\n", text.size(), json.c_str());
    } catch (pp_result e) {
        pp_host_free(host);
        return report(e);
    }
    pp_host_free(host);
    return 0;
}

int run_inspect(const std::string &text) {
    pp_ticket *ticket = nullptr;
    if (pp_result rc = pp_ticket_decode(&ticket, text.c_str()); rc != PP_OK) return report(rc);
    try {
        std::string json = get_string([&](char *b, size_t s, size_t *n) { return pp_ticket_to_json(ticket, b, s, n); });
        std::printf("%s\n", json.c_str());
    } catch (pp_result e) {
        pp_ticket_free(ticket);
        return report(e);
    }
    pp_ticket_free(ticket);
    return 0;
}

int run_repair(bool dry_run, bool json) {
    pp_repair_options o = PP_REPAIR_OPTIONS_INIT;
    o.dry_run = dry_run;
    std::string report_json;
    try {
        // Two calls (size, then text) do one repair: the library keeps the report in between.
        report_json = get_string([&](char *b, size_t s, size_t *n) { return pp_repair(&o, b, s, n); });
    } catch (pp_result e) {
        return report(e);
    }
    // Exit 0 only when nothing is left orphaned (a dry run that finds work is not clean).
    try {
        std::string text = json ? report_json + "\n" : pixelpass_cli::repair_summary(report_json);
        std::fputs(text.c_str(), stdout);
        return pixelpass_cli::repair_clean(report_json) ? 0 : kExitFailure;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "pixelpass: unreadable repair report (%s): %s\n", e.what(), report_json.c_str());
        return kExitFailure;
    }
}

// `pixelpass relay config`: a coturn configuration with a fresh secret on stdout.
int run_relay_config(const std::string &public_host, uint16_t port) {
    char secret[PP_RELAY_SECRET_BUFFER];
    if (pp_result rc = pp_relay_secret_new(secret, sizeof secret); rc != PP_OK) return report(rc);
    try {
        std::string text = get_string([&](char *b, size_t s, size_t *n) {
            return pp_relay_config(public_host.c_str(), secret, port, b, s, n);
        });
        std::fputs(text.c_str(), stdout);
    } catch (pp_result e) {
        return report(e, "relay config");
    }
    return 0;
}

// Tickets pasted into a shell may arrive split over several arguments.
std::string join(const std::vector<std::string> &parts) {
    std::string out;
    for (const auto &p : parts) out += p;
    return out;
}

// The ticket given on the command line, or read from stdin for "-"; nullopt after printing why.
std::optional<std::string> ticket_argument(const std::vector<std::string> &parts) {
    std::string text = join(parts);
    if (text == "-") return read_stdin_ticket();
    return text;
}

} // namespace

namespace {

struct DemoCommand {
    CLI::App *cmd;
    double seconds = 0;
    bool headless = false, json = false, verbose = false;
    HostArgs args;
};

void add_demo_command(CLI::App &app, DemoCommand &d) {
    d.cmd = app.add_subcommand("demo", "Host the test source and watch it over QUIC on loopback, in one process");
    d.cmd->add_option("--seconds", d.seconds, "Headless: decode this long (default 5); with mpv: stop after this long")
        ->check(CLI::Range(0.0, 86400.0));
    d.cmd->add_flag("--headless", d.headless, "Decode in-process even when a display and mpv are there");
    d.cmd->add_flag("--json", d.json, "Print the full report as JSON");
    d.cmd->add_flag("-v,--verbose", d.verbose, "Print the host's and viewer's log lines");
    d.cmd->add_option("--encoder", d.args.encoder, "H.264 encoder: auto, va, vaapi, nvenc, x264, openh264")
        ->check(CLI::IsMember({"auto", "va", "vaapi", "nvenc", "x264", "openh264"}));
    d.cmd->add_option("--bitrate", d.args.bitrate, "Video bitrate in kbit/s")->check(CLI::Range(100u, 200000u));
    d.cmd->add_option("--fps", d.args.fps, "Output frame rate")->check(CLI::Range(1u, 240u));
    d.cmd->add_option("--max-height", d.args.max_height, "Downscale to at most this height")->check(CLI::Range(64u, 8640u));
    d.cmd->add_flag("--no-audio", d.args.no_audio, "Video only");
    d.cmd->add_option("--dht-bootstrap", d.args.dht_bootstrap,
                      "Rendezvous DHT node HOST:PORT (repeatable): the demo's viewer leaves its sealed offer "
                      "there and its host receives it (default: no rendezvous; never the public DHT)");
    d.cmd->add_flag("--no-dht", d.args.no_dht, "No rendezvous, even with [network] dht_bootstrap in the config");
    add_publish_options(d.cmd, d.args);
}

// The smaller subcommands: doctor, ticket inspect, repair, relay config.
struct ToolCommands {
    CLI::App *doctor, *ticket, *inspect, *repair, *relay_config;
    bool doctor_json = false;
    unsigned doctor_timeout = 1500;
    std::vector<std::string> inspect_ticket;
    bool dry_run = false, repair_json = false;
    std::string relay_public_host;
    uint16_t relay_port = 3478;
};

void add_tool_commands(CLI::App &app, ToolCommands &t) {
    t.doctor = app.add_subcommand("doctor", "Check what sharing and viewing need here; says how to fix each problem");
    t.doctor->add_flag("--json", t.doctor_json, "Print the checks as JSON");
    t.doctor->add_option("--timeout", t.doctor_timeout, "Milliseconds to wait for each STUN/relay probe")
        ->check(CLI::Range(50u, 30000u));

    t.ticket = app.add_subcommand("ticket", "Create a ticket for a fresh host identity and decode it back");
    t.inspect = t.ticket->add_subcommand("inspect", "Decode a ticket and print it as JSON (secret hashed)");
    t.inspect->add_option("ticket", t.inspect_ticket, "The ticket, or - to read it from stdin")->required();

    t.repair = app.add_subcommand("repair", "Remove audio routing left behind by crashed pixelpass processes");
    t.repair->add_flag("--dry-run", t.dry_run, "Only show what would be removed");
    t.repair->add_flag("--json", t.repair_json, "Print the report as JSON");

    auto *relay_cmd = app.add_subcommand("relay", "Set up a TURN relay for viewers behind hard NATs (docs/relay.md)");
    relay_cmd->require_subcommand(1);
    t.relay_config = relay_cmd->add_subcommand(
        "config", "Print a coturn configuration with a fresh secret, and the matching host flags");
    t.relay_config->add_option("--host", t.relay_public_host, "The relay's public DNS name or address")->required();
    t.relay_config->add_option("--port", t.relay_port, "UDP port coturn listens on")->check(CLI::Range(1, 65535));
}

// A tool subcommand's exit code, or nothing when none was given.
std::optional<int> run_tool_command(const ToolCommands &t) {
    if (*t.doctor) return pixelpass_cli::ux::doctor(t.doctor_json, t.doctor_timeout);
    if (*t.inspect) {
        auto text = ticket_argument(t.inspect_ticket);
        return text ? run_inspect(*text) : kExitFailure;
    }
    if (*t.ticket) return run_ticket_roundtrip();
    if (*t.repair) return run_repair(t.dry_run, t.repair_json);
    if (*t.relay_config) return run_relay_config(t.relay_public_host, t.relay_port);
    return std::nullopt;
}

} // namespace

int main(int argc, char **argv) {
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    CLI::App app{"pixelpass: share your screen peer to peer. The host prints a ticket; a viewer pastes it."};
    app.set_version_flag("-V,--version", std::string("pixelpass ") + pp_version());
    app.require_subcommand(0, 1);

    // The original tool's top-level flags: they configure hosting.
    HostArgs host_args;
    bool repair_flag = false, reconfigure = false, assume_yes = false, json_flag = false, copy_flag = false;
    add_host_options(&app, host_args);
    app.add_flag("--repair", repair_flag, "Same as `pixelpass repair`");
    app.add_flag("--reconfigure", reconfigure, "Re-run the bandwidth test");
    app.add_flag("-y,--yes", assume_yes, "Consent to the bandwidth test without asking (--reconfigure)");
    app.add_flag("--json", json_flag, "Events and status as JSON lines on stdout");
    app.add_flag("--copy", copy_flag, "Copy the ticket to the clipboard (always done from the menu)");
    std::vector<std::string> bare_ticket;
    app.add_option("ticket", bare_ticket, "A ticket to view (same as `pixelpass view TICKET`)");

    auto *host_cmd = app.add_subcommand("host", "Share this screen; prints the ticket on stdout");
    HostArgs host_cmd_args;
    add_host_options(host_cmd, host_cmd_args);
    host_cmd->fallthrough();  // --json, --copy apply to the subcommand too

    auto *view_cmd = app.add_subcommand("view", "Watch a host; prints the local URL for a player");
    std::vector<std::string> view_ticket;
    view_cmd->add_option("ticket", view_ticket, "The ticket from the host, or - to read it from stdin (not visible in ps)")
        ->required();
    std::string view_player = "none";
    view_cmd->add_option("--player", view_player, "Start this player on the stream, detached (none: only print)")
        ->check(CLI::IsMember({"mpv", "vlc", "none"}));
    view_cmd->fallthrough();
    ViewArgs view_args;
    add_view_options(view_cmd, view_args);

    DemoCommand demo;
    add_demo_command(app, demo);
    ToolCommands tools;
    add_tool_commands(app, tools);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : kExitUsage;
    }

    auto &ux_mode = pixelpass_cli::ux::mode();
    ux_mode.json = json_flag;
    ux_mode.copy = copy_flag;
    ux_mode.status_line = !json_flag && isatty(STDERR_FILENO);
    if (auto rc = run_tool_command(tools)) return *rc;
    if (*host_cmd) return run_host(host_cmd_args);
    if (*view_cmd) {
        auto text = ticket_argument(view_ticket);
        return text ? run_view(*text, view_player, view_args) : kExitFailure;
    }
    if (*demo.cmd) return run_demo(demo.seconds, demo.headless, demo.json, demo.verbose, demo.args);
    if (repair_flag) return run_repair(false, false);
    if (reconfigure) return pixelpass_cli::ux::reconfigure(assume_yes);
    if (!bare_ticket.empty()) {
        auto text = ticket_argument(bare_ticket);
        return text ? run_view(*text, "none") : kExitFailure;
    }
    if (pixelpass_cli::ux::interactive() && isatty(STDOUT_FILENO) && !json_flag) {
        static HostArgs *menu_host_args = &host_args;
        return pixelpass_cli::ux::menu([] { return run_host(*menu_host_args); }, interrupted);
    }
    return run_host(host_args);
}
