// Which Debian 12 package ships each GStreamer element we use, so a missing element turns into
// "install <package>" instead of a bare factory name. Built with and without media support.
#include <array>
#include <string>
#include <string_view>
#include <utility>

#include "media/media.hpp"

namespace pp::media {

namespace {

constexpr std::array<std::pair<std::string_view, std::string_view>, 48> kPackages{{
    // core
    {"capsfilter", "libgstreamer1.0-0"},
    {"queue", "libgstreamer1.0-0"},
    {"fakesink", "libgstreamer1.0-0"},
    {"identity", "libgstreamer1.0-0"},
    {"tee", "libgstreamer1.0-0"},
    {"filesrc", "libgstreamer1.0-0"},
    {"filesink", "libgstreamer1.0-0"},
    // base
    {"videotestsrc", "gstreamer1.0-plugins-base"},
    {"audiotestsrc", "gstreamer1.0-plugins-base"},
    {"videoconvert", "gstreamer1.0-plugins-base"},
    {"videoscale", "gstreamer1.0-plugins-base"},
    {"videorate", "gstreamer1.0-plugins-base"},
    {"audioconvert", "gstreamer1.0-plugins-base"},
    {"audioresample", "gstreamer1.0-plugins-base"},
    {"audiorate", "gstreamer1.0-plugins-base"},
    {"appsink", "gstreamer1.0-plugins-base"},
    {"appsrc", "gstreamer1.0-plugins-base"},
    {"decodebin", "gstreamer1.0-plugins-base"},
    // pango (Debian puts it in gstreamer1.0-x)
    {"textoverlay", "gstreamer1.0-x"},
    {"timeoverlay", "gstreamer1.0-x"},
    {"clockoverlay", "gstreamer1.0-x"},
    // good
    {"aacparse", "gstreamer1.0-plugins-good"},
    {"ximagesrc", "gstreamer1.0-plugins-good"},
    {"pulsesrc", "gstreamer1.0-plugins-good"},
    // bad
    {"h264parse", "gstreamer1.0-plugins-bad"},
    {"mpegtsmux", "gstreamer1.0-plugins-bad"},
    {"tsdemux", "gstreamer1.0-plugins-bad"},
    {"openh264enc", "gstreamer1.0-plugins-bad"},
    {"openh264dec", "gstreamer1.0-plugins-bad"},
    {"voaacenc", "gstreamer1.0-plugins-bad"},
    {"vah264enc", "gstreamer1.0-plugins-bad"},
    {"nvh264enc", "gstreamer1.0-plugins-bad"},
    {"rtmp2sink", "gstreamer1.0-plugins-bad"},
    {"rtmp2src", "gstreamer1.0-plugins-bad"},
    {"srtsink", "gstreamer1.0-plugins-bad"},
    {"srtsrc", "gstreamer1.0-plugins-bad"},
    // ugly
    {"x264enc", "gstreamer1.0-plugins-ugly"},
    // libav
    {"avenc_aac", "gstreamer1.0-libav"},
    {"avdec_h264", "gstreamer1.0-libav"},
    {"avdec_aac", "gstreamer1.0-libav"},
    // others
    {"vaapih264enc", "gstreamer1.0-vaapi"},
    {"pipewiresrc", "gstreamer1.0-pipewire"},
    {"fdkaacenc", "gstreamer1.0-plugins-bad (built with fdk-aac; not in Debian)"},
    {"x265enc", "gstreamer1.0-plugins-bad"},
    {"matroskamux", "gstreamer1.0-plugins-good"},
    {"flvmux", "gstreamer1.0-plugins-good"},
    {"pngenc", "gstreamer1.0-plugins-good"},
    {"jpegenc", "gstreamer1.0-plugins-good"},
}};

} // namespace

std::string package_for(std::string_view element) {
    for (const auto &[name, package] : kPackages)
        if (name == element) return std::string(package);
    return {};
}

Error missing_element_error(std::string_view element) {
    std::string package = package_for(element);
    std::string message = "GStreamer element '" + std::string(element) + "' is missing: ";
    if (package.empty())
        message += "no Debian package is known for it (check `gst-inspect-1.0 " + std::string(element) + "`)";
    else
        message += "install " + package;
    return Error(PP_ERR_MISSING_PLUGIN, message);
}

} // namespace pp::media
