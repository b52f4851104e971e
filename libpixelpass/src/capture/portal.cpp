#include "capture/portal.hpp"

#include <cstdlib>
#include <fstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <libportal/portal.h>

#include "capture/capture.hpp"
#include "capture/system_audio.hpp"
#include "common/error.hpp"
#include "media/gst.hpp"
#include "media/media.hpp"

namespace pp::capture {

namespace {

constexpr auto kDialogTimeout = std::chrono::minutes(5);  // a user may take a while to choose

struct GObjectUnref {
    void operator()(gpointer p) const { if (p) g_object_unref(p); }
};
struct ContextUnref {
    void operator()(GMainContext *c) const { if (c) g_main_context_unref(c); }
};
struct VariantUnref {
    void operator()(GVariant *v) const { if (v) g_variant_unref(v); }
};
template <typename T>
using GObjPtr = std::unique_ptr<T, GObjectUnref>;
using VariantPtr = std::unique_ptr<GVariant, VariantUnref>;

// Runs `ctx` until an async call's callback stored its result.
struct Pending {
    GObjPtr<GAsyncResult> result;
    static void done(GObject *, GAsyncResult *res, gpointer self) {
        static_cast<Pending *>(self)->result.reset(G_ASYNC_RESULT(g_object_ref(res)));
    }
    void wait(GMainContext *ctx, const char *what) {
        auto deadline = std::chrono::steady_clock::now() + kDialogTimeout;
        while (!result) {
            if (std::chrono::steady_clock::now() > deadline)
                throw Error(PP_ERR_CAPTURE_CANCELLED, std::string("the screen-share portal did not answer (") + what +
                                                          ") within 5 minutes");
            g_main_context_iteration(ctx, TRUE);
        }
    }
};

// The portal's own words, mapped to what the user can do about them.
[[noreturn]] void throw_portal_error(GError *raw, const char *step) {
    std::unique_ptr<GError, media::ErrorFree> e(raw);
    std::string msg = e ? e->message : "unknown error";
    if (e && g_error_matches(e.get(), G_IO_ERROR, G_IO_ERROR_CANCELLED))
        throw Error(PP_ERR_CAPTURE_CANCELLED, "screen sharing was cancelled in the portal dialog (" + msg +
                                                  "): nothing is shared; run again and choose a screen or window");
    throw Error(PP_ERR_NO_CAPTURE_SOURCE, std::string("the ScreenCast portal failed to ") + step + ": " + msg +
                                              " (is xdg-desktop-portal running with a backend for this desktop, "
                                              "e.g. xdg-desktop-portal-wlr, -gnome or -kde?)");
}

std::string read_token() {
    std::error_code ec;
    std::filesystem::path path;
    try {
        path = portal_token_path();
    } catch (const Error &) {
        return "";  // nowhere to keep it: the dialog asks every time
    }
    std::ifstream in(path);
    std::string token;
    std::getline(in, token);
    return token;
}

void write_token(const std::string &token) {
    std::filesystem::path path;
    try {
        path = portal_token_path();
    } catch (const Error &) {
        return;
    }
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    // The token lets this user's pixelpass skip the dialog: readable by this user only.
    auto tmp = path;
    tmp += ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;  // best effort: without it, the next share asks again
    std::string line = token + "\n";
    bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::close(fd);
    if (ok) std::filesystem::rename(tmp, path, ec);
    else std::filesystem::remove(tmp, ec);
}

// The ScreenCast portal's AvailableSourceTypes (monitor = 1, window = 2, virtual = 4).
unsigned available_source_types(GDBusConnection *bus) {
    GError *err = nullptr;
    VariantPtr reply(g_dbus_connection_call_sync(
        bus, "org.freedesktop.portal.Desktop", "/org/freedesktop/portal/desktop", "org.freedesktop.DBus.Properties",
        "Get", g_variant_new("(ss)", "org.freedesktop.portal.ScreenCast", "AvailableSourceTypes"),
        G_VARIANT_TYPE("(v)"), G_DBUS_CALL_FLAGS_NONE, 5000, nullptr, &err));
    if (!reply) throw_portal_error(err, "answer (no org.freedesktop.portal.ScreenCast on the session bus)");
    VariantPtr value;
    {
        GVariant *v = nullptr;
        g_variant_get(reply.get(), "(v)", &v);
        value.reset(v);
    }
    return g_variant_is_of_type(value.get(), G_VARIANT_TYPE_UINT32) ? g_variant_get_uint32(value.get()) : 1u;
}

class PortalSource final : public media::CaptureSource {
public:
    explicit PortalSource(EventSink events) : events_(events), audio_(std::move(events)) {}
    ~PortalSource() override { end_session(); }

    std::string name() const override { return "portal"; }

    void open(const media::CaptureParams &) override {
        if (session_) return;  // still open from the previous run
        ctx_.reset(g_main_context_new());
        g_main_context_push_thread_default(ctx_.get());
        struct Pop {
            GMainContext *c;
            ~Pop() { g_main_context_pop_thread_default(c); }
        } pop{ctx_.get()};

        GError *err = nullptr;
        GObjPtr<GDBusConnection> bus(g_bus_get_sync(G_BUS_TYPE_SESSION, nullptr, &err));
        if (!bus) throw_portal_error(err, "connect to the session bus");
        unsigned types = available_source_types(bus.get()) & (XDP_OUTPUT_MONITOR | XDP_OUTPUT_WINDOW);
        if (!types) types = XDP_OUTPUT_MONITOR;

        portal_.reset(xdp_portal_new());
        std::string token = read_token();
        Pending created;
        xdp_portal_create_screencast_session(portal_.get(), static_cast<XdpOutputType>(types), XDP_SCREENCAST_FLAG_NONE,
                                             XDP_CURSOR_MODE_EMBEDDED, XDP_PERSIST_MODE_PERSISTENT,
                                             token.empty() ? nullptr : token.c_str(), nullptr, &Pending::done, &created);
        created.wait(ctx_.get(), "create session");
        session_.reset(xdp_portal_create_screencast_session_finish(portal_.get(), created.result.get(), &err));
        if (!session_) throw_portal_error(err, "create a screen-cast session");
        if (!token.empty()) log(PP_LOG_INFO, "portal: restoring the previously shared screen (restore token)");

        Pending started;
        xdp_session_start(session_.get(), nullptr, nullptr, &Pending::done, &started);
        started.wait(ctx_.get(), "start");
        if (!xdp_session_start_finish(session_.get(), started.result.get(), &err)) {
            session_.reset();
            throw_portal_error(err, "start screen sharing");
        }
        // The portal may hand out a new token with each start (the spec makes them single-use;
        // xdg-desktop-portal 1.16 returns the same one): keep the latest.
        if (std::unique_ptr<char, media::GFree> fresh{xdp_session_get_restore_token(session_.get())})
            write_token(fresh.get());

        VariantPtr streams(xdp_session_get_streams(session_.get()));
        if (!streams || g_variant_n_children(streams.get()) == 0) {
            end_session();
            throw Error(PP_ERR_NO_CAPTURE_SOURCE, "the ScreenCast portal started a session without a stream");
        }
        GVariant *props_raw = nullptr;
        g_variant_get_child(streams.get(), 0, "(u@a{sv})", &node_, &props_raw);
        VariantPtr props(props_raw);
        gint w = 0, h = 0;
        if (g_variant_lookup(props.get(), "size", "(ii)", &w, &h)) width_ = w, height_ = h;
        fd_ = xdp_session_open_pipewire_remote(session_.get());
        if (fd_ < 0) {
            end_session();
            throw Error(PP_ERR_NO_CAPTURE_SOURCE, "the ScreenCast portal gave no PipeWire remote");
        }
        log(PP_LOG_INFO, "portal: sharing PipeWire node " + std::to_string(node_) +
                             (width_ ? " (" + std::to_string(width_) + "x" + std::to_string(height_) + ")" : ""));
    }

    media::ElementPtr make_video(const media::CaptureParams &params) override {
        if (fd_ < 0) throw Error(PP_ERR_STATE, "portal capture used before open()");
        media::ElementPtr bin = media::sink_ref(gst_bin_new("portal-video"));
        media::ElementPtr src = media::make_element("pipewiresrc", "portal-src");
        media::set_property(src.get(), "fd", std::to_string(fd_));  // pipewiresrc dups it
        media::set_property(src.get(), "path", std::to_string(node_));
        media::set_property(src.get(), "client-name", "pixelpass");
        // The compositor sends frames only on damage; a still screen would starve the encoder
        // (and a new viewer's first keyframe). Repeat the last frame at the output rate.
        media::set_property(src.get(), "keepalive-time", std::to_string(std::max(1u, 1000 / std::max(1u, params.fps))));
        // Release the compositor's buffer at once; the encoder may hold ours a while.
        media::set_property(src.get(), "always-copy", "true");
        media::set_property(src.get(), "do-timestamp", "true");
        media::add_and_link(GST_BIN(bin.get()), {src.get()});
        media::GstPtr<GstPad> pad(gst_element_get_static_pad(src.get(), "src"));
        gst_element_add_pad(bin.get(), gst_ghost_pad_new("src", pad.get()));
        return bin;
    }

    media::ElementPtr make_audio(const media::CaptureParams &params) override { return audio_.make(params); }

    // The session ends with the run; the fan-out's grace period keeps the run (and so the
    // session) alive between viewers, and the restore token spares the dialog after it.
    void close() override {
        audio_.stop();
        end_session();
    }

    nlohmann::json describe() const override {
        if (!width_) return nlohmann::json::object();
        return {{"width", width_}, {"height", height_}};
    }

private:
    void end_session() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        if (session_) xdp_session_close(session_.get());
        session_.reset();
        portal_.reset();
        ctx_.reset();
    }
    void log(pp_log_level level, const std::string &message) {
        if (!events_) return;
        Event e;
        e.type = PP_EVENT_LOG;
        e.level = level;
        e.message = message;
        events_(e);
    }

    EventSink events_;
    SystemAudio audio_;
    std::unique_ptr<GMainContext, ContextUnref> ctx_;
    GObjPtr<XdpPortal> portal_;
    GObjPtr<XdpSession> session_;
    int fd_ = -1;
    guint32 node_ = 0;
    int width_ = 0, height_ = 0;
};

} // namespace

std::unique_ptr<media::CaptureSource> make_portal_source(const HostConfig &config, EventSink events) {
    media::require_element("pipewiresrc");
    (void)config;  // the portal's dialog picks the monitor or window; --monitor applies to X11
    return std::make_unique<PortalSource>(std::move(events));
}

} // namespace pp::capture
