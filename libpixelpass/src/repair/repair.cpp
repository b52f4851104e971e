// repair over libpulse (modules of pipewire-pulse or PulseAudio) and libpipewire (nodes,
// clients, WirePlumber's metadata). Built when the `pipewire` feature is enabled.
#include "repair/repair.hpp"

#include <unistd.h>

#include <pipewire/extensions/metadata.h>
#include <pipewire/pipewire.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "audio/capture_name.hpp"
#include "audio/modargs.hpp"
#include "audio/pulse_client.hpp"
#include "audio/pw_client.hpp"
#include "common/error.hpp"
#include "repair/restore_state.hpp"

namespace pp::repair {

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kConnectTimeout = 3000ms;
// WirePlumber saves its state 1 s after the last change; every change re-arms that timer.
constexpr auto kWirePlumberSaveWait = 1600ms;
constexpr int kWirePlumberAttempts = 3;

// One object found by a scan, removable (owner dead) or not.
struct Item {
    std::string kind;
    json id;  // module index, global id, or null
    std::string name;
    pid_t pid = 0;
    json extra = json::object();  // kind-specific fields

    json to_json() const {
        json j = {{"kind", kind}, {"id", id}, {"name", name}, {"pid", pid}};
        for (auto &[k, v] : extra.items()) j[k] = v;
        return j;
    }
    json with_reason(const std::string &reason) const {
        json j = to_json();
        j["reason"] = reason;
        return j;
    }
    // Identity across scans (to tell "still there" after a removal).
    std::string identity() const { return kind + "|" + id.dump() + "|" + name; }
};

struct Scan {
    std::vector<Item> loopbacks, sinks, nodes, targets;  // dead owners: to remove
    std::vector<json> skipped;
};

std::string alive_reason(pid_t pid) {
    return "owner " + std::to_string(pid) + " is alive" + (pid == ::getpid() ? " (this process)" : "");
}

// Sorts an item into "remove" or "skipped" by its owner.
void classify(Item item, std::vector<Item> &remove, std::vector<json> &skipped) {
    if (audio::process_alive(item.pid))
        skipped.push_back(item.with_reason(alive_reason(item.pid)));
    else
        remove.push_back(std::move(item));
}

std::optional<uint32_t> to_u32(const audio::Properties &props, const char *key) {
    auto it = props.find(key);
    if (it == props.end()) return std::nullopt;
    try {
        size_t used = 0;
        unsigned long v = std::stoul(it->second, &used);
        if (used != it->second.size() || v > UINT32_MAX) return std::nullopt;
        return static_cast<uint32_t>(v);
    } catch (const std::exception &) {
        return std::nullopt;
    }
}

void scan_modules(const std::vector<audio::PulseModule> &modules, audio::ArgsDialect dialect, Scan &scan) {
    for (const auto &m : modules) {
        bool null_sink = m.name == "module-null-sink", loopback = m.name == "module-loopback";
        if (!null_sink && !loopback) continue;  // other modules' arguments are never read
        auto args = audio::parse_module_args(m.argument, dialect);
        if (!args) {
            // Not what the server accepts: leave it, and say so only if it mentions us.
            if (m.argument.find(audio::kCapturePrefix) != std::string::npos)
                scan.skipped.push_back(Item{null_sink ? "sink" : "loopback", m.index, m.name, 0,
                                            {{"argument", m.argument}}}
                                           .with_reason("its argument does not parse; left alone"));
            continue;
        }
        if (null_sink) {
            auto it = args->find("sink_name");
            if (it == args->end()) continue;
            if (auto pid = audio::capture_owner(it->second))
                classify(Item{"sink", m.index, it->second, *pid, {{"module", m.name}}}, scan.sinks, scan.skipped);
            continue;
        }
        // A loopback is ours when either end is a capture sink; any live end keeps it.
        std::vector<pid_t> owners;
        json ends = json::object();
        for (const char *end : {"source", "sink"}) {
            auto it = args->find(end);
            if (it == args->end()) continue;
            ends[end] = it->second;
            if (auto pid = audio::capture_owner(it->second, true)) owners.push_back(*pid);
        }
        if (owners.empty()) continue;
        auto live = std::find_if(owners.begin(), owners.end(), audio::process_alive);
        Item item{"loopback", m.index, m.name, live != owners.end() ? *live : owners.front(), ends};
        item.extra["argument"] = m.argument;
        if (live != owners.end())
            scan.skipped.push_back(item.with_reason(alive_reason(*live)));
        else
            scan.loopbacks.push_back(std::move(item));
    }
}

void scan_nodes(audio::PwClient &pw, const std::set<uint32_t> &module_indices, Scan &scan) {
    std::map<uint32_t, const audio::PwGlobal *> clients;
    for (const auto *c : pw.globals_of_type(PW_TYPE_INTERFACE_Client)) clients[c->id] = c;
    for (const auto *g : pw.globals_of_type(PW_TYPE_INTERFACE_Node)) {
        auto name_it = g->props.find(PW_KEY_NODE_NAME);
        if (name_it == g->props.end()) continue;
        auto pid = audio::capture_owner(name_it->second);
        if (!pid) continue;
        auto props = pw.node_props(g->id);
        if (!props) continue;  // gone meanwhile
        // A Pulse module's node goes with its module (handled above), never on its own.
        if (auto module = to_u32(*props, "pulse.module.id"); module && module_indices.count(*module)) continue;
        Item item{"node", g->id, name_it->second, *pid, json::object()};
        auto linger = props->find(PW_KEY_OBJECT_LINGER);
        item.extra["linger"] = linger != props->end() && linger->second == "true";
        if (auto client = to_u32(*props, PW_KEY_CLIENT_ID); client && clients.count(*client)) {
            // Still held by a connected client: it vanishes when that client disconnects, and
            // destroying it under the client's feet is not ours to do.
            const auto &cp = clients[*client]->props;
            auto sec = cp.find(PW_KEY_SEC_PID);
            item.extra["client"] = *client;
            scan.skipped.push_back(item.with_reason(
                "held by connected client " + std::to_string(*client) +
                (sec != cp.end() ? " (pid " + sec->second + ")" : std::string()) +
                "; it goes away with that client"));
            continue;
        }
        classify(std::move(item), scan.nodes, scan.skipped);
    }
}

void scan_targets(const std::string &path, Scan &scan) {
    if (path.empty()) return;
    auto text = read_file(path);
    if (!text) return;
    for (const auto &t : restore_targets(*text)) {
        auto pid = audio::capture_owner(t.target);
        if (!pid) continue;
        classify(Item{"restore-target", nullptr, t.key_base, *pid, {{"target", t.target}, {"file", path}}},
                 scan.targets, scan.skipped);
    }
}

struct Session {
    std::unique_ptr<audio::PulseClient> pulse;
    std::unique_ptr<audio::PwClient> pw;
    std::string state_path = restore_stream_path();
    audio::ArgsDialect dialect = audio::ArgsDialect::pulseaudio;

    Scan scan() {
        Scan s;
        std::set<uint32_t> indices;
        if (pulse) {
            auto modules = pulse->modules();
            for (const auto &m : modules) indices.insert(m.index);
            scan_modules(modules, dialect, s);
        }
        if (pw) {
            pw->sync();
            scan_nodes(*pw, indices, s);
        }
        scan_targets(state_path, s);
        return s;
    }

    bool wireplumber_running() const {
        if (!pw) return false;
        for (const auto *c : pw->globals_of_type(PW_TYPE_INTERFACE_Client)) {
            auto it = c->props.find(PW_KEY_APP_NAME);
            if (it != c->props.end() && it->second == "WirePlumber") return true;
        }
        return false;
    }

    std::optional<uint32_t> default_metadata() const {
        for (const auto *m : pw->globals_of_type(PW_TYPE_INTERFACE_Metadata)) {
            auto it = m->props.find(PW_KEY_METADATA_NAME);
            if (it != m->props.end() && it->second == "default") return m->id;
        }
        return std::nullopt;
    }

    std::set<std::string> remaining_targets(const std::vector<Item> &targets) {
        std::set<std::string> wanted, left;
        for (const auto &t : targets) wanted.insert(t.name);
        if (auto text = read_file(state_path))
            for (const auto &t : restore_targets(*text))
                if (wanted.count(t.key_base) && audio::capture_owner(t.target)) left.insert(t.key_base);
        return left;
    }

    // Makes a running WirePlumber forget `targets` (see repair.hpp); returns the key bases it
    // still remembers afterwards.
    std::set<std::string> clear_in_wireplumber(const std::vector<Item> &targets) {
        auto metadata = default_metadata();
        std::set<std::string> left = remaining_targets(targets);
        if (!metadata || left.empty()) return left;
        std::vector<uint32_t> standins;
        for (const auto &t : targets) {
            if (!left.count(t.name)) continue;
            auto key = parse_key_base(t.name);
            if (!key || key->media_class.rfind("Stream/", 0) != 0) continue;  // not a stream's entry
            audio::Properties props = {
                {"factory.name", "support.null-audio-sink"},
                {PW_KEY_MEDIA_CLASS, key->media_class},
                {PW_KEY_NODE_NAME, "pixelpass-repair-" + std::to_string(::getpid()) + "-" +
                                       std::to_string(standins.size())},
                {PW_KEY_NODE_DESCRIPTION, "pixelpass repair: forgetting a remembered target"},
                {PW_KEY_NODE_AUTOCONNECT, "false"},
                {"state.restore-props", "false"},  // never let WirePlumber save our volume as theirs
            };
            props[key->property] = key->value;  // overrides node.name when that is the identity
            standins.push_back(pw->create_object("adapter", PW_TYPE_INTERFACE_Node, PW_VERSION_NODE, props));
        }
        if (standins.empty()) return left;
        // WirePlumber must have picked the stand-ins up before the metadata change means anything
        // to it, and it saves only a second after the last change: write, wait, check, repeat.
        pw->run_for(300ms);
        for (int attempt = 0; attempt < kWirePlumberAttempts && !left.empty(); ++attempt) {
            for (uint32_t id : standins)
                pw->set_metadata(*metadata, id, "target.object", "Spa:Id", attempt % 2 ? nullptr : "-1");
            auto until = std::chrono::steady_clock::now() + kWirePlumberSaveWait;
            while (!left.empty() && std::chrono::steady_clock::now() < until) {
                pw->run_for(100ms);
                left = remaining_targets(targets);
            }
        }
        for (uint32_t id : standins) {
            pw->set_metadata(*metadata, id, "target.object", nullptr, nullptr);
            pw->release(id);
        }
        return left;
    }
};

} // namespace

namespace {

// What a repair did, item by item.
struct Outcome {
    json removed = json::array();
    json failed = json::array();
    std::set<std::string> failed_ids;

    void fail(const Item &item, const std::string &reason) {
        failed.push_back(item.with_reason(reason));
        failed_ids.insert(item.identity());
    }
};

void connect(Session &s) {
    std::string pulse_why, pw_why;
    s.pulse = audio::PulseClient::connect(kConnectTimeout, &pulse_why);
    s.pw = audio::PwClient::connect(kConnectTimeout, &pw_why);
    if (!s.pulse && !s.pw)
        throw Error(PP_ERR_IO, "no PipeWire/PulseAudio server reachable (pulse: " + pulse_why +
                                   "; pipewire: " + pw_why +
                                   "): nothing was checked; run repair as the user whose audio session it is");
}

// Loopbacks first: with its capture sink gone, a loopback's input is free for the session manager
// to re-link to the default source — speaker.monitor into the speaker.
void remove_modules_and_nodes(Session &s, const Scan &found, Outcome &out) {
    for (const auto *list : {&found.loopbacks, &found.sinks}) {
        for (const auto &item : *list) {
            try {
                s.pulse->unload_module(item.id.get<uint32_t>());
                out.removed.push_back(item.to_json());
            } catch (const Error &e) {
                out.fail(item, e.what());
            }
        }
    }
    for (const auto &item : found.nodes) {
        try {
            s.pw->destroy(item.id.get<uint32_t>());
            out.removed.push_back(item.to_json());
        } catch (const Error &e) {
            out.fail(item, e.what());
        }
    }
}

// Remembered targets: through WirePlumber when it runs; what it did not drop itself (or all of
// it, when WirePlumber is not running) comes out of the state file. With WirePlumber running a
// leftover is reported as a failure, since it may write the entry back from memory.
void forget_targets(Session &s, const std::vector<Item> &targets, bool wireplumber, Outcome &out) {
    if (targets.empty()) return;
    std::set<std::string> left;
    std::string wp_error;
    try {
        left = wireplumber ? s.clear_in_wireplumber(targets) : s.remaining_targets(targets);
    } catch (const Error &e) {
        wp_error = e.what();
        left = s.remaining_targets(targets);
    }
    std::string edit_error;
    if (!left.empty()) {
        try {
            if (auto text = read_file(s.state_path))
                replace_file_atomically(s.state_path, without_targets(*text, left));
        } catch (const Error &e) {
            edit_error = e.what();
        }
    }
    for (const auto &item : targets) {
        if (!left.count(item.name)) {
            out.removed.push_back(item.to_json());
        } else if (!edit_error.empty()) {
            out.fail(item, edit_error);
        } else if (wireplumber) {
            out.fail(item, "removed from the state file, but the running WirePlumber did not forget it and may "
                           "write it back" + (wp_error.empty() ? std::string() : " (" + wp_error + ")"));
        } else {
            out.removed.push_back(item.to_json());
        }
    }
}

} // namespace

std::string run(bool dry_run) {
    Session s;
    connect(s);
    json report;
    report["dry_run"] = dry_run;
    audio::PulseServerInfo info;
    if (s.pulse) {
        info = s.pulse->server_info();
        s.dialect = audio::args_dialect_of(info.server_name);
    }
    std::string pw_version = s.pw ? s.pw->server_version() : std::string();
    bool wireplumber = s.wireplumber_running();
    report["servers"] = {{"pulse", s.pulse ? json(info.server_name) : json(nullptr)},
                         {"pipewire", s.pw ? json(pw_version.empty() ? "unknown version" : pw_version) : json(nullptr)},
                         {"wireplumber", wireplumber}};
    report["state_file"] = s.state_path.empty() ? json(nullptr) : json(s.state_path);

    Scan found = s.scan();
    Outcome out;
    if (dry_run) {
        for (const auto *list : {&found.loopbacks, &found.sinks, &found.nodes, &found.targets})
            for (const auto &item : *list) out.removed.push_back(item.to_json());
    } else {
        remove_modules_and_nodes(s, found, out);
        forget_targets(s, found.targets, wireplumber, out);
        // Verify: whatever a removal claimed, a fresh scan must not find the dead owners' objects.
        Scan after = s.scan();
        for (const auto *list : {&after.loopbacks, &after.sinks, &after.nodes, &after.targets})
            for (const auto &item : *list)
                if (!out.failed_ids.count(item.identity())) out.fail(item, "still present after removal");
    }

    std::string default_after;
    if (s.pulse) default_after = s.pulse->server_info().default_sink;
    report["default_sink"] = {{"before", s.pulse ? json(info.default_sink) : json(nullptr)},
                              {"after", s.pulse ? json(default_after) : json(nullptr)}};
    report["removed"] = out.removed;
    report["skipped"] = found.skipped;
    report["failed"] = out.failed;
    report["clean"] = out.failed.empty() && (!dry_run || out.removed.empty());
    return report.dump();
}

} // namespace pp::repair
