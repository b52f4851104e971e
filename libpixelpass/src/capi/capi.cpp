// capi: the C facade. It only translates — C structs to C++ values, exceptions to pp_result plus
// pp_last_error() — and never lets an exception cross extern "C".
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include <nlohmann/json.hpp>

#include "clipboard/clipboard.hpp"
#include "capture/capture.hpp"
#include "common/error.hpp"
#include "config/config.hpp"
#include "demo/demo.hpp"
#include "doctor/doctor.hpp"
#include "preflight/preflight.hpp"
#include "nat/relay_config.hpp"
#include "host/host.hpp"
#include "player/player.hpp"
#include "pixelpass.h"
#include "repair/repair.hpp"
#include "ticket/ticket.hpp"
#include "viewer/viewer.hpp"

struct pp_ticket {
    pp::ticket::Ticket value;
};

struct pp_host {
    std::unique_ptr<pp::Host> impl;
};

struct pp_viewer {
    std::unique_ptr<pp::Viewer> impl;
};

namespace {

thread_local std::string last_error;

pp_result fail(pp_result code, std::string detail) {
    last_error = std::move(detail);
    return code;
}

// Runs `body`, mapping every exception to a code and a thread-local detail line.
template <typename F>
pp_result wrap(F &&body) noexcept {
    try {
        last_error.clear();
        pp_result rc = body();
        return rc;
    } catch (const pp::Error &e) {
        return fail(e.code(), e.what());
    } catch (const std::bad_alloc &) {
        return fail(PP_ERR_NO_MEMORY, "out of memory");
    } catch (const std::exception &e) {
        return fail(PP_ERR_INTERNAL, e.what());
    } catch (...) {
        return fail(PP_ERR_INTERNAL, "unknown exception");
    }
}

// The buffer convention of every string getter: see the header.
pp_result copy_out(const std::string &value, char *buf, size_t buf_size, size_t *needed) {
    if (needed) *needed = value.size() + 1;
    if (!buf || buf_size < value.size() + 1) {
        return fail(PP_ERR_BUFFER_TOO_SMALL, "buffer of " + std::to_string(buf_size) +
                                                 " bytes is too small: " +
                                                 std::to_string(value.size() + 1) + " needed");
    }
    std::memcpy(buf, value.c_str(), value.size() + 1);
    return PP_OK;
}

void require(const void *p, const char *name) {
    if (!p) throw pp::Error(PP_ERR_INVALID_ARGUMENT, std::string(name) + " must not be NULL");
}

// A C caller may pass any int as an enum; loading an out-of-range value as the C++ enum type is
// undefined, so read its bytes and check the range first.
template <typename Enum>
Enum checked_enum(Enum value, int first, int last, const char *what) {
    int raw = 0;
    static_assert(sizeof(Enum) == sizeof(int));
    std::memcpy(&raw, &value, sizeof raw);
    if (raw < first || raw > last)
        throw pp::Error(PP_ERR_INVALID_ARGUMENT, std::string("unknown ") + what + " " + std::to_string(raw));
    return static_cast<Enum>(raw);
}

std::string str(const char *s) { return s ? std::string(s) : std::string(); }

std::vector<std::string> str_list(const char *const *items, size_t count) {
    std::vector<std::string> out;
    if (!items) return out;
    for (size_t i = 0; i < count; ++i) {
        if (!items[i]) throw pp::Error(PP_ERR_INVALID_ARGUMENT, "string list holds a NULL entry");
        out.emplace_back(items[i]);
    }
    return out;
}

// The user's callback behind a C++ EventSink.
pp::EventSink event_sink(pp_event_cb callback, void *user_data) {
    if (!callback) return [](const pp::Event &) {};
    return [callback, user_data](const pp::Event &e) {
        pp_event c{};
        c.type = e.type;
        c.level = e.level;
        c.viewer_id = e.viewer_id;
        c.error = e.error;
        c.message = e.message.c_str();
        c.json = e.json.c_str();
        callback(&c, user_data);
    };
}

void check_version(unsigned got, unsigned known, const char *what) {
    if (got == 0 || got > known)
        throw pp::Error(PP_ERR_VERSION, std::string(what) + " version " + std::to_string(got) +
                                            " is unknown to this library (it knows up to " +
                                            std::to_string(known) + ")");
}

// The size of each pp_host_options layout ever shipped: an older program's struct is only that
// long, so the library reads (and init writes) that prefix and nothing past it.
size_t host_options_size(unsigned version) {
    if (version == 1) return offsetof(pp_host_options, dht_bootstrap);
    if (version == 2) return offsetof(pp_host_options, one_viewer);
    if (version == 3) return offsetof(pp_host_options, max_streams_per_viewer);
    return sizeof(pp_host_options);
}

size_t demo_options_size(unsigned version) {
    if (version == 1) return offsetof(pp_demo_options, publish);
    if (version == 2) return offsetof(pp_demo_options, dht_bootstrap);
    return sizeof(pp_demo_options);
}

size_t viewer_options_size(unsigned version) {
    return version == 1 ? offsetof(pp_viewer_options, dht_bootstrap) : sizeof(pp_viewer_options);
}

// Each versioned options struct's current version, name and defaults, for the two things every
// one of them needs: init (defaults cut to the caller's version) and reading (the caller's prefix
// over the defaults).
template <typename Options> struct Layout;
template <> struct Layout<pp_host_options> {
    static constexpr unsigned current = PP_HOST_OPTIONS_VERSION;
    static constexpr const char *name = "pp_host_options";
    static pp_host_options defaults() { return PP_HOST_OPTIONS_INIT; }
    static size_t size(unsigned version) { return host_options_size(version); }
};
template <> struct Layout<pp_viewer_options> {
    static constexpr unsigned current = PP_VIEWER_OPTIONS_VERSION;
    static constexpr const char *name = "pp_viewer_options";
    static pp_viewer_options defaults() { return PP_VIEWER_OPTIONS_INIT; }
    static size_t size(unsigned version) { return viewer_options_size(version); }
};
template <> struct Layout<pp_demo_options> {
    static constexpr unsigned current = PP_DEMO_OPTIONS_VERSION;
    static constexpr const char *name = "pp_demo_options";
    static pp_demo_options defaults() { return PP_DEMO_OPTIONS_INIT; }
    static size_t size(unsigned version) { return demo_options_size(version); }
};

template <typename Options>
pp_result init_options(Options *options, unsigned version) {
    using L = Layout<Options>;
    require(options, "options");
    check_version(version, L::current, L::name);
    Options defaults = L::defaults();
    defaults.version = version;
    std::memcpy(options, &defaults, L::size(version));
    return PP_OK;
}

// The caller's struct read up to its version's size: fields added after that keep their defaults.
template <typename Options>
Options upgraded(const Options &given) {
    using L = Layout<Options>;
    check_version(given.version, L::current, L::name);
    Options out = L::defaults();
    std::memcpy(&out, &given, L::size(given.version));
    return out;
}

pp::HostConfig host_config(const pp_host_options *given) {
    pp::HostConfig c;
    if (!given) return c;
    const pp_host_options current = upgraded(*given);
    const pp_host_options *o = &current;
    if (o->source) c.source = o->source;
    c.bind_address = str(o->bind_address);
    c.port = o->port;
    c.max_viewers = o->max_viewers;
    c.bitrate_kbps = o->bitrate_kbps;
    c.fps = o->fps;
    c.max_height = o->max_height;
    if (o->encoder) c.encoder = o->encoder;
    c.audio = o->audio != 0;
    c.apps = str_list(o->apps, o->app_count);
    c.monitor = o->monitor;
    c.relay = str(o->relay);
    c.relay_username = str(o->relay_username);
    c.relay_password = str(o->relay_password);
    c.relay_secret = str(o->relay_secret);
    c.stun_servers = str_list(o->stun_servers, o->stun_server_count);
    c.no_stun = o->no_stun != 0;
    c.no_port_mapping = o->no_port_mapping != 0;
    c.relay_only = o->relay_only != 0;
    c.no_relay = o->no_relay != 0;
    c.ticket_lifetime_s = o->ticket_lifetime_s;
    c.grace_ms = o->grace_ms;
    c.name = str(o->name);
    c.dht_bootstrap = str_list(o->dht_bootstrap, o->dht_bootstrap_count);
    c.no_dht = o->no_dht != 0;
    c.congestion_control = str(o->congestion_control);
    c.fixed_bitrate = o->fixed_bitrate != 0;
    c.publish = str_list(o->publish, o->publish_count);
    c.publish_key = str(o->publish_key);
    c.one_viewer = o->one_viewer != 0;
    c.max_streams_per_viewer = o->max_streams_per_viewer;
    return c;
}

pp::ViewerConfig viewer_config(const pp_viewer_options *given) {
    require(given, "options");
    const pp_viewer_options current = upgraded(*given);
    const pp_viewer_options *o = &current;
    if (!o->ticket) throw pp::Error(PP_ERR_INVALID_ARGUMENT, "options.ticket must be set");
    pp::ViewerConfig c;
    c.ticket_text = o->ticket;
    c.listen_port = o->listen_port;
    if (o->connect_timeout_ms) c.connect_timeout_ms = o->connect_timeout_ms;
    c.relay_only = o->relay_only != 0;
    c.no_relay = o->no_relay != 0;
    c.no_stun = o->no_stun != 0;
    c.stun_servers = str_list(o->stun_servers, o->stun_server_count);
    c.dht_bootstrap = str_list(o->dht_bootstrap, o->dht_bootstrap_count);
    c.no_dht = o->no_dht != 0;
    return c;
}

} // namespace

extern "C" {

/* ---- errors and version ---- */

PP_EXPORT const char *pp_strerror(pp_result code) { return pp::result_name(code); }

PP_EXPORT const char *pp_last_error(void) { return last_error.c_str(); }

PP_EXPORT const char *pp_version(void) { return PIXELPASS_VERSION; }

PP_EXPORT uint32_t pp_version_number(void) { return PIXELPASS_VERSION_NUMBER; }

/* ---- tickets ---- */

PP_EXPORT pp_result pp_ticket_new(pp_ticket **out, const uint8_t *fingerprint, const uint8_t *secret,
                                  size_t secret_size) {
    return wrap([&] {
        require(out, "out");
        *out = nullptr;
        require(fingerprint, "fingerprint");
        require(secret, "secret");
        auto t = std::make_unique<pp_ticket>();
        t->value = pp::ticket::make({fingerprint, PP_FINGERPRINT_SIZE}, {secret, secret_size});
        *out = t.release();
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_ticket_add_candidate(pp_ticket *ticket, pp_candidate_kind kind,
                                            const char *address, uint16_t port) {
    return wrap([&] {
        require(ticket, "ticket");
        require(address, "address");
        pp::ticket::add_candidate(
            ticket->value, checked_enum(kind, PP_CANDIDATE_LOCAL, PP_CANDIDATE_RELAYED, "candidate kind"),
            address, port);
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_ticket_set_relay(pp_ticket *ticket, const char *host, uint16_t port,
                                        const char *username, const char *credential) {
    return wrap([&] {
        require(ticket, "ticket");
        if (!host) {
            ticket->value.relay.reset();
            return PP_OK;
        }
        pp::ticket::set_relay(ticket->value, {host, port, str(username), str(credential)});
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_ticket_set_expiry(pp_ticket *ticket, int64_t unix_seconds) {
    return wrap([&] {
        require(ticket, "ticket");
        if (unix_seconds < 0) throw pp::Error(PP_ERR_INVALID_ARGUMENT, "expiry must not be negative");
        ticket->value.expiry = unix_seconds;
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_ticket_encode(const pp_ticket *ticket, char *buf, size_t buf_size,
                                     size_t *needed) {
    return wrap([&] {
        require(ticket, "ticket");
        return copy_out(pp::ticket::encode(ticket->value), buf, buf_size, needed);
    });
}

PP_EXPORT pp_result pp_ticket_decode(pp_ticket **out, const char *text) {
    return wrap([&] {
        require(out, "out");
        *out = nullptr;
        require(text, "text");
        auto t = std::make_unique<pp_ticket>();
        t->value = pp::ticket::decode(text);
        *out = t.release();
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_ticket_fingerprint(const pp_ticket *ticket, uint8_t *out) {
    return wrap([&] {
        require(ticket, "ticket");
        require(out, "out");
        std::memcpy(out, ticket->value.fingerprint.data(), PP_FINGERPRINT_SIZE);
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_ticket_secret(const pp_ticket *ticket, uint8_t *out, size_t out_size,
                                     size_t *secret_size) {
    return wrap([&] {
        require(ticket, "ticket");
        const auto &secret = ticket->value.secret;
        if (secret_size) *secret_size = secret.size();
        if (!out || out_size < secret.size())
            return fail(PP_ERR_BUFFER_TOO_SMALL,
                        "secret needs " + std::to_string(secret.size()) + " bytes");
        std::memcpy(out, secret.data(), secret.size());
        return PP_OK;
    });
}

PP_EXPORT size_t pp_ticket_candidate_count(const pp_ticket *ticket) {
    return ticket ? ticket->value.candidates.size() : 0;
}

PP_EXPORT pp_result pp_ticket_candidate(const pp_ticket *ticket, size_t index,
                                        pp_candidate_kind *kind, uint16_t *port, char *buf,
                                        size_t buf_size, size_t *needed) {
    return wrap([&] {
        require(ticket, "ticket");
        const auto &list = ticket->value.candidates;
        if (index >= list.size())
            throw pp::Error(PP_ERR_INVALID_ARGUMENT, "candidate index " + std::to_string(index) +
                                                         " out of range (" +
                                                         std::to_string(list.size()) + " candidates)");
        if (kind) *kind = list[index].kind;
        if (port) *port = list[index].port;
        return copy_out(list[index].address, buf, buf_size, needed);
    });
}

PP_EXPORT int64_t pp_ticket_expiry(const pp_ticket *ticket) { return ticket ? ticket->value.expiry : 0; }

PP_EXPORT pp_result pp_ticket_to_json(const pp_ticket *ticket, char *buf, size_t buf_size,
                                      size_t *needed) {
    return wrap([&] {
        require(ticket, "ticket");
        return copy_out(pp::ticket::to_json(ticket->value), buf, buf_size, needed);
    });
}

PP_EXPORT void pp_ticket_free(pp_ticket *ticket) { delete ticket; }

/* ---- host ---- */

PP_EXPORT pp_result pp_host_options_init(pp_host_options *options, unsigned version) {
    return wrap([&] { return init_options(options, version); });
}

PP_EXPORT pp_result pp_host_new(pp_host **out, const pp_host_options *options, pp_event_cb callback,
                                void *user_data) {
    return wrap([&] {
        require(out, "out");
        *out = nullptr;
        auto h = std::make_unique<pp_host>();
        pp::HostConfig config = host_config(options);
        pp::config::apply_host_defaults(config, pp::config::load());
        h->impl = std::make_unique<pp::Host>(std::move(config), event_sink(callback, user_data));
        *out = h.release();
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_host_start(pp_host *host) {
    return wrap([&] {
        require(host, "host");
        host->impl->start();
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_host_stop(pp_host *host) {
    return wrap([&] {
        require(host, "host");
        host->impl->stop();
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_host_ticket(pp_host *host, char *buf, size_t buf_size, size_t *needed) {
    return wrap([&] {
        require(host, "host");
        return copy_out(host->impl->ticket_text(), buf, buf_size, needed);
    });
}

PP_EXPORT pp_result pp_host_fingerprint(pp_host *host, char *buf, size_t buf_size, size_t *needed) {
    return wrap([&] {
        require(host, "host");
        return copy_out(host->impl->fingerprint_hex(), buf, buf_size, needed);
    });
}

PP_EXPORT pp_result pp_host_stats_json(pp_host *host, char *buf, size_t buf_size, size_t *needed) {
    return wrap([&] {
        require(host, "host");
        return copy_out(host->impl->stats_json(), buf, buf_size, needed);
    });
}

PP_EXPORT void pp_host_free(pp_host *host) {
    if (!host) return;
    wrap([&] {
        host->impl.reset();
        return PP_OK;
    });
    delete host;
}

/* ---- viewer ---- */

PP_EXPORT pp_result pp_viewer_options_init(pp_viewer_options *options, unsigned version) {
    return wrap([&] { return init_options(options, version); });
}

PP_EXPORT pp_result pp_viewer_connect(pp_viewer **out, const pp_viewer_options *options,
                                      pp_event_cb callback, void *user_data) {
    return wrap([&] {
        require(out, "out");
        *out = nullptr;
        auto v = std::make_unique<pp_viewer>();
        pp::ViewerConfig config = viewer_config(options);
        pp::config::apply_viewer_defaults(config, pp::config::load());
        v->impl = std::make_unique<pp::Viewer>(std::move(config), event_sink(callback, user_data));
        *out = v.release();
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_viewer_url(pp_viewer *viewer, char *buf, size_t buf_size, size_t *needed) {
    return wrap([&] {
        require(viewer, "viewer");
        return copy_out(viewer->impl->url(), buf, buf_size, needed);
    });
}

PP_EXPORT pp_result pp_viewer_stats_json(pp_viewer *viewer, char *buf, size_t buf_size,
                                         size_t *needed) {
    return wrap([&] {
        require(viewer, "viewer");
        return copy_out(viewer->impl->stats_json(), buf, buf_size, needed);
    });
}

PP_EXPORT pp_result pp_viewer_wait(pp_viewer *viewer, int timeout_ms) {
    return wrap([&] {
        require(viewer, "viewer");
        pp_result rc = viewer->impl->wait(timeout_ms);
        if (rc == PP_ERR_STATE) return fail(rc, "still connected");
        return rc;
    });
}

PP_EXPORT void pp_viewer_free(pp_viewer *viewer) {
    if (!viewer) return;
    wrap([&] {
        viewer->impl.reset();
        return PP_OK;
    });
    delete viewer;
}

/* ---- players ---- */

namespace {
pp::player::Kind player_kind(pp_player_kind player) {
    switch (checked_enum(player, PP_PLAYER_AUTO, PP_PLAYER_VLC, "player")) {
    case PP_PLAYER_AUTO: return pp::player::choose("auto");
    case PP_PLAYER_MPV: return pp::player::Kind::mpv;
    case PP_PLAYER_VLC: return pp::player::Kind::vlc;
    case PP_PLAYER_FORCE_INT32_: break;  // rejected by checked_enum
    }
    throw pp::Error(PP_ERR_INTERNAL, "unreachable player kind");
}
} // namespace

PP_EXPORT pp_result pp_players_json(char *buf, size_t buf_size, size_t *needed) {
    return wrap([&] { return copy_out(pp::player::to_json(pp::player::detect()).dump(), buf, buf_size, needed); });
}

PP_EXPORT pp_result pp_player_command(pp_player_kind player, const char *url, char *buf,
                                      size_t buf_size, size_t *needed) {
    return wrap([&] {
        require(url, "url");
        return copy_out(pp::player::shell_command(player_kind(player), url), buf, buf_size, needed);
    });
}

PP_EXPORT pp_result pp_player_launch(pp_player_kind player, const char *url, int64_t *pid) {
    return wrap([&] {
        require(url, "url");
        pid_t child = pp::player::launch(player_kind(player), url);
        if (pid) *pid = child;
        return PP_OK;
    });
}

/* ---- repair ---- */

PP_EXPORT pp_result pp_repair(const pp_repair_options *options, char *report, size_t report_size,
                              size_t *needed) {
    return wrap([&] {
        bool dry_run = false;
        if (options) {
            check_version(options->version, PP_REPAIR_OPTIONS_VERSION, "pp_repair_options");
            dry_run = options->dry_run != 0;
        }
        // A repair acts: a report that does not fit is kept for this thread's next call.
        return copy_out(pp::repair::run_for_buffer(dry_run, report ? report_size : 0), report,
                        report_size, needed);
    });
}

/* ---- demo ---- */

PP_EXPORT pp_result pp_demo_options_init(pp_demo_options *options, unsigned version) {
    return wrap([&] { return init_options(options, version); });
}

/* ---- relay set-up ---- */

PP_EXPORT pp_result pp_relay_secret_new(char *buf, size_t buf_size) {
    return wrap([&] {
        require(buf, "buf");
        if (buf_size < PP_RELAY_SECRET_BUFFER)
            throw pp::Error(PP_ERR_BUFFER_TOO_SMALL, "a relay secret needs PP_RELAY_SECRET_BUFFER bytes");
        std::string secret = pp::nat::new_relay_secret();
        std::memcpy(buf, secret.c_str(), secret.size() + 1);
        return PP_OK;
    });
}

/* ---- capture ---- */

PP_EXPORT pp_result pp_forget_screen(int *forgotten) {
    return wrap([&] {
        bool removed = pp::capture::forget_portal_choice();
        if (forgotten) *forgotten = removed ? 1 : 0;
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_demo_run(const pp_demo_options *options, pp_event_cb callback, void *user_data,
                                char *report, size_t report_size, size_t *needed) {
    return wrap([&] {
        pp::demo::Options o;
        pp_demo_options current{};
        if (options) {
            current = upgraded(*options);  // fields newer than the caller's keep defaults
            options = &current;
            o.seconds = options->seconds;
            o.headless = options->headless != 0;
            if (options->encoder) o.encoder = options->encoder;
            o.bitrate_kbps = options->bitrate_kbps;
            o.fps = options->fps;
            o.max_height = options->max_height;
            o.audio = options->audio != 0;
            o.publish = str_list(options->publish, options->publish_count);
            o.publish_key = str(options->publish_key);
            o.dht_bootstrap = str_list(options->dht_bootstrap, options->dht_bootstrap_count);
            o.no_dht = options->no_dht != 0;
        }
        pp::config::apply_dht(o.dht_bootstrap, o.no_dht, pp::config::load());
        return copy_out(pp::demo::run_for_buffer(o, event_sink(callback, user_data), report ? report_size : 0),
                        report, report_size, needed);
    });
}

PP_EXPORT pp_result pp_relay_config(const char *public_host, const char *secret, uint16_t port, char *buf,
                                    size_t buf_size, size_t *needed) {
    return wrap([&] {
        require(public_host, "public_host");
        require(secret, "secret");
        return copy_out(pp::nat::relay_config(public_host, secret, port ? port : 3478), buf, buf_size, needed);
    });
}

} // extern "C"

/* ---- config, bandwidth pre-flight, clipboard, doctor ---- */

PP_EXPORT pp_result pp_config_path(char *buf, size_t buf_size, size_t *needed) {
    return wrap([&] { return copy_out(pp::config::default_path(), buf, buf_size, needed); });
}

PP_EXPORT pp_result pp_config_json(char *buf, size_t buf_size, size_t *needed) {
    return wrap([&] { return copy_out(pp::config::to_json(pp::config::load()).dump(), buf, buf_size, needed); });
}

PP_EXPORT pp_result pp_config_set(const char *key, const char *json_value) {
    return wrap([&] {
        require(key, "key");
        require(json_value, "json_value");
        auto value = nlohmann::json::parse(json_value, nullptr, false);
        if (value.is_discarded())
            // Never the value itself: it may be the relay secret, and errors end up in logs.
            throw pp::Error(PP_ERR_INVALID_ARGUMENT, std::string("the value for ") + key +
                                                         " is not JSON (give a string in double quotes, a number, "
                                                         "true/false or a list of strings)");
        pp::config::set({{key, value}});
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_bandwidth_test(const char *endpoint, pp_progress_cb progress, void *user_data,
                                      double *upstream_mbps) {
    return wrap([&] {
        pp::preflight::Options o;
        o.endpoint = str(endpoint);
        if (progress) o.progress = [&](double fraction, double mbps) { progress(fraction, mbps, user_data); };
        auto r = pp::preflight::run(o);
        if (upstream_mbps) *upstream_mbps = r.upstream_mbps;
        if (!r.ok) throw pp::Error(PP_ERR_UNREACHABLE, "bandwidth test against " + r.endpoint + " failed: " + r.error);
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_bandwidth_skip(void) {
    return wrap([&] {
        pp::preflight::skip();
        return PP_OK;
    });
}

PP_EXPORT pp_result pp_clipboard_copy(const char *text, int tty_fd, char *method, size_t method_size,
                                      size_t *needed) {
    return wrap([&] {
        require(text, "text");
        return copy_out(pp::clipboard::copy(text, tty_fd), method, method_size, needed);
    });
}

PP_EXPORT pp_result pp_doctor_json(unsigned probe_timeout_ms, char *buf, size_t buf_size, size_t *needed) {
    return wrap([&] {
        pp::doctor::Options o;
        if (probe_timeout_ms) o.probe_timeout_ms = probe_timeout_ms;
        return copy_out(pp::doctor::run(o).dump(), buf, buf_size, needed);
    });
}
