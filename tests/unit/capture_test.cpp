// capture: source choice (pure), then real X11 capture from a private Xvfb (a window of a known
// colour, two RandR monitors) and real system-audio capture from a private PipeWire +
// WirePlumber + pipewire-pulse (audio_rig.sh), each decoded again and measured: the colour of the
// pictures, the frequency of the sound.
#include <catch2/catch.hpp>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <algorithm>
#include <atomic>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture/capture.hpp"
#include "common/error.hpp"
#include "media/decoder.hpp"
#include "media/media.hpp"
#include "reader_helpers.hpp"
#include "skip.hpp"

#if __has_include(<gst/gst.h>)
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include "media/gst.hpp"
#define PP_TEST_HAVE_GST 1
#endif

// x11.cpp is built exactly when GStreamer and libXrandr are found.
#if defined(PP_TEST_HAVE_GST) && __has_include(<X11/extensions/Xrandr.h>)
#define PP_TEST_HAVE_X11 1
#include <X11/Xlib.h>
#include <X11/extensions/Xrandr.h>

#include "capture/x11.hpp"
#endif

using namespace pp;
using namespace pp::test;

namespace {

bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

pp_result code_of(const std::function<void()> &f) {
    try {
        f();
    } catch (const Error &e) {
        return e.code();
    }
    return PP_OK;
}

// Sets an environment variable for one scope (tests run one at a time in this process).
struct ScopedEnv {
    std::string name;
    std::optional<std::string> old;
    ScopedEnv(std::string n, const char *value) : name(std::move(n)) {
        if (const char *o = std::getenv(name.c_str())) old = o;
        if (value) setenv(name.c_str(), value, 1);
        else unsetenv(name.c_str());
    }
    ~ScopedEnv() {
        if (old) setenv(name.c_str(), old->c_str(), 1);
        else unsetenv(name.c_str());
    }
};

} // namespace

TEST_CASE("auto picks the portal on Wayland, X11 on X11, and otherwise says to use --source test", "[capture]") {
    using capture::Desktop;
    CHECK(capture::choose_source("auto", Desktop{"", "wayland-0", ""}) == "portal");
    CHECK(capture::choose_source("auto", Desktop{"", "", "wayland"}) == "portal");
    // Xwayland's DISPLAY does not make a Wayland session an X11 one.
    CHECK(capture::choose_source("auto", Desktop{":0", "wayland-1", "wayland"}) == "portal");
    CHECK(capture::choose_source("auto", Desktop{":0", "", "x11"}) == "x11");
    CHECK(capture::choose_source("", Desktop{":1", "", ""}) == "x11");
    for (const char *explicit_name : {"portal", "x11", "test"})
        CHECK(capture::choose_source(explicit_name, Desktop{}) == explicit_name);
    try {
        capture::choose_source("auto", Desktop{"", "", "tty"});
        FAIL("auto without a desktop should throw");
    } catch (const Error &e) {
        CHECK(e.code() == PP_ERR_NO_CAPTURE_SOURCE);
        CHECK(contains(e.what(), "--source test"));
    }
    CHECK(code_of([] { capture::choose_source("vnc", Desktop{":0", "", ""}); }) == PP_ERR_INVALID_ARGUMENT);

    // Through the factory, with this process's environment emptied of any desktop.
    ScopedEnv d("DISPLAY", nullptr), w("WAYLAND_DISPLAY", nullptr), s("XDG_SESSION_TYPE", nullptr);
    HostConfig c;
    c.source = "auto";
    CHECK(code_of([&] { capture::make_capture_source(c); }) == PP_ERR_NO_CAPTURE_SOURCE);
    c.source = "x11";
    CHECK(code_of([&] { capture::make_capture_source(c); }) != PP_OK);
    c.source = "test";
    if (media::available()) CHECK(capture::make_capture_source(c)->name() == "test");
}

TEST_CASE("--app without a PipeWire server fails at once, never silently widened", "[capture]") {
    if (!media::available()) return;
    char dir[] = "/tmp/pp-no-pipewire.XXXXXX";
    REQUIRE(mkdtemp(dir));
    ScopedEnv runtime("XDG_RUNTIME_DIR", dir), remote("PIPEWIRE_REMOTE", nullptr);
    HostConfig c;
    c.source = "test";
    c.apps = {"firefox"};
    try {
        capture::make_capture_source(c);
        FAIL("--app was accepted without PipeWire");
    } catch (const Error &e) {
        // A build without libpipewire says so (PP_ERR_UNSUPPORTED); one with it names the server.
        CHECK((e.code() == PP_ERR_IO || e.code() == PP_ERR_UNSUPPORTED));
        CHECK(contains(e.what(), "--app"));
    }
    c.apps = {""};
    CHECK(code_of([&] { capture::make_capture_source(c); }) != PP_OK);
    c.apps = {"firefox"};
    c.audio = false;  // video only: nothing to leak, so --app has nothing to do
    CHECK(capture::make_capture_source(c)->name() == "test");
    rmdir(dir);
}

#ifdef PP_TEST_HAVE_X11

namespace {

// A private Xvfb on a free display number (-displayfd), killed at scope end.
class Xvfb {
public:
    Xvfb(int width, int height) {
        int fds[2];
        REQUIRE(pipe(fds) == 0);
        std::string geometry = std::to_string(width) + "x" + std::to_string(height) + "x24";
        pid_ = fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            close(fds[0]);
            int null = open("/dev/null", O_RDWR);
            dup2(null, 1);
            dup2(null, 2);
            std::string fd = std::to_string(fds[1]);
            execlp("Xvfb", "Xvfb", "-displayfd", fd.c_str(), "-screen", "0", geometry.c_str(), "-nolisten", "tcp",
                   "-noreset", nullptr);
            _exit(127);
        }
        close(fds[1]);
        std::string number;
        char c;
        // Xvfb writes the display number once it accepts connections (or exits: EOF).
        while (read(fds[0], &c, 1) == 1 && c != '\n') number += c;
        close(fds[0]);
        REQUIRE_FALSE(number.empty());
        display_ = ":" + number;
        dpy_ = XOpenDisplay(display_.c_str());
        REQUIRE(dpy_ != nullptr);
    }
    ~Xvfb() {
        for (Window w : windows_) XDestroyWindow(dpy_, w);
        if (dpy_) XCloseDisplay(dpy_);
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
    }
    const std::string &display() const { return display_; }

    // An override-redirect window (placed exactly, no window manager needed) of one colour.
    void solid_window(int x, int y, int w, int h, unsigned long rgb) {
        XSetWindowAttributes attrs{};
        attrs.override_redirect = True;
        attrs.background_pixel = rgb;  // 24-bit TrueColor: the pixel is 0xRRGGBB
        Window win = XCreateWindow(dpy_, DefaultRootWindow(dpy_), x, y, w, h, 0, CopyFromParent, InputOutput,
                                   CopyFromParent, CWOverrideRedirect | CWBackPixel, &attrs);
        XMapRaised(dpy_, win);
        XSync(dpy_, False);
        windows_.push_back(win);
    }

    // A RandR 1.5 monitor without an output: what `xrandr --setmonitor NAME GEOMETRY none` makes.
    void add_monitor(const char *name, int x, int y, int w, int h) {
        XRRMonitorInfo *m = XRRAllocateMonitor(dpy_, 0);
        m->name = XInternAtom(dpy_, name, False);
        m->x = x;
        m->y = y;
        m->width = w;
        m->height = h;
        m->mwidth = w * 254 / 960;  // 96 dpi
        m->mheight = h * 254 / 960;
        XRRSetMonitor(dpy_, DefaultRootWindow(dpy_), m);
        XSync(dpy_, False);
        XRRFreeMonitors(m);
    }

private:
    pid_t pid_ = -1;
    std::string display_;
    Display *dpy_ = nullptr;
    std::vector<Window> windows_;
};

struct Rgb {
    double r = 0, g = 0, b = 0;
};

struct Decoded {
    int width = 0, height = 0;
    uint64_t frames = 0;
    Rgb last_centre;       // mean colour of the middle half of the last picture
    std::vector<Rgb> centres;  // the same for every picture, in order
    double peak_hz = 0;    // strongest spectrum band, averaged over the audio after the first second
    double peak_db = -200;
    uint64_t spectra = 0;
    std::vector<std::vector<float>> windows;  // every spectrum message's magnitudes (dB), in order
    // With a midway action: how many of `windows` the bytes read before it decode to. Those
    // windows hold only sound captured before the action, however late the audio track started
    // or however many samples a loaded machine dropped (a window count is not wall-clock time).
    size_t windows_before_midway = 0;

    // Magnitude (dB) at `hz` in window i.
    double level_at(size_t i, double hz) const {
        const auto &w = windows.at(i);
        return w.at(std::min(w.size() - 1, static_cast<size_t>(hz * w.size() / 24000.0)));
    }
};

// Decodes an MPEG-TS capture back to RGB pictures (and the audio through GStreamer's `spectrum`).
Decoded decode_ts(const std::vector<uint8_t> &bytes, bool audio) {
    media::ensure_gst();
    std::string desc =
        "appsrc name=in caps=video/mpegts,systemstream=true format=bytes ! tsdemux name=d "
        "d. ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 ! h264parse ! avdec_h264 ! videoconvert ! "
        "video/x-raw,format=RGB ! appsink name=v sync=false max-buffers=0";
    if (audio)
        desc += " d. ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 ! aacparse ! avdec_aac ! "
                "audioconvert ! audio/x-raw,channels=1 ! spectrum bands=2400 interval=250000000 threshold=-120 "
                "post-messages=true message-magnitude=true ! fakesink sync=false";
    GError *err = nullptr;
    media::ElementPtr pipeline(gst_parse_launch(desc.c_str(), &err));
    REQUIRE(err == nullptr);
    media::GstPtr<GstElement> in(gst_bin_get_by_name(GST_BIN(pipeline.get()), "in"));
    media::GstPtr<GstElement> v(gst_bin_get_by_name(GST_BIN(pipeline.get()), "v"));
    REQUIRE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    GstBuffer *buffer = gst_buffer_new_memdup(bytes.data(), bytes.size());
    gst_app_src_push_buffer(GST_APP_SRC(in.get()), buffer);
    gst_app_src_end_of_stream(GST_APP_SRC(in.get()));

    Decoded out;
    for (;;) {
        GstSample *raw = gst_app_sink_try_pull_sample(GST_APP_SINK(v.get()), 30 * GST_SECOND);
        if (!raw) break;
        std::unique_ptr<GstSample, decltype(&gst_sample_unref)> sample(raw, gst_sample_unref);
        GstStructure *s = gst_caps_get_structure(gst_sample_get_caps(raw), 0);
        gst_structure_get_int(s, "width", &out.width);
        gst_structure_get_int(s, "height", &out.height);
        GstMapInfo map;
        GstBuffer *b = gst_sample_get_buffer(raw);
        REQUIRE(gst_buffer_map(b, &map, GST_MAP_READ));
        size_t stride = (static_cast<size_t>(out.width) * 3 + 3) & ~size_t(3);
        double r = 0, g = 0, bl = 0;
        uint64_t n = 0;
        for (int y = out.height / 4; y < out.height * 3 / 4; ++y)
            for (int x = out.width / 4; x < out.width * 3 / 4; ++x) {
                const uint8_t *p = map.data + y * stride + x * 3;
                r += p[0], g += p[1], bl += p[2], ++n;
            }
        gst_buffer_unmap(b, &map);
        if (n) out.last_centre = {r / n, g / n, bl / n};
        if (n) out.centres.push_back(out.last_centre);
        ++out.frames;
    }
    // The spectrum messages are on the bus, in order; average the magnitudes past the first second
    // (the capture stream and the AAC encoder take a moment to settle).
    media::GstPtr<GstBus> bus(gst_element_get_bus(pipeline.get()));
    std::vector<double> sum;
    uint64_t count = 0;
    // Until the whole pipeline's EOS: the audio branch may still be running after the video's.
    while (media::MessagePtr msg{gst_bus_timed_pop_filtered(
               bus.get(), 30 * GST_SECOND,
               static_cast<GstMessageType>(GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS | GST_MESSAGE_ERROR))}) {
        if (GST_MESSAGE_TYPE(msg.get()) != GST_MESSAGE_ELEMENT) break;
        const GstStructure *s = gst_message_get_structure(msg.get());
        if (!gst_structure_has_name(s, "spectrum")) continue;
        const GValue *mags = gst_structure_get_value(s, "magnitude");
        guint bands = gst_value_list_get_size(mags);
        auto &window = out.windows.emplace_back();
        for (guint i = 0; i < bands; ++i) window.push_back(g_value_get_float(gst_value_list_get_value(mags, i)));
        if (++out.spectra <= 4) continue;
        sum.resize(bands, 0.0);
        for (guint i = 0; i < bands; ++i) sum[i] += g_value_get_float(gst_value_list_get_value(mags, i));
        ++count;
    }
    if (count) {
        size_t best = 0;
        for (size_t i = 1; i < sum.size(); ++i)
            if (sum[i] > sum[best]) best = i;
        out.peak_hz = (best + 0.5) * 24000.0 / sum.size();
        out.peak_db = sum[best] / count;
    }
    gst_element_set_state(pipeline.get(), GST_STATE_NULL);
    return out;
}

HostConfig x11_config(int monitor = -1) {
    HostConfig c;
    c.source = "x11";
    c.monitor = monitor;
    c.encoder = "x264";
    c.bitrate_kbps = 1000;
    c.audio = false;
    c.grace_ms = 200;
    return c;
}

Decoded capture_for(const HostConfig &config, std::chrono::milliseconds duration, bool audio,
                    const EventSink &events = {}, const std::function<void()> &midway = {}) {
    auto source = media::make_source(config, events, capture::make_capture_source(config, events));
    WakeFlag flag;
    auto reader = source->subscribe(flag.callback());
    // Opening the capture (a portal session, a PipeWire negotiation) and the first keyframe can
    // take seconds on a loaded machine: the measured stretch starts with the first bytes.
    auto chunks = drain(*reader, flag, 30s, [](size_t total, SteadyClock::time_point) { return total > 0; });
    auto first = read_for(*reader, flag, duration / 2);
    chunks.insert(chunks.end(), std::make_move_iterator(first.begin()), std::make_move_iterator(first.end()));
    std::vector<uint8_t> before_midway;
    if (midway) {
        before_midway = concat(chunks);
        midway();
    }
    auto rest = read_for(*reader, flag, duration - duration / 2);
    chunks.insert(chunks.end(), std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
    auto bytes = concat(chunks);
    INFO("reader: " << reader->stats().dump());
    REQUIRE(bytes.size() > 0);
    if (audio) {
        media::TsDecoder check;
        check.feed(bytes);
        auto report = check.finish();
        UNSCOPED_INFO("decoder report: " << report.to_json().dump());
        UNSCOPED_INFO("source stats: " << source->stats().dump());
    }
    Decoded decoded = decode_ts(bytes, audio);
    if (audio && midway) decoded.windows_before_midway = decode_ts(before_midway, true).windows.size();
    return decoded;
}

void check_colour(const Rgb &c, int r, int g, int b) {
    INFO("decoded centre colour " << c.r << "," << c.g << "," << c.b << " want " << r << "," << g << "," << b);
    // H.264 4:2:0 at a modest bitrate and RGB↔YUV round trips: within ±24 per channel.
    CHECK(std::abs(c.r - r) < 24);
    CHECK(std::abs(c.g - g) < 24);
    CHECK(std::abs(c.b - b) < 24);
}

} // namespace

TEST_CASE("X11 capture: the viewer decodes the colour of the window on screen", "[capture][x11]") {
    Xvfb x(640, 360);
    x.solid_window(0, 0, 640, 360, 0xE01E2A);  // a red
    ScopedEnv d("DISPLAY", x.display().c_str()), w("WAYLAND_DISPLAY", nullptr), s("XDG_SESSION_TYPE", nullptr);

    HostConfig config = x11_config();
    config.source = "auto";  // X11 with no Wayland session: auto takes ximagesrc
    auto capture = capture::make_capture_source(config);
    CHECK(capture->name() == "x11");
    CHECK(capture->describe()["width"] == 640);
    CHECK(capture->describe()["height"] == 360);

    Decoded d1 = capture_for(config, 2s, false);
    CHECK(d1.width == 640);
    CHECK(d1.height == 360);
    CHECK(d1.frames >= 30);
    check_colour(d1.last_centre, 0xE0, 0x1E, 0x2A);

    // The picture is live: another colour on screen, another colour decoded.
    x.solid_window(0, 0, 640, 360, 0x20C040);
    Decoded d2 = capture_for(config, 1500ms, false);
    check_colour(d2.last_centre, 0x20, 0xC0, 0x40);
}

TEST_CASE("X11 --monitor N captures exactly that RandR monitor's region", "[capture][x11]") {
    Xvfb x(1280, 360);
    x.add_monitor("LEFT", 0, 0, 640, 360);
    x.add_monitor("RIGHT", 640, 0, 640, 360);
    x.solid_window(0, 0, 640, 360, 0xD02020);    // left half red
    x.solid_window(640, 0, 640, 360, 0x2040E0);  // right half blue
    ScopedEnv d("DISPLAY", x.display().c_str()), w("WAYLAND_DISPLAY", nullptr), s("XDG_SESSION_TYPE", nullptr);

    auto layout = capture::query_x11_layout();
    std::map<std::string, int> index;
    for (size_t i = 0; i < layout.monitors.size(); ++i) index[layout.monitors[i].name] = static_cast<int>(i);
    REQUIRE(index.count("LEFT"));
    REQUIRE(index.count("RIGHT"));

    Decoded right = capture_for(x11_config(index["RIGHT"]), 1500ms, false);
    CHECK(right.width == 640);
    CHECK(right.height == 360);
    check_colour(right.last_centre, 0x20, 0x40, 0xE0);

    Decoded left = capture_for(x11_config(index["LEFT"]), 1500ms, false);
    CHECK(left.width == 640);
    check_colour(left.last_centre, 0xD0, 0x20, 0x20);

    Decoded whole = capture_for(x11_config(-1), 1500ms, false);
    CHECK(whole.width == 1280);

    // A monitor that does not exist fails at once, listing the ones that do.
    try {
        capture::make_capture_source(x11_config(static_cast<int>(layout.monitors.size())));
        FAIL("a missing monitor should throw");
    } catch (const Error &e) {
        CHECK(e.code() == PP_ERR_INVALID_ARGUMENT);
        CHECK(contains(e.what(), "RIGHT 640x360+640+0"));
    }
}

TEST_CASE("X11 with an unreachable display is a clear no-capture-source error", "[capture][x11]") {
    ScopedEnv d("DISPLAY", ":254"), w("WAYLAND_DISPLAY", nullptr), s("XDG_SESSION_TYPE", nullptr);
    try {
        capture::make_capture_source(x11_config());
        FAIL("should throw");
    } catch (const Error &e) {
        CHECK(e.code() == PP_ERR_NO_CAPTURE_SOURCE);
        CHECK(contains(e.what(), "':254'"));
    }
}


namespace {

// A private PipeWire + WirePlumber + pipewire-pulse (tests/integration/audio_rig.sh) whose
// environment this process takes on for the scope; the rig's default sink is a null sink
// "speaker".
class AudioRig {
public:
    AudioRig() {
        std::string script = std::string(PP_SOURCE_ROOT) + "/tests/integration/audio_rig.sh";
        FILE *out = popen((script + " start").c_str(), "r");
        REQUIRE(out != nullptr);
        std::string text;
        char buf[512];
        while (size_t n = fread(buf, 1, sizeof buf, out)) text.append(buf, n);
        REQUIRE(pclose(out) == 0);
        std::istringstream lines(text);
        for (std::string line; std::getline(lines, line);) {
            if (line.rfind("export ", 0) == 0) {
                auto eq = line.find('=');
                std::string name = line.substr(7, eq - 7), value = line.substr(eq + 1);
                if (value.size() >= 2 && value.front() == '\'') value = value.substr(1, value.size() - 2);
                env_.push_back(std::make_unique<ScopedEnv>(name, value.c_str()));
                if (name == "PP_AUDIO_RIG_DIR") dir_ = value;
            } else if (line.rfind("unset ", 0) == 0) {
                std::istringstream names(line.substr(6));
                for (std::string name; names >> name;) env_.push_back(std::make_unique<ScopedEnv>(name, nullptr));
            }
        }
        REQUIRE(!dir_.empty());
        script_ = script;
    }
    ~AudioRig() {
        std::string cmd = script_ + " stop '" + dir_ + "'";
        CHECK(std::system(cmd.c_str()) == 0);
    }
    std::string pactl(const std::string &args) {
        FILE *out = popen(("pactl " + args).c_str(), "r");
        std::string text;
        char buf[256];
        while (out && fgets(buf, sizeof buf, out)) text += buf;
        if (out) pclose(out);
        while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
        return text;
    }

private:
    std::string script_, dir_;
    std::vector<std::unique_ptr<ScopedEnv>> env_;
};

// A tone app: an in-process GStreamer pipeline playing a sine into a Pulse sink.
class Tone {
public:
    Tone(int hz, const std::string &device = "") {
        std::string desc = "audiotestsrc is-live=true wave=sine volume=0.5 freq=" + std::to_string(hz) +
                           " ! pulsesink client-name=tone-" + std::to_string(hz) +
                           (device.empty() ? "" : " device=" + device);
        GError *err = nullptr;
        pipeline_.reset(gst_parse_launch(desc.c_str(), &err));
        REQUIRE(err == nullptr);
        REQUIRE(gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
        REQUIRE(gst_element_get_state(pipeline_.get(), nullptr, nullptr, 10 * GST_SECOND) == GST_STATE_CHANGE_SUCCESS);
    }
    ~Tone() { gst_element_set_state(pipeline_.get(), GST_STATE_NULL); }

private:
    media::ElementPtr pipeline_;
};

struct Warnings {
    std::mutex mutex;
    std::vector<std::string> lines;
    EventSink sink() {
        return [this](const Event &e) {
            if (e.level != PP_LOG_WARNING) return;
            std::lock_guard lock(mutex);
            lines.push_back(e.message);
        };
    }
};

} // namespace

TEST_CASE("system audio: the viewer hears the 440 Hz the default sink plays, and follows a new default",
          "[capture][audio]") {
    media::ensure_gst();
    Xvfb x(320, 180);
    ScopedEnv d("DISPLAY", x.display().c_str()), w("WAYLAND_DISPLAY", nullptr), s("XDG_SESSION_TYPE", nullptr);
    AudioRig rig;
    REQUIRE(rig.pactl("get-default-sink") == "speaker");
    Tone a440(440);  // into the default sink, "speaker"

    HostConfig config = x11_config();
    config.audio = true;
    Decoded heard = capture_for(config, 4s, true);
    INFO("peak " << heard.peak_hz << " Hz at " << heard.peak_db << " dB over " << heard.spectra << " windows");
    CHECK(heard.frames >= 60);
    REQUIRE(heard.spectra >= 8);
    CHECK(std::abs(heard.peak_hz - 440) <= 15);
    CHECK(heard.peak_db > -40);

    // A second sink playing 660 Hz becomes the default halfway through one share.
    REQUIRE(!rig.pactl("load-module module-null-sink sink_name=other").empty());
    Tone a660(660, "other");
    std::mutex log_mutex;
    std::string log;  // the capture's own account of where it listens
    auto started = SteadyClock::now();
    EventSink events = [&](const Event &e) {
        std::lock_guard lock(log_mutex);
        log += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started).count()) +
               " ms: " + e.message + "\n";
    };
    Decoded moved = capture_for(config, 8s, true, events, [&] {
        std::lock_guard lock(log_mutex);
        log += std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started).count()) +
               " ms: the test sets the default sink to 'other'\n";
        rig.pactl("set-default-sink other");
    });
    REQUIRE(moved.windows.size() >= 20);
    // Before: from the second second to the last whole window read before the switch (the last
    // one the prefix decodes to may be cut short). After: from 1 s past the switch to the end.
    size_t switched = moved.windows_before_midway;
    INFO(switched << " of " << moved.windows.size() << " windows were read before the switch");
    REQUIRE(switched >= 8);
    REQUIRE(moved.windows.size() >= switched + 8);
    // The other sink's 660 Hz counts as heard before the switch only where it stands out of the
    // spectrum around it (610 and 710 Hz). A sine shows as a narrow peak; a click from a start-up
    // glitch on a loaded machine raises every frequency alike (seen: 660 Hz at -53 dB in the
    // first windows with 610/710 Hz as high, and -97 dB once the capture ran steadily).
    auto standing_out = [&](size_t i) {
        return moved.level_at(i, 660) - std::max(moved.level_at(i, 610), moved.level_at(i, 710));
    };
    double early = -200, late = -200;
    std::string levels;
    for (size_t i = 0; i < moved.windows.size(); ++i)
        levels += std::to_string(static_cast<int>(moved.level_at(i, 660))) + "/" +
                  std::to_string(static_cast<int>(moved.level_at(i, 440))) + "/" +
                  std::to_string(static_cast<int>(std::max(moved.level_at(i, 610), moved.level_at(i, 710)))) + " ";
    for (size_t i = 4; i + 1 < switched; ++i)
        if (moved.level_at(i, 660) >= -60 && standing_out(i) >= 10) early = std::max(early, moved.level_at(i, 660));
    for (size_t i = switched + 4; i < moved.windows.size(); ++i) late = std::max(late, moved.level_at(i, 660));
    INFO("660 Hz / 440 Hz / 610-710 Hz per 250 ms window (dB): " << levels);
    INFO("capture log:\n" << log);
    INFO("660 Hz standing out before the switch: " << early << " dB, after: " << late << " dB");
    CHECK(early < -60);  // only the speaker's 440 Hz was captured
    CHECK(late > -40);   // the capture moved to the new default's monitor
    // The capture moved once, after the test's switch (a move before it would be a real leak).
    CHECK(log.find("default sink is now") > log.find("the test sets the default sink"));
}

TEST_CASE("system audio without an audio server: one warning, and the video still streams", "[capture][audio]") {
    media::ensure_gst();
    Xvfb x(320, 180);
    char tmpl[] = "/tmp/pp-no-audio.XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    ScopedEnv d("DISPLAY", x.display().c_str()), w("WAYLAND_DISPLAY", nullptr), s("XDG_SESSION_TYPE", nullptr);
    ScopedEnv runtime("XDG_RUNTIME_DIR", tmpl), server("PULSE_SERVER", (std::string("unix:") + tmpl + "/none").c_str());
    Warnings warnings;
    HostConfig config = x11_config();
    config.audio = true;
    auto source = media::make_source(config, warnings.sink(), capture::make_capture_source(config, warnings.sink()));
    for (int run = 0; run < 2; ++run) {  // two viewers in turn: two pipeline runs
        WakeFlag flag;
        auto reader = source->subscribe(flag.callback());
        auto bytes = concat(read_for(*reader, flag, 1500ms));
        auto decoded = decode_ts(bytes, false);
        CHECK(decoded.frames >= 20);
        reader.reset();
        // Past the grace period the pipeline stops; the next reader starts a new run.
        auto deadline = SteadyClock::now() + 30s;
        while (source->stats().value("running", true) && SteadyClock::now() < deadline)
            std::this_thread::sleep_for(50ms);
        REQUIRE_FALSE(source->stats().value("running", true));
    }
    std::lock_guard lock(warnings.mutex);
    for (const auto &line : warnings.lines) INFO(line);
    size_t audio_warnings = 0;
    for (const auto &line : warnings.lines) audio_warnings += contains(line, "no audio server");
    CHECK(audio_warnings == 1);
    std::filesystem::remove_all(tmpl);
}


#if __has_include(<libportal/portal.h>)
#include "capture/portal.hpp"

namespace {

std::string read_text(const std::filesystem::path &path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// The portal rig (tests/integration/portal_rig.sh): headless sway + xdg-desktop-portal(-wlr) +
// PipeWire as an unprivileged user. Its session bus admits only that user, so the capturing side
// runs as that user too: this same binary, running the hidden "[.portal-inner]" cases.
class PortalRig {
public:
    explicit PortalRig(const std::string &colour) {
        script_ = std::string(PP_SOURCE_ROOT) + "/tests/integration/portal_rig.sh";
        // The build's test-only xdpw shim: <build>/tests/unit/unit-capture → <build>/tests/integration.
        auto shim = std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path() / "integration" /
                    "libxdpw-shm-shim.so";
        REQUIRE(std::filesystem::exists(shim));
        FILE *out = popen(("PP_XDPW_SHIM='" + shim.string() + "' " + script_ + " start '" + colour + "'").c_str(), "r");
        REQUIRE(out != nullptr);
        std::string text;
        char buf[512];
        while (size_t n = fread(buf, 1, sizeof buf, out)) text.append(buf, n);
        int status = pclose(out);
        INFO(text);
        REQUIRE(status == 0);
        auto at = text.find("PP_PORTAL_RIG_DIR='");
        REQUIRE(at != std::string::npos);
        dir_ = text.substr(at + 19, text.find('\'', at + 19) - at - 19);
    }
    ~PortalRig() { std::system((script_ + " stop '" + dir_ + "'").c_str()); }
    const std::string &dir() const { return dir_; }
    // Runs this test binary's hidden case `name` as the rig's user; true when it passed.
    bool run_inner(const std::string &name, const std::string &env = "") {
        std::string self = std::filesystem::read_symlink("/proc/self/exe");
        std::string cmd = script_ + " as '" + dir_ + "' env " + env + " '" + self + "' '" + name + "' > '" + dir_ +
                          "/inner.log' 2>&1";
        int rc = std::system(cmd.c_str());
        UNSCOPED_INFO("inner case '" << name << "':\n" << read_text(dir_ + "/inner.log"));
        return rc == 0;
    }
    int prompts() const {
        std::string t = read_text(dir_ + "/prompts");
        return static_cast<int>(std::count(t.begin(), t.end(), '\n'));
    }
    void chooser(const char *answer) { std::ofstream(dir_ + "/chooser") << answer << "\n"; }
    std::filesystem::path token() const { return dir_ + "/state/pixelpass/screencast-restore-token"; }
    std::string logs() const {
        std::string all;
        for (const char *f : {"xdpw.log", "xdp.log", "sway.log"}) {
            std::string t = read_text(dir_ + "/" + f);
            if (t.size() > 3000) t = t.substr(t.size() - 3000);
            all += std::string("--- ") + f + "\n" + t;
        }
        return all;
    }

private:
    std::string script_, dir_;
};

bool portal_rig_possible() {
    for (const char *p : {"/usr/bin/sway", "/usr/bin/swaybg", "/usr/bin/grim", "/usr/libexec/xdg-desktop-portal",
                          "/usr/libexec/xdg-desktop-portal-wlr"})
        if (!std::filesystem::exists(p)) return false;
    return geteuid() == 0;  // it switches to an unprivileged user
}

} // namespace

// Runs as the rig's user (see PortalRig): shares the screen through the portal and checks the
// decoded colour given in PP_EXPECT_RGB.
TEST_CASE("portal share (inner)", "[.portal-inner]") {
    const char *want = std::getenv("PP_EXPECT_RGB");
    REQUIRE(want != nullptr);
    int r = 0, g = 0, b = 0;
    REQUIRE(std::sscanf(want, "%d,%d,%d", &r, &g, &b) == 3);
    HostConfig config = x11_config();
    config.source = "auto";  // a Wayland session: auto takes the portal
    auto capture = capture::make_capture_source(config);
    REQUIRE(capture->name() == "portal");
    std::vector<std::string> events;
    std::mutex events_mutex;
    EventSink log = [&](const Event &e) {
        std::lock_guard lock(events_mutex);
        events.push_back(e.message);
    };
    // wlroots sends a screencopy frame only when the output changes, and this headless desktop
    // is still: damage the whole output now and then, as a clock or a cursor would, without
    // changing what it shows. Not with `output … bg`: sway 1.7 answers every such command by
    // destroying its swaybg client and starting a new one, and until that one has drawn, the
    // output shows sway's grey clear colour (0.25) — a real grey desktop, captured and decoded
    // as 61,61,61, for seconds when the portal's 30 fps limit skips the redraw that follows.
    // Setting the workspace's gaps to their value re-arranges it: sway damages the whole output
    // and redraws the same background.
    std::atomic<bool> done{false};
    std::thread damage([&] {
        std::string cmd = "swaymsg gaps inner current set 0 >/dev/null 2>&1";
        while (!done) {
            std::system(cmd.c_str());
            for (int i = 0; i < 10 && !done; ++i) std::this_thread::sleep_for(100ms);
        }
    });
    // Joined on every way out: a failed REQUIRE in capture_for must not leave it joinable
    // (std::terminate, "terminate called without an active exception").
    struct StopDamage {
        std::atomic<bool> &done;
        std::thread &thread;
        ~StopDamage() {
            done = true;
            if (thread.joinable()) thread.join();
        }
    } stop_damage{done, damage};
    Decoded d = capture_for(config, 3s, false, log);
    done = true;
    damage.join();
    {
        std::lock_guard lock(events_mutex);
        for (const auto &line : events) WARN("event: " << line);
    }
    CHECK(d.width == 640);
    CHECK(d.height == 360);
    // A still screen: the compositor sends hardly any frames; keepalive + videorate keep 30 fps.
    CHECK(d.frames >= 60);
    check_colour(d.last_centre, r, g, b);
    // Every picture, not only the last, shows the desktop: a frame of another colour is one a
    // viewer would see (an unfilled buffer, a repeated stale frame, or the desktop itself changing).
    std::string off;
    for (size_t i = 0; i < d.centres.size(); ++i) {
        const Rgb &c = d.centres[i];
        if (std::abs(c.r - r) >= 24 || std::abs(c.g - g) >= 24 || std::abs(c.b - b) >= 24)
            off += " #" + std::to_string(i) + "=" + std::to_string(int(c.r)) + "," + std::to_string(int(c.g)) + "," +
                   std::to_string(int(c.b));
    }
    INFO("pictures of another colour (of " << d.centres.size() << "):" << off);
    CHECK(off.empty());
    CHECK(std::filesystem::exists(capture::portal_token_path()));
}

TEST_CASE("portal cancel (inner)", "[.portal-inner]") {
    HostConfig config = x11_config();
    config.source = "portal";
    auto capture = capture::make_capture_source(config);
    try {
        capture->open(media::CaptureParams{});
        FAIL("the chooser cancelled: open() should throw");
    } catch (const Error &e) {
        INFO(e.what());
        CHECK(e.code() == PP_ERR_CAPTURE_CANCELLED);
        CHECK(contains(e.what(), "cancelled"));
    }
}

TEST_CASE("Wayland portal: the viewer decodes the screen's colour; the restore token skips the dialog; cancel is "
          "a clear error", "[capture][portal]") {
    if (!portal_rig_possible())
        PP_SKIP_TEST("the portal rig needs root (to run the desktop as an unprivileged user), sway, swaybg, "
                     "grim, xdg-desktop-portal and xdg-desktop-portal-wlr");
    PortalRig rig("#e01e2a");
    struct LogsOnFailure {
        PortalRig &rig;
        ~LogsOnFailure() {
            if (std::uncaught_exceptions()) WARN(rig.logs());
        }
    } logs{rig};
    REQUIRE(rig.run_inner("portal share (inner)", "PP_EXPECT_RGB=224,30,42"));
    CHECK(rig.prompts() == 1);
    CHECK(std::filesystem::exists(rig.token()));

    // Second share: the stored token restores the choice; the chooser is not asked again.
    REQUIRE(rig.run_inner("portal share (inner)", "PP_EXPECT_RGB=224,30,42"));
    CHECK(rig.prompts() == 1);
    CHECK(!read_text(rig.token()).empty());  // the token the portal returned this time (1.16: the same one)

    // Forgotten token + a user who cancels: the dialog comes back and the share fails clearly.
    std::filesystem::remove(rig.token());
    rig.chooser("cancel");
    CHECK(rig.run_inner("portal cancel (inner)"));
    CHECK(rig.prompts() == 2);
}
#endif

#endif
