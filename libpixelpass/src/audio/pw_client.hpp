// audio/pw_client: a short-lived, synchronous libpipewire connection driven on the caller's
// thread: the registry (every global with its properties), full node properties, destroying a
// global, creating server-side objects owned by this connection, and writing metadata.
// Objects this connection creates vanish with it — even on SIGKILL — so they cannot be orphaned.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pp::audio {

using Properties = std::map<std::string, std::string, std::less<>>;

struct PwGlobal {
    uint32_t id = 0;
    uint32_t permissions = 0;
    std::string type;  // "PipeWire:Interface:Node"
    uint32_t version = 0;
    Properties props;  // the registry's subset; node_props() has them all
};

class PwClient {
    struct Key {};  // connect() is the only way to make one

public:
    struct Impl;  // the libpipewire handles and listeners (pw_client.cpp)

    // Connects to the default remote ($PIPEWIRE_REMOTE, else $XDG_RUNTIME_DIR/pipewire-0) and
    // reads the registry. Returns null and sets *why when no server answers within `timeout`.
    static std::unique_ptr<PwClient> connect(std::chrono::milliseconds timeout, std::string *why);
    explicit PwClient(Key);
    ~PwClient();
    PwClient(const PwClient &) = delete;
    PwClient &operator=(const PwClient &) = delete;

    // The server's version ("0.3.65"), from its core info.
    const std::string &server_version() const;

    // The registry as of the last round trip.
    const std::map<uint32_t, PwGlobal> &globals() const;
    std::vector<const PwGlobal *> globals_of_type(std::string_view type) const;

    // Whether the server closed the connection (then every call throws).
    bool lost() const;

    // One round trip: every event the server sent before it is dispatched. Throws PP_ERR_IO.
    void sync();
    // Dispatches events for `duration` (to give another client time to react).
    void run_for(std::chrono::milliseconds duration);

    // All properties of node `id` (the registry shows a subset); nullopt if it is gone.
    std::optional<Properties> node_props(uint32_t id);
    // Asks the server to destroy global `id`; throws PP_ERR_IO with the server's reason, or when
    // the global is still there after the round trip.
    void destroy(uint32_t id);
    // Writes (value != nullptr) or deletes (value == nullptr) one key of metadata `metadata_id`.
    void set_metadata(uint32_t metadata_id, uint32_t subject, const std::string &key, const char *type,
                      const char *value);

    // pw_core_create_object(factory, type, version, props); waits until the object is a global
    // and returns its id. It lives until release(id) or the end of this connection.
    uint32_t create_object(const std::string &factory, const char *type, uint32_t version,
                           const Properties &props);
    void release(uint32_t id);

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace pp::audio
