#include "capture/system_audio.hpp"

#include <chrono>

#include "common/error.hpp"
#include "media/gst.hpp"
#include "media/media.hpp"

#ifdef PP_HAVE_PULSE_CLIENT
#include "audio/pulse_client.hpp"
#endif

namespace pp::capture {

std::string SystemAudio::server_problem(unsigned timeout_ms) {
#ifdef PP_HAVE_PULSE_CLIENT
    std::string why;
    // Never autospawns: a share must not start a sound server behind the user's back.
    auto client = audio::PulseClient::connect(std::chrono::milliseconds(timeout_ms), &why);
    if (!client) return why.empty() ? "no PulseAudio or pipewire-pulse server answered" : why;
    return "";
#else
    (void)timeout_ms;
    return "this build has no PulseAudio client (libpulse was missing at build time)";
#endif
}

media::ElementPtr SystemAudio::make(const media::CaptureParams &params) {
    if (!params.audio) return nullptr;
    media::require_element("pulsesrc");
    if (std::string why = server_problem(); !why.empty()) {
        if (!warned_.exchange(true) && events_) {
            Event e;
            e.type = PP_EVENT_LOG;
            e.level = PP_LOG_WARNING;
            e.message = "no audio server (" + why + "): sharing video only";
            events_(e);
        }
        return nullptr;
    }
    media::ElementPtr bin = media::sink_ref(gst_bin_new("system-audio"));
    media::ElementPtr src = media::make_element("pulsesrc", "system-audio-src");
    // The default sink's monitor *by name*, not its current device: pipewire-pulse then leaves the
    // stream unpinned and WirePlumber moves it along when the default sink changes.
    media::set_property(src.get(), "device", "@DEFAULT_MONITOR@");
    media::set_property(src.get(), "client-name", "pixelpass");
    // 10 ms reads, 40 ms of server buffer: low latency without underruns on a loaded machine.
    media::set_property(src.get(), "latency-time", "10000");
    media::set_property(src.get(), "buffer-time", "40000");
    // The pipeline runs on its own realtime clock; the sound card's clock must not replace it.
    media::set_property(src.get(), "provide-clock", "false");
    media::set_property(src.get(), "do-timestamp", "true");
    media::ElementPtr caps = media::make_capsfilter("audio/x-raw,rate=48000,channels=2", "system-audio-caps");
    media::add_and_link(GST_BIN(bin.get()), {src.get(), caps.get()});
    media::GstPtr<GstPad> pad(gst_element_get_static_pad(caps.get(), "src"));
    gst_element_add_pad(bin.get(), gst_ghost_pad_new("src", pad.get()));
    return bin;
}

} // namespace pp::capture
