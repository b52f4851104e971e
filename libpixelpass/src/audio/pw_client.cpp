#include "audio/pw_client.hpp"

#include <pipewire/extensions/metadata.h>
#include <pipewire/pipewire.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "common/error.hpp"

namespace pp::audio {

namespace {

using Clock = std::chrono::steady_clock;

void init_pipewire_once() {
    // pw_init is reference counted but not thread-safe; the library never calls pw_deinit (other
    // users of libpipewire in the same process may still need it).
    static std::once_flag once;
    std::call_once(once, [] { pw_init(nullptr, nullptr); });
}

Properties to_properties(const spa_dict *dict) {
    Properties out;
    if (!dict) return out;
    const spa_dict_item *item;
    spa_dict_for_each(item, dict) {
        if (item->key) out[item->key] = item->value ? item->value : "";
    }
    return out;
}

struct LoopDestroy {
    void operator()(pw_loop *l) const { pw_loop_destroy(l); }
};
struct LoopLeave {  // pw_loop_enter()'s undo: the loop is "entered" by the thread that iterates it
    void operator()(pw_loop *l) const { pw_loop_leave(l); }
};
struct ContextDestroy {
    void operator()(pw_context *c) const { pw_context_destroy(c); }
};
struct CoreDisconnect {
    void operator()(pw_core *c) const { pw_core_disconnect(c); }
};
struct ProxyDestroy {
    void operator()(pw_proxy *p) const { pw_proxy_destroy(p); }
};
struct PropertiesFree {
    void operator()(pw_properties *p) const { pw_properties_free(p); }
};

std::string errno_text(int res) { return std::strerror(res < 0 ? -res : res); }

} // namespace

struct PwClient::Impl {
    struct CoreError {
        uint32_t id;
        int seq;
        int res;
        std::string message;
    };
    // A proxy of ours with its listener; the hook must stay at a fixed address while registered.
    struct Bound {
        std::unique_ptr<pw_proxy, ProxyDestroy> proxy;
        spa_hook hook{};
        uint32_t global_id = SPA_ID_INVALID;
        bool failed = false;
        std::string error;
        std::optional<Properties> info_props;
        bool listening = false;
        ~Bound() {
            if (proxy && listening) spa_hook_remove(&hook);
        }
    };

    // Declaration order is teardown order reversed: proxies, core, context, loop.
    std::unique_ptr<pw_loop, LoopDestroy> loop;
    std::unique_ptr<pw_loop, LoopLeave> entered;
    std::unique_ptr<pw_context, ContextDestroy> context;
    std::unique_ptr<pw_core, CoreDisconnect> core;
    std::unique_ptr<pw_proxy, ProxyDestroy> registry;
    spa_hook core_listener{};
    spa_hook registry_listener{};
    std::map<uint32_t, PwGlobal> globals;
    std::string server_version;
    std::vector<CoreError> errors;
    std::map<uint32_t, std::unique_ptr<Bound>> owned;  // by global id
    int pending_seq = -1;
    bool synced = false;
    std::chrono::milliseconds timeout{5000};

    ~Impl() {
        owned.clear();
        if (registry) spa_hook_remove(&registry_listener);
        registry.reset();
        if (core) spa_hook_remove(&core_listener);
    }

    pw_registry *reg() const { return reinterpret_cast<pw_registry *>(registry.get()); }

    bool connection_lost() const {
        for (const auto &e : errors)
            if (e.id == PW_ID_CORE && e.res == -EPIPE) return true;
        return false;
    }

    void wait(const std::function<bool()> &done, const std::string &what) {
        auto deadline = Clock::now() + timeout;
        while (!done()) {
            if (connection_lost()) throw Error(PP_ERR_IO, what + ": the PipeWire connection was lost");
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0)
                throw Error(PP_ERR_IO, what + ": PipeWire did not answer within " +
                                           std::to_string(timeout.count()) + " ms");
            int rc = pw_loop_iterate(loop.get(), static_cast<int>(left.count()));
            if (rc < 0 && rc != -EINTR) throw Error(PP_ERR_IO, what + ": " + errno_text(rc));
        }
    }

    void sync(const std::string &what) {
        synced = false;
        pending_seq = pw_core_sync(core.get(), PW_ID_CORE, 0);
        if (pending_seq < 0) throw Error(PP_ERR_IO, what + ": " + errno_text(pending_seq));
        wait([this] { return synced; }, what);
    }

    // The first server error reported since `before`, if any.
    const CoreError *error_since(size_t before) const {
        return errors.size() > before ? &errors[before] : nullptr;
    }
};

namespace {

void on_core_info(void *data, const pw_core_info *info) {
    if (info && info->version) static_cast<PwClient::Impl *>(data)->server_version = info->version;
}

void on_core_done(void *data, uint32_t id, int seq) {
    auto *impl = static_cast<PwClient::Impl *>(data);
    if (id == PW_ID_CORE && seq == impl->pending_seq) impl->synced = true;
}

void on_core_error(void *data, uint32_t id, int seq, int res, const char *message) {
    auto *impl = static_cast<PwClient::Impl *>(data);
    impl->errors.push_back({id, seq, res, message ? message : errno_text(res)});
}

void on_global(void *data, uint32_t id, uint32_t permissions, const char *type, uint32_t version,
               const spa_dict *props) {
    auto *impl = static_cast<PwClient::Impl *>(data);
    impl->globals[id] = PwGlobal{id, permissions, type ? type : "", version, to_properties(props)};
}

void on_global_remove(void *data, uint32_t id) { static_cast<PwClient::Impl *>(data)->globals.erase(id); }

const pw_core_events core_events = [] {
    pw_core_events e{};
    e.version = PW_VERSION_CORE_EVENTS;
    e.info = on_core_info;
    e.done = on_core_done;
    e.error = on_core_error;
    return e;
}();

const pw_registry_events registry_events = [] {
    pw_registry_events e{};
    e.version = PW_VERSION_REGISTRY_EVENTS;
    e.global = on_global;
    e.global_remove = on_global_remove;
    return e;
}();

void on_proxy_bound(void *data, uint32_t global_id) {
    static_cast<PwClient::Impl::Bound *>(data)->global_id = global_id;
}

void on_proxy_error(void *data, int, int res, const char *message) {
    auto *b = static_cast<PwClient::Impl::Bound *>(data);
    b->failed = true;
    b->error = message ? message : errno_text(res);
}

void on_proxy_removed(void *data) {
    auto *b = static_cast<PwClient::Impl::Bound *>(data);
    b->failed = true;
    if (b->error.empty()) b->error = "removed by the server";
}

const pw_proxy_events proxy_events = [] {
    pw_proxy_events e{};
    e.version = PW_VERSION_PROXY_EVENTS;
    e.bound = on_proxy_bound;
    e.removed = on_proxy_removed;
    e.error = on_proxy_error;
    return e;
}();

void on_node_info(void *data, const pw_node_info *info) {
    auto *b = static_cast<PwClient::Impl::Bound *>(data);
    if (info) b->info_props = to_properties(info->props);
}

const pw_node_events node_events = [] {
    pw_node_events e{};
    e.version = PW_VERSION_NODE_EVENTS;
    e.info = on_node_info;
    return e;
}();

} // namespace

PwClient::PwClient(Key) : impl_(std::make_unique<Impl>()) {}
PwClient::~PwClient() = default;

std::unique_ptr<PwClient> PwClient::connect(std::chrono::milliseconds timeout, std::string *why) {
    init_pipewire_once();
    auto client = std::make_unique<PwClient>(Key{});
    Impl &s = *client->impl_;
    s.timeout = timeout;
    s.loop.reset(pw_loop_new(nullptr));
    if (!s.loop) throw Error(PP_ERR_NO_MEMORY, "pw_loop_new failed");
    pw_loop_enter(s.loop.get());
    s.entered.reset(s.loop.get());
    s.context.reset(pw_context_new(s.loop.get(), pw_properties_new(PW_KEY_APP_NAME, "pixelpass", nullptr), 0));
    if (!s.context) throw Error(PP_ERR_IO, "pw_context_new failed: " + errno_text(errno));
    s.core.reset(pw_context_connect(s.context.get(), nullptr, 0));
    if (!s.core) {
        if (why) *why = errno_text(errno);
        return nullptr;
    }
    pw_core_add_listener(s.core.get(), &s.core_listener, &core_events, &s);
    s.registry.reset(reinterpret_cast<pw_proxy *>(pw_core_get_registry(s.core.get(), PW_VERSION_REGISTRY, 0)));
    if (!s.registry) throw Error(PP_ERR_IO, "pw_core_get_registry failed: " + errno_text(errno));
    pw_registry_add_listener(s.reg(), &s.registry_listener, &registry_events, &s);
    try {
        s.sync("reading the PipeWire registry");
    } catch (const Error &e) {
        if (why) *why = e.what();
        return nullptr;
    }
    return client;
}

const std::string &PwClient::server_version() const { return impl_->server_version; }

const std::map<uint32_t, PwGlobal> &PwClient::globals() const { return impl_->globals; }

std::vector<const PwGlobal *> PwClient::globals_of_type(std::string_view type) const {
    std::vector<const PwGlobal *> out;
    for (const auto &[id, g] : impl_->globals)
        if (g.type == type) out.push_back(&g);
    return out;
}

bool PwClient::lost() const { return impl_->connection_lost(); }

void PwClient::sync() { impl_->sync("PipeWire round trip"); }

void PwClient::run_for(std::chrono::milliseconds duration) {
    auto until = Clock::now() + duration;
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
        if (left.count() <= 0) return;
        if (impl_->connection_lost()) throw Error(PP_ERR_IO, "the PipeWire connection was lost");
        pw_loop_iterate(impl_->loop.get(), static_cast<int>(left.count()));
    }
}

std::optional<Properties> PwClient::node_props(uint32_t id) {
    Impl &s = *impl_;
    auto b = std::make_unique<Impl::Bound>();
    b->proxy.reset(static_cast<pw_proxy *>(pw_registry_bind(s.reg(), id, PW_TYPE_INTERFACE_Node, PW_VERSION_NODE, 0)));
    if (!b->proxy) throw Error(PP_ERR_IO, "binding node " + std::to_string(id) + ": " + errno_text(errno));
    pw_proxy_add_object_listener(b->proxy.get(), &b->hook, &node_events, b.get());
    b->listening = true;
    s.sync("reading node " + std::to_string(id));
    return b->info_props;  // nullopt when the node went away before the server answered
}

void PwClient::destroy(uint32_t id) {
    Impl &s = *impl_;
    size_t before = s.errors.size();
    std::string what = "destroying PipeWire object " + std::to_string(id);
    int rc = pw_registry_destroy(s.reg(), id);
    if (rc < 0) throw Error(PP_ERR_IO, what + ": " + errno_text(rc));
    s.sync(what);
    if (const auto *e = s.error_since(before)) throw Error(PP_ERR_IO, what + ": " + e->message);
    if (s.globals.count(id)) throw Error(PP_ERR_IO, what + ": it is still there");
}

void PwClient::set_metadata(uint32_t metadata_id, uint32_t subject, const std::string &key, const char *type,
                            const char *value) {
    Impl &s = *impl_;
    std::string what = "writing metadata " + key + " of " + std::to_string(subject);
    std::unique_ptr<pw_proxy, ProxyDestroy> md(static_cast<pw_proxy *>(
        pw_registry_bind(s.reg(), metadata_id, PW_TYPE_INTERFACE_Metadata, PW_VERSION_METADATA, 0)));
    if (!md) throw Error(PP_ERR_IO, what + ": " + errno_text(errno));
    size_t before = s.errors.size();
    pw_metadata_set_property(reinterpret_cast<pw_metadata *>(md.get()), subject, key.c_str(),
                             value ? type : nullptr, value);
    s.sync(what);
    if (const auto *e = s.error_since(before)) throw Error(PP_ERR_IO, what + ": " + e->message);
}

uint32_t PwClient::create_object(const std::string &factory, const char *type, uint32_t version,
                                 const Properties &props) {
    Impl &s = *impl_;
    std::unique_ptr<pw_properties, PropertiesFree> p(pw_properties_new(nullptr, nullptr));
    for (const auto &[k, v] : props) pw_properties_set(p.get(), k.c_str(), v.c_str());
    auto b = std::make_unique<Impl::Bound>();
    std::string what = "creating a " + factory + " object";
    b->proxy.reset(static_cast<pw_proxy *>(
        pw_core_create_object(s.core.get(), factory.c_str(), type, version, &p->dict, 0)));
    if (!b->proxy) throw Error(PP_ERR_IO, what + ": " + errno_text(errno));
    pw_proxy_add_listener(b->proxy.get(), &b->hook, &proxy_events, b.get());
    b->listening = true;
    Impl::Bound *raw = b.get();
    s.wait([raw] { return raw->failed || raw->global_id != SPA_ID_INVALID; }, what);
    if (raw->failed) throw Error(PP_ERR_IO, what + ": " + raw->error);
    s.sync(what);  // so the new global is in globals() too
    uint32_t id = raw->global_id;
    s.owned[id] = std::move(b);
    return id;
}

void PwClient::release(uint32_t id) {
    Impl &s = *impl_;
    if (s.owned.erase(id)) s.sync("releasing PipeWire object " + std::to_string(id));
}

} // namespace pp::audio
