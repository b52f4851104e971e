#include "audio/app_match.hpp"

#include "common/error.hpp"

namespace pp::audio {

namespace {

bool same_ignoring_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

} // namespace

std::string app_match(const std::map<std::string, std::string, std::less<>> &props,
                      const std::vector<std::string> &wanted) {
    for (const char *key : {"application.name", "application.process.binary"}) {
        auto it = props.find(key);
        if (it == props.end() || it->second.empty()) continue;
        for (const auto &name : wanted)
            if (same_ignoring_case(it->second, name)) return name;
    }
    return "";
}

void check_app_names(const std::vector<std::string> &wanted) {
    for (const auto &name : wanted)
        if (name.find_first_not_of(" \t") == std::string::npos)
            throw Error(PP_ERR_INVALID_ARGUMENT, "--app needs an application name (as in `pactl list "
                                                 "sink-inputs`: application.name or application.process.binary)");
}

} // namespace pp::audio
