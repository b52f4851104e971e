// publish without media support: publishing needs GStreamer, so every entry point says so.
#include "common/error.hpp"
#include "publish/publisher.hpp"

namespace pp::publish {

class Publisher::Runner {};

void require_plugins(const std::vector<Target> &) {
    throw Error(PP_ERR_UNSUPPORTED, "--publish needs media support: this build has no GStreamer");
}

Publisher::Publisher(std::vector<Target>, std::shared_ptr<stream::Source>, EventSink) {
    require_plugins({});
}

Publisher::~Publisher() = default;

nlohmann::json Publisher::stats() const { return nlohmann::json::array(); }

} // namespace pp::publish
