#include "doctor/doctor.hpp"

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clipboard/clipboard.hpp"
#include "common/error.hpp"
#include "config/config.hpp"
#include "nat/portmap.hpp"
#include "nat/turn.hpp"
#include "media/media.hpp"
#include "player/player.hpp"
#include "rendezvous/rendezvous.hpp"

namespace pp::doctor {
namespace {

struct Report {
    nlohmann::json checks = nlohmann::json::array();
    void add(const std::string &name, const std::string &status, const std::string &detail,
             const std::string &fix = "") {
        checks.push_back({{"name", name}, {"status", status}, {"detail", detail}, {"fix", fix}});
    }
};

std::string env(const char *name) {
    const char *v = std::getenv(name);
    return v ? v : "";
}

// True when something accepts connections on the Unix socket at `path`.
bool unix_socket_answers(const std::string &path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        ::close(fd);
        return false;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    bool ok = ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

bool exists(const std::string &path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0;
}

void check_media(Report &r, bool &can_encode) {
    nlohmann::json d;
    try {
        d = media::diagnose();
    } catch (const std::exception &e) {
        r.add("GStreamer", "error", e.what(), "install gstreamer1.0-plugins-base");
        can_encode = false;
        return;
    }
    if (d.value("gstreamer", nlohmann::json()).is_null()) {
        r.add("GStreamer", "error", d.value("error", "GStreamer is not available"),
              "rebuild pixelpass with GStreamer (libgstreamer1.0-dev)");
        can_encode = false;
        return;
    }
    std::string missing, fix;
    for (const auto &m : d["missing"]) {
        missing += (missing.empty() ? "" : ", ") + m.value("element", "");
        std::string pkg = m.value("package", "");
        if (!pkg.empty() && fix.find(pkg) == std::string::npos) fix += (fix.empty() ? "install " : " ") + pkg;
    }
    r.add("GStreamer", missing.empty() ? "ok" : "error",
          d.value("gstreamer", "") + (missing.empty() ? ", every element the pipeline needs is present"
                                                      : "; missing elements: " + missing),
          fix);
    for (const auto &e : d["encoders"]) {
        bool usable = e.value("usable", false);
        bool hw = e.value("hardware", false);
        std::string name = "encoder " + e.value("name", "") + " (" + e.value("element", "") + ")";
        std::string reason = e["reason"].is_string() ? e["reason"].get<std::string>() : "";
        std::string pkg = e.value("package", "");
        std::string fix_line;
        if (!usable) {
            // media::diagnose says "<package> is installed" when the plugin is there but the device is not.
            bool plugin_present = reason.find(" is installed") != std::string::npos;
            if (!plugin_present && !pkg.empty() && !hw) fix_line = "install " + pkg;
            else if (!plugin_present && !pkg.empty()) fix_line = "install " + pkg + " (and the GPU driver)";
            else if (hw)
                fix_line = "needs a GPU with H.264 encoding and its driver (AMD: mesa-va-drivers, "
                           "Intel: intel-media-va-driver, NVIDIA: the proprietary driver); software "
                           "encoding is used meanwhile";
            else
                fix_line = pkg.empty() ? "" : "reinstall " + pkg;
        }
        r.add(name, usable ? "ok" : (hw ? "warning" : "warning"),
              usable ? (hw ? "hardware encoding available" : "software encoding available") : reason, fix_line);
    }
    can_encode = d["selected"].is_string();
    r.add("H.264 encoder", can_encode ? "ok" : "error",
          can_encode ? "the host will use " + d["selected"].get<std::string>() : "no usable H.264 encoder",
          can_encode ? "" : "install gstreamer1.0-plugins-ugly (x264enc)");
    bool aac = d["aac"].is_string();
    r.add("AAC audio encoder", aac ? "ok" : "warning",
          aac ? "the host will use " + d["aac"].get<std::string>() : "no AAC encoder: audio cannot be shared",
          aac ? "" : "install gstreamer1.0-libav");
}

void check_capture(Report &r, bool &can_capture) {
    std::string wayland = env("WAYLAND_DISPLAY"), display = env("DISPLAY"), bus = env("DBUS_SESSION_BUS_ADDRESS");
    std::string runtime = env("XDG_RUNTIME_DIR");
    // The portal: a Wayland session, a session bus that answers, and the portal service installed.
    bool bus_ok = false;
    if (bus.rfind("unix:path=", 0) == 0) {
        std::string path = bus.substr(10, bus.find(',') == std::string::npos ? std::string::npos : bus.find(',') - 10);
        bus_ok = unix_socket_answers(path);
    } else if (bus.empty() && !runtime.empty()) {
        bus_ok = unix_socket_answers(runtime + "/bus");
    } else if (!bus.empty()) {
        bus_ok = true;  // abstract or tcp address: trust it
    }
    bool portal_installed = exists("/usr/libexec/xdg-desktop-portal") || exists("/usr/lib/xdg-desktop-portal");
    bool portal_ok = !wayland.empty() && bus_ok && portal_installed;
    std::string why;
    if (wayland.empty()) why = "not a Wayland session (WAYLAND_DISPLAY is unset)";
    else if (!bus_ok) why = "no D-Bus session bus answers";
    else if (!portal_installed) why = "xdg-desktop-portal is not installed";
    r.add("screen capture: portal", portal_ok ? "ok" : (wayland.empty() ? "skipped" : "error"),
          portal_ok ? "Wayland session with a session bus and xdg-desktop-portal" : why,
          portal_ok || wayland.empty() ? "" : "install xdg-desktop-portal and your desktop's backend "
                                               "(xdg-desktop-portal-gnome / -kde / -wlr)");
    bool x11_ok = false;
    if (!display.empty()) {
        std::string number = display.substr(display.find(':') == std::string::npos ? 0 : display.find(':') + 1);
        number = number.substr(0, number.find('.'));
        x11_ok = display[0] != ':' || unix_socket_answers("/tmp/.X11-unix/X" + number);
    }
    r.add("screen capture: X11", x11_ok ? "ok" : "skipped",
          x11_ok ? "X display " + display + " answers"
                 : (display.empty() ? "no X display (DISPLAY is unset)" : "X display " + display + " does not answer"));
    can_capture = portal_ok || x11_ok;
    if (!can_capture)
        r.add("screen capture", "error", "nothing to capture in this session",
              "run pixelpass inside your desktop session (Wayland or X11); `--source test` shares a test picture");
    bool pw = !runtime.empty() && unix_socket_answers(runtime + "/" + (env("PIPEWIRE_REMOTE").empty() ? "pipewire-0" : env("PIPEWIRE_REMOTE")));
    r.add("PipeWire", pw ? "ok" : "warning",
          pw ? "the PipeWire daemon answers" : "no PipeWire daemon answers" + (runtime.empty() ? std::string(" (XDG_RUNTIME_DIR is unset)") : ""),
          pw ? "" : "install and start pipewire (systemctl --user start pipewire); needed for portal capture and audio");
}

void check_players(Report &r, bool &can_view) {
    auto players = player::detect();
    can_view = false;
    for (const auto &p : players) {
        can_view = can_view || p.usable;
        r.add("player " + p.name, p.usable ? "ok" : "warning", p.usable ? p.path : p.path + " is installed but unusable",
              p.usable ? "" : p.problem);
    }
    if (players.empty()) r.add("player", "warning", "neither mpv nor VLC is installed", "install mpv");
}

void check_clipboard(Report &r) {
    auto p = clipboard::probe(STDIN_FILENO);
    std::string usable, missing;
    for (const auto &t : p["tools"]) {
        if (t["usable"].get<bool>()) usable += (usable.empty() ? "" : ", ") + t["name"].get<std::string>();
        else missing = t["problem"].get<std::string>();
    }
    std::string session = p["session"];
    if (!usable.empty()) r.add("clipboard", "ok", "will copy tickets with " + usable);
    else if (session == "none")
        r.add("clipboard", "warning", "no graphical session: tickets are copied with an OSC 52 terminal escape at most",
              "copy the printed ticket by hand");
    else
        r.add("clipboard", "warning", session + " session without a clipboard tool (" + missing + ")",
              session == "wayland" ? "install wl-clipboard" : "install xclip");
}

// The DHT rendezvous: joins it, and times a put and a get of a random value at a random key.
void check_rendezvous(Report &r, const config::Config &cfg, unsigned timeout_ms) {
    const std::string name = "rendezvous (DHT)";
    if (!cfg.dht) {
        r.add(name, "skipped", "[network] dht = \"off\": hosts behind NATs need a relay or a port mapping");
        return;
    }
    auto bootstrap = cfg.dht_bootstrap ? *cfg.dht_bootstrap : rendezvous::default_bootstrap();
    if (bootstrap.empty()) {
        r.add(name, "skipped", "no bootstrap: [network] dht_bootstrap is empty (or PIXELPASS_DEFAULT_DHT=off)");
        return;
    }
    std::string where;
    for (const auto &b : bootstrap) where += (where.empty() ? "" : ", ") + b;
    try {
        auto probe = rendezvous::probe_dht(bootstrap, std::max(timeout_ms * 2, 5000u));
        auto ms = [](unsigned v) { return v ? std::to_string(v) + " ms" : std::string("<1 ms"); };
        if (probe.ok)
            r.add(name, "ok", "reachable through " + where + ": put in " + ms(probe.put_ms) +
                                  ", read back by another node in " + ms(probe.get_ms) + " (" +
                                  std::to_string(probe.nodes) + " nodes known)");
        else
            r.add(name, "warning", where + ": " + probe.detail,
                  "check [network] dht_bootstrap and that outgoing UDP is allowed; without the rendezvous, a host "
                  "behind a NAT needs a relay or a port mapping");
    } catch (const Error &e) {
        r.add(name, "error", e.what(), "fix [network] dht_bootstrap (HOST:PORT entries)");
    }
}

// Each STUN server's view of this host, then the NAT kind from all of them (a TURN server answers
// Binding too).
void check_stun(Report &r, const config::Config &cfg, unsigned timeout_ms) {
    std::vector<std::string> servers;
    if (!cfg.stun_servers || cfg.stun_servers->empty()) {
        r.add("NAT (STUN)", "skipped", "no STUN servers configured ([network] stun_servers); not probed",
              "");
    } else {
        for (const auto &s : *cfg.stun_servers) {
            servers.push_back(s);
            try {
                r.add("NAT (STUN " + s + ")", "ok", "reachable; it sees this host as " + stun_mapped_address(s, timeout_ms));
            } catch (const Error &e) {
                r.add("NAT (STUN " + s + ")", "warning", e.what(),
                      "check the address in [network] stun_servers and that UDP to it is allowed");
            }
        }
    }
    if (!cfg.relay.empty()) servers.push_back(cfg.relay);
    if (servers.empty()) return;
    try {
        auto nat = classify_nat(servers, timeout_ms);
        std::string seen;
        for (const auto &[server, mapped] : nat.seen) seen += (seen.empty() ? "" : ", ") + server + " saw " + mapped;
        if (nat.kind == "none")
            r.add("NAT type", "ok", "no NAT: this host's own address is public (" + seen + ")");
        else if (nat.kind == "endpoint-independent")
            r.add("NAT type", "ok",
                  "endpoint-independent mapping (cone NAT): every server saw the same address (" + seen +
                      "); direct connections work with most viewers");
        else if (nat.kind == "endpoint-dependent")
            r.add("NAT type", "warning",
                  "endpoint-dependent mapping (symmetric NAT): each server saw another port (" + seen +
                      "); viewers behind port-restricted or symmetric NATs cannot connect directly",
                  cfg.relay.empty() ? "configure a relay ([network] relay and relay_secret; docs/relay.md) or "
                                      "enable UPnP / NAT-PMP on the router"
                                    : "");
        else if (nat.kind == "unknown")
            r.add("NAT type", "warning", "behind a NAT (" + seen + "); its mapping behaviour needs answers from two servers",
                  "list a second STUN server in [network] stun_servers");
        else
            r.add("NAT type", "warning",
                  "unreachable: none of " + std::to_string(nat.asked) + " STUN server(s) answered; UDP may be blocked",
                  "check that outgoing UDP is allowed and the servers in [network] stun_servers are right");
    } catch (const Error &e) {
        r.add("NAT type", "warning", e.what(), "");
    }
}

// A real throwaway mapping per protocol, unless port mapping is turned off.
void check_port_mapping(Report &r, const config::Config &cfg, unsigned timeout_ms) {
    std::optional<nat::portmap::Options> portmap;
    std::string off_why;
    try {
        portmap = nat::portmap::options_from_environment();
        if (!portmap) off_why = "PIXELPASS_PORTMAP=off";
    } catch (const Error &e) {
        off_why = e.what();
    }
    if (!cfg.port_mapping) {
        portmap.reset();
        off_why = "[network] port_mapping = \"off\"";
    }
    if (!portmap) {
        r.add("port mapping (UPnP / NAT-PMP / PCP)", "skipped", "not probed: " + off_why);
        return;
    }
    portmap->timeout_ms = std::max(timeout_ms, 500u);
    try {
        std::string detail;
        bool any = false;
        for (const auto &a : nat::portmap::probe(*portmap)) {
            any = any || a.available;
            detail += (detail.empty() ? "" : "; ") + std::string(nat::portmap::name(a.protocol)) + ": " +
                      (a.available ? "available, " : "") + a.detail;
        }
        r.add("port mapping (UPnP / NAT-PMP / PCP)", any ? "ok" : "warning", detail,
              any ? "" : "enable UPnP or NAT-PMP/PCP in the router's settings, or configure a relay; "
                         "viewers behind strict NATs need one of them");
    } catch (const Error &e) {
        r.add("port mapping (UPnP / NAT-PMP / PCP)", "warning", e.what(), "");
    }
}

// The configured relay: it answers, and its secret really allocates. False when the relay cannot
// work as configured (the user asked for it, so sharing as configured cannot work).
bool check_relay(Report &r, const config::Config &cfg, unsigned timeout_ms) {
    if (cfg.relay.empty()) {
        r.add("relay", "skipped", "no relay configured ([network] relay); viewers behind strict NATs may not connect",
              "set [network] relay = \"turn:HOST:PORT\" to a TURN server you run");
        return true;
    }
    try {
        r.add("relay " + cfg.relay, "ok",
              "answers STUN Binding" + std::string("; sees this host as ") + stun_mapped_address(cfg.relay, timeout_ms));
    } catch (const Error &e) {
        r.add("relay " + cfg.relay, "error", e.what(), "check [network] relay and that the TURN server runs");
        return false;  // the credential check below could only time out as well
    }
    if (cfg.relay_secret.empty()) {
        r.add("relay credentials", "warning", "no [network] relay_secret: a host started without --relay-secret "
                                              "cannot allocate on " + cfg.relay,
              "set [network] relay_secret to the relay's static-auth-secret (pixelpass relay config prints one)");
        return true;
    }
    try {
        auto creds = nat::rest_credentials(cfg.relay_secret, static_cast<int64_t>(std::time(nullptr)) + 600);
        auto t = check_turn(cfg.relay, creds.username, creds.password, std::max(timeout_ms, 1000u));
        if (t.code == PP_OK) {
            r.add("relay credentials", "ok", "allocated " + t.relayed + " on " + cfg.relay + " with [network] relay_secret");
            return true;
        }
        if (t.code == PP_ERR_TICKET_REJECTED)
            r.add("relay credentials", "error", t.detail,
                  "set [network] relay_secret to the static-auth-secret in the relay's turnserver.conf");
        else  // no answer to the allocation, or refused for another reason
            r.add("relay credentials", "error", t.detail, "check that the relay allows allocations (docs/relay.md)");
    } catch (const Error &e) {
        r.add("relay credentials", "error", e.what(), "check [network] relay");
    }
    return false;
}

// Returns false when the configured relay cannot work (refused credentials, none to use): the
// user asked for a relay, so sharing as configured cannot work.
bool check_network(Report &r, const config::Config &cfg, unsigned timeout_ms) {
    check_stun(r, cfg, timeout_ms);
    check_port_mapping(r, cfg, timeout_ms);
    check_rendezvous(r, cfg, timeout_ms);
    return check_relay(r, cfg, timeout_ms);
}

} // namespace

nlohmann::json run(const Options &options) {
    Report r;
    config::Config cfg;
    std::string path = options.config_path.empty() ? config::default_path() : options.config_path;
    bool config_ok = true;
    try {
        cfg = config::load(path);
        if (!cfg.exists) r.add("config", "ok", path + " does not exist yet (first run: built-in defaults)");
        else if (cfg.warnings.empty()) r.add("config", "ok", path);
        else
            for (const auto &w : cfg.warnings) r.add("config", "warning", w, "remove or correct the key");
    } catch (const Error &e) {
        config_ok = false;
        r.add("config", "error", e.what(), "fix the file at that line, or delete it to start over");
    }
    r.add("bandwidth", cfg.bandwidth.status == "measured" ? "ok" : "skipped",
          cfg.bandwidth.status == "measured"
              ? "upstream about " + std::to_string(int(cfg.bandwidth.upstream_mbps)) + " Mbit/s: default viewer cap " +
                    std::to_string(config::default_max_viewers(cfg, cfg.bitrate_kbps.value_or(0)))
              : "not measured (" + cfg.bandwidth.status + "): default viewer cap " +
                    std::to_string(config::default_max_viewers(cfg, cfg.bitrate_kbps.value_or(0))),
          cfg.bandwidth.status == "measured" ? "" : "pixelpass --reconfigure measures it");
    bool can_encode = false, can_capture = false, can_view = false;
    check_media(r, can_encode);
    check_capture(r, can_capture);
    check_players(r, can_view);
    check_clipboard(r);
    bool relay_ok = check_network(r, cfg, options.probe_timeout_ms);
    return {{"checks", r.checks},
            {"can_share", config_ok && can_encode && can_capture && relay_ok},
            {"can_view", can_view}};
}

} // namespace pp::doctor
