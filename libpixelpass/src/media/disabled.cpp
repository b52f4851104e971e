// Built instead of the GStreamer files when the build has no media support (meson option
// `media` disabled or GStreamer not found): every entry point says so.
#include "common/error.hpp"
#include "media/decoder.hpp"
#include "media/media.hpp"

namespace pp::media {

namespace {
[[noreturn]] void unsupported() { throw Error(PP_ERR_UNSUPPORTED, "built without media support"); }
} // namespace

bool available() noexcept { return false; }

void ElementUnref::operator()(GstElement *) const {}

std::unique_ptr<fanout::FanoutSource> make_source(const HostConfig &, EventSink, std::unique_ptr<CaptureSource>) {
    unsupported();
}

std::unique_ptr<CaptureSource> make_test_source(unsigned) { unsupported(); }

EncoderChoice select_encoder(std::string_view) { unsupported(); }

void require_element(std::string_view) { unsupported(); }

nlohmann::json diagnose() { return {{"gstreamer", nullptr}, {"error", "built without media support"}}; }

nlohmann::json DecodeReport::to_json() const { return nlohmann::json::object(); }

struct TsDecoder::Impl {};
TsDecoder::TsDecoder() { unsupported(); }
TsDecoder::~TsDecoder() = default;
void TsDecoder::feed(std::span<const uint8_t>) { unsupported(); }
DecodeReport TsDecoder::finish(std::chrono::milliseconds) { unsupported(); }
DecodeReport TsDecoder::snapshot() const { unsupported(); }

} // namespace pp::media
