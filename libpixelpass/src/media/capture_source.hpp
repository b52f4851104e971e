// media/capture_source: the seam between what is captured and how it is encoded. A capture
// source (test pattern here; portal and X11 in capture/) hands the media pipeline raw-video and
// raw-audio elements; the pipeline converts, paces, encodes and muxes them. It names GStreamer's
// element type without including GStreamer, so modules built without media still compile.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

typedef struct _GstElement GstElement;

namespace pp::media {

// Owns one full (not floating) reference to a GStreamer element.
struct ElementUnref {
    void operator()(GstElement *element) const;
};
using ElementPtr = std::unique_ptr<GstElement, ElementUnref>;

// What the pipeline will do with the source's output; sources may use it (e.g. to pick a size).
struct CaptureParams {
    unsigned fps = 30;        // the pipeline's constant output rate
    unsigned max_height = 0;  // the pipeline downscales above this; 0 = native size
    bool audio = true;        // false: make_audio() is not called
    std::vector<std::string> apps;  // share only these applications' audio (empty = all)
    int monitor = -1;
};

class CaptureSource {
public:
    virtual ~CaptureSource() = default;
    // "test", "portal", "x11": for describe() and messages.
    virtual std::string name() const = 0;
    // Prepares one run of the pipeline, e.g. opens the ScreenCast portal session (may block while
    // the user chooses). Throws pp::Error (PP_ERR_CAPTURE_CANCELLED, PP_ERR_NO_CAPTURE_SOURCE, ...).
    virtual void open(const CaptureParams &) {}
    // A new element (typically a bin) with one always "src" pad that produces raw video; the
    // pipeline adds it to its bin. A source that delivers frames only
    // on damage must repeat its last frame at least every 1/fps (pipewiresrc keepalive-time):
    // videorate turns that into a constant rate but cannot invent frames that never arrive.
    virtual ElementPtr make_video(const CaptureParams &) = 0;
    // Same for raw audio; nullptr when the source has none.
    virtual ElementPtr make_audio(const CaptureParams &) = 0;
    // Ends a run after the pipeline stopped (closes the session, removes a null sink, ...).
    virtual void close() {}
    // Best-known facts for describe() before the first caps arrive: {"width", "height"} or {}.
    virtual nlohmann::json describe() const { return nlohmann::json::object(); }
};

// The built-in test source: a moving SMPTE pattern with the capture wall-clock time burnt in
// (HH:MM:SS.mmm, for latency measurements) and a frame counter, plus a 1 Hz tick tone. It is
// 1280x720, or 16:9 at `max_height` when that is not 0 (so it is never rendered big only to be
// scaled down).
std::unique_ptr<CaptureSource> make_test_source(unsigned max_height = 0);

} // namespace pp::media
