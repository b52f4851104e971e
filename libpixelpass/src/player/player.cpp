#include "player/player.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>

#include "common/error.hpp"
#include "common/executable.hpp"
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
        // Video only: ~890 ms with mpv's defaults, ~90 ms with the first four (ARCHITECTURE.md).
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

    auto args = command(kind, url);
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
