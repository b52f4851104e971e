// audio/capture_name: the naming contract for pixelpass capture sinks, `pixelpass_capture_<pid>`.
// The owner's PID in the name is what lets `repair` tell a dead process's leftovers from a live
// one's, without any registry of its own that could itself be left behind.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace pp::audio {

inline constexpr std::string_view kCapturePrefix = "pixelpass_capture_";
inline constexpr std::string_view kMonitorSuffix = ".monitor";

// "pixelpass_capture_<pid>".
std::string capture_sink_name(pid_t pid);

// The owner PID when `name` is exactly a capture sink name (canonical decimal, no sign, no leading
// zero), or — with allow_monitor — that sink's Pulse monitor source "<sink>.monitor".
std::optional<pid_t> capture_owner(std::string_view name, bool allow_monitor = false);

// Whether `pid` names a process that still runs in this PID namespace. A zombie counts as dead:
// its connections, and with them every object it owned, are already gone. EPERM counts as alive
// (another user's process exists; never touch what might be in use).
bool process_alive(pid_t pid);

} // namespace pp::audio
