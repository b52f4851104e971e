// repair_summary: turns pp_repair's JSON report into the readable summary `pixelpass repair`
// prints by default (`--json` prints the report itself).
#pragma once

#include <string>

namespace pixelpass_cli {

// The summary text (several lines, ending in a newline). Throws std::exception on a report that
// is not the documented shape.
std::string repair_summary(const std::string &report_json);

// Whether the report says the audio setup is clean (the exit status: 0 when clean).
bool repair_clean(const std::string &report_json);

} // namespace pixelpass_cli
