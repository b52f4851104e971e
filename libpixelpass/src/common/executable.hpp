// common/executable: finds the helper programs pixelpass drives (players, clipboard tools) the way
// a shell would, so what we report as installed is what the user can run.
#pragma once

#include <optional>
#include <string>

namespace pp {

// The first executable `name` in $PATH (a default system path when PATH is unset), or nothing.
std::optional<std::string> find_executable(const std::string &name);

} // namespace pp
