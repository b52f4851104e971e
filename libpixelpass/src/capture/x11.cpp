#include "capture/x11.hpp"

#include <X11/Xlib.h>
#include <X11/extensions/Xrandr.h>

#include "capture/system_audio.hpp"
#include "common/error.hpp"
#include "media/gst.hpp"
#include "media/media.hpp"

namespace pp::capture {

namespace {

struct DisplayClose {
    void operator()(Display *d) const { if (d) XCloseDisplay(d); }
};
struct MonitorsFree {
    void operator()(XRRMonitorInfo *m) const { if (m) XRRFreeMonitors(m); }
};
struct XFreeDeleter {
    void operator()(void *p) const { if (p) XFree(p); }
};

std::string describe_monitors(const X11Layout &layout) {
    std::string list;
    for (size_t i = 0; i < layout.monitors.size(); ++i) {
        const auto &m = layout.monitors[i];
        list += (i ? ", " : "") + std::to_string(i) + ": " + m.name + " " + std::to_string(m.width) + "x" +
                std::to_string(m.height) + "+" + std::to_string(m.x) + "+" + std::to_string(m.y);
    }
    return list;
}

class X11Source final : public media::CaptureSource {
public:
    X11Source(X11Layout layout, int monitor, EventSink events)
        : layout_(std::move(layout)), monitor_(monitor), region_(x11_region(layout_, monitor)),
          audio_(std::move(events)) {}

    std::string name() const override { return "x11"; }

    void open(const media::CaptureParams &) override {
        // Monitors come and go between shares; re-read the layout for each run.
        X11Layout now = query_x11_layout(layout_.display);
        region_ = x11_region(now, monitor_);
        layout_ = std::move(now);
    }

    media::ElementPtr make_video(const media::CaptureParams &params) override {
        media::ElementPtr bin = media::sink_ref(gst_bin_new("x11-video"));
        media::ElementPtr src = media::make_element("ximagesrc", "x11-src");
        media::set_property(src.get(), "display-name", layout_.display);
        // Damage events make ximagesrc copy only changed rectangles into a stale image, which
        // tears under load; whole frames cost little more at 30 fps.
        media::set_property(src.get(), "use-damage", "false");
        media::set_property(src.get(), "show-pointer", "true");
        if (monitor_ >= 0) {
            // ximagesrc's end coordinates are inclusive.
            media::set_property(src.get(), "startx", std::to_string(region_.x));
            media::set_property(src.get(), "starty", std::to_string(region_.y));
            media::set_property(src.get(), "endx", std::to_string(region_.x + region_.width - 1));
            media::set_property(src.get(), "endy", std::to_string(region_.y + region_.height - 1));
        }
        // ximagesrc grabs on its own timer at the negotiated rate: ask for the pipeline's.
        media::ElementPtr caps =
            media::make_capsfilter("video/x-raw,framerate=" + std::to_string(params.fps) + "/1", "x11-caps");
        media::add_and_link(GST_BIN(bin.get()), {src.get(), caps.get()});
        media::GstPtr<GstPad> pad(gst_element_get_static_pad(caps.get(), "src"));
        gst_element_add_pad(bin.get(), gst_ghost_pad_new("src", pad.get()));
        return bin;
    }

    media::ElementPtr make_audio(const media::CaptureParams &params) override { return audio_.make(params); }

    void close() override { audio_.stop(); }

    nlohmann::json describe() const override {
        return {{"width", region_.width}, {"height", region_.height}, {"display", layout_.display},
                {"monitor", monitor_ >= 0 ? nlohmann::json(region_.name) : nlohmann::json(nullptr)}};
    }

private:
    X11Layout layout_;
    const int monitor_;
    X11Monitor region_;
    SystemAudio audio_;
};

} // namespace

X11Layout query_x11_layout(const std::string &display) {
    std::unique_ptr<Display, DisplayClose> dpy(XOpenDisplay(display.empty() ? nullptr : display.c_str()));
    if (!dpy) {
        std::string name = display.empty() ? (std::getenv("DISPLAY") ? std::getenv("DISPLAY") : "") : display;
        throw Error(PP_ERR_NO_CAPTURE_SOURCE,
                    name.empty() ? "cannot capture X11: DISPLAY is not set (use --source test to share a test pattern)"
                                 : "cannot open the X display '" + name +
                                       "' (is the X server running, and may this user connect to it?)");
    }
    X11Layout layout;
    layout.display = XDisplayString(dpy.get());
    int screen = DefaultScreen(dpy.get());
    layout.width = DisplayWidth(dpy.get(), screen);
    layout.height = DisplayHeight(dpy.get(), screen);
    int event_base = 0, error_base = 0, major = 0, minor = 0;
    if (XRRQueryExtension(dpy.get(), &event_base, &error_base) && XRRQueryVersion(dpy.get(), &major, &minor) &&
        (major > 1 || (major == 1 && minor >= 5))) {
        int count = 0;
        std::unique_ptr<XRRMonitorInfo, MonitorsFree> monitors(
            XRRGetMonitors(dpy.get(), RootWindow(dpy.get(), screen), True, &count));
        for (int i = 0; monitors && i < count; ++i) {
            const XRRMonitorInfo &m = monitors.get()[i];
            X11Monitor out;
            std::unique_ptr<char, XFreeDeleter> name(m.name ? XGetAtomName(dpy.get(), m.name) : nullptr);
            out.name = name ? name.get() : "monitor-" + std::to_string(i);
            out.x = m.x;
            out.y = m.y;
            out.width = m.width;
            out.height = m.height;
            out.primary = m.primary;
            layout.monitors.push_back(std::move(out));
        }
    }
    return layout;
}

X11Monitor x11_region(const X11Layout &layout, int monitor) {
    if (monitor < 0) return {"screen", 0, 0, layout.width, layout.height, true};
    if (static_cast<size_t>(monitor) >= layout.monitors.size())
        throw Error(PP_ERR_INVALID_ARGUMENT,
                    "monitor " + std::to_string(monitor) + " does not exist on X display '" + layout.display + "'" +
                        (layout.monitors.empty() ? std::string(" (it reports no RandR monitors): omit --monitor")
                                                 : " (it has " + describe_monitors(layout) + ")"));
    X11Monitor m = layout.monitors[monitor];
    // Clip to the root window: a monitor that reaches past it would make ximagesrc fail.
    int right = std::min(m.x + m.width, layout.width), bottom = std::min(m.y + m.height, layout.height);
    m.x = std::max(0, m.x);
    m.y = std::max(0, m.y);
    m.width = right - m.x;
    m.height = bottom - m.y;
    if (m.width < 2 || m.height < 2)
        throw Error(PP_ERR_INVALID_ARGUMENT, "monitor " + std::to_string(monitor) + " (" + m.name +
                                                 ") lies outside the X screen");
    return m;
}

std::unique_ptr<media::CaptureSource> make_x11_source(const HostConfig &config, EventSink events) {
    media::require_element("ximagesrc");
    X11Layout layout = query_x11_layout();
    return std::make_unique<X11Source>(std::move(layout), config.monitor, std::move(events));
}

} // namespace pp::capture
