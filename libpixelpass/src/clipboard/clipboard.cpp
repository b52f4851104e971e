#include "clipboard/clipboard.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "common/error.hpp"
#include "common/executable.hpp"

extern char **environ;

namespace pp::clipboard {
namespace {

struct Tool {
    const char *name;
    const char *package;
    std::vector<std::string> args;
};

std::string session() {
    const char *wayland = std::getenv("WAYLAND_DISPLAY");
    const char *display = std::getenv("DISPLAY");
    if (wayland && *wayland) return "wayland";
    if (display && *display) return "x11";
    return "none";
}

std::vector<Tool> tools_for(const std::string &session) {
    if (session == "wayland") return {{"wl-copy", "wl-clipboard", {"wl-copy"}}};
    if (session == "x11")
        return {{"xclip", "xclip", {"xclip", "-selection", "clipboard", "-in"}},
                {"xsel", "xsel", {"xsel", "--clipboard", "--input"}}};
    return {};
}

// Runs the tool with `text` on its stdin. The tools fork a child that keeps serving the
// selection, so success is "the parent exited 0", within a few seconds.
std::string run_tool(const std::string &path, const Tool &tool, const std::string &text) {
    int in[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own session: the selection owner must outlive our terminal and not get our Ctrl-C.
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    std::vector<char *> argv;
    for (const auto &a : tool.args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    int err = ::posix_spawn(&pid, path.c_str(), &fa, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(in[0]);
    if (err != 0) {
        ::close(in[1]);
        return std::string("cannot start: ") + std::strerror(err);
    }
    // SIGPIPE would kill us if the tool exits early; the write error is enough.
    struct sigaction ignore{}, old{};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &old);
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(in[1], text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        done += size_t(n);
    }
    ::sigaction(SIGPIPE, &old, nullptr);
    ::close(in[1]);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    for (;;) {
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) return std::string("waitpid: ") + std::strerror(errno);
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return "did not finish within 5 s (is the display reachable?)";
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (done < text.size()) return "closed its input early";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    return "killed by signal " + std::to_string(WTERMSIG(status));
}

std::string base64(const std::string &in) {
    static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
        out += {table[v >> 18], table[(v >> 12) & 63], table[(v >> 6) & 63], table[v & 63]};
    }
    if (i + 1 == in.size()) {
        unsigned v = (unsigned char)in[i] << 16;
        out += {table[v >> 18], table[(v >> 12) & 63], '=', '='};
    } else if (i + 2 == in.size()) {
        unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
        out += {table[v >> 18], table[(v >> 12) & 63], table[(v >> 6) & 63], '='};
    }
    return out;
}

} // namespace

nlohmann::json probe(int tty_fd) {
    std::string s = session();
    nlohmann::json tools = nlohmann::json::array();
    for (const auto &t : tools_for(s)) {
        auto path = find_executable(t.name);
        tools.push_back({{"name", t.name},
                         {"path", path.value_or("")},
                         {"usable", path.has_value()},
                         {"problem", path ? "" : std::string("not installed: install ") + t.package}});
    }
    return {{"session", s}, {"tools", tools}, {"terminal", tty_fd >= 0 && ::isatty(tty_fd) == 1}};
}

std::string copy(const std::string &text, int tty_fd) {
    std::string s = session();
    std::vector<std::string> problems;
    for (const auto &t : tools_for(s)) {
        auto path = find_executable(t.name);
        if (!path) {
            problems.push_back(std::string(t.name) + " is not installed (package " + t.package + ")");
            continue;
        }
        std::string why = run_tool(*path, t, text);
        if (why.empty()) return t.name;
        problems.push_back(std::string(t.name) + " " + why);
    }
    if (tty_fd >= 0 && ::isatty(tty_fd) == 1) {
        // OSC 52: the terminal (even across ssh) sets its clipboard; BEL-terminated for tmux/xterm.
        std::string seq = "\033]52;c;" + base64(text) + "\a";
        if (::write(tty_fd, seq.data(), seq.size()) == ssize_t(seq.size())) return "osc52";
        problems.push_back(std::string("writing the OSC 52 escape failed: ") + std::strerror(errno));
    }
    std::string detail = s == "none" ? "no graphical session (neither WAYLAND_DISPLAY nor DISPLAY is set)"
                                     : "no clipboard tool worked";
    for (const auto &p : problems) detail += "; " + p;
    if (s == "wayland") detail += "; install wl-clipboard";
    if (s == "x11") detail += "; install xclip";
    throw Error(PP_ERR_UNSUPPORTED, "cannot copy to the clipboard: " + detail);
}

} // namespace pp::clipboard
