#include "capture/capture.hpp"

#include <cstdlib>

#include "capture/app_audio.hpp"
#include "common/error.hpp"

#ifdef PP_HAVE_X11_CAPTURE
#include "capture/x11.hpp"
#endif
#ifdef PP_HAVE_PORTAL_CAPTURE
#include "capture/portal.hpp"
#endif

namespace pp::capture {

namespace {

std::string env(const char *name) {
    const char *v = std::getenv(name);
    return v ? v : "";
}

} // namespace

Desktop Desktop::from_environment() {
    return {env("DISPLAY"), env("WAYLAND_DISPLAY"), env("XDG_SESSION_TYPE")};
}

std::string choose_source(const std::string &wanted, const Desktop &desktop) {
    if (wanted == "test" || wanted == "portal" || wanted == "x11") return wanted;
    if (wanted != "auto" && !wanted.empty())
        throw Error(PP_ERR_INVALID_ARGUMENT, "unknown source '" + wanted + "': use auto, portal, x11 or test");
    if (desktop.wayland()) return "portal";
    if (desktop.x11()) return "x11";
    throw Error(PP_ERR_NO_CAPTURE_SOURCE,
                "no desktop session to capture (neither WAYLAND_DISPLAY nor DISPLAY is set): run pixelpass "
                "inside your desktop session, or use --source test to share a test pattern");
}

std::filesystem::path portal_token_path() {
    std::filesystem::path state;
    if (const char *s = std::getenv("XDG_STATE_HOME"); s && *s == '/') state = s;
    else if (const char *home = std::getenv("HOME"); home && *home) state = std::filesystem::path(home) / ".local/state";
    else throw Error(PP_ERR_IO, "neither XDG_STATE_HOME nor HOME is set: nowhere to keep the screen choice");
    return state / "pixelpass" / "screencast-restore-token";
}

bool forget_portal_choice() {
    auto path = portal_token_path();
    std::error_code ec;
    bool removed = std::filesystem::remove(path, ec);
    if (ec) throw Error(PP_ERR_IO, "cannot delete " + path.string() + ": " + ec.message());
    return removed;
}

namespace {

std::unique_ptr<media::CaptureSource> make_screen_source(const HostConfig &config, EventSink events) {
    const std::string chosen = choose_source(config.source, Desktop::from_environment());
    if (chosen == "test") return media::make_test_source(config.max_height);
    if (chosen == "x11") {
#ifdef PP_HAVE_X11_CAPTURE
        return make_x11_source(config, std::move(events));
#else
        throw Error(PP_ERR_UNSUPPORTED, "X11 capture is not in this build (it needs GStreamer, libX11 and "
                                        "libXrandr at build time): use --source test");
#endif
    }
#ifdef PP_HAVE_PORTAL_CAPTURE
    return make_portal_source(config, std::move(events));
#else
    throw Error(PP_ERR_UNSUPPORTED, "Wayland capture is not in this build (it needs GStreamer and libportal at "
                                    "build time): use --source test");
#endif
}

} // namespace

std::unique_ptr<media::CaptureSource> make_capture_source(const HostConfig &config, EventSink events) {
    auto screen = make_screen_source(config, events);
    // --app replaces the screen source's audio (all system audio, or the test tone) by the named
    // applications' sound only; without audio there is nothing to choose from.
    if (!config.apps.empty() && config.audio) {
#ifdef PP_HAVE_APP_AUDIO_SOURCE
        return with_app_audio(std::move(screen), config.apps, std::move(events));
#else
        throw Error(PP_ERR_UNSUPPORTED, "sharing one application's audio (--app) is not in this build (it needs "
                                        "GStreamer at build time)");
#endif
    }
    return screen;
}

} // namespace pp::capture
