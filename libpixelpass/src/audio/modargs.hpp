// audio/modargs: parses a Pulse module argument string ("sink_name=x sink_properties='a=b'") the
// way the server that loaded the module parsed it, so repair reads what a module was really given
// instead of grepping text: quoted values may hold spaces, newlines and other keys' names.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pp::audio {

// The two servers read module arguments differently; what counts is the one holding the module.
enum class ArgsDialect {
    // PulseAudio (pulsecore/modargs.c): words split at any whitespace; a value is bare (to the
    // next whitespace), "double-" or 'single-quoted'; a backslash escapes the next character and
    // is removed; `key=` alone is the empty value. A bare word without '=', '=' without a key,
    // an unterminated quote, a trailing backslash or a repeated key make the string invalid.
    pulseaudio,
    // pipewire-pulse (module-protocol-pulse/module.c): a key runs to the next '=' (leading
    // whitespace skipped); a quoted value runs to its closing quote, a bare one to the next SPACE
    // character only (tabs and newlines belong to the value); backslash escapes as above; text
    // without a further '=' ends the list; a repeated key keeps the last value. Never invalid.
    pipewire_pulse,
};

using ModuleArgs = std::map<std::string, std::string, std::less<>>;

// key → unescaped value; nullopt when the dialect rejects the string.
std::optional<ModuleArgs> parse_module_args(std::string_view args,
                                            ArgsDialect dialect = ArgsDialect::pulseaudio);

// The dialect of a server, from its name in the server info ("PulseAudio (on PipeWire 0.3.65)").
ArgsDialect args_dialect_of(std::string_view server_name);

} // namespace pp::audio
