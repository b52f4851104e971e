#include "repair_summary.hpp"

#include <nlohmann/json.hpp>

#include <set>
#include <string>

namespace pixelpass_cli {

namespace {

using json = nlohmann::json;

std::string plural(size_t n, const char *one, const char *many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string str_or(const json &j, const char *key, const char *fallback = "?") {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// "loopback module #536870915 (source=pixelpass_capture_4242.monitor sink=speaker)"
std::string describe(const json &item) {
    std::string kind = str_or(item, "kind");
    std::string id = item.contains("id") && !item["id"].is_null() ? item["id"].dump() : "";
    if (kind == "loopback") {
        std::string ends;
        for (const char *end : {"source", "sink"})
            if (item.contains(end)) ends += std::string(ends.empty() ? "" : " ") + end + "=" + str_or(item, end);
        return "loopback module #" + id + (ends.empty() ? "" : " (" + ends + ")");
    }
    if (kind == "sink") return "sink " + str_or(item, "name") + " (module #" + id + ")";
    if (kind == "node")
        return "PipeWire node " + str_or(item, "name") + " (#" + id +
               (item.value("linger", false) ? ", lingering)" : ")");
    if (kind == "restore-target")
        return "WirePlumber's remembered target " + str_or(item, "name") + " -> " + str_or(item, "target");
    return kind + " " + str_or(item, "name");
}

} // namespace

bool repair_clean(const std::string &report_json) { return json::parse(report_json).at("clean").get<bool>(); }

std::string repair_summary(const std::string &report_json) {
    json r = json::parse(report_json);
    bool dry = r.at("dry_run").get<bool>();
    const json &removed = r.at("removed"), &skipped = r.at("skipped"), &failed = r.at("failed");
    std::string out;

    for (const auto &item : removed)
        out += std::string(dry ? "would remove " : "removed ") + describe(item) + ": owner " +
               std::to_string(item.value("pid", 0)) + " is gone\n";
    for (const auto &item : failed)
        out += "FAILED to remove " + describe(item) + ": " + str_or(item, "reason") + "\n";
    std::set<long long> live;
    for (const auto &item : skipped) {
        out += "kept " + describe(item) + ": " + str_or(item, "reason") + "\n";
        if (item.value("pid", 0) > 0) live.insert(item.value("pid", 0));
    }

    if (removed.empty() && failed.empty())
        out += "nothing to repair";
    else if (dry)
        out += "dry run: would remove " + plural(removed.size(), "orphaned object", "orphaned objects") +
               "; run `pixelpass repair` to remove them";
    else if (failed.empty())
        out += "removed " + plural(removed.size(), "orphaned object", "orphaned objects");
    else
        out += "removed " + plural(removed.size(), "orphaned object", "orphaned objects") + ", " +
               std::to_string(failed.size()) + " could not be removed";
    if (!skipped.empty())
        out += "; kept " + plural(skipped.size(), "object", "objects") + " of " +
               plural(live.size(), "live process", "live processes");
    out += "\n";

    const json &def = r.value("default_sink", json::object());
    if (def.is_object() && def.value("before", json()).is_string() && def.value("after", json()).is_string() &&
        def["before"] != def["after"])
        out += "the default sink changed from " + def["before"].get<std::string>() + " to " +
               def["after"].get<std::string>() + " (it was a removed orphan)\n";
    return out;
}

} // namespace pixelpass_cli
