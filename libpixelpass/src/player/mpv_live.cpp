#include "player/mpv_live.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <vector>

namespace pp::player {
namespace {

// Tuned with bench/media-latency (docs/BENCHMARKS.md). The demuxer's queue, sampled every 50 ms,
// swings by a frame or two (a 33 ms video frame, a 21 ms AAC frame) as packets arrive and are
// decoded; its low point over a second is the standing backlog. A backlog above `slack` is
// played away at 1 + 2 × backlog speed (1.1–2): a stall of a loaded machine leaves a few hundred
// ms behind, gone within a second or two (at 1 + backlog it took several). The slack is 10 ms: with 50 ms
// the queue settled at a median of ~60 ms, which mpv plays the picture late by (it times video by
// the sound); with 10 ms it settles at ~20 ms, and mpv reports no audio underrun (the benchmark
// counts them). The low point drops as soon as the queue is drained, so the speed is back to 1
// before mpv's audio buffer could run dry.
const char *const kScript = R"lua(-- pixelpass-live.lua: keep a live stream at its live edge (written by pixelpass).
local slack = tonumber(mp.get_opt("pixelpass-slack") or "") or 0.01  -- seconds of standing queue tolerated
local window = 20           -- samples (of 50 ms) that make one second
local samples = {}
mp.add_periodic_timer(0.05, function()
  local queued = mp.get_property_number("demuxer-cache-duration")
  if queued == nil then samples = {}; return end
  table.insert(samples, queued)
  if #samples > window then table.remove(samples, 1) end
  local low = math.huge
  for _, q in ipairs(samples) do low = math.min(low, q) end
  local speed = 1.0
  if #samples == window and low > slack then
    speed = 1.0 + math.min(1.0, math.max(0.1, 2 * low))
  elseif low > slack and mp.get_property_number("speed", 1.0) > 1.0 then
    speed = mp.get_property_number("speed", 1.0)   -- still draining a backlog seen before
  end
  if mp.get_property_number("speed", 1.0) ~= speed then mp.set_property_number("speed", speed) end
end)
)lua";

bool usable_dir(const std::string &dir) {
    if (dir.empty() || dir.front() != '/') return false;
    // mkdir -p of the last component only: the parent (runtime or cache dir) must exist.
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        std::string parent = dir.substr(0, dir.rfind('/'));
        if (parent.empty() || ::mkdir(parent.c_str(), 0700) != 0 || ::mkdir(dir.c_str(), 0700) != 0) return false;
    }
    struct stat st {};
    // Ours and not a symlink: nobody else can swap the script mpv runs.
    return ::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() &&
           (st.st_mode & 022) == 0;
}

bool same_content(const std::string &path, const std::string &text) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::string have((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return have == text;
}

bool write_atomically(const std::string &dir, const std::string &path, const std::string &text) {
    std::string tmpl = dir + "/.pixelpass-live.XXXXXX";
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) return false;
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ok = ::fchmod(fd, 0600) == 0 && ok;  // only mpv, run as this user, reads it
    ok = ::close(fd) == 0 && ok;
    if (ok && ::rename(tmpl.c_str(), path.c_str()) == 0) return true;
    ::unlink(tmpl.c_str());
    return false;
}

} // namespace

const std::string &mpv_live_script() {
    static const std::string text = kScript;
    return text;
}

std::optional<std::string> mpv_live_script_path() {
    std::vector<std::string> dirs;
    if (const char *run = std::getenv("XDG_RUNTIME_DIR"); run && *run) dirs.push_back(std::string(run) + "/pixelpass");
    if (const char *cache = std::getenv("XDG_CACHE_HOME"); cache && *cache)
        dirs.push_back(std::string(cache) + "/pixelpass");
    else if (const char *home = std::getenv("HOME"); home && *home)
        dirs.push_back(std::string(home) + "/.cache/pixelpass");
    for (const auto &dir : dirs) {
        if (!usable_dir(dir)) continue;
        std::string path = dir + "/pixelpass-live.lua";
        if (same_content(path, mpv_live_script()) || write_atomically(dir, path, mpv_live_script())) return path;
    }
    return std::nullopt;
}

} // namespace pp::player
