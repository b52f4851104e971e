// demo_summary: turns pp_demo_run's JSON report into the lines `pixelpass demo` prints by default
// (`--json` prints the report itself).
#pragma once

#include <string>

namespace pixelpass_cli {

// The summary text (several lines, ending in a newline). Throws std::exception on a report that
// is not the documented shape.
std::string demo_summary(const std::string &report_json);

// Whether the demo showed a healthy stream (the exit status: 0 when it did).
bool demo_ok(const std::string &report_json);

} // namespace pixelpass_cli
