#include "audio/pulse_client.hpp"

#include <pulse/pulseaudio.h>

#include "common/error.hpp"

namespace pp::audio {

namespace {

using Clock = std::chrono::steady_clock;

struct OperationUnref {
    void operator()(pa_operation *op) const {
        if (pa_operation_get_state(op) == PA_OPERATION_RUNNING) pa_operation_cancel(op);
        pa_operation_unref(op);
    }
};
using Operation = std::unique_ptr<pa_operation, OperationUnref>;

struct ProplistFree {
    void operator()(pa_proplist *p) const { pa_proplist_free(p); }
};

// One pass of the loop that blocks at most until `deadline`; false when the deadline passed.
bool iterate_until(pa_mainloop *loop, Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    if (pa_mainloop_prepare(loop, static_cast<int>(left.count())) < 0) return false;
    if (pa_mainloop_poll(loop) < 0) return false;
    return pa_mainloop_dispatch(loop) >= 0;
}

} // namespace

void PulseClient::LoopFree::operator()(pa_mainloop *m) const { pa_mainloop_free(m); }

void PulseClient::ContextFree::operator()(pa_context *c) const {
    pa_context_disconnect(c);
    pa_context_unref(c);
}

std::unique_ptr<PulseClient> PulseClient::connect(std::chrono::milliseconds timeout, std::string *why) {
    auto client = std::make_unique<PulseClient>(Key{});
    client->timeout_ = timeout;
    client->loop_.reset(pa_mainloop_new());
    if (!client->loop_) throw Error(PP_ERR_NO_MEMORY, "pa_mainloop_new failed");
    std::unique_ptr<pa_proplist, ProplistFree> props(pa_proplist_new());
    pa_proplist_sets(props.get(), PA_PROP_APPLICATION_NAME, "pixelpass");
    pa_proplist_sets(props.get(), PA_PROP_APPLICATION_ID, "org.pixelpass.repair");
    client->context_.reset(
        pa_context_new_with_proplist(pa_mainloop_get_api(client->loop_.get()), "pixelpass", props.get()));
    if (!client->context_) throw Error(PP_ERR_NO_MEMORY, "pa_context_new failed");
    pa_context *ctx = client->context_.get();
    if (pa_context_connect(ctx, nullptr, PA_CONTEXT_NOAUTOSPAWN, nullptr) < 0) {
        if (why) *why = pa_strerror(pa_context_errno(ctx));
        return nullptr;
    }
    auto deadline = Clock::now() + timeout;
    while (true) {
        pa_context_state_t state = pa_context_get_state(ctx);
        if (state == PA_CONTEXT_READY) return client;
        if (!PA_CONTEXT_IS_GOOD(state)) {
            if (why) *why = pa_strerror(pa_context_errno(ctx));
            return nullptr;
        }
        if (!iterate_until(client->loop_.get(), deadline)) {
            if (why) *why = "no answer within " + std::to_string(timeout.count()) + " ms";
            return nullptr;
        }
    }
}

PulseClient::~PulseClient() = default;

std::string PulseClient::last_error() const { return pa_strerror(pa_context_errno(context_.get())); }

void PulseClient::wait_for(pa_operation *raw, const bool &done, const char *what) {
    if (!raw) throw Error(PP_ERR_IO, std::string(what) + ": " + last_error());
    Operation op(raw);
    auto deadline = Clock::now() + timeout_;
    while (!done) {
        if (!PA_CONTEXT_IS_GOOD(pa_context_get_state(context_.get())))
            throw Error(PP_ERR_IO, std::string(what) + ": connection lost: " + last_error());
        if (pa_operation_get_state(op.get()) == PA_OPERATION_CANCELLED)
            throw Error(PP_ERR_IO, std::string(what) + ": cancelled: " + last_error());
        if (!iterate_until(loop_.get(), deadline))
            throw Error(PP_ERR_IO, std::string(what) + ": no answer within " +
                                       std::to_string(timeout_.count()) + " ms");
    }
}

PulseServerInfo PulseClient::server_info() {
    struct State {
        PulseServerInfo info;
        bool done = false;
    } st;
    auto cb = [](pa_context *, const pa_server_info *i, void *data) {
        auto *s = static_cast<State *>(data);
        if (i) {
            s->info.server_name = i->server_name ? i->server_name : "";
            s->info.server_version = i->server_version ? i->server_version : "";
            s->info.default_sink = i->default_sink_name ? i->default_sink_name : "";
        }
        s->done = true;
    };
    wait_for(pa_context_get_server_info(context_.get(), cb, &st), st.done, "reading the server info");
    return st.info;
}

std::vector<PulseModule> PulseClient::modules() {
    struct State {
        std::vector<PulseModule> list;
        bool done = false;
        bool failed = false;
    } st;
    auto cb = [](pa_context *, const pa_module_info *i, int eol, void *data) {
        auto *s = static_cast<State *>(data);
        if (eol < 0) s->failed = true;
        if (eol != 0) {
            s->done = true;
            return;
        }
        s->list.push_back({i->index, i->name ? i->name : "", i->argument ? i->argument : ""});
    };
    wait_for(pa_context_get_module_info_list(context_.get(), cb, &st), st.done, "listing modules");
    if (st.failed) throw Error(PP_ERR_IO, "listing modules: " + last_error());
    return st.list;
}

void PulseClient::unload_module(uint32_t index) {
    struct State {
        bool done = false;
        bool ok = false;
    } st;
    auto cb = [](pa_context *, int success, void *data) {
        auto *s = static_cast<State *>(data);
        s->ok = success != 0;
        s->done = true;
    };
    std::string what = "unloading module #" + std::to_string(index);
    wait_for(pa_context_unload_module(context_.get(), index, cb, &st), st.done, what.c_str());
    if (!st.ok) throw Error(PP_ERR_IO, what + ": " + last_error());
}

} // namespace pp::audio
