#include "audio/modargs.hpp"

namespace pp::audio {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

std::optional<ModuleArgs> parse_pulseaudio(std::string_view args) {
    ModuleArgs out;
    size_t i = 0;
    const size_t n = args.size();
    while (true) {
        while (i < n && is_space(args[i])) ++i;
        if (i == n) return out;
        if (args[i] == '=') return std::nullopt;  // a value without a key
        size_t key_start = i;
        while (i < n && args[i] != '=') {
            if (is_space(args[i])) return std::nullopt;  // a bare word: no '='
            ++i;
        }
        if (i == n) return std::nullopt;
        std::string key(args.substr(key_start, i - key_start));
        ++i;  // '='

        std::string value;
        char quote = 0;
        if (i < n && (args[i] == '"' || args[i] == '\'')) quote = args[i++];
        bool closed = quote == 0;
        while (i < n) {
            char c = args[i];
            if (quote ? c == quote : is_space(c)) {
                ++i;
                closed = true;
                break;
            }
            if (c == '\\') {
                if (++i == n) return std::nullopt;  // a trailing backslash escapes nothing
                c = args[i];
            }
            value.push_back(c);
            ++i;
        }
        if (!closed) return std::nullopt;  // unterminated quote
        if (!out.emplace(std::move(key), std::move(value)).second) return std::nullopt;
    }
}

ModuleArgs parse_pipewire_pulse(std::string_view args) {
    ModuleArgs out;
    size_t i = 0;
    const size_t n = args.size();
    while (i < n) {
        while (i < n && is_space(args[i])) ++i;
        size_t eq = args.find('=', i);
        if (eq == std::string_view::npos) break;
        std::string key(args.substr(i, eq - i));
        i = eq + 1;
        char end = ' ';
        if (i < n && (args[i] == '"' || args[i] == '\'')) end = args[i++];
        std::string value;
        while (i < n && args[i] != end) {
            if (args[i] == '\\' && ++i == n) break;
            value.push_back(args[i++]);
        }
        if (i < n) ++i;  // the closing quote or space
        out[std::move(key)] = std::move(value);
    }
    return out;
}

} // namespace

std::optional<ModuleArgs> parse_module_args(std::string_view args, ArgsDialect dialect) {
    if (dialect == ArgsDialect::pipewire_pulse) return parse_pipewire_pulse(args);
    return parse_pulseaudio(args);
}

ArgsDialect args_dialect_of(std::string_view server_name) {
    return server_name.find("on PipeWire") != std::string_view::npos ? ArgsDialect::pipewire_pulse
                                                                       : ArgsDialect::pulseaudio;
}

} // namespace pp::audio
