// audio/pulse_client: a short-lived, synchronous libpulse connection (to pipewire-pulse or a real
// PulseAudio) for introspection and module management. Never autospawns a server: a tool that
// checks the sound setup must not start one.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct pa_mainloop;
struct pa_context;
struct pa_operation;

namespace pp::audio {

struct PulseModule {
    uint32_t index = 0;
    std::string name;      // "module-null-sink"
    std::string argument;  // as loaded; may span lines (pipewire-pulse lists SPA-JSON blocks)
};

struct PulseServerInfo {
    std::string server_name;  // "PulseAudio (on PipeWire 0.3.65)"
    std::string server_version;
    std::string default_sink;
};

class PulseClient {
    struct Key {};  // connect() is the only way to make one

public:
    // Connects to the default server ($PULSE_SERVER, else $XDG_RUNTIME_DIR/pulse/native).
    // Returns null and sets *why when no server answers within `timeout`.
    static std::unique_ptr<PulseClient> connect(std::chrono::milliseconds timeout, std::string *why);
    explicit PulseClient(Key) {}
    ~PulseClient();
    PulseClient(const PulseClient &) = delete;
    PulseClient &operator=(const PulseClient &) = delete;

    // Each call is one round trip; throws pp::Error(PP_ERR_IO) when the server fails or stalls.
    PulseServerInfo server_info();
    std::vector<PulseModule> modules();
    // Throws pp::Error(PP_ERR_IO, server's reason) when the server refuses.
    void unload_module(uint32_t index);

private:
    struct LoopFree {
        void operator()(pa_mainloop *m) const;
    };
    struct ContextFree {
        void operator()(pa_context *c) const;
    };
    // Runs the loop until *done or the deadline; throws on a dead connection or timeout.
    void wait_for(pa_operation *op, const bool &done, const char *what);
    std::string last_error() const;

    std::unique_ptr<pa_mainloop, LoopFree> loop_;
    std::unique_ptr<pa_context, ContextFree> context_;
    std::chrono::milliseconds timeout_{5000};
};

} // namespace pp::audio
