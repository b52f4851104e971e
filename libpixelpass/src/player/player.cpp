#include "player/player.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>

#include "common/error.hpp"
#include "common/executable.hpp"
#include "common/hex.hpp"
#include "common/random.hpp"
#include "player/mpv_live.hpp"

namespace pp::player {
namespace {

// VLC splits its plugins over packages on several distributions; a missing MPEG-TS demuxer or
// avcodec decoder fails only once the stream arrives, so look before launching.
std::string vlc_missing_plugins() {
    std::vector<std::filesystem::path> roots;
    if (const char *env = std::getenv("VLC_PLUGIN_PATH")) roots.emplace_back(env);
    std::error_code ec;
    for (const auto &entry : std::filesystem::directory_iterator("/usr/lib", ec))
        if (std::filesystem::exists(entry.path() / "vlc/plugins", ec)) roots.push_back(entry.path() / "vlc/plugins");
    for (const char *dir : {"/usr/lib/vlc/plugins", "/usr/lib64/vlc/plugins"}) roots.emplace_back(dir);

    auto present = [&](const char *relative) {
        for (const auto &root : roots)
            if (std::filesystem::exists(root / relative, ec)) return true;
        return false;
    };
    std::string missing;
    if (!present("demux/libts_plugin.so"))
        missing += "the MPEG-TS demuxer (libts_plugin.so: Debian vlc-plugin-base, Arch vlc-plugin-dvb)";
    if (!present("codec/libavcodec_plugin.so")) {
        if (!missing.empty()) missing += " and ";
        missing += "the H.264 decoder (libavcodec_plugin.so: Debian vlc-plugin-base, Arch vlc-plugin-ffmpeg)";
    }
    return missing.empty() ? "" : "VLC lacks " + missing;
}

std::string quote(const std::string &arg) {
    bool plain = !arg.empty();
    for (char c : arg)
        if (!(isalnum(static_cast<unsigned char>(c)) || std::strchr("-_=./:,+@%", c))) plain = false;
    if (plain) return arg;
    std::string out = "'";
    for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// A directory for playlists that only we can enter: created 0700, or existing, ours, 0700 and
// not a symlink (another user could have made /tmp/pixelpass-<uid> first).
std::filesystem::path private_dir() {
    const char *runtime = std::getenv("XDG_RUNTIME_DIR");
    std::filesystem::path dir = runtime && runtime[0] == '/' ? std::filesystem::path(runtime) / "pixelpass"
                                                             : std::filesystem::path("/tmp/pixelpass-" + std::to_string(geteuid()));
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw Error(PP_ERR_IO, "cannot create " + dir.string() + ": " + std::strerror(errno));
    struct stat st {};
    if (lstat(dir.c_str(), &st) != 0)
        throw Error(PP_ERR_IO, "cannot inspect " + dir.string() + ": " + std::strerror(errno));
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0)
        throw Error(PP_ERR_IO, dir.string() + " is not a private directory of this user (mode 0700, ours, "
                                              "no symlink): remove it and try again");
    return dir;
}

void remove_stale_playlists(const std::filesystem::path &dir) {
    std::error_code ec;
    auto cutoff = std::filesystem::file_time_type::clock::now() - std::chrono::minutes(1);
    for (const auto &entry : std::filesystem::directory_iterator(dir, ec)) {
        const auto name = entry.path().filename().string();
        if (name.rfind("play-", 0) == 0 && entry.path().extension() == ".m3u" &&
            std::filesystem::last_write_time(entry.path(), ec) < cutoff)
            std::filesystem::remove(entry.path(), ec);
    }
}

const Installed *find(const std::vector<Installed> &players, Kind kind) {
    for (const auto &p : players)
        if (p.kind == kind) return &p;
    return nullptr;
}

} // namespace

std::vector<Installed> detect() {
    std::vector<Installed> out;
    if (auto mpv = find_executable("mpv")) out.push_back({Kind::mpv, "mpv", *mpv, true, ""});
    if (auto vlc = find_executable("vlc")) {
        Installed p{Kind::vlc, "vlc", *vlc, true, vlc_missing_plugins()};
        if (!p.problem.empty()) p.usable = false;
        else if (geteuid() == 0) {
            p.usable = false;
            p.problem = "VLC refuses to run as root: run the viewer as a normal user, or use mpv";
        }
        out.push_back(std::move(p));
    }
    return out;
}

nlohmann::json to_json(const std::vector<Installed> &players) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto &p : players)
        list.push_back({{"name", p.name}, {"path", p.path}, {"usable", p.usable},
                        {"problem", p.problem.empty() ? nlohmann::json() : nlohmann::json(p.problem)}});
    return list;
}

Kind choose(const std::string &name) {
    auto players = detect();
    if (name == "mpv" || name == "vlc") {
        Kind kind = name == "mpv" ? Kind::mpv : Kind::vlc;
        const Installed *p = find(players, kind);
        if (!p) throw Error(PP_ERR_PLAYER, name + " is not installed: apt-get install " + (name == "mpv" ? "mpv" : "vlc"));
        if (!p->usable) throw Error(PP_ERR_PLAYER, p->problem);
        return kind;
    }
    if (name != "auto" && !name.empty())
        throw Error(PP_ERR_INVALID_ARGUMENT, "unknown player '" + name + "': use auto, mpv or vlc");
    for (const auto &p : players)
        if (p.usable) return p.kind;
    if (!players.empty()) throw Error(PP_ERR_PLAYER, players.front().problem);
    throw Error(PP_ERR_PLAYER, "no player found: install mpv (recommended) or vlc");
}

std::vector<std::string> command(Kind kind, const std::string &url) {
    if (kind == Kind::mpv) {
        // Video only: ~890 ms with mpv's defaults, ~90 ms with the first four (measured on a local HTTP TS stream).
        // With sound, see mpv_live.hpp and docs/BENCHMARKS.md: the live-edge script, and a 50 ms
        // PulseAudio buffer instead of mpv's 100 ms (PipeWire's own output already uses 20 ms).
        std::vector<std::string> argv = {"mpv", "--profile=low-latency", "--untimed", "--cache=no",
                                          "--force-seekable=no", "--pulse-buffer=50"};
        if (auto script = mpv_live_script_path()) argv.push_back("--script=" + *script);
        argv.insert(argv.end(), {"--title=pixelpass", url});
        return argv;
    }
    return {"vlc", "--network-caching=100", "--clock-jitter=0", "--clock-synchro=0",
            "--no-video-title-show", "--meta-title=pixelpass", url};
}

std::vector<std::string> playlist_command(Kind kind, const std::string &path) {
    auto argv = command(kind, path);
    // mpv reads a playlist only when told to; VLC recognises the .m3u file by its content.
    if (kind == Kind::mpv) argv.back() = "--playlist=" + path;
    return argv;
}

std::string write_private_playlist(const std::string &url) {
    if (url.find_first_of("\r\n") != std::string::npos)
        throw Error(PP_ERR_INVALID_ARGUMENT, "a player URL must be one line");
    auto dir = private_dir();
    remove_stale_playlists(dir);
    std::vector<uint8_t> name(8);
    random_bytes(name);
    auto path = dir / ("play-" + to_hex(name) + ".m3u");
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(PP_ERR_IO, "cannot create " + path.string() + ": " + std::strerror(errno));
    std::string body = "#EXTM3U\n#EXTINF:-1,pixelpass\n" + url + "\n";
    bool ok = write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size());
    int err = errno;
    close(fd);
    if (!ok) {
        unlink(path.c_str());
        throw Error(PP_ERR_IO, "cannot write " + path.string() + ": " + std::strerror(err));
    }
    return path.string();
}

std::string shell_command(Kind kind, const std::string &url) {
    std::string out;
    for (const auto &arg : command(kind, url)) out += (out.empty() ? "" : " ") + quote(arg);
    return out;
}

pid_t launch(Kind kind, const std::string &url) {
    auto players = detect();
    const Installed *p = find(players, kind);
    if (!p) throw Error(PP_ERR_PLAYER, std::string(kind == Kind::mpv ? "mpv" : "vlc") + " is not installed");
    if (!p->usable) throw Error(PP_ERR_PLAYER, p->problem);

    auto args = playlist_command(kind, write_private_playlist(url));
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    // Double fork: the player is reparented to init, so it never lingers as our zombie and
    // survives us. A close-on-exec pipe carries the grandchild's pid, then its exec errno.
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) throw Error(PP_ERR_IO, std::string("pipe: ") + std::strerror(errno));
    pid_t child = fork();
    if (child < 0) {
        close(report[0]);
        close(report[1]);
        throw Error(PP_ERR_IO, std::string("fork: ") + std::strerror(errno));
    }
    if (child == 0) {
        close(report[0]);
        setsid();
        pid_t grandchild = fork();
        if (grandchild != 0) {
            if (grandchild > 0) (void)!write(report[1], &grandchild, sizeof grandchild);
            _exit(grandchild > 0 ? 0 : 1);
        }
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        execv(p->path.c_str(), argv.data());
        int err = errno;
        (void)!write(report[1], &err, sizeof err);
        _exit(127);
    }
    close(report[1]);
    waitpid(child, nullptr, 0);
    pid_t pid = -1;
    int exec_errno = 0;
    ssize_t got = read(report[0], &pid, sizeof pid);
    ssize_t failed = got == sizeof pid ? read(report[0], &exec_errno, sizeof exec_errno) : 0;
    close(report[0]);
    if (got != sizeof pid) throw Error(PP_ERR_IO, "could not start " + p->name + ": fork failed");
    if (failed == sizeof exec_errno)
        throw Error(PP_ERR_PLAYER, "could not start " + p->path + ": " + std::strerror(exec_errno));
    return pid;
}

} // namespace pp::player
