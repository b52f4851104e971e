#include "capture/capture.hpp"

#include "common/error.hpp"

namespace pp::capture {

std::unique_ptr<media::CaptureSource> make_capture_source(const HostConfig &config) {
    const std::string &name = config.source;
    if (name == "test") return media::make_test_source(config.max_height);
    if (name == "portal" || name == "x11" || name == "auto" || name.empty())
        throw Error(PP_ERR_UNSUPPORTED, "screen capture ('" + (name.empty() ? std::string("auto") : name) +
                                            "') is not available in this build yet: use --source test");
    throw Error(PP_ERR_INVALID_ARGUMENT,
                "unknown source '" + name + "': use auto, portal, x11 or test");
}

} // namespace pp::capture
