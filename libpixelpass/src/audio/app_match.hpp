// audio/app_match: which playback streams `--app NAME` means. A stream matches when its
// application.name or application.process.binary equals one of the names, ignoring ASCII case
// ("Firefox" and "firefox" are one app; "fire" is not firefox: a prefix would widen the share).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace pp::audio {

// The wanted name that `props` (a node's properties) matches, or "" when none does.
std::string app_match(const std::map<std::string, std::string, std::less<>> &props,
                      const std::vector<std::string> &wanted);

// Checks the names given to --app; throws PP_ERR_INVALID_ARGUMENT for an empty one.
void check_app_names(const std::vector<std::string> &wanted);

} // namespace pp::audio
