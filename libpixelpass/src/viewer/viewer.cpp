#include "viewer/viewer.hpp"

#include "common/error.hpp"

namespace pp {

Viewer::Viewer(ViewerConfig config, EventSink events)
    : config_(std::move(config)), events_(std::move(events)), ticket_(ticket::decode(config_.ticket_text)) {
    throw Error(PP_ERR_UNSUPPORTED,
                "viewing is not implemented yet: the QUIC tunnel lands with the tunnel issue");
}

Viewer::~Viewer() = default;

std::string Viewer::url() const { throw Error(PP_ERR_STATE, "viewer is not connected"); }
std::string Viewer::stats_json() const { return "{}"; }
pp_result Viewer::wait(int) { return PP_ERR_STATE; }

} // namespace pp
