#include "ratecontrol/link_report.hpp"

#include <algorithm>
#include <cmath>

#include "ratecontrol/ratecontrol.hpp"

namespace pp::ratecontrol {

namespace {

// No path carries more; a larger number is not a rate but garbage.
constexpr int64_t kMaxKbps = 10'000'000;

unsigned kbps(double v) { return static_cast<unsigned>(std::lround(std::clamp<double>(v, 0, kMaxKbps))); }

// One optional field: absent leaves `out` alone; present with another type fails.
bool read_bool(const nlohmann::json &j, const char *key, bool &out) {
    auto it = j.find(key);
    if (it == j.end()) return true;
    if (!it->is_boolean()) return false;
    out = it->get<bool>();
    return true;
}

bool read_kbps(const nlohmann::json &j, const char *key, unsigned &out) {
    auto it = j.find(key);
    if (it == j.end()) return true;
    if (!it->is_number_integer()) return false;
    // Unsigned values above int64's range read as negative here and are refused with them.
    int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(kMaxKbps) ? -1 : it->get<int64_t>();
    if (v < 0 || v > kMaxKbps) return false;
    out = static_cast<unsigned>(v);
    return true;
}

std::optional<Poorness> poorness_from(std::string_view name) {
    for (Poorness p : {Poorness::none, Poorness::below_floor, Poorness::slower_than_others})
        if (name == poorness_name(p)) return p;
    return std::nullopt;
}

std::string poor_message(const LinkReport &r) {
    std::string carried = "the path from the host carries about " + std::to_string(r.receive_kbps) + " kbit/s";
    if (r.poorness == Poorness::below_floor)
        return carried + ", too little for this stream even at its lowest bitrate (" + std::to_string(r.floor_kbps) +
               " kbit/s): the picture skips ahead to keep up; a faster or less lossy network is needed";
    return carried + ", far less than the other viewers get: the host keeps the stream at " +
           std::to_string(r.bitrate_kbps) + " kbit/s for them, and this picture skips ahead to keep up";
}

} // namespace

const char *poorness_name(Poorness p) {
    switch (p) {
    case Poorness::below_floor: return "below_floor";
    case Poorness::slower_than_others: return "slower_than_others";
    case Poorness::none: break;
    }
    return "none";
}

LinkReport report_for(const Controller *rate, uint64_t id, unsigned bitrate_kbps) {
    LinkReport r;
    r.bitrate_kbps = bitrate_kbps;
    if (!rate) return r;
    r.adaptive = true;
    r.floor_kbps = rate->options().floor_kbps;
    r.max_kbps = rate->options().max_kbps;
    for (const auto &v : rate->viewers()) {
        if (v.id != id) continue;
        r.measured = true;
        r.receive_kbps = kbps(v.delivered_kbps());
        r.poorness = v.below_floor ? Poorness::below_floor
                     : !v.followed ? Poorness::slower_than_others
                                   : Poorness::none;
    }
    return r;
}

nlohmann::json to_json(const LinkReport &r) {
    return {{"adaptive", r.adaptive},         {"measured", r.measured},         {"too_poor", r.too_poor()},
            {"reason", poorness_name(r.poorness)}, {"receive_kbps", r.receive_kbps}, {"bitrate_kbps", r.bitrate_kbps},
            {"floor_kbps", r.floor_kbps},     {"max_kbps", r.max_kbps}};
}

std::optional<LinkReport> parse_link_report(std::string_view text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    LinkReport r;
    bool too_poor = false;
    if (!read_bool(j, "adaptive", r.adaptive) || !read_bool(j, "measured", r.measured) ||
        !read_bool(j, "too_poor", too_poor) || !read_kbps(j, "receive_kbps", r.receive_kbps) ||
        !read_kbps(j, "bitrate_kbps", r.bitrate_kbps) || !read_kbps(j, "floor_kbps", r.floor_kbps) ||
        !read_kbps(j, "max_kbps", r.max_kbps))
        return std::nullopt;
    if (auto it = j.find("reason"); it != j.end()) {
        if (!it->is_string()) return std::nullopt;
        auto p = poorness_from(it->get_ref<const std::string &>());
        if (!p) return std::nullopt;
        r.poorness = *p;
    }
    // The flag and the reason must agree: a report that contradicts itself is not one.
    if (too_poor != r.too_poor()) return std::nullopt;
    return r;
}

std::optional<PathVerdict::Notice> PathVerdict::update(const LinkReport &r) {
    ++reports_;
    last_ = r;
    if (r.too_poor()) {
        fine_in_a_row_ = 0;
        verdict_ = r.poorness;
        if (too_poor_) return std::nullopt;
        too_poor_ = true;
        ++times_too_poor_;
        return Notice{true, poor_message(r)};
    }
    // Unmeasured (no stream right now) says nothing about the path.
    if (!too_poor_ || !r.measured || ++fine_in_a_row_ < kRecoveredReports) return std::nullopt;
    too_poor_ = false;
    verdict_ = Poorness::none;
    fine_in_a_row_ = 0;
    return Notice{false, "the path from the host carries the stream again (about " + std::to_string(r.receive_kbps) +
                             " kbit/s, stream at " + std::to_string(r.bitrate_kbps) + " kbit/s)"};
}

nlohmann::json PathVerdict::stats() const {
    if (!last_) return {{"reports", 0}, {"too_poor", false}};
    nlohmann::json j = to_json(*last_);
    // The verdict, steadier than the last report alone.
    j["too_poor"] = too_poor_;
    j["reason"] = poorness_name(verdict_);
    j["reports"] = reports_;
    j["times_too_poor"] = times_too_poor_;
    return j;
}

} // namespace pp::ratecontrol
