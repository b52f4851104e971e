// The built-in `test` capture source: videotestsrc + a burnt-in capture clock, audiotestsrc ticks.
#include <ctime>
#include <string>

#include "common/error.hpp"
#include "media/capture_source.hpp"
#include "media/gst.hpp"

namespace pp::media {

namespace {

// The pipeline runs on a CLOCK_REALTIME clock, so base time + running time of a frame is the
// Unix time it was captured. Writing it into the picture lets a later stage (or a camera pointed
// at the viewer's screen) measure glass-to-glass latency.
GstPadProbeReturn stamp_frame(GstPad *pad, GstPadProbeInfo *info, gpointer overlay) {
    GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
    if (!buffer || !GST_BUFFER_PTS_IS_VALID(buffer)) return GST_PAD_PROBE_OK;
    GstElement *element = GST_ELEMENT(GST_PAD_PARENT(pad));
    GstClockTime unix_ns = gst_element_get_base_time(element) + GST_BUFFER_PTS(buffer);
    time_t seconds = static_cast<time_t>(unix_ns / GST_SECOND);
    unsigned millis = static_cast<unsigned>((unix_ns % GST_SECOND) / GST_MSECOND);
    struct tm local {};
    localtime_r(&seconds, &local);
    char text[64];
    snprintf(text, sizeof text, "%02d:%02d:%02d.%03u  #%llu", local.tm_hour, local.tm_min, local.tm_sec,
             millis, static_cast<unsigned long long>(GST_BUFFER_OFFSET(buffer)));
    g_object_set(overlay, "text", text, nullptr);
    return GST_PAD_PROBE_OK;
}

ElementPtr ghosted_bin(const char *name, std::initializer_list<GstElement *> chain) {
    ElementPtr bin = sink_ref(gst_bin_new(name));
    add_and_link(GST_BIN(bin.get()), chain);
    GstPtr<GstPad> src(gst_element_get_static_pad(*(chain.end() - 1), "src"));
    gst_element_add_pad(bin.get(), gst_ghost_pad_new("src", src.get()));
    return bin;
}

class TestSource final : public CaptureSource {
public:
    explicit TestSource(unsigned max_height)
        : width_(((max_height ? max_height : 720) * 16 / 9) & ~1u), height_((max_height ? max_height : 720) & ~1u) {}

    std::string name() const override { return "test"; }

    ElementPtr make_video(const CaptureParams &params) override {
        ElementPtr src = make_element("videotestsrc", "test-video");
        set_property(src.get(), "is-live", "true");
        set_property(src.get(), "pattern", "smpte");
        set_property(src.get(), "horizontal-speed", "4");  // the bars scroll: motion for the encoder
        ElementPtr caps = make_capsfilter("video/x-raw,width=" + std::to_string(width_) +
                                           ",height=" + std::to_string(height_) +
                                           ",framerate=" + std::to_string(params.fps) + "/1,pixel-aspect-ratio=1/1");
        ElementPtr overlay = make_element("textoverlay", "test-clock");
        set_property(overlay.get(), "font-desc", "Monospace Bold 18");
        set_property(overlay.get(), "valignment", "top");
        set_property(overlay.get(), "halignment", "left");
        set_property(overlay.get(), "shaded-background", "true");
        GstPtr<GstPad> sink(gst_element_get_static_pad(overlay.get(), "video_sink"));
        // The probe lives as long as the pad, and the pad as long as the overlay it points to.
        gst_pad_add_probe(sink.get(), GST_PAD_PROBE_TYPE_BUFFER, stamp_frame, overlay.get(), nullptr);
        return ghosted_bin("test-video-bin", {src.get(), caps.get(), overlay.get()});
    }

    ElementPtr make_audio(const CaptureParams &) override {
        ElementPtr src = make_element("audiotestsrc", "test-audio");
        set_property(src.get(), "is-live", "true");
        set_property(src.get(), "wave", "ticks");  // a short beep each second: audible A/V sync
        set_property(src.get(), "freq", "880");
        set_property(src.get(), "volume", "0.3");
        set_property(src.get(), "samplesperbuffer", "480");  // 10 ms blocks at 48 kHz
        // S16: GStreamer 1.22's float "ticks" read uninitialised memory (peaks of +172 dBFS once a
        // second under MALLOC_PERTURB_), and FFmpeg 5.1's AAC encoder can loop forever on such
        // samples: the share then hung at stop (a media_test soak run). The integer path is clean.
        ElementPtr caps = make_capsfilter("audio/x-raw,format=S16LE,rate=48000,channels=2");
        return ghosted_bin("test-audio-bin", {src.get(), caps.get()});
    }

    nlohmann::json describe() const override { return {{"width", width_}, {"height", height_}}; }

private:
    const unsigned width_, height_;
};

} // namespace

std::unique_ptr<CaptureSource> make_test_source(unsigned max_height) {
    return std::make_unique<TestSource>(max_height);
}

} // namespace pp::media
