// player: finds the local players (mpv first, then VLC), builds their low-latency command lines,
// checks that VLC has the plugins an MPEG-TS/H.264 stream needs, and launches one detached so it
// outlives a viewer that is restarted.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

#include <nlohmann/json.hpp>

namespace pp::player {

enum class Kind { mpv, vlc };

struct Installed {
    Kind kind;
    std::string name;      // "mpv", "vlc"
    std::string path;      // absolute path of the executable
    bool usable = true;    // false when it cannot play our stream as installed
    std::string problem;   // why not, with the packages to install
};

// Installed players, best first. Looks up PATH; checks VLC's demux and codec plugins.
std::vector<Installed> detect();
nlohmann::json to_json(const std::vector<Installed> &players);

// Parses "auto", "mpv" or "vlc"; "auto" picks the best usable installed player.
// Throws pp::Error(PP_ERR_PLAYER) with what to install when there is none.
Kind choose(const std::string &name);

// argv of a low-latency playback of `url`.
std::vector<std::string> command(Kind kind, const std::string &url);
// The same, quoted for a POSIX shell, for people to copy.
std::string shell_command(Kind kind, const std::string &url);
// argv playing the playlist file at `path` (what launch() runs: no URL on the command line).
std::vector<std::string> playlist_command(Kind kind, const std::string &path);

// Writes `url` into a new playlist only our user can read: mode 0600, a random name created with
// O_EXCL in $XDG_RUNTIME_DIR/pixelpass (else /tmp/pixelpass-<uid>), a directory of mode 0700 that
// must be ours. Playlists of earlier launches older than a minute are deleted. Returns its path.
// Throws pp::Error(PP_ERR_IO) naming the directory when it cannot.
std::string write_private_playlist(const std::string &url);

// Starts the player in its own session with stdio on /dev/null; returns its pid. The URL (a
// bearer token) reaches the player through write_private_playlist(), never its argv, which
// every local user can read in /proc. Throws pp::Error(PP_ERR_PLAYER) when it is missing,
// unusable, or (VLC) we are root.
pid_t launch(Kind kind, const std::string &url);

} // namespace pp::player
