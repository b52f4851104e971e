// libFuzzer target for the host's answer to GET /link (ratecontrol/link_report): what the viewer
// reads from whoever answers at the ticket's address. Arbitrary text parses or is refused without
// throwing; what parses is consistent (too_poor agrees with the reason, rates within bounds),
// survives a round trip through to_json, and feeding it to the viewer's verdict never throws.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ratecontrol/link_report.hpp"

namespace rc = pp::ratecontrol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    auto report = rc::parse_link_report(text);
    if (!report) return 0;
    for (unsigned kbps : {report->receive_kbps, report->bitrate_kbps, report->floor_kbps, report->max_kbps})
        if (kbps > 10'000'000) std::abort();
    auto again = rc::parse_link_report(rc::to_json(*report).dump());
    if (!again || again->poorness != report->poorness || again->receive_kbps != report->receive_kbps ||
        again->bitrate_kbps != report->bitrate_kbps || again->floor_kbps != report->floor_kbps ||
        again->max_kbps != report->max_kbps || again->adaptive != report->adaptive ||
        again->measured != report->measured)
        std::abort();
    rc::PathVerdict verdict;
    for (int i = 0; i < 4; ++i)
        if (auto notice = verdict.update(i % 2 ? *report : rc::LinkReport{}); notice && notice->message.empty())
            std::abort();
    (void)verdict.stats().dump();
    return 0;
}
