// repair: finds and removes audio-routing objects (pixelpass_capture_<pid> sinks, their
// loopbacks, remembered stream targets) left behind by pixelpass processes that died.
#pragma once

#include <string>

namespace pp::repair {

// Returns the JSON report. Throws pp::Error on failure.
std::string run(bool dry_run);

} // namespace pp::repair
