// repair/restore_state: WirePlumber 0.4's restore-stream state file, where it remembers per-app
// stream targets ("Output/Audio:application.name:Firefox:target=<node.name>"). Reads the targets
// and removes chosen ones while keeping every other byte, replacing the file atomically.
//
// Format (WirePlumber 0.4 lib/wp/state.c over GLib's GKeyFile): one group [restore-stream]; keys
// escaped by WirePlumber (\\ \s \e \o \c for backslash, space, '=', '[', ']'); values escaped by
// GKeyFile (\s \n \t \r \\). Key bases are "<media.class without Stream/>:<property>:<value>",
// the property being the first of media.role, application.id, application.name, media.name,
// node.name that the stream has (restore-stream.lua findSuitableKey).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace pp::repair {

inline constexpr std::string_view kRestoreGroup = "restore-stream";
inline constexpr std::string_view kTargetSuffix = ":target";

struct RestoreTarget {
    std::string key_base;  // "Output/Audio:application.name:Firefox"
    std::string target;    // the remembered node.name
};

// The stream identity a key base encodes.
struct StreamKey {
    std::string media_class;  // "Stream/Output/Audio" for "Output/Audio"; "Audio/Sink" as is
    std::string property;     // "application.name"
    std::string value;        // "Firefox" (may itself hold ':')
};

std::string unescape_state_key(std::string_view key);    // WirePlumber's key escapes
std::string unescape_keyfile_value(std::string_view v);  // GKeyFile's value escapes

// Every "<base>:target" entry of the [restore-stream] group, in file order.
std::vector<RestoreTarget> restore_targets(std::string_view text);

// `text` without the target entries whose key base is in `key_bases`; everything else verbatim.
std::string without_targets(std::string_view text, const std::set<std::string> &key_bases);

std::optional<StreamKey> parse_key_base(std::string_view key_base);

// $XDG_STATE_HOME/wireplumber/restore-stream, else $HOME/.local/state/wireplumber/restore-stream
// (where WirePlumber 0.4 keeps it); empty when neither variable is set.
std::string restore_stream_path();

// Reads a whole file; nullopt when it does not exist. Throws pp::Error(PP_ERR_IO) otherwise.
std::optional<std::string> read_file(const std::string &path);

// Replaces `path` with `contents` atomically: a temporary file in the same directory with the
// original's mode, fsync, rename over. On any failure the original is untouched and the
// temporary removed; throws pp::Error(PP_ERR_IO).
void replace_file_atomically(const std::string &path, std::string_view contents);

} // namespace pp::repair
