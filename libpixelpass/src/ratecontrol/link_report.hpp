// ratecontrol/link_report: what the host tells one viewer about its own path (GET /link), and the
// viewer's reading of it. Only the host knows whether a path is too poor: it sees the floor, the
// encoder's bitrate and the backlog; the viewer sees only bytes, which are also few when the
// picture is simply still. So the host answers each viewer with the rate controller's verdict on
// it, and the viewer turns a change of verdict into one plain sentence for its user.
// Pure logic, no I/O; the parser reads what the host sent (outside input, fuzzed:
// tests/fuzz/link_report_fuzz.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace pp::ratecontrol {

class Controller;

// Why a path cannot carry the stream.
enum class Poorness {
    none,
    below_floor,         // it cannot carry even the floor bitrate: the encoder cannot go lower
    slower_than_others,  // far below the other viewers: the encoder is not lowered for it
};

struct LinkReport {
    bool adaptive = false;   // the host adapts its bitrate to the viewers (false: fixed bitrate)
    bool measured = false;   // the host has measured this viewer's path (it streams)
    Poorness poorness = Poorness::none;
    unsigned receive_kbps = 0;  // what the path delivered lately
    unsigned bitrate_kbps = 0;  // the encoder's current video bitrate
    unsigned floor_kbps = 0;
    unsigned max_kbps = 0;      // the configured bitrate

    bool too_poor() const { return poorness != Poorness::none; }
};

// Host side: the report for viewer `id` from the controller's state (`rate` null: the bitrate is
// fixed, nothing is measured), with the bitrate the encoder really runs at.
LinkReport report_for(const Controller *rate, uint64_t id, unsigned bitrate_kbps);

nlohmann::json to_json(const LinkReport &r);
const char *poorness_name(Poorness p);

// Viewer side: nullopt when the text is not such a report (not a JSON object, wrong types,
// an unknown reason, a rate outside 0..10^7 kbit/s).
std::optional<LinkReport> parse_link_report(std::string_view text);

// The viewer's verdict over successive reports. A path is called too poor at the first report
// that says so; it is called fine again only after `kRecoveredReports` reports in a row say so, so
// a path at the edge does not flap the message.
class PathVerdict {
public:
    static constexpr unsigned kRecoveredReports = 3;

    struct Notice {
        bool too_poor;        // the new verdict
        std::string message;  // one sentence for the user
    };

    // A new report: the notice to give when the verdict changed.
    std::optional<Notice> update(const LinkReport &r);

    bool too_poor() const { return too_poor_; }
    uint64_t reports() const { return reports_; }
    uint64_t times_too_poor() const { return times_too_poor_; }
    const std::optional<LinkReport> &last() const { return last_; }
    // {"too_poor", "reason", "receive_kbps", "bitrate_kbps", "floor_kbps", "max_kbps", "adaptive",
    //  "measured", "reports", "times_too_poor"}; {"reports": 0} before the first report.
    nlohmann::json stats() const;

private:
    bool too_poor_ = false;
    Poorness verdict_ = Poorness::none;
    unsigned fine_in_a_row_ = 0;
    uint64_t reports_ = 0, times_too_poor_ = 0;
    std::optional<LinkReport> last_;
};

} // namespace pp::ratecontrol
