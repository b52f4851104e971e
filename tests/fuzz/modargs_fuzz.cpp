// libFuzzer target for PulseAudio module argument strings (what `pactl list modules` shows for a
// module another program loaded; repair reads them). Both dialects: arbitrary text parses or is
// refused without a crash, and what parses writes back (every value double-quoted, '"' and '\'
// escaped) into a string that parses to the same keys and values.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "audio/modargs.hpp"

namespace audio = pp::audio;

namespace {
std::string quoted(const std::string &v) {
    std::string out = "\"";
    for (char c : v) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

void round_trip(const audio::ModuleArgs &args, audio::ArgsDialect dialect) {
    std::string text;
    for (const auto &[k, v] : args) text += (text.empty() ? "" : " ") + k + "=" + quoted(v);
    auto again = audio::parse_module_args(text, dialect);
    if (!again || *again != args) std::abort();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    if (auto pa = audio::parse_module_args(text, audio::ArgsDialect::pulseaudio)) {
        for (const auto &[k, v] : *pa)
            if (k.empty() || k.find_first_of(" \t\n\v\f\r=") != std::string::npos) std::abort();
        round_trip(*pa, audio::ArgsDialect::pulseaudio);
    }
    auto pw = audio::parse_module_args(text, audio::ArgsDialect::pipewire_pulse);
    if (!pw) std::abort();  // pipewire-pulse never refuses
    for (const auto &[k, v] : *pw) {
        if (k.find('=') != std::string::npos) std::abort();
        // A key that starts with whitespace cannot be written back (the parser skips it); the
        // parser never makes one.
        if (!k.empty() && (k[0] == ' ' || k[0] == '\t' || k[0] == '\n' || k[0] == '\v' || k[0] == '\f' || k[0] == '\r'))
            std::abort();
    }
    round_trip(*pw, audio::ArgsDialect::pipewire_pulse);
    return 0;
}
