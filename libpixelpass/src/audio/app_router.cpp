#include "audio/app_router.hpp"

#include <pipewire/pipewire.h>
#include <unistd.h>

#include "audio/app_match.hpp"
#include "audio/capture_name.hpp"
#include "audio/pw_client.hpp"
#include "common/error.hpp"

namespace pp::audio {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kConnectTimeout = std::chrono::milliseconds(3000);
// How often the registry is looked at: the delay between a stream appearing and its sound
// reaching the capture sink is at most this plus a few round trips.
constexpr auto kScanInterval = std::chrono::milliseconds(50);

constexpr auto kRetryAfter = std::chrono::seconds(1);
constexpr auto kWaitingAfter = std::chrono::milliseconds(500);

constexpr std::string_view kNodeType = "PipeWire:Interface:Node";
constexpr std::string_view kPortType = "PipeWire:Interface:Port";
constexpr std::string_view kLinkType = "PipeWire:Interface:Link";

// One capture at a time per process: the sink's name carries only the PID.
std::atomic<bool> g_routing{false};

std::string prop(const Properties &p, const char *key) {
    auto it = p.find(key);
    return it == p.end() ? "" : it->second;
}

uint32_t prop_u32(const Properties &p, const char *key) {
    try {
        return static_cast<uint32_t>(std::stoul(prop(p, key)));
    } catch (const std::exception &) {
        return SPA_ID_INVALID;
    }
}

} // namespace

struct AppRouter::State {
    std::unique_ptr<PwClient> pw;
    uint32_t sink = SPA_ID_INVALID;
    struct Seen {
        std::string serial;   // object.serial: ids are reused, serials are not
        std::string matched;  // "" when the stream is not one of ours
        Properties props;
        Clock::time_point first_seen;
        bool announced = false;
    };
    std::map<uint32_t, Seen> seen;                              // stream node id → what it is
    struct Link {
        uint32_t id;
        std::string serial;  // ids are reused at once; the serial tells our link from a newcomer
    };
    std::map<std::pair<uint32_t, uint32_t>, Link> links;        // (output port, sink input) → ours
    // Pairs the server refused to link (or answered too slowly for), and when to try again: a
    // loaded machine can miss one round-trip deadline, which must not silence an app for good.
    std::map<std::pair<uint32_t, uint32_t>, Clock::time_point> failed;
    bool waiting_said = false;
    // Since when nothing is linked: "waiting" is said only after a moment, since a stream that is
    // there already gets its ports a few milliseconds after its node.
    Clock::time_point idle_since = Clock::now();
};

AppRouter::AppRouter(std::vector<std::string> wanted, Log log)
    : wanted_(std::move(wanted)), log_(std::move(log)), sink_name_(capture_sink_name(getpid())) {
    check_app_names(wanted_);
    if (g_routing.exchange(true))
        throw Error(PP_ERR_STATE, "this process already shares applications' audio (--app): one such share "
                                  "per process, since the capture sink is named after the process id");
    auto ready = std::make_shared<std::promise<void>>();
    auto started = ready->get_future();
    // libpipewire's loop belongs to the thread that entered it: connecting, creating and
    // following all happen on the router's own thread.
    thread_ = std::thread(&AppRouter::run, this, ready);
    try {
        started.get();
    } catch (...) {
        thread_.join();
        g_routing = false;
        throw;
    }
}

AppRouter::~AppRouter() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    g_routing = false;
}

std::vector<RoutedApp> AppRouter::apps() const {
    std::lock_guard lock(mutex_);
    return apps_;
}

nlohmann::json AppRouter::describe() const {
    std::lock_guard lock(mutex_);
    nlohmann::json list = nlohmann::json::array();
    for (const auto &a : apps_)
        list.push_back({{"node", a.node},
                        {"matched", a.matched},
                        {"name", a.name},
                        {"binary", a.binary},
                        {"pid", a.pid},
                        {"links", a.links}});
    return {{"capture_sink", sink_name_}, {"matching", list}, {"lost", lost_}};
}

void AppRouter::run(std::shared_ptr<std::promise<void>> ready) {
    State s;
    try {
        std::string why;
        s.pw = PwClient::connect(kConnectTimeout, &why);
        if (!s.pw)
            throw Error(PP_ERR_IO, "sharing an application's audio (--app) needs PipeWire, and no PipeWire "
                                   "server answered (" + (why.empty() ? std::string("no reason given") : why) +
                                   "): start pipewire, or share all system audio (leave out --app)");
        // A null sink nobody plays to by default: WirePlumber picks the default sink by
        // priority.session (a node without one counts as -1, and a newcomer with 0 would win and
        // have every stream moved into it), so ours is far below anything real. It goes with our
        // connection (object.linger=false).
        s.sink = s.pw->create_object("adapter", PW_TYPE_INTERFACE_Node, PW_VERSION_NODE,
                                     {{"factory.name", "support.null-audio-sink"},
                                      {"media.class", "Audio/Sink"},
                                      {"node.name", sink_name_},
                                      {"node.description", "pixelpass capture (" + sink_name_ + ")"},
                                      {"node.virtual", "true"},
                                      {"priority.session", "-1000000000"},
                                      {"priority.driver", "0"},
                                      {"audio.position", "FL,FR"},
                                      {"monitor.channel-volumes", "true"},
                                      {"object.linger", "false"}});
        // Its ports come a moment after the node.
        auto deadline = Clock::now() + kConnectTimeout;
        auto inputs = [&] {
            size_t n = 0;
            for (const auto *g : s.pw->globals_of_type(kPortType))
                if (prop_u32(g->props, "node.id") == s.sink && prop(g->props, "port.direction") == "in") ++n;
            return n;
        };
        while (inputs() < 2) {
            if (Clock::now() > deadline)
                throw Error(PP_ERR_IO, "the capture sink " + sink_name_ + " got no input ports from PipeWire");
            s.pw->run_for(std::chrono::milliseconds(10));
        }
    } catch (...) {
        ready->set_exception(std::current_exception());
        return;
    }
    ready->set_value();
    try {
        std::string last_problem;
        for (bool first = true; !stop_; first = false) {
            if (!first) s.pw->run_for(kScanInterval);  // throws only when the connection is lost
            try {
                scan(s);
                last_problem.clear();
            } catch (const Error &e) {
                // A stream that vanished mid-question or a slow answer on a loaded machine: the next
                // scan tries again. Only a lost connection ends the routing.
                if (s.pw->lost()) throw;
                if (e.what() != last_problem && log_) log_(1, std::string("audio: ") + e.what());
                last_problem = e.what();
            }
        }
    } catch (const std::exception &e) {
        {
            std::lock_guard lock(mutex_);
            lost_ = true;
            apps_.clear();
        }
        if (log_) log_(1, std::string("audio: per-application capture stopped: ") + e.what());
    }
    // `s` goes here: the connection ends, and with it the sink and every link.
}

// The sink's inputs by channel, every stream's outputs, and what is really linked into the sink.
// Copied from the registry: creating a link runs the event loop, which may remove registry
// entries under a pointer.
struct AppRouter::SinkPorts {
    struct Port {
        uint32_t id;
        std::string channel;
    };
    std::map<std::string, uint32_t> sink_inputs;         // channel → sink input port
    std::map<uint32_t, std::vector<Port>> outputs;       // stream node → its output ports
    std::set<std::pair<uint32_t, uint32_t>> existing;    // (output port, sink input) linked now
};

void AppRouter::scan(State &s) {
    forget_gone(s);
    look_at_new_streams(s);
    SinkPorts ports = read_ports(s);
    std::vector<RoutedApp> routed;
    for (auto &[id, seen] : s.seen)
        if (!seen.matched.empty()) routed.push_back(link_app(s, id, ports));
    say_if_waiting(s, routed);
    std::lock_guard lock(mutex_);
    apps_ = std::move(routed);
}

// Forgets streams that went (announcing it), our links whose stream port went (the server
// destroyed them), and refusals about objects that no longer exist.
void AppRouter::forget_gone(State &s) {
    PwClient &pw = *s.pw;
    const auto &globals = pw.globals();
    for (auto it = s.seen.begin(); it != s.seen.end();) {
        auto g = globals.find(it->first);
        if (g != globals.end() && prop(g->second.props, "object.serial") == it->second.serial) {
            ++it;
            continue;
        }
        if (!it->second.matched.empty() && log_)
            log_(0, "audio: " + prop(it->second.props, "application.name") + " stopped playing");
        it = s.seen.erase(it);
    }
    for (auto it = s.links.begin(); it != s.links.end();) {
        auto g = globals.find(it->second.id);
        if (g != globals.end() &&
            (it->second.serial.empty() || prop(g->second.props, "object.serial") == it->second.serial)) {
            ++it;
            continue;
        }
        pw.release(it->second.id);
        it = s.links.erase(it);
    }
    for (auto it = s.failed.begin(); it != s.failed.end();)
        it = globals.count(it->first.first) ? std::next(it) : s.failed.erase(it);
}

// Looks at new playback streams, and again at young ones that matched nothing: a stream's
// application properties can reach its node after the node itself, and a stream judged on the
// first, bare properties was never captured (an app-audio test failure under load).
void AppRouter::look_at_new_streams(State &s) {
    constexpr auto kRecheckFor = std::chrono::seconds(3);
    PwClient &pw = *s.pw;
    auto now = Clock::now();
    std::vector<uint32_t> fresh;
    for (const auto *g : pw.globals_of_type(kNodeType)) {
        if (prop(g->props, "media.class") != "Stream/Output/Audio") continue;
        auto known = s.seen.find(g->id);
        if (known == s.seen.end() || (known->second.matched.empty() && now - known->second.first_seen < kRecheckFor))
            fresh.push_back(g->id);
    }
    for (uint32_t id : fresh) {
        auto g = pw.globals().find(id);
        if (g == pw.globals().end()) continue;
        std::string serial = prop(g->second.props, "object.serial");
        auto props = pw.node_props(id);  // the registry leaves out application.process.binary
        if (!props) continue;            // gone meanwhile
        auto known = s.seen.find(id);
        auto first_seen = known != s.seen.end() && known->second.serial == serial ? known->second.first_seen : now;
        State::Seen seen{serial, app_match(*props, wanted_), std::move(*props), first_seen, false};
        s.seen[id] = std::move(seen);
    }
}

AppRouter::SinkPorts AppRouter::read_ports(State &s) {
    SinkPorts ports;
    for (const auto *g : s.pw->globals_of_type(kPortType)) {
        uint32_t node = prop_u32(g->props, "node.id");
        std::string dir = prop(g->props, "port.direction");
        if (node == s.sink && dir == "in") ports.sink_inputs[prop(g->props, "audio.channel")] = g->id;
        else if (dir == "out" && prop(g->props, "port.monitor") != "true")
            ports.outputs[node].push_back({g->id, prop(g->props, "audio.channel")});
    }
    // The registry's links are the truth, whatever ids were reused.
    for (const auto *g : s.pw->globals_of_type(kLinkType))
        if (prop_u32(g->props, "link.input.node") == s.sink)
            ports.existing.insert({prop_u32(g->props, "link.output.port"), prop_u32(g->props, "link.input.port")});
    return ports;
}

// Links each output port of a matched stream to the sink input of its channel (a mono stream to
// both), keeping what is linked already, and says when an app is first captured.
RoutedApp AppRouter::link_app(State &s, uint32_t node, const SinkPorts &ports) {
    PwClient &pw = *s.pw;
    State::Seen &seen = s.seen.at(node);
    RoutedApp app{node, seen.matched, prop(seen.props, "application.name"),
                  prop(seen.props, "application.process.binary"), 0, 0};
    try {
        app.pid = std::stol(prop(seen.props, "application.process.id"));
    } catch (const std::exception &) {
    }
    static const std::vector<SinkPorts::Port> kNoPorts;
    auto found = ports.outputs.find(node);
    const auto &outputs = found == ports.outputs.end() ? kNoPorts : found->second;
    for (const SinkPorts::Port &port : outputs) {
        std::vector<uint32_t> targets;
        if (auto in = ports.sink_inputs.find(port.channel); in != ports.sink_inputs.end()) targets.push_back(in->second);
        else if (port.channel == "MONO" || port.channel.empty())  // one channel: into both sides
            for (const auto &[ch, in_id] : ports.sink_inputs) targets.push_back(in_id);
        for (uint32_t in : targets) {
            auto key = std::make_pair(port.id, in);
            if (ports.existing.count(key)) {
                ++app.links;
                continue;
            }
            if (auto stale = s.links.find(key); stale != s.links.end()) {  // ours, but gone
                pw.release(stale->second.id);
                s.links.erase(stale);
            }
            if (auto f = s.failed.find(key); f != s.failed.end() && Clock::now() < f->second) continue;
            try {
                uint32_t link = pw.create_object("link-factory", PW_TYPE_INTERFACE_Link, PW_VERSION_LINK,
                                                 {{"link.output.node", std::to_string(node)},
                                                  {"link.output.port", std::to_string(port.id)},
                                                  {"link.input.node", std::to_string(s.sink)},
                                                  {"link.input.port", std::to_string(in)},
                                                  {"object.linger", "false"}});
                auto g = pw.globals().find(link);
                s.links[key] = {link, g == pw.globals().end() ? "" : prop(g->second.props, "object.serial")};
                s.failed.erase(key);
                ++app.links;
            } catch (const Error &e) {
                if (pw.lost()) throw;
                if (!pw.globals().count(port.id)) continue;  // the stream just ended
                bool again = s.failed.count(key) > 0;
                s.failed[key] = Clock::now() + kRetryAfter;
                if (!again && log_)
                    log_(1, "audio: cannot link " + app.name + " to " + sink_name_ + " (trying again): " + e.what());
            }
        }
    }
    if (app.links > 0 && !seen.announced) {
        seen.announced = true;
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - seen.first_seen);
        if (log_)
            log_(0, "audio: capturing " + app.name + (app.binary.empty() ? "" : " (" + app.binary + ")") +
                        ", linked " + std::to_string(ms.count()) + " ms after its stream appeared");
    }
    return app;
}

// "Waiting for one" is said once, a moment after nothing is linked any more.
void AppRouter::say_if_waiting(State &s, const std::vector<RoutedApp> &routed) {
    bool linked_any = false;
    for (const auto &a : routed) linked_any = linked_any || a.links > 0;
    if (linked_any) {
        s.waiting_said = false;
        s.idle_since = Clock::now();
        return;
    }
    if (s.waiting_said || Clock::now() - s.idle_since <= kWaitingAfter) return;
    s.waiting_said = true;
    if (!log_) return;
    std::string names;
    for (const auto &w : wanted_) names += (names.empty() ? "" : ", ") + w;
    log_(0, "audio: no application matching " + names + " is playing; waiting for one (sharing silence until then)");
}

} // namespace pp::audio
