// audio/app_router: per-application audio for `--app`. On its own thread and its own PipeWire
// connection it creates a null sink, `pixelpass_capture_<pid>`, and links the output ports of
// every playback stream that matches (audio/app_match) to that sink's inputs, next to the links
// the session manager already made to the speakers: the streams are never moved and the default
// sink is never touched, so the host keeps hearing them. It follows streams as they come and go.
//
// Every object it creates (the sink, each link) belongs to that connection with
// object.linger=false: PipeWire destroys them when the connection ends, whether by this object's
// destructor or by the process dying (even SIGKILL). Nothing can be left behind to repair.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace pp::audio {

class PwClient;

// One matching stream, as stats list it.
struct RoutedApp {
    uint32_t node = 0;      // the stream's PipeWire node id
    std::string matched;    // the --app name it matched
    std::string name;       // application.name
    std::string binary;     // application.process.binary
    long pid = 0;           // application.process.id (0 when the stream does not say)
    unsigned links = 0;     // links from its ports to the capture sink
};

class AppRouter {
public:
    // level: 0 info, 1 warning.
    using Log = std::function<void(int level, const std::string &message)>;

    // Connects, creates the capture sink and starts following streams; returns once the sink
    // exists. Throws pp::Error: PP_ERR_IO when no PipeWire server answers or the sink cannot be
    // created, PP_ERR_STATE when this process already routes apps (the sink name is per PID).
    AppRouter(std::vector<std::string> wanted, Log log);
    // Ends the connection: the sink and every link go with it.
    ~AppRouter();
    AppRouter(const AppRouter &) = delete;
    AppRouter &operator=(const AppRouter &) = delete;

    // "pixelpass_capture_<pid>": its Pulse monitor source "<name>.monitor" carries the apps' sound.
    const std::string &sink_name() const { return sink_name_; }
    std::vector<RoutedApp> apps() const;
    // {"capture_sink", "matching": [{node, matched, name, binary, pid, links}], "lost"}
    nlohmann::json describe() const;

private:
    struct State;
    void run(std::shared_ptr<std::promise<void>> ready);
    struct SinkPorts;
    void scan(State &s);
    // The steps of one scan, in order.
    void forget_gone(State &s);
    void look_at_new_streams(State &s);
    SinkPorts read_ports(State &s);
    RoutedApp link_app(State &s, uint32_t node, const SinkPorts &ports);  // node: a matched stream
    void say_if_waiting(State &s, const std::vector<RoutedApp> &routed);

    std::vector<std::string> wanted_;
    Log log_;
    std::string sink_name_;
    std::atomic<bool> stop_{false};
    mutable std::mutex mutex_;
    std::vector<RoutedApp> apps_;  // guarded by mutex_
    bool lost_ = false;            // guarded by mutex_: the PipeWire connection ended under us
    std::thread thread_;
};

} // namespace pp::audio
