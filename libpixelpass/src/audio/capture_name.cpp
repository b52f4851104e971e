#include "audio/capture_name.hpp"

#include <cerrno>
#include <csignal>
#include <fstream>
#include <limits>

namespace pp::audio {

std::string capture_sink_name(pid_t pid) { return std::string(kCapturePrefix) + std::to_string(pid); }

std::optional<pid_t> capture_owner(std::string_view name, bool allow_monitor) {
    if (name.substr(0, kCapturePrefix.size()) != kCapturePrefix) return std::nullopt;
    std::string_view digits = name.substr(kCapturePrefix.size());
    if (allow_monitor && digits.size() > kMonitorSuffix.size() &&
        digits.substr(digits.size() - kMonitorSuffix.size()) == kMonitorSuffix)
        digits.remove_suffix(kMonitorSuffix.size());
    if (digits.empty() || digits.size() > 10 || digits[0] == '0') return std::nullopt;
    long long value = 0;
    for (char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + (c - '0');
    }
    if (value > std::numeric_limits<pid_t>::max()) return std::nullopt;
    return static_cast<pid_t>(value);
}

bool process_alive(pid_t pid) {
    if (pid <= 0) return false;
    if (::kill(pid, 0) != 0 && errno != EPERM) return false;
    // /proc/<pid>/stat: "pid (comm) S ...": the state follows the last ')' (comm may hold one).
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;  // no /proc: trust kill()
    auto close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size()) return true;
    return line[close + 2] != 'Z';
}

} // namespace pp::audio
